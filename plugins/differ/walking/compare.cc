#include "plugins/differ/walking/compare.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <memory>
#include <set>
#include <vector>

#include "core/archive_text.h"
#include "core/digest.h"
#include "core/fd.h"
#include "core/tree.h"

namespace berth::plugins::differ {
namespace {

struct Sink {
  content::Writer* out = nullptr;
  archive* gz = nullptr;  // raw+gzip writer, or null for plain tar
  core::Sha256 hash;
  std::int64_t written = 0;
  Status error;

  static la_ssize_t to_content(archive*, void* self, const void* buf, size_t n) {
    auto* s = static_cast<Sink*>(self);
    Status st = s->out->write(std::string_view(static_cast<const char*>(buf), n));
    if (!st.ok()) {
      s->error = st;
      return -1;
    }
    s->written += static_cast<std::int64_t>(n);
    return static_cast<la_ssize_t>(n);
  }
  static la_ssize_t from_tar(archive*, void* self, const void* buf, size_t n) {
    auto* s = static_cast<Sink*>(self);
    s->hash.update(buf, n);
    if (!s->gz) return to_content(nullptr, self, buf, n);
    la_ssize_t w = archive_write_data(s->gz, buf, n);
    return w < 0 ? -1 : static_cast<la_ssize_t>(n);
  }
};

bool same(const struct stat& a, const struct stat& b) {
  if ((a.st_mode & S_IFMT) != (b.st_mode & S_IFMT) || a.st_mode != b.st_mode ||
      a.st_uid != b.st_uid || a.st_gid != b.st_gid) {
    return false;
  }
  if (S_ISDIR(a.st_mode))
    return true;  // a directory's own metadata; children are compared separately
  if (S_ISCHR(a.st_mode) || S_ISBLK(a.st_mode)) return a.st_rdev == b.st_rdev;
  return a.st_size == b.st_size && a.st_mtim.tv_sec == b.st_mtim.tv_sec &&
         a.st_mtim.tv_nsec == b.st_mtim.tv_nsec;
}

using Xattrs = std::vector<std::pair<std::string, std::string>>;

// Reads xattrs through list/get callables (f*xattr on a descriptor, or l*xattr on a
// /proc/self/fd/<dir>/<name> path), leaving out overlay's own.
template <typename List, typename Get>
Xattrs read_xattrs(List list, Get get) {
  Xattrs out;
  ssize_t len = list(nullptr, 0);
  if (len <= 0) return out;
  std::string names(static_cast<std::size_t>(len), '\0');
  len = list(names.data(), names.size());
  for (std::size_t i = 0; len > 0 && i < static_cast<std::size_t>(len);) {
    std::string name(names.c_str() + i);
    i += name.size() + 1;
    if (name.rfind("trusted.overlay.", 0) == 0) continue;
    ssize_t vlen = get(name.c_str(), nullptr, 0);
    if (vlen < 0) continue;
    std::string v(static_cast<std::size_t>(vlen), '\0');
    vlen = get(name.c_str(), v.data(), v.size());
    if (vlen < 0) continue;
    v.resize(static_cast<std::size_t>(vlen));
    out.emplace_back(std::move(name), std::move(v));
  }
  return out;
}

Xattrs xattrs_of_fd(int fd) {
  return read_xattrs(
      [fd](char* b, std::size_t n) { return ::flistxattr(fd, b, n); },
      [fd](const char* k, void* b, std::size_t n) { return ::fgetxattr(fd, k, b, n); });
}

Xattrs xattrs_in_dir(int dirfd, const std::string& name) {
  std::string path = "/proc/self/fd/" + std::to_string(dirfd) + "/" + name;
  return read_xattrs(
      [&](char* b, std::size_t n) { return ::llistxattr(path.c_str(), b, n); },
      [&](const char* k, void* b, std::size_t n) { return ::lgetxattr(path.c_str(), k, b, n); });
}

// Walks upper (and lower alongside it while both have the directory) with descriptor cursors:
// every entry is read relative to the directory it was listed from, so a symlink in a hostile
// snapshot is written as a symlink and never followed, and the walk holds two descriptors at
// any depth.
class DiffWriter {
 public:
  DiffWriter(core::DirCursor lower, core::DirCursor upper, archive* tar)
      : lower_(std::move(lower)), upper_(std::move(upper)), tar_(tar) {}

  Status walk() {
    BERTH_RETURN_IF_ERROR(push(true));
    while (!frames_.empty()) {
      Frame& f = frames_.back();
      if (f.next < f.names.size()) {
        std::string n = f.names[f.next++];
        BERTH_RETURN_IF_ERROR(visit(n));
        continue;
      }
      bool had_lower = f.lower;
      frames_.pop_back();
      if (frames_.empty()) break;
      BERTH_RETURN_IF_ERROR(upper_.ascend());
      if (had_lower) BERTH_RETURN_IF_ERROR(lower_.ascend());
    }
    return Status();
  }

