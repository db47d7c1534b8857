// Cgroup planning without root: what a Resources block becomes on v1, v2 and a hybrid host, seen
// through a recording CgroupFs.
#include "core/oci/cgroups.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cerrno>
#include <fstream>
#include <set>

#include "core/fs.h"
#include "core/oci/cgroup_fs.h"

namespace berth::oci::cgroups {
namespace {

class FakeFs : public CgroupFs {
 public:
  std::map<std::string, std::string> files;  // path -> content
  std::set<std::string> dirs;
  std::vector<std::pair<std::string, std::string>> writes;  // path, value (in order)
  std::set<std::string> refuse;                             // paths whose write fails (EINVAL)

  Status write(const std::string& dir, const std::string& file, const std::string& value) override {
    std::string path = dir + "/" + file;
    if (refuse.count(path)) return from_errno(EINVAL, "write {}", path);
    writes.emplace_back(path, value);
    files[path] = value;
    return Status();
  }
  std::optional<std::string> read(const std::string& path) const override {
    auto it = files.find(path);
    if (it == files.end()) {
      errno = ENOENT;
      return std::nullopt;
    }
    return it->second;
  }
  bool exists(const std::string& path) const override {
    return files.count(path) > 0 || dirs.count(path) > 0;
  }
  Status mkdir(const std::string& dir) override {
    dirs.insert(dir);
    return Status();
  }
  Status mkdir_all(const std::string& dir) override {
    for (std::size_t i = 1; i <= dir.size(); ++i)
      if (i == dir.size() || dir[i] == '/') dirs.insert(dir.substr(0, i));
    return Status();
  }
  int rmdir(const std::string& dir) override { return dirs.erase(dir) ? 0 : ENOENT; }

