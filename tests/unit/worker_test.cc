// Workers side by side on one port's queues, in memory: what they share.
#include "dataplane/worker.h"

#include <gtest/gtest.h>
#include <rte_ring.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "tests/support/dataplane_harness.h"
#include "tests/support/eal_environment.h"
#include "tests/support/memory_io.h"
#include "tests/support/packet_builder.h"

namespace weir::dataplane {
namespace {

using test::Eth;
using test::kClientIp;
using test::kClientMac;
using test::kPortIp;

constexpr uint64_t kNow = 1'000'000;

// The workers of an RSS port: each polls its own queue (a MemoryIo of one port), and the ARP an
// RSS device leaves on queue 0 is all workers 1..N-1 would ever see of their neighbours without
// sharing.
struct RssWorkers {
  explicit RssWorkers(uint16_t count) : queue(count), worker(count) {
    WorkerSettings settings;
    settings.tcp.max_connections = 64;
    settings.flow_ownership = FlowOwnership{count, 128, 0};
    for (uint16_t id = 0; id < count; ++id) {
      auto io = std::make_unique<test::MemoryIo>(1, test::test_mbuf_pool());
      queue[id] = io.get();
      settings.id = id;
      settings.flow_ownership.worker = id;
      worker[id] = std::make_unique<Worker>(settings, std::move(io), test::harness_port_config(),
                                            test::test_mbuf_pool());
    }
  }
  // One ring per ordered pair, as DataplaneProcess::create_steering_rings makes them.
  void share_arp() {
    const size_t n = worker.size();
    std::vector<std::vector<rte_ring*>> out(n, std::vector<rte_ring*>(n, nullptr)), in(n);
    for (size_t from = 0; from < n; ++from) {
      for (size_t to = 0; to < n; ++to) {
        if (from == to) continue;
        const std::string name = "wt_" + std::to_string(from) + "_" + std::to_string(to);
        rte_ring* ring =
            rte_ring_create(name.c_str(), 64, SOCKET_ID_ANY, RING_F_SP_ENQ | RING_F_SC_DEQ);
        ASSERT_NE(ring, nullptr) << name;
        out[from][to] = ring;
        in[to].push_back(ring);
      }
    }
    // Each worker owns (and frees) the rings it reads.
    for (size_t w = 0; w < n; ++w) worker[w]->enable_steering(out[w], in[w], /*steer_tcp=*/false);
  }
  void poll_all() {
    for (auto& w : worker) w->poll_once(kNow);
  }
  // Resolved: an entry with a MAC (one still waiting for its reply does not count).
  bool knows(size_t id, net::Ipv4Address address) const {
    const net::NeighbourTable::Entry* entry = worker[id]->neighbours().find(address.value());
    return entry != nullptr && entry->state != net::NeighbourTable::State::incomplete &&
           entry->state != net::NeighbourTable::State::empty &&
           entry->state != net::NeighbourTable::State::tombstone;
  }
  bool knows_client(size_t id) const { return knows(id, kClientIp); }

  test::MbufLeakCheck mbufs{test::test_mbuf_pool()};
  std::vector<test::MemoryIo*> queue;
  std::vector<std::unique_ptr<Worker>> worker;
};

test::Frame arp_request_for_us() {
  return Eth(kClientMac, net::MacAddress::broadcast())
      .ARPRequest(kClientMac, kClientIp, kPortIp)
      .pad_to(60)
      .build();
}

TEST(WorkerArpSharing, AnArpRequestOnQueueZeroTeachesEveryWorkerAndIsAnsweredOnce) {
  RssWorkers w(2);
  w.share_arp();
  w.queue[0]->inject(0, arp_request_for_us());
  w.poll_all();
  EXPECT_TRUE(w.knows_client(0));
  EXPECT_TRUE(w.knows_client(1)) << "worker 1 learned from worker 0's copy";
  EXPECT_EQ(w.queue[0]->drain(0).size(), 1u) << "the receiver answers";
  EXPECT_TRUE(w.queue[1]->drain(0).empty()) << "the copy is never answered";
  EXPECT_EQ(w.worker[0]->steering_counters().arp_copies.get(), 1u);
  EXPECT_EQ(w.worker[1]->steering_counters().taken_in.get(), 1u);
  EXPECT_EQ(w.worker[1]->l3_counters().arp_requests_answered.get(), 0u);
  w.worker.clear();
  EXPECT_EQ(w.mbufs.leaked(), 0);
}

TEST(WorkerArpSharing, WithoutTheRingsOnlyTheReceivingWorkerLearns) {
  // What an RSS port with several workers did before ARP was shared: the reason for the above.
  RssWorkers w(2);
  w.queue[0]->inject(0, arp_request_for_us());
  w.poll_all();
  EXPECT_TRUE(w.knows_client(0));
  EXPECT_FALSE(w.knows_client(1));
  w.queue[0]->drain(0);
  w.worker.clear();
  EXPECT_EQ(w.mbufs.leaked(), 0);
}

TEST(WorkerArpSharing, OnFourQueuesTheReplyOnQueueZeroResolvesWorkerThreesNeighbour) {
  // Worker 3 must answer a SYN from the backend (a RST: nothing listens) and does not know the
  // backend's MAC: it asks (an ARP request on its own queue) and holds the RST. The device leaves
  // the ARP reply on queue 0; worker 0 learns from it and copies it to every other worker, and
  // worker 3's held RST goes out. (A ping would not do: echo replies go back to the request's
  // source MAC without a lookup.)
  RssWorkers w(4);
  w.share_arp();
  w.queue[3]->inject(0, Eth(test::kBackendMac, test::kPortMac)
                            .IPv4(test::kBackendIp, kPortIp)
                            .TCP(40000, 80, net::TcpFlag::syn, 1000, 0)
                            .build());
  w.poll_all();
  const std::vector<test::Frame> asked = w.queue[3]->drain(0);
  ASSERT_EQ(asked.size(), 1u);
  EXPECT_EQ(asked[0][12], 0x08);
  EXPECT_EQ(asked[0][13], 0x06) << "an ARP request, the RST held";
  for (size_t id = 0; id < 4; ++id) EXPECT_FALSE(w.knows(id, test::kBackendIp)) << id;

  w.queue[0]->inject(0, Eth(test::kBackendMac, test::kPortMac)
                            .ARPReply(test::kBackendMac, test::kBackendIp, test::kPortMac, kPortIp)
                            .pad_to(60)
                            .build());
  w.poll_all();
  for (size_t id = 0; id < 4; ++id) EXPECT_TRUE(w.knows(id, test::kBackendIp)) << id;
  const std::vector<test::Frame> answered = w.queue[3]->drain(0);
  ASSERT_EQ(answered.size(), 1u);
  const test::Frame& reply = answered[0];
  EXPECT_TRUE(std::equal(reply.begin(), reply.begin() + 6, test::kBackendMac.octets().begin()));
  EXPECT_EQ(reply[23], 6) << "TCP";
  EXPECT_NE(reply[47] & 0x04, 0) << "a RST";
  for (size_t id = 0; id < 3; ++id) EXPECT_TRUE(w.queue[id]->drain(0).empty()) << id;
  EXPECT_EQ(w.worker[0]->steering_counters().arp_copies.get(), 3u);
  w.worker.clear();
  EXPECT_EQ(w.mbufs.leaked(), 0);
}

}  // namespace
}  // namespace weir::dataplane
