// berth-runtime: an OCI runtime with runc's command line (create, start, run, state, list, kill,
// delete, exec, ps, pause, resume, update, events --stats, spec, features), over libberth-oci.
// Errors are one line on stderr and, with --log, a JSON line ({"level","msg","time"}) that
// containerd's runc shim reads back to explain a failure.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <set>

#include "core/fs.h"
#include "core/oci/container.h"
#include "core/oci/sealed_exe.h"
#include "core/signal.h"
#include "core/time.h"

namespace {

using namespace berth;
using nlohmann::json;

struct Global {
  std::string root = "/run/berth-runtime";
  std::string log, log_format = "text";
  bool debug = false, systemd_cgroup = false;
  std::string rootless = "auto";
};

Global g;
int g_exit = 0;
// The verb of a command line: the first argument that is neither an option nor the value of a
// global option that takes one.
std::string verb_of(int argc, char** argv) {
  static const std::set<std::string> with_value = {"--root", "--log", "--log-format", "--rootless",
                                                   "--criu"};
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (with_value.count(a)) {
      ++i;
      continue;
    }
    if (!a.empty() && a[0] == '-') continue;
    return a;
  }
  return "";
}

void log_error(const std::string& msg) {
  std::cerr << "berth-runtime: " << msg << "\n";
  if (g.log.empty()) return;
  std::ofstream out(g.log, std::ios::app);
  if (g.log_format == "json") {
    out << json{{"level", "error"},
                {"msg", msg},
                {"time", core::format_rfc3339(std::chrono::system_clock::now())}}
               .dump()
        << "\n";
  } else {
    out << core::format_rfc3339(std::chrono::system_clock::now()) << " error: " << msg << "\n";
  }
}

oci::Runtime runtime() {
  return oci::Runtime({.root = g.root, .systemd_cgroup = g.systemd_cgroup});
}

// Runs an action, turning a failed Status into the exit code and the error line.
void act(CLI::App* cmd, std::function<Status()> fn) {
  cmd->callback([fn = std::move(fn)] {
    Status st = fn();
    if (!st.ok()) {
      log_error(st.message());
      g_exit = 1;
    }
  });
}

// Copies between our terminal and the container's pty until the process exits.
void relay(int master, pid_t pid, int* status) {
  termios saved{};
  bool tty = ::isatty(0) && ::tcgetattr(0, &saved) == 0;
  if (tty) {
    termios raw = saved;
    ::cfmakeraw(&raw);
    ::tcsetattr(0, TCSANOW, &raw);
    winsize ws{};
    if (::ioctl(0, TIOCGWINSZ, &ws) == 0) ::ioctl(master, TIOCSWINSZ, &ws);
  }
  bool in_open = true;
  for (;;) {
    pollfd fds[2] = {{master, POLLIN, 0}, {0, static_cast<short>(in_open ? POLLIN : 0), 0}};
    int n = ::poll(fds, 2, 100);
    if (n > 0 && (fds[0].revents & (POLLIN | POLLHUP))) {
      char buf[8192];
      ssize_t r = ::read(master, buf, sizeof buf);
      if (r <= 0) break;
      (void)!::write(1, buf, static_cast<std::size_t>(r));
    }
    if (n > 0 && in_open && (fds[1].revents & (POLLIN | POLLHUP))) {
      char buf[8192];
      ssize_t r = ::read(0, buf, sizeof buf);
      if (r <= 0)
        in_open = false;
      else
        (void)!::write(master, buf, static_cast<std::size_t>(r));
    }
    if (::waitpid(pid, status, WNOHANG) == pid) {
      pid = -1;
      break;
    }
  }
  if (pid > 0) ::waitpid(pid, status, 0);
  if (tty) ::tcsetattr(0, TCSANOW, &saved);
}

int exit_code(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 1;
}

// Signals sent to us while we wait for a foreground container go to it.
pid_t g_forward_to = -1;
void forward(int sig) {
  if (g_forward_to > 0) ::kill(g_forward_to, sig);
}
void forward_signals(pid_t pid) {
  g_forward_to = pid;
  struct sigaction sa {};
  sa.sa_handler = forward;
  for (int s : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH})
    ::sigaction(s, &sa, nullptr);
}

