// Pure dataplane logic that needs no mbufs: idle backoff policy, the RSS Toeplitz hash, flow
// ownership, and the binding of the counter catalogue to the counter structs.
#include <gtest/gtest.h>
#include <rte_thash.h>

#include <array>
#include <random>
#include <set>

#include "dataplane/counter_bindings.h"
#include "dataplane/flow_owner.h"
#include "dataplane/idle_backoff.h"
#include "dataplane/port.h"

namespace weir::dataplane {
namespace {

TEST(IdleBackoff, SpinsThenSleepsProgressivelyUpToTheCap) {
  IdleBackoff backoff(IdleMode::backoff, 200);
  for (uint32_t i = 0; i < IdleBackoff::kSpinPolls; ++i)
    ASSERT_EQ(backoff.after_poll(false), 0u) << i;
  const std::vector<uint32_t> expected = {1, 2, 4, 8, 16, 32, 64, 128, 200, 200, 200};
  for (uint32_t want : expected) EXPECT_EQ(backoff.after_poll(false), want);
}

TEST(IdleBackoff, TrafficReturnsToFullSpeedAtOnce) {
  IdleBackoff backoff(IdleMode::backoff, 200);
  for (int i = 0; i < 1000; ++i) backoff.after_poll(false);
  ASSERT_EQ(backoff.after_poll(false), 200u);
  EXPECT_EQ(backoff.after_poll(true), 0u);
  // After traffic the worker spins again before the first short sleep.
  for (uint32_t i = 0; i < IdleBackoff::kSpinPolls; ++i) ASSERT_EQ(backoff.after_poll(false), 0u);
  EXPECT_EQ(backoff.after_poll(false), 1u);
}

TEST(IdleBackoff, BusyPollNeverSleeps) {
  IdleBackoff backoff(IdleMode::busy_poll, 200);
  for (int i = 0; i < 10000; ++i) ASSERT_EQ(backoff.after_poll(false), 0u);
}

TEST(IdleBackoff, CapSmallerThanFirstSleepIsHonoured) {
  IdleBackoff backoff(IdleMode::backoff, 1);
  for (uint32_t i = 0; i < IdleBackoff::kSpinPolls; ++i) backoff.after_poll(false);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(backoff.after_poll(false), 1u);
}

uint32_t ip(uint8_t a, uint8_t b, uint8_t c, uint8_t d) {
  return uint32_t{a} << 24 | uint32_t{b} << 16 | uint32_t{c} << 8 | d;
}

// Verification vectors of Microsoft's RSS specification ("Verifying the RSS hash calculation"),
// computed with the key in kRssToeplitzKey.
TEST(Rss, MatchesTheSpecificationsVerificationVectors) {
  struct Vector {
    uint32_t destination;
    uint16_t destination_port;
    uint32_t source;
    uint16_t source_port;
    uint32_t ipv4_hash;
    uint32_t ipv4_tcp_hash;
  };
  const Vector vectors[] = {
      {ip(161, 142, 100, 80), 1766, ip(66, 9, 149, 187), 2794, 0x323e8fc2, 0x51ccc178},
      {ip(65, 69, 140, 83), 4739, ip(199, 92, 111, 2), 14230, 0xd718262a, 0xc626b0ea},
      {ip(12, 22, 207, 184), 38024, ip(24, 19, 198, 95), 12898, 0xd2d0a5de, 0x5c2b394a},
      {ip(209, 142, 163, 6), 2217, ip(38, 27, 205, 30), 48228, 0x82989176, 0xafc7327f},
      {ip(202, 188, 127, 2), 1303, ip(153, 39, 163, 191), 44251, 0x5d1809c5, 0x10e828a2},
  };
  for (const Vector& v : vectors) {
    const auto tcp = rss_ipv4_tcp_input(v.source, v.destination, v.source_port, v.destination_port);
    EXPECT_EQ(toeplitz_hash(kRssToeplitzKey, tcp), v.ipv4_tcp_hash);
    EXPECT_EQ(toeplitz_hash(kRssToeplitzKey, std::span<const uint8_t>(tcp.data(), 8)), v.ipv4_hash);
  }
}

// DPDK's own software RSS (rte_softrss) is an independent implementation of the same function.
uint32_t dpdk_softrss(uint32_t source, uint32_t destination, uint16_t sport, uint16_t dport) {
  rte_ipv4_tuple tuple{};
  tuple.src_addr = source;
  tuple.dst_addr = destination;
  tuple.sport = sport;
  tuple.dport = dport;
  return rte_softrss(reinterpret_cast<uint32_t*>(&tuple), RTE_THASH_V4_L4_LEN,
                     kRssToeplitzKey.data());
}

TEST(Rss, AgreesWithDpdkSoftRssOnRandomTuples) {
  std::mt19937 rng(7);
  for (int i = 0; i < 2000; ++i) {
    const uint32_t source = rng(), destination = rng();
    const uint16_t sport = static_cast<uint16_t>(rng()), dport = static_cast<uint16_t>(rng());
    const uint32_t dpdk = dpdk_softrss(source, destination, sport, dport);
    const auto input = rss_ipv4_tcp_input(source, destination, sport, dport);
    ASSERT_EQ(toeplitz_hash(kRssToeplitzKey, input), dpdk) << i;
  }
}

// flow_owner() is what a NIC does with the hash: through the indirection table as port.cc programs
// it (entry i -> queue i mod workers), or a table of kSoftwareTableSize entries without one; one
// worker owns all.
TEST(FlowOwner, FollowsTheIndirectionTableOrTheHashAlone) {
  std::mt19937 rng(11);
  std::array<int, 3> owners_seen{};
  for (int i = 0; i < 3000; ++i) {
    const uint32_t remote = rng(), local = rng();
    const uint16_t remote_port = static_cast<uint16_t>(rng()),
                   local_port = static_cast<uint16_t>(rng());
    const uint32_t hash = dpdk_softrss(remote, local, remote_port, local_port);
    const FlowOwnership with_table{3, 128, 0};
    const FlowOwnership without_table{3, 0, 0};
    const uint16_t owner = flow_owner(with_table, remote, local, remote_port, local_port);
    ASSERT_EQ(owner, (hash % 128) % 3) << i;
    ASSERT_EQ(flow_owner(without_table, remote, local, remote_port, local_port),
              (hash % kSoftwareTableSize) % 3)
        << i;
    ASSERT_EQ(flow_owner(FlowOwnership{}, remote, local, remote_port, local_port), 0) << i;
    ++owners_seen[owner];
  }
  for (int seen : owners_seen) EXPECT_GT(seen, 800) << "three workers share the flows";
}

// The binding checks counter_bindings.h asserts at compile time, shown to catch what they are for
// on a struct of three counters.
struct ThreeCounters {
  Counter a, b, c;
};

TEST(CounterBindings, CountEveryMemberOnceWhetherValueOrSubtrahend) {
  constexpr auto complete = std::to_array<CounterBinding<ThreeCounters>>({
      {"a", &ThreeCounters::a},
      {"a_less_b", &ThreeCounters::a, &ThreeCounters::b},
      {"c", &ThreeCounters::c},
  });
  static_assert(distinct_members(complete) * sizeof(Counter) == sizeof(ThreeCounters));
  constexpr auto missing_c = std::to_array<CounterBinding<ThreeCounters>>({
      {"a", &ThreeCounters::a},
      {"b", &ThreeCounters::b},
      {"also_a", &ThreeCounters::a},
  });
  static_assert(distinct_members(missing_c) * sizeof(Counter) != sizeof(ThreeCounters));
  EXPECT_EQ(distinct_members(complete), 3u);
  EXPECT_EQ(distinct_members(missing_c), 2u);
}

TEST(CounterBindings, NamesMatchTheCatalogueInOrder) {
  constexpr auto table = std::to_array<counters::Entry>({
      counters::unexported("a", "h"),
      counters::unexported("b", "h"),
  });
  constexpr auto in_order = std::to_array<CounterBinding<ThreeCounters>>({
      {"a", &ThreeCounters::a},
      {"b", &ThreeCounters::b},
  });
  constexpr auto swapped = std::to_array<CounterBinding<ThreeCounters>>({
      {"b", &ThreeCounters::b},
      {"a", &ThreeCounters::a},
  });
  EXPECT_TRUE(counters::names_match(table, in_order));
  EXPECT_FALSE(counters::names_match(table, swapped));
  EXPECT_FALSE(counters::names_match(table, std::span(in_order).first(1)));
}

TEST(CounterBindings, ValueLessSubtrahend) {
  ThreeCounters counters;
  counters.a.add(5);
  counters.b.add(2);
  EXPECT_EQ(value_of(CounterBinding<ThreeCounters>{"a", &ThreeCounters::a}, counters), 5u);
  EXPECT_EQ(
      value_of(CounterBinding<ThreeCounters>{"a_less_b", &ThreeCounters::a, &ThreeCounters::b},
               counters),
      3u);
}

// The TLS relay's arrays are bound by index: each binding reads its own counter (the size check
// of counter_bindings.h cannot see two bindings of one counter), the faults and the worker's
// reasons in enum order, each exported under its family's label.
TEST(CounterBindings, TlsRelayBindingsReadEachCounterOnceFaultsAndReasonsInOrder) {
  TlsRelayCounters relay;
  std::set<const Counter*> seen;
  for (const TlsRelayBinding& binding : kTlsRelayBindings) {
    EXPECT_TRUE(seen.insert(&binding.counter(relay)).second) << binding.name;
  }
  EXPECT_FALSE(seen.contains(&relay.worker_resets[0])) << "index 0 is no reason";
  for (size_t f = 0; f < relay.faults.size(); ++f) relay.faults[f].add(100 + f);
  for (size_t r = 1; r < relay.worker_resets.size(); ++r) relay.worker_resets[r].add(200 + r);
  size_t faults = 0, resets = 0;
  for (size_t i = 0; i < kTlsRelayBindings.size(); ++i) {
    const counters::Entry& entry = counters::kTlsRelayCounters[i];
    const uint64_t value = kTlsRelayBindings[i].counter(relay).get();
    if (entry.label == "cause") {
      EXPECT_EQ(value, 100 + faults++) << entry.name;
      EXPECT_TRUE(entry.name.ends_with(entry.label_value)) << entry.name;
    } else if (entry.label == "reason") {
      EXPECT_EQ(value, 200 + ++resets) << entry.name;
      EXPECT_TRUE(entry.name.ends_with(entry.label_value)) << entry.name;
    } else {
      EXPECT_EQ(value, 0u) << entry.name;
    }
  }
  EXPECT_EQ(faults, relay.faults.size());
  EXPECT_EQ(resets, relay.worker_resets.size() - 1);
}

}  // namespace
}  // namespace weir::dataplane
