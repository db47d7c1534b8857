#include "core/plugin_registry.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <stdexcept>

#include "core/fs.h"

namespace berth::core {
namespace {

// Records the order of init and close calls.
struct Recorder {
  std::vector<std::string> events;
};

class Probe : public Plugin {
 public:
  Probe(Recorder& r, std::string name) : r_(r), name_(std::move(name)) {}
  Status close() override {
    r_.events.push_back("close " + name_);
    return Status();
  }

 private:
  Recorder& r_;
  std::string name_;
};

Registration reg(Recorder& rec, std::string type, std::string id,
                 std::vector<std::string> requires_types = {}) {
  Registration r;
  r.type = std::move(type);
  r.id = id;
  r.requires_types = std::move(requires_types);
  r.init = [&rec, id](InitContext&) -> Result<std::shared_ptr<Plugin>> {
    rec.events.push_back("init " + id);
    return std::shared_ptr<Plugin>(std::make_shared<Probe>(rec, id));
  };
  return r;
}

class RegistryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto d = TempDir::create("berth-registry-");
    ASSERT_TRUE(d.ok());
    dir_.emplace(std::move(d).value());
  }
  PluginRegistry::Options options() {
    PluginRegistry::Options o;
    o.root = dir_->path() + "/root";
    o.state = dir_->path() + "/state";
    return o;
  }
  std::optional<TempDir> dir_;
  Recorder rec_;
};

TEST_F(RegistryTest, InitsInDependencyOrderAndClosesInReverse) {
  PluginRegistry r(options());
  ASSERT_TRUE(r.add(reg(rec_, "t.grpc.v1", "svc", {"t.meta.v1"}), "a.so").ok());
  ASSERT_TRUE(r.add(reg(rec_, "t.meta.v1", "db", {"t.content.v1"}), "b.so").ok());
  ASSERT_TRUE(r.add(reg(rec_, "t.content.v1", "store"), "c.so").ok());
  ASSERT_TRUE(r.init_all().ok());
  r.close_all();
  EXPECT_EQ(rec_.events, (std::vector<std::string>{"init store", "init db", "init svc", "close svc",
                                                   "close db", "close store"}));
}

TEST_F(RegistryTest, CreatesPerPluginRootAndStateDirs) {
  PluginRegistry r(options());
  std::string seen_root;
  Registration x = reg(rec_, "t.a.v1", "x");
  x.init = [&](InitContext& ic) -> Result<std::shared_ptr<Plugin>> {
    seen_root = ic.root();
    return std::shared_ptr<Plugin>(std::make_shared<Probe>(rec_, "x"));
  };
  ASSERT_TRUE(r.add(std::move(x), "x.so").ok());
  ASSERT_TRUE(r.init_all().ok());
  EXPECT_EQ(seen_root, options().root + "/t.a.v1.x");
  EXPECT_TRUE(std::filesystem::is_directory(options().state + "/t.a.v1.x"));
}

TEST_F(RegistryTest, CycleIsReportedWithItsPath) {
  PluginRegistry r(options());
  ASSERT_TRUE(r.add(reg(rec_, "t.a.v1", "a", {"t.b.v1"}), "a.so").ok());
  ASSERT_TRUE(r.add(reg(rec_, "t.b.v1", "b", {"t.a.v1"}), "b.so").ok());
  auto order = r.init_order();
  ASSERT_FALSE(order.ok());
  EXPECT_NE(order.status().message().find("cycle: t.a.v1.a -> t.b.v1.b -> t.a.v1.a"),
            std::string::npos)
      << order.status().message();
  EXPECT_FALSE(r.init_all().ok());
  EXPECT_TRUE(rec_.events.empty());
}

TEST_F(RegistryTest, DuplicateUriIsRefusedNamingBothModules) {
  PluginRegistry r(options());
  ASSERT_TRUE(r.add(reg(rec_, "t.a.v1", "x"), "first.so").ok());
  Status st = r.add(reg(rec_, "t.a.v1", "x"), "second.so");
  EXPECT_EQ(st.code(), Code::kAlreadyExists);
  EXPECT_NE(st.message().find("second.so"), std::string::npos);
  EXPECT_NE(st.message().find("first.so"), std::string::npos);
}

