// Layer application (apply.h). One file on purpose (~600 lines): it is one streaming pass over
// the tar whose safety rules (descriptor resolution, whiteouts, hard links, limits) depend on
// each other and are reviewed together; descriptor walks are in core/tree.cc.
#include "plugins/differ/walking/apply.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <set>

#include "core/archive_text.h"
#include "core/copy.h"
#include "core/digest.h"
#include "core/fd.h"
#include "core/size.h"
#include "core/tree.h"

namespace berth::plugins::differ {
namespace {

constexpr std::size_t kMaxPath = 4096;
constexpr std::size_t kMaxXattrValue = 64 << 10;

using core::Fd;

int openat2_in_root(int root, const std::string& path, int flags) {
  return core::open_in_root(root, path, flags);
}

// Splits a tar name into clean components; refuses "..".
Result<std::vector<std::string>> clean_path(const char* raw, std::string_view what) {
  if (!raw) return invalid_argument("layer entry without a name");
  std::string_view name(raw);
  if (name.size() > kMaxPath)
    return invalid_argument("layer {} name is {} bytes long (limit {})", what, name.size(),
                            kMaxPath);
  std::vector<std::string> parts;
  std::size_t start = 0;
  while (start <= name.size()) {
    std::size_t end = name.find('/', start);
    if (end == std::string_view::npos) end = name.size();
    std::string_view part = name.substr(start, end - start);
    if (part == "..") {
      return invalid_argument("layer {} \"{}\" escapes the root with \"..\"; refused", what, name);
    }
    if (!part.empty() && part != ".") parts.emplace_back(part);
    start = end + 1;
  }
  return parts;
}

std::string join(const std::vector<std::string>& parts, std::size_t n) {
  std::string out;
  for (std::size_t i = 0; i < n; ++i) {
    if (i) out.push_back('/');
    out += parts[i];
  }
  return out;
}

class Applier {
 public:
  Applier(const std::string& root, const ApplyOptions& options)
      : root_path_(root), options_(options) {}

  Status open_root() {
    root_ = Fd(::open(root_path_.c_str(), O_DIRECTORY | O_PATH | O_CLOEXEC));
    if (root_.get() < 0) return from_errno(errno, "open layer root \"{}\"", root_path_);
    for (const auto& lower : options_.lowerdirs) {
      Fd l(::open(lower.c_str(), O_DIRECTORY | O_PATH | O_CLOEXEC));
      if (l.get() < 0) return from_errno(errno, "open lower layer \"{}\"", lower);
      lowers_.push_back(std::move(l));
    }
    return Status();
  }

