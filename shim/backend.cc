#include "shim/backend.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/fd.h"
#include "core/fs.h"
#include "core/oci/container.h"
#include "core/oci/unix_socket.h"

namespace berth::shim {

namespace {

using nlohmann::json;

class InProcess final : public Backend {
 public:
  explicit InProcess(const std::string& bundle) : rt_(oci::RuntimeOptions{bundle + "/.runtime"}) {}

  Result<Started> create(const CreateRequest& r) override {
    oci::CreateOptions co;
    co.bundle = r.bundle;
    co.keep_parent = true;
    co.no_pivot = r.no_pivot;
    co.no_new_keyring = r.no_new_keyring;
    std::copy(std::begin(r.stdio), std::end(r.stdio), co.stdio);
    Started s;
    if (r.terminal) co.console_master = &s.console;
    BERTH_TRY(auto st, rt_.create(r.id, co));
    s.pid = st.pid;
    s.cgroup_path = st.cgroup_path;
    return s;
  }
  Status start(const std::string& id) override { return rt_.start(id); }
  Result<Started> exec(const ExecRequest& r) override {
    oci::ExecOptions eo;
    eo.process = r.process;
    std::copy(std::begin(r.stdio), std::end(r.stdio), eo.stdio);
    Started s;
    if (r.process.terminal) eo.console_master = &s.console;
    BERTH_TRY(s.pid, rt_.exec(r.id, eo));
    return s;
  }
  Status kill(const std::string& id, int signal, bool all) override {
    return rt_.kill(id, signal, all);
  }
  Status remove(const std::string& id) override { return rt_.remove(id, true); }
  Status pause(const std::string& id) override { return rt_.pause(id); }
  Status resume(const std::string& id) override { return rt_.resume(id); }
  Result<std::vector<pid_t>> pids(const std::string& id) override { return rt_.pids(id); }
  Status update(const std::string& id, const std::string& resources) override {
    BERTH_TRY(auto res, oci::parse_resources(resources, "resources"));
    return rt_.update(id, res);
  }

 private:
  oci::Runtime rt_;
};

// A listening socket for --console-socket, removed with the object.
struct ConsoleSocket {
  std::string path;
  core::Fd fd;
  static Result<ConsoleSocket> open() {
    static int counter = 0;
    ConsoleSocket s;
    std::error_code ec;
    std::filesystem::create_directories("/run/berth", ec);
    s.path = fmt::format("/run/berth/console-{}-{}.sock", ::getpid(), counter++);
    ::unlink(s.path.c_str());
    s.fd = core::Fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::strncpy(sa.sun_path, s.path.c_str(), sizeof sa.sun_path - 1);
    if (::bind(s.fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) < 0 ||
        ::listen(s.fd.get(), 1) < 0)
      return from_errno(errno, "console socket {}", s.path);
    return s;
  }
  ConsoleSocket() = default;
  ConsoleSocket(ConsoleSocket&&) = default;
  ~ConsoleSocket() {
    if (!path.empty() && fd.get() >= 0) ::unlink(path.c_str());
  }
};

class Binary final : public Backend {
 public:
  Binary(std::string binary, std::string root, std::string bundle)
      : binary_(std::move(binary)), root_(std::move(root)), bundle_(std::move(bundle)) {}

  Result<Started> create(const CreateRequest& r) override {
    Started s;
    std::vector<std::string> args = {"create", "--bundle", r.bundle, "--pid-file",
                                     bundle_ + "/init.pid"};
    if (r.no_pivot) args.push_back("--no-pivot");
    if (r.no_new_keyring) args.push_back("--no-new-keyring");
    BERTH_RETURN_IF_ERROR(run(args, r.id, r.stdio, r.terminal ? &s.console : nullptr));
    BERTH_TRY(s.pid, read_pid(bundle_ + "/init.pid"));
    auto config = core::read_file(r.bundle + "/config.json");
    json spec = json::parse(config.ok() ? *config : "", nullptr, false);
    s.cgroup_path = "/" + r.id;
    if (spec.is_object() && spec.contains("linux") && spec["linux"].is_object() &&
        spec["linux"].value("cgroupsPath", "") != "")
      s.cgroup_path = spec["linux"]["cgroupsPath"];
    return s;
  }
  Status start(const std::string& id) override { return run({"start"}, id); }
  Result<Started> exec(const ExecRequest& r) override {
    std::string process = fmt::format("{}/.exec-{}.json", bundle_, r.exec_id);
    std::string pid_file = fmt::format("{}/.exec-{}.pid", bundle_, r.exec_id);
    BERTH_RETURN_IF_ERROR(core::write_file_atomic(process, r.process_json, 0600, core::Durability::kVolatile));
    Started s;
    Status st = run({"exec", "--process", process, "--pid-file", pid_file, "--detach"}, r.id,
                    r.stdio, r.process.terminal ? &s.console : nullptr);
    ::unlink(process.c_str());
    BERTH_RETURN_IF_ERROR(st);
    auto pid = read_pid(pid_file);
    ::unlink(pid_file.c_str());
    BERTH_TRY(s.pid, std::move(pid));
    return s;
  }
  Status kill(const std::string& id, int signal, bool all) override {
    std::vector<std::string> args = {"kill"};
    if (all) args.push_back("--all");
    return run(args, id, nullptr, nullptr, {std::to_string(signal)});
  }
  Status remove(const std::string& id) override { return run({"delete", "--force"}, id); }
  Status pause(const std::string& id) override { return run({"pause"}, id); }
  Status resume(const std::string& id) override { return run({"resume"}, id); }
  Result<std::vector<pid_t>> pids(const std::string& id) override {
    std::string out;
    BERTH_RETURN_IF_ERROR(run({"ps", "--format", "json"}, id, nullptr, nullptr, {}, "", &out));
    json j = json::parse(out, nullptr, false);
    if (!j.is_array()) return internal_error("{} ps: unexpected output \"{}\"", binary_, out);
    std::vector<pid_t> pids;
    for (const auto& p : j) pids.push_back(p.get<pid_t>());
    return pids;
  }
  Status update(const std::string& id, const std::string& resources) override {
    return run({"update", "--resources", "-"}, id, nullptr, nullptr, {}, resources);
  }

