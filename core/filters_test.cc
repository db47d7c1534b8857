#include "core/filters.h"

#include <gtest/gtest.h>

#include <map>

namespace berth::core {
namespace {

// A plugin-like object: type, id and labels.
struct Obj {
  std::string type, id;
  std::map<std::string, std::string> labels;
};

bool matches(const std::vector<std::string>& filters, const Obj& o) {
  auto f = Filter::parse(filters);
  EXPECT_TRUE(f.ok()) << f.status().message();
  return f->match([&](const std::vector<std::string>& path) -> std::optional<std::string> {
    if (path.size() == 1 && path[0] == "type") return o.type;
    if (path.size() == 1 && path[0] == "id") return o.id;
    if (path.size() == 2 && path[0] == "labels") {
      auto it = o.labels.find(path[1]);
      if (it != o.labels.end()) return it->second;
    }
    return std::nullopt;
  });
}

const Obj kOverlay{
    "io.containerd.snapshotter.v1", "overlayfs", {{"containerd.io/gc.root", "x"}, {"a", "1"}}};

TEST(Filters, EmptyMatchesEverything) { EXPECT_TRUE(matches({}, kOverlay)); }

TEST(Filters, EqualityAndInequality) {
  EXPECT_TRUE(matches({"type==io.containerd.snapshotter.v1"}, kOverlay));
  EXPECT_FALSE(matches({"type==io.containerd.grpc.v1"}, kOverlay));
  EXPECT_TRUE(matches({"id!=native"}, kOverlay));
}

TEST(Filters, CommaIsAndSeparateStringsAreOr) {
  EXPECT_FALSE(matches({"type==io.containerd.snapshotter.v1,id==native"}, kOverlay));
  EXPECT_TRUE(matches({"id==native", "id==overlayfs"}, kOverlay));
}

TEST(Filters, QuotedLabelKeysPresenceAndRegex) {
  EXPECT_TRUE(matches({"labels.\"containerd.io/gc.root\""}, kOverlay));
  EXPECT_FALSE(matches({"labels.missing"}, kOverlay));
  EXPECT_TRUE(matches({"labels.a==1"}, kOverlay));
  EXPECT_TRUE(matches({"id~=^over"}, kOverlay));
  EXPECT_FALSE(matches({"id~=^native$"}, kOverlay));
  EXPECT_TRUE(matches({"id==\"overlayfs\""}, kOverlay));
}

TEST(Filters, SyntaxErrorsNameTheFilter) {
  for (const char* bad : {"type==", "type=x", ",", "labels.\"open", "id~=[", "==x"}) {
    auto f = Filter::parse(std::string(bad));
    ASSERT_FALSE(f.ok()) << bad;
    EXPECT_EQ(f.status().code(), Code::kInvalidArgument);
    EXPECT_NE(f.status().message().find("filter \""), std::string::npos);
  }
}

}  // namespace
}  // namespace berth::core