Result<oci::Process> process_from_args(const std::vector<std::string>& args,
                                       const std::vector<std::string>& env, const std::string& cwd,
                                       const std::string& user, bool tty, const oci::Spec& spec) {
  oci::Process p = spec.process ? *spec.process : oci::Process{};
  p.args = args;
  p.terminal = tty;
  if (!cwd.empty()) p.cwd = cwd;
  for (const auto& e : env) p.env.push_back(e);
  if (!user.empty()) {
    auto colon = user.find(':');
    try {
      p.user.uid = static_cast<std::uint32_t>(std::stoul(user.substr(0, colon)));
      if (colon != std::string::npos)
        p.user.gid = static_cast<std::uint32_t>(std::stoul(user.substr(colon + 1)));
    } catch (...) {
      return invalid_argument("--user \"{}\" must be UID[:GID]", user);
    }
  }
  return p;
}

// --- the verbs: each registers its options in an object its callback holds ---

struct CreateFlags {
  std::string bundle = ".", pid_file, console_socket, id;
  bool no_pivot = false, no_new_keyring = false;
  int preserve_fds = 0;
};

void add_create_flags(CLI::App* c, CreateFlags& f) {
  c->add_option("--bundle,-b", f.bundle, "bundle directory")->capture_default_str();
  c->add_option("--pid-file", f.pid_file, "write the init's pid here");
  c->add_option("--console-socket", f.console_socket, "unix socket to receive the pty master");
  c->add_flag("--no-pivot", f.no_pivot, "chroot instead of pivot_root");
  c->add_flag("--no-new-keyring", f.no_new_keyring, "ignored");
  c->add_option("--preserve-fds", f.preserve_fds, "pass fds 3 .. 3+N-1 to the container's process");
  c->add_option("id", f.id, "container id")->required();
}

// Forwards signals to `pid`, relays its terminal if it has one, and waits: the exit status
// becomes ours.
void wait_foreground(pid_t pid, int master) {
  forward_signals(pid);
  int status = 0;
  if (master >= 0) {
    relay(master, pid, &status);
  } else {
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
  }
  g_exit = exit_code(status);
}

void add_create(CLI::App& app) {
  auto f = std::make_shared<CreateFlags>();
  auto* create = app.add_subcommand("create", "create a container from a bundle");
  add_create_flags(create, *f);
  act(create, [f] {
    return runtime()
        .create(f->id, {.bundle = f->bundle,
                        .pid_file = f->pid_file,
                        .console_socket = f->console_socket,
                        .no_pivot = f->no_pivot,
                        .no_new_keyring = f->no_new_keyring,
                        .preserve_fds = f->preserve_fds})
        .status();
  });
}

void add_run(CLI::App& app) {
  struct Options {
    CreateFlags create;
    bool detach = false, keep = false;
  };
  auto o = std::make_shared<Options>();
  auto* run = app.add_subcommand("run", "create and start a container, wait for it, delete it");
  add_create_flags(run, o->create);
  run->add_flag("--detach,-d", o->detach, "do not wait");
  run->add_flag("--keep", o->keep, "keep the container after it exits");
  act(run, [o] {
    const CreateFlags& f = o->create;
    oci::Runtime rt = runtime();
    int master = -1;
    // We stay the init's parent, so we can wait for it.
    ::prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    auto st = rt.create(f.id, {.bundle = f.bundle,
                               .pid_file = f.pid_file,
                               .console_socket = f.console_socket,
                               .no_pivot = f.no_pivot,
                               .keep_parent = true,
                               .console_master = o->detach ? nullptr : &master,
                               .preserve_fds = f.preserve_fds});
    if (!st.ok()) return st.status();
    Status s = rt.start(f.id);
    if (!s.ok()) {
      rt.remove(f.id, true).ignore();
      return s;
    }
    if (o->detach) return Status();
    wait_foreground(st->pid, master);
    if (!o->keep) rt.remove(f.id, true).ignore();
    return Status();
  });
}

