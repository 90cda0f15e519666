// Scripted tests of the bounds and rate limits that hold against peers that vanish or misbehave:
// the FIN-WAIT-2 timeout, the TIME-WAIT cap, SYN cookies only after an overflow (and for a full
// table), the limit on ACKs to out-of-window segments.
#include <gtest/gtest.h>

#include "dataplane/tcp/syn_cookie.h"
#include "dataplane/tcp/tcp_stack.h"
#include "tests/support/tcp_script.h"

namespace weir::tcp {
namespace {

// Our FIN acknowledged, the peer's never sent: reset and gone after tcp.fin_wait2_timeout_ms of
// silence (60 s by default), counted from the peer's last segment.
TEST_F(TcpScript, FinWait2EndsAfterTheTimeoutWithoutThePeersFin) {
  const uint32_t iss = handshake(kCloser);
  ASSERT_EQ(last_.size(), 1u);
  ASSERT_EQ(last_[0].flags, F | A);
  EXPECT_TRUE(send(kCloser, A, kClientIsn + 1, iss + 2, "", ts(102)).empty()) << "FIN-WAIT-2";
  // Data on the peer's half 30 s in: the bound counts from it.
  advance_to(kStart + 30'000'000);
  send(kCloser, A, kClientIsn + 1, iss + 2, "late", ts(103));
  EXPECT_EQ(advance_to(kStart + 30'100'000).size(), 1u) << "the delayed ACK of the data";
  EXPECT_TRUE(advance_to(kStart + 89'000'000).empty());
  EXPECT_EQ(tcp_->connections(), 1u);
  EXPECT_TRUE(closer_.closed.empty());
  const auto reset = advance_to(kStart + 90'001'000);
  ASSERT_EQ(reset.size(), 1u);
  EXPECT_EQ(reset[0].flags, R);
  EXPECT_EQ(reset[0].seq, iss + 2);
  ASSERT_EQ(closer_.closed.size(), 1u);
  EXPECT_EQ(closer_.closed[0], CloseReason::timeout);
  EXPECT_EQ(counters_.fin_wait2_timeouts.get(), 1u);
  advance_to(kStart + 90'002'000);
  EXPECT_EQ(tcp_->connections(), 0u);
}

// Past the worker's TIME-WAIT cap (2 in these scripts) a connection that would enter TIME-WAIT is
// closed at once, counted; one leaving TIME-WAIT makes room again.
TEST_F(TcpScript, TimeWaitIsCappedPerWorker) {
  const auto close_actively = [&](uint16_t src_port) {
    const uint32_t iss = handshake(kCloser, src_port);
    // The closer's FIN went out with the handshake; the peer ACKs it and sends its own.
    const auto ack = send(kCloser, F | A, kClientIsn + 1, iss + 2, "", ts(102), 65535, src_port);
    ASSERT_EQ(ack.size(), 1u);
    EXPECT_EQ(ack[0].flags, A);
    EXPECT_EQ(ack[0].ack, kClientIsn + 2);
  };
  close_actively(41001);
  close_actively(41002);
  advance_to(kStart + 1000);
  EXPECT_EQ(tcp_->connections(), 2u) << "both in TIME-WAIT";
  EXPECT_EQ(counters_.time_wait_overflows.get(), 0u);
  close_actively(41003);
  advance_to(kStart + 2000);
  EXPECT_EQ(tcp_->connections(), 2u) << "the third closed at once";
  EXPECT_EQ(counters_.time_wait_overflows.get(), 1u);
  ASSERT_EQ(closer_.closed.size(), 3u);
  EXPECT_EQ(closer_.closed[2], CloseReason::fin);
  advance_to(kStart + 2'100'000);
  EXPECT_EQ(tcp_->connections(), 0u) << "TIME-WAIT over";
  close_actively(41004);
  advance_to(kStart + 2'101'000);
  EXPECT_EQ(tcp_->connections(), 1u) << "room again";
  EXPECT_EQ(counters_.time_wait_overflows.get(), 1u);
}

// Cookies are checked only for a while after the listener overflowed (Linux's rule): otherwise a
// bare ACK is answered as on a closed port, even one carrying a cookie that would check out.
TEST_F(TcpScript, ABareAckIsTakenForACookieOnlyAfterARecentOverflow) {
  const auto cookie_ack = [&](uint16_t src_port) {
    const FourTuple tuple{kVip.value(), kClientIp.value(), kDiscard, src_port};
    const Seq cookie = make_cookie(Secret{7}, tuple, Seq(7'000), 1460, now_);
    return send(kDiscard, A, 7'001, (cookie + 1u).raw(), "", {}, 65535, src_port);
  };
  const auto quiet = cookie_ack(40001);
  ASSERT_EQ(quiet.size(), 1u);
  EXPECT_EQ(quiet[0].flags, R) << "no overflow yet: RST, as on a closed port";
  EXPECT_EQ(counters_.syn_cookies_accepted.get(), 0u);
  EXPECT_EQ(counters_.syn_cookies_rejected.get(), 0u);
  // The discard listener's backlog is 1: the second SYN overflows it.
  ASSERT_EQ(send(kDiscard, S, kClientIsn, 0, "", TcpOptions().mss(1460)).size(), 1u);
  ASSERT_EQ(send(kDiscard, S, 5'000, 0, "", TcpOptions().mss(1460), 65535, 40002).size(), 1u);
  EXPECT_EQ(counters_.syn_cookies_sent.get(), 1u);
  EXPECT_TRUE(cookie_ack(40001).empty()) << "after the overflow the same ACK is a connection";
  EXPECT_EQ(counters_.syn_cookies_accepted.get(), 1u);
  EXPECT_EQ(tcp_->connections(), 2u);
  // Long after it (the SYN-RECEIVED connection has timed out meanwhile), RST again.
  advance_to(kStart + kCookieLifetimeUs + 1'000);
  const auto later = cookie_ack(40003);
  ASSERT_EQ(later.size(), 1u);
  EXPECT_EQ(later[0].flags, R);
  EXPECT_EQ(counters_.syn_cookies_accepted.get(), 1u);
}

// With the connection table full, a SYN is answered with a cookie instead of dropped; its ACK
// makes the connection once there is room.
TEST_F(TcpScript, AFullTableAnswersSynsWithCookies) {
  for (uint16_t i = 0; i < 64; ++i) handshake(kEcho, static_cast<uint16_t>(41000 + i));
  ASSERT_EQ(tcp_->connections(), 64u);
  const auto synack = send(kEcho, S, 5'000, 0, "", TcpOptions().mss(1460), 65535, 42000);
  ASSERT_EQ(synack.size(), 1u) << "not dropped";
  EXPECT_EQ(synack[0].flags, S | A);
  EXPECT_EQ(counters_.syn_cookies_sent.get(), 1u);
  EXPECT_EQ(counters_.table_full.get(), 1u);
  EXPECT_EQ(tcp_->connections(), 64u);
  EXPECT_TRUE(send(kEcho, A, 5'001, synack[0].seq + 1, "", {}, 65535, 42000).empty())
      << "still full: the ACK is dropped";
  EXPECT_EQ(counters_.table_full.get(), 2u);
  EXPECT_TRUE(send(kEcho, R, kClientIsn + 1, 0, "", {}, 65535, 41000).empty());
  advance_to(kStart + 1000);
  ASSERT_EQ(tcp_->connections(), 63u);
  EXPECT_TRUE(send(kEcho, A, 5'001, synack[0].seq + 1, "", {}, 65535, 42000).empty());
  EXPECT_EQ(counters_.syn_cookies_accepted.get(), 1u);
  EXPECT_EQ(tcp_->connections(), 64u);
}

// Segments without data outside the window get one ACK per 500 ms per connection (Linux's
// tcp_invalid_ratelimit); one with data is always answered, its sender needs the ACK.
TEST_F(TcpScript, AcksToOutOfWindowSegmentsWithoutDataAreRateLimitedPerConnection) {
  const uint32_t iss = handshake(kEcho);
  const uint32_t beyond = kClientIsn + 1 + 10'000'000;
  const auto first = send(kEcho, A, beyond, iss + 1);
  ASSERT_EQ(first.size(), 1u) << "RFC 9293 3.10.7.4";
  EXPECT_EQ(first[0].flags, A);
  EXPECT_EQ(first[0].ack, kClientIsn + 1);
  EXPECT_TRUE(send(kEcho, A, beyond, iss + 1).empty());
  EXPECT_TRUE(send(kEcho, A, beyond + 1, iss + 1).empty());
  EXPECT_EQ(counters_.out_of_window_acks_suppressed.get(), 2u);
  EXPECT_EQ(send(kEcho, A, kClientIsn + 1 - 100, iss + 1, "old").size(), 1u)
      << "old data is answered whatever the limit";
  // Another connection has its own allowance.
  const uint32_t other_iss = handshake(kEcho, 41001);
  EXPECT_EQ(send(kEcho, A, beyond, other_iss + 1, "", {}, 65535, 41001).size(), 1u);
  advance_to(kStart + 499'000);
  EXPECT_TRUE(send(kEcho, A, beyond, iss + 1).empty());
  advance_to(kStart + 500'000);
  EXPECT_EQ(send(kEcho, A, beyond, iss + 1).size(), 1u) << "the next interval";
  EXPECT_EQ(counters_.out_of_window_acks_suppressed.get(), 3u);
}

// Data we sent was lost and the peer's window then shrank below it (its application waits for our
// ACK to free its own send buffer): our ACK's SEQ must stay inside the peer's window, SND.UNA +
// SND.WND, or the peer discards it and both ends wait on each other for ever (the deadlock the
// burst-loss test bed found; Linux's tcp_acceptable_seq).
TEST_F(TcpScript, AnAcksSequenceNumberStaysInsideThePeersShrunkenWindow) {
  const uint32_t iss = handshake(kEcho);
  // The echo sends 4,200 bytes back; none of them reaches the client.
  std::vector<Out> echoed;
  for (uint32_t i = 0; i < 3; ++i) {
    for (const Out& o :
         send(kEcho, A | P, kClientIsn + 1 + 1400 * i, iss + 1, std::string(1400, 'e'), ts(102)))
      echoed.push_back(o);
  }
  uint32_t snd_max = iss + 1;
  for (const Out& o : echoed) snd_max = std::max(snd_max, o.seq + uint32_t(o.payload.size()));
  ASSERT_GT(snd_max, iss + 1 + 2000) << "the echo's data went out";
  // The client, having received none of it, sends more with a window of 128 bytes (1 << 7).
  send(kEcho, A, kClientIsn + 4201, iss + 1, std::string(50, 'f'), ts(103), 1);
  const auto acks = send(kEcho, A, kClientIsn + 4251, iss + 1, std::string(50, 'g'), ts(103), 1);
  ASSERT_FALSE(acks.empty());
  for (const Out& o : acks) {
    if (!o.payload.empty()) continue;
    EXPECT_EQ(o.ack, kClientIsn + 4301);
    EXPECT_LE(o.seq - (iss + 1), 128u) << "SEQ beyond the peer's window: it would be discarded";
  }
}

}  // namespace
}  // namespace weir::tcp
