#include "core/log.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace berth::log {
namespace {

TEST(Log, TextQuotesValuesWithSpaces) {
  std::string line = render(Format::kText, Level::kInfo, "plugin loaded",
                            {{"uri", "io.containerd.grpc.v1.version"}, {"path", "/a b"}});
  EXPECT_EQ(line, "plugin loaded uri=io.containerd.grpc.v1.version path=\"/a b\"");
}

TEST(Log, JsonIsOneValidObject) {
  std::string line =
      render(Format::kJson, Level::kWarn, "bad \"thing\"", {{"n", 3}, {"s", "x\ny"}});
  auto j = nlohmann::json::parse(line);
  EXPECT_EQ(j["level"], "warn");
  EXPECT_EQ(j["msg"], "bad \"thing\"");
  EXPECT_EQ(j["n"], "3");
  EXPECT_EQ(j["s"], "x\ny");
  EXPECT_TRUE(j.contains("time"));
}

TEST(Log, ParsesLevelsAndFormats) {
  EXPECT_EQ(*parse_level("debug"), Level::kDebug);
  EXPECT_FALSE(parse_level("loud").ok());
  EXPECT_EQ(*parse_format("json"), Format::kJson);
  EXPECT_FALSE(parse_format("xml").ok());
}

}  // namespace
}  // namespace berth::log
