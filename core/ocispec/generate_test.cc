#include "core/ocispec/generate.h"

#include <gtest/gtest.h>

#include <algorithm>

namespace berth::ocispec {
namespace {

using nlohmann::json;

const char* kConfig = R"({"architecture":"amd64","os":"linux","config":{
  "Entrypoint":["/bin/sh","-c"],"Cmd":["echo hi"],
  "Env":["PATH=/opt/bin:/bin","LANG=C.UTF-8"],"WorkingDir":"/work","User":"1000:1001"}})";

bool has_namespace(const json& spec, const std::string& type) {
  for (const auto& n : spec["linux"]["namespaces"])
    if (n["type"] == type) return true;
  return false;
}

bool has_mount(const json& spec, const std::string& dst) {
  for (const auto& m : spec["mounts"])
    if (m["destination"] == dst) return true;
  return false;
}

TEST(OciSpec, ImageDefaults) {
  auto spec = generate(kConfig, {.ns = "default", .id = "c1"});
  ASSERT_TRUE(spec.ok()) << spec.status().message();
  const json& p = (*spec)["process"];
  EXPECT_EQ(p["args"], json({"/bin/sh", "-c", "echo hi"}));
  EXPECT_EQ(p["env"], json({"PATH=/opt/bin:/bin", "LANG=C.UTF-8"}));
  EXPECT_EQ(p["cwd"], "/work");
  EXPECT_EQ(p["user"]["uid"], 1000);
  EXPECT_EQ(p["user"]["gid"], 1001);
  EXPECT_EQ(p["noNewPrivileges"], true);
  EXPECT_EQ((*spec)["hostname"], "c1");
  EXPECT_EQ((*spec)["linux"]["cgroupsPath"], "/default/c1");
  EXPECT_TRUE(has_namespace(*spec, "network"));
  EXPECT_FALSE(has_mount(*spec, "/etc/resolv.conf"));
  EXPECT_TRUE((*spec)["linux"].contains("maskedPaths"));
}

TEST(OciSpec, OptionsOverrideTheImage) {
  auto spec = generate(kConfig, {.ns = "n",
                                 .id = "c",
                                 .args = {"ls", "-l"},
                                 .env = {"A=1"},
                                 .cwd = "/tmp",
                                 .user = "7",
                                 .tty = true,
                                 .net_host = true,
                                 .read_only = true,
                                 .annotations = {"k=v=w"},
                                 .memory_limit = 1 << 20,
                                 .cpus = 1.5});
  ASSERT_TRUE(spec.ok()) << spec.status().message();
  const json& p = (*spec)["process"];
  EXPECT_EQ(p["args"], json({"/bin/sh", "-c", "ls", "-l"}));  // the entrypoint stays
  EXPECT_EQ(p["env"].back(), "A=1");
  EXPECT_NE(std::find(p["env"].begin(), p["env"].end(), "TERM=xterm"), p["env"].end());
  EXPECT_EQ(p["cwd"], "/tmp");
  EXPECT_EQ(p["user"]["uid"], 7);
  EXPECT_EQ(p["user"]["gid"], 7);
  EXPECT_EQ(p["terminal"], true);
  EXPECT_EQ((*spec)["root"]["readonly"], true);
  EXPECT_FALSE(has_namespace(*spec, "network"));
  EXPECT_TRUE(has_mount(*spec, "/etc/resolv.conf"));
  EXPECT_EQ((*spec)["annotations"]["k"], "v=w");
  EXPECT_EQ((*spec)["linux"]["resources"]["memory"]["limit"], 1 << 20);
  EXPECT_EQ((*spec)["linux"]["resources"]["cpu"]["quota"], 150000);
}

TEST(OciSpec, KubernetesCommandReplacesEntrypointAndCmd) {
  // command alone: neither the image's entrypoint nor its cmd.
  auto spec = generate(kConfig, {.ns = "k8s.io", .id = "c", .entrypoint = std::vector<std::string>{"/bin/top"}});
  ASSERT_TRUE(spec.ok()) << spec.status().message();
  EXPECT_EQ((*spec)["process"]["args"], json({"/bin/top"}));
  // command and args.
  spec = generate(kConfig, {.ns = "k8s.io", .id = "c", .args = {"-b"},
                            .entrypoint = std::vector<std::string>{"/bin/top"},
                            .additional_gids = {10, 20}, .cgroups_path = "/kubepods/pod1/c"});
  ASSERT_TRUE(spec.ok());
  EXPECT_EQ((*spec)["process"]["args"], json({"/bin/top", "-b"}));
  EXPECT_EQ((*spec)["process"]["user"]["additionalGids"], json({10, 20}));
  EXPECT_EQ((*spec)["linux"]["cgroupsPath"], "/kubepods/pod1/c");
  // An empty command is no command at all.
  EXPECT_FALSE(generate("", {.ns = "k8s.io", .id = "c", .entrypoint = std::vector<std::string>{}}).ok());
}

