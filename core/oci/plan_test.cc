// create's namespace plan, without root: which namespaces the clone makes, which the init
// unshares, which are joined by path and in what order.
#include <gtest/gtest.h>
#include <sched.h>

#include <nlohmann/json.hpp>

#include "core/oci/container.h"

namespace berth::oci {
namespace {

Spec with_namespaces(const nlohmann::json& namespaces) {
  auto doc = nlohmann::json::parse(default_spec_json(false));
  doc["linux"]["namespaces"] = namespaces;
  // What the spec's validation asks of these namespaces: a hostname needs its own uts namespace,
  // a new user namespace needs mappings.
  bool uts = false, new_user = false;
  for (const auto& n : namespaces) {
    uts = uts || (n["type"] == "uts" && !n.contains("path"));
    new_user = new_user || (n["type"] == "user" && !n.contains("path"));
  }
  if (!uts) doc.erase("hostname");
  if (new_user) {
    doc["linux"]["uidMappings"] = {{{"containerID", 0}, {"hostID", 100000}, {"size", 65536}}};
    doc["linux"]["gidMappings"] = {{{"containerID", 0}, {"hostID", 100000}, {"size", 65536}}};
  }
  auto spec = parse_spec(doc.dump());
  EXPECT_TRUE(spec.ok()) << spec.status().message();
  return spec.ok() ? *spec : Spec{};
}

TEST(NamespacePlan, NewNamespaces) {
  auto plan = plan_namespaces(with_namespaces({{{"type", "pid"}},
                                               {{"type", "mount"}},
                                               {{"type", "network"}},
                                               {{"type", "user"}},
                                               {{"type", "uts"}},
                                               {{"type", "ipc"}},
                                               {{"type", "cgroup"}}}));
  // user and pid by the clone; the rest unshared by the init, inside the new user namespace.
  EXPECT_EQ(plan.clone_flags, static_cast<unsigned long>(CLONE_NEWUSER | CLONE_NEWPID));
  EXPECT_EQ(plan.unshare_flags,
            CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWCGROUP);
  EXPECT_TRUE(plan.join.empty());
  EXPECT_TRUE(plan.pid_path.empty());
}

TEST(NamespacePlan, JoinsByPathUserFirstPidByTheParent) {
  auto plan = plan_namespaces(with_namespaces({{{"type", "network"}, {"path", "/run/netns/a"}},
                                               {{"type", "ipc"}, {"path", "/proc/1/ns/ipc"}},
                                               {{"type", "user"}, {"path", "/proc/7/ns/user"}},
                                               {{"type", "pid"}, {"path", "/proc/7/ns/pid"}},
                                               {{"type", "mount"}}}));
  EXPECT_EQ(plan.clone_flags, 0u);  // nothing new for the clone itself
  EXPECT_EQ(plan.unshare_flags, CLONE_NEWNS);
  ASSERT_EQ(plan.join.size(), 3u);
  EXPECT_EQ(plan.join[0], (std::pair<std::string, int>{"/proc/7/ns/user", CLONE_NEWUSER}));
  EXPECT_EQ(plan.join[1], (std::pair<std::string, int>{"/run/netns/a", CLONE_NEWNET}));
  EXPECT_EQ(plan.join[2], (std::pair<std::string, int>{"/proc/1/ns/ipc", CLONE_NEWIPC}));
  EXPECT_EQ(plan.pid_path, "/proc/7/ns/pid");
}

TEST(NamespacePlan, HostNamespacesAreLeftAlone) {
  auto plan = plan_namespaces(with_namespaces(nlohmann::json::array({{{"type", "mount"}}})));
  EXPECT_EQ(plan.clone_flags, 0u);
  EXPECT_EQ(plan.unshare_flags, CLONE_NEWNS);
  EXPECT_TRUE(plan.join.empty());
}

}  // namespace
}  // namespace berth::oci
