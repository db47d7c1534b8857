#include "plugins/cri/stats.h"

#include <gtest/gtest.h>

#include "github.com/containerd/cgroups/stats/v1/metrics.pb.h"
#include "github.com/containerd/cgroups/v2/stats/metrics.pb.h"

namespace berth::cri {
namespace {

TEST(CriStats, V1MetricsGiveTheKubeletsWorkingSetAndRate) {
  ::io::containerd::cgroups::v1::Metrics m;
  m.mutable_cpu()->mutable_usage()->set_total(3'000'000'000);
  m.mutable_memory()->mutable_usage()->set_usage(100 << 20);
  m.mutable_memory()->mutable_usage()->set_limit(256 << 20);
  m.mutable_memory()->set_total_inactive_file(30 << 20);
  m.mutable_memory()->set_total_rss(50 << 20);
  m.mutable_memory()->set_total_pg_fault(7);
  m.mutable_pids()->set_current(3);
  containers::Any any{"io.containerd.cgroups.v1.Metrics", m.SerializeAsString()};
  auto s = decode_metrics(any);
  ASSERT_TRUE(s.ok()) << s.status().message();
  EXPECT_EQ(s->pids, 3u);

  v1::MemoryUsage mem;
  fill_memory(&mem, *s, 10);
  EXPECT_EQ(mem.working_set_bytes().value(), 70u << 20);
  EXPECT_EQ(mem.available_bytes().value(), 186u << 20);
  EXPECT_EQ(mem.usage_bytes().value(), 100u << 20);
  EXPECT_EQ(mem.rss_bytes().value(), 50u << 20);
  EXPECT_EQ(mem.page_faults().value(), 7u);

  // 3 s of CPU, 1.5 s of it in the last 2 s of wall time: 0.75 cores.
  v1::CpuUsage cpu;
  fill_cpu(&cpu, *s, 4'000'000'000, 1'500'000'000, 2'000'000'000);
  EXPECT_EQ(cpu.usage_core_nano_seconds().value(), 3'000'000'000u);
  EXPECT_EQ(cpu.usage_nano_cores().value(), 750'000'000u);
  v1::CpuUsage first;
  fill_cpu(&first, *s, 4'000'000'000, 0, 0);
  EXPECT_FALSE(first.has_usage_nano_cores());
}

TEST(CriStats, V2MetricsWithoutALimitHaveNoAvailableBytes) {
  ::io::containerd::cgroups::v2::Metrics m;
  m.mutable_cpu()->set_usage_usec(5);
  m.mutable_memory()->set_usage(4096);
  m.mutable_memory()->set_inactive_file(8192);  // more than usage: never a negative working set
  m.mutable_memory()->set_usage_limit(0);
  containers::Any any{"io.containerd.cgroups.v2.Metrics", m.SerializeAsString()};
  auto s = decode_metrics(any);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->cpu_ns, 5000u);
  v1::MemoryUsage mem;
  fill_memory(&mem, *s, 1);
  EXPECT_EQ(mem.working_set_bytes().value(), 0u);
  EXPECT_FALSE(mem.has_available_bytes());
  EXPECT_EQ(decode_metrics({"example.com/Other", ""}).status().code(), Code::kInvalidArgument);
}

TEST(CriStats, NetDevListsThePodsInterfacesButLoopback) {
  const char* text =
      "Inter-|   Receive                                                |  Transmit\n"
      " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n"
      "    lo:     100       1    0    0    0     0          0         0      100       1    0    0    0     0       0          0\n"
      "  eth0:    5000      40    2    0    0     0          0         0     7000      50    3    0    0     0       0          0\n"
      "  net1: 1 2 3\n";
  v1::NetworkUsage n;
  fill_network(&n, text, "eth0", 9);
  ASSERT_EQ(n.interfaces_size(), 1);
  EXPECT_EQ(n.default_interface().name(), "eth0");
  EXPECT_EQ(n.default_interface().rx_bytes().value(), 5000u);
  EXPECT_EQ(n.default_interface().rx_errors().value(), 2u);
  EXPECT_EQ(n.default_interface().tx_bytes().value(), 7000u);
  EXPECT_EQ(n.default_interface().tx_errors().value(), 3u);
}

}  // namespace
}  // namespace berth::cri
