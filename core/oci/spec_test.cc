// config.json parsing: what real specs contain is accepted; malformed or invalid fields are
// refused with their path.
#include "core/oci/spec.h"

#include <gtest/gtest.h>
#include <sys/resource.h>

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace berth::oci {
namespace {

TEST(SpecTest, DefaultSpecParses) {
  auto s = parse_spec(default_spec_json(false));
  ASSERT_TRUE(s.ok()) << s.status().message();
  EXPECT_EQ(s->root_path, "rootfs");
  ASSERT_TRUE(s->process);
  EXPECT_EQ(s->process->args, std::vector<std::string>{"sh"});
  EXPECT_EQ(s->process->rlimits.at(0).resource, RLIMIT_NOFILE);
  EXPECT_TRUE(s->linux.find("pid"));
  EXPECT_FALSE(s->linux.find("user"));
  EXPECT_EQ(s->linux.resources->devices.size(), 1u);
  auto rootless = parse_spec(default_spec_json(true));
  ASSERT_TRUE(rootless.ok()) << rootless.status().message();
  EXPECT_EQ(rootless->linux.uid_mappings.size(), 1u);
}

TEST(SpecTest, RuncsOwnDefaultSpecParses) {
  // What `runc spec` writes (runc is installed as a peer).
  if (::access("/usr/sbin/runc", X_OK) != 0 && ::access("/usr/bin/runc", X_OK) != 0)
    GTEST_SKIP() << "runc not installed";
  char dir[] = "/tmp/berth-spec-XXXXXX";
  ASSERT_NE(::mkdtemp(dir), nullptr);
  std::string cmd = std::string("cd ") + dir + " && runc spec && runc spec --rootless --bundle r 2>/dev/null; true";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  std::ifstream in(std::string(dir) + "/config.json");
  std::stringstream ss;
  ss << in.rdbuf();
  std::filesystem::remove_all(dir);
  auto s = parse_spec(ss.str());
  ASSERT_TRUE(s.ok()) << s.status().message();
  EXPECT_FALSE(s->mounts.empty());
  EXPECT_FALSE(s->linux.masked_paths.empty());
  EXPECT_TRUE(s->process->capabilities);
}

std::string with(const std::string& process_extra, const std::string& linux_extra = "") {
  return R"({"ociVersion":"1.0.2","root":{"path":"rootfs"},"process":{"args":["sh"],"cwd":"/")" +
         process_extra + R"(},"linux":{"namespaces":[{"type":"mount"}])" + linux_extra + "}}";
}

void expect_error(const std::string& json, const std::string& fragment) {
  auto s = parse_spec(json);
  ASSERT_FALSE(s.ok()) << json;
  EXPECT_NE(s.status().message().find(fragment), std::string::npos) << s.status().message();
}

TEST(SpecTest, BadFieldsAreNamed) {
  expect_error("not json", "not valid JSON");
  expect_error(R"({"root":{"path":"r"}})", "config.json.ociVersion: is required");
  expect_error(R"({"ociVersion":"2.0.0","root":{"path":"r"}})", "is not 1.x");
  expect_error(with(R"(,"rlimits":[{"type":"RLIMIT_FOO","hard":1,"soft":1}])"),
               "process.rlimits[0].type: unknown rlimit \"RLIMIT_FOO\"");
  expect_error(with(R"(,"rlimits":[{"type":"RLIMIT_NOFILE","hard":1,"soft":2}])"), "soft limit");
  expect_error(with(R"(,"capabilities":{"bounding":["CAP_NOPE"]})"),
               "process.capabilities.bounding[0]: unknown capability \"CAP_NOPE\"");
  expect_error(with(R"(,"user":{"uid":"root"})"), "process.user.uid: must be an integer");
  expect_error(with(R"(,"oomScoreAdj":5000)"), "oomScoreAdj: must be between");
  expect_error(with(R"(,"env":["NOEQUALS"])"), "process.env[0]");
  expect_error(R"({"ociVersion":"1.0.2","root":{"path":"r"},"process":{"args":[],"cwd":"/"}})",
               "process.args: must name the program");
  expect_error(R"({"ociVersion":"1.0.2","root":{"path":"r"},"process":{"args":["a"],"cwd":"rel"}})",
               "process.cwd: must be an absolute path");
  expect_error(with("", R"(,"namespaces":[{"type":"pid"},{"type":"pid"}])"), "listed twice");
  expect_error(with("", R"(,"namespaces":[{"type":"bogus"}])"), "unknown namespace type");
  expect_error(with("", R"(,"namespaces":[{"type":"user"}])"), "needs uidMappings");
  expect_error(with("", R"(,"seccomp":{"defaultAction":"SCMP_ACT_NOPE"})"),
               "linux.seccomp.defaultAction: unknown action");
  expect_error(with("", R"(,"seccomp":{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["x"],"action":"SCMP_ACT_ERRNO","args":[{"index":9,"value":1,"op":"SCMP_CMP_EQ"}]}]})"),
               "linux.seccomp.syscalls[0].args[0].index");
  expect_error(with("", R"(,"resources":{"memory":{"limit":"lots"}})"),
               "linux.resources.memory.limit: must be an integer");
  expect_error(with("", R"(,"resources":{"devices":[{"allow":true,"access":"rwx"}]})"),
               "linux.resources.devices[0].access");
  expect_error(with("", R"(,"cgroupsPath":"/a/../../b")"), "cgroupsPath");
  expect_error(R"({"ociVersion":"1.0.2","root":{"path":"r"},"hostname":"h"})", "uts namespace");
  expect_error(R"({"ociVersion":"1.0.2","root":{"path":"r"},"mounts":[{"destination":"rel"}]})",
               "mounts[0].destination: must be an absolute path");
  expect_error(R"({"ociVersion":"1.0.2","root":{"path":"r"},"hooks":{"prestart":[{"path":"x"}]}})",
               "hooks.prestart[0].path");
}

TEST(SpecTest, UnknownFieldsAreIgnored) {
  auto s = parse_spec(with(R"(,"futureField":{"x":1})", R"(,"intelRdt":{"closID":"x"})"));
  EXPECT_TRUE(s.ok()) << s.status().message();
}

}  // namespace
}  // namespace berth::oci
