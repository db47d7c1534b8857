// Pull without root and without a registry binary: a scripted registry on loopback, the real
// metadata store over a local content store, an in-memory snapshotter and a differ that reports
// the digest of an uncompressed layer as its diffID. What a pull stores, labels, unpacks and
// leaves behind, and what it refuses.
#include "core/transfer/transfer.h"

#include <gtest/gtest.h>

#include <mutex>
#include <nlohmann/json.hpp>
#include <set>

#include "core/digest.h"
#include "core/fs.h"
#include "plugins/content/local/local_store.h"
#include "plugins/metadata/rocksdb/store.h"
#include "tests/e2e/registry.h"

namespace berth::transfer {
namespace {

using nlohmann::json;

// Snapshots in memory, with containerd's rules for parents, keys and commits.
class MemorySnapshotter final : public snapshots::Snapshotter {
 public:
  Result<snapshots::Info> stat(const RequestContext&, std::string_view key) override {
    std::lock_guard lock(mu_);
    auto it = all_.find(std::string(key));
    if (it == all_.end()) return not_found("snapshot {}", key);
    return it->second;
  }
  Result<snapshots::Info> update(const RequestContext& ctx, const snapshots::Info& info,
                                 const std::vector<std::string>&) override {
    return stat(ctx, info.name);
  }
  Result<snapshots::Usage> usage(const RequestContext&, std::string_view) override {
    return snapshots::Usage{};
  }
  Result<std::vector<Mount>> mounts(const RequestContext&, std::string_view key) override {
    return std::vector<Mount>{{"bind", "/mem/" + std::string(key), "", {"rw"}}};
  }
  Result<std::vector<Mount>> prepare(const RequestContext& ctx, std::string_view key,
                                     std::string_view parent,
                                     const std::map<std::string, std::string>& labels) override {
    return add(ctx, key, parent, labels, snapshots::Kind::kActive);
  }
  Result<std::vector<Mount>> view(const RequestContext& ctx, std::string_view key,
                                  std::string_view parent,
                                  const std::map<std::string, std::string>& labels) override {
    return add(ctx, key, parent, labels, snapshots::Kind::kView);
  }
  Status commit(const RequestContext&, std::string_view name, std::string_view key,
                const std::map<std::string, std::string>& labels) override {
    std::lock_guard lock(mu_);
    auto it = all_.find(std::string(key));
    if (it == all_.end() || it->second.kind != snapshots::Kind::kActive)
      return failed_precondition("{} is not active", key);
    if (all_.count(std::string(name))) return already_exists("snapshot {}", name);
    snapshots::Info info = it->second;
    all_.erase(it);
    info.kind = snapshots::Kind::kCommitted;
    info.name = std::string(name);
    info.labels.insert(labels.begin(), labels.end());
    all_[info.name] = info;
    return Status();
  }
  Status remove(const RequestContext&, std::string_view key) override {
    std::lock_guard lock(mu_);
    for (const auto& [k, i] : all_)
      if (i.parent == key) return failed_precondition("{} has children", key);
    return all_.erase(std::string(key)) ? Status() : not_found("snapshot {}", key);
  }
  Status walk(const RequestContext&, const std::vector<std::string>&,
              const snapshots::WalkFn& fn) override {
    std::vector<snapshots::Info> copy;
    {
      std::lock_guard lock(mu_);
      for (const auto& [k, i] : all_) copy.push_back(i);
    }
    for (const auto& i : copy) BERTH_RETURN_IF_ERROR(fn(i));
    return Status();
  }
  Status cleanup(const RequestContext&) override { return Status(); }

  std::size_t count(snapshots::Kind kind) {
    std::lock_guard lock(mu_);
    std::size_t n = 0;
    for (const auto& [k, i] : all_) n += i.kind == kind;
    return n;
  }

