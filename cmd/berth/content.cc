// berth content ls|get|ingest|active|rm|label
#include <berth/grpc.h>
#include <sys/socket.h>
#include <unistd.h>

#include <iostream>
#include <thread>

#include "cmd/berth/commands.h"
#include "cmd/berth/output.h"
#include "cmd/berth/registry_flags.h"
#include "core/remotes/hosts.h"
#include "github.com/containerd/containerd/api/services/content/v1/content.grpc.pb.h"

namespace berth::cli {
namespace {

namespace pb = ::containerd::services::content::v1;

constexpr std::size_t kChunk = 1 << 20;

nlohmann::json info_json(const pb::Info& i) {
  return {{"digest", i.digest()},
          {"size", i.size()},
          {"created_at", i.created_at().seconds()},
          {"updated_at", i.updated_at().seconds()},
          {"labels", std::map<std::string, std::string>(i.labels().begin(), i.labels().end())}};
}

// Every verb's options, held by the callbacks.
struct ContentOptions {
  bool quiet = false;
  std::vector<std::string> filters;
  std::string get_digest;
  std::string ref;
  std::int64_t expected_size = 0;
  std::string expected_digest;
  std::string remote;
  std::vector<std::string> digests;
  std::vector<std::string> fetch_labels;
  RegistryFlags registry_flags;
  std::string active_filter;
  std::vector<std::string> rm_digests;
  std::string label_digest;
  std::vector<std::string> label_args;
};

void add_content_ls(CLI::App* content, const GlobalOptions& global,
                    const std::shared_ptr<ContentOptions>& o) {
  auto* ls = content->add_subcommand("ls", "list blobs [FILTER...]")->alias("list");
  ls->add_flag("--quiet,-q", o->quiet, "print only digests");
  ls->add_option("filters", o->filters, "filters, e.g. labels.\"containerd.io/gc.root\"");
  set_action(ls, global, [&global, o](Client& c) -> Status {
    pb::ListContentRequest req;
    for (const auto& f : o->filters) req.add_filters(f);
    auto ctx = c.context();
    auto reader = pb::Content::NewStub(c.channel())->List(ctx.get(), req);
    pb::ListContentResponse resp;
    std::vector<pb::Info> all;
    while (reader->Read(&resp)) {
      for (const auto& i : resp.info()) all.push_back(i);
    }
    BERTH_RETURN_IF_ERROR(c.check(reader->Finish(), "list content"));
    if (global.format == "json") {
      auto arr = nlohmann::json::array();
      for (const auto& i : all) arr.push_back(info_json(i));
      print_json(std::cout, arr);
    } else if (o->quiet) {
      for (const auto& i : all) std::cout << i.digest() << "\n";
    } else {
      Table t({"DIGEST", "SIZE", "AGE", "LABELS"});
      for (const auto& i : all) {
        t.add({i.digest(), human_size(i.size()), human_age(from_proto(i.created_at())),
               join_labels({i.labels().begin(), i.labels().end()})});
      }
      t.print(std::cout);
    }
    return Status();
  });
}

void add_content_get(CLI::App* content, const GlobalOptions& global,
                     const std::shared_ptr<ContentOptions>& o) {
  auto* get = content->add_subcommand("get", "write a blob to standard output: DIGEST");
  get->add_option("digest", o->get_digest, "digest")->required();
  set_action(get, global, [o](Client& c) -> Status {
    pb::ReadContentRequest req;
    req.set_digest(o->get_digest);
    auto ctx = c.context();
    ctx->set_deadline(std::chrono::system_clock::time_point::max());
    auto reader = pb::Content::NewStub(c.channel())->Read(ctx.get(), req);
    pb::ReadContentResponse resp;
    while (reader->Read(&resp)) {
      const std::string& d = resp.data();
      for (std::size_t done = 0; done < d.size();) {
        ssize_t n = ::write(1, d.data() + done, d.size() - done);
        if (n < 0) {
          if (errno == EINTR) continue;
          ctx->TryCancel();
          return from_errno(errno, "write standard output");
        }
        done += static_cast<std::size_t>(n);
      }
    }
    return c.check(reader->Finish(), "read content");
  });
}

void add_content_ing(CLI::App* content, const GlobalOptions& global,
                     const std::shared_ptr<ContentOptions>& o) {
  auto* ing = content->add_subcommand(
      "ingest", "store standard input as a blob: REF (resumes an interrupted ingest)");
  ing->add_option("ref", o->ref, "ingest reference")->required();
  ing->add_option("--expected-size", o->expected_size, "expected size in bytes");
  ing->add_option("--expected-digest", o->expected_digest, "expected digest");
  set_action(ing, global, [o](Client& c) -> Status {
    BERTH_TRY(auto digest,
              write_content(
                  c, 0, {.ref = o->ref, .size = o->expected_size, .expected = o->expected_digest}));
    std::cout << digest << "\n";
    return Status();
  });

  // ctr content fetch-blob: blobs straight from a registry into the content store.
}

void add_content_fetch(CLI::App* content, const GlobalOptions& global,
                       const std::shared_ptr<ContentOptions>& o) {
  auto* fetch =
      content->add_subcommand("fetch-blob", "fetch blobs from a registry: REMOTE DIGEST...");
  fetch->add_option("remote", o->remote, "repository, e.g. 127.0.0.1:5000/library/busybox")
      ->required();
  fetch->add_option("digests", o->digests, "blob digests")->required();
  o->registry_flags.add(fetch);
  fetch->add_option("--label", o->fetch_labels, "KEY=VALUE labels for the blobs")
      ->allow_extra_args(false);
  set_action(fetch, global, [o](Client& c) -> Status {
    BERTH_TRY(auto repo, remotes::Repository::parse(o->remote));
    BERTH_TRY(auto endpoints, remotes::host_endpoints(o->registry_flags.hosts_dir, repo.host,
                                                      o->registry_flags.host_options()));
    auto from = std::find_if(endpoints.begin(), endpoints.end(), [](auto& e) { return e.pull; });
    if (from == endpoints.end())
      return failed_precondition("no registry host for {} may pull", repo.host);
    remotes::RegistryClient registry(from->options, from->base);
    std::size_t failed = 0;
    for (const auto& digest : o->digests) {
      Status st = [&]() -> Status {
        // The fetch pushes into one end of a socket pair, the content writer pulls from the other.
        int sv[2];
        if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
          return from_errno(errno, "socketpair");
        Status fetched;
        std::thread producer([&] {
          fetched = registry.fetch_blob(
              repo, digest,
              [&](std::string_view data) -> Status {
                while (!data.empty()) {
                  ssize_t n = ::send(sv[1], data.data(), data.size(), MSG_NOSIGNAL);
                  if (n < 0 && errno == EINTR) continue;
                  if (n <= 0) return Status(Code::kAborted, "the content writer stopped");
                  data.remove_prefix(static_cast<std::size_t>(n));
                }
                return Status();
              },
              nullptr);
          ::shutdown(sv[1], SHUT_WR);
        });
        auto written = write_content(c, sv[0],
                                     {.ref = "fetch-blob-" + digest,
                                      .expected = digest,
                                      .labels = parse_labels(o->fetch_labels)});
        ::shutdown(sv[0], SHUT_RDWR);
        producer.join();
        ::close(sv[0]);
        ::close(sv[1]);
        BERTH_RETURN_IF_ERROR(fetched);  // the registry's error says more than a digest mismatch
        return written.status();
      }();
      if (st.ok()) {
        std::cout << digest << "\n";
      } else {
        ++failed;
        std::cerr << "berth: " << st.message() << "\n";
      }
    }
    if (failed)
      return Status(Code::kUnavailable,
                    fmt::format("{} of {} blobs not fetched", failed, o->digests.size()));
    return Status();
  });
}

void add_content_active(CLI::App* content, const GlobalOptions& global,
                        const std::shared_ptr<ContentOptions>& o) {
  auto* active = content->add_subcommand("active", "list ingests in progress [REGEXP]");
  active->add_option("regexp", o->active_filter, "only refs matching this");
  set_action(active, global, [&global, o](Client& c) -> Status {
    pb::ListStatusesRequest req;
    if (!o->active_filter.empty()) req.add_filters("ref~=" + o->active_filter);
    pb::ListStatusesResponse resp;
    auto ctx = c.context();
    BERTH_RETURN_IF_ERROR(c.check(
        pb::Content::NewStub(c.channel())->ListStatuses(ctx.get(), req, &resp), "list ingests"));
    if (global.format == "json") {
      auto arr = nlohmann::json::array();
      for (const auto& s : resp.statuses()) {
        arr.push_back({{"ref", s.ref()},
                       {"offset", s.offset()},
                       {"total", s.total()},
                       {"expected", s.expected()},
                       {"started_at", s.started_at().seconds()},
                       {"updated_at", s.updated_at().seconds()}});
      }
      print_json(std::cout, arr);
      return Status();
    }
    Table t({"REF", "OFFSET", "TOTAL", "UPDATED"});
    for (const auto& s : resp.statuses()) {
      t.add({s.ref(), human_size(s.offset()), s.total() ? human_size(s.total()) : "-",
             human_age(from_proto(s.updated_at())) + " ago"});
    }
    t.print(std::cout);
    return Status();
  });
}

void add_content_rm(CLI::App* content, const GlobalOptions& global,
                    const std::shared_ptr<ContentOptions>& o) {
  auto* rm =
      content->add_subcommand("rm", "remove blobs from the namespace: DIGEST...")->alias("delete");
  rm->add_option("digests", o->rm_digests, "digests")->required();
  set_action(rm, global, [o](Client& c) -> Status {
    return for_each_item(o->rm_digests, "blobs", true, [&](const std::string& d) {
      pb::DeleteContentRequest req;
      req.set_digest(d);
      google::protobuf::Empty e;
      auto ctx = c.context();
      return c.check(pb::Content::NewStub(c.channel())->Delete(ctx.get(), req, &e),
                     "delete content");
    });
  });
}

void add_content_label(CLI::App* content, const GlobalOptions& global,
                       const std::shared_ptr<ContentOptions>& o) {
  auto* label =
      content->add_subcommand("label", "set or clear labels: DIGEST KEY=VALUE... (KEY= clears)");
  label->add_option("digest", o->label_digest, "digest")->required();
  label->add_option("labels", o->label_args, "KEY=VALUE")->required();
  set_action(label, global, [o](Client& c) -> Status {
    pb::UpdateRequest req;
    req.mutable_info()->set_digest(o->label_digest);
    for (const auto& [k, v] : parse_labels(o->label_args)) {
      if (!v.empty()) (*req.mutable_info()->mutable_labels())[k] = v;
      req.mutable_update_mask()->add_paths("labels." + k);
    }
    pb::UpdateResponse resp;
    auto ctx = c.context();
    BERTH_RETURN_IF_ERROR(
        c.check(pb::Content::NewStub(c.channel())->Update(ctx.get(), req, &resp), "label content"));
    std::cout << join_labels({resp.info().labels().begin(), resp.info().labels().end()}) << "\n";
    return Status();
  });
}

}  // namespace

void add_content_command(CLI::App& app, const GlobalOptions& global) {
  auto* content = app.add_subcommand("content", "manage content (blobs) in the namespace");
  content->require_subcommand(1);
  auto o = std::make_shared<ContentOptions>();
  for (auto* add : {add_content_ls, add_content_get, add_content_ing, add_content_fetch,
                    add_content_active, add_content_rm, add_content_label})
    add(content, global, o);
}

}  // namespace berth::cli
