// TcpStack: segment arrival (RFC 9293 3.10.7). Parsing, LISTEN (and SYN cookies), SYN-SENT, the
// synchronized states: acceptability, RST, SYN, ACK processing with loss detection (duplicate ACKs,
// the SACK scoreboard), in-order and out-of-order data, FIN. And ICMP errors about a connection.
#include "dataplane/tcp/tcp_stack.h"

#include <algorithm>

#include "common/wire/byte_order.h"
#include "dataplane/net/ipv4.h"
#include "dataplane/net/tcp.h"

namespace weir::tcp {

using net::TcpFlag;

// The net::Stack has checked the IPv4 header (no options, lengths, checksum) and the TCP
// checksum; what is left is the TCP header's own consistency and its options.
void TcpStack::tcp_segment(PortIndex port, rte_mbuf* packet, uint64_t now_us) {
  last_now_us_ = now_us;
  counters_.segments_in.add();
  Segment s;
  const uint8_t* ip = rte_pktmbuf_mtod(packet, const uint8_t*);
  const auto ip_view = net::ConstIpv4View::parse({ip, rte_pktmbuf_data_len(packet)});
  const uint32_t ip_header = static_cast<uint32_t>(ip_view->header_length());
  const std::span<const uint8_t> segment(ip + ip_header, ip_view->total_length() - ip_header);
  const auto tcp = net::ConstTcpView::parse(segment);
  if (!tcp || !tcp->header_fits()) {
    counters_.bad_options.add();
    rte_pktmbuf_free(packet);
    return;
  }
  s.tuple = FourTuple{ip_view->destination().value(), ip_view->source().value(),
                      tcp->destination_port(), tcp->source_port()};
  s.seq = Seq(tcp->sequence_number());
  s.ack = Seq(tcp->acknowledgment_number());
  s.flags = tcp->flags();
  s.window = tcp->window();
  s.payload_offset = ip_header + static_cast<uint32_t>(tcp->header_length());
  s.length = static_cast<uint32_t>(segment.size() - tcp->header_length());
  net::TcpOptionReader options(*tcp->options());
  while (auto option = options.next()) {
    switch (option->kind()) {
      case net::TcpOptionKind::mss:
        s.mss = option->mss();
        break;
      case net::TcpOptionKind::window_scale:
        s.window_scale = option->window_scale();
        break;
      case net::TcpOptionKind::sack_permitted:
        s.sack_permitted = true;
        break;
      case net::TcpOptionKind::timestamps:
        s.timestamps = option->timestamps();
        break;
      case net::TcpOptionKind::sack:
        s.sack_blocks = static_cast<uint8_t>(option->sack_block_count());
        for (uint8_t i = 0; i < s.sack_blocks; ++i) s.sack[i] = *option->sack_block(i);
        break;
      default:
        break;
    }
  }
  if (options.error() != net::TcpOptionError::none) {
    // RFC 9293 3.1: a malformed option list; the segment is dropped, not guessed at.
    counters_.bad_options.add();
    rte_pktmbuf_free(packet);
    return;
  }

  if (const auto slot = table_.find(s.tuple)) {
    Connection& c = *slots_[*slot];
    on_segment(c, s, packet, now_us);
    account(c);
    return;
  }
  if (miss_handler_ != nullptr &&
      miss_handler_->divert(port, s.tuple, s.flags, completes_cookie(s, now_us), packet, now_us)) {
    return;
  }
  if (Listener* listener = find_listener(s.tuple.local_address, s.tuple.local_port)) {
    on_listen(*listener, port, s, packet, now_us);
    return;
  }
  // RFC 9293 3.10.7.1, CLOSED: answer anything but a RST with a RST.
  if (!s.has(TcpFlag::rst)) {
    if (s.has(TcpFlag::ack)) {
      send_reset(port, s.tuple, s.ack, Seq(0), false, now_us);
    } else {
      send_reset(port, s.tuple, Seq(0), s.seq + s.seg_len(), true, now_us);
    }
  }
  rte_pktmbuf_free(packet);
}

void TcpStack::tcp_icmp_error(PortIndex, uint8_t type, uint8_t code, rte_mbuf* packet,
                              uint64_t now_us) {
  counters_.icmp_errors.add();
  // The message (RFC 792): 8 bytes of ICMP header, then the quoted IPv4 header and at least the
  // first 8 bytes of the TCP header we sent (the net::Stack checked that much is there).
  const uint8_t* p = rte_pktmbuf_mtod(packet, const uint8_t*);
  const uint32_t quoted_ip = static_cast<uint32_t>(p[8] & 0x0f) * 4;
  const uint8_t* quoted_tcp = p + 8 + quoted_ip;
  const FourTuple tuple{wire::load_be32(p + 8 + 12), wire::load_be32(p + 8 + 16),
                        wire::load_be16(quoted_tcp), wire::load_be16(quoted_tcp + 2)};
  const Seq quoted_seq(wire::load_be32(quoted_tcp + 4));
  const uint16_t next_hop_mtu = wire::load_be16(p + 6);
  rte_pktmbuf_free(packet);
  const auto slot = table_.find(tuple);
  if (!slot) return;
  Connection& c = *slots_[*slot];
  // RFC 5927 4.1: only a message quoting a sequence number in flight (SND.UNA <= SEQ < SND.MAX)
  // can be about this connection; anything else is stale or forged.
  if (!(c.snd_.una <= quoted_seq && quoted_seq < c.snd_.max)) return;
  constexpr uint8_t kUnreachable = 3;
  if (type == kUnreachable && code == 4) {
    // RFC 1191: fragmentation needed and DF set. The segments above the path MTU are lost:
    // shrink the MSS and send again from SND.UNA.
    const uint32_t mss = next_hop_mtu > kIpTcpHeaders ? next_hop_mtu - kIpTcpHeaders : 0;
    if (mss >= settings_.min_mss && mss < c.mss_) {
      c.mss_ = static_cast<uint16_t>(mss);
      counters_.pmtu_reductions.add();
      if (synchronized(c.state_)) {
        c.snd_.nxt = c.snd_.una;
        output(c, now_us);
      }
    }
    return;
  }
  if (c.state_ == State::syn_sent && type == kUnreachable && (code == 2 || code == 3)) {
    // RFC 1122 4.2.3.9: a hard error (protocol or port unreachable) may abort a connection
    // that is still opening.
    close(c, CloseReason::refused);
  }
  // Other errors are soft (RFC 5927 4.1, RFC 1122 4.2.3.9): TCP's own timers decide.
}

bool TcpStack::completes_cookie(const Segment& s, uint64_t now_us) {
  if (!s.has(TcpFlag::ack) || s.has(TcpFlag::syn) || s.has(TcpFlag::rst)) return false;
  const Listener* listener = find_listener(s.tuple.local_address, s.tuple.local_port);
  // The conditions on_listen() checks before it takes a cookie, in the same order.
  return listener != nullptr && now_us < listener->cookies_until_us &&
         memory_level_ == MemoryLevel::normal &&
         check_cookie(secret_, s.tuple, s.seq - 1u, s.ack, now_us).has_value();
}

void TcpStack::on_listen(Listener& listener, PortIndex port, const Segment& s, rte_mbuf* packet,
                         uint64_t now_us) {
  // RFC 9293 3.10.7.2, LISTEN.
  if (s.has(TcpFlag::rst)) {
    rte_pktmbuf_free(packet);
    return;
  }
  const uint16_t our_mss = static_cast<uint16_t>(
      std::max<int>(port_mss(port) - settings_.listen_mss_reserve, settings_.min_mss));
  if (memory_level_ != MemoryLevel::normal && s.has(TcpFlag::syn) && !s.has(TcpFlag::ack) &&
      !admit_under_pressure(s.tuple.remote_address)) {
    // Memory is short and this client holds at least its share of what is held (or nothing at
    // all may be taken now): a new connection would only compete with those already made for
    // it. A RST tells the client at once (a dropped SYN would leave it waiting for its timeout).
    send_reset(port, s.tuple, Seq(0), s.seq + s.seg_len(), true, now_us);
    rte_pktmbuf_free(packet);
    return;
  }
  if (s.has(TcpFlag::ack)) {
    if (!s.has(TcpFlag::syn) && now_us < listener.cookies_until_us &&
        memory_level_ == MemoryLevel::normal) {
      // The third segment of a handshake answered with a SYN cookie (RFC 4987 3.6)?
      const Seq client_isn = s.seq - 1u;
      if (const auto mss = check_cookie(secret_, s.tuple, client_isn, s.ack, now_us)) {
        Connection* c = allocate(s.tuple, port, now_us);
        if (c == nullptr) {
          counters_.table_full.add();
          rte_pktmbuf_free(packet);
          return;
        }
        counters_.syn_cookies_accepted.add();
        counters_.passive_opens.add();
        c->listener_ = listener.handler;
        c->rcv_.irs = client_isn;
        c->rcv_.nxt = s.seq;
        c->snd_.iss = s.ack - 1u;
        c->snd_.una = c->snd_.nxt = c->snd_.max = c->snd_.recover = s.ack;
        c->mss_ = std::min<uint16_t>(*mss, our_mss);
        if (s.timestamps) {
          if (const auto options = decode_cookie_timestamp(s.timestamps->echo_reply, c->mss_)) {
            c->ts_ok_ = true;
            c->ts_recent_ = s.timestamps->value;
            c->sack_ok_ = options->sack_permitted;
            if (options->window_scale) {
              c->snd_.wnd_scale = std::min(*options->window_scale, kMaxWindowScale);
              c->rcv_.wnd_scale = receive_window_scale();
            }
          }
        }
        c->snd_.wnd = uint32_t{s.window} << c->snd_.wnd_scale;
        c->snd_.wl1 = s.seq;
        c->snd_.wl2 = s.ack;
        c->cc_ = CongestionControl(settings_.congestion, c->mss_);
        established(*c, now_us);
        if (c->state_ == State::closed) {
          rte_pktmbuf_free(packet);
          return;
        }
        on_segment(*c, s, packet, now_us);
        account(*c);
        return;
      }
      counters_.syn_cookies_rejected.add();
    }
    send_reset(port, s.tuple, s.ack, Seq(0), false, now_us);
    rte_pktmbuf_free(packet);
    return;
  }
  if (!s.has(TcpFlag::syn)) {
    rte_pktmbuf_free(packet);
    return;
  }
  const uint16_t peer_mss = std::max(s.mss.value_or(kDefaultPeerMss), settings_.min_mss);
  Connection* c =
      listener.syn_received < listener.backlog ? allocate(s.tuple, port, now_us) : nullptr;
  if (c == nullptr) {
    // The SYN queue or the connection table is full: answer statelessly (RFC 4987 3.6), and take
    // bare ACKs for cookies for as long as this one can come back valid.
    if (listener.syn_received < listener.backlog) counters_.table_full.add();
    listener.cookies_until_us = now_us + kCookieLifetimeUs;
    counters_.syn_cookies_sent.add();
    const Seq cookie = make_cookie(secret_, s.tuple, s.seq, peer_mss, now_us);
    send_syn_ack_for(port, s, cookie, our_mss, now_us, true);
    rte_pktmbuf_free(packet);
    return;
  }
  counters_.passive_opens.add();
  ++listener.syn_received;
  c->listener_ = listener.handler;
  c->state_ = State::syn_received;
  c->rcv_.irs = s.seq;
  c->rcv_.nxt = s.seq + 1u;
  c->snd_.iss = initial_sequence(secret_, s.tuple, now_us);
  c->snd_.una = c->snd_.recover = c->snd_.iss;
  c->snd_.nxt = c->snd_.max = c->snd_.iss + 1u;
  negotiate(*c, s);
  c->snd_.wnd = s.window;  // a SYN's window is never scaled (RFC 7323 2.2)
  c->snd_.wl1 = s.seq;
  c->snd_.wl2 = c->snd_.iss;
  send_syn_ack_for(port, s, c->snd_.iss, our_mss, now_us, false, c);
  arm_retransmit(*c, now_us);
  wheel_.arm(c->wait_timer_, now_us + settings_.syn_received_timeout_us);
  rte_pktmbuf_free(packet);
}

void TcpStack::on_segment(Connection& c, const Segment& s, rte_mbuf* packet, uint64_t now_us) {
  c.last_received_us_ = now_us;
  c.keepalive_probes_sent_ = 0;
  if (c.state_ == State::syn_sent) {
    on_syn_sent(c, s, packet, now_us);
    return;
  }
  // RFC 7323 5.3 PAWS: a timestamp older than the last one in sequence is a stale duplicate.
  if (c.ts_ok_ && s.timestamps && !s.has(TcpFlag::rst) &&
      static_cast<int32_t>(s.timestamps->value - c.ts_recent_) < 0) {
    counters_.paws_drops.add();
    send_out_of_window_ack(c, s, now_us);
    rte_pktmbuf_free(packet);
    return;
  }
  // A SYN sent again to SYN-RECEIVED (our SYN-ACK was lost or is late) gets the SYN-ACK again at
  // once, echoing this SYN's timestamp, as Linux answers it. The acceptability test would refuse
  // it (SEQ = IRS lies before RCV.NXT) with a bare ACK that the peer in SYN-SENT ignores, leaving
  // the peer to our SYN-ACK timer, whose TSecr echoes the first SYN: the peer's RTT sample
  // (RFC 7323 4.1) would then span a whole retransmission timeout, and its RTO stay seconds long.
  if (c.state_ == State::syn_received && s.has(TcpFlag::syn) && !s.has(TcpFlag::ack) &&
      s.seq == c.rcv_.irs) {
    if (c.ts_ok_ && s.timestamps) c.ts_recent_ = s.timestamps->value;
    send_syn_ack_for(c.port_, s, c.snd_.iss, port_mss(c.port_), now_us, false, &c);
    rte_pktmbuf_free(packet);
    return;
  }
  // RFC 9293 3.10.7.4, first: the acceptability test.
  uint32_t window = receive_window(c);
  const uint32_t len = s.seg_len();
  bool acceptable;
  if (len == 0) {
    // The right edge itself is accepted too (as Linux's tcp_sequence does): a peer that filled
    // the window sends its ACKs with SEQ = RCV.NXT + RCV.WND, and refusing them would refuse the
    // acknowledgments the connection needs to make progress.
    acceptable = window == 0 ? s.seq == c.rcv_.nxt : in_window(s.seq, c.rcv_.nxt, window + 1);
  } else {
    acceptable = window != 0 && (in_window(s.seq, c.rcv_.nxt, window) ||
                                 in_window(s.seq + (len - 1), c.rcv_.nxt, window));
    // A zero window still takes the ACK of a segment at RCV.NXT (its data is dropped).
    if (window == 0 && s.seq == c.rcv_.nxt) acceptable = true;
  }
  if (!acceptable) {
    if (!s.has(TcpFlag::rst)) send_out_of_window_ack(c, s, now_us);
    rte_pktmbuf_free(packet);
    return;
  }
  // Second: RST (RFC 5961 3.2: only an exact match resets; in-window, a challenge ACK).
  if (s.has(TcpFlag::rst)) {
    if (s.seq == c.rcv_.nxt) {
      counters_.resets_received.add();
      close(c, CloseReason::rst);
    } else {
      send_challenge_ack(c, now_us);
    }
    rte_pktmbuf_free(packet);
    return;
  }
  // Fourth: SYN in a synchronized state (RFC 5961 4.2): challenge ACK.
  if (s.has(TcpFlag::syn)) {
    send_challenge_ack(c, now_us);
    rte_pktmbuf_free(packet);
    return;
  }
  // Fifth: ACK.
  if (!s.has(TcpFlag::ack)) {
    rte_pktmbuf_free(packet);
    return;
  }
  if (s.timestamps && !s.has(TcpFlag::rst) && s.seq <= c.rcv_.nxt) {
    c.ts_recent_ = s.timestamps->value;  // RFC 7323 4.3
  }
  if (c.state_ == State::syn_received) {
    if (!(c.snd_.una < s.ack && s.ack <= c.snd_.nxt)) {
      send_reset(c.port_, c.tuple_, s.ack, Seq(0), false, now_us);
      rte_pktmbuf_free(packet);
      return;
    }
    c.snd_.una = c.snd_.iss + 1u;
    c.snd_.wnd = uint32_t{s.window} << c.snd_.wnd_scale;
    c.snd_.wl1 = s.seq;
    c.snd_.wl2 = s.ack;
    handshake_rtt(c, s, now_us);
    wheel_.cancel(c.retransmit_timer_);
    c.retransmissions_ = 0;
    established(c, now_us);
    if (c.state_ == State::closed) {
      rte_pktmbuf_free(packet);
      return;
    }
    window = receive_window(c);  // established() set the edge
  }
  if (!process_ack(c, s, now_us) || c.state_ == State::closed) {
    rte_pktmbuf_free(packet);
    return;
  }
  // Seventh and eighth: data and FIN.
  process_data(c, s, packet, now_us, window);
  if (c.state_ != State::closed && output_pending(c)) output(c, now_us);
}

bool TcpStack::process_ack(Connection& c, const Segment& s, uint64_t now_us) {
  if (s.ack > c.snd_.max) {
    // RFC 9293 3.10.7.4 and RFC 5961 5.2: an ACK for data never sent is dropped and answered.
    counters_.acks_for_unsent_data.add();
    send_ack(c, now_us);
    return false;
  }
  const uint32_t scaled_window = uint32_t{s.window} << c.snd_.wnd_scale;
  bool window_changed = false;
  if (c.snd_.wl1 < s.seq || (c.snd_.wl1 == s.seq && c.snd_.wl2 <= s.ack)) {
    window_changed = scaled_window != c.snd_.wnd;
    c.snd_.wnd = scaled_window;
    c.snd_.wl1 = s.seq;
    c.snd_.wl2 = s.ack;
  }
  if (s.ack > c.snd_.una) {
    uint32_t acked = static_cast<uint32_t>(s.ack - c.snd_.una);
    const bool fin_acked = c.fin_sent_ && s.ack == c.snd_.max;
    const uint32_t data_acked = std::min(acked - (fin_acked ? 1 : 0), c.send_queue_.bytes());
    c.send_queue_.drop_front(data_acked);
    // RTT: from the echoed timestamp (RFC 7323 4.1, every ACK), or from the one timed segment
    // when it was not retransmitted (Karn).
    if (c.ts_ok_ && s.timestamps && s.timestamps->echo_reply != 0) {
      const uint32_t rtt_ms = timestamp_now(now_us) - s.timestamps->echo_reply;
      c.rto_.sample(path_rtt(std::max<uint64_t>(uint64_t{rtt_ms} * 1000, 1), now_us));
    } else if (c.timing_rtt_ && s.ack > c.rtt_seq_) {
      c.rto_.sample(path_rtt(now_us - c.rtt_start_us_, now_us));
      c.timing_rtt_ = false;
    }
    c.snd_.una = s.ack;
    if (c.snd_.nxt < c.snd_.una) c.snd_.nxt = c.snd_.una;
    c.retransmissions_ = 0;
    c.snd_.dupacks = 0;
    c.probe_outstanding_ = false;
    if (SackScoreboard* board = scoreboard(c)) board->advance(c.snd_.una);
    detect_lost_retransmission(c, update_scoreboard(c, s), now_us);
    if (c.in_recovery_) {
      if (s.ack >= c.snd_.recover) {
        // RFC 6582 3.2 (3) and RFC 6675 5 (A): a full acknowledgment ends recovery.
        c.in_recovery_ = false;
      } else if (SackScoreboard* board = scoreboard(c)) {
        // A partial ACK acknowledges a retransmission, sent after everything still missing below
        // the recovery point: all of that is lost (RFC 8985's rule, which RFC 6582 applies to
        // the next segment), however little was SACKed above it. output() resends it.
        board->mark_lost_below(c.snd_.recover);
      } else {
        // RFC 6582 3.2 (4): a partial ACK; the next hole is retransmitted at once.
        send_segment(c, c.snd_.una, TcpFlag::ack, retransmit_length(c), now_us);
      }
    } else {
      c.cc_.on_ack(data_acked, now_us, c.rto_.srtt_us());
    }
    if (!c.in_recovery_ && scoreboard(c) != nullptr && scoreboard(c)->empty())
      release_scoreboard(c);
    if (c.snd_.una == c.snd_.max) {
      wheel_.cancel(c.retransmit_timer_);
    } else {
      arm_retransmit(c, now_us);  // RFC 6298 5.3
    }
    if (fin_acked) {
      switch (c.state_) {
        case State::fin_wait_1:
          // The wait timer bounds FIN-WAIT-2 (it did keepalive until now).
          c.state_ = State::fin_wait_2;
          wheel_.arm(c.wait_timer_, now_us + settings_.fin_wait2_timeout_us);
          break;
        case State::closing:
          enter_time_wait(c, now_us);
          break;
        case State::last_ack:
          close(c, CloseReason::fin);
          return false;
        default:
          break;
      }
    }
    if (c.blocked_ && send_space(c) > 0 && c.handler_ != nullptr) {
      c.blocked_ = false;
      c.handler_->on_writable(c);
    }
  } else if (s.ack == c.snd_.una && c.snd_.max > c.snd_.una) {
    const uint32_t newly_sacked = update_scoreboard(c, s);
    detect_lost_retransmission(c, newly_sacked, now_us);
    // A duplicate ACK: with a scoreboard, one that SACKs new data (RFC 6675 2); without, RFC 5681
    // 2's ACK that carries nothing and changes nothing.
    const SackScoreboard* board = scoreboard(c);
    const bool duplicate = board != nullptr ? newly_sacked > 0
                                            : s.length == 0 && !s.has(TcpFlag::fin) &&
                                                  !window_changed && s.sack_blocks == 0;
    if (duplicate && c.snd_.dupacks < UINT8_MAX) ++c.snd_.dupacks;
    // RFC 5681 3.2 and RFC 6675 5 (4): the third duplicate ACK, or a scoreboard showing the first
    // unacknowledged segment lost, starts loss recovery.
    if (!c.in_recovery_ && (c.snd_.dupacks >= SackScoreboard::kDupThresh ||
                            (board != nullptr && board->is_lost(c.snd_.una, c.segment_payload()))))
      enter_recovery(c, now_us);
  }
  if (c.snd_.una < c.snd_.max) watch_reordering(c, now_us);
  return true;
}

// Karn (RFC 6298 3) for the handshake, with the timestamps telling transmissions apart. After a
// SYN (or SYN-ACK) was sent again, the peer's TSecr may echo the first one (it keeps TS.Recent from
// it, RFC 7323 4.3), or the answer may be one the peer's own timer sent: either measures a
// retransmission timeout rather than the path, and such a sample (a second or more) held the RTO
// at seconds long after the handshake. So a sample is taken only when TSecr echoes the last
// handshake segment sent, and only below the initial RTO (a longer one spans a timer of the
// peer's). Without one after a retransmission, RTO is 3 s until the first ACK of data gives a
// sample (RFC 6298 5.7). Taking the sample where it is sound matters under burst loss: the
// handshake's lost segments otherwise left 3 s RTOs that were the longest idles there.
void TcpStack::handshake_rtt(Connection& c, const Segment& s, uint64_t now_us) {
  if (c.ts_ok_ && s.timestamps && s.timestamps->echo_reply != 0 &&
      static_cast<int32_t>(s.timestamps->echo_reply - timestamp_now(c.rtt_start_us_)) >= 0) {
    const uint64_t rtt_us =
        std::max<uint64_t>(uint64_t{timestamp_now(now_us) - s.timestamps->echo_reply} * 1000, 1);
    if (rtt_us < RtoEstimator::kInitialRtoUs) {
      c.rto_.sample(path_rtt(rtt_us, now_us));
      return;
    }
  }
  if (c.retransmissions_ > 0) c.rto_.restart_after_handshake_timeout();
}

// In recovery, data newly SACKed more than a round trip and a reordering window after the oldest
// retransmission left, while that retransmission is still missing: it was lost too (RFC 8985's
// rule, in time form: data sent after it has arrived). Without this, a lost repair waits for the
// retransmission timeout, and burst loss takes repairs as readily as originals.
void TcpStack::detect_lost_retransmission(Connection& c, uint32_t newly_sacked, uint64_t now_us) {
  SackScoreboard* board = scoreboard(c);
  if (!c.in_recovery_ || newly_sacked == 0 || board == nullptr) return;
  const uint64_t srtt = c.rto_.srtt_us();
  const uint64_t wait = srtt + std::max(srtt / 4, wheel_.tick_us());
  if (now_us > wait && board->retransmitted_before(c.snd_.una, now_us - wait)) {
    board->retransmissions_lost();
    counters_.lost_retransmissions.add();
  }
}

void TcpStack::enter_recovery(Connection& c, uint64_t now_us) {
  counters_.fast_retransmits.add();
  c.in_recovery_ = true;
  c.snd_.recover = c.snd_.max;  // RFC 6675 5 (4.1) RecoveryPoint = HighData
  c.cc_.on_loss(static_cast<uint32_t>(c.snd_.max - c.snd_.una), now_us);
  c.timing_rtt_ = false;  // Karn: nothing sent from here on times the path
  // RFC 6675 5 (4.3) and RFC 6582 3.2 (2): the first unacknowledged segment goes again at once.
  const uint32_t length = retransmit_length(c);
  send_segment(c, c.snd_.una, TcpFlag::ack, length, now_us);
  if (SackScoreboard* board = scoreboard(c)) board->retransmitted(c.snd_.una + length, now_us);
}

uint32_t TcpStack::update_scoreboard(Connection& c, const Segment& s) {
  if (!c.sack_ok_ || s.sack_blocks == 0) return 0;
  SackScoreboard* board = scoreboard(c);
  if (board == nullptr) {
    if (scoreboard_free_.empty()) {
      counters_.sack_scoreboards_exhausted.add();
      return 0;
    }
    c.scoreboard_ = scoreboard_free_.back();
    scoreboard_free_.pop_back();
    board = &scoreboards_[c.scoreboard_];
    board->clear();
  }
  // The data sent so far ends at SND.MAX, less the FIN's sequence number once one was sent.
  const Seq data_end = c.snd_.max - (c.fin_sent_ ? 1u : 0u);
  uint32_t newly = 0;
  for (uint8_t i = 0; i < s.sack_blocks; ++i)
    newly += board->add(Seq(s.sack[i].left), Seq(s.sack[i].right), c.snd_.una, data_end);
  if (board->empty() && !c.in_recovery_) release_scoreboard(c);
  return newly;
}

void TcpStack::release_scoreboard(Connection& c) {
  if (c.scoreboard_ == UINT16_MAX) return;
  scoreboard_free_.push_back(c.scoreboard_);
  c.scoreboard_ = UINT16_MAX;
}

void TcpStack::process_data(Connection& c, const Segment& s, rte_mbuf* packet, uint64_t now_us,
                            uint32_t window) {
  if (memory_level_ != MemoryLevel::normal) window = receive_window(c);
  const bool receiving = c.state_ == State::established || c.state_ == State::fin_wait_1 ||
                         c.state_ == State::fin_wait_2;
  bool in_order = true;
  if (s.length > 0 && receiving) {
    if (s.seq > c.rcv_.nxt) {
      // Kept for later if there is room (the FIN, if any, is not: the peer sends it again); an
      // immediate duplicate ACK either way, so that the sender's dupacks count (RFC 5681 4.2).
      const uint32_t offset = static_cast<uint32_t>(s.seq - c.rcv_.nxt);
      // Under memory pressure nothing is kept out of order (what was is pruned).
      const uint32_t keep = offset < window && memory_level_ == MemoryLevel::normal
                                ? std::min(s.length, window - offset)
                                : 0;
      bool kept = false;
      if (keep > 0) {
        rte_pktmbuf_adj(packet, static_cast<uint16_t>(s.payload_offset));
        rte_pktmbuf_trim(packet, static_cast<uint16_t>(rte_pktmbuf_pkt_len(packet) - keep));
        kept = stash_out_of_order(c, s.seq, packet);
      }
      if (!kept) {
        counters_.out_of_order_drops.add();
        rte_pktmbuf_free(packet);
      }
      send_ack(c, now_us);
      return;
    }
    const uint32_t skip = static_cast<uint32_t>(c.rcv_.nxt - s.seq);
    const uint32_t fresh = s.length > skip ? s.length - skip : 0;
    const uint32_t usable = std::min(fresh, window);
    in_order = usable == s.length - std::min(skip, s.length);
    if (usable < fresh && memory_level_ != MemoryLevel::normal)
      counters_.receive_memory_drops.add();
    if (usable > 0) {
      rte_pktmbuf_adj(packet, static_cast<uint16_t>(s.payload_offset + skip));
      rte_pktmbuf_trim(packet, static_cast<uint16_t>(rte_pktmbuf_pkt_len(packet) - usable));
      c.rcv_.nxt += usable;
      c.unread_ += usable;
      ++c.rcv_.unacked_segments;
      // The application sees the data before the ACK goes, so that the window the ACK carries
      // counts what it consumed at once (and a window update of its own is not needed).
      ConnectionHandler* handler = c.handler_;
      if (handler != nullptr) {
        c.delivering_ = true;
        handler->on_data(c, packet);
        c.delivering_ = false;
      } else {
        rte_pktmbuf_free(packet);
      }
      packet = nullptr;
      if (c.state_ == State::closed) return;
      if (!c.ooo_.empty()) {
        // The segment may have filled a hole: what waited behind it follows, and the ACK that
        // tells the sender goes at once.
        deliver_out_of_order(c);
        if (c.state_ == State::closed) return;
        send_ack(c, now_us);
      } else if (c.rcv_.unacked_segments >= 2 ||
                 (s.has(TcpFlag::fin) && c.rcv_.unacked_segments > 0)) {
        // RFC 9293 3.8.6.3 / RFC 5681 4.2: ACK at least every second full segment (unless a
        // window update from the application already did).
        send_ack(c, now_us);
      } else if (window_update_due(c, receive_window(c))) {
        send_ack(c, now_us);  // the application consumed enough to reopen the window
      } else if (c.rcv_.unacked_segments > 0 && !c.delayed_ack_timer_.armed()) {
        wheel_.arm(c.delayed_ack_timer_, now_us + settings_.delayed_ack_us);
      }
    } else {
      send_ack(c, now_us);  // a duplicate: tell the sender where we are
    }
  }
  if (packet != nullptr) rte_pktmbuf_free(packet);
  if (!s.has(TcpFlag::fin) || !in_order || s.seq + s.length != c.rcv_.nxt) return;
  // Eighth: FIN (RFC 9293 3.10.7.4).
  if (c.state_ == State::time_wait) {
    send_ack(c, now_us);
    wheel_.arm(c.wait_timer_, now_us + settings_.time_wait_us);
    return;
  }
  if (c.fin_received_) return;
  c.fin_received_ = true;
  c.rcv_.nxt += 1u;
  send_ack(c, now_us);
  switch (c.state_) {
    case State::established:
      c.state_ = State::close_wait;
      break;
    case State::fin_wait_1:
      if (c.fin_sent_ && c.snd_.una == c.snd_.max) {
        enter_time_wait(c, now_us);
      } else {
        c.state_ = State::closing;
      }
      break;
    case State::fin_wait_2:
      enter_time_wait(c, now_us);
      break;
    default:
      break;
  }
  if (c.handler_ != nullptr && c.state_ != State::closed) c.handler_->on_peer_fin(c);
}

bool TcpStack::stash_out_of_order(Connection& c, Seq seq, rte_mbuf* payload) {
  uint32_t reclaimed = 0;
  const OutOfOrderStore::Stored stored = ooo_store_.insert(c.ooo_, seq, payload, &reclaimed);
  counters_.out_of_order_reclaimed.add(reclaimed);
  if (stored == OutOfOrderStore::Stored::store_exhausted) {
    // The worker's bound, and every other connection holds no more than this one plus one: it
    // takes in-order data only for now, and its sender recovers from what it holds.
    counters_.out_of_order_store_exhausted.add();
  }
  return stored == OutOfOrderStore::Stored::kept;
}

void TcpStack::deliver_out_of_order(Connection& c) {
  while (!c.ooo_.empty() && ooo_store_.front_seq(c.ooo_) <= c.rcv_.nxt) {
    const Seq seq = ooo_store_.front_seq(c.ooo_);
    rte_mbuf* m = ooo_store_.pop_front(c.ooo_);
    const uint32_t length = rte_pktmbuf_pkt_len(m);
    const uint32_t already = static_cast<uint32_t>(c.rcv_.nxt - seq);
    if (already >= length) {
      rte_pktmbuf_free(m);  // wholly covered by data delivered since
      continue;
    }
    rte_pktmbuf_adj(m, static_cast<uint16_t>(already));
    const uint32_t fresh = length - already;
    c.rcv_.nxt += fresh;
    c.unread_ += fresh;
    if (c.handler_ != nullptr) {
      c.handler_->on_data(c, m);
    } else {
      rte_pktmbuf_free(m);
    }
    if (c.state_ == State::closed) break;  // free_out_of_order takes the rest
  }
}

void TcpStack::free_out_of_order(Connection& c) {
  ooo_store_.clear(c.ooo_);
}

void TcpStack::established(Connection& c, uint64_t now_us) {
  if (c.state_ == State::syn_received) leave_syn_queue(c);
  c.state_ = State::established;
  wheel_.cancel(c.wait_timer_);
  c.last_received_us_ = now_us;
  if (settings_.keepalive_idle_us != 0)
    wheel_.arm(c.wait_timer_, now_us + settings_.keepalive_idle_us);
  // The SYN-ACK could only offer an unscaled 65535; the larger scaled window goes out with the
  // next segment anyway, so it does not call for an ACK of its own.
  c.rcv_.edge = c.rcv_.nxt + receive_window(c);
  counters_.established.add();
  if (c.listener_ != nullptr) c.handler_ = c.listener_->accept(c);
  if (c.handler_ != nullptr) c.handler_->on_established(c);
  (void)now_us;
}

// The options of the peer's SYN (we offer all of them): MSS, window scale (RFC 7323 2.2: scaling
// only when both SYNs carry it), timestamps, SACK-permitted; and the congestion window for the MSS.
void TcpStack::negotiate(Connection& c, const Segment& s) {
  const uint16_t peer_mss = std::max(s.mss.value_or(kDefaultPeerMss), settings_.min_mss);
  c.mss_ = std::min(peer_mss, port_mss(c.port_));
  if (s.window_scale) {
    c.snd_.wnd_scale = std::min(*s.window_scale, kMaxWindowScale);
    c.rcv_.wnd_scale = receive_window_scale();
  } else {
    c.snd_.wnd_scale = c.rcv_.wnd_scale = 0;
  }
  if (s.timestamps) {
    c.ts_ok_ = true;
    c.ts_recent_ = s.timestamps->value;
  }
  c.sack_ok_ = s.sack_permitted;
  c.cc_ = CongestionControl(settings_.congestion, c.mss_);
}

void TcpStack::on_syn_sent(Connection& c, const Segment& s, rte_mbuf* packet, uint64_t now_us) {
  // RFC 9293 3.10.7.3, SYN-SENT.
  rte_pktmbuf_free(packet);
  const bool ack_acceptable = s.has(TcpFlag::ack) && c.snd_.iss < s.ack && s.ack <= c.snd_.max;
  if (s.has(TcpFlag::ack) && !ack_acceptable) {
    if (!s.has(TcpFlag::rst)) send_reset(c.port_, s.tuple, s.ack, Seq(0), false, now_us);
    return;
  }
  if (s.has(TcpFlag::rst)) {
    if (ack_acceptable) {
      counters_.resets_received.add();
      close(c, CloseReason::refused);
    }
    return;
  }
  if (!s.has(TcpFlag::syn)) return;
  c.rcv_.irs = s.seq;
  c.rcv_.nxt = s.seq + 1u;
  negotiate(c, s);
  c.snd_.wnd = s.window;  // a SYN's window is never scaled
  c.snd_.wl1 = s.seq;
  if (!ack_acceptable) {
    // Simultaneous open: our SYN crossed theirs; answer with SYN-ACK from SYN-RECEIVED.
    c.state_ = State::syn_received;
    c.snd_.wl2 = c.snd_.iss;
    Segment syn = s;
    send_syn_ack_for(c.port_, syn, c.snd_.iss, port_mss(c.port_), now_us, false, &c);
    return;
  }
  c.snd_.una = s.ack;
  c.snd_.wl2 = s.ack;
  handshake_rtt(c, s, now_us);
  wheel_.cancel(c.retransmit_timer_);
  c.retransmissions_ = 0;
  established(c, now_us);
  if (c.state_ == State::closed) return;
  send_ack(c, now_us);
  output(c, now_us);
}

}  // namespace weir::tcp
