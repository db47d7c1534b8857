// ttrpc framing, server and client: round trips with metadata, errors, unknown methods, slow
// handlers that do not block others, many concurrent callers, timeouts, and hostile peers
// (oversized frames, wrong frame types, garbage requests, clients that vanish mid-call).
#include "core/ttrpc/ttrpc.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <limits>
#include <mutex>
#include <vector>

#include "berth/ttrpc/ttrpc.pb.h"
#include "core/fs.h"

namespace berth::ttrpc {
namespace {

using namespace std::chrono_literals;

class TtrpcTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto d = core::TempDir::create("berth-ttrpc-");
    ASSERT_TRUE(d.ok());
    dir_.emplace(std::move(*d));
    path_ = dir_->path() + "/t.sock";
    server_ = std::make_unique<Server>(io_, limits_);
    server_->handle_sync("test.Echo", "Big", [this](const Call&) -> Result<std::string> {
      ++big_calls_;
      return std::string(64 << 10, 'b');
    });
    server_->handle_sync("test.Echo", "Deadline", [](const Call& c) -> Result<std::string> {
      if (!c.deadline) return std::string("none");
      return std::string(*c.deadline > std::chrono::steady_clock::now() ? "future" : "past");
    });
    server_->handle("test.Never", "Hang", [this](Call, Reply reply) {
      std::lock_guard lock(hung_mu_);
      hung_.push_back(std::move(reply));
    });
    server_->handle_sync("test.Echo", "Echo", [](const Call& c) -> Result<std::string> {
      auto ns = c.metadata.find(kNamespaceKey);
      return c.payload + (ns == c.metadata.end() ? "" : "@" + ns->second);
    });
    server_->handle_sync("test.Echo", "Fail", [](const Call&) -> Result<std::string> {
      return not_found("no such thing");
    });
    server_->handle("test.Slow", "Wait", [this](Call c, Reply reply) {
      std::thread([reply, ms = std::stoi(c.payload)] {
        std::this_thread::sleep_for(std::chrono::milliseconds(ms));
        reply(std::string("waited"));
      }).detach();
    });
    ASSERT_TRUE(server_->listen(path_).ok());
    work_ =
        std::make_unique<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>>(
            io_.get_executor());
    thread_ = std::thread([this] { io_.run(); });
  }
  void TearDown() override {
    boost::asio::post(io_, [this] { server_->close(); });
    work_.reset();
    io_.stop();
    if (thread_.joinable()) thread_.join();
    std::this_thread::sleep_for(50ms);  // detached repliers finish
  }
  std::unique_ptr<Client> client() {
    auto c = Client::connect(path_);
    EXPECT_TRUE(c.ok()) << c.status().message();
    return c.ok() ? std::move(*c) : nullptr;
  }
  int raw() {
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, path_.c_str(), sizeof a.sun_path - 1);
    EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    timeval tv{5, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
  }
  // Reads one response frame from a raw socket.
  std::optional<std::pair<Header, ::ttrpc::Response>> read_response(int fd) {
    unsigned char hb[kHeaderSize];
    std::size_t got = 0;
    while (got < kHeaderSize) {
      ssize_t n = ::read(fd, hb + got, kHeaderSize - got);
      if (n <= 0) return std::nullopt;
      got += static_cast<std::size_t>(n);
    }
    Header h = decode_header(hb);
    std::string body(h.length, '\0');
    got = 0;
    while (got < h.length) {
      ssize_t n = ::read(fd, body.data() + got, h.length - got);
      if (n <= 0) return std::nullopt;
      got += static_cast<std::size_t>(n);
    }
    ::ttrpc::Response r;
    r.ParseFromString(body);
    return std::make_pair(h, r);
  }
  std::string request_frame(std::uint32_t stream, const std::string& method,
                            const std::string& payload) {
    ::ttrpc::Request req;
    req.set_service("test.Echo");
    req.set_method(method);
    req.set_payload(payload);
    std::string body = req.SerializeAsString();
    return encode_header({static_cast<std::uint32_t>(body.size()), stream, kTypeRequest, 0}) + body;
  }

  ServerLimits limits_;
  std::atomic<int> big_calls_{0};
  std::mutex hung_mu_;
  std::vector<Reply> hung_;
  std::optional<core::TempDir> dir_;
  std::string path_;
  boost::asio::io_context io_;
  std::unique_ptr<Server> server_;
  std::unique_ptr<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work_;
  std::thread thread_;
};

TEST(TtrpcFrameTest, HeaderIsBigEndian) {
  std::string h = encode_header({0x01020304, 0x0a0b0c0d, kTypeResponse, 0});
  ASSERT_EQ(h.size(), kHeaderSize);
  EXPECT_EQ(h, std::string("\x01\x02\x03\x04\x0a\x0b\x0c\x0d\x02\x00", 10));
  Header d = decode_header(reinterpret_cast<const unsigned char*>(h.data()));
  EXPECT_EQ(d.length, 0x01020304u);
  EXPECT_EQ(d.stream, 0x0a0b0c0du);
  EXPECT_EQ(d.type, kTypeResponse);
}

