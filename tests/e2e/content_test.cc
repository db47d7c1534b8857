// Content, leases and garbage collection end to end: containerd's ctr, berth, and a raw gRPC
// client for what the CLIs cannot do (a crash mid-ingest, a lease header, a 1 GiB stream).
#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "core/digest.h"
#include "github.com/containerd/containerd/api/events/content.pb.h"
#include "github.com/containerd/containerd/api/services/content/v1/content.grpc.pb.h"
#include "github.com/containerd/containerd/api/services/events/v1/events.grpc.pb.h"
#include "tests/e2e/harness.h"

namespace berth::e2e {
namespace {

namespace pb = ::containerd::services::content::v1;
namespace fs = std::filesystem;
using nlohmann::json;
using ::testing::HasSubstr;
using ::testing::Not;

// Deterministic pseudo-random bytes.
std::string random_bytes(std::size_t n, unsigned seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (std::size_t i = 0; i + 8 <= n; i += 8) {
    std::uint64_t v = rng();
    std::memcpy(&s[i], &v, 8);
  }
  return s;
}

class ContentTest : public ::testing::Test {
 protected:
  void SetUp() override {
    d_ = Daemon::create();
    ASSERT_TRUE(d_);
    start();
  }
  void start() {
    // No collection at startup: these tests ingest unreferenced blobs and look at them right
    // after; deletions, sync deletes and expiries still trigger collections as usual.
    DaemonOptions o;
    o.config = "[plugins.\"io.containerd.gc.v1.scheduler\"]\n  startup_delay = \"1h\"\n";
    auto err = d_->start(o);
    ASSERT_FALSE(err.has_value()) << *err;
    channel_ = grpc::CreateChannel("unix:" + d_->address(), grpc::InsecureChannelCredentials());
    stub_ = pb::Content::NewStub(channel_);
  }
  std::unique_ptr<grpc::ClientContext> ctx(const std::string& ns = "default",
                                           const std::string& lease = "") {
    auto c = std::make_unique<grpc::ClientContext>();
    c->AddMetadata("containerd-namespace", ns);
    if (!lease.empty()) c->AddMetadata("containerd-lease", lease);
    c->set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(5));
    return c;
  }
  std::string write_file(const std::string& name, const std::string& data) {
    std::string path = d_->dir() + "/" + name;
    std::ofstream(path, std::ios::binary) << data;
    return path;
  }
  // Writes `data` through the Write stream; returns the final grpc status.
  grpc::Status put(const std::string& ref, const std::string& data,
                   const std::string& ns = "default", const std::string& lease = "",
                   std::map<std::string, std::string> labels = {}) {
    auto c = ctx(ns, lease);
    auto s = stub_->Write(c.get());
    pb::WriteContentRequest req;
    req.set_action(pb::COMMIT);
    req.set_ref(ref);
    req.set_data(data);
    req.set_total(static_cast<std::int64_t>(data.size()));
    req.set_expected(core::Sha256::digest_of(data));
    for (auto& [k, v] : labels) (*req.mutable_labels())[k] = v;
    pb::WriteContentResponse resp;
    s->Write(req);
    s->Read(&resp);
    s->WritesDone();
    return s->Finish();
  }
  bool blob_on_disk(const std::string& digest) {
    return fs::exists(d_->root() + "/io.containerd.content.v1.content/blobs/sha256/" +
                      digest.substr(7));
  }
  std::int64_t daemon_hwm_kib() {
    std::ifstream f("/proc/" + std::to_string(d_->pid()) + "/status");
    for (std::string line; std::getline(f, line);) {
      if (line.rfind("VmHWM:", 0) == 0) return std::stoll(line.substr(6));
    }
    return -1;
  }

