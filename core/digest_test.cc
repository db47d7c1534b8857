#include "core/digest.h"

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
