// A hostile registry against Berth's registry client and berthd's pull: a redirect to another
// host that then asks for credentials (the password must not arrive there), configured headers
// and tokens kept to their host, a redirect from https to plain http, answers that never end,
// and answers that trickle. Each must fail quickly with an error naming what happened.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <thread>

#include "core/digest.h"
#include "core/remotes/client.h"
#include "tests/e2e/harness.h"
#include "tests/e2e/registry.h"
#include "tests/support/oci_layout.h"

namespace berth::e2e {
namespace {

using remotes::HostOptions;
using remotes::RegistryClient;
using remotes::Repository;
using ::testing::HasSubstr;
using Clock = std::chrono::steady_clock;

constexpr const char* kPassword = "upstream-s3cret";

std::string answer(int status, const std::string& reason,
                   const std::vector<std::string>& headers = {}, const std::string& body = "") {
  std::string out = "HTTP/1.1 " + std::to_string(status) + " " + reason + "\r\n";
  for (const auto& h : headers) out += h + "\r\n";
  out += "Content-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
  return out;
}

// A chunked body that never ends (until the client leaves).
void endless(const HostileServer::Write& write, const std::string& status_line) {
  if (!write(status_line + "\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n")) return;
  std::string chunk(64 * 1024, '[');
  std::string framed = fmt::format("{:x}\r\n{}\r\n", chunk.size(), chunk);
  for (int i = 0; i < 100000 && write(framed); ++i) {
  }
}

// Everything a server saw, for "did the secret arrive here" checks.
std::string everything(const HostileServer& s) {
  std::string out;
  for (const auto& r : s.requests()) {
    out += r.method + " " + r.target + "\n";
    for (const auto& [k, v] : r.headers) out += k + ": " + v + "\n";
  }
  return out;
}

HostOptions options() {
  HostOptions o;
  o.plain_http = true;
  o.username = "tester";
  o.password = kPassword;
  o.headers = {{"X-Registry-Secret", "only-for-the-registry"}};
  return o;
}

TEST(HostileRegistry, CredentialsAndHeadersDoNotFollowARedirectToAnotherHost) {
  // The other host asks for credentials (basic, and bearer with a realm of its own).
  auto other = HostileServer::start([](const HostileServer::Request& r, const auto& write) {
    if (r.target.rfind("/token", 0) == 0) {
      write(answer(200, "OK", {"Content-Type: application/json"}, R"({"token":"t"})"));
      return;
    }
    bool basic = r.target.find("basic") != std::string::npos;
    write(answer(401, "Unauthorized",
                 {basic ? "WWW-Authenticate: Basic realm=\"other\""
                        : "WWW-Authenticate: Bearer realm=\"http://" + r.headers.at("host") +
                              "/token\",service=\"other\""}));
  });
  ASSERT_TRUE(other);
  // The registry wants basic auth, then sends the blob off to the other host.
  auto registry = HostileServer::start([&](const HostileServer::Request& r, const auto& write) {
    if (!r.headers.count("authorization")) {
      write(answer(401, "Unauthorized", {"WWW-Authenticate: Basic realm=\"registry\""}));
      return;
    }
    std::string kind = r.target.find("sha256:b") != std::string::npos ? "basic" : "bearer";
    write(answer(307, "Temporary Redirect",
                 {"Location: http://" + other->host() + "/storage/" + kind}));
  });
  ASSERT_TRUE(registry);
  RegistryClient client(options());
  Repository repo{registry->host(), "x/y"};
  for (char which : {'b', 'c'}) {
    std::string digest = "sha256:" + std::string(64, which);
    auto st = client.fetch_blob_from(
        repo, digest, 0, [] { return Status(); }, [](std::string_view) { return Status(); });
    ASSERT_FALSE(st.ok());
    EXPECT_EQ(st.code(), Code::kUnauthenticated) << st.message();
    EXPECT_THAT(st.message(), HasSubstr("not sent there")) << st.message();
  }
  // The registry got the password; the other host got neither it, a token request, nor the
  // headers configured for the registry.
  EXPECT_THAT(everything(*registry), HasSubstr("authorization: Basic"));
  std::string seen = everything(*other);
  EXPECT_THAT(seen, HasSubstr("/storage/"));
  EXPECT_THAT(seen, ::testing::Not(HasSubstr("authorization")));
  EXPECT_THAT(seen, ::testing::Not(HasSubstr("only-for-the-registry")));
  EXPECT_THAT(seen, ::testing::Not(HasSubstr("/token")));
}

TEST(HostileRegistry, ARedirectFromHttpsToPlainHttpIsRefused) {
  std::string why;
  auto certs = Registry::start(&why, {.tls = true});  // for its CA and server certificate
  ASSERT_TRUE(certs) << why;
  auto plain = HostileServer::start(
      [](const auto&, const auto& write) { write(answer(200, "OK", {}, "bytes")); });
  ASSERT_TRUE(plain);
  auto tls = HostileServer::start(
      [&](const HostileServer::Request& r, const auto& write) {
        write(answer(307, "Temporary Redirect", {"Location: http://" + plain->host() + r.target}));
      },
      certs->dir() + "/tls/server.crt", certs->dir() + "/tls/server.key");
  ASSERT_TRUE(tls);
  HostOptions o = options();
  o.plain_http = false;
  o.ca_files = {certs->ca_file()};
  RegistryClient client(o);
  auto st = client.fetch_blob_from(
      {tls->host(), "x/y"}, "sha256:" + std::string(64, 'a'), 0, [] { return Status(); },
      [](std::string_view) { return Status(); });
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), Code::kPermissionDenied) << st.message();
  EXPECT_THAT(st.message(), HasSubstr("from https to plain http"));
  EXPECT_EQ(tls->requests().size(), 1u);
  EXPECT_TRUE(plain->requests().empty()) << everything(*plain);
}

