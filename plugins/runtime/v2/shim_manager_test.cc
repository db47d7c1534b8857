// The runtime plugin's pieces without root and without a real shim: resolving shim binaries,
// the bundle layout, `<shim> start|delete` against scripted shims, and the manager's handling of
// a shim that fails to start.
#include "plugins/runtime/v2/shim_manager.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "core/fs.h"
#include "plugins/runtime/v2/bundle.h"
#include "plugins/runtime/v2/shim_binary.h"

namespace berth::plugins::runtime_v2 {
namespace {

namespace fs = std::filesystem;

class RuntimeV2Test : public ::testing::Test {
 protected:
  void SetUp() override {
    auto d = core::TempDir::create("berth-runtime-v2-");
    ASSERT_TRUE(d.ok());
    dir_ = std::make_unique<core::TempDir>(std::move(*d));
    root_ = dir_->path() + "/root";
    state_ = dir_->path() + "/state";
    bin_ = dir_->path() + "/bin";
    fs::create_directories(root_);
    fs::create_directories(state_);
    fs::create_directories(bin_);
    paths_ = {root_, state_, "/run/x/grpc.sock", "/run/x/ttrpc.sock", bin_ + "/berthd"};
  }
  // An executable shell script in bin/.
  std::string script(const std::string& name, const std::string& body) {
    std::string path = bin_ + "/" + name;
    std::ofstream(path) << "#!/bin/sh\n" << body << "\n";
    ::chmod(path.c_str(), 0755);
    return path;
  }
  std::unique_ptr<core::TempDir> dir_;
  std::string root_, state_, bin_;
  Paths paths_;
};

TEST_F(RuntimeV2Test, ResolvesShimsLikeContainerd) {
  std::string runc = script("containerd-shim-runc-v2", "exit 0");
  // containerd's rule, found next to the daemon binary before PATH.
  auto r = resolve_shim({}, paths_.daemon_binary, "io.containerd.runc.v2", "");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(*r, runc);
  // The configured binary for a runtime name, and an explicit runtime_path, win.
  std::string mine = script("my-shim", "exit 0");
  EXPECT_EQ(
      *resolve_shim({{"io.example.x.v1", "my-shim"}}, paths_.daemon_binary, "io.example.x.v1", ""),
      mine);
  EXPECT_EQ(*resolve_shim({}, paths_.daemon_binary, "io.containerd.runc.v2", mine), mine);
  EXPECT_EQ(*resolve_shim({}, paths_.daemon_binary, mine, ""), mine);  // an absolute name

  auto bad = resolve_shim({}, paths_.daemon_binary, "runc", "");
  EXPECT_EQ(bad.status().code(), Code::kInvalidArgument);
  auto missing = resolve_shim({}, paths_.daemon_binary, "io.containerd.nope.v9", "");
  EXPECT_EQ(missing.status().code(), Code::kNotFound);
  EXPECT_NE(missing.status().message().find("containerd-shim-nope-v9"), std::string::npos);
  EXPECT_NE(missing.status().message().find("PATH"), std::string::npos);
  std::ofstream(bin_ + "/not-executable") << "x";
  EXPECT_EQ(resolve_shim({}, "", "io.x.y.v1", bin_ + "/not-executable").status().code(),
            Code::kNotFound);
}

TEST_F(RuntimeV2Test, BundleLayout) {
  Bundles b(root_, state_);
  ASSERT_TRUE(b.create("ns1", "c1", R"({"ociVersion":"1.0.2"})").ok());
  std::string bundle = b.dir("ns1", "c1");
  EXPECT_EQ(bundle, state_ + "/ns1/c1");
  EXPECT_TRUE(fs::is_directory(bundle + "/rootfs"));
  EXPECT_TRUE(fs::is_directory(b.work("ns1", "c1")));
  EXPECT_EQ(fs::read_symlink(bundle + "/work"), b.work("ns1", "c1"));
  EXPECT_EQ(*core::read_file(bundle + "/config.json"), R"({"ociVersion":"1.0.2"})");
  struct stat st {};
  ASSERT_EQ(::stat((bundle + "/config.json").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  Bundles::record_shim(bundle, "unix:///run/s.sock", "/usr/bin/shim", "io.containerd.runc.v2");
  EXPECT_EQ(*core::read_file(bundle + "/address"), "unix:///run/s.sock");
  EXPECT_EQ(*core::read_file(bundle + "/runtime-name"), "io.containerd.runc.v2");
  auto entries = b.list();
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].ns, "ns1");
  EXPECT_EQ(entries[0].id, "c1");

  // Creating again replaces what a crashed create left.
  std::ofstream(bundle + "/stale") << "x";
  ASSERT_TRUE(b.create("ns1", "c1", "{}").ok());
  EXPECT_FALSE(fs::exists(bundle + "/stale"));

  b.remove("ns1", "c1");
  EXPECT_FALSE(fs::exists(bundle));
  EXPECT_FALSE(fs::exists(b.work("ns1", "c1")));

  // A work dir whose bundle is gone (a reboot emptied the state tmpfs) is removed at start.
  fs::create_directories(root_ + "/ns2/orphan");
  ASSERT_TRUE(b.create("ns2", "kept", "{}").ok());
  b.remove_orphan_work_dirs();
  EXPECT_FALSE(fs::exists(root_ + "/ns2/orphan"));
  EXPECT_TRUE(fs::exists(b.work("ns2", "kept")));
}

TEST_F(RuntimeV2Test, LeftoverEventsAreTakenOnce) {
  Bundles b(root_, state_);
  ASSERT_TRUE(b.create("ns", "c", "{}").ok());
  std::string bundle = b.dir("ns", "c");
  EXPECT_TRUE(Bundles::take_leftover_events(bundle).empty());  // no events dir at all
  fs::create_directories(bundle + "/events");
  std::ofstream(bundle + "/events/0001") << "\xff\xff not a message";
  auto got = Bundles::take_leftover_events(bundle);
  EXPECT_TRUE(got.empty());  // a corrupt file is dropped, not fatal
  EXPECT_TRUE(fs::is_empty(bundle + "/events"));
}

TEST_F(RuntimeV2Test, StartAndDeleteShimCommands) {
  Bundles b(root_, state_);
  ASSERT_TRUE(b.create("ns", "c", "{}").ok());
  std::string bundle = b.dir("ns", "c");
  // The shim sees containerd's flags, the bundle as its cwd, TTRPC_ADDRESS and the options.
  std::string ok = script("shim-ok",
                          "echo \"$@\" > args; echo \"$TTRPC_ADDRESS\" > ttrpc; cat > opts;\n"
                          "echo unix:///run/berth/s/abc");
  auto address = start_shim({paths_, ok, "ns", "c", bundle}, "OPTS", std::chrono::seconds(10));
  ASSERT_TRUE(address.ok()) << address.status().message();
  EXPECT_EQ(*address, "unix:///run/berth/s/abc");
  EXPECT_EQ(*core::read_file(bundle + "/args"),
            "-namespace ns -address /run/x/grpc.sock -publish-binary " + paths_.daemon_binary +
                " -id c start\n");
  EXPECT_EQ(*core::read_file(bundle + "/ttrpc"), "/run/x/ttrpc.sock\n");
  EXPECT_EQ(*core::read_file(bundle + "/opts"), "OPTS");

  std::string failing = script("shim-fails", "echo 'no cgroup for you' >&2; exit 3");
  auto failed = start_shim({paths_, failing, "ns", "c", bundle}, "", std::chrono::seconds(10));
  ASSERT_FALSE(failed.ok());
  EXPECT_NE(failed.status().message().find("exit status 3"), std::string::npos);
  EXPECT_NE(failed.status().message().find("no cgroup for you"), std::string::npos);
  std::string silent = script("shim-silent", "exit 0");
  auto none = start_shim({paths_, silent, "ns", "c", bundle}, "", std::chrono::seconds(10));
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.status().message().find("printed no address"), std::string::npos);

