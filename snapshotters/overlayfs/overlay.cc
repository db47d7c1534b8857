#include "snapshotters/overlayfs/overlay.h"

#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>

#include "core/copy.h"
#include "core/fs.h"

namespace berth::snapshotters {

using snapshots::Kind;

Status OverlaySnapshotter::supported(const std::string& root) {
  std::ifstream fss("/proc/filesystems");
  std::string line;
  bool listed = false;
  while (std::getline(fss, line)) listed |= line.find("\toverlay") != std::string::npos;
  if (!listed) return skip("overlay is not in /proc/filesystems");
  // A real test mount on the backing filesystem: some (e.g. overlay itself, some FUSE) refuse to
  // be an upper layer.
  BERTH_RETURN_IF_ERROR(core::make_dirs(root, 0700));
  std::string base = root + "/probe-" + std::to_string(::getpid());
  for (const char* d : {"", "/lower", "/upper", "/work", "/merged"}) {
    if (::mkdir((base + d).c_str(), 0700) < 0 && errno != EEXIST)
      return from_errno(errno, "mkdir \"{}{}\"", base, d);
  }
  std::string opts =
      "lowerdir=" + base + "/lower,upperdir=" + base + "/upper,workdir=" + base + "/work";
  int rc = ::mount("overlay", (base + "/merged").c_str(), "overlay", 0, opts.c_str());
  int err = errno;
  if (rc == 0) ::umount2((base + "/merged").c_str(), MNT_DETACH);
  core::remove_tree(base).ignore();
  if (rc < 0) {
    return skip("overlay cannot be mounted on \"{}\": {}", root, std::strerror(err));
  }
  return Status();
}

Result<std::shared_ptr<OverlaySnapshotter>> OverlaySnapshotter::open(const std::string& root) {
  BERTH_RETURN_IF_ERROR(supported(root));
  auto s = std::shared_ptr<OverlaySnapshotter>(new OverlaySnapshotter());
  struct stat st {};
  s->index_off_ = ::stat("/sys/module/overlay/parameters/index", &st) == 0;
  BERTH_RETURN_IF_ERROR(s->DirSnapshotter::open(root));
  return s;
}

Status OverlaySnapshotter::fill(const std::string& dir, Kind kind,
                                const std::vector<Record>& parents) {
  std::string fs = dir + "/fs";
  if (::mkdir(fs.c_str(), 0755) < 0) return from_errno(errno, "mkdir \"{}\"", fs);
  if (kind == Kind::kActive && ::mkdir((dir + "/work").c_str(), 0711) < 0) {
    return from_errno(errno, "mkdir \"{}/work\"", dir);
  }
  if (!parents.empty()) {
    // The upper dir takes the owner of the layer below, so the merged root keeps it.
    struct stat st {};
    std::string pfs = snapshot_dir(parents.front().id) + "/fs";
    if (::stat(pfs.c_str(), &st) == 0 && ::chown(fs.c_str(), st.st_uid, st.st_gid) < 0) {
      return from_errno(errno, "chown \"{}\"", fs);
    }
  }
  return Status();
}

std::vector<Mount> OverlaySnapshotter::mounts_for(const Record& r,
                                                  const std::vector<Record>& parents) {
  std::string dir = snapshot_dir(r.id);
  bool active = r.kind == Kind::kActive;
  if (parents.empty()) {
    return {Mount{"bind", dir + "/fs", "", {active ? "rw" : "ro", "rbind"}}};
  }
  if (!active && parents.size() == 1) {
    return {Mount{"bind", snapshot_dir(parents[0].id) + "/fs", "", {"ro", "rbind"}}};
  }
  std::vector<std::string> options;
  if (index_off_) options.push_back("index=off");
  if (active) {
    options.push_back("workdir=" + dir + "/work");
    options.push_back("upperdir=" + dir + "/fs");
  }
  std::string lower;
  for (const auto& p : parents) {
    if (!lower.empty()) lower.push_back(':');
    lower += snapshot_dir(p.id) + "/fs";
  }
  options.push_back("lowerdir=" + lower);
  return {Mount{"overlay", "overlay", "", options}};
}

void OverlaySnapshotter::committed(const Record& r) {
  core::remove_tree(snapshot_dir(r.id) + "/work").ignore();
}

std::string OverlaySnapshotter::usage_dir(const Record& r) const {
  return snapshot_dir(r.id) + "/fs";
}

}  // namespace berth::snapshotters