 private:
  struct Frame {
    std::string rel;  // path below the top ("" for the top)
    struct stat st;   // the upper directory's
    Xattrs xattrs;
    std::vector<std::string> names;  // upper entries, sorted
    std::size_t next = 0;
    bool lower = false;  // lower_ is at this directory too; else everything below is added
  };

  // A frame for the directory upper_ (and, with `with_lower`, lower_) now stands at. In compare
  // mode the names only lower has become whiteouts first.
  Status push(bool with_lower) {
    Frame f;
    f.rel = upper_.rel();
    f.st = upper_.stat();
    f.xattrs = xattrs_of_fd(upper_.fd());
    BERTH_TRY(f.names, core::list_dir_at(upper_.fd()));
    std::sort(f.names.begin(), f.names.end());
    f.lower = with_lower;
    frames_.push_back(std::move(f));
    if (!with_lower) return Status();
    BERTH_TRY(auto low_names, core::list_dir_at(lower_.fd()));
    std::sort(low_names.begin(), low_names.end());
    const auto& up = frames_.back().names;
    for (const auto& n : low_names) {
      if (!std::binary_search(up.begin(), up.end(), n))
        BERTH_RETURN_IF_ERROR(whiteout(frames_.back().rel, n));
    }
    return Status();
  }

  Status visit(const std::string& n) {
    Frame& f = frames_.back();
    std::string path = f.rel.empty() ? n : f.rel + "/" + n;
    struct stat ust {
    }, lst{};
    if (::fstatat(upper_.fd(), n.c_str(), &ust, AT_SYMLINK_NOFOLLOW) < 0) return Status();
    bool in_lower = f.lower && ::fstatat(lower_.fd(), n.c_str(), &lst, AT_SYMLINK_NOFOLLOW) == 0;
    if (!f.lower || !in_lower || !same(ust, lst)) {
      BERTH_RETURN_IF_ERROR(parents());
      BERTH_RETURN_IF_ERROR(write_entry(path, ust, n));
    }
    if (!S_ISDIR(ust.st_mode)) return Status();
    bool compare = in_lower && S_ISDIR(lst.st_mode);
    BERTH_RETURN_IF_ERROR(upper_.descend(n));
    if (compare) {
      Status st = lower_.descend(n);
      if (!st.ok()) {
        BERTH_RETURN_IF_ERROR(upper_.ascend());
        return st;
      }
    }
    return push(compare);
  }

  // The directories above the current entry, each written once (before the first change below
  // it), from the attributes recorded when the walk entered them.
  Status parents() {
    for (std::size_t i = 1; i < frames_.size(); ++i) {
      const Frame& f = frames_[i];
      if (emitted_.count(f.rel)) continue;
      BERTH_RETURN_IF_ERROR(write_header(f.rel, f.st, f.xattrs, {}));
      emitted_.insert(f.rel);
    }
    return Status();
  }

  Status whiteout(const std::string& rel, const std::string& name) {
    std::string path = (rel.empty() ? "" : rel + "/") + ".wh." + name;
    BERTH_RETURN_IF_ERROR(parents());
    std::unique_ptr<archive_entry, void (*)(archive_entry*)> e(archive_entry_new(),
                                                               archive_entry_free);
    archive_entry_set_pathname(e.get(), path.c_str());
    archive_entry_set_filetype(e.get(), AE_IFREG);
    archive_entry_set_perm(e.get(), 0644);
    archive_entry_set_size(e.get(), 0);
    archive_entry_set_mtime(e.get(), 0, 0);
    if (archive_write_header(tar_, e.get()) != ARCHIVE_OK)
      return internal_error("diff: {}", core::archive_error(tar_));
    return Status();
  }

  Status write_header(const std::string& path, const struct stat& st, const Xattrs& xattrs,
                      const std::string& symlink, const char* hardlink = nullptr) {
    std::unique_ptr<archive_entry, void (*)(archive_entry*)> e(archive_entry_new(),
                                                               archive_entry_free);
    archive_entry_copy_stat(e.get(), &st);
    archive_entry_set_pathname(e.get(), path.c_str());
    if (S_ISLNK(st.st_mode)) archive_entry_set_symlink(e.get(), symlink.c_str());
    if (hardlink) {
      archive_entry_set_hardlink(e.get(), hardlink);
      archive_entry_set_size(e.get(), 0);
    }
    for (const auto& [k, v] : xattrs)
      archive_entry_xattr_add_entry(e.get(), k.c_str(), v.data(), v.size());
    if (archive_write_header(tar_, e.get()) != ARCHIVE_OK) {
      return internal_error("diff: writing \"{}\": {}", path, core::archive_error(tar_));
    }
    return Status();
  }

