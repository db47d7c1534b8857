// The CRI's pods end to end, as a kubelet drives them: a pod sandbox (berth-pause in a CNI
// network namespace of a bridge and 10.231.N.0/24 subnet the test owns), two containers sharing
// its namespaces, logs in the CRI format, ExecSync, exits, stop and remove with nothing left on
// the host, and a kill -9 of berthd while the pod runs. As root.
#include <grpcpp/grpcpp.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <mutex>
#include <regex>
#include <thread>

#include "core/fs.h"
#include "cri/runtime/v1/api.grpc.pb.h"
#include "cri/runtime/v1alpha2/api.grpc.pb.h"
#include "tests/e2e/harness.h"
#include "tests/e2e/registry.h"
#include "tests/support/host_network.h"
#include "tests/support/oci_layout.h"

namespace berth::e2e {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
namespace v1 = ::runtime::v1;
using nlohmann::json;
using test::host_sh;

class CriPodTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "pods need root (namespaces, cgroups, overlayfs)";
    if (::access("/usr/lib/cni/bridge", X_OK) != 0)
      GTEST_SKIP() << "containernetworking-plugins is missing (scripts/setup.sh installs it)";
    std::string why;
    registry_ = Registry::start(&why);
    ASSERT_TRUE(registry_) << why;
    int n = 200 + ::getpid() % 50;
    bridge_ = "bc" + std::to_string(::getpid() % 100000);
    subnet_ = "10.231." + std::to_string(n);
    guard_.emplace(std::vector<std::string>{bridge_});
    d_ = Daemon::create();
    ASSERT_TRUE(d_);
    std::string hosts = d_->dir() + "/certs.d/" + registry_->host();
    ASSERT_TRUE(core::make_dirs(hosts).ok());
    test::write_file(hosts + "/hosts.toml", "server = \"http://" + registry_->host() + "\"\n");
    std::string conf_dir = d_->dir() + "/net.d";
    ASSERT_TRUE(core::make_dirs(conf_dir).ok());
    test::write_file(conf_dir + "/10-pods.conflist",
                     R"({"cniVersion":"1.0.0","name":"pods","plugins":[{"type":"bridge","bridge":")" +
                         bridge_ + R"(","isGateway":true,"ipMasq":false,"ipam":{"type":"host-local","dataDir":")" +
                         d_->dir() + R"(/ipam","ranges":[[{"subnet":")" + subnet_ +
                         R"(.0/24"}]]}},{"type":"portmap","capabilities":{"portMappings":true}}]})");
    options_.config = "[plugins.\"io.berth.network.v1.cni\"]\n  conf_dir = \"" + conf_dir +
                      "\"\n  bin_dirs = [\"/usr/lib/cni\"]\n  write_default_network = false\n"
                      "[plugins.\"io.containerd.grpc.v1.cri\"]\n  hosts_dir = \"" + d_->dir() +
                      "/certs.d\"\n";
    auto err = d_->start(options_);
    ASSERT_FALSE(err.has_value()) << *err;
    std::string tar = d_->dir() + "/busybox.tar";
    test::write_file(tar, test::busybox_image_tar("example.com/busybox:1"));
    auto push = registry_->push_oci_archive(tar, "library/busybox:1");
    ASSERT_EQ(push.exit_code, 0) << diag(push);
    connect();
    v1::PullImageRequest pull;
    pull.mutable_image()->set_image(image());
    v1::PullImageResponse pulled;
    auto st = images_->PullImage(ctx().get(), pull, &pulled);
    ASSERT_TRUE(st.ok()) << st.error_code() << " " << st.error_message() << "\n" << d_->log();
    logs_ = d_->dir() + "/pods";
  }

  void TearDown() override {
    if (d_) {
      if (d_->pid() <= 0 || ::kill(d_->pid(), 0) != 0) {
        d_->start(options_);
        connect();
      }
      for (const auto& id : pods_) {
        v1::RemovePodSandboxRequest r;
        r.set_pod_sandbox_id(id);
        v1::RemovePodSandboxResponse resp;
        runtime_->RemovePodSandbox(ctx().get(), r, &resp);
      }
      d_->stop();
    }
    d_.reset();
    guard_.reset();
  }

  void connect() {
    channel_ = grpc::CreateChannel("unix://" + d_->address(), grpc::InsecureChannelCredentials());
    runtime_ = v1::RuntimeService::NewStub(channel_);
    images_ = v1::ImageService::NewStub(channel_);
  }

  std::unique_ptr<grpc::ClientContext> ctx(int seconds = 60) {
    auto c = std::make_unique<grpc::ClientContext>();
    c->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(seconds));
    return c;
  }

  std::string image() const { return registry_->host() + "/library/busybox:1"; }

  v1::PodSandboxConfig pod_config(const std::string& name) {
    v1::PodSandboxConfig c;
    c.mutable_metadata()->set_name(name);
    c.mutable_metadata()->set_uid("uid-" + name);
    c.mutable_metadata()->set_namespace_("default");
    c.set_hostname(name + "-host");
    c.set_log_directory(logs_ + "/" + name);
    (*c.mutable_labels())["app"] = name;
    (*c.mutable_labels())["io.kubernetes.pod.name"] = name;
    (*c.mutable_annotations())["note"] = "kept as is";
    c.mutable_dns_config()->add_servers("10.231.0.53");
    c.mutable_dns_config()->add_searches("svc.cluster.local");
    return c;
  }

  std::string run_pod(const v1::PodSandboxConfig& c) {
    v1::RunPodSandboxRequest r;
    *r.mutable_config() = c;
    v1::RunPodSandboxResponse resp;
    auto st = runtime_->RunPodSandbox(ctx().get(), r, &resp);
    EXPECT_TRUE(st.ok()) << st.error_message() << "\n" << d_->log();
    if (st.ok()) pods_.push_back(resp.pod_sandbox_id());
    return resp.pod_sandbox_id();
  }

  // Creates a container the way the kubelet does by default (its own pid namespace); an empty id
  // when CreateContainer fails, which is a test failure unless `expect_ok` is false.
  std::string create(const std::string& pod, const v1::PodSandboxConfig& pc, const std::string& name,
                     const std::vector<std::string>& cmd, bool expect_ok = true) {
    v1::CreateContainerRequest r;
    r.set_pod_sandbox_id(pod);
    *r.mutable_sandbox_config() = pc;
    auto* c = r.mutable_config();
    c->mutable_metadata()->set_name(name);
    c->mutable_image()->set_image(image());
    for (const auto& a : cmd) c->add_command(a);
    c->mutable_linux()->mutable_security_context()->mutable_namespace_options()->set_pid(v1::CONTAINER);
    c->set_log_path(name + ".log");
    (*c->mutable_labels())["container"] = name;
    auto* kv = c->add_envs();
    kv->set_key("GREETING");
    kv->set_value("hello from " + name);
    v1::CreateContainerResponse resp;
    auto st = runtime_->CreateContainer(ctx().get(), r, &resp);
    if (expect_ok) {
      EXPECT_TRUE(st.ok()) << name << ": " << st.error_message();
    }
    return resp.container_id();
  }

  grpc::Status start(const std::string& id) {
    v1::StartContainerRequest r;
    r.set_container_id(id);
    v1::StartContainerResponse resp;
    return runtime_->StartContainer(ctx().get(), r, &resp);
  }

  v1::ContainerStatus status(const std::string& id) {
    v1::ContainerStatusRequest r;
    r.set_container_id(id);
    v1::ContainerStatusResponse resp;
    auto st = runtime_->ContainerStatus(ctx().get(), r, &resp);
    EXPECT_TRUE(st.ok()) << st.error_message();
    return resp.status();
  }

  v1::PodSandboxStatusResponse pod_status(const std::string& id) {
    v1::PodSandboxStatusRequest r;
    r.set_pod_sandbox_id(id);
    r.set_verbose(true);
    v1::PodSandboxStatusResponse resp;
    auto st = runtime_->PodSandboxStatus(ctx().get(), r, &resp);
    EXPECT_TRUE(st.ok()) << st.error_message();
    return resp;
  }

  bool wait_exited(const std::string& id, int seconds = 20) {
    for (int i = 0; i < seconds * 10; ++i) {
      if (status(id).state() == v1::CONTAINER_EXITED) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
  }

  grpc::Status exec(const std::string& id, const std::vector<std::string>& cmd,
                    v1::ExecSyncResponse* out, int timeout = 0) {
    v1::ExecSyncRequest r;
    r.set_container_id(id);
    for (const auto& a : cmd) r.add_cmd(a);
    r.set_timeout(timeout);
    return runtime_->ExecSync(ctx().get(), r, out);
  }

  std::string exec_out(const std::string& id, const std::vector<std::string>& cmd) {
    v1::ExecSyncResponse out;
    auto st = exec(id, cmd, &out);
    EXPECT_TRUE(st.ok()) << st.error_message();
    return out.stdout();
  }

  // Polls the log file until it holds a line matching `re` (10 s).
  std::string wait_log(const std::string& path, const std::string& re) {
    std::string text;
    for (int i = 0; i < 100; ++i) {
      std::ifstream in(path);
      text.assign(std::istreambuf_iterator<char>(in), {});
      if (std::regex_search(text, std::regex(re))) return text;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    ADD_FAILURE() << path << " has no line matching " << re << ":\n" << text;
    return text;
  }

  // What a pod can leave on the host.
  std::string leftovers(const std::string& pod, std::uint32_t pause_pid) {
    std::string out;
    std::string veths = host_sh("ip -o link show master " + bridge_ + " 2>/dev/null");
    if (!veths.empty()) out += "veths on the bridge:\n" + veths;
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(d_->state() + "/io.berth.network.v1.cni/netns", ec))
      out += "netns " + e.path().string() + "\n";
    std::string mounts = host_sh("grep -e " + pod.substr(0, 12) + " -e " + d_->dir() +
                                 " /proc/self/mountinfo");
    if (!mounts.empty()) out += "mounts:\n" + mounts;
    if (pause_pid && ::kill(static_cast<pid_t>(pause_pid), 0) == 0)
      out += "pause process " + std::to_string(pause_pid) + " still runs\n";
    for (const char* ctl : {"pids", "memory", "cpu"})
      if (std::filesystem::exists(std::string("/sys/fs/cgroup/") + ctl + "/k8s.io/" + pod, ec))
        out += std::string("cgroup ") + ctl + "/k8s.io/" + pod + "\n";
    std::string rules = host_sh("iptables-save | grep -e '" + subnet_ + "\\.' -e " + pod.substr(0, 12));
    if (!rules.empty()) out += "iptables:\n" + rules;
    return out;
  }

  std::unique_ptr<Registry> registry_;
  std::unique_ptr<Daemon> d_;
  DaemonOptions options_;
  std::string bridge_, subnet_, logs_;
  std::optional<test::HostNetworkGuard> guard_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::RuntimeService::Stub> runtime_;
  std::unique_ptr<v1::ImageService::Stub> images_;
  std::vector<std::string> pods_;
};

