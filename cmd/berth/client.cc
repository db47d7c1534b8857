#include "cmd/berth/client.h"

#include <berth/grpc.h>
#include <sys/stat.h>

#include "core/duration.h"

namespace berth::cli {

Client::Client(const GlobalOptions& options) : options_(options) {}

Status Client::connect() {
  auto t = core::parse_duration(options_.timeout);
  if (!t.ok()) return invalid_argument("--timeout: {}", t.status().message());
  timeout_ = *t;
  struct stat st {};
  if (::stat(options_.address.c_str(), &st) < 0) {
    return unavailable(
        "cannot connect to berthd at \"{}\": {} (is berthd running? use --address or "
        "BERTH_ADDRESS)",
        options_.address, std::strerror(errno));
  }
  if (!S_ISSOCK(st.st_mode)) {
    return unavailable("cannot connect to berthd at \"{}\": not a socket", options_.address);
  }
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(16 << 20);
  args.SetMaxSendMessageSize(16 << 20);
  channel_ = grpc::CreateCustomChannel("unix:" + options_.address,
                                       grpc::InsecureChannelCredentials(), args);
  return Status();
}

std::unique_ptr<grpc::ClientContext> Client::context() const {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->AddMetadata(kNamespaceHeader, options_.ns);
  if (timeout_.count() > 0) ctx->set_deadline(std::chrono::system_clock::now() + timeout_);
  return ctx;
}

std::unique_ptr<grpc::ClientContext> Client::long_context() const {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->AddMetadata(kNamespaceHeader, options_.ns);
  return ctx;
}

std::unique_ptr<grpc::ClientContext> Client::context(const std::string& lease) const {
  auto ctx = context();
  if (!lease.empty()) ctx->AddMetadata(kLeaseHeader, lease);
  return ctx;
}

Status Client::check(const grpc::Status& s, std::string_view what) const {
  if (s.ok()) return Status();
  // UNAVAILABLE on a channel that is up is the daemon's answer (a registry it cannot reach, say),
  // not a failure to reach the daemon.
  if (s.error_code() == grpc::StatusCode::UNAVAILABLE &&
      !(channel_ && channel_->GetState(false) == GRPC_CHANNEL_READY)) {
    return unavailable("cannot connect to berthd at \"{}\": {} (is berthd running?)",
                       options_.address, s.error_message());
  }
  if (s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
    return Status(Code::kDeadlineExceeded,
                  fmt::format("{}: no answer from berthd at \"{}\" within {}", what,
                              options_.address, options_.timeout));
  }
  return from_grpc(s);
}

std::map<std::string, std::string> parse_labels(const std::vector<std::string>& args) {
  std::map<std::string, std::string> out;
  for (const auto& a : args) {
    auto eq = a.find('=');
    if (eq == std::string::npos) {
      out[a] = "";
    } else {
      out[a.substr(0, eq)] = a.substr(eq + 1);
    }
  }
  return out;
}

}  // namespace berth::cli
