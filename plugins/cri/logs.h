// Container logs in the CRI format, written by the daemon: the shim copies a container's stdout
// and stderr into two FIFOs in the CRI's state directory (plain FIFO paths work with every shim),
// and one I/O thread here reads them and appends to the kubelet's log file, one line each:
//
//   2026-12-04T17:15:23.123456789Z stdout F a whole line
//   2026-12-04T17:15:23.2Z stderr P the first 16 KiB of a longer line
//
// Lines longer than `max_line` are cut into P(artial) pieces ending with an F(ull) one. Reopen
// (the kubelet's rotation: it renames the file, then calls ReopenContainerLog) switches to a new
// file at the same path. After a daemon restart the FIFOs are opened again: the shim kept its
// ends, so nothing the container wrote meanwhile is lost (it waited in the FIFO).
#pragma once

#include <berth/result.h>

#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/asio.h"

namespace berth::cri {

// One formatted record (exposed for tests): "<ts> <stream> <F|P> <text>\n".
std::string cri_log_line(std::string_view stream, bool partial, std::string_view text);

class LogWriter {
 public:
  static constexpr std::size_t kMaxLine = 16 * 1024;

  LogWriter();
  ~LogWriter();
  LogWriter(const LogWriter&) = delete;
  LogWriter& operator=(const LogWriter&) = delete;

  // Copies the FIFOs (stream name -> FIFO path: "stdout", "stderr") into `log_path` (created
  // with its directory; "" discards). The FIFOs are made when missing. Until `connected` is
  // called, a writer end is held open so reading does not end before the shim opens its end.
  Status add(const std::string& id, const std::string& log_path,
             const std::map<std::string, std::string>& fifos);
  // The shim has opened its ends: end of file now means the container's output ended.
  void connected(const std::string& id);
  // Opens `log_path` again (after the kubelet renamed it). NotFound for an unknown id.
  Status reopen(const std::string& id);
  // Waits (at most `timeout`) until every stream of `id` reached end of file and was written.
  bool drain(const std::string& id, std::chrono::milliseconds timeout);
  // Stops copying and forgets `id` (what is still in the FIFOs stays there).
  void remove(const std::string& id);
  bool has(const std::string& id);

 private:
  struct Stream;
  struct Entry;
  void read_more(const std::shared_ptr<Entry>& e, const std::shared_ptr<Stream>& s);
  void write(Entry& e, std::string_view stream, bool partial, std::string_view text);
  void finished(const std::shared_ptr<Entry>& e);

  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_;
  std::mutex mu_;
  std::condition_variable drained_;
  std::map<std::string, std::shared_ptr<Entry>> entries_;
  std::thread thread_;
};

}  // namespace berth::cri
