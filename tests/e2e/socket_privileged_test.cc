// The socket's owner group comes from [grpc] gid (chown needs root).
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/e2e/harness.h"

namespace berth::e2e {
namespace {

TEST(SocketOwnership, GidFromConfigIsApplied) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root";
  auto d = Daemon::create();
  DaemonOptions o;
  o.config = "[grpc]\n  address = \"" + d->address() + "\"\n  gid = 4242\n";
  auto err = d->start(o);
  ASSERT_FALSE(err.has_value()) << *err;
  struct stat st {};
  ASSERT_EQ(::stat(d->address().c_str(), &st), 0);
  EXPECT_EQ(st.st_gid, 4242u);
  EXPECT_EQ(st.st_mode & 0777, 0660u);
}

}  // namespace
}  // namespace berth::e2e
