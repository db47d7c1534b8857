// Plugin modules end to end: broken modules are reported with their file name and the daemon
// keeps going; an out-of-tree plugin built against the installed SDK is loaded and configured.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "tests/e2e/harness.h"

namespace berth::e2e {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using ::testing::HasSubstr;

// A plugin dir holding every in-tree plugin plus the given extra modules.
std::string make_plugin_dir(const std::string& dir, const std::vector<std::string>& extra) {
  fs::create_directories(dir);
  for (const auto& e : fs::directory_iterator(BERTH_PLUGIN_DIR)) {
    fs::create_symlink(e.path(), dir + "/" + e.path().filename().string());
  }
  for (const auto& x : extra) fs::create_symlink(x, dir + "/" + fs::path(x).filename().string());
  return dir;
}

TEST(PluginModules, BrokenModulesAreReportedAndDaemonGoesOn) {
  auto d = Daemon::create();
  std::string tp = BERTH_TEST_PLUGIN_DIR;
  DaemonOptions o;
  o.plugin_dir = make_plugin_dir(d->dir() + "/plugins",
                                 {tp + "/test-bad-abi.so", tp + "/test-no-entry.so",
                                  tp + "/test-throwing-init.so", tp + "/test-duplicate.so"});
  auto err = d->start(o);
  ASSERT_FALSE(err.has_value()) << *err;
  std::string log = d->log();
  EXPECT_THAT(log, HasSubstr("test-bad-abi.so"));
  EXPECT_THAT(log, HasSubstr("berth-sdk-abi=0 compiler=gcc-1"));
  EXPECT_THAT(log, HasSubstr("rebuild it against this SDK"));
  EXPECT_THAT(log, HasSubstr("test-no-entry.so"));
  EXPECT_THAT(log, HasSubstr("no berth_plugin_abi_key/berth_plugin_register entry point"));
  EXPECT_THAT(log, HasSubstr("test-duplicate.so"));
  EXPECT_THAT(log, HasSubstr("io.containerd.grpc.v1.version"));

  auto p = d->berth({"plugins", "ls", "--format", "json"});
  ASSERT_EQ(p.exit_code, 0) << p.err;
  auto pj = json::parse(p.out);
  bool thrower = false;
  for (const auto& plugin : pj) {
    if (plugin["id"] == "thrower") {
      thrower = true;
      EXPECT_EQ(plugin["status"], "error");
      EXPECT_THAT(plugin["error"].get<std::string>(), HasSubstr("thrown on purpose"));
    }
    if (plugin["id"] == "version") {
      EXPECT_EQ(plugin["status"], "ok");
    }
  }
  EXPECT_TRUE(thrower);
  EXPECT_EQ(d->berth({"version"}).exit_code, 0);
}

TEST(PluginModules, OutOfTreePluginBuiltAgainstInstalledSdk) {
  auto d = Daemon::create();
  std::string prefix = d->dir() + "/sdk";
  auto install = run({BERTH_CMAKE_COMMAND, "--install", BERTH_BUILD_DIR, "--prefix", prefix},
                     std::chrono::minutes(5));
  ASSERT_EQ(install.exit_code, 0) << install.out << install.err;
  ASSERT_TRUE(fs::exists(prefix + "/include/berth/plugin.h"));

  std::string build = d->dir() + "/example-build";
  auto configure =
      run({BERTH_CMAKE_COMMAND, "-S", std::string(BERTH_SOURCE_DIR) + "/tests/sdk/example", "-B",
           build, "-G", "Ninja", "-DCMAKE_PREFIX_PATH=" + prefix},
          std::chrono::minutes(5));
  ASSERT_EQ(configure.exit_code, 0) << configure.out << configure.err;
  auto compile = run({BERTH_CMAKE_COMMAND, "--build", build}, std::chrono::minutes(5));
  ASSERT_EQ(compile.exit_code, 0) << compile.out << compile.err;
  ASSERT_TRUE(fs::exists(build + "/hello.so"));

  DaemonOptions o;
  o.plugin_dir = make_plugin_dir(d->dir() + "/plugins", {build + "/hello.so"});
  o.config = "[plugins.\"io.berth.example.v1.hello\"]\n  greeting = \"hi from outside\"\n";
  auto err = d->start(o);
  ASSERT_FALSE(err.has_value()) << *err;
  auto p = d->berth({"plugins", "ls", "--format", "json", "id==hello"});
  ASSERT_EQ(p.exit_code, 0) << p.err;
  auto pj = json::parse(p.out);
  ASSERT_EQ(pj.size(), 1u) << p.out;
  EXPECT_EQ(pj[0]["status"], "ok");
  EXPECT_EQ(pj[0]["exports"]["greeting"], "hi from outside");
  EXPECT_EQ(pj[0]["requires"][0], "io.containerd.metadata.v1");
  // containerd's ctr sees it too.
  auto c = d->ctr({"plugins", "ls", "type==io.berth.example.v1"});
  EXPECT_THAT(c.out, HasSubstr("hello"));
  d->stop();

  // Its config is validated like any other plugin's.
  o.config = "[plugins.\"io.berth.example.v1.hello\"]\n  greeting = \"\"\n";
  EXPECT_EQ(d->start_expect_exit(o), 1);
  EXPECT_THAT(d->log(), HasSubstr("greeting\": must not be empty"));
}

}  // namespace
}  // namespace berth::e2e