TEST_F(TtrpcTest, RoundTripWithMetadataErrorsAndUnknownMethods) {
  auto c = client();
  auto r = c->call("test.Echo", "Echo", "hello", {{kNamespaceKey, "default"}});
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(*r, "hello@default");
  auto f = c->call("test.Echo", "Fail", "");
  EXPECT_EQ(f.status().code(), Code::kNotFound);
  EXPECT_EQ(f.status().message(), "no such thing");
  auto u = c->call("test.Nope", "Nope", "");
  EXPECT_EQ(u.status().code(), Code::kUnimplemented);
  EXPECT_NE(u.status().message().find("test.Nope/Nope"), std::string::npos);
  std::string big(1 << 20, 'x');
  auto b = c->call("test.Echo", "Echo", big);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->size(), big.size());
}

TEST_F(TtrpcTest, SlowCallsDoNotBlockOthersAndManyCallersShareAConnection) {
  auto c = client();
  std::atomic<bool> slow_done{false};
  std::thread slow([&] {
    auto r = c->call("test.Slow", "Wait", "500");
    EXPECT_TRUE(r.ok());
    slow_done = true;
  });
  std::this_thread::sleep_for(50ms);
  auto quick = c->call("test.Echo", "Echo", "quick");
  EXPECT_TRUE(quick.ok());
  EXPECT_FALSE(slow_done.load()) << "a quick call waited for the slow one";
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) {
        std::string p = std::to_string(t) + "-" + std::to_string(i);
        auto r = c->call("test.Echo", "Echo", p);
        if (r.ok() && *r == p) ++ok;
      }
    });
  }
  for (auto& th : threads) th.join();
  slow.join();
  EXPECT_EQ(ok.load(), 400);
}

TEST_F(TtrpcTest, TimeoutsAndServerGoingAway) {
  auto c = client();
  auto r = c->call("test.Slow", "Wait", "1000", {}, 100ms);
  EXPECT_EQ(r.status().code(), Code::kDeadlineExceeded);
  std::thread pending([&] {
    auto p = c->call("test.Slow", "Wait", "5000");
    EXPECT_EQ(p.status().code(), Code::kUnavailable) << p.status().message();
  });
  std::this_thread::sleep_for(100ms);
  boost::asio::post(io_, [this] { server_->close(); });
  pending.join();
  EXPECT_FALSE(c->connected());
}

TEST_F(TtrpcTest, OversizedFrameIsRefusedAndTheConnectionStaysUsable) {
  int fd = raw();
  std::uint32_t len = kMaxMessage + 1;
  std::string hdr = encode_header({len, 3, kTypeRequest, 0});
  ASSERT_EQ(::write(fd, hdr.data(), hdr.size()), static_cast<ssize_t>(hdr.size()));
  std::string junk(1 << 20, 'j');
  for (std::uint32_t left = len; left > 0;) {
    std::size_t n = std::min<std::size_t>(left, junk.size());
    ASSERT_EQ(::write(fd, junk.data(), n), static_cast<ssize_t>(n));
    left -= static_cast<std::uint32_t>(n);
  }
  auto resp = read_response(fd);
  ASSERT_TRUE(resp);
  EXPECT_EQ(resp->first.stream, 3u);
  EXPECT_EQ(resp->second.status().code(), static_cast<int>(Code::kResourceExhausted));
  std::string ok = request_frame(5, "Echo", "after");
  ASSERT_EQ(::write(fd, ok.data(), ok.size()), static_cast<ssize_t>(ok.size()));
  auto again = read_response(fd);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->first.stream, 5u);
  EXPECT_EQ(again->second.payload(), "after");
  ::close(fd);
}

TEST_F(TtrpcTest, WrongTypesAndGarbageCloseOnlyThatConnection) {
  int fd = raw();
  std::string bad = encode_header({4, 1, 7, 0}) + "abcd";
  ASSERT_EQ(::write(fd, bad.data(), bad.size()), static_cast<ssize_t>(bad.size()));
  char b;
  // Closed: EOF, or a reset when our unread bytes were still queued on the server side.
  auto closed = [&b](int f) {
    ssize_t n = ::read(f, &b, 1);
    return n == 0 || (n < 0 && errno == ECONNRESET);
  };
  EXPECT_TRUE(closed(fd)) << "connection should be closed";
  ::close(fd);
  int fd2 = raw();
  std::string garbage =
      encode_header({6, 1, kTypeRequest, 0}) + std::string("\xff\xff\xff\xff\xff\xff", 6);
  ASSERT_EQ(::write(fd2, garbage.data(), garbage.size()), static_cast<ssize_t>(garbage.size()));
  EXPECT_TRUE(closed(fd2));
  ::close(fd2);
  // A client that disappears in the middle of a slow call.
  int fd3 = raw();
  ::ttrpc::Request req;
  req.set_service("test.Slow");
  req.set_method("Wait");
  req.set_payload("200");
  std::string body = req.SerializeAsString();
  std::string f =
      encode_header({static_cast<std::uint32_t>(body.size()), 1, kTypeRequest, 0}) + body;
  ASSERT_EQ(::write(fd3, f.data(), f.size()), static_cast<ssize_t>(f.size()));
  ::close(fd3);
  std::this_thread::sleep_for(300ms);
  // The server is still fine.
  auto c = client();
  auto r = c->call("test.Echo", "Echo", "alive");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(*r, "alive");
}