 private:
  static Result<pid_t> read_pid(const std::string& path) {
    auto text = core::read_file(path);
    if (!text.ok()) return text.status().with_context("pid file");
    try {
      return static_cast<pid_t>(std::stol(*text));
    } catch (...) {
      return internal_error("pid file {}: \"{}\" is not a pid", path, *text);
    }
  }

  // The runtime's last error from its JSON log ({"level":"error","msg":...}).
  std::string last_error() const {
    auto text = core::read_file(bundle_ + "/log.json");
    if (!text.ok()) return "";
    std::string last;
    std::size_t start = 0;
    while (start < text->size()) {
      auto end = text->find('\n', start);
      if (end == std::string::npos) end = text->size();
      json j = json::parse(text->substr(start, end - start), nullptr, false);
      if (j.is_object() && j.value("level", "") == "error") last = j.value("msg", "");
      start = end + 1;
    }
    return last;
  }

  // <binary> --root R --log <bundle>/log.json --log-format json <args> [id] [extra...]
  Status run(std::vector<std::string> args, const std::string& id, const int* stdio = nullptr,
             int* console = nullptr, const std::vector<std::string>& extra = {},
             const std::string& input = "", std::string* output = nullptr) {
    std::vector<std::string> argv = {
        binary_, "--root", root_, "--log", bundle_ + "/log.json", "--log-format", "json"};
    std::string command = args.front();
    std::optional<ConsoleSocket> cs;
    if (console) {
      BERTH_TRY(auto s, ConsoleSocket::open());
      cs.emplace(std::move(s));
      args.push_back("--console-socket");
      args.push_back(cs->path);
    }
    argv.insert(argv.end(), args.begin(), args.end());
    argv.push_back(id);
    argv.insert(argv.end(), extra.begin(), extra.end());
    int in[2] = {-1, -1}, out[2] = {-1, -1};
    if (!input.empty() && ::pipe2(in, O_CLOEXEC) < 0) return from_errno(errno, "pipe");
    if (output && ::pipe2(out, O_CLOEXEC) < 0) return from_errno(errno, "pipe");
    core::Fd in_r(in[0]), in_w(in[1]), out_r(out[0]), out_w(out[1]);
    int fds[3] = {in_r.get(), out_w.get(), -1};
    if (stdio) std::copy(stdio, stdio + 3, fds);
    std::vector<char*> cargv;
    for (auto& a : argv) cargv.push_back(a.data());
    cargv.push_back(nullptr);
    pid_t pid = ::fork();
    if (pid < 0) return from_errno(errno, "fork {}", binary_);
    if (pid == 0) {
      int null = ::open("/dev/null", O_RDWR);
      int moved[3];
      for (int i = 0; i < 3; ++i) moved[i] = ::fcntl(fds[i] >= 0 ? fds[i] : null, F_DUPFD, 10);
      for (int i = 0; i < 3; ++i) ::dup2(moved[i], i);
      for (int i = 0; i < 3; ++i) ::close(moved[i]);
      struct sigaction sa {};
      sa.sa_handler = SIG_DFL;
      for (int s = 1; s < NSIG; ++s) ::sigaction(s, &sa, nullptr);
      sigset_t none;
      ::sigemptyset(&none);
      ::sigprocmask(SIG_SETMASK, &none, nullptr);
      ::execv(cargv[0], cargv.data());
      ::_exit(127);
    }
    in_r = core::Fd();
    out_w = core::Fd();
    if (!input.empty()) (void)!::write(in_w.get(), input.data(), input.size());
    in_w = core::Fd();
    Status console_status;
    if (cs) {
      // The runtime sends the pty master while it creates the process, then exits.
      pollfd p{cs->fd.get(), POLLIN, 0};
      int rc = ::poll(&p, 1, 30000);
      if (rc > 0) {
        core::Fd conn(::accept4(cs->fd.get(), nullptr, nullptr, SOCK_CLOEXEC));
        auto master =
            conn.get() >= 0 ? oci::recv_fd(conn.get()) : Result<int>(from_errno(errno, "accept"));
        if (master.ok()) {
          *console = *master;
        } else {
          console_status = master.status();
        }
      } else {
        console_status = Status(Code::kDeadlineExceeded, "no console from the runtime within 30s");
      }
    }
    if (output) {
      char buf[4096];
      ssize_t n;
      while ((n = ::read(out_r.get(), buf, sizeof buf)) > 0)
        output->append(buf, static_cast<std::size_t>(n));
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      if (console && *console >= 0) {
        ::close(*console);
        *console = -1;
      }
      std::string why = last_error();
      return Status(Code::kFailedPrecondition,
                    fmt::format("{} {}: {}", binary_, command,
                                why.empty() ? fmt::format("exit status {:#x}", status) : why));
    }
    return console_status;
  }

  std::string binary_, root_, bundle_;
};

}  // namespace

std::unique_ptr<Backend> in_process_backend(const std::string& bundle) {
  return std::make_unique<InProcess>(bundle);
}

std::unique_ptr<Backend> binary_backend(const std::string& binary, const std::string& root,
                                        const std::string& bundle) {
  return std::make_unique<Binary>(binary, root.empty() ? bundle + "/.runtime" : root, bundle);
}

}  // namespace berth::shim