TEST(HostileRegistry, AnswersThatNeverEndAreCutOff) {
  // A token server, a manifest and an error document that never end.
  auto server = HostileServer::start([](const HostileServer::Request& r, const auto& write) {
    if (r.target.rfind("/token", 0) == 0) return endless(write, "HTTP/1.1 200 OK");
    if (r.target.find("/manifests/") != std::string::npos &&
        r.target.find("tok") != std::string::npos) {
      write(
          answer(401, "Unauthorized",
                 {"WWW-Authenticate: Bearer realm=\"http://" + r.headers.at("host") + "/token\""}));
      return;
    }
    if (r.target.find("/manifests/") != std::string::npos)
      return endless(write,
                     "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.manifest.v1+json");
    endless(write, "HTTP/1.1 500 Internal Server Error");
  });
  ASSERT_TRUE(server);
  RegistryClient client(options());
  Repository repo{server->host(), "x/y"};
  auto t0 = Clock::now();
  auto resolved = client.resolve(repo, "latest");
  ASSERT_FALSE(resolved.ok());
  EXPECT_EQ(resolved.status().code(), Code::kResourceExhausted) << resolved.status().message();
  EXPECT_THAT(resolved.status().message(), HasSubstr("larger than 4 MiB"));
  auto token = client.resolve(repo, "tok");
  ASSERT_FALSE(token.ok());
  EXPECT_THAT(token.status().message(), HasSubstr("larger than 4 MiB"));
  auto error = client.blob_exists(repo, "sha256:" + std::string(64, 'e'));
  EXPECT_FALSE(error.ok());
  auto fetched = client.fetch_blob_from(
      repo, "sha256:" + std::string(64, 'e'), 0, [] { return Status(); },
      [](std::string_view) { return Status(); });
  EXPECT_FALSE(fetched.ok());
  EXPECT_LT(Clock::now() - t0, std::chrono::seconds(20));
}