// The verbs that take a container id and little else.
void add_lifecycle(CLI::App& app) {
  auto id_verb = [&app](const char* name, const char* help,
                        std::function<Status(const std::string&)> fn) {
    auto id = std::make_shared<std::string>();
    auto* cmd = app.add_subcommand(name, help);
    cmd->add_option("id", *id, "container id")->required();
    act(cmd, [id, fn] { return fn(*id); });
    return cmd;
  };
  id_verb("start", "start a created container",
          [](const std::string& id) { return runtime().start(id); });
  id_verb("state", "print a container's state as JSON", [](const std::string& id) -> Status {
    auto st = runtime().state(id);
    if (!st.ok()) return st.status();
    std::cout << st->runc_json() << "\n";
    return Status();
  });
  id_verb("pause", "freeze every process of a container",
          [](const std::string& id) { return runtime().pause(id); });
  id_verb("resume", "thaw a paused container",
          [](const std::string& id) { return runtime().resume(id); });

  struct KillOptions {
    std::string id, signal = "SIGTERM";
    bool all = false;
  };
  auto k = std::make_shared<KillOptions>();
  auto* kill = app.add_subcommand("kill", "send a signal to a container's init: ID [SIGNAL]");
  kill->add_option("id", k->id, "container id")->required();
  kill->add_option("signal", k->signal, "signal name or number")->capture_default_str();
  kill->add_flag("--all,-a", k->all, "signal every process in the container");
  act(kill, [k] {
    auto sig = core::parse_signal(k->signal);
    if (!sig.ok()) return sig.status();
    return runtime().kill(k->id, *sig, k->all);
  });

  auto d = std::make_shared<std::pair<std::string, bool>>();  // id, force
  auto* del = app.add_subcommand("delete", "delete a container")->alias("rm");
  del->add_option("id", d->first, "container id")->required();
  del->add_flag("--force,-f", d->second, "kill it first if it runs");
  act(del, [d] {
    Status st = runtime().remove(d->first, d->second);
    // runc's behaviour: forcing the delete of a container that is already gone succeeds.
    if (d->second && st.code() == Code::kNotFound) return Status();
    return st;
  });
}

void add_list_ps(CLI::App& app) {
  struct Options {
    std::string format = "table", id;
    bool quiet = false;
  };
  auto o = std::make_shared<Options>();
  auto* list = app.add_subcommand("list", "list containers")->alias("ls");
  list->add_option("--format,-f", o->format, "table or json")
      ->check(CLI::IsMember({"table", "json"}));
  list->add_flag("--quiet,-q", o->quiet, "ids only");
  act(list, [o] {
    auto all = runtime().list();
    if (!all.ok()) return all.status();
    if (o->format == "json") {
      json out = json::array();
      for (const auto& c : *all) out.push_back(json::parse(c.runc_json()));
      std::cout << out.dump() << "\n";
    } else if (o->quiet) {
      for (const auto& c : *all) std::cout << c.id << "\n";
    } else {
      std::printf("%-20s %-8s %-10s %-40s %-30s %s\n", "ID", "PID", "STATUS", "BUNDLE", "CREATED",
                  "OWNER");
      for (const auto& c : *all)
        std::printf("%-20s %-8d %-10s %-40s %-30s %s\n", c.id.c_str(),
                    c.status == oci::RunState::kStopped ? 0 : c.pid,
                    oci::status_name(c.status).c_str(), c.bundle.c_str(),
                    core::format_rfc3339(c.created).c_str(), c.owner.c_str());
    }
    return Status();
  });

  auto p = std::make_shared<Options>();
  auto* ps = app.add_subcommand("ps", "list the processes of a container");
  ps->add_option("--format,-f", p->format, "table or json")
      ->check(CLI::IsMember({"table", "json"}));
  ps->add_option("id", p->id, "container id")->required();
  ps->allow_extras();
  act(ps, [p] {
    auto pids = runtime().pids(p->id);
    if (!pids.ok()) return pids.status();
    if (p->format == "json") {
      std::cout << json(*pids).dump() << "\n";
    } else {
      std::cout << "PID\n";
      for (pid_t pid : *pids) std::cout << pid << "\n";
    }
    return Status();
  });
}

