#include "core/digest.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace berth::core {
namespace {

TEST(Sha256, KnownVectors) {
  EXPECT_EQ(Sha256::digest_of(""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Sha256::digest_of("abc"),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(Sha256, SaveRestoreContinuesTheSameHash) {
  Sha256 h;
  h.update("hello ");
  std::string saved = h.save();
  auto r = Sha256::restore(saved);
  ASSERT_TRUE(r.ok());
  r->update("world");
  EXPECT_EQ(r->digest(), Sha256::digest_of("hello world"));
  EXPECT_EQ(r->bytes(), 11u);
  EXPECT_FALSE(Sha256::restore("garbage").ok());
}

}  // namespace
}  // namespace berth::core

namespace berth::core {
namespace {

TEST(Base64, RoundTripsEveryPaddingLength) {
  for (const std::string& s : std::vector<std::string>{"", "a", "ab", "abc", "abcd", std::string("\0\xff\x10", 3)}) {
    auto enc = base64_encode(s);
    EXPECT_EQ(enc.size() % 4, 0u);
    auto dec = base64_decode(enc);
    ASSERT_TRUE(dec.ok()) << dec.status().message();
    EXPECT_EQ(*dec, s);
  }
  EXPECT_EQ(base64_encode("user:pass"), "dXNlcjpwYXNz");
}

TEST(Base64, DecodeNamesWhatIsWrong) {
  EXPECT_THAT(base64_decode("abc").status().message(), ::testing::HasSubstr("multiple of 4"));
  EXPECT_THAT(base64_decode("ab!@").status().message(), ::testing::HasSubstr("not valid"));
}

}  // namespace
}  // namespace berth::core