TEST_F(CriPodTest, PodWithTwoContainersSharingItsNetworkLogsExecsAndLeavesNothing) {
  auto pc = pod_config("web");
  std::string pod = run_pod(pc);
  ASSERT_FALSE(pod.empty());
  auto ps = pod_status(pod);
  EXPECT_EQ(ps.status().state(), v1::SANDBOX_READY);
  EXPECT_EQ(ps.status().metadata().name(), "web");
  EXPECT_EQ(ps.status().labels().at("app"), "web");
  EXPECT_EQ(ps.status().annotations().at("note"), "kept as is");
  std::string ip = ps.status().network().ip();
  EXPECT_EQ(ip.rfind(subnet_ + ".", 0), 0u) << ip;
  auto info = json::parse(ps.info().at("info"));
  std::uint32_t pause_pid = info.at("pid");
  ASSERT_GT(pause_pid, 0u);
  EXPECT_THAT(host_sh("cat /proc/" + std::to_string(pause_pid) + "/cmdline | tr '\\0' ' '"),
              HasSubstr("/pause"));

  // Two containers: one that logs and stays, one that serves the network test.
  std::string a = create(pod, pc, "logger",
                         {"/bin/sh", "-c", "echo \"$GREETING\"; echo oops >&2; exec sleep 1000"});
  std::string b = create(pod, pc, "peer", {"sleep", "1000"});
  ASSERT_FALSE(a.empty());
  ASSERT_FALSE(b.empty());
  EXPECT_EQ(status(a).state(), v1::CONTAINER_CREATED);
  auto st = start(a);
  ASSERT_TRUE(st.ok()) << st.error_message() << d_->log();
  st = start(b);
  ASSERT_TRUE(st.ok()) << st.error_message();
  auto sa = status(a);
  EXPECT_EQ(sa.state(), v1::CONTAINER_RUNNING);
  EXPECT_GT(sa.started_at(), 0);
  EXPECT_EQ(sa.log_path(), logs_ + "/web/logger.log");
  EXPECT_EQ(sa.labels().at("container"), "logger");
  EXPECT_EQ(sa.image().image(), image());
  EXPECT_EQ(sa.image_id().rfind("sha256:", 0), 0u);

  // Logs: one CRI line per line of output, stdout and stderr apart.
  std::string ts = R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z)";
  std::string text = wait_log(sa.log_path(), ts + " stdout F hello from logger\n");
  wait_log(sa.log_path(), ts + " stderr F oops\n");

  // Both containers are in the pod's network, IPC and UTS namespaces, which are the pause's.
  std::string pause_ns = "/proc/" + std::to_string(pause_pid) + "/ns/";
  for (const char* ns : {"net", "ipc", "uts"}) {
    std::string want = host_sh("readlink " + pause_ns + ns);
    EXPECT_EQ(exec_out(a, {"busybox", "readlink", std::string("/proc/self/ns/") + ns}), want) << ns;
    EXPECT_EQ(exec_out(b, {"busybox", "readlink", std::string("/proc/self/ns/") + ns}), want) << ns;
  }
  EXPECT_EQ(exec_out(b, {"hostname"}), "web-host\n");
  EXPECT_THAT(exec_out(b, {"busybox", "ip", "-4", "-o", "addr", "show", "eth0"}), HasSubstr(ip + "/24"));
  EXPECT_THAT(exec_out(a, {"cat", "/etc/resolv.conf"}), HasSubstr("nameserver 10.231.0.53"));
  // The pod's /dev/shm is one tmpfs: what one container writes the other reads.
  exec_out(a, {"sh", "-c", "echo shared > /dev/shm/x"});
  EXPECT_EQ(exec_out(b, {"cat", "/dev/shm/x"}), "shared\n");

  // ExecSync: output, exit code, and a timeout.
  v1::ExecSyncResponse out;
  st = exec(a, {"sh", "-c", "echo out; echo err >&2; exit 3"}, &out);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(out.stdout(), "out\n");
  EXPECT_EQ(out.stderr(), "err\n");
  EXPECT_EQ(out.exit_code(), 3);
  st = exec(a, {"sleep", "30"}, &out, 1);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED) << st.error_message();
  EXPECT_THAT(exec_out(a, {"ps"}), Not(HasSubstr("sleep 30")));

  // Lists and filters.
  v1::ListContainersRequest lr;
  lr.mutable_filter()->set_pod_sandbox_id(pod);
  v1::ListContainersResponse lresp;
  ASSERT_TRUE(runtime_->ListContainers(ctx().get(), lr, &lresp).ok());
  EXPECT_EQ(lresp.containers_size(), 2);
  (*lr.mutable_filter()->mutable_label_selector())["container"] = "peer";
  lresp.Clear();
  ASSERT_TRUE(runtime_->ListContainers(ctx().get(), lr, &lresp).ok());
  ASSERT_EQ(lresp.containers_size(), 1);
  EXPECT_EQ(lresp.containers(0).id(), b);
  v1::ListPodSandboxRequest plr;
  (*plr.mutable_filter()->mutable_label_selector())["app"] = "web";
  plr.mutable_filter()->mutable_state()->set_state(v1::SANDBOX_READY);
  v1::ListPodSandboxResponse plresp;
  ASSERT_TRUE(runtime_->ListPodSandbox(ctx().get(), plr, &plresp).ok());
  ASSERT_EQ(plresp.items_size(), 1);
  EXPECT_EQ(plresp.items(0).id(), pod);

  // A container that exits on its own: code, reason and times are recorded.
  std::string c = create(pod, pc, "quitter", {"sh", "-c", "exit 7"});
  ASSERT_TRUE(start(c).ok());
  ASSERT_TRUE(wait_exited(c));
  auto sc = status(c);
  EXPECT_EQ(sc.exit_code(), 7);
  EXPECT_EQ(sc.reason(), "Error");
  EXPECT_GE(sc.finished_at(), sc.started_at());
  // Its name stays taken until it is removed.
  EXPECT_TRUE(create(pod, pc, "quitter", {"true"}, false).empty());
  v1::RemoveContainerRequest rr;
  rr.set_container_id(c);
  v1::RemoveContainerResponse rresp;
  st = runtime_->RemoveContainer(ctx().get(), rr, &rresp);
  ASSERT_TRUE(st.ok()) << st.error_message();
  ASSERT_TRUE(runtime_->RemoveContainer(ctx().get(), rr, &rresp).ok());  // idempotent

  // Graceful stop: SIGTERM ends `sleep` (pid 1 of its own pid namespace has no handler: killed
  // after the grace period).
  v1::StopContainerRequest sr;
  sr.set_container_id(b);
  sr.set_timeout(1);
  v1::StopContainerResponse sresp;
  ASSERT_TRUE(runtime_->StopContainer(ctx().get(), sr, &sresp).ok());
  auto sb = status(b);
  EXPECT_EQ(sb.state(), v1::CONTAINER_EXITED);
  EXPECT_EQ(sb.exit_code(), 137);

  // The pod goes: containers stopped, then removed, with nothing left behind.
  v1::StopPodSandboxRequest spr;
  spr.set_pod_sandbox_id(pod);
  v1::StopPodSandboxResponse spresp;
  ASSERT_TRUE(runtime_->StopPodSandbox(ctx().get(), spr, &spresp).ok());
  EXPECT_EQ(pod_status(pod).status().state(), v1::SANDBOX_NOTREADY);
  EXPECT_EQ(status(a).state(), v1::CONTAINER_EXITED);
  ASSERT_TRUE(runtime_->StopPodSandbox(ctx().get(), spr, &spresp).ok());  // idempotent
  v1::RemovePodSandboxRequest rpr;
  rpr.set_pod_sandbox_id(pod);
  v1::RemovePodSandboxResponse rpresp;
  ASSERT_TRUE(runtime_->RemovePodSandbox(ctx().get(), rpr, &rpresp).ok());
  v1::ListPodSandboxResponse all;
  ASSERT_TRUE(runtime_->ListPodSandbox(ctx().get(), v1::ListPodSandboxRequest(), &all).ok());
  EXPECT_EQ(all.items_size(), 0);
  lresp.Clear();
  ASSERT_TRUE(runtime_->ListContainers(ctx().get(), v1::ListContainersRequest(), &lresp).ok());
  EXPECT_EQ(lresp.containers_size(), 0);
  EXPECT_EQ(leftovers(pod, pause_pid), "");
  // The log stays for the kubelet.
  EXPECT_TRUE(std::filesystem::exists(logs_ + "/web/logger.log"));
  ASSERT_TRUE(runtime_->RemovePodSandbox(ctx().get(), rpr, &rpresp).ok());  // idempotent
}