void add_exec(CLI::App& app) {
  struct Options {
    std::string id, process_file, cwd, user, pid_file, console_socket;
    std::vector<std::string> env;
    bool tty = false, detach = false;
    int preserve_fds = 0;
  };
  auto o = std::make_shared<Options>();
  auto* exec = app.add_subcommand("exec", "run a process in a container: ID [COMMAND ARGS...]");
  exec->add_option("--process,-p", o->process_file, "process.json to run");
  exec->add_option("--console-socket", o->console_socket, "unix socket to receive the pty master");
  exec->add_option("--pid-file", o->pid_file, "write the process's pid here");
  exec->add_flag("--detach,-d", o->detach, "do not wait for it");
  exec->add_flag("--tty,-t", o->tty, "allocate a pty");
  exec->add_option("--cwd", o->cwd, "working directory");
  exec->add_option("--env,-e", o->env, "NAME=VALUE to add");
  exec->add_option("--user,-u", o->user, "UID[:GID]");
  exec->add_option("--preserve-fds", o->preserve_fds, "pass fds 3 .. 3+N-1 to the process");
  exec->add_option("id", o->id, "container id")->required();
  // Everything after the id is the command, options included (`exec ID sh -c "..."`).
  exec->prefix_command();
  act(exec, [exec, o] {
    std::vector<std::string> args = exec->remaining();
    oci::Runtime rt = runtime();
    oci::ExecOptions e;
    if (!o->process_file.empty()) {
      auto text = core::read_file(o->process_file);
      if (!text.ok()) return text.status();
      auto p = oci::parse_process(*text, o->process_file);
      if (!p.ok()) return p.status();
      e.process = *p;
    } else {
      if (args.empty()) return invalid_argument("exec needs --process or a command");
      auto spec_text = core::read_file(rt.options().root + "/" + o->id + "/config.json");
      if (!spec_text.ok()) return not_found("container \"{}\" does not exist", o->id);
      auto spec = oci::parse_spec(*spec_text);
      if (!spec.ok()) return spec.status();
      auto p = process_from_args(args, o->env, o->cwd, o->user, o->tty, *spec);
      if (!p.ok()) return p.status();
      e.process = *p;
    }
    e.pid_file = o->pid_file;
    e.console_socket = o->console_socket;
    e.detach = o->detach;
    e.preserve_fds = o->preserve_fds;
    int master = -1;
    if (e.process.terminal && o->console_socket.empty()) e.console_master = &master;
    ::prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    auto pid = rt.exec(o->id, e);
    if (!pid.ok()) return pid.status();
    if (o->detach) return Status();
    wait_foreground(*pid, master);
    return Status();
  });
}

void add_update_events(CLI::App& app) {
  auto u = std::make_shared<std::pair<std::string, std::string>>();  // id, resources file
  auto* update = app.add_subcommand("update", "change a container's cgroup limits");
  update->add_option("--resources,-r", u->second, "linux.resources JSON file, or - for stdin")
      ->required();
  update->add_option("id", u->first, "container id")->required();
  act(update, [u] {
    std::string text;
    if (u->second == "-") {
      text.assign(std::istreambuf_iterator<char>(std::cin), {});
    } else {
      auto r = core::read_file(u->second);
      if (!r.ok()) return r.status();
      text = *r;
    }
    auto res = oci::parse_resources(text, u->second);
    if (!res.ok()) return res.status();
    return runtime().update(u->first, *res);
  });

  auto ev = std::make_shared<std::pair<std::string, bool>>();  // id, --stats
  auto* events = app.add_subcommand("events", "container statistics (--stats: once)");
  events->add_flag("--stats", ev->second, "print one statistics event");
  events->add_option("--interval", "ignored")->expected(1);
  events->add_option("id", ev->first, "container id")->required();
  act(events, [ev] {
    auto s = runtime().stats(ev->first);
    if (!s.ok()) return s.status();
    std::cout << json{{"type", "stats"}, {"id", ev->first}, {"data", json::parse(*s)}}.dump()
              << "\n";
    return Status();
  });
}

