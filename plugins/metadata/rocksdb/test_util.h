// A metadata store over a local content store in a temp dir, for the tests of this plugin.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>

#include "core/digest.h"
#include "core/fs.h"
#include "plugins/content/local/local_store.h"
#include "plugins/metadata/rocksdb/store.h"

namespace berth::plugins::metadata {

class MetadataFixture : public ::testing::Test {
 protected:
  void SetUp() override { open_store(SharingPolicy::kShared); }

  void open_store(SharingPolicy policy) {
    store_.reset();
    if (!dir_) {
      auto d = core::TempDir::create("berth-meta-");
      ASSERT_TRUE(d.ok());
      dir_.emplace(std::move(d).value());
    }
    auto backend = content::LocalStore::open(dir_->path() + "/content");
    ASSERT_TRUE(backend.ok());
    backend_ = *backend;
    StoreOptions o;
    o.path = dir_->path() + "/db";
    o.backend = backend_;
    o.content_sharing = policy;
    auto s = RocksStore::open(o);
    ASSERT_TRUE(s.ok()) << s.status().message();
    store_ = *s;
  }

  RequestContext ns(std::string name, std::string lease = "") {
    RequestContext c;
    c.ns = std::move(name);
    c.lease = std::move(lease);
    return c;
  }

  // Ingests `data` under `ctx` and returns its digest.
  std::string put(const RequestContext& ctx, const std::string& data,
                  const std::map<std::string, std::string>& labels = {}) {
    std::string digest = core::Sha256::digest_of(data);
    auto w = store_->content()->writer(ctx, {.ref = "ref-" + digest.substr(7, 12)});
    if (!w.ok()) {
      EXPECT_EQ(w.status().code(), Code::kAlreadyExists) << w.status().message();
      return digest;
    }
    EXPECT_TRUE((*w)->write(data).ok());
    Status st = (*w)->commit(static_cast<std::int64_t>(data.size()), digest, labels);
    EXPECT_TRUE(st.ok() || st.code() == Code::kAlreadyExists) << st.message();
    return digest;
  }

  bool blob_on_disk(const std::string& digest) {
    return std::filesystem::exists(backend_->blob_path(digest));
  }

  std::optional<core::TempDir> dir_;
  std::shared_ptr<content::LocalStore> backend_;
  std::shared_ptr<RocksStore> store_;
};

}  // namespace berth::plugins::metadata
