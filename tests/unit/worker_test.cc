// Workers side by side on one port's queues, in memory: what they share.
#include "dataplane/worker.h"

#include <gtest/gtest.h>
#include <rte_ring.h>

#include <memory>
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

// Two workers of an RSS port: each polls its own queue (a MemoryIo of one port), and the ARP an
// RSS device leaves on queue 0 is all worker 1 would ever see of its neighbours without sharing.
struct TwoRssWorkers {
  TwoRssWorkers() {
    WorkerSettings settings;
    settings.tcp.max_connections = 64;
    settings.flow_ownership = FlowOwnership{2, 128, 0};
    for (uint16_t id : {0, 1}) {
      auto io = std::make_unique<test::MemoryIo>(1, test::test_mbuf_pool());
      queue[id] = io.get();
      settings.id = id;
      settings.flow_ownership.worker = id;
      worker[id] = std::make_unique<Worker>(settings, std::move(io), test::harness_port_config(),
                                            test::test_mbuf_pool());
    }
  }
  void share_arp() {
    rte_ring* zero_to_one =
        rte_ring_create("wt_0_1", 64, SOCKET_ID_ANY, RING_F_SP_ENQ | RING_F_SC_DEQ);
    rte_ring* one_to_zero =
        rte_ring_create("wt_1_0", 64, SOCKET_ID_ANY, RING_F_SP_ENQ | RING_F_SC_DEQ);
    ASSERT_NE(zero_to_one, nullptr);
    ASSERT_NE(one_to_zero, nullptr);
    // Each worker owns (and frees) the rings it reads.
    worker[0]->enable_steering({nullptr, zero_to_one}, {one_to_zero}, /*steer_tcp=*/false);
    worker[1]->enable_steering({one_to_zero, nullptr}, {zero_to_one}, /*steer_tcp=*/false);
  }
  void poll_both() {
    for (auto& w : worker) w->poll_once(kNow);
  }
  bool knows_client(int id) const {
    return worker[id]->neighbours().find(kClientIp.value()) != nullptr;
  }

  test::MbufLeakCheck mbufs{test::test_mbuf_pool()};
  std::array<test::MemoryIo*, 2> queue{};
  std::array<std::unique_ptr<Worker>, 2> worker;
};

test::Frame arp_request_for_us() {
  return Eth(kClientMac, net::MacAddress::broadcast())
      .ARPRequest(kClientMac, kClientIp, kPortIp)
      .pad_to(60)
      .build();
}

TEST(WorkerArpSharing, AnArpRequestOnQueueZeroTeachesEveryWorkerAndIsAnsweredOnce) {
  TwoRssWorkers w;
  w.share_arp();
  w.queue[0]->inject(0, arp_request_for_us());
  w.poll_both();
  EXPECT_TRUE(w.knows_client(0));
  EXPECT_TRUE(w.knows_client(1)) << "worker 1 learned from worker 0's copy";
  EXPECT_EQ(w.queue[0]->drain(0).size(), 1u) << "the receiver answers";
  EXPECT_TRUE(w.queue[1]->drain(0).empty()) << "the copy is never answered";
  EXPECT_EQ(w.worker[0]->steering_counters().arp_copies.get(), 1u);
  EXPECT_EQ(w.worker[1]->steering_counters().taken_in.get(), 1u);
  EXPECT_EQ(w.worker[1]->l3_counters().arp_requests_answered.get(), 0u);
  w.worker = {};
  EXPECT_EQ(w.mbufs.leaked(), 0);
}

TEST(WorkerArpSharing, WithoutTheRingsOnlyTheReceivingWorkerLearns) {
  // What an RSS port with several workers did before ARP was shared: the reason for the above.
  TwoRssWorkers w;
  w.queue[0]->inject(0, arp_request_for_us());
  w.poll_both();
  EXPECT_TRUE(w.knows_client(0));
  EXPECT_FALSE(w.knows_client(1));
  w.queue[0]->drain(0);
  w.worker = {};
  EXPECT_EQ(w.mbufs.leaked(), 0);
}

}  // namespace
}  // namespace weir::dataplane
