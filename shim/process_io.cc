#include "shim/process_io.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <filesystem>
#include <map>

namespace berth::shim {

namespace asio = boost::asio;

// Copies from one fd to another until EOF (or until drained after close()).
class Copier : public std::enable_shared_from_this<Copier> {
 public:
  // Takes ownership of both fds.
  Copier(asio::io_context& io, int src, int dst, std::function<void()> done)
      : src_(io, src), dst_(io, dst), done_(std::move(done)) {
    src_.non_blocking(true);
    dst_.non_blocking(true);
  }
  void start() { next(); }
  // For a FIFO the client writes: until a writer has come, a read says EOF, but poll/epoll only
  // report it readable (data, or a writer that came and left). So wait for that first.
  void start_when_readable() {
    src_.async_wait(asio::posix::descriptor_base::wait_read,
                    [self = shared_from_this()](const boost::system::error_code& ec) {
                      self->reading_ = false;
                      if (ec) {
                        if (self->closing_ && !self->finished_) {
                          self->next();
                        } else {
                          self->finish();
                        }
                        return;
                      }
                      self->next();
                    });
    reading_ = true;
  }
  // Closes both ends now, without calling `done` (its owner is going away).
  void stop() {
    done_ = nullptr;
    finish();
  }
  // Delivers what can be read now, then closes both ends.
  void drain_and_close() {
    closing_ = true;
    if (reading_) {
      boost::system::error_code ignored;
      src_.cancel(ignored);
    }
  }

 private:
  void next() {
    if (closing_) {
      ssize_t n = ::read(src_.native_handle(), buf_, sizeof buf_);
      if (n > 0) {
        write(static_cast<std::size_t>(n));
      } else {
        finish();
      }
      return;
    }
    reading_ = true;
    src_.async_read_some(
        asio::buffer(buf_),
        [self = shared_from_this()](const boost::system::error_code& ec, std::size_t n) {
          self->reading_ = false;
          if (n > 0) {
            self->write(n);
          } else if (ec == asio::error::operation_aborted && self->closing_ && !self->finished_) {
            self->next();
          } else {
            self->finish();
          }
        });
  }
  void write(std::size_t n) {
    asio::async_write(
        dst_, asio::buffer(buf_, n),
        [self = shared_from_this()](const boost::system::error_code& ec, std::size_t) {
          if (ec) {
            self->finish();
            return;
          }
          self->next();
        });
  }
  void finish() {
    if (finished_) return;
    finished_ = true;
    boost::system::error_code ignored;
    src_.close(ignored);
    dst_.close(ignored);
    if (done_) done_();
  }