  std::vector<std::string> written(const std::string& path) const {
    std::vector<std::string> out;
    for (const auto& [p, v] : writes)
      if (p == path) out.push_back(v);
    return out;
  }
  int index_of(const std::string& path) const {
    for (std::size_t i = 0; i < writes.size(); ++i)
      if (writes[i].first == path) return static_cast<int>(i);
    return -1;
  }
};

Layout v1_layout() {
  Layout l;
  for (const char* c :
       {"cpu", "cpuset", "memory", "pids", "blkio", "devices", "freezer", "hugetlb"})
    l.mounts.push_back({std::string("/cg/") + c, false, {c}});
  return l;
}

Layout hybrid_layout() {
  Layout l = v1_layout();
  l.mounts.erase(l.mounts.begin() + 7);  // no v1 hugetlb: it is in the v2 tree, as on this host
  l.mounts.push_back({"/cg/unified", true, {"hugetlb"}});
  return l;
}

TEST(CgroupPlan, V1WritesEachControllersFiles) {
  FakeFs fs;
  auto cg = Cgroup::open(v1_layout(), "/berth/c1", fs);
  ASSERT_TRUE(cg.ok()) << cg.status().message();
  Resources r;
  r.cpu = Cpu{};
  r.cpu->shares = 512;
  r.cpu->quota = 50000;
  r.cpu->period = 100000;
  r.cpu->cpus = "0-1";
  r.pids_limit = 64;
  r.devices.push_back({.allow = false, .access = "rwm"});
  r.devices.push_back({.allow = true, .type = "c", .major = 1, .minor = 3, .access = "rw"});
  ASSERT_TRUE(cg->apply(r).ok());
  EXPECT_EQ(fs.files["/cg/cpu/berth/c1/cpu.shares"], "512");
  EXPECT_EQ(fs.files["/cg/cpu/berth/c1/cpu.cfs_quota_us"], "50000");
  EXPECT_EQ(fs.files["/cg/cpu/berth/c1/cpu.cfs_period_us"], "100000");
  EXPECT_EQ(fs.files["/cg/cpuset/berth/c1/cpuset.cpus"], "0-1");
  EXPECT_EQ(fs.files["/cg/pids/berth/c1/pids.max"], "64");
  EXPECT_EQ(fs.written("/cg/devices/berth/c1/devices.deny"), std::vector<std::string>{"a"});
  EXPECT_EQ(fs.written("/cg/devices/berth/c1/devices.allow"), std::vector<std::string>{"c 1:3 rw"});
  // Nothing lands in a hierarchy that does not own the controller.
  for (const auto& [path, v] : fs.writes) {
    auto ctl = path.substr(4, path.find('/', 4) - 4);
    auto file = path.substr(path.rfind('/') + 1);
    EXPECT_EQ(file.rfind(ctl == "cpu" ? "cpu." : ctl + ".", 0), 0u) << path;
  }
}

TEST(CgroupPlan, V1MemswOrderFollowsTheDirection) {
  for (bool raising : {true, false}) {
    FakeFs fs;
    std::string dir = "/cg/memory/c";
    fs.files[dir + "/memory.memsw.limit_in_bytes"] = "0";
    fs.files[dir + "/memory.limit_in_bytes"] = raising ? "1000" : "9000000";
    auto cg = Cgroup::open(v1_layout(), "/c", fs);
    ASSERT_TRUE(cg.ok());
    Resources r;
    r.memory = Memory{};
    r.memory->limit = 4096 * 1024;
    r.memory->swap = 8192 * 1024;
    ASSERT_TRUE(cg->apply(r).ok());
    int limit = fs.index_of(dir + "/memory.limit_in_bytes");
    int memsw = fs.index_of(dir + "/memory.memsw.limit_in_bytes");
    ASSERT_GE(limit, 0);
    ASSERT_GE(memsw, 0);
    // memsw must never drop below the limit: raise memsw first, lower the limit first.
    EXPECT_EQ(raising, memsw < limit) << (raising ? "raising" : "lowering");
  }
}

TEST(CgroupPlan, V2TranslatesV1Values) {
  FakeFs fs;
  Layout l;
  l.mounts.push_back({"/cg2", true, {"cpu", "memory", "pids", "io", "hugetlb", "cpuset"}});
  auto cg = Cgroup::open(l, "/berth/c2", fs);
  ASSERT_TRUE(cg.ok());
  ASSERT_TRUE(cg->create().ok());
  // Controllers delegated down every level above the leaf.
  EXPECT_FALSE(fs.written("/cg2/cgroup.subtree_control").empty());
  EXPECT_FALSE(fs.written("/cg2/berth/cgroup.subtree_control").empty());
  EXPECT_TRUE(fs.written("/cg2/berth/c2/cgroup.subtree_control").empty());
  EXPECT_TRUE(fs.dirs.count("/cg2/berth/c2"));

  Resources r;
  r.cpu = Cpu{};
  r.cpu->shares = 1024;
  r.cpu->quota = 25000;
  r.memory = Memory{};
  r.memory->limit = 1 << 20;
  r.memory->swap = 3 << 20;
  r.pids_limit = 0;
  r.block_io = BlockIo{};
  r.block_io->throttle_read_bps.push_back({8, 0, 1000});
  r.block_io->throttle_write_iops.push_back({8, 0, 20});
  r.hugepage_limits.push_back({"2MB", 4 << 20});
  r.unified["memory.high"] = "900000";
  ASSERT_TRUE(cg->apply(r).ok());
  const std::string d = "/cg2/berth/c2/";
  EXPECT_EQ(fs.files[d + "cpu.weight"], std::to_string(shares_to_weight(1024)));
  EXPECT_EQ(fs.files[d + "cpu.max"], "25000 100000");
  EXPECT_EQ(fs.files[d + "memory.max"], std::to_string(1 << 20));
  EXPECT_EQ(fs.files[d + "memory.swap.max"], std::to_string(2 << 20));  // v1 memsw minus memory
  EXPECT_EQ(fs.files[d + "pids.max"], "max");
  EXPECT_EQ(fs.files[d + "io.max"], "8:0 rbps=1000 wiops=20");
  EXPECT_EQ(fs.files[d + "hugetlb.2MB.max"], std::to_string(4 << 20));
  EXPECT_EQ(fs.files[d + "memory.high"], "900000");

  Resources rt;
  rt.cpu = Cpu{};
  rt.cpu->realtime_runtime = 100;
  EXPECT_EQ(cg->apply(rt).code(), Code::kUnimplemented);
}

TEST(CgroupPlan, HybridDrivesEachControllerWhereItIsAttached) {
  FakeFs fs;
  auto cg = Cgroup::open(hybrid_layout(), "/k8s/pod", fs);
  ASSERT_TRUE(cg.ok());
  std::vector<std::string> dirs = cg->dirs();
  EXPECT_NE(std::find(dirs.begin(), dirs.end(), "/cg/unified/k8s/pod"), dirs.end());
  Resources r;
  r.hugepage_limits.push_back({"1GB", 1LL << 30});
  r.pids_limit = 10;
  r.unified["cpu.idle"] = "1";
  ASSERT_TRUE(cg->apply(r).ok());
  EXPECT_EQ(fs.files["/cg/unified/k8s/pod/hugetlb.1GB.max"], std::to_string(1LL << 30));
  EXPECT_EQ(fs.files["/cg/pids/k8s/pod/pids.max"], "10");
  EXPECT_FALSE(fs.files.count("/cg/unified/k8s/pod/pids.max"));
  // A v1 freezer exists, so the unified keys (and freezing) stay off the v2 tree.
  EXPECT_FALSE(fs.files.count("/cg/unified/k8s/pod/cpu.idle"));
  ASSERT_TRUE(cg->freeze(true).ok());
  EXPECT_EQ(fs.files["/cg/freezer/k8s/pod/freezer.state"], "FROZEN");
  EXPECT_FALSE(fs.files.count("/cg/unified/k8s/pod/cgroup.freeze"));
}

TEST(CgroupPlan, MissingControllersAreNamed) {
  FakeFs fs;
  Layout l;
  l.mounts.push_back({"/cg/cpu", false, {"cpu"}});
  auto cg = Cgroup::open(l, "/c", fs);
  ASSERT_TRUE(cg.ok());
  Resources r;
  r.pids_limit = 5;
  Status s = cg->apply(r);
  EXPECT_EQ(s.code(), Code::kUnimplemented);
  EXPECT_NE(s.message().find("pids"), std::string::npos);
  Resources u;
  u.unified["memory.high"] = "1";
  EXPECT_NE(cg->apply(u).message().find("cgroup v2"), std::string::npos);
  Resources bad;
  bad.hugepage_limits.push_back({"../x", 1});
  EXPECT_FALSE(Cgroup::open(v1_layout(), "/c", fs)->apply(bad).ok());
  EXPECT_FALSE(Cgroup::open(l, "/", fs).ok());  // the root cgroup is never a container's
}

TEST(CgroupPlan, V1CpusetIsCopiedDownLevelByLevel) {
  FakeFs fs;
  fs.files["/cg/cpuset/cpuset.cpus"] = "0-3";
  fs.files["/cg/cpuset/cpuset.mems"] = "0";
  fs.files["/cg/cpuset/a/cpuset.cpus"] = "";
  fs.files["/cg/cpuset/a/cpuset.mems"] = "";
  fs.files["/cg/cpuset/a/b/cpuset.cpus"] = "";
  fs.files["/cg/cpuset/a/b/cpuset.mems"] = "";
  Layout l;
  l.mounts.push_back({"/cg/cpuset", false, {"cpuset"}});
  auto cg = Cgroup::open(l, "a/b", fs);
  ASSERT_TRUE(cg.ok());
  ASSERT_TRUE(cg->create().ok());
  EXPECT_EQ(fs.files["/cg/cpuset/a/cpuset.cpus"], "0-3");
  EXPECT_EQ(fs.files["/cg/cpuset/a/b/cpuset.cpus"], "0-3");
  EXPECT_EQ(fs.files["/cg/cpuset/a/b/cpuset.mems"], "0");
}

TEST(CgroupPlan, DestroyRefusesACgroupWithProcesses) {
  FakeFs fs;
  Layout l;
  l.mounts.push_back({"/cg/pids", false, {"pids"}});
  auto cg = Cgroup::open(l, "/c", fs);
  ASSERT_TRUE(cg.ok());
  ASSERT_TRUE(cg->create().ok());
  EXPECT_TRUE(cg->destroy().ok());
  EXPECT_FALSE(fs.dirs.count("/cg/pids/c"));
  EXPECT_TRUE(cg->destroy().ok());  // already gone
}

TEST(CgroupProbe, HybridMountinfo) {
  auto dir = core::TempDir::create();
  ASSERT_TRUE(dir.ok());
  std::string mi = dir->path() + "/mountinfo";
  std::ofstream(mi)
      << "24 30 0:21 / /sys rw,nosuid shared:7 - sysfs sysfs rw\n"
         "26 24 0:23 / /sys/fs/cgroup ro shared:9 - tmpfs tmpfs ro,mode=755\n"
         "27 26 0:24 / /sys/fs/cgroup/unified rw shared:10 - cgroup2 cgroup2 rw,nsdelegate\n"
         "28 26 0:25 / /sys/fs/cgroup/systemd rw shared:11 - cgroup cgroup rw,xattr,name=systemd\n"
         "31 26 0:28 / /sys/fs/cgroup/cpu,cpuacct rw shared:14 - cgroup cgroup rw,cpu,cpuacct\n"
         "32 26 0:29 / /sys/fs/cgroup/memory rw shared:15 - cgroup cgroup rw,memory\n"
         "33 26 0:28 / /sys/fs/cgroup/cpu rw shared:14 - cgroup cgroup rw,cpu,cpuacct\n";
  FakeFs fs;
  fs.files["/sys/fs/cgroup/unified/cgroup.controllers"] = "hugetlb";
  auto layout = probe(mi, fs);
  ASSERT_TRUE(layout.ok()) << layout.status().message();
  EXPECT_EQ(layout->describe(), "hybrid");
  EXPECT_FALSE(layout->pure_v2());
  ASSERT_EQ(layout->mounts.size(), 4u);  // the cpu,cpuacct hierarchy counts once
  EXPECT_EQ(layout->mounts[0].controllers, std::set<std::string>{"hugetlb"});
  EXPECT_EQ(layout->mounts[1].controllers, std::set<std::string>{"name=systemd"});
  EXPECT_EQ(layout->mounts[2].controllers, (std::set<std::string>{"cpu", "cpuacct"}));

  std::ofstream(mi) << "24 30 0:21 / /sys rw - sysfs sysfs rw\n";
  EXPECT_EQ(probe(mi, fs).status().code(), Code::kNotFound);
}

TEST(CgroupPlan, SharesToWeight) {
  EXPECT_EQ(shares_to_weight(0), 0u);
  EXPECT_EQ(shares_to_weight(2), 1u);
  EXPECT_EQ(shares_to_weight(262144), 10000u);
  EXPECT_EQ(shares_to_weight(1024), 39u);
}

}  // namespace
}  // namespace berth::oci::cgroups
