// The proxy's backend-side source ports (dataplane/proxy/source_ports.h): every port handed out is
// one whose replies come back to the worker (checked with flow_owner() and, independently, DPDK's
// rte_softrss), none twice, all of them before "exhausted", released ports reused only after their
// rest, and several source addresses each with their own ports.
#include "dataplane/proxy/source_ports.h"

#include <gtest/gtest.h>
#include <rte_thash.h>

#include <algorithm>
#include <random>
#include <set>
#include <vector>

namespace weir::proxy {
namespace {

using dataplane::flow_owner;
using dataplane::FlowOwnership;

constexpr uint32_t kSource = 0x0a4d0002;       // 10.77.0.2
constexpr uint32_t kOtherSource = 0x0a4d0003;  // 10.77.0.3
constexpr uint32_t kBackend = 0x0a4d000b;      // 10.77.0.11
constexpr uint16_t kBackendPort = 8000;
constexpr uint64_t kRestUs = 2'000'000;

// The owner as the NIC computes it, from DPDK's own Toeplitz (the reply: backend -> source).
uint16_t nic_owner(const FlowOwnership& o, uint32_t source, uint32_t backend, uint16_t backend_port,
                   uint16_t port) {
  rte_ipv4_tuple tuple{};
  tuple.src_addr = backend;
  tuple.dst_addr = source;
  tuple.sport = backend_port;
  tuple.dport = port;
  const uint32_t hash = rte_softrss(reinterpret_cast<uint32_t*>(&tuple), RTE_THASH_V4_L4_LEN,
                                    dataplane::kRssToeplitzKey.data());
  const uint32_t table = o.reta_size != 0 ? o.reta_size : dataplane::kSoftwareTableSize;
  return static_cast<uint16_t>((hash % table) % o.workers);
}

// Every port a worker owns toward the destination, by brute force.
std::set<uint16_t> owned_by_brute_force(const FlowOwnership& o, uint32_t source, uint32_t backend,
                                        uint16_t backend_port) {
  std::set<uint16_t> owned;
  for (uint32_t port = kFirstSourcePort; port <= 65535; ++port) {
    if (flow_owner(o, backend, source, backend_port, static_cast<uint16_t>(port)) == o.worker)
      owned.insert(static_cast<uint16_t>(port));
  }
  return owned;
}

// Takes until exhausted; checks each port on the way.
std::vector<uint16_t> take_all(SourcePorts& ports, const FlowOwnership& o, uint32_t source,
                               uint32_t backend, uint16_t backend_port, uint64_t now_us) {
  std::vector<uint16_t> taken;
  while (const auto port = ports.take(source, backend, backend_port, now_us)) {
    EXPECT_GE(*port, kFirstSourcePort);
    EXPECT_EQ(nic_owner(o, source, backend, backend_port, *port), o.worker) << *port;
    taken.push_back(*port);
    if (taken.size() > kSourcePorts) break;  // a bug; the checks below report it
  }
  return taken;
}

TEST(PortBuckets, HoldEveryEphemeralPortOnce) {
  for (const FlowOwnership o : {FlowOwnership{4, 128, 1}, FlowOwnership{3, 0, 2},
                                FlowOwnership{1, 0, 0}, FlowOwnership{3, 100, 0}}) {
    const PortBuckets buckets(o);
    std::vector<int> seen(65536, 0);
    for (uint32_t b = 0; b < buckets.bucket_count(); ++b) {
      for (uint32_t i = 0; i < buckets.bucket_size(b); ++i) ++seen[buckets.port(b, i)];
    }
    for (uint32_t port = 0; port < 65536; ++port)
      ASSERT_EQ(seen[port], port >= kFirstSourcePort ? 1 : 0) << port;
  }
}

// The heart of it: one worker's every port toward one backend, each mapping home, none twice,
// exactly the set brute force finds, then a counted "exhausted" rather than a search. For RSS
// tables of several sizes, software steering (no table), one worker, and a table whose size is
// not a power of two (each port checked).
TEST(SourcePorts, HandOutEveryOwnedPortOnceThenReportExhaustion) {
  for (const FlowOwnership o :
       {FlowOwnership{4, 128, 0}, FlowOwnership{4, 128, 3}, FlowOwnership{3, 512, 1},
        FlowOwnership{2, 0, 1}, FlowOwnership{3, 0, 2}, FlowOwnership{1, 0, 0},
        FlowOwnership{3, 100, 1}}) {
    SCOPED_TRACE(testing::Message()
                 << o.workers << " workers, table " << o.reta_size << ", worker " << o.worker);
    SourcePorts ports(o, kRestUs);
    const std::vector<uint16_t> taken = take_all(ports, o, kSource, kBackend, kBackendPort, 1);
    const std::set<uint16_t> distinct(taken.begin(), taken.end());
    EXPECT_EQ(distinct.size(), taken.size()) << "a port handed out twice";
    EXPECT_EQ(distinct, owned_by_brute_force(o, kSource, kBackend, kBackendPort));
    EXPECT_GT(taken.size(), kSourcePorts / o.workers * 9 / 10);
    EXPECT_EQ(ports.in_use(), taken.size());
    EXPECT_FALSE(ports.take(kSource, kBackend, kBackendPort, 2).has_value());
  }
}

TEST(SourcePorts, WorkersShareThePortsWithoutOverlap) {
  std::vector<int> owner_count(65536, 0);
  for (uint16_t w = 0; w < 4; ++w) {
    const FlowOwnership o{4, 128, w};
    SourcePorts ports(o, kRestUs);
    for (uint16_t port : take_all(ports, o, kSource, kBackend, kBackendPort, 1))
      ++owner_count[port];
  }
  for (uint32_t port = kFirstSourcePort; port < 65536; ++port)
    ASSERT_EQ(owner_count[port], 1) << port;
}

TEST(SourcePorts, ReleasedPortsRestThenComeBackOldestFirst) {
  const FlowOwnership o{2, 128, 1};
  SourcePorts ports(o, kRestUs);
  const std::vector<uint16_t> taken = take_all(ports, o, kSource, kBackend, kBackendPort, 0);
  ASSERT_FALSE(taken.empty());
  ports.give_back(kSource, kBackend, kBackendPort, taken[10], 1'000);
  ports.give_back(kSource, kBackend, kBackendPort, taken[3], 2'000);
  EXPECT_EQ(ports.in_use(), taken.size() - 2);
  // Within the TIME-WAIT nothing is free: exhausted, not the port whose 4-tuple may still be held.
  EXPECT_FALSE(ports.take(kSource, kBackend, kBackendPort, 1'000 + kRestUs - 1).has_value());
  EXPECT_EQ(ports.take(kSource, kBackend, kBackendPort, 1'000 + kRestUs), taken[10]);
  EXPECT_FALSE(ports.take(kSource, kBackend, kBackendPort, 1'000 + kRestUs).has_value());
  EXPECT_EQ(ports.take(kSource, kBackend, kBackendPort, 2'000 + kRestUs), taken[3]);
  EXPECT_EQ(ports.in_use(), taken.size());
}

TEST(SourcePorts, ReuseRunsForeverWithoutGrowing) {
  // A churn of short connections, far more than there are ports: each comes from the free list or
  // the unused ones, and the free list never holds more than the ports ever in use at once.
  const FlowOwnership o{2, 128, 0};
  SourcePorts ports(o, 100);
  std::vector<uint16_t> open;
  uint64_t now = 0;
  std::mt19937 rng(5);
  for (int i = 0; i < 200'000; ++i) {
    now += 1;
    if (open.size() < 500 || rng() % 2 == 0) {
      const auto port = ports.take(kSource, kBackend, kBackendPort, now);
      ASSERT_TRUE(port.has_value()) << i;
      ASSERT_EQ(flow_owner(o, kBackend, kSource, kBackendPort, *port), 0);
      ASSERT_EQ(std::count(open.begin(), open.end(), *port), 0) << "in use twice";
      open.push_back(*port);
    } else {
      const size_t victim = rng() % open.size();
      ports.give_back(kSource, kBackend, kBackendPort, open[victim], now);
      open[victim] = open.back();
      open.pop_back();
    }
  }
  EXPECT_EQ(ports.in_use(), open.size());
  // 16 bytes for each port ever in use at once, at most: not a record per connection made.
  EXPECT_LT(ports.memory_bytes(), 64 * 1024u);
}

TEST(SourcePorts, EachSourceAddressAndDestinationHasItsOwnPorts) {
  const FlowOwnership o{4, 128, 2};
  SourcePorts ports(o, kRestUs);
  const auto first = take_all(ports, o, kSource, kBackend, kBackendPort, 1);
  // The first source is exhausted toward the backend; another source has all of its own, and so
  // has the first source toward another backend port.
  const auto second = take_all(ports, o, kOtherSource, kBackend, kBackendPort, 1);
  const auto other_port = take_all(ports, o, kSource, kBackend, kBackendPort + 1, 1);
  EXPECT_EQ(second.size(), owned_by_brute_force(o, kOtherSource, kBackend, kBackendPort).size());
  EXPECT_EQ(other_port.size(), owned_by_brute_force(o, kSource, kBackend, kBackendPort + 1).size());
  EXPECT_GT(first.size() + second.size(), kSourcePorts / 4 * 2 * 9 / 10);
  EXPECT_EQ(ports.destinations(), 3u);
}

TEST(SourcePorts, ForgetDestinationsOnceIdleAndRested) {
  const FlowOwnership o{2, 128, 0};
  SourcePorts ports(o, kRestUs);
  const auto a = ports.take(kSource, kBackend, kBackendPort, 0);
  const auto b = ports.take(kSource, kBackend, kBackendPort + 1, 0);
  ASSERT_TRUE(a && b);
  ports.give_back(kSource, kBackend, kBackendPort, *a, 10);
  ports.tick(10 + kRestUs - 1);  // not rested yet: kept
  ports.tick(10 + kRestUs - 1);
  EXPECT_EQ(ports.destinations(), 2u);
  ports.tick(10 + kRestUs);
  EXPECT_EQ(ports.destinations(), 1u);  // the one still in use stays
  // Taken again from scratch: still a port of this worker.
  const auto again = ports.take(kSource, kBackend, kBackendPort, 20 + kRestUs);
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(flow_owner(o, kBackend, kSource, kBackendPort, *again), 0);
  // A port given back for a destination that was never used is ignored, not counted.
  ports.give_back(kOtherSource, kBackend, kBackendPort, 5000, 30);
  EXPECT_EQ(ports.in_use(), 2u);
}

}  // namespace
}  // namespace weir::proxy