  // An entry of the directory upper_ stands at.
  Status write_entry(const std::string& path, const struct stat& st, const std::string& name) {
    if (!emitted_.insert(path).second) return Status();
    int dir = upper_.fd();
    std::string target;
    if (S_ISLNK(st.st_mode)) {
      target.assign(static_cast<std::size_t>(st.st_size) + 1, '\0');
      ssize_t n = ::readlinkat(dir, name.c_str(), target.data(), target.size());
      if (n < 0) return from_errno(errno, "readlink \"{}\"", upper_.display(name));
      target.resize(static_cast<std::size_t>(n));
    }
    if (S_ISREG(st.st_mode) && st.st_nlink > 1) {
      auto key = std::make_pair(st.st_dev, st.st_ino);
      if (auto it = links_.find(key); it != links_.end()) {
        return write_header(path, st, xattrs_in_dir(dir, name), target, it->second.c_str());
      }
      links_[key] = path;
    }
    if (!S_ISREG(st.st_mode) || st.st_size == 0)
      return write_header(path, st, xattrs_in_dir(dir, name), target);
    core::Fd fd(
        ::openat(dir, name.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY));
    if (fd.get() < 0) return from_errno(errno, "open \"{}\"", upper_.display(name));
    struct stat fst {};
    if (::fstat(fd.get(), &fst) < 0 || !S_ISREG(fst.st_mode) || fst.st_size != st.st_size) {
      return Status(Code::kAborted,
                    fmt::format("diff: \"{}\" changed while it was read", upper_.display(name)));
    }
    BERTH_RETURN_IF_ERROR(write_header(path, st, xattrs_of_fd(fd.get()), target));
    std::vector<char> buf(1 << 20);
    std::int64_t left = st.st_size;
    while (left > 0) {
      ssize_t n = ::read(fd.get(), buf.data(), std::min<std::int64_t>(left, buf.size()));
      if (n < 0) {
        if (errno == EINTR) continue;
        return from_errno(errno, "read \"{}\"", upper_.display(name));
      }
      if (n == 0) break;
      if (archive_write_data(tar_, buf.data(), static_cast<std::size_t>(n)) < 0)
        return internal_error("diff: writing \"{}\": {}", path, core::archive_error(tar_));
      left -= n;
    }
    if (left > 0) {
      return Status(Code::kAborted,
                    fmt::format("diff: \"{}\" shrank while it was read", upper_.display(name)));
    }
    return Status();
  }

  core::DirCursor lower_, upper_;
  archive* tar_;
  std::vector<Frame> frames_;
  std::set<std::string> emitted_;
  std::map<std::pair<dev_t, ino_t>, std::string> links_;
};

}  // namespace

Result<DiffWritten> write_diff(const std::string& lower, const std::string& upper, bool gzip,
                               content::Writer& out) {
  Sink sink;
  sink.out = &out;
  std::unique_ptr<archive, int (*)(archive*)> gz(nullptr, archive_write_free);
  std::unique_ptr<archive_entry, void (*)(archive_entry*)> raw_entry(nullptr, archive_entry_free);
  if (gzip) {
    gz.reset(archive_write_new());
    archive_write_set_format_raw(gz.get());
    archive_write_add_filter_gzip(gz.get());
    archive_write_set_bytes_in_last_block(gz.get(), 1);
    if (archive_write_open(gz.get(), &sink, nullptr, Sink::to_content, nullptr) != ARCHIVE_OK) {
      return internal_error("diff: gzip: {}", core::archive_error(gz.get()));
    }
    raw_entry.reset(archive_entry_new());
    archive_entry_set_filetype(raw_entry.get(), AE_IFREG);
    archive_entry_set_pathname(raw_entry.get(), "layer.tar");
    archive_write_header(gz.get(), raw_entry.get());
    sink.gz = gz.get();
  }
  std::unique_ptr<archive, int (*)(archive*)> tar(archive_write_new(), archive_write_free);
  archive_write_set_format_pax_restricted(tar.get());
  archive_write_set_bytes_in_last_block(tar.get(), 1);
  if (archive_write_open(tar.get(), &sink, nullptr, Sink::from_tar, nullptr) != ARCHIVE_OK) {
    return internal_error("diff: tar: {}", core::archive_error(tar.get()));
  }
  BERTH_TRY(auto low, core::DirCursor::open(lower));
  BERTH_TRY(auto up, core::DirCursor::open(upper));
  DiffWriter w(std::move(low), std::move(up), tar.get());
  BERTH_RETURN_IF_ERROR(w.walk());
  if (archive_write_close(tar.get()) != ARCHIVE_OK)
    return internal_error("diff: closing tar: {}", core::archive_error(tar.get()));
  if (gzip && archive_write_close(gz.get()) != ARCHIVE_OK)
    return internal_error("diff: closing gzip: {}", core::archive_error(gz.get()));
  BERTH_RETURN_IF_ERROR(sink.error);
  return DiffWritten{sink.hash.digest(), sink.written};
}

}  // namespace berth::plugins::differ
