// Streaming SHA-256 (OpenSSL) whose state can be saved and restored, so an interrupted ingest
// resumes without re-hashing the bytes it already verified.
#pragma once

#include <berth/result.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace berth::core {

class Sha256 {
 public:
  Sha256();
  Sha256(const Sha256& other);
  Sha256& operator=(const Sha256& other);
  ~Sha256();

  void update(const void* data, std::size_t n);
  void update(std::string_view data) { update(data.data(), data.size()); }
  std::uint64_t bytes() const { return bytes_; }
  // Digest of everything so far; the state stays usable for more updates.
  std::string hex() const;
  std::string digest() const { return "sha256:" + hex(); }

  // Opaque snapshot of the state (tied to this OpenSSL build; restore() rejects foreign ones).
  std::string save() const;
  static Result<Sha256> restore(std::string_view saved);

  static std::string digest_of(std::string_view data);

 private:
  struct State;
  std::unique_ptr<State> state_;
  std::uint64_t bytes_ = 0;
};

// RFC 4648 base64 (OpenSSL's EVP block coding): registry Basic auth, CNI cache files, the CRI's
// AuthConfig.auth. decode accepts padded input only and names what is wrong.
std::string base64_encode(std::string_view in);
Result<std::string> base64_decode(std::string_view in);

}  // namespace berth::core