TEST_F(CriPodTest, BadRequestsAreNamed) {
  v1::RunPodSandboxRequest r;
  v1::RunPodSandboxResponse resp;
  auto st = runtime_->RunPodSandbox(ctx().get(), r, &resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(st.error_message(), HasSubstr("metadata"));
  *r.mutable_config() = pod_config("bad");
  r.set_runtime_handler("nope");
  st = runtime_->RunPodSandbox(ctx().get(), r, &resp);
  EXPECT_THAT(st.error_message(), HasSubstr("runtime handler \"nope\""));
  r.set_runtime_handler("");
  (*r.mutable_config()->mutable_linux()->mutable_sysctls())["kernel.panic"] = "1";
  st = runtime_->RunPodSandbox(ctx().get(), r, &resp);
  EXPECT_THAT(st.error_message(), HasSubstr("not namespaced"));
  r.mutable_config()->mutable_linux()->mutable_sysctls()->clear();
  r.mutable_config()->mutable_linux()->set_cgroup_parent("/kubepods/../../etc");
  st = runtime_->RunPodSandbox(ctx().get(), r, &resp);
  EXPECT_THAT(st.error_message(), HasSubstr("cgroup_parent"));
  // Nothing was left by the failures: the name is free again.
  r.mutable_config()->mutable_linux()->clear_cgroup_parent();
  std::string pod = run_pod(r.config());
  ASSERT_FALSE(pod.empty());
  EXPECT_EQ(host_sh("ip -o link show master " + bridge_ + " | wc -l"), "1\n");

  v1::PodSandboxStatusRequest sr;
  sr.set_pod_sandbox_id("0123456789abcdef");
  v1::PodSandboxStatusResponse sresp;
  EXPECT_EQ(runtime_->PodSandboxStatus(ctx().get(), sr, &sresp).error_code(),
            grpc::StatusCode::NOT_FOUND);
  v1::CreateContainerRequest cr;
  cr.set_pod_sandbox_id(pod);
  cr.mutable_config()->mutable_metadata()->set_name("c");
  cr.mutable_config()->mutable_image()->set_image("example.com/missing:1");
  v1::CreateContainerResponse cresp;
  st = runtime_->CreateContainer(ctx().get(), cr, &cresp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::NOT_FOUND) << st.error_message();
  cr.mutable_config()->mutable_image()->set_image(image());
  cr.mutable_config()->set_log_path("../../escape.log");
  st = runtime_->CreateContainer(ctx().get(), cr, &cresp);
  EXPECT_THAT(st.error_message(), HasSubstr("log_path"));
}

TEST_F(CriPodTest, PodAndContainersSurviveKill9OfBerthd) {
  auto pc = pod_config("durable");
  std::string pod = run_pod(pc);
  ASSERT_FALSE(pod.empty());
  std::string ip = pod_status(pod).status().network().ip();
  std::string stays = create(pod, pc, "stays", {"/bin/sh", "-c", "echo before; exec sleep 1000"});
  std::string leaves = create(pod, pc, "leaves",
                              {"/bin/sh", "-c", "while [ ! -e /dev/shm/go ]; do sleep 0.1; done; exit 5"});
  ASSERT_TRUE(start(stays).ok());
  ASSERT_TRUE(start(leaves).ok());
  std::string log = status(stays).log_path();
  wait_log(log, R"(\S+ stdout F before\n)");

  d_->kill9();
  // While berthd is down, one container exits (the host sees the pod's /dev/shm too).
  test::write_file(d_->state() + "/io.containerd.grpc.v1.cri/sandboxes/" + pod + "/shm/go", "");
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  auto err = d_->start(options_);
  ASSERT_FALSE(err.has_value()) << *err;
  connect();

  auto ps = pod_status(pod);
  EXPECT_EQ(ps.status().state(), v1::SANDBOX_READY);
  EXPECT_EQ(ps.status().network().ip(), ip);
  EXPECT_EQ(status(stays).state(), v1::CONTAINER_RUNNING);
  ASSERT_TRUE(wait_exited(leaves)) << d_->log();
  EXPECT_EQ(status(leaves).exit_code(), 5);
  EXPECT_EQ(status(leaves).reason(), "Error");
  // The log goes on in the same file.
  exec_out(stays, {"sh", "-c", "echo after > /proc/1/fd/1"});
  wait_log(log, R"(\S+ stdout F after\n)");
  // And an exit after the restart is seen.
  v1::StopContainerRequest sr;
  sr.set_container_id(stays);
  v1::StopContainerResponse sresp;
  ASSERT_TRUE(runtime_->StopContainer(ctx().get(), sr, &sresp).ok());
  EXPECT_EQ(status(stays).state(), v1::CONTAINER_EXITED);
  EXPECT_EQ(status(stays).exit_code(), 137);
}

// Users by name, from the image's own /etc/passwd and /etc/group (as containerd resolves them).
TEST_F(CriPodTest, UsersByNameComeFromTheImagesFiles) {
  test::TarBuilder etc;
  etc.dir("etc")
      .file("etc/passwd",
            "root:x:0:0:root:/root:/bin/sh\nnginx:x:101:101::/:/bin/false\napp:x:1000:1000::/:/bin/sh\n")
      .file("etc/group", "root:x:0:\nnginx:x:101:\napp:x:1000:\naudio:x:29:app\n");
  test::Layout layout;
  layout.name(layout.manifest(test::host_arch(),
                              {test::make_layer(test::busybox_rootfs_tar(), "gzip"),
                               test::make_layer(etc.finish(), "gzip")},
                              {}, {{"User", "app"}}),
              "example.com/users:1");
  std::string tar = d_->dir() + "/users.tar";
  test::write_file(tar, layout.tar());
  auto push = registry_->push_oci_archive(tar, "library/users:1");
  ASSERT_EQ(push.exit_code, 0) << diag(push);
  std::string users = registry_->host() + "/library/users:1";
  v1::PullImageRequest pull;
  pull.mutable_image()->set_image(users);
  v1::PullImageResponse pulled;
  auto st = images_->PullImage(ctx().get(), pull, &pulled);
  ASSERT_TRUE(st.ok()) << st.error_message();

  auto pc = pod_config("users");
  std::string pod = run_pod(pc);
  ASSERT_FALSE(pod.empty());
  auto make = [&](const std::string& name, auto&& set) {
    v1::CreateContainerRequest r;
    r.set_pod_sandbox_id(pod);
    *r.mutable_sandbox_config() = pc;
    auto* c = r.mutable_config();
    c->mutable_metadata()->set_name(name);
    c->mutable_image()->set_image(users);
    c->add_command("sleep");
    c->add_command("1000");
    set(*c->mutable_linux()->mutable_security_context());
    v1::CreateContainerResponse resp;
    auto s = runtime_->CreateContainer(ctx().get(), r, &resp);
    if (s.ok()) EXPECT_TRUE(start(resp.container_id()).ok()) << name;
    return std::make_pair(s, resp.container_id());
  };
  auto ids = [&](const std::string& id) { return exec_out(id, {"sh", "-c", "echo $(id -u) $(id -g) $(id -G)"}); };

  // The image's User "app": its uid, primary group and the groups that list it.
  auto [s1, image_user] = make("image-user", [](auto&) {});
  ASSERT_TRUE(s1.ok()) << s1.error_message();
  EXPECT_EQ(ids(image_user), "1000 1000 1000 29\n");
  // run_as_username replaces it, run_as_group replaces the group.
  auto [s2, by_name] = make("by-name", [](auto& sc) {
    sc.set_run_as_username("nginx");
    sc.mutable_run_as_group()->set_value(7);
  });
  ASSERT_TRUE(s2.ok()) << s2.error_message();
  EXPECT_EQ(ids(by_name), "101 7 7\n");
  // A uid the image does not list: group 0.
  auto [s3, by_uid] = make("by-uid", [](auto& sc) { sc.mutable_run_as_user()->set_value(4242); });
  ASSERT_TRUE(s3.ok()) << s3.error_message();
  EXPECT_EQ(ids(by_uid), "4242 0 0\n");
  // A name the image does not have is named in the error.
  auto [s4, missing] = make("missing", [](auto& sc) { sc.set_run_as_username("nobody"); });
  EXPECT_EQ(s4.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s4.error_message(), HasSubstr("\"nobody\""));
}

// A cgroup file of a container under the CRI's default parent (/k8s.io/<id>), on a v1 (or this
// host's hybrid) layout or a pure v2 one.
std::string cgroup_file(const std::string& id, const char* v1_controller, const char* v1_file,
                        const char* v2_file) {
  std::string v1 = std::string("/sys/fs/cgroup/") + v1_controller + "/k8s.io/" + id + "/" + v1_file;
  if (std::filesystem::exists(v1)) return v1;
  return "/sys/fs/cgroup/k8s.io/" + id + "/" + v2_file;
}

TEST_F(CriPodTest, StatsResourceUpdatesAndTheContainerEventStream) {
  // The kubelet's evented PLEG subscribes before anything happens.
  grpc::ClientContext events_ctx;
  auto reader = runtime_->GetContainerEvents(&events_ctx, v1::GetEventsRequest());
  std::mutex mu;
  std::vector<v1::ContainerEventResponse> events;
  std::thread collector([&] {
    v1::ContainerEventResponse e;
    while (reader->Read(&e)) {
      std::lock_guard lock(mu);
      events.push_back(e);
    }
  });
  struct Join {
    grpc::ClientContext& c;
    std::thread& t;
    ~Join() {
      c.TryCancel();
      if (t.joinable()) t.join();
    }
  } join{events_ctx, collector};

  auto pc = pod_config("stats");
  std::string pod = run_pod(pc);
  ASSERT_FALSE(pod.empty());
  // It burns some CPU, writes 8 MiB into its writable layer, and stays.
  std::string c = create(pod, pc, "busy",
                         {"/bin/sh", "-c",
                          "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; "
                          "busybox dd if=/dev/zero of=/fill bs=1M count=8 2>/dev/null; echo ready; "
                          "exec sleep 1000"});
  ASSERT_FALSE(c.empty());
  ASSERT_TRUE(start(c).ok());
  wait_log(status(c).log_path(), R"(\S+ stdout F ready\n)");

  v1::ContainerStatsRequest csr;
  csr.set_container_id(c);
  v1::ContainerStatsResponse cs;
  auto st = runtime_->ContainerStats(ctx().get(), csr, &cs);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(cs.stats().attributes().id(), c);
  EXPECT_EQ(cs.stats().attributes().labels().at("container"), "busy");
  EXPECT_GT(cs.stats().cpu().usage_core_nano_seconds().value(), 0u);
  EXPECT_GT(cs.stats().memory().usage_bytes().value(), 0u);
  EXPECT_GT(cs.stats().memory().working_set_bytes().value(), 0u);
  // The 8 MiB just written sit in inactive page cache, which the working set leaves out.
  EXPECT_LT(cs.stats().memory().working_set_bytes().value(), cs.stats().memory().usage_bytes().value());
  EXPECT_GT(cs.stats().memory().page_faults().value(), 0u);
  EXPECT_GE(cs.stats().writable_layer().used_bytes().value(), 8u << 20);
  EXPECT_GT(cs.stats().writable_layer().inodes_used().value(), 0u);
  EXPECT_FALSE(cs.stats().writable_layer().fs_id().mountpoint().empty());
  // A second reading has a rate.
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  ASSERT_TRUE(runtime_->ContainerStats(ctx().get(), csr, &cs).ok());
  EXPECT_TRUE(cs.stats().cpu().has_usage_nano_cores());

  v1::ListContainerStatsRequest lcs;
  lcs.mutable_filter()->set_pod_sandbox_id(pod);
  v1::ListContainerStatsResponse lcsr;
  ASSERT_TRUE(runtime_->ListContainerStats(ctx().get(), lcs, &lcsr).ok());
  ASSERT_EQ(lcsr.stats_size(), 1);
  EXPECT_EQ(lcsr.stats(0).attributes().id(), c);

  v1::PodSandboxStatsRequest psr;
  psr.set_pod_sandbox_id(pod);
  v1::PodSandboxStatsResponse ps;
  st = runtime_->PodSandboxStats(ctx().get(), psr, &ps);
  ASSERT_TRUE(st.ok()) << st.error_message();
  const auto& pl = ps.stats().linux();
  EXPECT_EQ(ps.stats().attributes().id(), pod);
  EXPECT_GE(pl.cpu().usage_core_nano_seconds().value(), cs.stats().cpu().usage_core_nano_seconds().value());
  EXPECT_GT(pl.memory().usage_bytes().value(), 0u);
  EXPECT_GE(pl.process().process_count().value(), 2u);  // the pause and sleep
  EXPECT_EQ(pl.network().default_interface().name(), "eth0");
  ASSERT_EQ(pl.containers_size(), 1);
  v1::ListPodSandboxStatsRequest lps;
  (*lps.mutable_filter()->mutable_label_selector())["app"] = "stats";
  v1::ListPodSandboxStatsResponse lpsr;
  ASSERT_TRUE(runtime_->ListPodSandboxStats(ctx().get(), lps, &lpsr).ok());
  ASSERT_EQ(lpsr.stats_size(), 1);

  // New resources reach the running container's cgroup, and available_bytes follows the limit.
  v1::UpdateContainerResourcesRequest ur;
  ur.set_container_id(c);
  ur.mutable_linux()->set_memory_limit_in_bytes(64 << 20);
  ur.mutable_linux()->set_cpu_shares(512);
  v1::UpdateContainerResourcesResponse uresp;
  st = runtime_->UpdateContainerResources(ctx().get(), ur, &uresp);
  ASSERT_TRUE(st.ok()) << st.error_message();
  auto limit = core::read_file(cgroup_file(c, "memory", "memory.limit_in_bytes", "memory.max"));
  ASSERT_TRUE(limit.ok()) << limit.status().message();
  EXPECT_EQ(std::stoull(*limit), 64ull << 20);
  auto shares = core::read_file(cgroup_file(c, "cpu", "cpu.shares", "cpu.weight"));
  ASSERT_TRUE(shares.ok());
  if (cgroup_file(c, "cpu", "cpu.shares", "cpu.weight").ends_with("cpu.shares"))
    EXPECT_EQ(std::stoull(*shares), 512u);
  ASSERT_TRUE(runtime_->ContainerStats(ctx().get(), csr, &cs).ok());
  EXPECT_TRUE(cs.stats().memory().has_available_bytes());
  EXPECT_LE(cs.stats().memory().available_bytes().value(), 64u << 20);
  ur.set_container_id("no-such-container");
  EXPECT_EQ(runtime_->UpdateContainerResources(ctx().get(), ur, &uresp).error_code(),
            grpc::StatusCode::NOT_FOUND);

  // Stopped and removed: the stream saw all of it, in order.
  v1::StopContainerRequest sr;
  sr.set_container_id(c);
  v1::StopContainerResponse sresp;
  ASSERT_TRUE(runtime_->StopContainer(ctx().get(), sr, &sresp).ok());
  v1::RemoveContainerRequest rr;
  rr.set_container_id(c);
  v1::RemoveContainerResponse rresp;
  ASSERT_TRUE(runtime_->RemoveContainer(ctx().get(), rr, &rresp).ok());
  std::vector<v1::ContainerEventType> of_container, of_pod;
  for (int i = 0; i < 100; ++i) {
    {
      std::lock_guard lock(mu);
      of_container.clear();
      of_pod.clear();
      for (const auto& e : events) {
        if (e.container_id() == c) of_container.push_back(e.container_event_type());
        if (e.container_id() == pod) of_pod.push_back(e.container_event_type());
        EXPECT_EQ(e.pod_sandbox_status().id(), pod);
        EXPECT_GT(e.created_at(), 0);
      }
    }
    if (of_container.size() >= 4) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(of_container, (std::vector<v1::ContainerEventType>{
                              v1::CONTAINER_CREATED_EVENT, v1::CONTAINER_STARTED_EVENT,
                              v1::CONTAINER_STOPPED_EVENT, v1::CONTAINER_DELETED_EVENT}));
  EXPECT_EQ(of_pod, (std::vector<v1::ContainerEventType>{v1::CONTAINER_CREATED_EVENT,
                                                         v1::CONTAINER_STARTED_EVENT}));
  {
    std::lock_guard lock(mu);
    for (const auto& e : events) {
      if (e.container_id() == c && e.container_event_type() == v1::CONTAINER_STOPPED_EVENT) {
        ASSERT_EQ(e.containers_statuses_size(), 1);
        EXPECT_EQ(e.containers_statuses(0).state(), v1::CONTAINER_EXITED);
      }
    }
  }
}

}  // namespace
}  // namespace berth::e2e
