#include "core/signal.h"

#include <gtest/gtest.h>

#include <csignal>

#include "core/fs.h"

namespace berth::core {
namespace {

TEST(Signal, NamesNumbersAndCase) {
  EXPECT_EQ(*parse_signal("KILL"), SIGKILL);
  EXPECT_EQ(*parse_signal("SIGTERM"), SIGTERM);
  EXPECT_EQ(*parse_signal("hup"), SIGHUP);
  EXPECT_EQ(*parse_signal("sigwinch"), SIGWINCH);
  EXPECT_EQ(*parse_signal("SYS"), SIGSYS);  // beyond the short list the CLI used to have
  EXPECT_EQ(*parse_signal("9"), 9);
  EXPECT_EQ(parse_signal("0").status().code(), Code::kInvalidArgument);
  EXPECT_EQ(parse_signal("65").status().code(), Code::kInvalidArgument);
  EXPECT_EQ(parse_signal("99999999999999").status().code(), Code::kInvalidArgument);
  auto bad = parse_signal("NOPE");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("NOPE"), std::string::npos);
  EXPECT_FALSE(parse_signal("").ok());
}

TEST(FindExecutable, FirstDirsThenPath) {
  auto sh = find_executable("sh");
  ASSERT_TRUE(sh.has_value());
  EXPECT_EQ(sh->front(), '/');
  EXPECT_EQ(find_executable("/bin/sh"), std::optional<std::string>("/bin/sh"));
  EXPECT_FALSE(find_executable("/etc/passwd").has_value());  // not executable
  EXPECT_FALSE(find_executable("berth-no-such-program").has_value());
  EXPECT_EQ(find_executable("sh", {"/bin"}), std::optional<std::string>("/bin/sh"));
  EXPECT_FALSE(find_executable("").has_value());
}

}  // namespace
}  // namespace berth::core