  Status entry(archive* a, archive_entry* e) {
    if (++entries_ > options_.limits.max_entries) {
      return Status(Code::kResourceExhausted,
                    fmt::format("layer has more than {} entries (the differ's max_layer_entries); "
                                "refused",
                                options_.limits.max_entries));
    }
    BERTH_TRY(auto parts, clean_path(archive_entry_pathname(e), "entry"));
    std::string display = core::archive_text(archive_entry_pathname(e));
    if (archive_entry_size_is_set(e) && archive_entry_size(e) > options_.limits.max_bytes) {
      return Status(Code::kResourceExhausted,
                    fmt::format("layer entry \"{}\" is {} (the differ's max_layer_size is {}); "
                                "refused",
                                display, core::format_size(archive_entry_size(e)),
                                core::format_size(options_.limits.max_bytes)));
    }
    if (parts.empty()) return Status();  // the root itself
    const std::string base = parts.back();
    if (base.rfind(".wh.", 0) == 0) return whiteout(parts, display, e);
    BERTH_TRY(Fd parent, parent_dir(parts, display));
    std::string path = join(parts, parts.size());
    written_.insert(path);
    mode_t type = archive_entry_filetype(e);
    const char* hardlink = archive_entry_hardlink(e);

    // Replace what is there, except a directory over a directory.
    struct stat st {};
    bool exists = ::fstatat(parent.get(), base.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0;
    if (exists && !(S_ISDIR(st.st_mode) && type == AE_IFDIR && !hardlink)) {
      BERTH_RETURN_IF_ERROR(remove_at(parent.get(), base, path));
    }
    if (hardlink) return link(parent.get(), base, hardlink, display, e);
    switch (type) {
      case AE_IFDIR: return directory(parent.get(), base, path, e, exists && S_ISDIR(st.st_mode));
      case AE_IFREG: return regular(a, parent.get(), base, display, e);
      case AE_IFLNK: return symlink(parent.get(), base, display, e);
      case AE_IFCHR:
      case AE_IFBLK:
      case AE_IFIFO: return node(parent.get(), base, display, e);
      default: return Status();  // sockets and unknown types are not layer content
    }
  }

  Status finish() {
    if (options_.mode == ApplyOptions::Mode::kNaive) {
      for (const auto& dir : opaque_) BERTH_RETURN_IF_ERROR(empty_opaque(dir));
    }
    // Directory times last, deepest first, so creating children does not bump them.
    std::sort(dir_times_.begin(), dir_times_.end(),
              [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
    for (const auto& [path, times] : dir_times_) {
      Fd d(openat2_in_root(root_.get(), path, O_PATH | O_DIRECTORY | O_NOFOLLOW));
      if (d.get() < 0) continue;
      ::utimensat(d.get(), "", times.data(), AT_EMPTY_PATH);
    }
    if (options_.sync) {
      Fd d(::openat(root_.get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
      if (d.get() < 0 || ::syncfs(d.get()) < 0)
        return from_errno(errno, "syncfs the layer's root \"{}\"", root_path_);
    }
    return Status();
  }

 private:
  // Opens (creating when missing) the parent directory of parts, inside the root. A missing
  // component reached through a symlink is created where the link points (inside the root).
  Result<Fd> parent_dir(const std::vector<std::string>& parts, const std::string& display,
                        int depth = 0) {
    if (depth > 40)
      return invalid_argument("layer entry \"{}\": too many levels of symbolic links", display);
    std::string parent = join(parts, parts.size() - 1);
    Fd fd(openat2_in_root(root_.get(), parent, O_PATH | O_DIRECTORY));
    if (fd.get() >= 0) return fd;
    if (errno != ENOENT) return from_errno(errno, "open parent of layer entry \"{}\"", display);
    // Create the missing components one by one, each resolved inside the root.
    Fd cur(::dup(root_.get()));
    std::string sofar;
    for (std::size_t i = 0; i + 1 < parts.size(); ++i) {
      sofar = join(parts, i + 1);
      Fd next(openat2_in_root(root_.get(), sofar, O_PATH | O_DIRECTORY));
      if (next.get() < 0) {
        if (errno != ENOENT)
          return from_errno(errno, "open \"{}\" for layer entry \"{}\"", sofar, display);
        mode_t mode = 0755;
        uid_t uid = 0;
        gid_t gid = 0;
        if (options_.mode == ApplyOptions::Mode::kOverlayUpper) {
          // The directory exists below: recreate it here with its attributes.
          BERTH_TRY(auto attrs, lower_dir_attributes(sofar));
          if (attrs) {
            mode = attrs->st_mode & 07777;
            uid = attrs->st_uid;
            gid = attrs->st_gid;
          }
        }
        if (::mkdirat(cur.get(), parts[i].c_str(), mode) < 0) {
          if (errno != EEXIST)
            return from_errno(errno, "mkdir \"{}\" for layer entry \"{}\"", sofar, display);
          // A dangling symlink: continue at its target, resolved from the root.
          char target[4096];
          ssize_t n = ::readlinkat(cur.get(), parts[i].c_str(), target, sizeof target - 1);
          if (n < 0) return from_errno(errno, "open \"{}\" for layer entry \"{}\"", sofar, display);
          target[n] = '\0';
          std::string rewritten =
              target[0] == '/' ? std::string(target) : join(parts, i) + "/" + target;
          for (std::size_t j = i + 1; j < parts.size(); ++j) rewritten += "/" + parts[j];
          // ".." inside a link target is resolved by openat2 and cannot leave the root; keep it.
          std::vector<std::string> next_parts;
          for (std::size_t s = 0, e; s <= rewritten.size(); s = e + 1) {
            e = rewritten.find('/', s);
            if (e == std::string::npos) e = rewritten.size();
            std::string part = rewritten.substr(s, e - s);
            if (part.empty() || part == ".") continue;
            if (part == "..") {
              if (!next_parts.empty()) next_parts.pop_back();
              continue;
            }
            next_parts.push_back(part);
          }
          if (next_parts.empty())
            return invalid_argument("layer entry \"{}\" resolves to the root", display);
          return parent_dir(next_parts, display, depth + 1);
        }
        next = Fd(openat2_in_root(root_.get(), sofar, O_PATH | O_DIRECTORY));
        if (next.get() < 0)
          return from_errno(errno, "open \"{}\" for layer entry \"{}\"", sofar, display);
        ::fchownat(next.get(), "", uid, gid, AT_EMPTY_PATH);
        ::fchmodat(cur.get(), parts[i].c_str(), mode, AT_SYMLINK_NOFOLLOW);
      }
      cur = std::move(next);
    }
    return cur;
  }

  // The attributes a directory has in the nearest lower layer holding `path`, looked up without
  // following any symlink: a symlink on the way means the upper dir alone cannot express the
  // entry (the merged view would follow it), so the caller falls back to a mounted overlay.
  Result<std::optional<struct stat>> lower_dir_attributes(const std::string& path) {
    for (const auto& lower : lowers_) {
      Fd f(core::open_beneath(lower.get(), path, O_PATH | O_NOFOLLOW));
      if (f.get() < 0) {
        if (errno == ENOENT) continue;  // not in this layer: look further down
        if (errno == ELOOP || errno == EXDEV)
          return failed_precondition(
              "overlay fallback: \"{}\" goes through a symlink in a lower layer", path);
        return std::optional<struct stat>();  // ENOTDIR: a file below; the upper dir replaces it
      }
      struct stat st {};
      if (::fstat(f.get(), &st) < 0) return from_errno(errno, "stat lower \"{}\"", path);
      if (S_ISLNK(st.st_mode))
        return failed_precondition("overlay fallback: \"{}\" is a symlink in a lower layer", path);
      if (S_ISDIR(st.st_mode)) return std::optional<struct stat>(st);
      return std::optional<struct stat>();
    }
    return std::optional<struct stat>();
  }

  // Removes what `dirfd`/`name` holds (a whole tree for a directory) through descriptors only:
  // nothing below is followed, so a symlink planted by this or an earlier layer cannot redirect
  // the removal outside the root.
  Status remove_at(int dirfd, const std::string& name, const std::string& path) {
    Status st = core::remove_at(dirfd, name);
    if (!st.ok()) return st.with_context(fmt::format("remove \"{}\" before replacing it", path));
    return Status();
  }

  Status whiteout(const std::vector<std::string>& parts, const std::string& display,
                  archive_entry* e) {
    const std::string& base = parts.back();
    std::string dir = join(parts, parts.size() - 1);
    if (base == ".wh..wh..opq") {
      BERTH_TRY(Fd parent, parent_dir(parts, display));
      if (options_.mode == ApplyOptions::Mode::kOverlayUpper) {
        Fd d(openat2_in_root(root_.get(), dir, O_RDONLY | O_DIRECTORY));
        if (d.get() < 0 || ::fsetxattr(d.get(), "trusted.overlay.opaque", "y", 1, 0) < 0) {
          return from_errno(errno, "mark \"{}\" opaque", dir);
        }
      } else {
        opaque_.insert(dir);
      }
      return Status();
    }
    if (base.rfind(".wh..wh.", 0) == 0) return Status();  // other metadata files: ignored
    std::string target = base.substr(4);
    if (target.empty() || target == "." || target == "..") {
      return invalid_argument("layer whiteout \"{}\" names \"{}\"; refused", display, target);
    }
    std::string path = dir.empty() ? target : dir + "/" + target;
    if (options_.mode == ApplyOptions::Mode::kOverlayUpper) {
      BERTH_TRY(Fd parent, parent_dir(parts, display));
      struct stat st {};
      if (::fstatat(parent.get(), target.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
        BERTH_RETURN_IF_ERROR(remove_at(parent.get(), target, path));
      }
      if (::mknodat(parent.get(), target.c_str(), S_IFCHR | 0000, makedev(0, 0)) < 0) {
        return from_errno(errno, "create whiteout for \"{}\"", path);
      }
      ::fchownat(parent.get(), target.c_str(), archive_entry_uid(e), archive_entry_gid(e),
                 AT_SYMLINK_NOFOLLOW);
      return Status();
    }
    Fd parent(openat2_in_root(root_.get(), dir, O_PATH | O_DIRECTORY));
    if (parent.get() < 0) return Status();  // nothing below to delete
    return remove_at(parent.get(), target, path);
  }

  Status empty_opaque(const std::string& dir) {
    Fd d(openat2_in_root(root_.get(), dir, O_RDONLY | O_DIRECTORY));
    if (d.get() < 0) return Status();
    std::vector<std::string> doomed;
    if (DIR* dp = ::fdopendir(::dup(d.get()))) {
      while (dirent* de = ::readdir(dp)) {
        std::string n = de->d_name;
        if (n == "." || n == "..") continue;
        std::string path = dir.empty() ? n : dir + "/" + n;
        if (!written_.count(path)) doomed.push_back(n);
      }
      ::closedir(dp);
    }
    for (const auto& n : doomed)
      BERTH_RETURN_IF_ERROR(remove_at(d.get(), n, dir.empty() ? n : dir + "/" + n));
    return Status();
  }

  Status attributes(int dirfd, const std::string& name, const std::string& display,
                    archive_entry* e, bool is_link) {
    if (::fchownat(dirfd, name.c_str(), archive_entry_uid(e), archive_entry_gid(e),
                   AT_SYMLINK_NOFOLLOW) < 0) {
      return from_errno(errno, "chown layer entry \"{}\"", display);
    }
    if (!is_link &&
        ::fchmodat(dirfd, name.c_str(), archive_entry_perm(e) | (archive_entry_mode(e) & 07000),
                   AT_SYMLINK_NOFOLLOW) < 0) {
      return from_errno(errno, "chmod layer entry \"{}\"", display);
    }
    BERTH_RETURN_IF_ERROR(xattrs(dirfd, name, display, e));
    timespec times[2];
    times[0].tv_sec =
        archive_entry_atime_is_set(e) ? archive_entry_atime(e) : archive_entry_mtime(e);
    times[0].tv_nsec =
        archive_entry_atime_is_set(e) ? archive_entry_atime_nsec(e) : archive_entry_mtime_nsec(e);
    times[1].tv_sec = archive_entry_mtime(e);
    times[1].tv_nsec = archive_entry_mtime_nsec(e);
    ::utimensat(dirfd, name.c_str(), times, AT_SYMLINK_NOFOLLOW);
    return Status();
  }

  Status xattrs(int dirfd, const std::string& name, const std::string& display, archive_entry* e) {
    if (archive_entry_xattr_reset(e) == 0) return Status();
    const char* key = nullptr;
    const void* value = nullptr;
    size_t size = 0;
    std::string path = "/proc/self/fd/" + std::to_string(dirfd) + "/" + name;
    while (archive_entry_xattr_next(e, &key, &value, &size) == ARCHIVE_OK) {
      if (size > kMaxXattrValue) {
        return invalid_argument("layer entry \"{}\": xattr {} is {} bytes (limit {})", display, key,
                                size, kMaxXattrValue);
      }
      if (::lsetxattr(path.c_str(), key, value, size, 0) < 0) {
        bool optional = std::string_view(key).rfind("security.", 0) == 0 ||
                        std::string_view(key).rfind("trusted.", 0) == 0;
        if (!(optional && (errno == EPERM || errno == ENOTSUP))) {
          return from_errno(errno, "set xattr {} on layer entry \"{}\"", key, display);
        }
      }
    }
    return Status();
  }

  Status directory(int dirfd, const std::string& name, const std::string& path, archive_entry* e,
                   bool existed) {
    if (!existed && ::mkdirat(dirfd, name.c_str(), 0700) < 0)
      return from_errno(errno, "mkdir layer entry \"{}\"", path);
    BERTH_RETURN_IF_ERROR(attributes(dirfd, name, path, e, false));
    std::array<timespec, 2> times;
    times[0] = {archive_entry_mtime(e), archive_entry_mtime_nsec(e)};
    times[1] = times[0];
    dir_times_.emplace_back(path, times);
    return Status();
  }

  Status regular(archive* a, int dirfd, const std::string& name, const std::string& display,
                 archive_entry* e) {
    Fd f(::openat(dirfd, name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (f.get() < 0) return from_errno(errno, "create layer entry \"{}\"", display);
    const void* buf = nullptr;
    size_t size = 0;
    la_int64_t offset = 0;
    la_int64_t end = 0;
    for (;;) {
      int r = archive_read_data_block(a, &buf, &size, &offset);
      if (r == ARCHIVE_EOF) break;
      if (r < ARCHIVE_WARN) {
        // Some writers omit the padding after the last entry and the end-of-archive blocks.
        // When every byte of the entry arrived, that is the end of the layer, not corruption.
        if (end >= archive_entry_size(e)) {
          unpadded_end_ = true;
          break;
        }
        return Status(Code::kDataLoss,
                      fmt::format("layer entry \"{}\": {}", display, core::archive_error(a)));
      }
      end = std::max<la_int64_t>(end, offset + static_cast<la_int64_t>(size));
      const char* p = static_cast<const char*>(buf);
      std::size_t done = 0;
      while (done < size) {
        ssize_t n = ::pwrite(f.get(), p + done, size - done, offset + static_cast<off_t>(done));
        if (n < 0) return from_errno(errno, "write layer entry \"{}\"", display);
        done += static_cast<std::size_t>(n);
      }
    }
    if (::ftruncate(f.get(), archive_entry_size(e)) < 0)
      return from_errno(errno, "size layer entry \"{}\"", display);
    return attributes(dirfd, name, display, e, false);
  }

  Status symlink(int dirfd, const std::string& name, const std::string& display, archive_entry* e) {
    const char* target = archive_entry_symlink(e);
    if (!target) return invalid_argument("layer symlink \"{}\" has no target", display);
    if (std::strlen(target) > kMaxPath)
      return invalid_argument("layer symlink \"{}\" target is too long", display);
    if (::symlinkat(target, dirfd, name.c_str()) < 0)
      return from_errno(errno, "symlink layer entry \"{}\"", display);
    return attributes(dirfd, name, display, e, true);
  }

  Status node(int dirfd, const std::string& name, const std::string& display, archive_entry* e) {
    if (::mknodat(dirfd, name.c_str(), archive_entry_filetype(e) | 0600, archive_entry_rdev(e)) <
        0) {
      return from_errno(errno, "mknod layer entry \"{}\"", display);
    }
    return attributes(dirfd, name, display, e, false);
  }

  // The link entry's own owner, mode, xattrs and times are applied to the (shared) inode, as
  // containerd and docker do, so both produce the same tree.
  Status link(int dirfd, const std::string& name, const char* target, const std::string& display,
              archive_entry* e) {
    BERTH_TRY(auto tparts, clean_path(target, "hard link target"));
    if (tparts.empty())
      return invalid_argument("layer hard link \"{}\" points at the root", display);
    std::string tdir = join(tparts, tparts.size() - 1);
    Fd tparent(openat2_in_root(root_.get(), tdir, O_PATH | O_DIRECTORY));
    if (tparent.get() < 0) {
      return from_errno(errno, "layer hard link \"{}\": target \"{}\" is not in the layer", display,
                        target);
    }
    if (::linkat(tparent.get(), tparts.back().c_str(), dirfd, name.c_str(), 0) < 0) {
      return from_errno(errno, "layer hard link \"{}\" to \"{}\"", display, target);
    }
    struct stat st {};
    if (::fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) < 0)
      return from_errno(errno, "stat layer hard link \"{}\"", display);
    return attributes(dirfd, name, display, e, S_ISLNK(st.st_mode));
  }

 public:
  bool unpadded_end() const { return unpadded_end_; }

 private:
  bool unpadded_end_ = false;
  std::int64_t entries_ = 0;
  std::string root_path_;
  ApplyOptions options_;
  Fd root_;
  std::vector<Fd> lowers_;  // options_.lowerdirs, nearest first
  std::set<std::string> written_;
  std::set<std::string> opaque_;
  std::vector<std::pair<std::string, std::array<timespec, 2>>> dir_times_;
};

// Streams compressed bytes -> (libarchive raw, any filter) -> hash -> (libarchive tar).
struct Pipeline {
  const ReadFn* read = nullptr;
  std::vector<char> in_buf = std::vector<char>(1 << 20);
  std::vector<char> out_buf = std::vector<char>(1 << 20);
  archive* raw = nullptr;
  core::Sha256 hash;
  std::int64_t total = 0;
  std::int64_t max_bytes = 0;
  bool over_limit = false;
  std::string error;

  static la_ssize_t read_compressed(archive*, void* self, const void** buf) {
    auto* p = static_cast<Pipeline*>(self);
    auto n = (*p->read)(p->in_buf.data(), p->in_buf.size());
    if (!n.ok()) {
      p->error = n.status().message();
      return -1;
    }
    *buf = p->in_buf.data();
    return static_cast<la_ssize_t>(*n);
  }

  static la_ssize_t read_tar(archive*, void* self, const void** buf) {
    auto* p = static_cast<Pipeline*>(self);
    la_ssize_t n = archive_read_data(p->raw, p->out_buf.data(), p->out_buf.size());
    if (n < 0) {
      p->error = "decompression failed: " + core::archive_error(p->raw);
      return -1;
    }
    p->hash.update(p->out_buf.data(), static_cast<std::size_t>(n));
    p->total += n;
    if (p->total > p->max_bytes) {
      p->over_limit = true;
      p->error = "over the size limit";
      return -1;
    }
    *buf = p->out_buf.data();
    return n;
  }
};

}  // namespace

Result<Compression> layer_compression(std::string_view media_type) {
  if (media_type.empty()) return Compression::kDetect;
  auto ends_with = [&](std::string_view suffix) {
    return media_type.size() >= suffix.size() &&
           media_type.substr(media_type.size() - suffix.size()) == suffix;
  };
  bool oci = media_type.rfind("application/vnd.oci.image.layer.", 0) == 0;
  bool docker = media_type.rfind("application/vnd.docker.image.rootfs.", 0) == 0;
  if ((oci && ends_with(".tar")) || (docker && ends_with("diff.tar"))) return Compression::kNone;
  if ((oci && ends_with(".tar+gzip")) || (docker && ends_with(".tar.gzip")))
    return Compression::kGzip;
  if ((oci && ends_with(".tar+zstd")) || (docker && ends_with(".tar.zstd")))
    return Compression::kZstd;
  return invalid_argument("unsupported layer media type \"{}\"", media_type);
}

namespace {

// Enables exactly the decoders `c` allows, each built into libarchive: a build that would fall
// back to an external program (ARCHIVE_WARN) is refused.
Status enable_decoders(archive* a, Compression c) {
  auto need = [&](int r, const char* what) -> Status {
    if (r == ARCHIVE_OK) return Status();
    return failed_precondition(
        "libarchive has no built-in {} decoder; refusing to run an "
        "external program",
        what);
  };
  if (c == Compression::kGzip || c == Compression::kDetect)
    BERTH_RETURN_IF_ERROR(need(archive_read_support_filter_gzip(a), "gzip"));
  if (c == Compression::kZstd || c == Compression::kDetect)
    BERTH_RETURN_IF_ERROR(need(archive_read_support_filter_zstd(a), "zstd"));
  return Status();
}

Result<ApplyResult> apply_stream(Pipeline& p, const std::string& root, const ApplyOptions& options);

}  // namespace

Result<ApplyResult> apply_layer(const ReadFn& read, const std::string& root,
                                const ApplyOptions& options) {
  Pipeline p;
  p.read = &read;
  p.max_bytes = options.limits.max_bytes;
  auto r = apply_stream(p, root, options);
  if (p.over_limit) {
    return Status(Code::kResourceExhausted,
                  fmt::format("layer expands to more than {} uncompressed (the differ's "
                              "max_layer_size); refused",
                              core::format_size(options.limits.max_bytes)));
  }
  return r;
}

namespace {

Result<ApplyResult> apply_stream(Pipeline& p, const std::string& root,
                                 const ApplyOptions& options) {
  BERTH_TRY(auto compression, layer_compression(options.media_type));
  std::unique_ptr<archive, int (*)(archive*)> raw(archive_read_new(), archive_read_free);
  BERTH_RETURN_IF_ERROR(enable_decoders(raw.get(), compression));
  archive_read_support_format_raw(raw.get());
  p.raw = raw.get();
  if (archive_read_open(raw.get(), &p, nullptr, Pipeline::read_compressed, nullptr) != ARCHIVE_OK) {
    return invalid_argument("layer: cannot read the stream: {}",
                            p.error.empty() ? core::archive_error(raw.get()) : p.error);
  }
  archive_entry* rawentry = nullptr;
  if (archive_read_next_header(raw.get(), &rawentry) != ARCHIVE_OK) {
    return invalid_argument("layer: {}", core::archive_error(raw.get()));
  }
  std::unique_ptr<archive, int (*)(archive*)> tar(archive_read_new(), archive_read_free);
  archive_read_support_format_tar(tar.get());
  archive_read_support_format_gnutar(tar.get());
  if (archive_read_open(tar.get(), &p, nullptr, Pipeline::read_tar, nullptr) != ARCHIVE_OK) {
    return invalid_argument("layer: cannot read it as tar: {}",
                            p.error.empty() ? core::archive_error(tar.get()) : p.error);
  }
  Applier applier(root, options);
  BERTH_RETURN_IF_ERROR(applier.open_root());
  for (;;) {
    archive_entry* e = nullptr;
    int r = archive_read_next_header(tar.get(), &e);
    if (r == ARCHIVE_EOF || (r < ARCHIVE_WARN && applier.unpadded_end())) break;
    if (r < ARCHIVE_WARN) {
      std::string why = !p.error.empty() ? p.error : core::archive_error(tar.get());
      return Status(Code::kDataLoss, fmt::format("layer is corrupt or truncated: {}", why));
    }
    BERTH_RETURN_IF_ERROR(applier.entry(tar.get(), e));
  }
  BERTH_RETURN_IF_ERROR(applier.finish());
  // Hash whatever follows the end-of-archive marker too: the diffID covers the whole stream.
  for (;;) {
    const void* b;
    la_ssize_t n = Pipeline::read_tar(tar.get(), &p, &b);
    if (n <= 0) break;
  }
  return ApplyResult{p.hash.digest(), p.total};
}

}  // namespace
}  // namespace berth::plugins::differ