 private:
  Result<std::vector<Mount>> add(const RequestContext& ctx, std::string_view key,
                                 std::string_view parent,
                                 const std::map<std::string, std::string>& labels,
                                 snapshots::Kind kind) {
    std::lock_guard lock(mu_);
    if (all_.count(std::string(key))) return already_exists("snapshot {}", key);
    if (!parent.empty()) {
      auto p = all_.find(std::string(parent));
      if (p == all_.end()) return not_found("parent {}", parent);
      if (p->second.kind != snapshots::Kind::kCommitted)
        return failed_precondition("parent {} is not committed", parent);
    }
    snapshots::Info info;
    info.kind = kind;
    info.name = std::string(key);
    info.parent = std::string(parent);
    info.labels = labels;
    all_[info.name] = info;
    return std::vector<Mount>{{"bind", "/mem/" + std::string(key), "", {"rw"}}};
  }
  std::mutex mu_;
  std::map<std::string, snapshots::Info> all_;
};

// Layers here are uncompressed tars, so the diffID is the blob's own digest; the blob must be in
// the content store, as for the walking differ.
class DigestDiffer final : public diff::DifferPlugin, public diff::Applier, public diff::Comparer {
 public:
  explicit DigestDiffer(std::shared_ptr<content::Store> content) : content_(std::move(content)) {}
  diff::Applier& applier() override { return *this; }
  diff::Comparer& comparer() override { return *this; }
  Result<diff::Descriptor> apply(const RequestContext& ctx, const diff::Descriptor& desc,
                                 const std::vector<Mount>&, std::string_view) override {
    BERTH_RETURN_IF_ERROR(content_->info(ctx, desc.digest).status());
    ++applied;
    return diff::Descriptor{std::string(diff::kMediaTypeOciLayer), desc.digest, desc.size, {}};
  }
  Result<diff::Descriptor> compare(const RequestContext&, const std::vector<Mount>&,
                                   const std::vector<Mount>&, std::string_view, std::string_view,
                                   const std::map<std::string, std::string>&) override {
    return Status(Code::kUnimplemented, "no diff here");
  }
  std::atomic<int> applied{0};

 private:
  std::shared_ptr<content::Store> content_;
};

std::string answer(int status, const std::vector<std::string>& headers, const std::string& body,
                   bool head = false) {
  std::string out =
      "HTTP/1.1 " + std::to_string(status) + (status == 200 ? " OK" : " Error") + "\r\n";
  for (const auto& h : headers) out += h + "\r\n";
  out += "Content-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n";
  if (!head) out += body;
  return out;
}

// One image (two layers) served as the distribution API serves it, tampering on request.
struct Image {
  std::string layer1 = "layer one bytes", layer2 = "layer two bytes";
  std::string config, manifest;
  std::string bad_blob;  // a digest whose bytes are served wrong

  void build(const std::vector<std::string>& diff_ids = {}) {
    std::vector<std::string> ids = diff_ids;
    if (ids.empty()) ids = {core::Sha256::digest_of(layer1), core::Sha256::digest_of(layer2)};
    config = json{{"architecture", "amd64"},
                  {"os", "linux"},
                  {"rootfs", {{"type", "layers"}, {"diff_ids", ids}}}}
                 .dump();
    auto desc = [](const std::string& media, const std::string& data) {
      return json{
          {"mediaType", media}, {"digest", core::Sha256::digest_of(data)}, {"size", data.size()}};
    };
    manifest = json{{"schemaVersion", 2},
                    {"mediaType", "application/vnd.oci.image.manifest.v1+json"},
                    {"config", desc("application/vnd.oci.image.config.v1+json", config)},
                    {"layers",
                     {desc("application/vnd.oci.image.layer.v1.tar", layer1),
                      desc("application/vnd.oci.image.layer.v1.tar", layer2)}}}
                   .dump();
  }
  void serve(const e2e::HostileServer::Request& r, const e2e::HostileServer::Write& write) const {
    bool head = r.method == "HEAD";
    if (r.target == "/v2/" || r.target == "/v2") {
      write(answer(200, {}, "{}", head));
      return;
    }
    if (r.target == "/v2/lib/app/manifests/v1" ||
        r.target == "/v2/lib/app/manifests/" + core::Sha256::digest_of(manifest)) {
      write(answer(200,
                   {"Content-Type: application/vnd.oci.image.manifest.v1+json",
                    "Docker-Content-Digest: " + core::Sha256::digest_of(manifest)},
                   manifest, head));
      return;
    }
    for (const auto& blob : {config, layer1, layer2}) {
      std::string d = core::Sha256::digest_of(blob);
      if (r.target == "/v2/lib/app/blobs/" + d) {
        std::string body = d == bad_blob ? std::string(blob.size(), 'X') : blob;
        write(answer(200, {"Content-Type: application/octet-stream"}, body, head));
        return;
      }
    }
    write(answer(404, {"Content-Type: application/json"},
                 R"({"errors":[{"code":"MANIFEST_UNKNOWN","message":"unknown"}]})", head));
  }
};

class TransferTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto d = core::TempDir::create("berth-transfer-");
    ASSERT_TRUE(d.ok());
    dir_.emplace(std::move(*d));
    auto backend = plugins::content::LocalStore::open(dir_->path() + "/content");
    ASSERT_TRUE(backend.ok()) << backend.status().message();
    snapshotter_ = std::make_shared<MemorySnapshotter>();
    plugins::metadata::StoreOptions o;
    o.path = dir_->path() + "/db";
    o.backend = *backend;
    o.snapshotters = {{"mem", snapshotter_}};
    auto store = plugins::metadata::RocksStore::open(o);
    ASSERT_TRUE(store.ok()) << store.status().message();
    store_ = *store;
    differ_ = std::make_shared<DigestDiffer>(store_->content());
    transfers_.emplace(store_, differ_);
    ctx_.ns = "default";
    server_ = e2e::HostileServer::start(
        [this](const auto& r, const auto& write) { image_.serve(r, write); });
    ASSERT_TRUE(server_);
  }

