// Scripted conformance tests for the worker's TCP, in the manner of packetdrill: inject this
// segment at time t, expect exactly that segment out, on a fake clock. The stack runs behind the
// real layer 2/3 stack over the in-memory PacketIo; segments in are built with the packet
// builders, segments out are decoded field by field (tests/support/tcp_script.h).
#include "dataplane/tcp/tcp_stack.h"

#include <gtest/gtest.h>

#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "tests/support/tcp_script.h"

namespace weir::tcp {
namespace {

TEST_F(TcpKeepaliveScript, ProbesAnIdlePeerAndGivesUpAfterTheLastProbe) {
  const uint32_t iss = handshake(kEcho);
  EXPECT_TRUE(advance_to(kStart + 999'000).empty());
  auto probe = advance_to(kStart + 1'000'000);
  ASSERT_EQ(probe.size(), 1u) << "RFC 1122 4.2.3.6, after the idle time";
  EXPECT_EQ(probe[0].seq, iss) << "SEQ = SND.UNA - 1";
  EXPECT_TRUE(probe[0].payload.empty());
  // The peer answers: the connection lives on, and the next probe waits a whole idle time.
  EXPECT_TRUE(send(kEcho, A, kClientIsn + 1, iss + 1, "", ts(102)).empty());
  EXPECT_TRUE(advance_to(kStart + 1'900'000).empty());
  ASSERT_EQ(advance_to(kStart + 2'000'000).size(), 1u);
  // Silence now: probes every 100 ms, then a RST and the connection is gone.
  EXPECT_EQ(advance_to(kStart + 2'100'000).size(), 1u);
  EXPECT_EQ(advance_to(kStart + 2'200'000).size(), 1u);
  const auto last = advance_to(kStart + 2'300'000);
  ASSERT_EQ(last.size(), 1u);
  EXPECT_EQ(last[0].flags, R);
  EXPECT_EQ(this->counters_.keepalive_probes.get(), 4u);
  advance_to(kStart + 2'301'000);
  EXPECT_EQ(this->tcp_->connections(), 0u);
}

// Records how an actively opened connection ended.
class ConnectOutcome : public ConnectionHandler {
 public:
  void on_data(Connection&, rte_mbuf* data) override { rte_pktmbuf_free(data); }
  void on_closed(Connection&, CloseReason reason) override { closed = reason; }
  std::optional<CloseReason> closed;
};

// An unanswered SYN: retransmitted with backoff until the connect timeout, then the connection
// ends as timed out, long before the retransmission schedule would have given up.
TEST_F(TcpScript, AnUnansweredActiveOpenEndsAtItsHandshakeTimeout) {
  ConnectOutcome outcome;
  const FourTuple tuple{test::kPortIp.value(), kClientIp.value(), 40001, 9};
  ASSERT_NE(tcp_->connect(0, tuple, &outcome, now_, 5'000'000), nullptr);
  const auto first = collect();
  ASSERT_EQ(first.size(), 1u);
  EXPECT_EQ(first[0].flags, S);
  size_t syns = 1;
  for (uint64_t t = kStart + 100'000; t < kStart + 5'000'000; t += 100'000) {
    for (const Out& o : advance_to(t)) syns += o.flags == S ? 1 : 0;
  }
  EXPECT_GE(syns, 3u) << "retransmitted with backoff (1 s, then 2 s)";
  EXPECT_FALSE(outcome.closed) << "not before the timeout";
  EXPECT_EQ(tcp_->connections(), 1u);
  advance_to(kStart + 5'000'000);
  ASSERT_TRUE(outcome.closed);
  EXPECT_EQ(*outcome.closed, CloseReason::timeout);
  EXPECT_EQ(tcp_->connections(), 0u);
  EXPECT_EQ(counters_.timeouts.get(), 1u);
}

// Without a handshake timeout the same SYN lives on through its retransmissions.
TEST_F(TcpScript, AnActiveOpenWithoutATimeoutKeepsRetransmitting) {
  ConnectOutcome outcome;
  const FourTuple tuple{test::kPortIp.value(), kClientIp.value(), 40002, 9};
  Connection* c = tcp_->connect(0, tuple, &outcome, now_);
  ASSERT_NE(c, nullptr);
  for (uint64_t t = kStart + 100'000; t <= kStart + 6'000'000; t += 100'000) advance_to(t);
  EXPECT_FALSE(outcome.closed);
  EXPECT_EQ(tcp_->connections(), 1u);
  tcp_->abort(*c, now_);
  collect();
}

// Sends four bytes as soon as it is connected.
class SendsOnEstablished final : public ConnectionHandler {
 public:
  SendsOnEstablished(TcpStack& tcp, rte_mempool* pool) : tcp_(tcp), pool_(pool) {}
  void on_established(Connection& c) override {
    rte_mbuf* m = rte_pktmbuf_alloc(pool_);
    ASSERT_NE(m, nullptr);
    std::memcpy(rte_pktmbuf_append(m, 4), "data", 4);
    ASSERT_TRUE(tcp_.send(c, m, tcp_.now_us()));
  }
  void on_data(Connection&, rte_mbuf* data) override { rte_pktmbuf_free(data); }

 private:
  TcpStack& tcp_;
  rte_mempool* pool_;
};

// The SYN was lost and sent again; the SYN-ACK that finally came echoes the first SYN's
// timestamp, 1.5 s old. That is no RTT sample (Karn, RFC 6298 3): the data that follows is
// retransmitted after 3 s (RFC 6298 5.7), not after an RTO computed from 1.5 s (4.5 s).
TEST_F(TcpScript, AHandshakeThatTimedOutGivesNoRttSample) {
  SendsOnEstablished sender(*tcp_, port_.pool);
  const FourTuple tuple{kVip.value(), kClientIp.value(), 40003, kDiscard};
  Connection* c = tcp_->connect(0, tuple, &sender, now_);
  ASSERT_NE(c, nullptr);
  const auto syn = collect();
  ASSERT_EQ(syn.size(), 1u);
  ASSERT_TRUE(syn[0].timestamps);
  const auto again = advance_to(kStart + 1'000'000);
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].flags, S);
  advance_to(kStart + 1'500'000);
  const auto data =
      send(40003, S | A, 5'000, syn[0].seq + 1, "",
           TcpOptions().mss(1460).timestamps(77, syn[0].timestamps->value), 65535, kDiscard);
  ASSERT_EQ(data.size(), 2u) << "the data (acknowledging the SYN-ACK), then an ACK";
  EXPECT_EQ(data[0].payload.size(), 4u);
  EXPECT_TRUE(advance_to(kStart + 4'499'000).empty()) << "RTO 3 s, from the data sent at 1.5 s";
  const auto retransmitted = advance_to(kStart + 4'500'000);
  ASSERT_EQ(retransmitted.size(), 1u);
  EXPECT_EQ(retransmitted[0].seq, syn[0].seq + 1);
  EXPECT_EQ(retransmitted[0].payload.size(), 4u);
  tcp_->abort(*c, now_);
  collect();
}

TEST_F(TcpScript, HandshakeNegotiatesMssWindowScaleSackAndTimestamps) {
  const auto out =
      send(kEcho, S, kClientIsn, 0, "",
           TcpOptions().mss(1460).sack_permitted().timestamps(100, 0).nop().window_scale(7));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].flags, S | A);
  EXPECT_EQ(out[0].ack, kClientIsn + 1);
  EXPECT_EQ(out[0].mss, 1460) << "port MTU 1500 - 40";
  EXPECT_EQ(out[0].window_scale, 2) << "128 KiB of receive buffer needs a shift of 2";
  EXPECT_TRUE(out[0].sack_permitted) << "RFC 2018 2: offered because the client offered it";
  ASSERT_TRUE(out[0].timestamps);
  EXPECT_EQ(out[0].timestamps->echo_reply, 100u);
  EXPECT_EQ(out[0].window, 65535) << "a SYN-ACK's window is never scaled (RFC 7323 2.2)";
  EXPECT_EQ(counters_.passive_opens.get(), 1u);
  EXPECT_EQ(tcp_->connections(), 1u);
  const uint32_t iss = out[0].seq;
  EXPECT_TRUE(send(kEcho, A, kClientIsn + 1, iss + 1, "",
                   TcpOptions().nop().nop().timestamps(101, out[0].timestamps->value))
                  .empty());
  EXPECT_EQ(counters_.established.get(), 1u);
}

