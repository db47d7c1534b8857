// The snapshotter conformance suite (containerd's semantics, checked through real mounts).
// Every test runs against overlayfs, native and a proxy; each cleans up its mounts, processes and
// directories even when it fails.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "core/copy.h"
#include "core/fs.h"
#include "core/mount.h"
#include "snapshotters/native/native.h"
#include "snapshotters/overlayfs/overlay.h"
#include "snapshotters/proxy/client.h"

namespace berth::snapshotters {
namespace {

namespace fs = std::filesystem;
using snapshots::Kind;
const RequestContext kCtx{};

// Opens one kind of snapshotter on a root directory; reopen() simulates a crash and restart.
class Backend {
 public:
  virtual ~Backend() = default;
  virtual Result<std::shared_ptr<snapshots::Snapshotter>> open(const std::string& root) = 0;
  // Kills the serving process (if any) without warning.
  virtual void crash() {}
};

class OverlayBackend : public Backend {
 public:
  Result<std::shared_ptr<snapshots::Snapshotter>> open(const std::string& root) override {
    BERTH_TRY(auto s, OverlaySnapshotter::open(root));
    return std::shared_ptr<snapshots::Snapshotter>(s);
  }
};

class NativeBackend : public Backend {
 public:
  Result<std::shared_ptr<snapshots::Snapshotter>> open(const std::string& root) override {
    BERTH_TRY(auto s, NativeSnapshotter::open(root));
    return std::shared_ptr<snapshots::Snapshotter>(s);
  }
};

// The native snapshotter in its own process (berth-test-snapshotter), reached over gRPC.
class ProxyBackend : public Backend {
 public:
  ~ProxyBackend() override { stop(SIGTERM); }
  Result<std::shared_ptr<snapshots::Snapshotter>> open(const std::string& root) override {
    stop(SIGTERM);
    std::string sock = root + ".sock";
    ::unlink(sock.c_str());  // a killed server leaves its socket; wait for the new one
    pid_ = ::fork();
    if (pid_ == 0) {
      ::execl(BERTH_TEST_SNAPSHOTTER, BERTH_TEST_SNAPSHOTTER, "--root", root.c_str(), "--address",
              sock.c_str(), nullptr);
      ::_exit(127);
    }
    for (int i = 0; i < 400; ++i) {
      // Bound is not yet listening: wait until a connection is accepted (a busy machine shows
      // the gap).
      if (core::socket_accepts(sock)) {
        return std::shared_ptr<snapshots::Snapshotter>(
            std::make_shared<ProxySnapshotter>("proxy", sock));
      }
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return internal_error("test snapshotter exited before serving");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return internal_error("test snapshotter did not serve \"{}\"", sock);
  }
  void crash() override { stop(SIGKILL); }

 private:
  void stop(int sig) {
    if (pid_ <= 0) return;
    ::kill(pid_, sig);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
  }
  pid_t pid_ = -1;
};

std::unique_ptr<Backend> make_backend(const std::string& name) {
  if (name == "overlayfs") return std::make_unique<OverlayBackend>();
  if (name == "native") return std::make_unique<NativeBackend>();
  return std::make_unique<ProxyBackend>();
}

void write(const std::string& path, const std::string& content) { std::ofstream(path) << content; }
std::string read(const std::string& path) {
  auto r = core::read_file(path);
  return r.ok() ? *r : std::string("<missing>");
}

class SnapshotterConformance : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "mounts need root";
    auto d = core::TempDir::create("berth-conf-");
    ASSERT_TRUE(d.ok());
    dir_.emplace(std::move(d).value());
    backend_ = make_backend(GetParam());
    auto s = backend_->open(root());
    if (!s.ok() && is_skip(s.status())) GTEST_SKIP() << s.status().message();
    ASSERT_TRUE(s.ok()) << s.status().message();
    sn_ = *s;
  }
  void TearDown() override {
    for (auto it = mounted_.rbegin(); it != mounted_.rend(); ++it)
      core::unmount_all(*it, true).ignore();
    sn_.reset();
    backend_.reset();
  }
  std::string root() const { return dir_->path() + "/root"; }