  std::unique_ptr<Daemon> d_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<pb::Content::Stub> stub_;
};

TEST_F(ContentTest, ContainerdCtrContentAndLeaseCommands) {
  std::string data = random_bytes(3 << 20, 1);
  std::string digest = core::Sha256::digest_of(data);
  std::string file = write_file("blob", data);

  auto ingest = d_->ctr({"content", "ingest", "my-ref"}, file);
  ASSERT_EQ(ingest.exit_code, 0) << diag(ingest);
  auto ls = d_->ctr({"content", "ls"});
  ASSERT_EQ(ls.exit_code, 0) << diag(ls);
  EXPECT_THAT(ls.out, HasSubstr(digest));
  auto get = d_->ctr({"content", "get", digest});
  ASSERT_EQ(get.exit_code, 0) << get.err;
  EXPECT_TRUE(get.out == data) << "ctr content get returned " << get.out.size() << " bytes";

  auto label = d_->ctr({"content", "label", digest, "team=blue"});
  ASSERT_EQ(label.exit_code, 0) << diag(label);
  EXPECT_THAT(d_->ctr({"content", "ls"}).out, HasSubstr("team=blue"));

  // An unfinished ingest shows in `ctr content active`.
  {
    auto c = ctx();
    auto s = stub_->Write(c.get());
    pb::WriteContentRequest req;
    req.set_action(pb::WRITE);
    req.set_ref("half-done");
    req.set_data("partial");
    pb::WriteContentResponse resp;
    ASSERT_TRUE(s->Write(req) && s->Read(&resp));
    s->WritesDone();
    ASSERT_TRUE(s->Finish().ok());
  }
  auto active = d_->ctr({"content", "active"});
  ASSERT_EQ(active.exit_code, 0) << diag(active);
  EXPECT_THAT(active.out, HasSubstr("half-done"));

  auto rm = d_->ctr({"content", "rm", digest});
  ASSERT_EQ(rm.exit_code, 0) << diag(rm);
  EXPECT_THAT(d_->ctr({"content", "ls"}).out, Not(HasSubstr(digest)));

  auto lc = d_->ctr({"leases", "create", "--id", "l1", "owner=test"});
  ASSERT_EQ(lc.exit_code, 0) << diag(lc);
  auto lls = d_->ctr({"leases", "ls"});
  EXPECT_THAT(lls.out, HasSubstr("l1"));
  EXPECT_THAT(lls.out, HasSubstr("containerd.io/gc.expire"));
  auto lrm = d_->ctr({"leases", "rm", "l1"});
  ASSERT_EQ(lrm.exit_code, 0) << diag(lrm);
  EXPECT_THAT(d_->ctr({"leases", "ls", "-q"}).out, Not(HasSubstr("l1")));
}

TEST_F(ContentTest, BerthContentAndLeasesCli) {
  std::string data = random_bytes(1 << 20, 2);
  std::string digest = core::Sha256::digest_of(data);
  auto in =
      d_->berth({"content", "ingest", "r1", "--expected-digest", digest}, write_file("b", data));
  ASSERT_EQ(in.exit_code, 0) << diag(in);
  EXPECT_EQ(in.out, digest + "\n");
  auto ls = d_->berth({"--format", "json", "content", "ls"});
  auto j = json::parse(ls.out);
  ASSERT_EQ(j.size(), 1u);
  EXPECT_EQ(j[0]["digest"], digest);
  EXPECT_EQ(j[0]["size"], 1 << 20);
  EXPECT_EQ(d_->berth({"content", "get", digest}).out, data);
  ASSERT_EQ(d_->berth({"content", "label", digest, "x=1"}).exit_code, 0);
  EXPECT_THAT(d_->berth({"content", "ls", "labels.x==1"}).out, HasSubstr(digest));
  EXPECT_THAT(d_->berth({"content", "ls", "labels.x==2"}).out, Not(HasSubstr(digest)));

  auto bad =
      d_->berth({"content", "ingest", "r2", "--expected-digest", core::Sha256::digest_of("other")},
                write_file("c", "not other"));
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_THAT(bad.err, HasSubstr("unexpected digest"));
  EXPECT_THAT(bad.err, HasSubstr("\"r2\""));

  auto lc = d_->berth({"leases", "create", "--id", "hold", "--expires", "1h"});
  ASSERT_EQ(lc.exit_code, 0) << diag(lc);
  EXPECT_EQ(lc.out, "hold\n");
  auto ll = json::parse(d_->berth({"--format", "json", "leases", "ls"}).out);
  ASSERT_EQ(ll.size(), 1u);
  EXPECT_TRUE(ll[0]["labels"].contains("containerd.io/gc.expire"));
  EXPECT_EQ(d_->berth({"leases", "rm", "--sync", "hold"}).exit_code, 0);
  auto missing = d_->berth({"leases", "rm", "hold"});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_THAT(missing.err, HasSubstr("lease \"hold\" not found"));
}

TEST_F(ContentTest, IngestResumesAfterDaemonKill9) {
  std::string data = random_bytes(8 << 20, 3);
  std::string digest = core::Sha256::digest_of(data);
  const std::int64_t half = 3 << 20;
  {
    auto c = ctx();
    auto s = stub_->Write(c.get());
    pb::WriteContentRequest req;
    pb::WriteContentResponse resp;
    for (std::int64_t off = 0; off < half; off += 1 << 20) {
      req.set_action(pb::WRITE);
      req.set_ref("crash-ref");
      req.set_offset(off);
      req.set_total(static_cast<std::int64_t>(data.size()));
      req.set_data(data.substr(off, 1 << 20));
      ASSERT_TRUE(s->Write(req) && s->Read(&resp));
    }
    EXPECT_EQ(resp.offset(), half);
    d_->kill9();  // mid-stream, no commit
    c->TryCancel();
  }
  start();
  pb::StatusRequest sreq;
  sreq.set_ref("crash-ref");
  pb::StatusResponse sresp;
  auto c = ctx();
  auto st = stub_->Status(c.get(), sreq, &sresp);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(sresp.status().offset(), half);
  EXPECT_EQ(sresp.status().total(), static_cast<std::int64_t>(data.size()));

  // berth content ingest resumes: it skips what the daemon has and sends the rest.
  auto in = d_->berth({"content", "ingest", "crash-ref", "--expected-digest", digest},
                      write_file("all", data));
  ASSERT_EQ(in.exit_code, 0) << diag(in);
  EXPECT_THAT(in.err, HasSubstr("resuming \"crash-ref\" at offset " + std::to_string(half)));
  EXPECT_EQ(in.out, digest + "\n");
  EXPECT_EQ(core::Sha256::digest_of(d_->berth({"content", "get", digest}).out), digest);
}

TEST_F(ContentTest, SecondWriterOnARefIsUnavailableAndOffsetsAreChecked) {
  auto c1 = ctx();
  auto s1 = stub_->Write(c1.get());
  pb::WriteContentRequest req;
  req.set_action(pb::STAT);
  req.set_ref("contended");
  pb::WriteContentResponse resp;
  ASSERT_TRUE(s1->Write(req) && s1->Read(&resp));

  auto c2 = ctx();
  auto s2 = stub_->Write(c2.get());
  s2->Write(req);
  EXPECT_FALSE(s2->Read(&resp));
  auto st2 = s2->Finish();
  EXPECT_EQ(st2.error_code(), grpc::StatusCode::UNAVAILABLE) << st2.error_message();

  // A write at the wrong offset is OutOfRange.
  req.set_action(pb::WRITE);
  req.set_offset(100);
  req.set_data("x");
  s1->Write(req);
  EXPECT_FALSE(s1->Read(&resp));
  auto st1 = s1->Finish();
  EXPECT_EQ(st1.error_code(), grpc::StatusCode::OUT_OF_RANGE) << st1.error_message();
}

TEST_F(ContentTest, WrongSizeOrDigestAtCommitCommitsNothing) {
  for (int wrong_size = 0; wrong_size < 2; ++wrong_size) {
    auto c = ctx();
    auto s = stub_->Write(c.get());
    pb::WriteContentRequest req;
    req.set_action(pb::COMMIT);
    req.set_ref(wrong_size ? "bad-size" : "bad-digest");
    req.set_data("twelve bytes");
    if (wrong_size) {
      req.set_total(13);
    } else {
      req.set_expected(core::Sha256::digest_of("something else"));
    }
    pb::WriteContentResponse resp;
    s->Write(req);
    EXPECT_FALSE(s->Read(&resp));
    s->WritesDone();
    auto st = s->Finish();
    EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << st.error_message();
  }
  EXPECT_EQ(d_->berth({"content", "ls", "-q"}).out, "");
  EXPECT_FALSE(blob_on_disk(core::Sha256::digest_of("twelve bytes")));
}

TEST_F(ContentTest, OneGibStreamsThroughWithBoundedDaemonMemory) {
  const std::size_t kBlock = 1 << 20;
  const std::size_t kBlocks = 1024;
  std::string block = random_bytes(kBlock, 4);
  core::Sha256 expected;
  for (std::size_t i = 0; i < kBlocks; ++i) {
    block[0] = static_cast<char>(i);
    expected.update(block);
  }
  std::int64_t baseline = daemon_hwm_kib();
  {
    auto c = ctx();
    auto s = stub_->Write(c.get());
    pb::WriteContentRequest req;
    pb::WriteContentResponse resp;
    for (std::size_t i = 0; i < kBlocks; ++i) {
      block[0] = static_cast<char>(i);
      req.set_action(i + 1 == kBlocks ? pb::COMMIT : pb::WRITE);
      req.set_ref("big");
      req.set_offset(static_cast<std::int64_t>(i * kBlock));
      req.set_data(block);
      if (i + 1 == kBlocks) {
        req.set_total(static_cast<std::int64_t>(kBlocks * kBlock));
        req.set_expected(expected.digest());
      }
      ASSERT_TRUE(s->Write(req));
      ASSERT_TRUE(s->Read(&resp));
    }
    s->WritesDone();
    auto st = s->Finish();
    ASSERT_TRUE(st.ok()) << st.error_message();
  }
  std::int64_t after_write = daemon_hwm_kib();
  pb::ReadContentRequest rreq;
  rreq.set_digest(expected.digest());
  auto c = ctx();
  auto reader = stub_->Read(c.get(), rreq);
  pb::ReadContentResponse rresp;
  core::Sha256 got;
  while (reader->Read(&rresp)) got.update(rresp.data());
  ASSERT_TRUE(reader->Finish().ok());
  EXPECT_EQ(got.digest(), expected.digest());
  EXPECT_EQ(got.bytes(), kBlocks * kBlock);
  std::int64_t after_read = daemon_hwm_kib();
  // The daemon holds a few chunks at a time, never the blob.
  EXPECT_LT(after_write - baseline, 96 * 1024)
      << "write grew the daemon's peak RSS by " << after_write - baseline << " KiB";
  EXPECT_LT(after_read - baseline, 96 * 1024)
      << "read grew the daemon's peak RSS by " << after_read - baseline << " KiB";

  // Ranged read.
  rreq.set_offset(static_cast<std::int64_t>(kBlock) + 1);
  rreq.set_size(10);
  auto c2 = ctx();
  auto r2 = stub_->Read(c2.get(), rreq);
  std::string part;
  while (r2->Read(&rresp)) part += rresp.data();
  ASSERT_TRUE(r2->Finish().ok());
  block[0] = 1;
  EXPECT_EQ(part, block.substr(1, 10));
}

TEST_F(ContentTest, NamespacesAreIsolatedButShareBytes) {
  std::string data = "namespace a's blob";
  std::string digest = core::Sha256::digest_of(data);
  // A gc.root keeps it from the collector (nothing else references it).
  ASSERT_TRUE(put("a-ref", data, "a", "", {{"containerd.io/gc.root", "1"}}).ok());
  EXPECT_EQ(d_->berth({"-n", "b", "content", "ls", "-q"}).out, "");
  auto get = d_->berth({"-n", "b", "content", "get", digest});
  EXPECT_EQ(get.exit_code, 1);
  EXPECT_THAT(get.err, HasSubstr("not found in namespace \"b\""));
  // With the digest known, namespace b links the bytes instead of receiving them again.
  auto in = d_->berth({"-n", "b", "content", "ingest", "b-ref", "--expected-digest", digest},
                      write_file("empty", ""));
  ASSERT_EQ(in.exit_code, 0) << diag(in);
  EXPECT_EQ(d_->berth({"-n", "b", "content", "get", digest}).out, data);
}

TEST_F(ContentTest, GcRemovesExactlyTheUnreferencedBlobsAndKeepsLeasedOnes) {
  ASSERT_EQ(d_->berth({"leases", "create", "--id", "keep"}).exit_code, 0);
  std::string leased = "leased", rooted = "rooted", loose = "loose";
  ASSERT_TRUE(put("r-leased", leased, "default", "keep").ok());
  ASSERT_TRUE(put("r-rooted", rooted, "default", "", {{"containerd.io/gc.root", "yes"}}).ok());
  ASSERT_TRUE(put("r-loose", loose).ok());
  for (auto* s : {&leased, &rooted, &loose}) EXPECT_TRUE(blob_on_disk(core::Sha256::digest_of(*s)));
  // A synchronous lease delete runs a collection and waits for it.
  ASSERT_EQ(d_->berth({"leases", "create", "--id", "trigger"}).exit_code, 0);
  ASSERT_EQ(d_->berth({"leases", "rm", "--sync", "trigger"}).exit_code, 0);
  EXPECT_TRUE(blob_on_disk(core::Sha256::digest_of(leased)));
  EXPECT_TRUE(blob_on_disk(core::Sha256::digest_of(rooted)));
  EXPECT_FALSE(blob_on_disk(core::Sha256::digest_of(loose)));
  auto ls = d_->berth({"content", "ls", "-q"}).out;
  EXPECT_THAT(ls, HasSubstr(core::Sha256::digest_of(leased)));
  EXPECT_THAT(ls, Not(HasSubstr(core::Sha256::digest_of(loose))));
  // Dropping the lease releases its blob.
  ASSERT_EQ(d_->berth({"leases", "rm", "--sync", "keep"}).exit_code, 0);
  EXPECT_FALSE(blob_on_disk(core::Sha256::digest_of(leased)));
  EXPECT_TRUE(blob_on_disk(core::Sha256::digest_of(rooted)));
}

TEST_F(ContentTest, ExpiredLeaseIsReclaimedOnAnIdleDaemon) {
  ASSERT_EQ(d_->berth({"leases", "create", "--id", "brief", "--expires", "2s"}).exit_code, 0);
  std::string data = "short-lived";
  ASSERT_TRUE(put("r", data, "default", "brief").ok());
  EXPECT_TRUE(blob_on_disk(core::Sha256::digest_of(data)));
  // No calls at all while the lease runs out.
  bool gone = false;
  for (int i = 0; i < 100 && !gone; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    gone = !blob_on_disk(core::Sha256::digest_of(data));
  }
  EXPECT_TRUE(gone) << "blob still on disk 10s after its lease expired";
  EXPECT_EQ(d_->berth({"leases", "ls", "-q"}).out, "");
}

TEST_F(ContentTest, DeletePublishesContentDeleteEvent) {
  ASSERT_TRUE(put("ev", "eventful", "default", "", {{"containerd.io/gc.root", "1"}}).ok());
  namespace epb = ::containerd::services::events::v1;
  auto events = epb::Events::NewStub(channel_);
  grpc::ClientContext c;
  c.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  epb::SubscribeRequest sreq;
  sreq.add_filters("topic==\"/content/delete\"");
  auto sub = events->Subscribe(&c, sreq);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // subscription registered
  std::string digest = core::Sha256::digest_of("eventful");
  ASSERT_EQ(d_->berth({"content", "rm", digest}).exit_code, 0);
  epb::Envelope env;
  ASSERT_TRUE(sub->Read(&env));
  EXPECT_EQ(env.topic(), "/content/delete");
  EXPECT_EQ(env.namespace_(), "default");
  ::containerd::events::ContentDelete payload;
  ASSERT_TRUE(payload.ParseFromString(env.event().value()));
  EXPECT_EQ(payload.digest(), digest);
  c.TryCancel();
}

}  // namespace
}  // namespace berth::e2e