TEST_F(TcpScript, ALostSynAckIsSentAgainWithTheSameOptions) {
  const auto first =
      send(kEcho, S, kClientIsn, 0, "",
           TcpOptions().mss(1460).sack_permitted().timestamps(100, 0).nop().window_scale(7));
  ASSERT_EQ(first.size(), 1u);
  EXPECT_TRUE(advance_to(kStart + 999'000).empty());
  const auto again = advance_to(kStart + 1'000'000);
  ASSERT_EQ(again.size(), 1u) << "RFC 6298 2.1: the initial RTO, 1 s";
  EXPECT_EQ(again[0].flags, S | A);
  EXPECT_EQ(again[0].seq, first[0].seq);
  EXPECT_EQ(again[0].mss, first[0].mss);
  EXPECT_EQ(again[0].window_scale, first[0].window_scale);
  EXPECT_EQ(again[0].sack_permitted, first[0].sack_permitted);
  EXPECT_TRUE(again[0].timestamps);
  EXPECT_EQ(counters_.retransmitted_segments.get(), 0u)
      << "counted with the handshake, not as data";
}

// The client sent its SYN again (our SYN-ACK was lost): the SYN-ACK goes again at once, echoing
// the new SYN's timestamp, so that the client's RTT sample spans one round trip, not our timer.
TEST_F(TcpScript, ARetransmittedSynGetsTheSynAckAgainAtOnce) {
  const TcpOptions options =
      TcpOptions().mss(1460).sack_permitted().timestamps(100, 0).nop().window_scale(7);
  const auto first = send(kEcho, S, kClientIsn, 0, "", options);
  ASSERT_EQ(first.size(), 1u);
  advance_to(kStart + 900'000);
  const auto again =
      send(kEcho, S, kClientIsn, 0, "",
           TcpOptions().mss(1460).sack_permitted().timestamps(1000, 0).nop().window_scale(7));
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].flags, S | A) << "not a bare ACK, which a client in SYN-SENT ignores";
  EXPECT_EQ(again[0].seq, first[0].seq);
  EXPECT_EQ(again[0].ack, kClientIsn + 1);
  ASSERT_TRUE(again[0].timestamps);
  EXPECT_EQ(again[0].timestamps->echo_reply, 1000u);
  EXPECT_EQ(again[0].window_scale, first[0].window_scale);
  EXPECT_EQ(again[0].sack_permitted, first[0].sack_permitted);
  EXPECT_EQ(tcp_->connections(), 1u);
}

TEST_F(TcpScript, HandshakeWithoutOptionsUsesTheDefaults) {
  const auto out = send(kEcho, S, kClientIsn, 0);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].mss, 1460);
  EXPECT_FALSE(out[0].window_scale) << "no window scale unless the client offered it";
  EXPECT_FALSE(out[0].timestamps);
  const uint32_t iss = out[0].seq;
  ASSERT_TRUE(send(kEcho, A, kClientIsn + 1, iss + 1).empty());
  // Data echoed back in one segment, without options.
  const auto echoed = send(kEcho, P | A, kClientIsn + 1, iss + 1, "hello");
  ASSERT_EQ(echoed.size(), 1u);
  EXPECT_EQ(echoed[0].flags, P | A);
  EXPECT_EQ(echoed[0].seq, iss + 1);
  EXPECT_EQ(echoed[0].ack, kClientIsn + 1 + 5);
  EXPECT_EQ(std::string(echoed[0].payload.begin(), echoed[0].payload.end()), "hello");
  EXPECT_FALSE(echoed[0].timestamps);
  // The SYN carried no MSS option: we send at most 536 bytes a segment (RFC 9293 3.7.1).
  const auto split = send(kEcho, P | A, kClientIsn + 6, iss + 6, std::string(600, 'm'));
  ASSERT_EQ(split.size(), 2u);
  EXPECT_EQ(split[0].payload.size(), 536u);
  EXPECT_EQ(split[1].payload.size(), 64u);
}

