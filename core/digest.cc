// The low-level SHA256_* API is deprecated in OpenSSL 3 but it is the only one whose context is a
// plain struct that can be saved to disk; it runs the same SHA-NI code as EVP.
#define OPENSSL_SUPPRESS_DEPRECATED 1
#include "core/digest.h"

#include <openssl/evp.h>
#include <openssl/sha.h>

#include <cstring>

namespace berth::core {
namespace {
constexpr std::string_view kMagic = "berth-sha256-v1:";
}

struct Sha256::State {
  SHA256_CTX ctx;
};

Sha256::Sha256() : state_(std::make_unique<State>()) { SHA256_Init(&state_->ctx); }
Sha256::Sha256(const Sha256& other)
    : state_(std::make_unique<State>(*other.state_)), bytes_(other.bytes_) {}
Sha256& Sha256::operator=(const Sha256& other) {
  *state_ = *other.state_;
  bytes_ = other.bytes_;
  return *this;
}
Sha256::~Sha256() = default;

void Sha256::update(const void* data, std::size_t n) {
  SHA256_Update(&state_->ctx, data, n);
  bytes_ += n;
}

std::string Sha256::hex() const {
  SHA256_CTX copy = state_->ctx;
  unsigned char out[SHA256_DIGEST_LENGTH];
  SHA256_Final(out, &copy);
  static const char* kHex = "0123456789abcdef";
  std::string s(SHA256_DIGEST_LENGTH * 2, '0');
  for (int i = 0; i < SHA256_DIGEST_LENGTH; ++i) {
    s[2 * i] = kHex[out[i] >> 4];
    s[2 * i + 1] = kHex[out[i] & 0xf];
  }
  return s;
}

std::string Sha256::save() const {
  std::string out(kMagic);
  std::uint32_t size = sizeof(SHA256_CTX);
  out.append(reinterpret_cast<const char*>(&size), sizeof size);
  out.append(reinterpret_cast<const char*>(&bytes_), sizeof bytes_);
  out.append(reinterpret_cast<const char*>(&state_->ctx), sizeof(SHA256_CTX));
  return out;
}

Result<Sha256> Sha256::restore(std::string_view saved) {
  std::uint32_t size = 0;
  if (saved.size() != kMagic.size() + sizeof size + sizeof(std::uint64_t) + sizeof(SHA256_CTX) ||
      saved.substr(0, kMagic.size()) != kMagic) {
    return Status(Code::kDataLoss, "saved sha256 state is not from this build");
  }
  const char* p = saved.data() + kMagic.size();
  std::memcpy(&size, p, sizeof size);
  if (size != sizeof(SHA256_CTX))
    return Status(Code::kDataLoss, "saved sha256 state has another layout");
  Sha256 h;
  std::memcpy(&h.bytes_, p + sizeof size, sizeof h.bytes_);
  std::memcpy(&h.state_->ctx, p + sizeof size + sizeof h.bytes_, sizeof(SHA256_CTX));
  return h;
}

std::string Sha256::digest_of(std::string_view data) {
  Sha256 h;
  h.update(data);
  return h.digest();
}

std::string base64_encode(std::string_view in) {
  std::string out(4 * ((in.size() + 2) / 3) + 1, '\0');  // + the NUL EVP_EncodeBlock writes
  int n = ::EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                            reinterpret_cast<const unsigned char*>(in.data()),
                            static_cast<int>(in.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

Result<std::string> base64_decode(std::string_view in) {
  if (in.size() % 4 != 0) return invalid_argument("base64: length {} is not a multiple of 4", in.size());
  if (in.size() > (64u << 20)) return invalid_argument("base64: {} bytes is too long", in.size());
  std::string out(in.size() / 4 * 3 + 1, '\0');
  int n = ::EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                            reinterpret_cast<const unsigned char*>(in.data()),
                            static_cast<int>(in.size()));
  if (n < 0) return invalid_argument("base64: not valid base64");
  // EVP_DecodeBlock counts the padding as zero bytes.
  std::size_t len = static_cast<std::size_t>(n);
  for (std::size_t i = in.size(); i > 0 && in[i - 1] == '=' && len > 0; --i) --len;
  out.resize(len);
  return out;
}

}  // namespace berth::core
