#include <berth/identifiers.h>
#include <berth/result.h>
#include <gtest/gtest.h>

namespace berth {
namespace {

TEST(Status, CodesEqualGrpcNumbers) {
  EXPECT_EQ(static_cast<int>(Code::kNotFound), 5);
  EXPECT_EQ(static_cast<int>(Code::kFailedPrecondition), 9);
  EXPECT_EQ(static_cast<int>(Code::kUnauthenticated), 16);
}

TEST(Status, OkIsCheapAndEmpty) {
  Status s;
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(s.code(), Code::kOk);
  EXPECT_EQ(s.message(), "");
  EXPECT_TRUE(Status(Code::kOk, "ignored").ok());
}

TEST(Status, ContextIsPrepended) {
  Status s = not_found("container \"{}\"", "c1").with_context("delete");
  EXPECT_EQ(s.code(), Code::kNotFound);
  EXPECT_EQ(s.message(), "delete: container \"c1\"");
  EXPECT_EQ(s.to_string(), "not found: delete: container \"c1\"");
}

TEST(Status, FromErrnoNamesCallAndErrno) {
  Status s = from_errno(ENOENT, "open \"{}\"", "/nope");
  EXPECT_EQ(s.code(), Code::kNotFound);
  EXPECT_NE(s.message().find("open \"/nope\""), std::string::npos);
  EXPECT_NE(s.message().find("ENOENT"), std::string::npos);
}

Result<int> half(int x) {
  if (x % 2) return invalid_argument("{} is odd", x);
  return x / 2;
}

Result<int> quarter(int x) {
  BERTH_TRY(int h, half(x));
  return half(h);
}

TEST(Result, PropagatesErrorsThroughTry) {
  EXPECT_EQ(*quarter(8), 2);
  auto r = quarter(6);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "3 is odd");
}

TEST(Identifiers, AcceptsContainerdNames) {
  for (const std::string& ok :
       std::vector<std::string>{"default", "k8s.io", "a", "a-b_c.d", "A1", std::string(76, 'x')}) {
    EXPECT_TRUE(validate_identifier(ok).ok()) << ok;
  }
}

TEST(Identifiers, RejectsBadNamesWithReason) {
  for (const char* bad : {"", "-a", "a-", "a..b", "a b", "a/b", "ü", ".hidden", "a_"}) {
    Status s = validate_identifier(bad);
    EXPECT_EQ(s.code(), Code::kInvalidArgument) << bad;
  }
  Status s = validate_identifier(std::string(77, 'x'));
  EXPECT_NE(s.message().find("limit is 76"), std::string::npos);
}

TEST(Identifiers, LabelSizeLimit) {
  EXPECT_TRUE(validate_label("k", std::string(4095, 'v')).ok());
  EXPECT_FALSE(validate_label("k", std::string(4096, 'v')).ok());
  EXPECT_FALSE(validate_label("", "v").ok());
}

}  // namespace
}  // namespace berth
