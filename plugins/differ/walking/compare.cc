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

std::vector<std::string> list(const std::string& dir) {
  std::vector<std::string> out;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (dirent* e = ::readdir(d)) {
      std::string n = e->d_name;
      if (n != "." && n != "..") out.push_back(n);
    }
    ::closedir(d);
  }
  std::sort(out.begin(), out.end());
  return out;
}

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

class DiffWriter {
 public:
  DiffWriter(std::string lower, std::string upper, archive* tar)
      : lower_(std::move(lower)), upper_(std::move(upper)), tar_(tar) {}

  Status walk(const std::string& rel) {
    std::string up = upper_ + (rel.empty() ? "" : "/" + rel);
    std::string low = lower_ + (rel.empty() ? "" : "/" + rel);
    auto up_names = list(up);
    auto low_names = list(low);
    std::set<std::string> up_set(up_names.begin(), up_names.end());
    for (const auto& n : low_names) {
      if (!up_set.count(n)) BERTH_RETURN_IF_ERROR(whiteout(rel, n));
    }
    for (const auto& n : up_names) {
      std::string path = rel.empty() ? n : rel + "/" + n;
      struct stat ust {
      }, lst{};
      if (::lstat((upper_ + "/" + path).c_str(), &ust) < 0) continue;
      bool in_lower = ::lstat((lower_ + "/" + path).c_str(), &lst) == 0;
      bool changed = !in_lower || !same(ust, lst);
      if (changed) BERTH_RETURN_IF_ERROR(emit(path, ust));
      if (S_ISDIR(ust.st_mode)) {
        if (in_lower && !S_ISDIR(lst.st_mode)) {
          BERTH_RETURN_IF_ERROR(walk_added(path));
        } else {
          BERTH_RETURN_IF_ERROR(walk(path));
        }
      }
    }
    return Status();
  }

 private:
  // A directory that is new in upper: everything below it is added.
  Status walk_added(const std::string& rel) {
    for (const auto& n : list(upper_ + "/" + rel)) {
      std::string path = rel + "/" + n;
      struct stat st {};
      if (::lstat((upper_ + "/" + path).c_str(), &st) < 0) continue;
      BERTH_RETURN_IF_ERROR(emit(path, st));
      if (S_ISDIR(st.st_mode)) BERTH_RETURN_IF_ERROR(walk_added(path));
    }
    return Status();
  }

  Status parents(const std::string& path) {
    auto slash = path.rfind('/');
    if (slash == std::string::npos) return Status();
    std::string dir = path.substr(0, slash);
    if (emitted_.count(dir)) return Status();
    BERTH_RETURN_IF_ERROR(parents(dir));
    struct stat st {};
    if (::lstat((upper_ + "/" + dir).c_str(), &st) < 0)
      return from_errno(errno, "lstat \"{}\"", dir);
    return write_entry(dir, st);
  }

  Status whiteout(const std::string& rel, const std::string& name) {
    std::string path = (rel.empty() ? "" : rel + "/") + ".wh." + name;
    BERTH_RETURN_IF_ERROR(parents(path));
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

  Status emit(const std::string& path, const struct stat& st) {
    BERTH_RETURN_IF_ERROR(parents(path));
    return write_entry(path, st);
  }

  Status write_entry(const std::string& path, const struct stat& st) {
    if (!emitted_.insert(path).second) return Status();
    std::string full = upper_ + "/" + path;
    std::unique_ptr<archive_entry, void (*)(archive_entry*)> e(archive_entry_new(),
                                                               archive_entry_free);
    archive_entry_copy_stat(e.get(), &st);
    archive_entry_set_pathname(e.get(), path.c_str());
    if (S_ISLNK(st.st_mode)) {
      std::string target(static_cast<std::size_t>(st.st_size) + 1, '\0');
      ssize_t n = ::readlink(full.c_str(), target.data(), target.size());
      if (n < 0) return from_errno(errno, "readlink \"{}\"", full);
      target.resize(static_cast<std::size_t>(n));
      archive_entry_set_symlink(e.get(), target.c_str());
    }
    bool is_link_copy = false;
    if (S_ISREG(st.st_mode) && st.st_nlink > 1) {
      auto key = std::make_pair(st.st_dev, st.st_ino);
      if (auto it = links_.find(key); it != links_.end()) {
        archive_entry_set_hardlink(e.get(), it->second.c_str());
        archive_entry_set_size(e.get(), 0);
        is_link_copy = true;
      } else {
        links_[key] = path;
      }
    }
    ssize_t len = ::llistxattr(full.c_str(), nullptr, 0);
    if (len > 0) {
      std::string names(static_cast<std::size_t>(len), '\0');
      len = ::llistxattr(full.c_str(), names.data(), names.size());
      for (std::size_t i = 0; len > 0 && i < static_cast<std::size_t>(len);) {
        std::string name(names.c_str() + i);
        i += name.size() + 1;
        if (name.rfind("trusted.overlay.", 0) == 0) continue;
        ssize_t vlen = ::lgetxattr(full.c_str(), name.c_str(), nullptr, 0);
        if (vlen < 0) continue;
        std::string v(static_cast<std::size_t>(vlen), '\0');
        if (::lgetxattr(full.c_str(), name.c_str(), v.data(), v.size()) < 0) continue;
        archive_entry_xattr_add_entry(e.get(), name.c_str(), v.data(), v.size());
      }
    }
    if (archive_write_header(tar_, e.get()) != ARCHIVE_OK) {
      return internal_error("diff: writing \"{}\": {}", path, core::archive_error(tar_));
    }
    if (S_ISREG(st.st_mode) && !is_link_copy && st.st_size > 0) {
      int fd = ::open(full.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
      if (fd < 0) return from_errno(errno, "open \"{}\"", full);
      std::vector<char> buf(1 << 20);
      for (;;) {
        ssize_t n = ::read(fd, buf.data(), buf.size());
        if (n < 0) {
          int err = errno;
          ::close(fd);
          return from_errno(err, "read \"{}\"", full);
        }
        if (n == 0) break;
        if (archive_write_data(tar_, buf.data(), static_cast<std::size_t>(n)) < 0) {
          ::close(fd);
          return internal_error("diff: writing \"{}\": {}", path, core::archive_error(tar_));
        }
      }
      ::close(fd);
    }
    return Status();
  }

  std::string lower_, upper_;
  archive* tar_;
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
  DiffWriter w(lower, upper, tar.get());
  BERTH_RETURN_IF_ERROR(w.walk(""));
  if (archive_write_close(tar.get()) != ARCHIVE_OK)
    return internal_error("diff: closing tar: {}", core::archive_error(tar.get()));
  if (gzip && archive_write_close(gz.get()) != ARCHIVE_OK)
    return internal_error("diff: closing gzip: {}", core::archive_error(gz.get()));
  BERTH_RETURN_IF_ERROR(sink.error);
  return DiffWritten{sink.hash.digest(), sink.written};
}

}  // namespace berth::plugins::differ
