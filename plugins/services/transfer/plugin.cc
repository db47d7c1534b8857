// io.containerd.grpc.v1.transfer: berth.services.transfer.v1.Transfer (pull and push in the
// daemon, progress streamed to the client) over plugins/transfer.
//
//   [plugins."io.containerd.grpc.v1.transfer"]
//     snapshotter = "overlayfs"            # where pulls unpack unless the request names one
//     max_concurrent_downloads = 3         # layers fetched (and blobs pushed) at once
//     hosts_dir = "/etc/berth/certs.d"     # containerd's certs.d/<host>/hosts.toml layout
//     attempts = 5                         # per blob, for transient registry failures
//     backoff = "250ms"                    # before the second attempt; doubled each time
#include <berth/events.h>
#include <berth/grpc.h>
#include <berth/metadata.h>

#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include "berth/transfer/v1/transfer.grpc.pb.h"
#include "github.com/containerd/containerd/api/events/image.pb.h"
#include "core/transfer/transfer.h"

namespace berth::plugins::services {
namespace {

namespace pb = ::berth::services::transfer::v1;

struct Config {
  std::string snapshotter = "overlayfs";
  std::int64_t max_concurrent = 3;
  std::string hosts_dir = "/etc/berth/certs.d";
  std::int64_t attempts = 5;
  std::chrono::milliseconds backoff{250};
};

// Progress from the transfer's threads to the client, written by one thread: status changes in
// order, byte counts of an item coalesced to one message per tick.
class ProgressWriter {
 public:
  explicit ProgressWriter(grpc::ServerWriter<pb::Progress>* w)
      : w_(w), thread_([this] { run(); }) {}
  ~ProgressWriter() { finish(); }

  void report(const transfer::Progress& p) {
    std::lock_guard lock(mu_);
    auto& last = last_status_[p.id];
    bool same = last == p.status && (p.status == "downloading" || p.status == "uploading");
    last = p.status;
    if (same) {
      pending_bytes_[p.id] = p;  // replaced by the next tick's newest
      return;
    }
    pending_bytes_.erase(p.id);
    queue_.push_back(p);
    cv_.notify_one();
  }
  void finish() {
    {
      std::lock_guard lock(mu_);
      if (stopping_) return;
      stopping_ = true;
      cv_.notify_one();
    }
    thread_.join();
  }

 private:
  void run() {
    std::unique_lock lock(mu_);
    for (;;) {
      cv_.wait_for(lock, std::chrono::milliseconds(100));
      std::deque<transfer::Progress> out;
      out.swap(queue_);
      for (auto& [id, p] : pending_bytes_) out.push_back(p);
      pending_bytes_.clear();
      bool stop = stopping_;
      lock.unlock();
      for (const auto& p : out) {
        pb::Progress m;
        m.set_id(p.id);
        m.set_kind(p.kind);
        m.set_status(p.status);
        m.set_offset(p.offset);
        m.set_total(p.total);
        m.set_message(p.message);
        if (!gone_ && !w_->Write(m)) gone_ = true;  // the client left; the call notices
      }
      lock.lock();
      if (stop && queue_.empty() && pending_bytes_.empty()) return;
    }
  }

  grpc::ServerWriter<pb::Progress>* w_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<transfer::Progress> queue_;
  std::map<std::string, transfer::Progress> pending_bytes_;
  std::map<std::string, std::string> last_status_;
  bool stopping_ = false;
  bool gone_ = false;
  std::thread thread_;
};

Result<transfer::RegistryAccess> registry_access(const pb::RegistryOptions& r, const Config& c) {
  transfer::RegistryAccess a;
  a.host.plain_http = r.plain_http();
  a.host.skip_verify = r.skip_verify();
  if (!r.ca_file().empty()) a.host.ca_files = {r.ca_file()};
  a.host.cert_file = r.client_cert();
  a.host.key_file = r.client_key();
  if (!r.client_key().empty() && r.client_cert().empty())
    return invalid_argument("a client key needs a client certificate");
  a.host.username = r.username();
  a.host.password = r.password();
  a.hosts_dir = r.hosts_dir().empty() ? c.hosts_dir : r.hosts_dir();
  return a;
}

// A request's platform: none when empty.
Result<std::optional<images::model::Platform>> platform_of(const std::string& spec) {
  if (spec.empty()) return std::optional<images::model::Platform>();
  auto p = images::model::parse_platform(spec);
  if (!p.ok()) return invalid_argument("platform \"{}\": {}", spec, p.status().message());
  return std::optional<images::model::Platform>(*p);
}

class TransferService final : public Plugin, public GrpcService, public pb::Transfer::Service {
 public:
  TransferService(Config c, std::shared_ptr<metadata::MetadataStore> md,
                  std::shared_ptr<diff::DifferPlugin> differ,
                  std::shared_ptr<events::Exchange> exchange)
      : c_(std::move(c)),
        transfers_(std::move(md), std::move(differ)),
        exchange_(std::move(exchange)) {}
  void register_grpc(grpc::ServerBuilder& builder) override { builder.RegisterService(this); }