  // Mounts the snapshot at a fresh directory and returns it; unmounted by unmount() or TearDown.
  std::string mount(const std::string& key) {
    auto m = sn_->mounts(kCtx, key);
    EXPECT_TRUE(m.ok()) << m.status().message();
    if (!m.ok()) return "";
    std::string target = dir_->path() + "/mnt-" + std::to_string(mounted_.size());
    fs::create_directories(target);
    Status st = core::mount_all(*m, target);
    EXPECT_TRUE(st.ok()) << st.message();
    if (st.ok()) mounted_.push_back(target);
    return target;
  }
  void unmount(const std::string& target) {
    ASSERT_TRUE(core::unmount_all(target).ok());
    mounted_.erase(std::remove(mounted_.begin(), mounted_.end(), target), mounted_.end());
  }
  // prepare key on parent, run fill on the mounted tree, commit as name.
  void layer(const std::string& name, const std::string& parent,
             const std::function<void(const std::string&)>& fill) {
    std::string key = name + "-active";
    auto m = sn_->prepare(kCtx, key, parent, {});
    ASSERT_TRUE(m.ok()) << m.status().message();
    std::string t = mount(key);
    fill(t);
    unmount(t);
    ASSERT_TRUE(sn_->commit(kCtx, name, key, {}).ok());
  }