TEST_F(TcpScript, EchoCarriesDataAndTheAckTogether) {
  const uint32_t iss = handshake(kEcho);
  const auto out = send(kEcho, P | A, kClientIsn + 1, iss + 1, "ping", ts(102));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].flags, P | A);
  EXPECT_EQ(out[0].seq, iss + 1);
  EXPECT_EQ(out[0].ack, kClientIsn + 5);
  EXPECT_EQ(out[0].payload, std::vector<uint8_t>({'p', 'i', 'n', 'g'}));
  EXPECT_EQ(out[0].timestamps->echo_reply, 102u);
  // The echo leaves while the 4 bytes still count against the receive window (they are consumed
  // once queued), scaled by the shift of 2.
  EXPECT_EQ(out[0].window, (128 * 1024 - 4) >> 2);
}

TEST_F(TcpScript, DelayedAckAfterOneSegmentImmediateAfterTwo) {
  const uint32_t iss = handshake(kDiscard);
  const std::string full(1448, 'x');
  EXPECT_TRUE(send(kDiscard, A, kClientIsn + 1, iss + 1, full, ts(102)).empty())
      << "one segment: delayed";
  EXPECT_TRUE(advance_to(kStart + 39'000).empty());
  const auto delayed = advance_to(kStart + 40'000);
  ASSERT_EQ(delayed.size(), 1u) << "RFC 9293 3.8.6.3: the delayed ACK timer (40 ms)";
  EXPECT_EQ(delayed[0].ack, kClientIsn + 1 + 1448);
  EXPECT_TRUE(send(kDiscard, A, kClientIsn + 1 + 1448, iss + 1, full, ts(103)).empty());
  const auto second = send(kDiscard, A, kClientIsn + 1 + 2 * 1448, iss + 1, full, ts(104));
  ASSERT_EQ(second.size(), 1u) << "every second full segment is acknowledged at once";
  EXPECT_EQ(second[0].ack, kClientIsn + 1 + 3 * 1448);
}

TEST_F(TcpScript, RetransmissionTimeoutBacksOff) {
  const uint32_t iss = handshake(kEcho);
  ASSERT_EQ(send(kEcho, P | A, kClientIsn + 1, iss + 1, "data", ts(102)).size(), 1u);
  // The handshake's timestamp echo measured an RTT of 0 ms: RTO = min_rto (200 ms).
  EXPECT_TRUE(advance_to(kStart + 199'000).empty());
  auto out = advance_to(kStart + 200'000);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].seq, iss + 1);
  EXPECT_EQ(out[0].payload.size(), 4u);
  EXPECT_TRUE(advance_to(kStart + 599'000).empty()) << "backed off to 400 ms";
  out = advance_to(kStart + 600'000);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].seq, iss + 1);
  EXPECT_EQ(counters_.rto_expirations.get(), 2u);
  EXPECT_EQ(counters_.retransmitted_segments.get(), 2u);
  // The ACK ends it: no more retransmissions.
  EXPECT_TRUE(send(kEcho, A, kClientIsn + 5, iss + 5, "", ts(103)).empty());
  EXPECT_TRUE(advance_to(kStart + 5'000'000).empty());
}

TEST_F(TcpScript, OnlyAnExactRstResetsAnInWindowOneGetsAChallengeAck) {
  const uint32_t iss = handshake(kEcho);
  const auto challenge = send(kEcho, R, kClientIsn + 1 + 100, 0);
  ASSERT_EQ(challenge.size(), 1u) << "RFC 5961 3.2";
  EXPECT_EQ(challenge[0].flags, A);
  EXPECT_EQ(challenge[0].ack, kClientIsn + 1);
  EXPECT_EQ(counters_.challenge_acks.get(), 1u);
  EXPECT_EQ(tcp_->connections(), 1u);
  EXPECT_TRUE(send(kEcho, R, kClientIsn + 1 + 10'000'000, 0).empty())
      << "outside the window: ignored";
  EXPECT_TRUE(send(kEcho, R, kClientIsn + 1, 0).empty());
  EXPECT_EQ(counters_.resets_received.get(), 1u);
  advance_to(kStart + 1000);
  EXPECT_EQ(tcp_->connections(), 0u);
  (void)iss;
}

TEST_F(TcpScript, ChallengeAcksAreRateLimitedPerConnection) {
  handshake(kEcho);
  size_t acks = 0;
  for (int i = 0; i < 12; ++i) acks += send(kEcho, R, kClientIsn + 1 + 100 + i, 0).size();
  EXPECT_EQ(acks, 10u) << "RFC 5961 7: at most 10 a second";
  EXPECT_EQ(counters_.challenge_acks_suppressed.get(), 2u);
  advance_to(kStart + 1'000'000);
  EXPECT_EQ(send(kEcho, R, kClientIsn + 1 + 200, 0).size(), 1u) << "a new second, a new allowance";
  EXPECT_EQ(tcp_->connections(), 1u) << "none of them reset the connection";
}

TEST_F(TcpScript, SynOnAnEstablishedConnectionGetsAChallengeAck) {
  const uint32_t iss = handshake(kEcho);
  const auto out = send(kEcho, S, kClientIsn + 5000, 0);
  ASSERT_EQ(out.size(), 1u) << "RFC 5961 4.2";
  EXPECT_EQ(out[0].flags, A);
  EXPECT_EQ(out[0].seq, iss + 1);
  EXPECT_EQ(out[0].ack, kClientIsn + 1);
  EXPECT_EQ(tcp_->connections(), 1u);
}

TEST_F(TcpScript, ClosedPortsAnswerWithReset) {
  auto out = send(4444, S, kClientIsn, 0);
  ASSERT_EQ(out.size(), 1u) << "RFC 9293 3.10.7.1";
  EXPECT_EQ(out[0].flags, R | A);
  EXPECT_EQ(out[0].seq, 0u);
  EXPECT_EQ(out[0].ack, kClientIsn + 1);
  out = send(4444, A, kClientIsn, 777);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].flags, R);
  EXPECT_EQ(out[0].seq, 777u);
  EXPECT_TRUE(send(4444, R, kClientIsn, 0).empty()) << "never a RST for a RST";
}

TEST_F(TcpScript, AnAckForDataNeverSentIsDroppedAndAnswered) {
  const uint32_t iss = handshake(kDiscard);
  const auto out = send(kDiscard, A, kClientIsn + 1, iss + 100'000, "", ts(102));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].flags, A);
  EXPECT_EQ(counters_.acks_for_unsent_data.get(), 1u);
}

TEST_F(TcpScript, PassiveCloseThroughLastAck) {
  const uint32_t iss = handshake(kEcho);
  // The client's FIN: ACKed, and the echo closes its side too.
  const auto out = send(kEcho, F | A, kClientIsn + 1, iss + 1, "", ts(102));
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].flags, A);
  EXPECT_EQ(out[0].ack, kClientIsn + 2);
  EXPECT_EQ(out[1].flags, F | A);
  EXPECT_EQ(out[1].seq, iss + 1);
  EXPECT_TRUE(send(kEcho, A, kClientIsn + 2, iss + 2, "", ts(103)).empty());
  advance_to(kStart + 1000);
  EXPECT_EQ(tcp_->connections(), 0u) << "LAST-ACK -> CLOSED, no TIME-WAIT on the passive side";
}

TEST_F(TcpScript, HalfCloseDataKeepsFlowingAfterThePeersFin) {
  const uint32_t iss = handshake(kEcho);
  // Data and FIN together: the echo sends the data back, then its own FIN.
  const auto out = send(kEcho, F | P | A, kClientIsn + 1, iss + 1, "bye", ts(102));
  ASSERT_GE(out.size(), 1u);
  const Out& last = out.back();
  EXPECT_EQ(last.flags & F, F);
  EXPECT_EQ(last.seq + last.payload.size(), iss + 1 + 3);
  EXPECT_EQ(last.ack, kClientIsn + 1 + 3 + 1);
}

TEST_F(TcpScript, ActiveCloseThroughTimeWait) {
  const uint32_t iss = handshake(kCloser);
  ASSERT_EQ(last_.size(), 1u);
  EXPECT_EQ(last_[0].flags, F | A) << "the closer's FIN";
  EXPECT_EQ(last_[0].seq, iss + 1);
  // Data still flows toward us after our FIN (half-close, RFC 9293 3.10.4).
  EXPECT_TRUE(send(kCloser, A, kClientIsn + 1, iss + 2, "more", ts(102)).empty());
  const auto fin = send(kCloser, F | A, kClientIsn + 5, iss + 2, "", ts(103));
  ASSERT_EQ(fin.size(), 1u);
  EXPECT_EQ(fin[0].flags, A);
  EXPECT_EQ(fin[0].ack, kClientIsn + 6);
  ASSERT_EQ(closer_.closed.size(), 1u);
  EXPECT_EQ(closer_.closed[0], CloseReason::fin);
  // TIME-WAIT: a retransmitted FIN is ACKed again; the connection lingers for time_wait_ms.
  const auto again = send(kCloser, F | A, kClientIsn + 5, iss + 2, "", ts(104));
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].ack, kClientIsn + 6);
  advance_to(kStart + 1'900'000);
  EXPECT_EQ(tcp_->connections(), 1u);
  advance_to(kStart + 2'100'000);
  EXPECT_EQ(tcp_->connections(), 0u);
}

TEST_F(TcpScript, SynCookiesWhenTheBacklogIsFull) {
  // The discard listener has a backlog of 1: the first SYN takes it, the second gets a cookie.
  ASSERT_EQ(send(kDiscard, S, kClientIsn, 0, "", TcpOptions().mss(1460)).size(), 1u);
  const auto cookie =
      send(kDiscard, S, 5'000, 0, "",
           TcpOptions().mss(1400).timestamps(50, 0).nop().window_scale(6), 65535, 40001);
  ASSERT_EQ(cookie.size(), 1u);
  EXPECT_EQ(counters_.syn_cookies_sent.get(), 1u);
  EXPECT_EQ(tcp_->connections(), 1u) << "no state for the cookie's SYN";
  EXPECT_EQ(cookie[0].mss, 1460)
      << "a SYN-ACK offers our own MSS; the cookie keeps the client's (1300)";
  const uint32_t tsval = cookie[0].timestamps->value;
  // The third segment brings the cookie back: a connection, with window scale from the echo.
  EXPECT_TRUE(send(kDiscard, A, 5'001, cookie[0].seq + 1, "",
                   TcpOptions().nop().nop().timestamps(51, tsval), 65535, 40001)
                  .empty());
  EXPECT_EQ(counters_.syn_cookies_accepted.get(), 1u);
  EXPECT_EQ(tcp_->connections(), 2u);
  // A forged cookie is refused with a RST.
  const auto forged = send(kDiscard, A, 9'001, cookie[0].seq + 1, "", {}, 65535, 40002);
  ASSERT_EQ(forged.size(), 1u);
  EXPECT_EQ(forged[0].flags, R);
}

TEST_F(TcpScript, FragmentationNeededShrinksTheMssAndResends) {
  const uint32_t iss = handshake(kEcho);
  const auto echoed = send(kEcho, P | A, kClientIsn + 1, iss + 1, std::string(1400, 'q'), ts(102));
  ASSERT_EQ(echoed.size(), 1u);
  ASSERT_EQ(echoed[0].payload.size(), 1400u);
  // A router on the way back has a 1000-byte MTU (RFC 1191): ICMP quoting our segment.
  const Frame ours = Eth(kPortMac, kClientMac)
                         .IPv4(kVip, kClientIp)
                         .TCP(kEcho, kClientPort, TcpFlag::ack, iss + 1, 0)
                         .build();
  const Frame quote(ours.begin() + 14, ours.begin() + 14 + 28);
  const Ipv4Address router = Ipv4Address::from_octets(10, 77, 0, 254);
  const auto resent = [&] {
    inject(Eth(kClientMac, kPortMac).IPv4(router, kVip).ICMP(3, 4, 1000).payload(quote).build());
    return collect();
  }();
  EXPECT_EQ(counters_.pmtu_reductions.get(), 1u);
  ASSERT_GE(resent.size(), 2u) << "the lost data goes again at once, in smaller segments";
  EXPECT_EQ(resent[0].seq, iss + 1);
  EXPECT_EQ(resent[0].payload.size(), 1000u - 40 - 12);
  EXPECT_EQ(resent[1].payload.size(), 1400u - (1000 - 40 - 12));
  // A message quoting a sequence number not in flight is ignored (RFC 5927 4.1).
  const Frame stale = Eth(kPortMac, kClientMac)
                          .IPv4(kVip, kClientIp)
                          .TCP(kEcho, kClientPort, TcpFlag::ack, iss + 100'000, 0)
                          .build();
  inject(Eth(kClientMac, kPortMac)
             .IPv4(router, kVip)
             .ICMP(3, 4, 600)
             .payload(Frame(stale.begin() + 14, stale.begin() + 42))
             .build());
  EXPECT_TRUE(collect().empty());
  EXPECT_EQ(counters_.pmtu_reductions.get(), 1u);
}

TEST_F(TcpScript, PawsDropsSegmentsWithOldTimestamps) {
  const uint32_t iss = handshake(kDiscard);
  EXPECT_TRUE(send(kDiscard, A, kClientIsn + 1, iss + 1, "new", ts(200)).empty());
  const auto out = send(kDiscard, A, kClientIsn + 4, iss + 1, "old", ts(150));
  ASSERT_EQ(out.size(), 1u) << "RFC 7323 5.3";
  EXPECT_EQ(out[0].ack, kClientIsn + 4) << "the stale segment's data is not taken";
  EXPECT_EQ(counters_.paws_drops.get(), 1u);
}

TEST_F(TcpScript, OutOfOrderSegmentsWaitForTheHoleThenFollowIt) {
  const uint32_t iss = handshake(kDiscard);
  const auto dup =
      send(kDiscard, A, kClientIsn + 1 + 1448, iss + 1, std::string(100, 'y'), ts(102));
  ASSERT_EQ(dup.size(), 1u) << "an immediate duplicate ACK (RFC 5681 4.2)";
  EXPECT_EQ(dup[0].ack, kClientIsn + 1);
  EXPECT_EQ(counters_.out_of_order_drops.get(), 0u) << "kept, not dropped";
  const auto filled = send(kDiscard, A, kClientIsn + 1, iss + 1, std::string(1448, 'x'), ts(103));
  ASSERT_EQ(filled.size(), 1u) << "the hole is filled: an immediate ACK for everything";
  EXPECT_EQ(filled[0].ack, kClientIsn + 1 + 1448 + 100);
}

TEST_F(TcpScript, DuplicateAcksReportTheOutOfOrderDataAsSackBlocks) {
  const uint32_t iss = handshake(kDiscard);
  const uint32_t base = kClientIsn + 1;
  auto out = send(kDiscard, A, base + 1448, iss + 1, std::string(100, 'y'), ts(102));
  ASSERT_EQ(out.size(), 1u);
  ASSERT_EQ(out[0].sack.size(), 1u) << "RFC 2018 3";
  EXPECT_EQ(out[0].sack[0], (net::SackBlock{base + 1448, base + 1548}));
  out = send(kDiscard, A, base + 3000, iss + 1, std::string(50, 'z'), ts(103));
  ASSERT_EQ(out.size(), 1u);
  ASSERT_EQ(out[0].sack.size(), 2u);
  EXPECT_EQ(out[0].sack[0], (net::SackBlock{base + 3000, base + 3050}))
      << "the newest block first (RFC 2018 4)";
  EXPECT_EQ(out[0].sack[1], (net::SackBlock{base + 1448, base + 1548}));
  // Adjacent data joins its block.
  out = send(kDiscard, A, base + 1548, iss + 1, std::string(52, 'w'), ts(104));
  ASSERT_EQ(out.size(), 1u);
  ASSERT_EQ(out[0].sack.size(), 2u);
  EXPECT_EQ(out[0].sack[0], (net::SackBlock{base + 1448, base + 1600}));
  // The hole fills: everything is acknowledged and nothing is left to report.
  out = send(kDiscard, A, base, iss + 1, std::string(1448, 'x'), ts(105));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].ack, base + 1600);
  ASSERT_EQ(out[0].sack.size(), 1u) << "the block beyond the next hole remains";
  EXPECT_EQ(out[0].sack[0], (net::SackBlock{base + 3000, base + 3050}));
}

TEST_F(TcpScript, TheOutOfOrderQueueIsBoundedPerConnection) {
  const uint32_t iss = handshake(kDiscard);
  // Sixty-five segments beyond a hole: sixty-four are kept, the last is dropped and counted.
  for (uint32_t i = 0; i < 65; ++i) {
    send(kDiscard, A, kClientIsn + 1 + 100 * (i + 1), iss + 1, std::string(10, 'z'), ts(102));
  }
  EXPECT_EQ(counters_.out_of_order_drops.get(), 1u);
  const auto filled = send(kDiscard, A, kClientIsn + 1, iss + 1, std::string(100, 'x'), ts(103));
  ASSERT_EQ(filled.size(), 1u);
  EXPECT_EQ(filled[0].ack, kClientIsn + 1 + 100 + 10)
      << "only the segment right after the hole joins";
}

TEST_F(TcpScript, ZeroWindowIsProbed) {
  const uint32_t iss = handshake(kEcho);
  // The client's window closes; its data still arrives and must wait to be echoed.
  EXPECT_TRUE(send(kEcho, P | A, kClientIsn + 1, iss + 1, "wait", ts(102), 0).empty());
  const auto ack = advance_to(kStart + 40'000);
  ASSERT_EQ(ack.size(), 1u) << "the delayed ACK for the client's data";
  EXPECT_TRUE(ack[0].payload.empty());
  EXPECT_EQ(ack[0].ack, kClientIsn + 5);
  EXPECT_TRUE(advance_to(kStart + 199'000).empty()) << "nothing may be sent into a zero window";
  const auto probe = advance_to(kStart + 200'000);
  ASSERT_EQ(probe.size(), 1u) << "the persist timer (RFC 9293 3.8.6.1)";
  EXPECT_EQ(probe[0].payload.size(), 1u);
  EXPECT_EQ(probe[0].seq, iss + 1);
  // The window opens: the rest follows.
  const auto rest = send(kEcho, A, kClientIsn + 5, iss + 2, "", ts(103), 1000);
  ASSERT_EQ(rest.size(), 1u);
  EXPECT_EQ(rest[0].seq, iss + 2);
  EXPECT_EQ(std::string(rest[0].payload.begin(), rest[0].payload.end()), "ait");
}

TEST_F(TcpScript, ThreeDuplicateAcksTriggerFastRetransmit) {
  const uint32_t iss = handshake(kEcho);
  // Four segments of data to echo: the client's window lets all of them go.
  uint32_t seq = kClientIsn + 1;
  size_t sent = 0;
  for (int i = 0; i < 4; ++i) {
    sent += send(kEcho, A, seq, iss + 1, std::string(1448, char('a' + i)), ts(102)).size();
    seq += 1448;
  }
  ASSERT_GE(sent, 4u);
  // Three duplicate ACKs for the first byte (the first segment was lost).
  EXPECT_TRUE(send(kEcho, A, seq, iss + 1, "", ts(103)).empty());
  EXPECT_TRUE(send(kEcho, A, seq, iss + 1, "", ts(104)).empty());
  EXPECT_EQ(counters_.fast_retransmits.get(), 0u);
  const auto out = send(kEcho, A, seq, iss + 1, "", ts(105));
  EXPECT_EQ(counters_.fast_retransmits.get(), 1u);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].seq, iss + 1);
  EXPECT_EQ(out[0].payload, std::vector<uint8_t>(1448, 'a'));
}

TEST_F(TcpScript, SackScoreboardRetransmitsEachLostHoleWithoutWaitingForPartialAcks) {
  const uint32_t iss = handshake(kEcho);
  // Eight full segments to echo; the initial window lets all of them go.
  uint32_t seq = kClientIsn + 1;
  for (int i = 0; i < 8; ++i) {
    ASSERT_FALSE(send(kEcho, A, seq, iss + 1, std::string(1448, char('a' + i)), ts(102)).empty());
    seq += 1448;
  }
  auto at = [&](uint32_t n) { return iss + 1 + n * 1448; };
  auto sack = [&](uint32_t value, std::vector<net::SackBlock> blocks) {
    return ts(value).nop().nop().sack(blocks);
  };
  // Segments 1 and 4 were lost. The client acknowledges 0 and reports what it holds beyond.
  EXPECT_TRUE(send(kEcho, A, seq, at(1), "", sack(103, {{at(2), at(3)}})).empty());
  EXPECT_TRUE(send(kEcho, A, seq, at(1), "", sack(104, {{at(2), at(4)}})).empty())
      << "two segments SACKed above the hole: not yet lost (RFC 6675 IsLost)";
  auto out = send(kEcho, A, seq, at(1), "", sack(105, {{at(5), at(6)}, {at(2), at(4)}}));
  ASSERT_EQ(out.size(), 1u) << "three SACKed segments above it: the hole is lost, at the "
                               "second duplicate ACK";
  EXPECT_EQ(out[0].seq, at(1));
  EXPECT_EQ(out[0].payload, std::vector<uint8_t>(1448, 'b'));
  EXPECT_EQ(counters_.fast_retransmits.get(), 1u);
  EXPECT_TRUE(send(kEcho, A, seq, at(1), "", sack(106, {{at(5), at(7)}, {at(2), at(4)}})).empty())
      << "hole 4 has two SACKed segments above it";
  out = send(kEcho, A, seq, at(1), "", sack(107, {{at(5), at(8)}, {at(2), at(4)}}));
  ASSERT_EQ(out.size(), 1u) << "the second hole goes before any partial ACK (NewReno would wait)";
  EXPECT_EQ(out[0].seq, at(4));
  EXPECT_EQ(out[0].payload, std::vector<uint8_t>(1448, 'e'));
  // Both repairs arrive: everything is acknowledged and nothing else is sent again.
  EXPECT_TRUE(send(kEcho, A, seq, at(8), "", ts(108)).empty());
  EXPECT_TRUE(advance_to(kStart + 5'000'000).empty()) << "no retransmission timeout follows";
  EXPECT_EQ(counters_.retransmitted_segments.get(), 2u);
  EXPECT_EQ(counters_.sack_retransmits.get(), 1u) << "the second from the scoreboard";
  EXPECT_EQ(counters_.rto_expirations.get(), 0u);
}

TEST_F(TcpScript, AfterATimeoutSackedDataIsSentAgain) {
  const uint32_t iss = handshake(kEcho);
  uint32_t seq = kClientIsn + 1;
  for (int i = 0; i < 3; ++i) {
    ASSERT_FALSE(send(kEcho, A, seq, iss + 1, std::string(1448, char('a' + i)), ts(102)).empty());
    seq += 1448;
  }
  auto at = [&](uint32_t n) { return iss + 1 + n * 1448; };
  EXPECT_TRUE(send(kEcho, A, seq, at(0), "", ts(103).nop().nop().sack({{at(1), at(3)}})).empty());
  // The reordering window passes: the hole is lost and goes again (see the tail-loss test)...
  const auto repair = advance_to(kStart + 100'000);
  ASSERT_EQ(repair.size(), 1u);
  EXPECT_EQ(repair[0].seq, at(0));
  // ...and is lost again. RFC 2018 8: the receiver may renege, so after the timeout the sender
  // trusts no SACK block and goes back to SND.UNA; the segment after the hole is sent again when
  // the ACK for it comes.
  const auto first = advance_to(kStart + 400'000);
  ASSERT_EQ(first.size(), 1u);
  EXPECT_EQ(first[0].seq, at(0));
  EXPECT_EQ(counters_.rto_expirations.get(), 1u);
  const auto next = send(kEcho, A, seq, at(1), "", ts(104));
  ASSERT_FALSE(next.empty());
  EXPECT_EQ(next[0].seq, at(1)) << "SACKed before the timeout, sent again after it";
}

// The loss-recovery scripts: a flight of full segments echoed back, 'a', 'b', ... in turn.
class TcpLossScript : public TcpScript {
 protected:
  void SetUp() override {
    iss_ = handshake(kEcho);
    next_ = kClientIsn + 1;
  }
  // The client sends `segments` full segments; the echo answers each (the window lets them go).
  void echo_flight(int segments) {
    for (int i = 0; i < segments; ++i) {
      ASSERT_FALSE(
          send(kEcho, A, next_, iss_ + 1, std::string(1448, char('a' + i)), ts(102)).empty());
      next_ += 1448;
    }
  }
  // The first byte of the echo's n-th segment.
  uint32_t at(uint32_t n) const { return iss_ + 1 + n * 1448; }
  // An ACK from the client: cumulative `ack`, with SACK blocks.
  std::vector<Out> ack(uint32_t ack, uint32_t tsval, std::vector<net::SackBlock> blocks = {}) {
    TcpOptions options = ts(tsval);
    if (!blocks.empty()) options = options.nop().nop().sack(blocks);
    return send(kEcho, A, next_, ack, "", options);
  }
  uint32_t iss_ = 0;
  uint32_t next_ = 0;
};

// Burst loss takes a flight's whole tail: nothing arrives above the hole, so nothing SACKs it,
// and RFC 6675 alone waits for the retransmission timeout (200 ms at least, seconds under a noisy
// RTT). A tail loss probe (RFC 8985 7) resends the last segment after about two round trips; its
// SACK shows the hole, which the reordering window then declares lost (RFC 8985 6).
TEST_F(TcpLossScript, ATailLostWholeIsRepairedByAProbeLongBeforeTheTimeout) {
  echo_flight(4);
  // Only the first echoed segment arrives.
  EXPECT_TRUE(ack(at(1), 103).empty());
  EXPECT_TRUE(advance_to(kStart + 5'000).empty()) << "not before two round trips";
  const auto probe = advance_to(kStart + 50'000);
  ASSERT_EQ(probe.size(), 1u);
  EXPECT_EQ(probe[0].seq, at(3)) << "the highest segment sent";
  EXPECT_EQ(probe[0].payload, std::vector<uint8_t>(1448, 'd'));
  EXPECT_EQ(counters_.tail_loss_probes.get(), 1u);
  // The probe arrives; its ACK reports the two segments still missing below it.
  EXPECT_TRUE(ack(at(1), 104, {{at(3), at(4)}}).empty())
      << "one segment SACKed above the holes: not lost by RFC 6675's count";
  const auto repairs = advance_to(kStart + 100'000);
  ASSERT_EQ(repairs.size(), 2u) << "both holes, once the reordering window passed";
  EXPECT_EQ(repairs[0].seq, at(1));
  EXPECT_EQ(repairs[1].seq, at(2));
  EXPECT_EQ(counters_.losses_marked_by_time.get(), 1u);
  EXPECT_TRUE(ack(at(4), 105).empty());
  EXPECT_TRUE(advance_to(kStart + 5'000'000).empty());
  EXPECT_EQ(counters_.rto_expirations.get(), 0u) << "no timeout was needed";
  EXPECT_EQ(counters_.tail_loss_probes.get(), 1u) << "one probe per episode";
}

// Without SACK a probe's ACK could not show what is missing: no probe, the RTO repairs.
TEST_F(TcpScript, NoTailLossProbeWithoutSack) {
  const auto synack = send(kEcho, S, kClientIsn, 0, "", TcpOptions().mss(1460), 65535);
  ASSERT_EQ(synack.size(), 1u);
  const uint32_t iss = synack[0].seq;
  EXPECT_TRUE(send(kEcho, A, kClientIsn + 1, iss + 1, "").empty());
  uint32_t seq = kClientIsn + 1;
  for (int i = 0; i < 4; ++i) {
    ASSERT_FALSE(send(kEcho, A, seq, iss + 1, std::string(1460, char('a' + i))).empty());
    seq += 1460;
  }
  EXPECT_TRUE(send(kEcho, A, seq, iss + 1 + 1460, "").empty());
  EXPECT_TRUE(advance_to(kStart + 150'000).empty());
  EXPECT_EQ(counters_.tail_loss_probes.get(), 0u);
}

// A partial ACK in SACK recovery acknowledges a retransmission, sent after everything still
// missing below the recovery point: all of it is lost, however little is SACKed above it, and goes
// at once rather than after a reordering window or a timeout.
TEST_F(TcpLossScript, APartialAckInSackRecoveryResendsTheOtherHolesAtOnce) {
  echo_flight(8);
  // Segments 0, 5 and 6 lost. Four SACKed above 0: lost by RFC 6675, recovery starts.
  auto out = ack(at(0), 103, {{at(1), at(5)}});
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].seq, at(0));
  // Segment 7 arrives: only one SACKed above 5 and 6, not lost by the count.
  EXPECT_TRUE(ack(at(0), 104, {{at(7), at(8)}, {at(1), at(5)}}).empty());
  // The repair of 0 arrives: a partial ACK.
  out = ack(at(5), 105, {{at(7), at(8)}});
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].seq, at(5));
  EXPECT_EQ(out[1].seq, at(6));
  EXPECT_EQ(counters_.losses_marked_by_time.get(), 0u) << "no window was waited for";
  EXPECT_TRUE(ack(at(8), 106).empty());
  EXPECT_TRUE(advance_to(kStart + 5'000'000).empty());
  EXPECT_EQ(counters_.rto_expirations.get(), 0u);
}

// A repair lost in its turn: data SACKed more than a round trip after the retransmission left,
// while the retransmitted hole is still missing, shows it lost; it goes again at once instead of
// at the retransmission timeout (RFC 8985's rule, in time form).
TEST_F(TcpLossScript, ALostRetransmissionIsSentAgainWithoutWaitingForTheTimeout) {
  echo_flight(8);
  auto out = ack(at(0), 103, {{at(1), at(5)}});
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].seq, at(0)) << "fast retransmit";
  EXPECT_TRUE(advance_to(kStart + 50'000).empty());
  // Segment 6 arrives 50 ms later (many round trips here); the repair of 0 has not.
  out = ack(at(0), 104, {{at(6), at(7)}, {at(1), at(5)}});
  ASSERT_FALSE(out.empty());
  EXPECT_EQ(out[0].seq, at(0)) << "the lost repair, again";
  EXPECT_EQ(out[0].payload, std::vector<uint8_t>(1448, 'a'));
  EXPECT_EQ(counters_.lost_retransmissions.get(), 1u);
  EXPECT_EQ(counters_.rto_expirations.get(), 0u);
  // A SACK that comes right after a repair says nothing about it.
  ack(at(0), 105, {{at(6), at(8)}, {at(1), at(5)}});
  EXPECT_EQ(counters_.lost_retransmissions.get(), 1u);
}

}  // namespace
}  // namespace weir::tcp
