// Test helper: a directory outside the root under attack that hostile input must leave exactly as
// it was. It is made populated (a "victim" directory with files and a subdirectory, a file, a
// symlink) and fingerprinted; intact() compares a fresh fingerprint (names, types, modes, owners,
// sizes, times, contents), so deletions and changes are caught, not only new files.
// Header-only and free of GoogleTest: the fuzzers use it too.
#pragma once

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <utility>

namespace berth::test {

class Canary {
 public:
  // A fresh canary directory at `path` (which must not exist).
  static std::optional<Canary> create_at(const std::string& path) {
    namespace fs = std::filesystem;
    std::error_code ec;
    if (!fs::create_directory(path, ec) || ec) return std::nullopt;
    Canary c(path);
    fs::create_directories(path + "/victim/sub", ec);
    write(path + "/victim/precious", "do not delete");
    write(path + "/victim/sub/deep", "deep");
    write(path + "/file", "file");
    fs::create_symlink("victim/precious", path + "/link", ec);
    ::chmod((path + "/victim").c_str(), 0750);
    ::chown((path + "/victim").c_str(), 4321, 4321);
    c.initial_ = c.fingerprint();
    return c;
  }
  // A fresh canary in a new directory below `parent`.
  static std::optional<Canary> create(const std::string& parent = "/tmp") {
    std::string tmpl = parent + "/berth-canary-XXXXXX";
    if (!::mkdtemp(tmpl.data())) return std::nullopt;
    ::rmdir(tmpl.c_str());
    return create_at(tmpl);
  }
  Canary(Canary&& o) noexcept : path_(std::move(o.path_)), initial_(std::move(o.initial_)) {
    o.path_.clear();
  }
  Canary& operator=(Canary&& o) noexcept {
    std::swap(path_, o.path_);
    std::swap(initial_, o.initial_);
    return *this;
  }
  ~Canary() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }

  const std::string& path() const { return path_; }
  bool intact() const { return fingerprint() == initial_; }
  // What differs, for a failure message.
  std::string report() const { return "before:\n" + initial_ + "after:\n" + fingerprint(); }

  std::string fingerprint() const {
    namespace fs = std::filesystem;
    std::ostringstream out;
    struct stat top {};
    if (::lstat(path_.c_str(), &top) < 0) return "<canary gone>\n";
    line(out, ".", top, path_);
    std::error_code ec;
    for (auto it = fs::recursive_directory_iterator(path_, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
      struct stat st {};
      std::string p = it->path().string();
      if (::lstat(p.c_str(), &st) < 0) continue;
      line(out, p.substr(path_.size() + 1), st, p);
    }
    return out.str();
  }

 private:
  explicit Canary(std::string path) : path_(std::move(path)) {}
  static void write(const std::string& p, const std::string& data) { std::ofstream(p) << data; }
  static void line(std::ostringstream& out, const std::string& name, const struct stat& st,
                   const std::string& full) {
    out << name << " mode=" << std::oct << st.st_mode << std::dec << " uid=" << st.st_uid
        << " gid=" << st.st_gid << " size=" << st.st_size << " mtime=" << st.st_mtim.tv_sec << "."
        << st.st_mtim.tv_nsec << " ino=" << st.st_ino;
    if (S_ISREG(st.st_mode)) {
      std::ifstream in(full);
      std::stringstream body;
      body << in.rdbuf();
      out << " data=" << body.str();
    }
    out << "\n";
  }
  std::string path_;
  std::string initial_;
};

}  // namespace berth::test
