// Scripted tests of TCP when its worker was away: not scheduled for seconds on a busy machine,
// while segments waited unread in the receive ring. The worker tells the stack
// (TcpStack::worker_was_away) before the first tick after the gap; loss timers that came due
// meanwhile wait until it has read the ring, once, and RTT samples leave the absence out.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "dataplane/tcp/tcp_stack.h"
#include "tests/support/tcp_script.h"

namespace weir::tcp {
namespace {

class TcpAbsenceScript : public TcpScript {
 protected:
  void SetUp() override {
    iss_ = handshake(kEcho);
    next_ = kClientIsn + 1;
  }
  // The client sends one full segment; the echo's copy of it is returned.
  Out echo_one(char fill, uint32_t tsval) {
    const auto out = send(kEcho, A, next_, iss_ + 1 + sent_, std::string(1448, fill), ts(tsval));
    next_ += 1448;
    EXPECT_FALSE(out.empty());
    if (out.empty()) return Out{};
    EXPECT_EQ(out[0].payload.size(), 1448u);
    sent_ += 1448;
    return out[0];
  }
  // The client's ACK of everything echoed so far, echoing `echoed`'s timestamp.
  std::vector<Out> ack_all(uint32_t tsval, const Out& echoed) {
    return send(kEcho, A, next_, iss_ + 1 + sent_, "",
                TcpOptions().nop().nop().timestamps(tsval, echoed.timestamps->value));
  }
  uint32_t iss_ = 0;
  uint32_t next_ = 0;
  uint32_t sent_ = 0;
};

// The echo's segment leaves; the worker is then away for 3 s, and the client's ACK, which came
// 1 ms after the segment, waits in the ring. The first tick after the absence finds the
// retransmission timer (and the tail loss probe's) long due: without the rule it fired then,
// before the ACK was read, and sent the segment again with the timeout backed off.
TEST_F(TcpAbsenceScript, ALossTimerDueDuringAnAbsenceWaitsForTheAcksInTheRing) {
  const Out echoed = echo_one('a', 102);
  tcp_->worker_was_away(kStart + 1'000, kStart + 3'000'000);
  EXPECT_TRUE(advance_to(kStart + 3'000'000).empty()) << "nothing sent before the ring is read";
  EXPECT_EQ(counters_.loss_timers_deferred.get(), 1u);
  EXPECT_TRUE(ack_all(103, echoed).empty());
  EXPECT_TRUE(advance_to(kStart + 6'000'000).empty());
  EXPECT_EQ(counters_.rto_expirations.get(), 0u);
  EXPECT_EQ(counters_.tail_loss_probes.get(), 0u);
  EXPECT_EQ(counters_.retransmitted_segments.get(), 0u);
}

// Put off once only: a peer that is really silent is probed (or timed out) as soon as the worker
// has listened for a millisecond after its absence, and a second absence does not put it off again.
TEST_F(TcpAbsenceScript, ATimerPutOffAfterAnAbsenceFiresOnceTheWorkerHasListened) {
  const Out echoed = echo_one('a', 102);
  tcp_->worker_was_away(kStart + 1'000, kStart + 3'000'000);
  EXPECT_TRUE(advance_to(kStart + 3'000'000).empty());
  tcp_->worker_was_away(kStart + 3'000'000, kStart + 3'000'500);
  const auto again = advance_to(kStart + 3'001'000);
  ASSERT_EQ(again.size(), 1u) << "due once the worker listened for TcpStack::kCatchUpUs";
  EXPECT_EQ(again[0].seq, echoed.seq);
  EXPECT_EQ(again[0].payload, echoed.payload);
  EXPECT_EQ(counters_.loss_timers_deferred.get(), 1u);
}

// The ACK read after a 2 s absence echoes a timestamp 2 s old, but came within 1 ms: the sample
// is the time from sending to the worker's leaving, not 2 s. With 2 s in it the RTO estimator
// went to SRTT 250 ms and RTO 2.25 s, and the next lost segment waited 700 ms for its probe
// (seconds for its timeout); without it the probe follows within a quarter of a second.
TEST_F(TcpAbsenceScript, AnRttSampleLeavesTheWorkersAbsenceOut) {
  const Out first = echo_one('a', 102);
  tcp_->worker_was_away(kStart + 1'000, kStart + 2'000'000);
  advance_to(kStart + 2'000'000);
  EXPECT_TRUE(ack_all(103, first).empty());
  const Out second = echo_one('b', 104);  // lost, with its ACK
  EXPECT_TRUE(advance_to(kStart + 2'000'000 + 150'000).empty());
  const auto repair = advance_to(kStart + 2'000'000 + 250'000);
  ASSERT_EQ(repair.size(), 1u) << "probe or timeout at about 200 ms, not seconds";
  EXPECT_EQ(repair[0].seq, second.seq);
  EXPECT_EQ(repair[0].payload, second.payload);
}

// Without an absence nothing changes: the same segment unacknowledged is probed at the usual
// time (two SRTTs and the worst-case delayed ACK: about 200 ms here), nothing put off.
TEST_F(TcpAbsenceScript, WithoutAnAbsenceTheTimersAreAsBefore) {
  const Out echoed = echo_one('a', 102);
  const auto probe = advance_to(kStart + 250'000);
  ASSERT_EQ(probe.size(), 1u);
  EXPECT_EQ(probe[0].seq, echoed.seq);
  EXPECT_EQ(counters_.loss_timers_deferred.get(), 0u);
}

}  // namespace
}  // namespace weir::tcp
