// Test helper: tar streams built in memory with libarchive (layers for apply tests, image
// archives for import tests), including the malformed and hostile ones real tools refuse to make.
#pragma once

#include <archive.h>
#include <archive_entry.h>

#include <map>
#include <string>

namespace berth::test {

// Builds a tar (optionally compressed) in memory.
class TarBuilder {
 public:
  explicit TarBuilder(const char* filter = nullptr) : a_(archive_write_new()) {
    archive_write_set_format_pax_restricted(a_);
    if (filter) archive_write_add_filter_by_name(a_, filter);
    archive_write_open(a_, this, nullptr, &TarBuilder::write_cb, nullptr);
  }
  ~TarBuilder() {
    if (a_) archive_write_free(a_);
  }
  TarBuilder& file(const std::string& path, const std::string& data, int mode = 0644, int uid = 0,
                   std::map<std::string, std::string> xattrs = {}) {
    auto* e = entry(path, AE_IFREG, mode, uid);
    archive_entry_set_size(e, static_cast<la_int64_t>(data.size()));
    for (const auto& [k, v] : xattrs)
      archive_entry_xattr_add_entry(e, k.c_str(), v.data(), v.size());
    archive_write_header(a_, e);
    archive_write_data(a_, data.data(), data.size());
    archive_entry_free(e);
    return *this;
  }
  TarBuilder& dir(const std::string& path, int mode = 0755, int uid = 0) {
    auto* e = entry(path, AE_IFDIR, mode, uid);
    archive_write_header(a_, e);
    archive_entry_free(e);
    return *this;
  }
  TarBuilder& symlink(const std::string& path, const std::string& target) {
    auto* e = entry(path, AE_IFLNK, 0777, 0);
    archive_entry_set_symlink(e, target.c_str());
    archive_write_header(a_, e);
    archive_entry_free(e);
    return *this;
  }
  // Real tar writers repeat the target's mode and owner in a hard link's header; appliers set
  // them on the shared inode.
  TarBuilder& hardlink(const std::string& path, const std::string& target, int mode = 0644,
                       int uid = 0) {
    auto* e = entry(path, AE_IFREG, mode, uid);
    archive_entry_set_hardlink(e, target.c_str());
    archive_entry_set_size(e, 0);
    archive_write_header(a_, e);
    archive_entry_free(e);
    return *this;
  }
  TarBuilder& device(const std::string& path, bool block, unsigned major, unsigned minor,
                     int mode = 0666) {
    auto* e = entry(path, block ? AE_IFBLK : AE_IFCHR, mode, 0);
    archive_entry_set_rdevmajor(e, major);
    archive_entry_set_rdevminor(e, minor);
    archive_write_header(a_, e);
    archive_entry_free(e);
    return *this;
  }
  TarBuilder& fifo(const std::string& path) {
    auto* e = entry(path, AE_IFIFO, 0600, 0);
    archive_write_header(a_, e);
    archive_entry_free(e);
    return *this;
  }
  std::string finish() {
    archive_write_close(a_);
    archive_write_free(a_);
    a_ = nullptr;
    return out_;
  }

 private:
  archive_entry* entry(const std::string& path, unsigned type, int mode, int uid) {
    auto* e = archive_entry_new();
    archive_entry_set_pathname(e, path.c_str());
    archive_entry_set_filetype(e, type);
    archive_entry_set_perm(e, mode);
    archive_entry_set_uid(e, uid);
    archive_entry_set_gid(e, uid);
    archive_entry_set_mtime(e, 1700000000, 0);
    return e;
  }
  static la_ssize_t write_cb(archive*, void* self, const void* buf, size_t n) {
    static_cast<TarBuilder*>(self)->out_.append(static_cast<const char*>(buf), n);
    return static_cast<la_ssize_t>(n);
  }
  archive* a_;
  std::string out_;
};

// Compresses a byte string with a libarchive filter ("gzip", "zstd", "xz").
inline std::string compress(const std::string& plain, const char* filter) {
  std::string out;
  archive* a = archive_write_new();
  archive_write_set_format_raw(a);
  archive_write_add_filter_by_name(a, filter);
  archive_write_set_bytes_in_last_block(a, 1);
  archive_write_open(
      a, &out, nullptr,
      [](archive*, void* o, const void* b, size_t n) -> la_ssize_t {
        static_cast<std::string*>(o)->append(static_cast<const char*>(b), n);
        return static_cast<la_ssize_t>(n);
      },
      nullptr);
  archive_entry* e = archive_entry_new();
  archive_entry_set_filetype(e, AE_IFREG);
  archive_entry_set_pathname(e, "data");
  archive_write_header(a, e);
  archive_write_data(a, plain.data(), plain.size());
  archive_entry_free(e);
  archive_write_close(a);
  archive_write_free(a);
  return out;
}

}  // namespace berth::test
