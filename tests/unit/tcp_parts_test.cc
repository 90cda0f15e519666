// The TCP stack's self-contained parts: sequence-number arithmetic (RFC 9293 3.4), the per-worker
// timer wheel (checked against a model over random operations), RFC 6528 initial sequence numbers
// and RFC 4987 SYN cookies.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <unordered_map>
#include <vector>

#include "dataplane/tcp/congestion.h"
#include "dataplane/tcp/connection_table.h"
#include "dataplane/tcp/rto.h"
#include "dataplane/tcp/sack_scoreboard.h"
#include "dataplane/tcp/seq.h"
#include "dataplane/tcp/syn_cookie.h"
#include "dataplane/tcp/timer_wheel.h"

namespace weir::tcp {
namespace {

// ---- sequence numbers --------------------------------------------------------------------------

TEST(Seq, ComparesAcrossTheWrap) {
  const Seq before_wrap(0xFFFFFFF0u);
  const Seq after_wrap(0x10u);
  EXPECT_LT(before_wrap, after_wrap);
  EXPECT_GT(after_wrap, before_wrap);
  EXPECT_EQ(after_wrap - before_wrap, 0x20);
  EXPECT_EQ(before_wrap - after_wrap, -0x20);
  EXPECT_EQ(before_wrap + 0x20u, after_wrap);
  EXPECT_EQ(after_wrap - 0x20u, before_wrap);
  EXPECT_EQ(seq_max(before_wrap, after_wrap), after_wrap);
  EXPECT_EQ(seq_min(before_wrap, after_wrap), before_wrap);
  // Plain unsigned comparison would say the opposite: the reason for the type.
  EXPECT_GT(before_wrap.raw(), after_wrap.raw());
}

TEST(Seq, OrderHoldsForEveryDistanceBelowHalfTheSpace) {
  std::mt19937 rng(6528);
  for (int i = 0; i < 100000; ++i) {
    const Seq a(static_cast<uint32_t>(rng()));
    const uint32_t d = 1 + static_cast<uint32_t>(rng()) % 0x7FFFFFFFu;
    const Seq b = a + d;
    ASSERT_LT(a, b) << a.raw() << " + " << d;
    ASSERT_LE(a, b);
    ASSERT_GT(b, a);
    ASSERT_GE(b, a);
    ASSERT_FALSE(a == b);
    ASSERT_EQ(static_cast<uint32_t>(b - a), d);
  }
}

// ---- SACK scoreboard (RFC 6675) -----------------------------------------------------------------

constexpr uint32_t kSmss = 1000;
// Segment n of a flight that starts near the wrap, so every comparison crosses it.
Seq segment(uint32_t n) {
  return Seq(0xffff'f000u) + n * kSmss;
}

TEST(SackScoreboard, MergesBlocksAndIgnoresWhatLiesOutsideTheSentData) {
  SackScoreboard board;
  const Seq una = segment(0), data_end = segment(10);
  EXPECT_EQ(board.add(segment(2), segment(3), una, data_end), kSmss);
  EXPECT_EQ(board.add(segment(4), segment(5), una, data_end), kSmss);
  EXPECT_EQ(board.add(segment(2), segment(3), una, data_end), 0u) << "nothing new";
  EXPECT_EQ(board.add(segment(3), segment(4), una, data_end), kSmss) << "fills the gap";
  ASSERT_EQ(board.ranges(), 1u);
  EXPECT_EQ(board.range(0).start, segment(2));
  EXPECT_EQ(board.range(0).end, segment(5));
  EXPECT_EQ(board.add(segment(0) - 500, segment(0), una, data_end), 0u) << "D-SACK below SND.UNA";
  EXPECT_EQ(board.add(segment(9), segment(12), una, data_end), kSmss) << "clamped to what was sent";
  EXPECT_EQ(board.sacked_bytes(), 4 * kSmss);
  board.advance(segment(3));
  EXPECT_EQ(board.sacked_bytes(), 3 * kSmss) << "cumulatively acknowledged bytes leave";
  board.advance(segment(10));
  EXPECT_TRUE(board.empty());
}

TEST(SackScoreboard, KeepsTheLowestRangesWhenFull) {
  SackScoreboard board;
  const Seq una = segment(0), data_end = segment(100);
  for (uint32_t n = 0; n < SackScoreboard::kMaxRanges + 2; ++n)
    board.add(segment(2 * n + 1), segment(2 * n + 2), una, data_end);
  EXPECT_EQ(board.ranges(), SackScoreboard::kMaxRanges);
  EXPECT_EQ(board.range(0).start, segment(1));
  EXPECT_EQ(board.highest_sacked(), segment(2 * SackScoreboard::kMaxRanges));
  board.add(segment(0), segment(1), una, data_end);  // a lower block still gets in
  EXPECT_EQ(board.range(0).start, segment(0));
}

TEST(SackScoreboard, IsLostByBytesOrByDiscontiguousRanges) {
  SackScoreboard board;
  const Seq una = segment(0), data_end = segment(20);
  board.add(segment(1), segment(3), una, data_end);  // 2 segments above the hole at 0
  EXPECT_FALSE(board.is_lost(segment(0), kSmss)) << "(DupThresh - 1) * SMSS is not more than it";
  board.add(segment(3), segment(3) + 1, una, data_end);
  EXPECT_TRUE(board.is_lost(segment(0), kSmss)) << "one byte more is";
  SackScoreboard ranges;
  for (uint32_t n : {2u, 4u, 6u}) ranges.add(segment(n), segment(n) + 1, una, data_end);
  EXPECT_TRUE(ranges.is_lost(segment(0), kSmss)) << "three discontiguous ranges, however small";
  EXPECT_FALSE(ranges.is_lost(segment(3), kSmss)) << "only two above this one";
}

TEST(SackScoreboard, PipeAndNextSegmentFollowRfc6675) {
  SackScoreboard board;
  const Seq una = segment(0), high = segment(10);
  // Holes at 0 and at 4; SACKed 1-3 and 5-6; 7-9 outstanding, not SACKed.
  board.add(segment(1), segment(4), una, high);
  board.add(segment(5), segment(7), una, high);
  ASSERT_TRUE(board.is_lost(segment(0), kSmss));
  ASSERT_FALSE(board.is_lost(segment(4), kSmss));
  // Lost hole 0 counts nothing; hole 4 and the tail 7-9 count in full.
  EXPECT_EQ(board.pipe(una, high, kSmss), 4 * kSmss);
  auto next = board.next_lost(una, kSmss);
  ASSERT_TRUE(next.has_value());
  EXPECT_EQ(next->start, segment(0));
  EXPECT_EQ(next->length, kSmss);
  board.retransmitted(segment(1), 0);
  EXPECT_EQ(board.pipe(una, high, kSmss), 5 * kSmss) << "a retransmitted byte is in the network";
  EXPECT_FALSE(board.next_lost(una, kSmss).has_value()) << "hole 4 is not lost yet";
  auto rule3 = board.next_unsacked(una, kSmss);
  ASSERT_TRUE(rule3.has_value());
  EXPECT_EQ(rule3->start, segment(4));
  board.add(segment(7), segment(9), una, high);
  next = board.next_lost(una, kSmss);
  ASSERT_TRUE(next.has_value()) << "4 SACKed segments above it now";
  EXPECT_EQ(next->start, segment(4));
  // A pipe that counts: hole 0 retransmitted (1), hole 4 lost (0), the tail 9 (1).
  EXPECT_EQ(board.pipe(una, high, kSmss), 2 * kSmss);
}

TEST(Seq, WindowIsHalfOpenAndWraps) {
  const Seq left(0xFFFFFF00u);
  EXPECT_TRUE(in_window(left, left, 0x200));
  EXPECT_TRUE(in_window(left + 0x1FFu, left, 0x200));
  EXPECT_FALSE(in_window(left + 0x200u, left, 0x200));
  EXPECT_FALSE(in_window(left - 1u, left, 0x200));
  EXPECT_FALSE(in_window(left, left, 0)) << "a zero window holds nothing";
}

// ---- the timer wheel ---------------------------------------------------------------------------

constexpr uint64_t kTick = 1000;  // 1 ms

TEST(TimerWheel, NeverEarlyAndAtMostOneTickLate) {
  TimerWheel wheel(64, kTick, 0);
  Timer timer;
  wheel.arm(timer, 2500);  // due in tick 3 (the first tick at or after 2.5 ms)
  int fired = 0;
  auto count = [&](Timer&) { ++fired; };
  EXPECT_EQ(wheel.advance(2999, count), 0u);
  EXPECT_TRUE(timer.armed());
  EXPECT_EQ(wheel.advance(3000, count), 1u);
  EXPECT_EQ(fired, 1);
  EXPECT_FALSE(timer.armed());
  EXPECT_EQ(wheel.armed_count(), 0u);
}

TEST(TimerWheel, CancelAndRearm) {
  TimerWheel wheel(64, kTick, 0);
  Timer a, b;
  wheel.arm(a, 5000);
  wheel.arm(b, 5000);
  wheel.cancel(a);
  wheel.cancel(a);     // cancelling twice is harmless
  wheel.arm(b, 9000);  // re-arming moves it
  std::vector<Timer*> fired;
  wheel.advance(8000, [&](Timer& t) { fired.push_back(&t); });
  EXPECT_TRUE(fired.empty());
  wheel.advance(9000, [&](Timer& t) { fired.push_back(&t); });
  EXPECT_EQ(fired, std::vector<Timer*>{&b});
}

TEST(TimerWheel, PastDeadlinesFireAtTheNextAdvanceNotSynchronously) {
  TimerWheel wheel(64, kTick, 10'000);
  Timer timer;
  wheel.arm(timer, 0);
  EXPECT_TRUE(timer.armed());
  EXPECT_EQ(wheel.advance(11'000, [](Timer&) {}), 1u);
}

TEST(TimerWheel, TimersBeyondOneTurnWaitForTheirTurn) {
  TimerWheel wheel(8, kTick, 0);  // one turn = 8 ms
  Timer timer;
  wheel.arm(timer, 20'000);  // two and a half turns away
  size_t fired = 0;
  for (uint64_t now = kTick; now < 20'000; now += kTick) {
    fired += wheel.advance(now, [](Timer&) {});
    ASSERT_EQ(fired, 0u) << now;
  }
  EXPECT_EQ(wheel.advance(20'000, [](Timer&) {}), 1u);
}

TEST(TimerWheel, ACallbackMayRearmItsTimer) {
  TimerWheel wheel(16, kTick, 0);
  Timer periodic;
  std::vector<uint64_t> fired_at;
  uint64_t now = 0;
  auto on_expire = [&](Timer& t) {
    fired_at.push_back(now);
    if (fired_at.size() < 5) wheel.arm(t, now + 3 * kTick);
  };
  wheel.arm(periodic, 3 * kTick);
  for (now = kTick; now <= 30 * kTick; now += kTick) wheel.advance(now, on_expire);
  EXPECT_EQ(fired_at, (std::vector<uint64_t>{3000, 6000, 9000, 12000, 15000}));
  EXPECT_FALSE(periodic.armed());
}

TEST(TimerWheel, MatchesAModelOverRandomOperations) {
  // Model: a timer armed at current tick c with deadline D must fire in the first advance whose
  // tick reaches max(ceil(D / tick), c + 1), and never before.
  std::mt19937_64 rng(1987);
  constexpr size_t kTimers = 200;
  // Timers first: the wheel is destroyed before them and disarms whatever a failed ASSERT left.
  std::vector<std::unique_ptr<Timer>> timers;
  for (size_t i = 0; i < kTimers; ++i) timers.push_back(std::make_unique<Timer>());
  TimerWheel wheel(32, kTick, 0);
  std::map<const Timer*, uint64_t> due_tick;  // armed timers and the tick they must fire at
  uint64_t now = 0;
  size_t fired_total = 0;
  for (int step = 0; step < 20000; ++step) {
    const unsigned op = rng() % 10;
    Timer& timer = *timers[rng() % kTimers];
    if (op < 5) {
      const uint64_t deadline = now + rng() % (100 * kTick);  // up to ~3 turns away
      wheel.arm(timer, deadline);
      due_tick[&timer] = std::max((deadline + kTick - 1) / kTick, now / kTick + 1);
    } else if (op < 7) {
      wheel.cancel(timer);
      due_tick.erase(&timer);
    } else {
      // Mostly small steps, sometimes an absence longer than a turn.
      now += (rng() % 20 == 0) ? (40 + rng() % 100) * kTick : rng() % (3 * kTick);
      const uint64_t now_tick = now / kTick;
      wheel.advance(now, [&](Timer& t) {
        const auto it = due_tick.find(&t);
        ASSERT_NE(it, due_tick.end()) << "a cancelled or unarmed timer fired";
        ASSERT_LE(it->second, now_tick) << "fired early";
        due_tick.erase(it);
        ++fired_total;
      });
      for (const auto& [t, tick] : due_tick) {
        ASSERT_GT(tick, now_tick) << "a due timer did not fire";
        ASSERT_TRUE(t->armed());
      }
    }
    ASSERT_EQ(wheel.armed_count(), due_tick.size());
  }
  EXPECT_GT(fired_total, 1000u);
}

// ---- ISN and SYN cookies -----------------------------------------------------------------------

constexpr Secret kSecret = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
constexpr Secret kOtherSecret = {16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1};
constexpr FourTuple kTuple{0x0a4d0064, 0x0a4d0001, 7, 40000};

TEST(InitialSequence, KeyedPerTupleAndAdvancingWithTheClock) {
  const Seq isn = initial_sequence(kSecret, kTuple, 1'000'000);
  // RFC 6528: M advances every 4 us.
  EXPECT_EQ(initial_sequence(kSecret, kTuple, 1'000'400) - isn, 100);
  FourTuple other_port = kTuple;
  other_port.remote_port = 40001;
  EXPECT_NE(initial_sequence(kSecret, other_port, 1'000'000), isn);
  EXPECT_NE(initial_sequence(kOtherSecret, kTuple, 1'000'000), isn);
}

TEST(SynCookie, RoundTripKeepsTheLargestMssNotAboveTheClients) {
  const Seq client_isn(123456789);
  const uint64_t now = 5'000'000'000;
  const std::vector<std::pair<uint16_t, uint16_t>> cases = {
      {48, 64}, {536, 536}, {1000, 536}, {1459, 1440}, {1460, 1460}, {9000, 1460}, {1300, 1300}};
  for (const auto& [offered, kept] : cases) {
    const Seq cookie = make_cookie(kSecret, kTuple, client_isn, offered, now);
    EXPECT_EQ(check_cookie(kSecret, kTuple, client_isn, cookie + 1u, now), kept) << offered;
  }
}

TEST(SynCookie, ValidForTwoPeriodsAndNoLonger) {
  const Seq client_isn(42);
  const uint64_t made = 10 * kCookiePeriodUs + 5;
  const Seq ack = make_cookie(kSecret, kTuple, client_isn, 1460, made) + 1u;
  EXPECT_TRUE(check_cookie(kSecret, kTuple, client_isn, ack, made));
  EXPECT_TRUE(check_cookie(kSecret, kTuple, client_isn, ack, 11 * kCookiePeriodUs + 7));
  EXPECT_FALSE(check_cookie(kSecret, kTuple, client_isn, ack, 12 * kCookiePeriodUs));
  EXPECT_FALSE(
      check_cookie(kSecret, kTuple, client_isn, ack, 10 * kCookiePeriodUs + 32 * kCookiePeriodUs))
      << "the 5-bit period counter wrapped, the hash still differs";
}

TEST(SynCookie, EveryAlteredBitAndEveryOtherConnectionIsRefused) {
  const Seq client_isn(0xCAFEF00D);
  const uint64_t now = 77 * kCookiePeriodUs;
  const Seq cookie = make_cookie(kSecret, kTuple, client_isn, 1460, now);
  for (int bit = 0; bit < 32; ++bit) {
    const Seq altered(cookie.raw() ^ (1u << bit));
    EXPECT_FALSE(check_cookie(kSecret, kTuple, client_isn, altered + 1u, now)) << "bit " << bit;
  }
  FourTuple other = kTuple;
  other.remote_address ^= 1;
  EXPECT_FALSE(check_cookie(kSecret, other, client_isn, cookie + 1u, now));
  EXPECT_FALSE(check_cookie(kSecret, kTuple, client_isn + 1u, cookie + 1u, now));
  EXPECT_FALSE(check_cookie(kOtherSecret, kTuple, client_isn, cookie + 1u, now));
}

TEST(SynCookie, TimestampCarriesWindowScaleAndSack) {
  for (const uint32_t clock : {0u, 5u, 63u, 64u, 1000u, 0xFFFFFFFFu}) {
    for (int scale = -1; scale <= 14; ++scale) {
      for (const bool sack : {false, true}) {
        const std::optional<uint8_t> window_scale =
            scale < 0 ? std::nullopt : std::optional<uint8_t>(static_cast<uint8_t>(scale));
        const uint32_t tsval = encode_cookie_timestamp(clock, window_scale, sack);
        // Never ahead of the clock in timestamp (serial) arithmetic, and at most 64 behind.
        const int32_t behind = static_cast<int32_t>(clock - tsval);
        ASSERT_GE(behind, 0) << clock;
        ASSERT_LT(behind, 64) << clock;
        const auto decoded = decode_cookie_timestamp(tsval, 1440);
        ASSERT_TRUE(decoded);
        EXPECT_EQ(*decoded, (CookieOptions{1440, window_scale, sack}));
      }
    }
  }
  EXPECT_FALSE(decode_cookie_timestamp(0x12345600u, 1440)) << "no marker bit: not a cookie";
}

// ---- the connection table ----------------------------------------------------------------------

struct TupleHash {
  size_t operator()(const FourTuple& t) const {
    return std::hash<uint64_t>()(uint64_t{t.local_address} << 32 | t.remote_address) ^
           (size_t{t.local_port} << 16 | t.remote_port);
  }
};

TEST(ConnectionTable, MatchesAModelUnderChurn) {
  std::mt19937 rng(4987);
  constexpr uint32_t kMax = 1000;
  ConnectionTable table(kMax, kSecret);
  std::unordered_map<FourTuple, uint32_t, TupleHash> model;
  // A small address space so that inserts collide with existing keys and erases hit often.
  auto random_tuple = [&] {
    return FourTuple{0x0a4d0064, static_cast<uint32_t>(0x0a4d0000u + rng() % 4), 7,
                     static_cast<uint16_t>(rng() % 600)};
  };
  size_t refusals = 0;
  for (int step = 0; step < 200000; ++step) {
    const FourTuple tuple = random_tuple();
    switch (rng() % 3) {
      case 0: {
        const uint32_t slot = rng() % 100000;
        const bool inserted = table.insert(tuple, slot);
        const bool expected = !model.contains(tuple) && model.size() < kMax;
        ASSERT_EQ(inserted, expected);
        if (inserted) model[tuple] = slot;
        if (!inserted && !model.contains(tuple)) ++refusals;
        break;
      }
      case 1:
        ASSERT_EQ(table.erase(tuple), model.erase(tuple) == 1);
        break;
      default: {
        const auto found = table.find(tuple);
        const auto it = model.find(tuple);
        ASSERT_EQ(found.has_value(), it != model.end());
        if (found) {
          ASSERT_EQ(*found, it->second);
        }
      }
    }
    ASSERT_EQ(table.size(), model.size());
  }
  for (const auto& [tuple, slot] : model) ASSERT_EQ(table.find(tuple), slot);
  EXPECT_GT(refusals, 0u) << "the test never filled the table";
}

TEST(ConnectionTable, FullTableRefusesUntilAnEntryLeaves) {
  ConnectionTable table(3, kSecret);
  FourTuple t = kTuple;
  for (uint16_t port = 1; port <= 3; ++port) {
    t.remote_port = port;
    ASSERT_TRUE(table.insert(t, port));
  }
  t.remote_port = 4;
  EXPECT_FALSE(table.insert(t, 4));
  FourTuple first = kTuple;
  first.remote_port = 1;
  ASSERT_TRUE(table.erase(first));
  EXPECT_TRUE(table.insert(t, 4));
  EXPECT_EQ(table.find(t), 4u);
  EXPECT_FALSE(table.find(first));
  EXPECT_LE(table.bytes_per_connection(), 64u);
}

// ---- RFC 6298 retransmission timeout -----------------------------------------------------------

TEST(RtoEstimator, FollowsRfc6298StepByStep) {
  RtoEstimator rto(200'000, 120'000'000);
  EXPECT_EQ(rto.rto_us(), 1'000'000u) << "2.1: 1 s before any sample";
  rto.sample(100'000);  // 2.2: SRTT = R, RTTVAR = R/2, RTO = SRTT + 4 RTTVAR
  EXPECT_EQ(rto.srtt_us(), 100'000u);
  EXPECT_EQ(rto.rttvar_us(), 50'000u);
  EXPECT_EQ(rto.rto_us(), 300'000u);
  rto.sample(60'000);  // 2.3: RTTVAR = 3/4 * 50000 + 1/4 * |100000 - 60000| = 47500
  EXPECT_EQ(rto.rttvar_us(), 47'500u);
  EXPECT_EQ(rto.srtt_us(), 95'000u);  // 7/8 * 100000 + 1/8 * 60000
  EXPECT_EQ(rto.rto_us(), 95'000u + 4 * 47'500u);
}

TEST(RtoEstimator, ClampsToMinimumAndMaximumAndBacksOff) {
  RtoEstimator rto(200'000, 1'000'000);
  for (int i = 0; i < 50; ++i) rto.sample(1'000);  // a LAN: SRTT 1 ms, RTTVAR -> 0
  EXPECT_EQ(rto.rto_us(), 200'000u) << "2.4: never below min_rto";
  rto.back_off();
  EXPECT_EQ(rto.rto_us(), 400'000u) << "5.5: doubles";
  rto.back_off();
  rto.back_off();
  EXPECT_EQ(rto.rto_us(), 1'000'000u) << "2.5: capped at max_rto";
  EXPECT_EQ(rto.backoffs(), 3u);
  rto.sample(1'000);  // 5.7: a new sample ends the backoff
  EXPECT_EQ(rto.rto_us(), 200'000u);
  EXPECT_EQ(rto.backoffs(), 0u);
}

TEST(RtoEstimator, GranularityBoundsTheVarianceTerm) {
  RtoEstimator rto(1, 120'000'000);
  for (int i = 0; i < 100; ++i) rto.sample(50'000);  // a perfectly steady path: RTTVAR -> 0
  EXPECT_EQ(rto.rttvar_us(), 0u);
  EXPECT_EQ(rto.rto_us(), 50'000u + RtoEstimator::kGranularityUs) << "SRTT + max(G, 4 RTTVAR)";
}

// ---- congestion control ------------------------------------------------------------------------

constexpr uint32_t kMss = 1460;

// One round trip of an ACK clock: a window of data acknowledged one segment at a time.
void one_rtt(CongestionControl& cc, uint64_t& now_us, uint64_t rtt_us) {
  const uint32_t window = cc.cwnd();
  for (uint32_t acked = 0; acked + kMss <= window; acked += kMss) cc.on_ack(kMss, now_us, rtt_us);
  now_us += rtt_us;
}

TEST(Congestion, InitialWindowFollowsRfc6928) {
  EXPECT_EQ(initial_window(1460), 14600u);
  EXPECT_EQ(initial_window(536), 5360u);
  EXPECT_EQ(initial_window(9000), 18000u);
}

TEST(NewReno, SlowStartDoublesThenAvoidanceAddsOneSegmentPerRtt) {
  NewReno cc(kMss);
  uint64_t now = 0;
  one_rtt(cc, now, 100'000);
  EXPECT_EQ(cc.cwnd(), 2 * 14600u);
  cc.on_loss(100 * kMss, now);
  EXPECT_EQ(cc.ssthresh(), 50 * kMss) << "max(FlightSize / 2, 2 SMSS)";
  EXPECT_EQ(cc.cwnd(), 50 * kMss);
  for (int rtt = 1; rtt <= 10; ++rtt) {
    one_rtt(cc, now, 100'000);
    EXPECT_EQ(cc.cwnd(), (50u + rtt) * kMss);
  }
  cc.on_timeout(10 * kMss, now);
  EXPECT_EQ(cc.cwnd(), kMss) << "RFC 5681 3.1: the loss window";
  EXPECT_EQ(cc.ssthresh(), 5 * kMss);
  cc.on_timeout(kMss, now);
  EXPECT_EQ(cc.ssthresh(), 2 * kMss) << "never below two segments";
}

TEST(Cubic, ReturnsToWmaxAfterKSecondsThenProbesBeyond) {
  Cubic cc(kMss);
  uint64_t now = 0;
  // Grow to 100 segments in slow start, then lose.
  while (cc.cwnd() < 100 * kMss) cc.on_ack(kMss, now, 100'000);
  cc.on_loss(cc.cwnd(), now);
  const double w_max = cc.w_max_segments();
  EXPECT_NEAR(cc.cwnd(), 0.7 * w_max * kMss, kMss);
  EXPECT_NEAR(cc.k_seconds(), std::cbrt(w_max * 0.3 / 0.4), 0.05) << "RFC 9438 eq. 2";
  const uint64_t start = now;
  double previous = cc.cwnd();
  bool concave_growth_slowed = false;
  double last_growth = 1e9;
  while (now - start < static_cast<uint64_t>(cc.k_seconds() * 1e6) - 200'000) {
    one_rtt(cc, now, 100'000);
    const double growth = cc.cwnd() - previous;
    ASSERT_LE(cc.cwnd(), 1.5 * previous + kMss) << "at most 1.5 cwnd per RTT";
    if (growth < last_growth) concave_growth_slowed = true;
    last_growth = growth;
    previous = cc.cwnd();
  }
  EXPECT_TRUE(concave_growth_slowed);
  EXPECT_LT(cc.cwnd(), w_max * kMss) << "still below W_max before K";
  while (now - start < static_cast<uint64_t>(cc.k_seconds() * 1e6) + 100'000)
    one_rtt(cc, now, 100'000);
  EXPECT_NEAR(cc.cwnd() / double(kMss), w_max, 0.05 * w_max) << "back at W_max around K";
  const uint64_t after_k = now;
  while (now - after_k < 3'000'000) one_rtt(cc, now, 100'000);
  const double t = (now - start) / 1e6;
  const double expected = Cubic::kC * std::pow(t - cc.k_seconds(), 3.0) + w_max;  // eq. 1
  EXPECT_NEAR(cc.cwnd() / double(kMss), expected, 0.03 * expected) << "on the cubic curve";
  EXPECT_GT(cc.cwnd() / double(kMss), w_max * 1.05) << "convex probing beyond W_max";
}

TEST(Cubic, RenoFriendlyOnShortRoundTrips) {
  Cubic cc(kMss);
  uint64_t now = 0;
  while (cc.cwnd() < 100 * kMss) cc.on_ack(kMss, now, 1'000);
  cc.on_loss(cc.cwnd(), now);
  const double start_segments = cc.cwnd() / double(kMss);
  constexpr int kRtts = 200;  // 200 ms at 1 ms RTT: W_cubic has barely moved
  for (int i = 0; i < kRtts; ++i) one_rtt(cc, now, 1'000);
  const double alpha = 3 * (1 - Cubic::kBeta) / (1 + Cubic::kBeta);
  const double reno = start_segments + alpha * kRtts;
  EXPECT_NEAR(cc.cwnd() / double(kMss), reno, 0.1 * reno) << "RFC 9438 4.3, eq. 4";
}

TEST(Cubic, FastConvergenceLowersWmaxWhenTheWindowShrinks) {
  Cubic cc(kMss);
  uint64_t now = 0;
  while (cc.cwnd() < 100 * kMss) cc.on_ack(kMss, now, 100'000);
  cc.on_loss(cc.cwnd(), now);
  const double first = cc.w_max_segments();
  const double at_second_loss = cc.cwnd() / double(kMss);  // below the first W_max
  cc.on_loss(cc.cwnd(), now);
  EXPECT_NEAR(cc.w_max_segments(), at_second_loss * (1 + Cubic::kBeta) / 2, 0.01);
  EXPECT_LT(cc.w_max_segments(), first);
  cc.on_timeout(cc.cwnd(), now);
  EXPECT_EQ(cc.cwnd(), kMss);
}

TEST(Congestion, NamedAlgorithmsAreWhatTheyAreCalled) {
  EXPECT_EQ(Cubic(kMss).algorithm(), CongestionAlgorithm::cubic);
  EXPECT_EQ(NewReno(kMss).algorithm(), CongestionAlgorithm::newreno);
  EXPECT_EQ(CongestionControl(CongestionAlgorithm::newreno, kMss).mss(), kMss);
}

}  // namespace
}  // namespace weir::tcp
