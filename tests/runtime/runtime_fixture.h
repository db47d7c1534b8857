// The fixture of the berth-runtime tests: a busybox bundle in a temporary directory, a default
// spec, berth-runtime run against a private state root, and clean-up of every container, cgroup
// and process the test made, also when an assertion ends it early.
#pragma once

#include <gtest/gtest.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "core/fs.h"
#include "core/oci/cgroups.h"
#include "core/oci/spec.h"
#include "tests/e2e/harness.h"

namespace berth::e2e {

namespace rt_fs = std::filesystem;

inline std::string slurp(const std::string& p) {
  auto r = core::read_file(p);
  return r.ok() ? *r : "<missing>";
}

// One parent cgroup per test process: CTest runs test cases in parallel processes, and each
// removes its own parent at the end.
inline const std::string kCgroupParent = "/berth-runtime-test-" + std::to_string(::getpid());

class RuntimeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "containers need root";
    // Container inits outlive `berth-runtime create`: they become our children, so we reap them.
    ::prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    auto d = core::TempDir::create("berth-rt-");
    ASSERT_TRUE(d.ok());
    dir_.emplace(std::move(*d));
    bundle_ = dir_->path() + "/bundle";
    rootfs_ = bundle_ + "/rootfs";
    rt_fs::create_directories(rootfs_ + "/bin");
    rt_fs::copy_file("/bin/busybox", rootfs_ + "/bin/busybox");
    for (const char* app :
         {"sh",   "cat",      "echo",  "ls",   "id",     "hostname", "sleep", "ps",
          "grep", "mkdir",    "touch", "stat", "ulimit", "umask",    "pwd",   "env",
          "tty",  "readlink", "wc",    "head", "true",   "kill",     "mount"}) {
      rt_fs::create_symlink("busybox", rootfs_ + "/bin/" + app);
    }
    for (const char* d : {"proc", "sys", "dev", "etc", "tmp", "data"})
      rt_fs::create_directories(rootfs_ + "/" + d);
    spec_ = nlohmann::json::parse(oci::default_spec_json(false));
    spec_["process"]["terminal"] = false;
    spec_["root"]["readonly"] = false;
    spec_["hostname"] = "berth-test";
    id_ = "rt-" + std::to_string(::getpid()) + "-" + std::to_string(counter_++);
    spec_["linux"]["cgroupsPath"] = kCgroupParent + "/" + id_;
  }
  void TearDown() override {
    if (!dir_) return;
    // Every container this test made, also when an assertion ended it early.
    extra_ids_.push_back(id_);
    for (const auto& id : extra_ids_) runtime({"delete", "--force", id});
    while (::waitpid(-1, nullptr, WNOHANG) > 0) {
    }
    // Our parent cgroup, in every hierarchy (empty by now).
    auto layout = oci::cgroups::probe();
    if (layout.ok()) {
      for (const auto& m : layout->mounts) ::rmdir((m.mountpoint + kCgroupParent).c_str());
    }
  }
  void write_spec() { std::ofstream(bundle_ + "/config.json") << spec_.dump(1); }
  RunResult runtime(std::vector<std::string> args,
                    std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
    std::vector<std::string> argv = {bin("berth-runtime"), "--root", dir_->path() + "/state"};
    argv.insert(argv.end(), args.begin(), args.end());
    return run(argv, timeout);
  }
  // create: the init keeps the stdio it inherits, so ours goes to files (a pipe would stay open
  // for as long as the container lives).
  RunResult create(std::vector<std::string> extra = {}) {
    std::string cmd = "exec " + bin("berth-runtime") + " --root " + dir_->path() +
                      "/state create --bundle " + bundle_;
    for (const auto& e : extra) cmd += " " + e;
    cmd += " " + id_ + " </dev/null >" + dir_->path() + "/create.out 2>" + dir_->path() +
           "/create.err";
    auto r = run({"/bin/sh", "-c", cmd});
    r.out = slurp(dir_->path() + "/create.out");
    r.err = slurp(dir_->path() + "/create.err");
    return r;
  }
  // Runs `sh -c script` in a fresh container (run, foreground), returning its output.
  RunResult sh(const std::string& script) {
    spec_["process"]["args"] = {"sh", "-c", script};
    write_spec();
    return runtime({"run", "--bundle", bundle_, id_});
  }
  std::optional<core::TempDir> dir_;
  std::string bundle_, rootfs_, id_;
  std::vector<std::string> extra_ids_;
  nlohmann::json spec_;
  static inline int counter_ = 0;
};

}  // namespace berth::e2e