  // A delete that reports nothing leaves the fallback exit.
  runtime::Exit fallback{42, 255, Timestamp{}};
  auto exit = delete_shim({paths_, failing, "ns", "c", bundle}, fallback);
  EXPECT_EQ(exit.pid, 42u);
  EXPECT_EQ(exit.status, 255u);
}

TEST_F(RuntimeV2Test, AShimThatFailsToStartLeavesNothing) {
  std::string failing = script("containerd-shim-broken-v1", "echo broken >&2; exit 1");
  Config c;
  auto m = ShimManager::create(c, paths_, nullptr);
  ASSERT_TRUE(m.ok());
  runtime::CreateRequest r;
  r.ns = "default";
  r.id = "c1";
  r.runtime = "io.containerd.broken.v1";
  r.spec = "{}";
  for (int attempt = 0; attempt < 2; ++attempt) {  // the id is not left reserved
    auto t = (*m)->create(r);
    ASSERT_FALSE(t.ok());
    EXPECT_NE(t.status().message().find("broken"), std::string::npos) << t.status().message();
    EXPECT_FALSE(fs::exists(state_ + "/default/c1"));
    EXPECT_FALSE(fs::exists(root_ + "/default/c1"));
    EXPECT_EQ((*m)->get("default", "c1").status().code(), Code::kNotFound);
  }
  r.id = "../escape";
  EXPECT_EQ((*m)->create(r).status().code(), Code::kInvalidArgument);
  r.id = "c2";
  r.ns = "bad/ns";
  EXPECT_FALSE((*m)->create(r).ok());
  EXPECT_TRUE((*m)->list("default").empty());
  EXPECT_TRUE((*m)->close().ok());
}

TEST_F(RuntimeV2Test, RestartCleansBundlesWithoutAShim) {
  Bundles b(root_, state_);
  ASSERT_TRUE(b.create("ns", "noshim", "{}").ok());  // no address, no shim-binary-path
  auto m = ShimManager::create(Config{}, paths_, nullptr);
  ASSERT_TRUE(m.ok());
  EXPECT_FALSE(fs::exists(b.dir("ns", "noshim")));
  EXPECT_TRUE((*m)->list("ns").empty());
}

}  // namespace
}  // namespace berth::plugins::runtime_v2