void add_spec_features(CLI::App& app) {
  auto o = std::make_shared<std::pair<std::string, bool>>(".", false);  // bundle, --rootless
  auto* spec = app.add_subcommand("spec", "write a default config.json into the bundle");
  spec->add_option("--bundle,-b", o->first, "bundle directory")->capture_default_str();
  spec->add_flag("--rootless", o->second, "a spec for an unprivileged user");
  act(spec, [o] {
    std::string path = o->first + "/config.json";
    if (::access(path.c_str(), F_OK) == 0) return already_exists("{} already exists", path);
    return core::write_file_atomic(path, oci::default_spec_json(o->second) + "\n", 0644);
  });

  auto* features = app.add_subcommand("features", "what this runtime supports, as JSON");
  act(features, [] {
    json f = {
        {"ociVersionMin", "1.0.0"},
        {"ociVersionMax", "1.0.2"},
        {"hooks",
         {"prestart", "createRuntime", "createContainer", "startContainer", "poststart",
          "poststop"}},
        {"mountOptions",
         {"bind", "rbind", "ro", "rw", "nosuid", "nodev", "noexec", "relatime", "strictatime",
          "private", "rprivate", "shared", "rshared", "slave", "rslave"}},
        {"linux",
         {{"namespaces", {"cgroup", "ipc", "mount", "network", "pid", "user", "uts"}},
          {"capabilities", {"CAP_CHOWN", "CAP_SYS_ADMIN", "..."}},
          {"cgroup", {{"v1", true}, {"v2", true}, {"systemd", false}, {"systemdUser", false}}},
          {"seccomp", {{"enabled", true}}},
          {"apparmor", {{"enabled", false}}},
          {"selinux", {{"enabled", false}}}}}};
    std::cout << f.dump(2) << "\n";
    return Status();
  });

  for (const char* unsupported : {"checkpoint", "restore"}) {
    auto* c = app.add_subcommand(unsupported, "not supported");
    c->allow_extras();
    c->callback([unsupported] {
      log_error(std::string(unsupported) + " is not supported by berth-runtime");
      g_exit = 1;
    });
  }
}

}  // namespace

int main(int argc, char** argv) {
  // create, run and exec clone container processes from this program: before anything else
  // (the command line is parsed once, after it), they run it from a write-protected copy
  // (core/oci/sealed_exe.h).
  if (std::string verb = verb_of(argc, argv); verb == "create" || verb == "run" || verb == "exec") {
    Status st = oci::reexec_sealed(argv, environ);
    if (!st.ok()) {
      std::cerr << "berth-runtime: " << st.message() << "\n";
      return 1;
    }
  }
  CLI::App app{"berth-runtime - OCI runtime (runc-compatible command line)"};
  app.set_version_flag("--version,-v",
                       std::string("berth-runtime ") + BERTH_VERSION + "\nspec: 1.0.2");
  app.require_subcommand(1);
  app.add_option("--root", g.root, "state directory for containers")->capture_default_str();
  app.add_option("--log", g.log, "log file (errors; JSON with --log-format json)");
  app.add_option("--log-format", g.log_format, "text or json")
      ->check(CLI::IsMember({"text", "json"}));
  app.add_flag("--debug", g.debug, "more logging");
  app.add_flag("--systemd-cgroup", g.systemd_cgroup, "use systemd cgroup paths (unsupported)");
  app.add_option("--rootless", g.rootless, "ignored (true|false|auto)");
  app.add_option("--criu", "ignored")->expected(1);
  for (auto* add : {add_create, add_run, add_lifecycle, add_list_ps, add_exec, add_update_events,
                    add_spec_features})
    add(app);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  return g_exit;
}