  PullOptions options() {
    PullOptions o;
    o.ref = server_->host() + "/lib/app:v1";
    o.platform = images::model::Platform{"linux", "amd64", ""};
    o.snapshotter = "mem";
    o.registry.host.plain_http = true;
    o.retry.attempts = 2;
    o.retry.backoff = std::chrono::milliseconds(1);
    return o;
  }
  Result<Transfers::Pulled> pull(std::vector<Progress>* seen = nullptr) {
    std::mutex mu;
    return transfers_->pull(ctx_, options(), [&](const Progress& p) {
      std::lock_guard lock(mu);
      if (seen) seen->push_back(p);
    });
  }
  std::size_t leases() {
    auto all = store_->leases().list(ctx_, {});
    return all.ok() ? all->size() : 999;
  }
  std::size_t blob_gets() {
    std::size_t n = 0;
    for (const auto& r : server_->requests())
      n += r.method == "GET" && r.target.find("/blobs/") != std::string::npos;
    return n;
  }

  std::optional<core::TempDir> dir_;
  std::shared_ptr<MemorySnapshotter> snapshotter_;
  std::shared_ptr<plugins::metadata::RocksStore> store_;
  std::shared_ptr<DigestDiffer> differ_;
  std::optional<Transfers> transfers_;
  RequestContext ctx_;
  Image image_;
  std::unique_ptr<e2e::HostileServer> server_;
};