  std::optional<core::TempDir> dir_;
  std::unique_ptr<Backend> backend_;
  std::shared_ptr<snapshots::Snapshotter> sn_;
  std::vector<std::string> mounted_;
};

TEST_P(SnapshotterConformance, LayersFilesAndWhiteoutsThroughRealMounts) {
  layer("A", "", [](const std::string& t) {
    write(t + "/file1", "one");
    fs::create_directories(t + "/dir/sub");
    write(t + "/dir/sub/x", "x");
  });
  layer("B", "A", [](const std::string& t) {
    EXPECT_EQ(read(t + "/file1"), "one");
    EXPECT_EQ(read(t + "/dir/sub/x"), "x");
    write(t + "/file2", "two");
    fs::remove(t + "/file1");
    fs::remove_all(t + "/dir");
  });
  ASSERT_TRUE(sn_->view(kCtx, "v", "B", {}).ok());
  std::string v = mount("v");
  EXPECT_EQ(read(v + "/file2"), "two");
  EXPECT_FALSE(fs::exists(v + "/file1"));
  EXPECT_FALSE(fs::exists(v + "/dir"));
  std::ofstream f(v + "/nope");
  EXPECT_FALSE(f.good()) << "a view must be read-only";
  unmount(v);
  // A fresh child of A still sees A's files: layers are independent.
  ASSERT_TRUE(sn_->prepare(kCtx, "c", "A", {}).ok());
  std::string c = mount("c");
  EXPECT_EQ(read(c + "/file1"), "one");
  EXPECT_FALSE(fs::exists(c + "/file2"));
  unmount(c);
}

TEST_P(SnapshotterConformance, StatReportsKindsAndParents) {
  layer("base", "", [](const std::string&) {});
  ASSERT_TRUE(sn_->prepare(kCtx, "act", "base", {}).ok());
  ASSERT_TRUE(sn_->view(kCtx, "vw", "base", {}).ok());
  auto a = sn_->stat(kCtx, "act");
  auto v = sn_->stat(kCtx, "vw");
  auto b = sn_->stat(kCtx, "base");
  ASSERT_TRUE(a.ok() && v.ok() && b.ok());
  EXPECT_EQ(a->kind, Kind::kActive);
  EXPECT_EQ(a->parent, "base");
  EXPECT_EQ(v->kind, Kind::kView);
  EXPECT_EQ(b->kind, Kind::kCommitted);
  EXPECT_EQ(b->parent, "");
  EXPECT_EQ(sn_->stat(kCtx, "ghost").status().code(), Code::kNotFound);
}

TEST_P(SnapshotterConformance, OnlyCommittedSnapshotsCanBeParents) {
  ASSERT_TRUE(sn_->prepare(kCtx, "active", "", {}).ok());
  EXPECT_EQ(sn_->prepare(kCtx, "x", "active", {}).status().code(), Code::kFailedPrecondition);
  EXPECT_EQ(sn_->prepare(kCtx, "y", "missing", {}).status().code(), Code::kNotFound);
  ASSERT_TRUE(sn_->view(kCtx, "view", "", {}).ok());
  EXPECT_EQ(sn_->commit(kCtx, "from-view", "view", {}).code(), Code::kFailedPrecondition);
}

TEST_P(SnapshotterConformance, KeysAndNamesShareOneSpace) {
  ASSERT_TRUE(sn_->prepare(kCtx, "k", "", {}).ok());
  ASSERT_TRUE(sn_->commit(kCtx, "n", "k", {}).ok());
  EXPECT_EQ(sn_->prepare(kCtx, "n", "", {}).status().code(), Code::kAlreadyExists);
  ASSERT_TRUE(sn_->prepare(kCtx, "k", "", {}).ok());  // the key is free again after commit
  EXPECT_EQ(sn_->commit(kCtx, "n", "k", {}).code(), Code::kAlreadyExists);
  EXPECT_EQ(sn_->commit(kCtx, "k", "k", {}).code(), Code::kAlreadyExists);
  EXPECT_EQ(sn_->stat(kCtx, "k")->kind, Kind::kActive);  // a failed commit changes nothing
}

TEST_P(SnapshotterConformance, RemoveRefusesSnapshotsWithChildren) {
  layer("p", "", [](const std::string&) {});
  ASSERT_TRUE(sn_->prepare(kCtx, "child", "p", {}).ok());
  EXPECT_EQ(sn_->remove(kCtx, "p").code(), Code::kFailedPrecondition);
  ASSERT_TRUE(sn_->remove(kCtx, "child").ok());
  ASSERT_TRUE(sn_->remove(kCtx, "p").ok());
  EXPECT_EQ(sn_->remove(kCtx, "p").code(), Code::kNotFound);
}

TEST_P(SnapshotterConformance, LabelsAndWalkFilters) {
  layer("l1", "", [](const std::string&) {});
  ASSERT_TRUE(sn_->prepare(kCtx, "l2", "l1", {{"team", "a"}}).ok());
  snapshots::Info upd;
  upd.name = "l2";
  upd.labels = {{"team", "b"}, {"extra", "1"}};
  auto u = sn_->update(kCtx, upd, {"labels.team", "labels.extra"});
  ASSERT_TRUE(u.ok()) << u.status().message();
  EXPECT_EQ(u->labels.at("team"), "b");
  auto names = [&](std::vector<std::string> filters) {
    std::vector<std::string> out;
    EXPECT_TRUE(sn_->walk(kCtx, filters,
                          [&](const snapshots::Info& i) {
                            out.push_back(i.name);
                            return Status();
                          })
                    .ok());
    std::sort(out.begin(), out.end());
    return out;
  };
  EXPECT_EQ(names({}), (std::vector<std::string>{"l1", "l2"}));
  EXPECT_EQ(names({"kind==Committed"}), (std::vector<std::string>{"l1"}));
  EXPECT_EQ(names({"parent==l1"}), (std::vector<std::string>{"l2"}));
  EXPECT_EQ(names({"labels.team==b"}), (std::vector<std::string>{"l2"}));
  EXPECT_EQ(names({"labels.team==a"}), (std::vector<std::string>{}));
}

TEST_P(SnapshotterConformance, UsageIsMeasuredAtCommit) {
  layer("big", "", [](const std::string& t) { write(t + "/blob", std::string(1 << 20, 'x')); });
  auto u = sn_->usage(kCtx, "big");
  ASSERT_TRUE(u.ok()) << u.status().message();
  EXPECT_GE(u->size, 1 << 20);
  EXPECT_GE(u->inodes, 2);
}

TEST_P(SnapshotterConformance, FiveHundredLayerChainMounts) {
  const int kLayers = 500;
  std::string parent;
  for (int i = 0; i < kLayers; ++i) {
    std::string key = "l" + std::to_string(i) + "-a";
    auto m = sn_->prepare(kCtx, key, parent, {});
    ASSERT_TRUE(m.ok()) << i << ": " << m.status().message();
    // Write straight into the backing directory when the mount is a plain bind (cheap), else mount.
    std::string t = mount(key);
    write(t + "/f" + std::to_string(i), std::to_string(i));
    unmount(t);
    std::string name = "l" + std::to_string(i);
    ASSERT_TRUE(sn_->commit(kCtx, name, key, {}).ok());
    parent = name;
  }
  ASSERT_TRUE(sn_->prepare(kCtx, "top", parent, {}).ok());
  std::string top = mount("top");
  int files = 0;
  for (const auto& e : fs::directory_iterator(top)) files += e.path().filename().string()[0] == 'f';
  EXPECT_EQ(files, kLayers);
  EXPECT_EQ(read(top + "/f0"), "0");
  EXPECT_EQ(read(top + "/f499"), "499");
  unmount(top);
}

TEST_P(SnapshotterConformance, ConcurrentPreparesOnOneParent) {
  layer("shared", "", [](const std::string& t) { write(t + "/s", "s"); });
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int i = 0; i < 16; ++i) {
    threads.emplace_back([&, i] {
      if (sn_->prepare(kCtx, "c" + std::to_string(i), "shared", {}).ok()) ++ok;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 16);
  // Racing on one key: exactly one wins.
  threads.clear();
  ok = 0;
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&] {
      if (sn_->prepare(kCtx, "same", "shared", {}).ok()) ++ok;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 1);
  std::string a = mount("c0"), b = mount("c1");
  write(a + "/only-a", "a");
  EXPECT_FALSE(fs::exists(b + "/only-a"));
  EXPECT_EQ(read(b + "/s"), "s");
}

TEST_P(SnapshotterConformance, CrashDebrisIsCleanedAtTheNextStart) {
  // A parent big enough that copying it (native, proxy) takes a while.
  layer("keep", "", [](const std::string& t) {
    for (int i = 0; i < 3000; ++i) write(t + "/k" + std::to_string(i), "k");
  });
  // Kill the snapshotter in the middle of a prepare (the proxy's process; the in-process
  // snapshotters finish it), then add the debris a crash between steps can leave.
  std::thread preparing([&] { sn_->prepare(kCtx, "interrupted", "keep", {}).status().ignore(); });
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  backend_->crash();
  preparing.join();
  fs::create_directories(root() + "/snapshots/999999/fs/partial");
  write(root() + "/snapshots/999999/fs/partial/x", "x");
  sn_.reset();
  auto again = backend_->open(root());
  ASSERT_TRUE(again.ok()) << again.status().message();
  sn_ = *again;
  // Every directory left is a live snapshot's.
  std::size_t live = 0, dirs = 0;
  ASSERT_TRUE(sn_->walk(kCtx, {},
                        [&](const snapshots::Info&) {
                          ++live;
                          return Status();
                        })
                  .ok());
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(root() + "/snapshots")) ++dirs;
  EXPECT_EQ(dirs, live);
  EXPECT_FALSE(fs::exists(root() + "/snapshots/999999"));
  sn_->remove(kCtx, "interrupted").ignore();
  ASSERT_TRUE(sn_->prepare(kCtx, "after", "keep", {}).ok());
  std::string t = mount("after");
  EXPECT_EQ(read(t + "/k0"), "k");
}

TEST_P(SnapshotterConformance, RemovedSnapshotsAreReclaimedByCleanup) {
  ASSERT_TRUE(sn_->prepare(kCtx, "tmp", "", {}).ok());
  std::size_t before = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(root() + "/snapshots")) ++before;
  ASSERT_TRUE(sn_->remove(kCtx, "tmp").ok());
  ASSERT_TRUE(sn_->cleanup(kCtx).ok());
  std::size_t after = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(root() + "/snapshots")) ++after;
  EXPECT_EQ(after + 1, before);
}

INSTANTIATE_TEST_SUITE_P(All, SnapshotterConformance,
                         ::testing::Values("overlayfs", "native", "proxy"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace berth::snapshotters
