// Berth's ttrpc client against containerd's own shim (Go ttrpc): containerd-shim-runc-v2 is
// started the way containerd starts it (bundle with a `log` FIFO, `start` prints the socket
// address), then Connect, State of a task that does not exist (an error status crossing the
// wire) and Shutdown go over our client.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <thread>

#include "core/fs.h"
#include "github.com/containerd/containerd/runtime/v2/task/shim.pb.h"
#include "core/ttrpc/ttrpc.h"
#include "tests/e2e/harness.h"

namespace berth::e2e {
namespace {

namespace task = ::containerd::task::v2;
constexpr const char* kTask = "containerd.task.v2.Task";

TEST(ShimInteropTest, BerthTtrpcClientTalksToContainerdsShim) {
  if (::geteuid() != 0) GTEST_SKIP() << "the shim needs root";
  if (::access("/usr/bin/containerd-shim-runc-v2", X_OK) != 0) GTEST_SKIP() << "containerd not installed";
  auto dir = core::TempDir::create("berth-shim-");
  ASSERT_TRUE(dir.ok());
  std::string bundle = dir->path() + "/bundle";
  ASSERT_EQ(::mkdir(bundle.c_str(), 0700), 0);
  ASSERT_EQ(::mkfifo((bundle + "/log").c_str(), 0600), 0);
  ASSERT_TRUE(core::write_file_atomic(bundle + "/config.json", "{}").ok());
  // Drain the shim's log FIFO, as containerd does; joined however the test ends.
  struct Drain {
    std::string log;
    std::thread t;
    ~Drain() {
      int w = ::open(log.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);  // unblocks a reader that never saw a writer
      if (w >= 0) ::close(w);
      if (t.joinable()) t.join();
    }
  } drain{bundle + "/log", {}};
  drain.t = std::thread([log = drain.log] {
    int fd = ::open(log.c_str(), O_RDONLY | O_CLOEXEC);
    char buf[4096];
    while (fd >= 0 && ::read(fd, buf, sizeof buf) > 0) {
    }
    if (fd >= 0) ::close(fd);
  });
  std::string id = "interop-" + std::to_string(::getpid());
  std::string ns = "berth-interop";
  auto start = run({"/bin/sh", "-c",
                    "cd " + bundle + " && exec /usr/bin/containerd-shim-runc-v2 -namespace " + ns + " -id " + id +
                        " -address " + dir->path() + "/containerd.sock -publish-binary /bin/true start"});
  ASSERT_EQ(start.exit_code, 0) << diag(start);
  ASSERT_EQ(start.out.rfind("unix://", 0), 0u) << start.out;
  std::string socket = start.out.substr(7);
  while (!socket.empty() && (socket.back() == '\n' || socket.back() == ' ')) socket.pop_back();

  pid_t shim_pid = 0;
  {
    auto client = ttrpc::Client::connect(socket);
    ASSERT_TRUE(client.ok()) << client.status().message();
    ttrpc::Metadata md = {{ttrpc::kNamespaceKey, ns}};
    task::ConnectRequest creq;
    creq.set_id(id);
    task::ConnectResponse cresp;
    Status st = (*client)->call(kTask, "Connect", creq, &cresp, md, std::chrono::seconds(10));
    ASSERT_TRUE(st.ok()) << st.message();
    shim_pid = static_cast<pid_t>(cresp.shim_pid());
    EXPECT_GT(shim_pid, 0);

    task::StateRequest sreq;
    sreq.set_id(id);
    task::StateResponse sresp;
    Status none = (*client)->call(kTask, "State", sreq, &sresp, md, std::chrono::seconds(10));
    EXPECT_FALSE(none.ok());  // no task was created: the shim's error comes back as a status
    EXPECT_FALSE(none.message().empty());

    task::ShutdownRequest down;
    down.set_id(id);
    down.set_now(true);
    (*client)->call(kTask, "Shutdown", down, nullptr, md, std::chrono::seconds(10)).ignore();
  }
  for (int i = 0; i < 100 && shim_pid > 0 && ::kill(shim_pid, 0) == 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  if (shim_pid > 0 && ::kill(shim_pid, 0) == 0) {
    ::kill(shim_pid, SIGKILL);
    ADD_FAILURE() << "the shim did not shut down";
  }
  ::unlink(socket.c_str());
}

}  // namespace
}  // namespace berth::e2e