TEST_F(TransferTest, PullStoresLabelsAndUnpacks) {
  image_.build();
  std::vector<Progress> seen;
  auto pulled = pull(&seen);
  ASSERT_TRUE(pulled.ok()) << pulled.status().message();
  EXPECT_TRUE(pulled->created);
  EXPECT_EQ(pulled->image.name, server_->host() + "/lib/app:v1");
  EXPECT_EQ(pulled->image.target.digest, core::Sha256::digest_of(image_.manifest));

  // Every blob is in the store, the manifest keeps its children, the layers know their diffIDs.
  auto content = store_->content();
  auto manifest = content->info(ctx_, core::Sha256::digest_of(image_.manifest));
  ASSERT_TRUE(manifest.ok());
  EXPECT_EQ(manifest->labels["containerd.io/gc.ref.content.config"],
            core::Sha256::digest_of(image_.config));
  EXPECT_EQ(manifest->labels["containerd.io/gc.ref.content.l.1"],
            core::Sha256::digest_of(image_.layer2));
  auto layer = content->info(ctx_, core::Sha256::digest_of(image_.layer1));
  ASSERT_TRUE(layer.ok());
  EXPECT_EQ(layer->labels["containerd.io/uncompressed"], core::Sha256::digest_of(image_.layer1));

  // Unpacked: two committed snapshots under their chain IDs, the config keeping the top one.
  std::string chain1 = core::Sha256::digest_of(image_.layer1);
  std::string chain2 =
      core::Sha256::digest_of(chain1 + " " + core::Sha256::digest_of(image_.layer2));
  auto sn = store_->snapshotter("mem");
  ASSERT_TRUE(sn.ok());
  EXPECT_TRUE((*sn)->stat(ctx_, chain2).ok());
  EXPECT_EQ(snapshotter_->count(snapshots::Kind::kCommitted), 2u);
  EXPECT_EQ(snapshotter_->count(snapshots::Kind::kActive), 0u);  // no extract-* leftovers
  auto config = content->info(ctx_, core::Sha256::digest_of(image_.config));
  ASSERT_TRUE(config.ok());
  EXPECT_EQ(config->labels["containerd.io/gc.ref.snapshot.mem"], chain2);
  EXPECT_EQ(leases(), 0u);  // the image record holds it all now
  bool resolved = false;
  for (const auto& p : seen) resolved = resolved || (p.kind == "step" && p.status == "resolved");
  EXPECT_TRUE(resolved);

  // Again: nothing is fetched or applied twice, the record is updated, not duplicated.
  std::size_t gets = blob_gets();
  int applied = differ_->applied;
  std::vector<Progress> again;
  auto second = pull(&again);
  ASSERT_TRUE(second.ok()) << second.status().message();
  EXPECT_FALSE(second->created);
  EXPECT_EQ(blob_gets(), gets);
  EXPECT_EQ(differ_->applied, applied);
  std::size_t already = 0;
  for (const auto& p : again) already += p.message == "already unpacked";
  EXPECT_EQ(already, 2u);
}

TEST_F(TransferTest, ABlobThatDoesNotMatchItsDigestIsNeverStored) {
  image_.build();
  image_.bad_blob = core::Sha256::digest_of(image_.layer2);
  auto pulled = pull();
  ASSERT_FALSE(pulled.ok());
  EXPECT_EQ(pulled.status().code(), Code::kDataLoss) << pulled.status().message();
  EXPECT_NE(pulled.status().message().find(image_.bad_blob), std::string::npos);
  EXPECT_FALSE(store_->content()->info(ctx_, image_.bad_blob).ok());
  EXPECT_FALSE(store_->images().get(ctx_, server_->host() + "/lib/app:v1").ok());
  // The lease stays: what was verified is kept for the next pull to resume from.
  EXPECT_EQ(leases(), 1u);
}

TEST_F(TransferTest, AWrongDiffIdFailsTheUnpackAndNamesTheLayer) {
  image_.build({core::Sha256::digest_of(image_.layer1), core::Sha256::digest_of("not it")});
  auto pulled = pull();
  ASSERT_FALSE(pulled.ok());
  EXPECT_EQ(pulled.status().code(), Code::kFailedPrecondition);
  EXPECT_NE(pulled.status().message().find("wrong diffID"), std::string::npos)
      << pulled.status().message();
  EXPECT_NE(pulled.status().message().find("unpack " + server_->host() + "/lib/app:v1"),
            std::string::npos);
  EXPECT_FALSE(store_->images().get(ctx_, server_->host() + "/lib/app:v1").ok());
  // The failed layer's key is gone from the namespace; the collector reclaims the backend's copy,
  // and the good first layer stays (the pull's lease holds it for a retry).
  ASSERT_TRUE(store_->collect().ok());
  EXPECT_EQ(snapshotter_->count(snapshots::Kind::kActive), 0u);
  EXPECT_EQ(snapshotter_->count(snapshots::Kind::kCommitted), 1u);
}

TEST_F(TransferTest, AMissingTagIsNotFound) {
  image_.build();
  auto o = options();
  o.ref = server_->host() + "/lib/app:nope";
  auto pulled = transfers_->pull(ctx_, o, [](const Progress&) {});
  ASSERT_FALSE(pulled.ok());
  EXPECT_EQ(pulled.status().code(), Code::kNotFound) << pulled.status().message();
  EXPECT_NE(pulled.status().message().find("resolve"), std::string::npos);
}

}  // namespace
}  // namespace berth::transfer