TEST(OciSpec, SetNamespaceJoinsAPathOrTheHost) {
  auto spec = generate(kConfig, {.ns = "n", .id = "c"});
  ASSERT_TRUE(spec.ok());
  set_namespace(*spec, "ipc", "/proc/42/ns/ipc");
  set_namespace(*spec, "pid", "", true);
  int ipc = 0;
  for (const auto& n : (*spec)["linux"]["namespaces"]) {
    if (n["type"] == "ipc") {
      ++ipc;
      EXPECT_EQ(n["path"], "/proc/42/ns/ipc");
    }
  }
  EXPECT_EQ(ipc, 1);
  EXPECT_FALSE(has_namespace(*spec, "pid"));
  set_namespace(*spec, "cgroup", "");
  EXPECT_TRUE(has_namespace(*spec, "cgroup"));
}

TEST(OciSpec, CapabilitiesAndPrivileged) {
  auto spec =
      generate("", {.args = {"/bin/true"}, .cap_add = {"sys_admin"}, .cap_drop = {"CAP_KILL"}});
  ASSERT_TRUE(spec.ok());
  const json& caps = (*spec)["process"]["capabilities"]["bounding"];
  EXPECT_NE(std::find(caps.begin(), caps.end(), "CAP_SYS_ADMIN"), caps.end());
  EXPECT_EQ(std::find(caps.begin(), caps.end(), "CAP_KILL"), caps.end());

  auto priv = generate("", {.args = {"/bin/true"}, .privileged = true});
  ASSERT_TRUE(priv.ok());
  EXPECT_GT((*priv)["process"]["capabilities"]["bounding"].size(), caps.size());
  EXPECT_EQ((*priv)["process"]["noNewPrivileges"], false);
  EXPECT_FALSE((*priv)["linux"].contains("maskedPaths"));
  EXPECT_EQ((*priv)["linux"]["resources"]["devices"][0]["allow"], true);
}

TEST(OciSpec, Mounts) {
  auto spec =
      generate("", {.args = {"/bin/true"},
                    .mounts = {"type=bind,src=/a,dst=/b,options=rbind:ro", "src=/c,dst=/d"}});
  ASSERT_TRUE(spec.ok()) << spec.status().message();
  const json& m = (*spec)["mounts"];
  EXPECT_EQ(m[m.size() - 2]["options"], json({"rbind", "ro"}));
  EXPECT_EQ(m.back()["options"], json({"rbind"}));
  EXPECT_EQ(m.back()["source"], "/c");
}

TEST(OciSpec, BadInputIsNamed) {
  auto no_cmd = generate("", {});
  ASSERT_FALSE(no_cmd.ok());
  EXPECT_NE(no_cmd.status().message().find("no command"), std::string::npos);
  EXPECT_FALSE(generate("{not json", {.args = {"x"}}).ok());
  auto env = generate("", {.args = {"x"}, .env = {"NOEQUALS"}});
  ASSERT_FALSE(env.ok());
  EXPECT_NE(env.status().message().find("NOEQUALS"), std::string::npos);
  auto user = generate("", {.args = {"x"}, .user = "root"});
  ASSERT_FALSE(user.ok());
  EXPECT_NE(user.status().message().find("root"), std::string::npos);
  // Resolved against the image's files, a name replaces the image's User; groups merge.
  auto named = generate(kConfig, {.args = {"x"},
                                  .user = "nginx",
                                  .resolved_user = User{101, 102, {7, 8}},
                                  .additional_gids = {29, 7}});
  ASSERT_TRUE(named.ok()) << named.status().message();
  EXPECT_EQ((*named)["process"]["user"]["uid"], 101);
  EXPECT_EQ((*named)["process"]["user"]["gid"], 102);
  EXPECT_EQ((*named)["process"]["user"]["additionalGids"], json({7, 8, 29}));
  EXPECT_FALSE(generate("", {.args = {"x"}, .mounts = {"src=/a,dst=rel"}}).ok());
  EXPECT_FALSE(generate("", {.args = {"x"}, .mounts = {"bogus=1,dst=/a"}}).ok());
  EXPECT_FALSE(generate("", {.args = {"x"}, .annotations = {"=v"}}).ok());
}

}  // namespace
}  // namespace berth::ocispec

namespace berth::ocispec {
namespace {

TEST(OciSpecNetwork, JoinsTheDaemonsNamespaceAndMountsItsFiles) {
  SpecOptions o;
  o.ns = "default";
  o.id = "web";
  o.args = {"sh"};
  o.mounts = {"type=bind,src=/tmp/h,dst=/etc/hosts,options=rbind:ro"};
  auto spec = generate("", o);
  ASSERT_TRUE(spec.ok());
  NetworkJoin j{"/run/berth/netns/x", "/run/e/hosts", "/run/e/resolv.conf", "/run/e/hostname", "h1"};
  ASSERT_TRUE(join_network(*spec, j).ok());
  int network = 0;
  for (const auto& n : (*spec)["linux"]["namespaces"])
    if (n["type"] == "network") {
      ++network;
      EXPECT_EQ(n["path"], "/run/berth/netns/x");
    }
  EXPECT_EQ(network, 1);
  int hosts = 0;
  for (const auto& m : (*spec)["mounts"])
    if (m["destination"] == "/etc/hosts") {
      ++hosts;
      EXPECT_EQ(m["source"], "/run/e/hosts");
    }
  EXPECT_EQ(hosts, 1);  // the daemon's file replaces an earlier mount of the same place
  EXPECT_EQ((*spec)["hostname"], "h1");
  EXPECT_FALSE(join_network(*spec, {"relative", "", "", "", ""}).ok());
}

}  // namespace
}  // namespace berth::ocispec
