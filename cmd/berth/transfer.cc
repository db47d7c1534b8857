// berth images pull|push: the daemon's transfer service does the work and streams progress, shown
// as one bar per blob (bytes, rate, ETA) on a terminal, and as one line per change otherwise.
#include <unistd.h>

#include <iostream>
#include <sstream>
#include <vector>

#include "berth/transfer/v1/transfer.grpc.pb.h"
#include "cmd/berth/commands.h"
#include "cmd/berth/output.h"
#include "cmd/berth/registry_flags.h"

namespace berth::cli {
namespace {

namespace pb = ::berth::services::transfer::v1;
using Clock = std::chrono::steady_clock;

std::string short_id(const std::string& id) {
  if (id.rfind("sha256:", 0) == 0) return id.substr(7, 12);
  return id;
}

std::string human_duration(double seconds) {
  if (seconds < 60) return fmt::format("{:.0f}s", seconds);
  if (seconds < 3600) return fmt::format("{:.0f}m{:02.0f}s", seconds / 60, std::fmod(seconds, 60));
  return fmt::format("{:.0f}h{:02.0f}m", seconds / 3600, std::fmod(seconds / 60, 60));
}

// Renders the progress stream.
class ProgressView {
 public:
  explicit ProgressView(std::string verb) : verb_(std::move(verb)), tty_(::isatty(1) == 1) {}

  void update(const pb::Progress& p) {
    auto now = Clock::now();
    auto [it, added] = items_.try_emplace(p.id());
    Item& item = it->second;
    if (added) order_.push_back(p.id());
    bool changed = item.status != p.status();
    if (item.start == Clock::time_point{} &&
        (p.status() == "downloading" || p.status() == "uploading")) {
      item.start = now;
      item.start_offset = p.offset();
    }
    item.kind = p.kind();
    item.status = p.status();
    item.offset = p.offset();
    item.total = p.total();
    item.message = p.message();
    item.updated = now;
    if (tty_) {
      if (now - last_draw_ > std::chrono::milliseconds(100) || changed) draw();
    } else if (changed) {
      std::cout << line(p.id(), item, false) << "\n" << std::flush;
    }
  }
  void finish() {
    if (tty_) draw();
  }

 private:
  struct Item {
    std::string kind, status, message;
    std::int64_t offset = 0, total = 0, start_offset = 0;
    Clock::time_point start{}, updated{};
  };

  std::string line(const std::string& id, const Item& i, bool bar) const {
    std::string head = fmt::format("{:<8} {:<14} {:<11}", i.kind, short_id(id), i.status);
    if (i.kind == "step") {
      return fmt::format("{:<8} {} {}{}", verb_, i.status, id,
                         i.message.empty() ? "" : " " + i.message);
    }
    std::string detail;
    bool moving = i.status == "downloading" || i.status == "uploading";
    if (moving && i.total > 0) {
      double secs = std::chrono::duration<double>(i.updated - i.start).count();
      double rate = secs > 0.05 ? static_cast<double>(i.offset - i.start_offset) / secs : 0;
      if (bar) {
        constexpr int kWidth = 24;
        int filled =
            static_cast<int>(kWidth * static_cast<double>(i.offset) / static_cast<double>(i.total));
        filled = std::clamp(filled, 0, kWidth);
        detail += "[" + std::string(filled, '=') + (filled < kWidth ? ">" : "") +
                  std::string(std::max(0, kWidth - filled - 1), ' ') + "] ";
      }
      detail += human_size(i.offset) + "/" + human_size(i.total);
      if (rate > 0) {
        detail += " " + human_size(static_cast<std::int64_t>(rate)) + "/s";
        if (bar) detail += " ETA " + human_duration(static_cast<double>(i.total - i.offset) / rate);
      }
    } else if (i.total > 0) {
      detail = human_size(i.total);
    }
    if (!i.message.empty() && !moving) detail += (detail.empty() ? "" : " ") + i.message;
    if (!i.message.empty() && moving && !bar) detail += " (" + i.message + ")";
    return head + " " + detail;
  }

  void draw() {
    std::ostringstream out;
    if (drawn_ > 0) out << "\033[" << drawn_ << "A";
    for (const auto& id : order_) out << "\r\033[K" << line(id, items_.at(id), true) << "\n";
    drawn_ = order_.size();
    std::cout << out.str() << std::flush;
    last_draw_ = Clock::now();
  }