TEST_F(RegistryTest, SkipErrorAndThrowAreRecordedNotFatal) {
  PluginRegistry r(options());
  Registration skipper = reg(rec_, "t.snap.v1", "zfs");
  skipper.init = [](InitContext&) -> Result<std::shared_ptr<Plugin>> {
    return skip("zfs is not available");
  };
  Registration failer = reg(rec_, "t.snap.v1", "devmapper");
  failer.init = [](InitContext&) -> Result<std::shared_ptr<Plugin>> {
    return failed_precondition("devmapper not configured");
  };
  // Only the typed mark skips: an error that merely reads like one (a message from elsewhere)
  // is an error; a skip passed up through with_context stays a skip.
  Registration lookalike = reg(rec_, "t.snap.v1", "btrfs");
  lookalike.init = [](InitContext&) -> Result<std::shared_ptr<Plugin>> {
    return Status(Code::kUnimplemented, "skip plugin: said a remote error");
  };
  Registration wrapped = reg(rec_, "t.snap.v1", "aufs");
  wrapped.init = [](InitContext&) -> Result<std::shared_ptr<Plugin>> {
    return skip("no aufs").with_context("probe");
  };
  ASSERT_TRUE(r.add(std::move(lookalike), "btrfs.so").ok());
  ASSERT_TRUE(r.add(std::move(wrapped), "aufs.so").ok());
  Registration thrower = reg(rec_, "t.snap.v1", "boom");
  thrower.init = [](InitContext&) -> Result<std::shared_ptr<Plugin>> {
    throw std::runtime_error("kaboom");
  };
  ASSERT_TRUE(r.add(std::move(skipper), "zfs.so").ok());
  ASSERT_TRUE(r.add(std::move(failer), "dm.so").ok());
  ASSERT_TRUE(r.add(std::move(thrower), "boom.so").ok());
  ASSERT_TRUE(r.add(reg(rec_, "t.snap.v1", "native"), "native.so").ok());
  ASSERT_TRUE(r.init_all().ok());
  std::map<std::string, PluginInfo> by_id;
  for (auto& p : r.list()) by_id[p.id] = p;
  EXPECT_EQ(by_id["zfs"].status, PluginStatus::kSkipped);
  EXPECT_EQ(by_id["zfs"].error.message().rfind("skip plugin: ", 0), 0u);  // what ctr looks for
  EXPECT_EQ(by_id["btrfs"].status, PluginStatus::kError);
  EXPECT_EQ(by_id["aufs"].status, PluginStatus::kSkipped);
  EXPECT_EQ(by_id["devmapper"].status, PluginStatus::kError);
  EXPECT_EQ(by_id["boom"].status, PluginStatus::kError);
  EXPECT_NE(by_id["boom"].error.message().find("kaboom"), std::string::npos);
  EXPECT_EQ(by_id["native"].status, PluginStatus::kOk);
  EXPECT_EQ(by_id["boom"].source, "boom.so");
}

TEST_F(RegistryTest, RequiredPluginFailureIsFatal) {
  auto o = options();
  o.required = {"t.snap.v1.devmapper"};
  PluginRegistry r(o);
  Registration failer = reg(rec_, "t.snap.v1", "devmapper");
  failer.init = [](InitContext&) -> Result<std::shared_ptr<Plugin>> {
    return failed_precondition("no pool");
  };
  ASSERT_TRUE(r.add(std::move(failer), "dm.so").ok());
  Status st = r.init_all();
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("required plugin t.snap.v1.devmapper"), std::string::npos);
  EXPECT_NE(st.message().find("no pool"), std::string::npos);
}

TEST_F(RegistryTest, RequiredButMissingIsFatal) {
  auto o = options();
  o.required = {"t.x.v1.nothere"};
  PluginRegistry r(o);
  Status st = r.init_all();
  EXPECT_NE(st.message().find("required plugin t.x.v1.nothere is not loaded"), std::string::npos);
}

TEST_F(RegistryTest, DisabledPluginsAreNotInitialised) {
  auto o = options();
  o.disabled = {"t.a.v1.off"};
  PluginRegistry r(o);
  ASSERT_TRUE(r.add(reg(rec_, "t.a.v1", "off"), "off.so").ok());
  ASSERT_TRUE(r.init_all().ok());
  EXPECT_TRUE(rec_.events.empty());
  EXPECT_EQ(r.list().at(0).status, PluginStatus::kSkipped);
}

