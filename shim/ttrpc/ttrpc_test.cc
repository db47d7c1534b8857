// ttrpc framing, server and client: round trips with metadata, errors, unknown methods, slow
// handlers that do not block others, many concurrent callers, timeouts, and hostile peers
// (oversized frames, wrong frame types, garbage requests, clients that vanish mid-call).
#include "shim/ttrpc/ttrpc.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cstring>

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
    server_ = std::make_unique<Server>(io_);
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
    work_ = std::make_unique<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>>(io_.get_executor());
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
  std::string request_frame(std::uint32_t stream, const std::string& method, const std::string& payload) {
    ::ttrpc::Request req;
    req.set_service("test.Echo");
    req.set_method(method);
    req.set_payload(payload);
    std::string body = req.SerializeAsString();
    return encode_header({static_cast<std::uint32_t>(body.size()), stream, kTypeRequest, 0}) + body;
  }

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
  std::string garbage = encode_header({6, 1, kTypeRequest, 0}) + std::string("\xff\xff\xff\xff\xff\xff", 6);
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
  std::string f = encode_header({static_cast<std::uint32_t>(body.size()), 1, kTypeRequest, 0}) + body;
  ASSERT_EQ(::write(fd3, f.data(), f.size()), static_cast<ssize_t>(f.size()));
  ::close(fd3);
  std::this_thread::sleep_for(300ms);
  // The server is still fine.
  auto c = client();
  auto r = c->call("test.Echo", "Echo", "alive");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(*r, "alive");
}

}  // namespace
}  // namespace berth::ttrpc
