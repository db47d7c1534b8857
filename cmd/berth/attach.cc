#include "cmd/berth/attach.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <filesystem>
#include <optional>
#include <random>
#include <thread>

#include "github.com/containerd/containerd/api/services/tasks/v1/tasks.grpc.pb.h"

namespace berth::cli {

namespace tpb = ::containerd::services::tasks::v1;
namespace fs = std::filesystem;

constexpr const char* kFifoRoot = "/run/berth/fifo";

namespace {

std::unique_ptr<tpb::Tasks::Stub> tasks(Client& c) { return tpb::Tasks::NewStub(c.channel()); }

}  // namespace

Status Attachment::open(const std::string& in, const std::string& out, const std::string& err) {
  // Read ends first (non-blocking open needs no writer); our stdin side read-write, so opening
  // does not wait for the shim, and closing it is the process's EOF.
  if (!out.empty()) {
    BERTH_TRY(out_, open_fifo(out, O_RDONLY));
  }
  if (!err.empty()) {
    BERTH_TRY(err_, open_fifo(err, O_RDONLY));
  }
  if (!in.empty()) {
    BERTH_TRY(in_, open_fifo(in, O_RDWR));
  }
  return Status();
}

void Attachment::start() {
  // Counted here, not in the threads: finish() must not see 0 before a slow thread has begun.
  for (int fd : {out_, err_}) {
    if (fd < 0) continue;
    ++open_outputs_;
    copiers_.emplace_back([this, fd] { copy_out(fd, fd == out_ ? 1 : 2); });
  }
  if (in_ >= 0) {
    // Never joined: a read of our stdin may block until we exit.
    std::thread([fd = in_] {
      char buf[32 * 1024];
      for (;;) {
        ssize_t n = ::read(0, buf, sizeof buf);
        if (n <= 0) break;
        if (!write_all(fd, buf, static_cast<std::size_t>(n))) break;
      }
      ::close(fd);
    }).detach();
  }
}

void Attachment::finish(std::chrono::milliseconds grace) {
  auto deadline = std::chrono::steady_clock::now() + grace;
  while (open_outputs_ > 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  stop_ = true;
  for (auto& t : copiers_) t.join();
  copiers_.clear();
}

Attachment::~Attachment() {
  stop_ = true;
  for (auto& t : copiers_) t.join();
}

Result<int> Attachment::open_fifo(const std::string& path, int mode) {
  int fd = ::open(path.c_str(), mode | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return from_errno(errno, "open {}", path);
  return fd;
}

bool Attachment::write_all(int fd, const char* p, std::size_t n) {
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0 && (errno == EINTR || errno == EAGAIN)) {
      pollfd pf{fd, POLLOUT, 0};
      ::poll(&pf, 1, 100);
      continue;
    }
    if (w <= 0) return false;
    p += w;
    n -= static_cast<std::size_t>(w);
  }
  return true;
}

void Attachment::copy_out(int fd, int to) {
  char buf[32 * 1024];
  // Until the shim opens its end a read says EOF; poll reports readable only once data is
  // there or a writer came and left.
  while (!stop_) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 50) <= 0) continue;
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n > 0) {
      if (!write_all(to, buf, static_cast<std::size_t>(n))) break;
      continue;
    }
    if (n == 0 || (errno != EAGAIN && errno != EINTR)) break;
  }
  ::close(fd);
  --open_outputs_;
}

Result<std::unique_ptr<Fifos>> Fifos::attach(const std::string& id, bool tty, Attachment& io) {
  std::unique_ptr<Fifos> f(new Fifos);
  f->dir = fmt::format("{}/{}", kFifoRoot, random_hex(16));
  std::error_code ec;
  fs::create_directories(f->dir, ec);
  if (ec) return internal_error("create {}: {}", f->dir, ec.message());
  ::chmod(f->dir.c_str(), 0700);
  f->in = f->dir + "/" + id + "-stdin";
  f->out = f->dir + "/" + id + "-stdout";
  if (!tty) f->err = f->dir + "/" + id + "-stderr";  // a terminal has no separate stderr
  for (const auto& p : {f->in, f->out, f->err}) {
    if (!p.empty() && ::mkfifo(p.c_str(), 0700) < 0) return from_errno(errno, "mkfifo {}", p);
  }
  BERTH_RETURN_IF_ERROR(io.open(f->in, f->out, f->err));
  return f;
}

Fifos::~Fifos() {
  std::error_code ec;
  fs::remove_all(dir, ec);
}

std::string random_hex(int bytes) {
  std::random_device rd;
  std::string out;
  for (int i = 0; i < bytes; ++i) out += fmt::format("{:02x}", rd() & 0xff);
  return out;
}

