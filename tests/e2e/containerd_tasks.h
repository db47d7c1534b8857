// A private containerd with the busybox test image imported, for tests that run containers
// through it (with containerd's runc shim driving berth-runtime, or with berth-shim). Every
// container a test ran is killed and removed in TearDown, and the test's cgroup parent with it.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

#include "core/oci/cgroups.h"
#include "tests/e2e/harness.h"
#include "tests/support/oci_layout.h"

namespace berth::e2e {

class ContainerdTasksTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "containers need root";
    std::string why;
    containerd_ = Containerd::start(&why);
    ASSERT_TRUE(containerd_) << why;
    test::write_file(containerd_->dir() + "/busybox.tar", test::busybox_image_tar(image_));
    auto imp = containerd_->ctr({"images", "import", containerd_->dir() + "/busybox.tar"});
    ASSERT_EQ(imp.exit_code, 0) << diag(imp);
  }
  void TearDown() override {
    if (!containerd_) return;
    for (const auto& id : ids_) {
      containerd_->ctr({"tasks", "kill", "-s", "KILL", id});
      containerd_->ctr({"tasks", "rm", "-f", id});
      containerd_->ctr({"containers", "rm", id});
    }
    containerd_.reset();
    auto layout = oci::cgroups::probe();
    if (layout.ok()) {
      for (const auto& m : layout->mounts) ::rmdir((m.mountpoint + cgroup_parent_).c_str());
    }
  }
  // ctr run <runtime_flags> --cgroup <parent>/<id> <flags> IMAGE ID CMD...
  RunResult run(const std::vector<std::string>& runtime_flags,
                const std::vector<std::string>& flags, const std::string& id,
                const std::vector<std::string>& cmd, const std::string& stdin_path = "") {
    ids_.push_back(id);
    std::vector<std::string> args = {"run"};
    args.insert(args.end(), runtime_flags.begin(), runtime_flags.end());
    args.insert(args.end(), {"--cgroup", cgroup_parent_ + "/" + id});
    args.insert(args.end(), flags.begin(), flags.end());
    args.push_back(image_);
    args.push_back(id);
    args.insert(args.end(), cmd.begin(), cmd.end());
    return containerd_->ctr(args, stdin_path);
  }
  bool wait_for(const std::string& id, const std::string& status) {
    return wait_for_task(id, status, [this] { return containerd_->ctr({"tasks", "ls"}); });
  }

  std::unique_ptr<Containerd> containerd_;
  std::string image_ = "example.com/busybox:1";
  std::vector<std::string> ids_;
  std::string cgroup_parent_ = "/berth-ctr-test-" + std::to_string(::getpid());
};

}  // namespace berth::e2e