TEST(HostileRegistry, TricklingAnswersHitTheirDeadlines) {
  // Headers one byte at a time, never complete; a blob body at a few bytes a second.
  auto server = HostileServer::start([](const HostileServer::Request& r, const auto& write) {
    if (r.target.find("/manifests/") != std::string::npos) {
      for (int i = 0; i < 200; ++i) {
        if (!write("X")) return;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
      return;
    }
    if (!write("HTTP/1.1 200 OK\r\nContent-Length: 100000\r\nConnection: close\r\n\r\n")) return;
    for (int i = 0; i < 1000; ++i) {
      if (!write("xx")) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  });
  ASSERT_TRUE(server);
  HostOptions o = options();
  o.timeout = std::chrono::seconds(1);
  o.request_timeout = std::chrono::seconds(2);
  o.min_speed = 1024;
  RegistryClient client(o);
  Repository repo{server->host(), "x/y"};
  auto t0 = Clock::now();
  auto resolved = client.resolve(repo, "latest");
  ASSERT_FALSE(resolved.ok());
  EXPECT_EQ(resolved.status().code(), Code::kDeadlineExceeded) << resolved.status().message();
  EXPECT_THAT(resolved.status().message(), HasSubstr("no complete answer within 2 s"));
  EXPECT_LT(Clock::now() - t0, std::chrono::seconds(5));
  t0 = Clock::now();
  auto fetched = client.fetch_blob_from(
      repo, "sha256:" + std::string(64, 'f'), 0, [] { return Status(); },
      [](std::string_view) { return Status(); });
  ASSERT_FALSE(fetched.ok());
  EXPECT_EQ(fetched.code(), Code::kDeadlineExceeded) << fetched.message();
  EXPECT_THAT(fetched.message(), HasSubstr("bytes/s a download must keep"));
  EXPECT_LT(Clock::now() - t0, std::chrono::seconds(5));
}

// Through berthd: `berth images pull -u` against a registry whose blob storage asks for
// credentials. The pull fails naming why, the password never reaches the storage host, and
// berthd keeps serving.
TEST(HostileRegistry, PullThroughBerthdKeepsThePasswordWithTheRegistry) {
  if (::geteuid() != 0) GTEST_SKIP() << "the daemon's unpack needs root";
  std::string config =
      R"({"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}})";
  std::string config_digest = core::Sha256::digest_of(config);
  std::string manifest = nlohmann::json{{"schemaVersion", 2},
                                        {"mediaType", "application/vnd.oci.image.manifest.v1+json"},
                                        {"config",
                                         {{"mediaType", "application/vnd.oci.image.config.v1+json"},
                                          {"digest", config_digest},
                                          {"size", config.size()}}},
                                        {"layers", nlohmann::json::array()}}
                             .dump();
  std::string manifest_digest = core::Sha256::digest_of(manifest);
  auto storage = HostileServer::start([](const auto&, const auto& write) {
    write(answer(401, "Unauthorized", {"WWW-Authenticate: Basic realm=\"storage\""}));
  });
  ASSERT_TRUE(storage);
  auto registry = HostileServer::start([&](const HostileServer::Request& r, const auto& write) {
    if (!r.headers.count("authorization")) {
      write(answer(401, "Unauthorized", {"WWW-Authenticate: Basic realm=\"registry\""}));
      return;
    }
    if (r.target.find("/manifests/") != std::string::npos) {
      std::string head =
          "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.manifest.v1+json"
          "\r\nDocker-Content-Digest: " +
          manifest_digest + "\r\nContent-Length: " + std::to_string(manifest.size()) +
          "\r\nConnection: close\r\n\r\n";
      write(r.method == "HEAD" ? head : head + manifest);
      return;
    }
    write(answer(307, "Temporary Redirect", {"Location: http://" + storage->host() + r.target}));
  });
  ASSERT_TRUE(registry);
  auto d = Daemon::create();
  ASSERT_TRUE(d);
  auto err = d->start();
  ASSERT_FALSE(err.has_value()) << *err;
  auto pull = d->berth({"images", "pull", "--plain-http", "-u", std::string("tester:") + kPassword,
                        registry->host() + "/x/y:1"});
  EXPECT_NE(pull.exit_code, 0) << diag(pull);
  EXPECT_THAT(pull.err, HasSubstr("not sent there")) << diag(pull);
  EXPECT_THAT(everything(*registry), HasSubstr("authorization: Basic"));
  EXPECT_THAT(everything(*storage), ::testing::Not(HasSubstr("authorization")))
      << everything(*storage);
  EXPECT_EQ(d->berth({"version"}).exit_code, 0) << "berthd went down";
}

}  // namespace
}  // namespace berth::e2e