TEST_F(RegistryTest, DependentSeesDependencyError) {
  PluginRegistry r(options());
  Registration failer = reg(rec_, "t.meta.v1", "db");
  failer.init = [](InitContext&) -> Result<std::shared_ptr<Plugin>> {
    return internal_error("disk on fire");
  };
  Registration user = reg(rec_, "t.grpc.v1", "svc", {"t.meta.v1"});
  Status seen;
  user.init = [&](InitContext& ic) -> Result<std::shared_ptr<Plugin>> {
    auto dep = ic.get("t.meta.v1");
    seen = dep.status();
    return dep.status();
  };
  ASSERT_TRUE(r.add(std::move(user), "svc.so").ok());
  ASSERT_TRUE(r.add(std::move(failer), "db.so").ok());
  ASSERT_TRUE(r.init_all().ok());
  EXPECT_NE(seen.message().find("disk on fire"), std::string::npos);
}

TEST_F(RegistryTest, ConfigDecodedOverDefaultsAndUnknownKeysFail) {
  struct Cfg {
    std::string greeting = "hello";
    std::int64_t n = 1;
  };
  auto make = [&] {
    Registration r = reg(rec_, "t.a.v1", "x");
    r.config = [](ConfigReader& rd) -> Result<std::shared_ptr<const void>> {
      Cfg c;
      BERTH_RETURN_IF_ERROR(rd.read("greeting", c.greeting));
      BERTH_RETURN_IF_ERROR(rd.read("n", c.n));
      if (c.n < 0) return rd.invalid("n", "must not be negative");
      return config_value(c);
    };
    return r;
  };
  {
    auto o = options();
    o.configs["t.a.v1.x"] = toml::parse("n = 7");
    PluginRegistry r(o);
    ASSERT_TRUE(r.add(make(), "x.so").ok());
    ASSERT_TRUE(r.decode_configs().ok());
  }
  {
    auto o = options();
    o.configs["t.a.v1.x"] = toml::parse("n = 7\ngreting = \"typo\"");
    o.config_source = "/etc/berth/config.toml";
    PluginRegistry r(o);
    ASSERT_TRUE(r.add(make(), "x.so").ok());
    Status st = r.decode_configs();
    ASSERT_FALSE(st.ok());
    EXPECT_NE(st.message().find("greting"), std::string::npos);
    EXPECT_NE(st.message().find("/etc/berth/config.toml"), std::string::npos);
  }
  {
    auto o = options();
    o.configs["t.a.v1.x"] = toml::parse("n = -1");
    PluginRegistry r(o);
    ASSERT_TRUE(r.add(make(), "x.so").ok());
    Status st = r.decode_configs();
    EXPECT_NE(st.message().find("must not be negative"), std::string::npos);
  }
}

TEST_F(RegistryTest, ConfigReachesInit) {
  struct Cfg {
    std::string greeting = "hello";
  };
  auto o = options();
  o.configs["t.a.v1.x"] = toml::parse("greeting = \"hi\"");
  PluginRegistry r(o);
  Registration x = reg(rec_, "t.a.v1", "x");
  x.config = [](ConfigReader& rd) -> Result<std::shared_ptr<const void>> {
    Cfg c;
    BERTH_RETURN_IF_ERROR(rd.read("greeting", c.greeting));
    return config_value(c);
  };
  std::string seen;
  x.init = [&](InitContext& ic) -> Result<std::shared_ptr<Plugin>> {
    seen = ic.config<Cfg>().greeting;
    ic.exports()["greeting"] = seen;
    return std::shared_ptr<Plugin>(std::make_shared<Probe>(rec_, "x"));
  };
  ASSERT_TRUE(r.add(std::move(x), "x.so").ok());
  ASSERT_TRUE(r.decode_configs().ok());
  ASSERT_TRUE(r.init_all().ok());
  EXPECT_EQ(seen, "hi");
  EXPECT_EQ(r.list().at(0).exports.at("greeting"), "hi");
}

}  // namespace
}  // namespace berth::core
