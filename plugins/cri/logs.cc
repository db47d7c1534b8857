#include "plugins/cri/logs.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <filesystem>

#include "core/fd.h"
#include "core/fs.h"
#include "core/log.h"
#include "core/time.h"

namespace berth::cri {

std::string cri_log_line(std::string_view stream, bool partial, std::string_view text) {
  std::string out = core::format_rfc3339(std::chrono::system_clock::now());
  out.reserve(out.size() + stream.size() + text.size() + 5);
  out += ' ';
  out += stream;
  out += partial ? " P " : " F ";
  out += text;
  out += '\n';
  return out;
}

struct LogWriter::Stream {
  std::string name;
  boost::asio::posix::stream_descriptor sd;
  std::string pending;
  std::array<char, 32 * 1024> buf;
  Stream(boost::asio::io_context& io, std::string n, int fd) : name(std::move(n)), sd(io, fd) {}
};

struct LogWriter::Entry {
  std::string id, log_path;
  std::mutex file_mu;
  core::Fd file;
  std::vector<std::shared_ptr<Stream>> streams;
  std::vector<core::Fd> keepalive;
  int open_streams = 0;  // io thread only
  bool done = false;     // under LogWriter::mu_
  bool removed = false;  // io thread only
};

namespace {

Result<core::Fd> open_log(const std::string& path) {
  if (path.empty()) return core::Fd();
  auto dir = std::filesystem::path(path).parent_path().string();
  if (!dir.empty()) BERTH_RETURN_IF_ERROR(core::make_dirs(dir, 0755));
  int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0640);
  if (fd < 0) return from_errno(errno, "open log file {}", path);
  return core::Fd(fd);
}

Result<core::Fd> open_fifo(const std::string& path, int mode) {
  if (::mkfifo(path.c_str(), 0600) < 0 && errno != EEXIST)
    return from_errno(errno, "create fifo {}", path);
  int fd = ::open(path.c_str(), mode | O_NONBLOCK | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return from_errno(errno, "open fifo {}", path);
  core::Fd owned(fd);
  struct stat st {};
  if (::fstat(fd, &st) < 0 || !S_ISFIFO(st.st_mode))
    return failed_precondition("{} is not a FIFO", path);
  return owned;
}

}  // namespace

LogWriter::LogWriter() : work_(boost::asio::make_work_guard(io_)) {
  thread_ = std::thread([this] { io_.run(); });
}

LogWriter::~LogWriter() {
  work_.reset();
  io_.stop();
  if (thread_.joinable()) thread_.join();
}

Status LogWriter::add(const std::string& id, const std::string& log_path,
                      const std::map<std::string, std::string>& fifos) {
  auto e = std::make_shared<Entry>();
  e->id = id;
  e->log_path = log_path;
  BERTH_TRY(e->file, open_log(log_path));
  std::vector<std::pair<std::string, core::Fd>> readers;
  for (const auto& [name, path] : fifos) {
    BERTH_TRY(auto r, open_fifo(path, O_RDONLY));
    BERTH_TRY(auto w, open_fifo(path, O_WRONLY));
    readers.emplace_back(name, std::move(r));
    e->keepalive.push_back(std::move(w));
  }
  {
    std::lock_guard lock(mu_);
    if (entries_.count(id)) return already_exists("logs of {} are already copied", id);
    entries_[id] = e;
    if (readers.empty()) e->done = true;
  }
  boost::asio::post(io_, [this, e, readers = std::make_shared<decltype(readers)>(
                                       std::move(readers))]() mutable {
    for (auto& [name, fd] : *readers) {
      auto s = std::make_shared<Stream>(io_, name, fd.release());
      e->streams.push_back(s);
      ++e->open_streams;
      read_more(e, s);
    }
  });
  return Status();
}

void LogWriter::connected(const std::string& id) {
  std::shared_ptr<Entry> e;
  {
    std::lock_guard lock(mu_);
    auto it = entries_.find(id);
    if (it == entries_.end()) return;
    e = it->second;
  }
  boost::asio::post(io_, [e] { e->keepalive.clear(); });
}

void LogWriter::read_more(const std::shared_ptr<Entry>& e, const std::shared_ptr<Stream>& s) {
  s->sd.async_read_some(
      boost::asio::buffer(s->buf), [this, e, s](const boost::system::error_code& ec, std::size_t n) {
        if (e->removed) return;
        if (n > 0) {
          s->pending.append(s->buf.data(), n);
          std::size_t start = 0;
          for (;;) {
            auto nl = s->pending.find('\n', start);
            if (nl != std::string::npos && nl - start <= kMaxLine) {
              write(*e, s->name, false, std::string_view(s->pending).substr(start, nl - start));
              start = nl + 1;
            } else if (s->pending.size() - start >= kMaxLine) {
              write(*e, s->name, true, std::string_view(s->pending).substr(start, kMaxLine));
              start += kMaxLine;
            } else {
              break;
            }
          }
          s->pending.erase(0, start);
        }
        if (ec) {
          if (ec != boost::asio::error::eof && ec != boost::asio::error::operation_aborted)
            log::warn("cri: reading container output failed",
                      {{"id", e->id}, {"stream", s->name}, {"error", ec.message()}});
          if (!s->pending.empty()) write(*e, s->name, false, s->pending);
          s->pending.clear();
          boost::system::error_code ignored;
          s->sd.close(ignored);
          if (--e->open_streams == 0) finished(e);
          return;
        }
        read_more(e, s);
      });
}

void LogWriter::write(Entry& e, std::string_view stream, bool partial, std::string_view text) {
  std::lock_guard lock(e.file_mu);
  if (e.file.get() < 0) return;
  std::string line = cri_log_line(stream, partial, text);
  std::string_view rest = line;
  while (!rest.empty()) {
    ssize_t w = ::write(e.file.get(), rest.data(), rest.size());
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      log::warn("cri: writing the container log failed",
                {{"id", e.id}, {"path", e.log_path}, {"error", std::strerror(errno)}});
      return;
    }
    rest.remove_prefix(static_cast<std::size_t>(w));
  }
}

void LogWriter::finished(const std::shared_ptr<Entry>& e) {
  std::lock_guard lock(mu_);
  e->done = true;
  drained_.notify_all();
}

Status LogWriter::reopen(const std::string& id) {
  std::shared_ptr<Entry> e;
  {
    std::lock_guard lock(mu_);
    auto it = entries_.find(id);
    if (it == entries_.end()) return not_found("container {} has no log being written", id);
    e = it->second;
  }
  BERTH_TRY(auto file, open_log(e->log_path));
  std::lock_guard lock(e->file_mu);
  e->file = std::move(file);
  return Status();
}

bool LogWriter::drain(const std::string& id, std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  auto it = entries_.find(id);
  if (it == entries_.end()) return true;
  auto e = it->second;
  return drained_.wait_for(lock, timeout, [&] { return e->done; });
}

void LogWriter::remove(const std::string& id) {
  std::shared_ptr<Entry> e;
  {
    std::lock_guard lock(mu_);
    auto it = entries_.find(id);
    if (it == entries_.end()) return;
    e = it->second;
    entries_.erase(it);
  }
  boost::asio::post(io_, [e] {
    e->removed = true;
    for (auto& s : e->streams) {
      boost::system::error_code ignored;
      s->sd.close(ignored);
    }
    e->streams.clear();
    e->keepalive.clear();
  });
}

bool LogWriter::has(const std::string& id) {
  std::lock_guard lock(mu_);
  return entries_.count(id) > 0;
}

}  // namespace berth::cri
