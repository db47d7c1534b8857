// OCI runtime behaviours the conformance tests exercise: rootfs propagation, capabilities the
// host cannot grant, a delete right after a kill, and hook semantics (which failures stop the
// create, which are warnings, the state each hook receives).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <sstream>
#include <thread>
#include <tuple>

#include "tests/runtime/runtime_fixture.h"

namespace berth::e2e {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using ::testing::HasSubstr;

// The optional fields ("shared:N", "master:N") of the mount at "/" in a mountinfo text.
std::string root_propagation(const std::string& mountinfo) {
  std::istringstream in(mountinfo);
  for (std::string line; std::getline(in, line);) {
    std::istringstream f(line);
    std::string id, parent, dev, root, point, opts, field, out;
    f >> id >> parent >> dev >> root >> point >> opts;
    if (point != "/") continue;
    out.clear();
    while (f >> field && field != "-") out += field + " ";
    return out.empty() ? "private" : out;
  }
  return "<no root mount>";
}

TEST_F(RuntimeTest, RootfsPropagationIsAppliedAfterThePivot) {
  // A slave needs a shared master: where the host's mounts are private, "slave" is private too.
  std::string host = root_propagation(slurp("/proc/self/mountinfo"));
  std::string slave = host.find("shared:") != std::string::npos ? "master:" : "private";
  for (const auto& [prop, want] :
       std::vector<std::pair<std::string, std::string>>{{"shared", "shared:"},
                                                        {"rshared", "shared:"},
                                                        {"slave", slave},
                                                        {"rslave", slave},
                                                        {"private", "private"},
                                                        {"rprivate", "private"}}) {
    SCOPED_TRACE(prop);
    spec_["linux"]["rootfsPropagation"] = prop;
    auto r = sh("cat /proc/self/mountinfo");
    ASSERT_EQ(r.exit_code, 0) << diag(r);
    EXPECT_THAT(root_propagation(r.out), HasSubstr(want)) << r.out;
  }
  spec_["linux"]["rootfsPropagation"] = "shared";
  spec_["process"]["args"] = {"true"};
  write_spec();
  auto moved = runtime({"run", "--no-pivot", "--bundle", bundle_, id_});
  EXPECT_EQ(moved.exit_code, 0) << diag(moved);
}

// This host's bounding set may lack capabilities (CAP_SYS_RESOURCE here); the test takes one
// away from the runtime's own bounding set with setpriv to be sure.
TEST_F(RuntimeTest, CapabilitiesTheHostCannotGrantFailCreateClearly) {
  spec_["process"]["capabilities"]["bounding"].push_back("CAP_WAKE_ALARM");
  spec_["process"]["capabilities"]["permitted"].push_back("CAP_WAKE_ALARM");
  spec_["process"]["args"] = {"true"};
  write_spec();
  auto r = run({"setpriv", "--bounding-set", "-wake_alarm", "--", bin("berth-runtime"), "--root",
                dir_->path() + "/state", "run", "--bundle", bundle_, id_});
  EXPECT_NE(r.exit_code, 0) << diag(r);
  EXPECT_THAT(r.err, HasSubstr("process.capabilities.bounding: CAP_WAKE_ALARM is not in this "
                               "host's capability bounding set"));
  std::string state = dir_->path() + "/state";
  EXPECT_TRUE(!fs::exists(state) || fs::is_empty(state)) << "a failed create leaves nothing";
  // With the capability there, the same container runs.
  auto ok = runtime({"run", "--bundle", bundle_, id_});
  EXPECT_EQ(ok.exit_code, 0) << diag(ok);
}

// An LSM label the host cannot apply is refused at create, never dropped (AppArmor and SELinux
// are both off on this host kind; where they are on, the label is written to
// /proc/thread-self/attr/*/exec before the exec).
TEST_F(RuntimeTest, LsmLabelsTheHostCannotApplyFailCreate) {
  spec_["process"]["args"] = {"true"};
  for (const auto& [field, value, why] :
       std::vector<std::tuple<std::string, std::string, std::string>>{
           {"apparmorProfile", "berth-test", "AppArmor is not enabled on this host"},
           {"selinuxLabel", "system_u:system_r:container_t:s0", "SELinux is not enabled"}}) {
    SCOPED_TRACE(field);
    bool enabled = ::access(field == "apparmorProfile" ? "/sys/kernel/security/apparmor"
                                                       : "/sys/fs/selinux/enforce",
                            F_OK) == 0;
    if (enabled) continue;  // a host with the LSM: the label would apply
    spec_["process"][field] = value;
    write_spec();
    auto c = create();
    EXPECT_NE(c.exit_code, 0);
    EXPECT_THAT(c.err, HasSubstr("process." + field));
    EXPECT_THAT(c.err, HasSubstr(why));
    spec_["process"].erase(field);
  }
}

TEST_F(RuntimeTest, DeleteRightAfterKillSucceeds) {
  spec_["process"]["args"] = {"sleep", "1000"};
  write_spec();
  for (int i = 0; i < 10; ++i) {
    SCOPED_TRACE(i);
    ASSERT_EQ(create().exit_code, 0);
    ASSERT_EQ(runtime({"start", id_}).exit_code, 0);
    ASSERT_EQ(runtime({"kill", id_, "KILL"}).exit_code, 0);
    auto d = runtime({"delete", id_});
    ASSERT_EQ(d.exit_code, 0) << diag(d);
    while (::waitpid(-1, nullptr, WNOHANG) > 0) {
    }
  }
  // A running container still needs --force.
  ASSERT_EQ(create().exit_code, 0);
  ASSERT_EQ(runtime({"start", id_}).exit_code, 0);
  auto refused = runtime({"delete", id_});
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_THAT(refused.err, HasSubstr("running"));
}

TEST_F(RuntimeTest, HookFailuresAndTheStateEachHookGets) {
  std::string log = dir_->path() + "/hooks.log";
  std::string share = dir_->path() + "/share";
  fs::create_directories(share);
  spec_["mounts"].push_back(
      {{"destination", "/share"}, {"type", "bind"}, {"source", share}, {"options", {"rbind"}}});
  auto hook = [&](const std::string& name, const std::string& file, int exit_code = 0) {
    return json{
        {"path", "/bin/sh"},
        {"args",
         {"sh", "-c",
          "read s; echo \"" + name + " $s\" >> " + file + "; exit " + std::to_string(exit_code)}}};
  };
  spec_["hooks"] = {{"prestart", {hook("prestart", log)}},
                    {"createRuntime", {hook("createRuntime", log)}},
                    {"createContainer", {hook("createContainer", log)}},
                    {"startContainer", {hook("startContainer", "/share/inside.log")}},
                    {"poststart", {hook("poststart", log, 3)}},
                    {"poststop", {hook("poststop", log, 4)}}};
  spec_["process"]["args"] = {"sleep", "1000"};
  write_spec();
  ASSERT_EQ(create().exit_code, 0);
  pid_t pid = nlohmann::json::parse(runtime({"state", id_}).out)["pid"].get<pid_t>();
  auto started = runtime({"start", id_});
  EXPECT_EQ(started.exit_code, 0) << "a failing poststart hook is a warning: " << diag(started);
  EXPECT_THAT(started.err, HasSubstr("warning"));
  ASSERT_EQ(runtime({"kill", id_, "KILL"}).exit_code, 0);
  auto deleted = runtime({"delete", id_});
  EXPECT_EQ(deleted.exit_code, 0) << "a failing poststop hook is a warning: " << diag(deleted);
  EXPECT_TRUE(fs::is_empty(dir_->path() + "/state"));

  std::map<std::string, json> states;
  std::istringstream in(slurp(log) + slurp(share + "/inside.log"));
  for (std::string line; std::getline(in, line);) {
    auto sp = line.find(' ');
    states[line.substr(0, sp)] = json::parse(line.substr(sp + 1), nullptr, false);
  }
  const std::map<std::string, std::string> want = {
      {"prestart", "creating"},      {"createRuntime", "creating"}, {"createContainer", "creating"},
      {"startContainer", "created"}, {"poststart", "running"},      {"poststop", "stopped"}};
  for (const auto& [name, status] : want) {
    SCOPED_TRACE(name);
    ASSERT_TRUE(states.count(name)) << slurp(log);
    EXPECT_EQ(states[name].value("status", ""), status);
    EXPECT_EQ(states[name].value("id", ""), id_);
    if (status != "stopped") EXPECT_EQ(states[name].value("pid", 0), pid);
  }

  // prestart and createRuntime failures stop the create, and leave nothing.
  for (const char* kind : {"prestart", "createRuntime", "createContainer"}) {
    SCOPED_TRACE(kind);
    spec_["hooks"] = {{kind, {hook(kind, log, 1)}}};
    write_spec();
    auto c = create();
    EXPECT_NE(c.exit_code, 0);
    EXPECT_THAT(c.err, HasSubstr(std::string(kind) + " hook /bin/sh exited with status 1"));
    EXPECT_TRUE(fs::is_empty(dir_->path() + "/state"));
  }
}

}  // namespace
}  // namespace berth::e2e