  asio::posix::stream_descriptor src_, dst_;
  std::function<void()> done_;
  char buf_[32 * 1024];
  bool reading_ = false, closing_ = false, finished_ = false;
};

namespace {

void close_fd(int& fd) {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

struct Uri {
  std::string scheme, path, query;
};

Uri parse_uri(const std::string& s) {
  Uri u;
  auto pos = s.find("://");
  if (pos == std::string::npos) {
    u.scheme = "fifo";
    u.path = s;
    return u;
  }
  u.scheme = s.substr(0, pos);
  u.path = s.substr(pos + 3);
  if (auto q = u.path.find('?'); q != std::string::npos) {
    u.query = u.path.substr(q + 1);
    u.path.erase(q);
  }
  return u;
}

// Output FIFOs are opened read-write (never blocks, never EPIPE); the stdin FIFO read-only, so the
// client closing its end is EOF.
Result<int> open_fifo(const std::string& path, int mode = O_RDWR) {
  if (::mkfifo(path.c_str(), 0700) < 0 && errno != EEXIST)
    return from_errno(errno, "create fifo {}", path);
  int fd = ::open(path.c_str(), mode | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return from_errno(errno, "open fifo {}", path);
  struct stat st {};
  if (::fstat(fd, &st) < 0 || !S_ISFIFO(st.st_mode)) {
    ::close(fd);
    return invalid_argument("{} is not a FIFO", path);
  }
  return fd;
}

std::string url_decode(const std::string& s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      out += static_cast<char>(std::stoi(s.substr(i + 1, 2), nullptr, 16));
      i += 2;
    } else {
      out += s[i] == '+' ? ' ' : s[i];
    }
  }
  return out;
}

// Starts a binary:// logger; its stdout/stderr pipes' write ends come back in out/err.
Status start_logger(const Uri& u, const IoConfig& c, int& out, int& err) {
  if (u.path.empty() || u.path[0] != '/')
    return invalid_argument("binary log URI needs an absolute path: binary://{}", u.path);
  if (::access(u.path.c_str(), X_OK) < 0) return from_errno(errno, "log binary {}", u.path);
  std::vector<std::string> args{u.path};
  // Query "k=v&x" becomes arguments "k", "v", "x" (containerd's order: key then value).
  std::size_t start = 0;
  while (start < u.query.size()) {
    auto end = u.query.find('&', start);
    if (end == std::string::npos) end = u.query.size();
    std::string kv = u.query.substr(start, end - start);
    if (!kv.empty()) {
      auto eq = kv.find('=');
      args.push_back(url_decode(kv.substr(0, eq)));
      if (eq != std::string::npos && eq + 1 < kv.size())
        args.push_back(url_decode(kv.substr(eq + 1)));
    }
    start = end + 1;
  }
  int po[2], pe[2], pr[2];
  if (::pipe2(po, O_CLOEXEC) < 0) return from_errno(errno, "pipe");
  if (::pipe2(pe, O_CLOEXEC) < 0) return from_errno(errno, "pipe");
  if (::pipe2(pr, O_CLOEXEC) < 0) return from_errno(errno, "pipe");
  pid_t pid = ::fork();
  if (pid < 0) return from_errno(errno, "fork the log binary");
  if (pid == 0) {
    // fds 3, 4, 5 must not be clobbered by each other: move above 5 first.
    int a = ::fcntl(po[0], F_DUPFD, 10), b = ::fcntl(pe[0], F_DUPFD, 10),
        r = ::fcntl(pr[1], F_DUPFD, 10);
    ::dup2(a, 3);
    ::dup2(b, 4);
    ::dup2(r, 5);
    ::close(a);  // else the logger holds a second copy of the ready pipe and never reads as ready
    ::close(b);
    ::close(r);
    int null = ::open("/dev/null", O_RDWR);
    ::dup2(null, 0);
    ::dup2(null, 1);
    ::setenv("CONTAINER_ID", c.container_id.c_str(), 1);
    ::setenv("CONTAINER_NAMESPACE", c.ns.c_str(), 1);
    std::vector<char*> argv;
    for (auto& s : args) argv.push_back(s.data());
    argv.push_back(nullptr);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  ::close(po[0]);
  ::close(pe[0]);
  ::close(pr[1]);
  out = po[1];
  err = pe[1];
  // Ready when it closes fd 5 (or exits); 10 s at most.
  pollfd p{pr[0], POLLIN, 0};
  int rc = ::poll(&p, 1, 10000);
  ::close(pr[0]);
  if (rc == 0)
    return Status(Code::kDeadlineExceeded,
                  fmt::format("log binary {} did not become ready in 10s", u.path));
  return Status();
}

}  // namespace

Result<std::unique_ptr<ProcessIO>> ProcessIO::open(asio::io_context& io, const IoConfig& c) {
  std::unique_ptr<ProcessIO> p(new ProcessIO(io));
  auto fail = [&](Status st) -> Status {
    for (int* fd : {&p->child_[0], &p->child_[1], &p->child_[2], &p->stdin_fifo_, &p->stdin_pipe_,
                    &p->out_src_[0], &p->out_src_[1], &p->out_dst_[0], &p->out_dst_[1]})
      close_fd(*fd);
    return st;
  };
  int null = -1;
  auto dev_null = [&]() -> int {
    if (null < 0) null = ::open("/dev/null", O_RDWR | O_CLOEXEC);
    return ::fcntl(null, F_DUPFD_CLOEXEC, 3);
  };
  struct NullCloser {
    int& fd;
    ~NullCloser() { close_fd(fd); }
  } null_closer{null};

  if (!c.stdin.empty()) {
    auto fifo = open_fifo(parse_uri(c.stdin).path, O_RDONLY);
    if (!fifo.ok()) return fail(fifo.status().with_context("stdin"));
    p->stdin_fifo_ = *fifo;
    if (!c.terminal) {
      int fds[2];
      if (::pipe2(fds, O_CLOEXEC) < 0) return fail(from_errno(errno, "stdin pipe"));
      p->child_[0] = fds[0];
      p->stdin_pipe_ = fds[1];
    }
  } else if (!c.terminal) {
    p->child_[0] = dev_null();
  }
  if (c.terminal) {
    if (!c.stdout.empty()) {
      auto fifo = open_fifo(parse_uri(c.stdout).path);
      if (!fifo.ok()) return fail(fifo.status().with_context("stdout"));
      p->out_dst_[0] = *fifo;
    }
    return p;
  }
  Uri out = parse_uri(c.stdout), err = parse_uri(c.stderr);
  if (!c.stdout.empty() && out.scheme == "binary") {
    Status st = start_logger(out, c, p->child_[1], p->child_[2]);
    if (!st.ok()) return fail(st);
    return p;
  }
  for (int i = 0; i < 2; ++i) {
    const std::string& raw = i == 0 ? c.stdout : c.stderr;
    const Uri& u = i == 0 ? out : err;
    const char* name = i == 0 ? "stdout" : "stderr";
    if (raw.empty()) {
      p->child_[i + 1] = dev_null();
    } else if (u.scheme == "file") {
      std::error_code ec;
      std::filesystem::create_directories(std::filesystem::path(u.path).parent_path(), ec);
      int fd = ::open(u.path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
      if (fd < 0) return fail(from_errno(errno, "{}: open log file {}", name, u.path));
      p->child_[i + 1] = fd;
    } else if (u.scheme == "fifo") {
      auto fifo = open_fifo(u.path);
      if (!fifo.ok()) return fail(fifo.status().with_context(name));
      int fds[2];
      if (::pipe2(fds, O_CLOEXEC) < 0) return fail(from_errno(errno, "{} pipe", name));
      p->out_src_[i] = fds[0];
      p->child_[i + 1] = fds[1];
      p->out_dst_[i] = *fifo;
    } else {
      return fail(invalid_argument("{}: unsupported URI scheme \"{}\" in {}", name, u.scheme, raw));
    }
  }
  return p;
}

ProcessIO::~ProcessIO() {
  for (int* fd : {&child_[0], &child_[1], &child_[2], &stdin_fifo_, &stdin_pipe_, &out_src_[0],
                  &out_src_[1], &out_dst_[0], &out_dst_[1], &console_})
    close_fd(*fd);
  if (stdin_copy_) stdin_copy_->stop();
  for (auto& c : out_copies_) c->stop();
}

void ProcessIO::start(int console) {
  for (int& fd : child_) close_fd(fd);
  auto weak_done = [this] { output_finished(); };
  if (console >= 0) {
    console_ = console;
    if (out_dst_[0] >= 0) {
      ++outputs_open_;
      auto cp = std::make_shared<Copier>(io_, ::fcntl(console_, F_DUPFD_CLOEXEC, 3), out_dst_[0],
                                         weak_done);
      out_dst_[0] = -1;
      out_copies_.push_back(cp);
      cp->start();
    }
    if (stdin_fifo_ >= 0) {
      stdin_copy_ = std::make_shared<Copier>(io_, stdin_fifo_,
                                             ::fcntl(console_, F_DUPFD_CLOEXEC, 3), nullptr);
      stdin_fifo_ = -1;
      stdin_copy_->start_when_readable();
    }
  } else {
    for (int i = 0; i < 2; ++i) {
      if (out_src_[i] < 0) continue;
      ++outputs_open_;
      auto cp = std::make_shared<Copier>(io_, out_src_[i], out_dst_[i], weak_done);
      out_src_[i] = out_dst_[i] = -1;
      out_copies_.push_back(cp);
      cp->start();
    }
    if (stdin_fifo_ >= 0 && stdin_pipe_ >= 0) {
      stdin_copy_ = std::make_shared<Copier>(io_, stdin_fifo_, stdin_pipe_, nullptr);
      stdin_fifo_ = stdin_pipe_ = -1;
      stdin_copy_->start_when_readable();
    }
  }
  if (outputs_open_ == 0) output_finished();
}

void ProcessIO::close_stdin() {
  if (stdin_copy_) {
    stdin_copy_->drain_and_close();
    stdin_copy_.reset();
  }
  close_fd(stdin_pipe_);
  close_fd(stdin_fifo_);
}

void ProcessIO::output_finished() {
  if (outputs_open_ > 0) --outputs_open_;
  if (outputs_open_ > 0) return;
  if (output_done_) {
    auto done = std::move(output_done_);
    output_done_ = nullptr;
    done();
  }
  outputs_open_ = -1;  // finished: later waiters run at once
}

void ProcessIO::on_output_done(std::function<void()> done) {
  if (outputs_open_ < 0) {
    done();
    return;
  }
  output_done_ = std::move(done);
}

Status ProcessIO::resize(unsigned width, unsigned height) {
  if (console_ < 0) return failed_precondition("the process has no terminal");
  winsize ws{};
  ws.ws_col = static_cast<unsigned short>(width);
  ws.ws_row = static_cast<unsigned short>(height);
  if (::ioctl(console_, TIOCSWINSZ, &ws) < 0) return from_errno(errno, "resize the terminal");
  return Status();
}

}  // namespace berth::shim