TEST_F(TtrpcTest, AHugeTimeoutIsNoDeadlineNotAnOverflow) {
  int fd = raw();
  for (std::int64_t t : {std::numeric_limits<std::int64_t>::max(), std::int64_t{1} << 62,
                         std::int64_t{5'000'000'000}}) {
    ::ttrpc::Request req;
    req.set_service("test.Echo");
    req.set_method("Deadline");
    req.set_timeout_nano(t);
    std::string body = req.SerializeAsString();
    std::string f =
        encode_header({static_cast<std::uint32_t>(body.size()), 1, kTypeRequest, 0}) + body;
    ASSERT_EQ(::write(fd, f.data(), f.size()), static_cast<ssize_t>(f.size()));
    auto r = read_response(fd);
    ASSERT_TRUE(r);
    EXPECT_NE(r->second.payload(), "past") << t;
  }
  ::close(fd);
}

class TtrpcLimitsTest : public TtrpcTest {
 protected:
  TtrpcLimitsTest() {
    limits_.max_connections = 3;
    limits_.max_outstanding = 8;
    limits_.max_queued_bytes = 256 << 10;
    limits_.idle_timeout = 1s;
  }
};

// A client that sends request after request and never reads the answers stops being read: the
// server handles a bounded number, and its queue of unwritten answers stays bounded.
TEST_F(TtrpcLimitsTest, APipeliningClientThatDoesNotReadIsNotServedWithoutBound) {
  int fd = raw();
  int flags = ::fcntl(fd, F_GETFL);
  ::fcntl(fd, F_SETFL, flags | O_NONBLOCK);
  std::string f = request_frame(1, "Big", "");
  std::size_t sent = 0;
  for (int i = 0; i < 20000; ++i) {
    ssize_t n = ::send(fd, f.data(), f.size(), MSG_NOSIGNAL);
    if (n < 0) break;  // the server stopped reading: our send buffer is full
    sent += static_cast<std::size_t>(n);
  }
  std::this_thread::sleep_for(300ms);
  int handled = big_calls_;
  EXPECT_LE(handled, 8 + 1) << "requests handled while the client read nothing";
  EXPECT_GT(sent / f.size(), static_cast<std::size_t>(handled) + 10) << "the test sent too little";
  // Once the client reads, everything it sent is answered.
  ::fcntl(fd, F_SETFL, flags);
  std::size_t frames = sent / f.size();
  for (std::size_t i = 0; i < frames; ++i) {
    auto r = read_response(fd);
    ASSERT_TRUE(r) << "answer " << i << " of " << frames;
  }
  EXPECT_EQ(big_calls_, static_cast<int>(frames));
  ::close(fd);
}

TEST_F(TtrpcLimitsTest, ConnectionsBeyondTheCapAreClosed) {
  std::vector<int> fds;
  for (int i = 0; i < 3; ++i) fds.push_back(raw());
  std::this_thread::sleep_for(100ms);
  int extra = raw();
  char b;
  ssize_t n = ::read(extra, &b, 1);
  EXPECT_TRUE(n == 0 || (n < 0 && errno == ECONNRESET)) << "a fourth connection was served";
  ::close(extra);
  std::string f = request_frame(1, "Echo", "still");
  ASSERT_EQ(::write(fds[0], f.data(), f.size()), static_cast<ssize_t>(f.size()));
  auto r = read_response(fds[0]);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->second.payload(), "still");
  for (int fd : fds) ::close(fd);
}

TEST_F(TtrpcLimitsTest, IdleConnectionsCloseButNotOnesWithCallsInFlight) {
  int idle = raw();
  int busy = raw();
  ::ttrpc::Request req;
  req.set_service("test.Never");
  req.set_method("Hang");
  std::string body = req.SerializeAsString();
  std::string f =
      encode_header({static_cast<std::uint32_t>(body.size()), 1, kTypeRequest, 0}) + body;
  ASSERT_EQ(::write(busy, f.data(), f.size()), static_cast<ssize_t>(f.size()));
  std::this_thread::sleep_for(2500ms);
  char b;
  ssize_t n = ::read(idle, &b, 1);
  EXPECT_TRUE(n == 0 || (n < 0 && errno == ECONNRESET)) << "the idle connection stayed open";
  timeval tv{0, 200000};
  ::setsockopt(busy, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  n = ::read(busy, &b, 1);
  EXPECT_TRUE(n < 0 && errno == EAGAIN) << "the connection with a call in flight was closed";
  ::close(idle);
  ::close(busy);
}

}  // namespace
}  // namespace berth::ttrpc