  grpc::Status Pull(grpc::ServerContext* ctx, const pb::PullRequest* req,
                    grpc::ServerWriter<pb::Progress>* writer) override {
    return serve(ctx, [&](const RequestContext& rc) -> Status {
      transfer::PullOptions o;
      o.ref = req->ref();
      auto platform = platform_of(req->platform());
      if (!platform.ok()) return platform.status();
      o.platform = platform->value_or(images::model::host_platform());
      o.all_platforms = req->all_platforms();
      o.unpack = req->unpack();
      o.snapshotter = req->snapshotter().empty() ? c_.snapshotter : req->snapshotter();
      auto access = registry_access(req->registry(), c_);
      if (!access.ok()) return access.status();
      o.registry = *access;
      o.max_concurrent = req->max_concurrent_downloads() > 0 ? req->max_concurrent_downloads()
                                                             : static_cast<int>(c_.max_concurrent);
      o.labels = {req->labels().begin(), req->labels().end()};
      o.retry = {static_cast<int>(c_.attempts), c_.backoff};

      ProgressWriter progress(writer);
      auto pulled = transfers_.pull(rc, o, [&](const transfer::Progress& p) { progress.report(p); });
      progress.finish();
      if (!pulled.ok()) return pulled.status();
      const auto& image = pulled->image;
      containerd::services::images::v1::ImageCreate e;
      e.set_name(image.name);
      for (const auto& [k, v] : image.labels) (*e.mutable_labels())[k] = v;
      if (exchange_)
        exchange_
            ->publish(rc.ns, pulled->created ? "/images/create" : "/images/update",
                      pulled->created ? "containerd.services.images.v1.ImageCreate"
                                      : "containerd.services.images.v1.ImageUpdate",
                      e.SerializeAsString())
            .ignore();
      return finish(writer, image.name, image.target.digest);
    });
  }

  grpc::Status Push(grpc::ServerContext* ctx, const pb::PushRequest* req,
                    grpc::ServerWriter<pb::Progress>* writer) override {
    return serve(ctx, [&](const RequestContext& rc) -> Status {
      transfer::PushOptions o;
      o.image = req->image();
      o.ref = req->ref();
      auto platform = platform_of(req->platform());
      if (!platform.ok()) return platform.status();
      o.platform = *platform;
      auto access = registry_access(req->registry(), c_);
      if (!access.ok()) return access.status();
      o.registry = *access;
      if (req->chunk_size() > 0) o.chunk_size = req->chunk_size();
      o.max_concurrent = static_cast<int>(c_.max_concurrent);
      o.retry = {static_cast<int>(c_.attempts), c_.backoff};

      ProgressWriter progress(writer);
      auto digest = transfers_.push(rc, o, [&](const transfer::Progress& p) { progress.report(p); });
      progress.finish();
      if (!digest.ok()) return digest.status();
      return finish(writer, req->ref().empty() ? req->image() : req->ref(), *digest);
    });
  }

 private:
  // The stream's last message: what was transferred.
  static Status finish(grpc::ServerWriter<pb::Progress>* writer, const std::string& image,
                       const std::string& digest) {
    pb::Progress done;
    done.set_done(true);
    done.set_image(image);
    done.set_digest(digest);
    writer->Write(done);
    return Status();
  }

  Config c_;
  transfer::Transfers transfers_;
  std::shared_ptr<events::Exchange> exchange_;
};

std::vector<Registration> registrations() {
  Registration r;
  r.type = std::string(plugin_type::kGrpc);
  r.id = "transfer";
  r.requires_types = {std::string(plugin_type::kMetadata), std::string(plugin_type::kDiffer),
                      std::string(plugin_type::kEvent)};
  r.config = [](ConfigReader& in) -> Result<std::shared_ptr<const void>> {
    Config c;
    BERTH_RETURN_IF_ERROR(in.read("snapshotter", c.snapshotter));
    BERTH_RETURN_IF_ERROR(in.read("max_concurrent_downloads", c.max_concurrent));
    BERTH_RETURN_IF_ERROR(in.read("hosts_dir", c.hosts_dir));
    BERTH_RETURN_IF_ERROR(in.read("attempts", c.attempts));
    BERTH_RETURN_IF_ERROR(in.read_duration("backoff", c.backoff));
    if (c.max_concurrent < 1 || c.max_concurrent > 64)
      return in.invalid("max_concurrent_downloads", "must be between 1 and 64");
    if (c.attempts < 1 || c.attempts > 100)
      return in.invalid("attempts", "must be between 1 and 100");
    return config_value(c);
  };
  r.init = [](InitContext& ic) -> Result<std::shared_ptr<Plugin>> {
    BERTH_TRY(auto md, ic.get_as<metadata::MetadataStore>(plugin_type::kMetadata));
    BERTH_TRY(auto differ, ic.get_as<diff::DifferPlugin>(plugin_type::kDiffer));
    auto exchange = ic.get_as<events::Exchange>(plugin_type::kEvent);
    return std::shared_ptr<Plugin>(
        std::make_shared<TransferService>(ic.config<Config>(), std::move(md), std::move(differ),
                                          exchange.ok() ? *exchange : nullptr));
  };
  return {r};
}

}  // namespace
}  // namespace berth::plugins::services

BERTH_PLUGIN_MODULE(berth::plugins::services::registrations)
