// Writing content through containerd's Content.Write stream (shared by content ingest and the
// image commands).
#include <berth/grpc.h>
#include <unistd.h>

#include <iostream>

#include "cmd/berth/commands.h"
#include "core/digest.h"
#include "github.com/containerd/containerd/api/services/content/v1/content.grpc.pb.h"

namespace berth::cli {
namespace {

namespace pb = ::containerd::services::content::v1;
constexpr std::size_t kChunk = 1 << 20;

// Reads up to n bytes from fd (short only at the end of input).
Result<std::size_t> read_full(int fd, char* buf, std::size_t n) {
  std::size_t got = 0;
  while (got < n) {
    ssize_t r = ::read(fd, buf + got, n - got);
    if (r < 0) {
      if (errno == EINTR) continue;
      return from_errno(errno, "read input");
    }
    if (r == 0) break;
    got += static_cast<std::size_t>(r);
  }
  return got;
}

}  // namespace

Result<std::string> write_content(Client& c, int fd, const ContentWrite& w) {
  return write_content(
      c, [fd](char* buf, std::size_t n) { return read_full(fd, buf, n); }, w);
}

Result<std::string> write_content(Client& c, const ContentReader& read_full,
                                  const ContentWrite& w) {
  auto ctx = c.context(w.lease);
  ctx->set_deadline(std::chrono::system_clock::time_point::max());  // as long as the input lasts
  auto stream = pb::Content::NewStub(c.channel())->Write(ctx.get());
  pb::WriteContentRequest req;
  pb::WriteContentResponse resp;
  req.set_action(pb::STAT);
  req.set_ref(w.ref);
  req.set_total(w.size);
  req.set_expected(w.expected);
  auto finish = [&](std::string_view what) -> Status {
    stream->WritesDone();
    return c.check(stream->Finish(), what);
  };
  if (!stream->Write(req) || !stream->Read(&resp)) {
    Status st = finish("ingest");
    // The daemon already has these bytes (in this namespace or shared from another): done.
    if (st.code() == Code::kAlreadyExists && !w.expected.empty()) return w.expected;
    return st;
  }
  // Without an expected digest the bytes are hashed here too, so a blob the daemon already has
  // (AlreadyExists at commit) still yields its digest.
  std::optional<core::Sha256> hash;
  if (w.expected.empty()) hash.emplace();
  auto digest_or = [&](const std::string& from_daemon) {
    if (!from_daemon.empty()) return from_daemon;
    return hash ? hash->digest() : w.expected;
  };
  // Resume: skip what the daemon already has.
  std::int64_t offset = resp.offset();
  std::vector<char> buf(kChunk);
  for (std::int64_t skipped = 0; skipped < offset;) {
    BERTH_TRY(
        auto n,
        read_full(buf.data(),
                  static_cast<std::size_t>(std::min<std::int64_t>(kChunk, offset - skipped))));
    if (n == 0) {
      return invalid_argument(
          "input is shorter ({} bytes) than what ingest \"{}\" already has ({})", skipped, w.ref,
          offset);
    }
    skipped += static_cast<std::int64_t>(n);
    if (hash) hash->update(std::string_view(buf.data(), n));
  }
  if (offset > 0) std::cerr << "resuming \"" << w.ref << "\" at offset " << offset << "\n";
  for (;;) {
    BERTH_TRY(auto n, read_full(buf.data(), buf.size()));
    if (hash) hash->update(std::string_view(buf.data(), n));
    req.Clear();
    bool last = n < buf.size();
    req.set_action(last ? pb::COMMIT : pb::WRITE);
    req.set_offset(offset);
    req.set_data(buf.data(), n);
    if (last) {
      req.set_total(w.size > 0 ? w.size : offset + static_cast<std::int64_t>(n));
      req.set_expected(w.expected);
      for (const auto& [k, v] : w.labels) (*req.mutable_labels())[k] = v;
    }
    if (!stream->Write(req) || !stream->Read(&resp)) {
      Status st = finish("ingest");
      if (st.code() == Code::kAlreadyExists && last) return digest_or("");
      if (st.code() == Code::kAlreadyExists && !w.expected.empty()) return w.expected;
      return st;
    }
    offset = resp.offset();
    if (last) {
      Status st = finish("ingest");
      if (st.code() == Code::kAlreadyExists) return digest_or(resp.digest());
      BERTH_RETURN_IF_ERROR(st);
      return resp.digest();
    }
  }
}

}  // namespace berth::cli