namespace {

// Raw mode on our terminal for the life of the object.
class RawTerminal {
 public:
  RawTerminal() {
    if (!::isatty(0) || ::tcgetattr(0, &saved_) < 0) return;
    termios raw = saved_;
    ::cfmakeraw(&raw);
    raw.c_oflag |= OPOST;  // keep \n -> \r\n for our own messages
    active_ = ::tcsetattr(0, TCSANOW, &raw) == 0;
  }
  ~RawTerminal() {
    if (active_) ::tcsetattr(0, TCSANOW, &saved_);
  }

 private:
  termios saved_{};
  bool active_ = false;
};

Status resize(Client& c, const std::string& id, const std::string& exec_id) {
  winsize ws{};
  if (::ioctl(0, TIOCGWINSZ, &ws) < 0 || ws.ws_col == 0) return Status();
  tpb::ResizePtyRequest req;
  req.set_container_id(id);
  req.set_exec_id(exec_id);
  req.set_width(ws.ws_col);
  req.set_height(ws.ws_row);
  google::protobuf::Empty e;
  auto ctx = c.context();
  return c.check(tasks(c)->ResizePty(ctx.get(), req, &e), "resize terminal");
}

// The foreground's signals arrive on a pipe: the handler is process-wide, so whichever thread takes
// a signal (gRPC's own threads included, which a blocked mask would not cover) passes it on.
int g_relay_fd = -1;
extern "C" void relay_signal(int sig) {
  int saved = errno;
  unsigned char b = static_cast<unsigned char>(sig);
  (void)!::write(g_relay_fd, &b, 1);
  errno = saved;
}

class SignalRelay {
 public:
  SignalRelay() {
    if (::pipe2(fds_, O_CLOEXEC) < 0) return;
    g_relay_fd = fds_[1];
    struct sigaction sa {};
    sa.sa_handler = relay_signal;
    sa.sa_flags = SA_RESTART;
    ::sigemptyset(&sa.sa_mask);
    for (std::size_t i = 0; i < kSignals.size(); ++i) ::sigaction(kSignals[i], &sa, &old_[i]);
  }
  ~SignalRelay() {
    for (std::size_t i = 0; i < kSignals.size(); ++i) ::sigaction(kSignals[i], &old_[i], nullptr);
    g_relay_fd = -1;
    for (int fd : fds_) {
      if (fd >= 0) ::close(fd);
    }
  }
  // The next signal; 0 once stop() was called.
  int next() {
    unsigned char b = 0;
    for (;;) {
      ssize_t n = ::read(fds_[0], &b, 1);
      if (n == 1) return b;
      if (n < 0 && errno == EINTR) continue;
      return 0;
    }
  }
  void stop() {
    unsigned char zero = 0;
    (void)!::write(fds_[1], &zero, 1);
  }

 private:
  static constexpr std::array<int, 4> kSignals = {SIGINT, SIGTERM, SIGHUP, SIGWINCH};
  int fds_[2] = {-1, -1};
  struct sigaction old_[4]{};
};

}  // namespace

// Runs a created process in the foreground: relays IO, forwards signals (resizes with -t), waits.
Result<Exited> foreground(Client& c, const std::string& id, const std::string& exec_id, bool tty,
                          Attachment& io, const std::function<Result<std::uint32_t>()>& start) {
  SignalRelay relay;
  std::optional<RawTerminal> raw;
  if (tty) raw.emplace();
  io.start();
  // A task's pty exists from Create: sized before the process runs (an exec's comes with Start).
  if (tty && exec_id.empty()) resize(c, id, exec_id).ignore();
  BERTH_RETURN_IF_ERROR(start().status());
  if (tty && !exec_id.empty()) resize(c, id, exec_id).ignore();
  std::thread signals([&] {
    for (int sig; (sig = relay.next()) > 0;) {
      if (sig == SIGWINCH) {
        if (tty) resize(c, id, exec_id).ignore();
        continue;
      }
      if (tty) continue;  // the terminal delivers ^C itself
      tpb::KillRequest req;
      req.set_container_id(id);
      req.set_exec_id(exec_id);
      req.set_signal(static_cast<std::uint32_t>(sig));
      google::protobuf::Empty e;
      auto ctx = c.context();
      tasks(c)->Kill(ctx.get(), req, &e);
    }
  });
  tpb::WaitRequest wr;
  wr.set_container_id(id);
  wr.set_exec_id(exec_id);
  tpb::WaitResponse wresp;
  auto wctx = c.long_context();
  Status ws = c.check(tasks(c)->Wait(wctx.get(), wr, &wresp), "wait for " + id);
  relay.stop();
  signals.join();
  io.finish(std::chrono::seconds(2));
  raw.reset();
  BERTH_RETURN_IF_ERROR(ws);
  return Exited{wresp.exit_status()};
}

}  // namespace berth::cli