  std::string verb_;
  bool tty_;
  std::map<std::string, Item> items_;
  std::vector<std::string> order_;
  std::size_t drawn_ = 0;
  Clock::time_point last_draw_{};
};

// Starts a transfer call, renders its progress stream to the end and prints the outcome:
// "<verb>ed <image> (<digest>) in <seconds>s".
using StartCall = std::function<std::unique_ptr<grpc::ClientReader<pb::Progress>>(
    pb::Transfer::Stub&, grpc::ClientContext*)>;
Status run_transfer(Client& c, const std::string& verb, const std::string& ref,
                    const StartCall& start_call) {
  auto start = Clock::now();
  auto ctx = c.long_context();
  auto stub = pb::Transfer::NewStub(c.channel());
  auto reader = start_call(*stub, ctx.get());
  ProgressView view(verb);
  pb::Progress p, done;
  while (reader->Read(&p)) {
    if (p.done()) {
      done = p;
      continue;
    }
    view.update(p);
  }
  view.finish();
  BERTH_RETURN_IF_ERROR(c.check(reader->Finish(), verb + " " + ref));
  if (!done.done())
    return Status(Code::kUnknown, fmt::format("{} {}: the daemon did not finish", verb, ref));
  std::cout << fmt::format("{}ed {} ({}) in {:.1f}s\n", verb, done.image(), done.digest(),
                           std::chrono::duration<double>(Clock::now() - start).count());
  return Status();
}

}  // namespace

void add_transfer_commands(CLI::App& images, const GlobalOptions& global) {
  struct Options {
    std::string ref;
    std::string platform;
    std::string snapshotter;
    bool all_platforms = false;
    bool skip_unpack = false;
    int max_downloads = 0;
    std::vector<std::string> labels;
    RegistryFlags pull_flags;
    std::string remote;
    std::string local;
    std::string push_platform;
    std::int64_t chunk_size = 0;
    RegistryFlags push_flags;
  };
  auto o = std::make_shared<Options>();
  // berth images pull REF
  auto* pull = images.add_subcommand("pull", "pull an image from a registry (done by berthd)");
  pull->add_option("ref", o->ref, "image reference, e.g. 127.0.0.1:5000/library/busybox:latest")
      ->required();
  pull->add_option("--platform", o->platform, "the platform to pull (default: the daemon host's)");
  pull->add_flag("--all-platforms", o->all_platforms,
                 "fetch every platform of an index (no unpack)");
  pull->add_option("--snapshotter", o->snapshotter, "unpack into this snapshotter");
  pull->add_flag("--skip-unpack", o->skip_unpack, "fetch only, do not unpack");
  pull->add_option("--max-concurrent-downloads", o->max_downloads, "layers fetched at once");
  pull->add_option("--label", o->labels, "KEY=VALUE labels of the image record")
      ->allow_extra_args(false);
  o->pull_flags.add(pull);
  set_action(pull, global, [o](Client& c) -> Status {
    pb::PullRequest req;
    req.set_ref(o->ref);
    req.set_platform(o->platform);
    req.set_all_platforms(o->all_platforms);
    req.set_snapshotter(o->snapshotter);
    req.set_unpack(!o->skip_unpack && !o->all_platforms);
    req.set_max_concurrent_downloads(o->max_downloads);
    for (const auto& [k, v] : parse_labels(o->labels)) (*req.mutable_labels())[k] = v;
    o->pull_flags.to_proto(req.mutable_registry());
    return run_transfer(c, "pull", o->ref, [&](pb::Transfer::Stub& stub, grpc::ClientContext* ctx) {
      return stub.Pull(ctx, req);
    });
  });

  // berth images push REMOTE [LOCAL]
  auto* push = images.add_subcommand("push", "push an image to a registry (done by berthd)");
  push->add_option("remote", o->remote, "where to, e.g. 127.0.0.1:5000/me/app:1")->required();
  push->add_option("local", o->local, "the image to push (default: the remote name)");
  push->add_option("--platform", o->push_platform, "push only this platform's manifest");
  push->add_option("--chunk-size", o->chunk_size,
                   "upload blobs larger than this many bytes in chunks (default 16 MiB)");
  o->push_flags.add(push);
  set_action(push, global, [o](Client& c) -> Status {
    pb::PushRequest req;
    req.set_image(o->local.empty() ? o->remote : o->local);
    req.set_ref(o->remote);
    req.set_platform(o->push_platform);
    req.set_chunk_size(o->chunk_size);
    o->push_flags.to_proto(req.mutable_registry());
    return run_transfer(
        c, "push", o->remote,
        [&](pb::Transfer::Stub& stub, grpc::ClientContext* ctx) { return stub.Push(ctx, req); });
  });
}

}  // namespace berth::cli
