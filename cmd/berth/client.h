// The CLI's connection to berthd: one channel, per-call contexts carrying the namespace header and
// the timeout, and error messages that say what was tried.
#pragma once

#include <berth/result.h>
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <memory>
#include <string>

namespace berth::cli {

struct GlobalOptions {
  std::string address = "/run/berth/berth.sock";
  std::string ns = "default";
  std::string timeout = "10s";
  std::string format = "table";
};

class Client {
 public:
  explicit Client(const GlobalOptions& options);

  // Fails with a clear message when the socket is missing or nobody listens on it.
  Status connect();
  std::shared_ptr<grpc::Channel> channel() const { return channel_; }
  // A context with the namespace header and the deadline set.
  std::unique_ptr<grpc::ClientContext> context() const;
  // The namespace header and no deadline: for calls that last as long as a container does.
  std::unique_ptr<grpc::ClientContext> long_context() const;
  // The same, attached to a lease (containerd-lease header) when `lease` is not empty.
  std::unique_ptr<grpc::ClientContext> context(const std::string& lease) const;
  // Converts a failed call into a Status; "unavailable" becomes a connection message.
  Status check(const grpc::Status& s, std::string_view what) const;

  const GlobalOptions& options() const { return options_; }

 private:
  GlobalOptions options_;
  std::chrono::milliseconds timeout_{10000};
  std::shared_ptr<grpc::Channel> channel_;
};

// Parses "k=v" arguments into labels; "k=" or "k" alone maps to an empty value.
std::map<std::string, std::string> parse_labels(const std::vector<std::string>& args);

}  // namespace berth::cli
