// TcpStack: building and sending segments. New data within the congestion and send windows,
// retransmissions (from SND.UNA, and SACK holes in recovery), ACKs with SACK blocks, challenge
// ACKs, SYN, SYN-ACK and RST; the receive window advertised.
#include "dataplane/tcp/tcp_stack.h"

#include <algorithm>
#include <cstring>
#include <optional>
#include <span>

#include "common/wire/byte_order.h"
#include "dataplane/net/checksum.h"
#include "dataplane/net/ipv4.h"
#include "dataplane/net/tcp.h"

namespace weir::tcp {

using net::TcpFlag;
using net::TcpFlags;
using net::TcpOptionKind;

// Builds IPv4 + TCP headers in a fresh mbuf (data starting at the IPv4 header, room for Ethernet
// before it) for a segment of `payload` more bytes, which the caller chains behind them. The IPv4
// checksum is complete; the TCP checksum covers the pseudo-header and the headers (the caller adds
// the payload's sum), or, where the device computes them (`offload`), the fields hold what it
// expects (stack.h, TxChecksumOffload) and ol_flags ask for it.
static rte_mbuf* build_segment(rte_mempool* pool, uint16_t& ip_id, const FourTuple& tuple, Seq seq,
                               Seq ack, TcpFlags flags, uint16_t window,
                               std::span<const uint8_t> options, uint32_t payload,
                               net::TxChecksumOffload offload) {
  rte_mbuf* m = rte_pktmbuf_alloc(pool);
  if (m == nullptr) return nullptr;
  const uint32_t tcp_length = net::TcpView::kMinSize + static_cast<uint32_t>(options.size());
  const uint32_t headers = 20 + tcp_length;
  auto* data = reinterpret_cast<uint8_t*>(rte_pktmbuf_append(m, static_cast<uint16_t>(headers)));
  if (data == nullptr) {
    rte_pktmbuf_free(m);
    return nullptr;
  }
  // The fixed fields in one copy: version 4, IHL 5, DF, TTL 64, protocol TCP; the TCP header's
  // words after the ports zero until set.
  static constexpr std::array<uint8_t, 20 + net::TcpView::kMinSize> kFixed = {
      0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, net::kIpProtocolTcp};
  std::memcpy(data, kFixed.data(), kFixed.size());
  auto ip = net::Ipv4View::parse({data, headers});
  ip->set_total_length(static_cast<uint16_t>(headers + payload));
  ip->set_identification(ip_id++);
  ip->set_source(net::Ipv4Address(tuple.local_address));
  ip->set_destination(net::Ipv4Address(tuple.remote_address));
  if (!offload.ipv4) ip->update_checksum();
  uint8_t* tcp_bytes = data + 20;
  auto tcp = net::TcpView::parse({tcp_bytes, tcp_length});
  tcp->set_source_port(tuple.local_port);
  tcp->set_destination_port(tuple.remote_port);
  tcp->set_sequence_number(seq.raw());
  tcp->set_acknowledgment_number(ack.raw());
  tcp->set_data_offset(static_cast<uint8_t>(tcp_length / 4));
  tcp->set_flags(flags);
  tcp->set_window(window);
  // Not memcpy: options is often empty, and memcpy from an empty span's null data() is undefined.
  std::ranges::copy(options, tcp_bytes + net::TcpView::kMinSize);
  const uint16_t pseudo_header = net::ipv4_pseudo_header_sum(
      net::Ipv4Address(tuple.local_address), net::Ipv4Address(tuple.remote_address),
      net::kIpProtocolTcp, static_cast<uint16_t>(tcp_length + payload));
  if (offload.tcp) {
    tcp->set_checksum(pseudo_header);
  } else {
    tcp->set_checksum(
        static_cast<uint16_t>(~net::ones_complement_sum({tcp_bytes, tcp_length}, pseudo_header)));
  }
  if (offload.ipv4 || offload.tcp) {
    m->ol_flags |= RTE_MBUF_F_TX_IPV4 | (offload.ipv4 ? RTE_MBUF_F_TX_IP_CKSUM : 0) |
                   (offload.tcp ? RTE_MBUF_F_TX_TCP_CKSUM : 0);
    m->l2_len = 14;  // Stack::send_ipv4 puts the Ethernet header in front
    m->l3_len = 20;
    m->l4_len = tcp_length;
  }
  return m;
}

namespace {

constexpr uint8_t kind_byte(TcpOptionKind kind) {
  return static_cast<uint8_t>(kind);
}

// NOP, NOP, timestamps (RFC 7323 appendix A's recommended layout).
size_t put_timestamps(uint8_t* p, uint32_t value, uint32_t echo) {
  p[0] = kind_byte(TcpOptionKind::nop);
  p[1] = kind_byte(TcpOptionKind::nop);
  p[2] = kind_byte(TcpOptionKind::timestamps);
  p[3] = 10;
  wire::store_be32(p + 4, value);
  wire::store_be32(p + 8, echo);
  return 12;
}

}  // namespace

void TcpStack::output(Connection& c, uint64_t now_us) {
  if (c.state_ != State::established && c.state_ != State::close_wait &&
      c.state_ != State::fin_wait_1 && c.state_ != State::closing && c.state_ != State::last_ack) {
    return;
  }
  // In SACK recovery the congestion window limits the pipe (RFC 6675 5 (C)): lost holes first
  // (NextSeg rule 1), then new data (rule 2).
  const bool sack_recovery = c.in_recovery_ && c.scoreboard_ != UINT16_MAX;
  if (sack_recovery) sack_retransmit(c, now_us);
  for (;;) {
    const uint32_t in_flight = static_cast<uint32_t>(c.snd_.nxt - c.snd_.una);
    const uint32_t queued = c.send_queue_.bytes();
    const uint32_t unsent = queued > in_flight ? queued - in_flight : 0;
    const bool fin_pending = c.fin_queued_ && (!c.fin_sent_ || c.snd_.nxt < c.snd_.max);
    if (unsent == 0 && !fin_pending) break;
    uint32_t length = 0;
    if (unsent > 0) {
      const uint32_t flight = sack_recovery ? scoreboards_[c.scoreboard_].pipe(
                                                  c.snd_.una, c.snd_.max, c.segment_payload())
                                            : in_flight;
      const uint32_t cwnd = c.cc_.cwnd();
      const uint32_t allowed = std::min(cwnd > flight ? cwnd - flight : 0,
                                        c.snd_.wnd > in_flight ? c.snd_.wnd - in_flight : 0);
      if (allowed == 0) {
        // Zero window (or a full cwnd): the retransmission timer doubles as the persist timer.
        if (!c.retransmit_timer_.armed()) arm_retransmit(c, now_us);
        break;
      }
      const uint32_t full = c.segment_payload();
      length = std::min({full, unsent, allowed});
      // Sender-side silly window avoidance (RFC 9293 3.8.6.2.1), Nagle off: a short segment
      // goes only when it carries everything queued or nothing is outstanding.
      if (length < full && length < unsent && in_flight > 0) break;
    }
    const bool with_fin = fin_pending && length == unsent;
    TcpFlags flags = TcpFlag::ack;
    if (length > 0 && length == unsent) flags = flags | TcpFlag::psh;
    if (with_fin) flags = flags | TcpFlag::fin;
    const bool new_data = c.snd_.nxt == c.snd_.max;
    send_segment(c, c.snd_.nxt, flags, length, now_us);
    if (new_data && !c.timing_rtt_ && !c.ts_ok_ && length > 0) {
      c.timing_rtt_ = true;
      c.rtt_seq_ = c.snd_.nxt;
      c.rtt_start_us_ = now_us;
    }
    c.snd_.nxt += length + (with_fin ? 1u : 0u);
    if (c.snd_.max < c.snd_.nxt) c.snd_.max = c.snd_.nxt;
    if (with_fin && !c.fin_sent_) {
      c.fin_sent_ = true;
      c.state_ = c.state_ == State::close_wait ? State::last_ack : State::fin_wait_1;
    }
    if (!c.retransmit_timer_.armed()) arm_retransmit(c, now_us);
    if (with_fin) break;
  }
}

// The first segment to send again from SND.UNA: never beyond what was sent before (SND.MAX), so
// that a retransmission cannot carry new data past the sequence space the peer has been told of.
uint32_t TcpStack::retransmit_length(const Connection& c) const {
  uint32_t outstanding = static_cast<uint32_t>(c.snd_.max - c.snd_.una);
  if (c.fin_sent_ && outstanding > 0) --outstanding;
  return std::min({uint32_t{c.segment_payload()}, outstanding, c.send_queue_.bytes()});
}

void TcpStack::sack_retransmit(Connection& c, uint64_t now_us) {
  SackScoreboard& board = *scoreboard(c);
  const uint32_t smss = c.segment_payload();
  for (;;) {
    const uint32_t pipe = board.pipe(c.snd_.una, c.snd_.max, smss);
    const uint32_t cwnd = c.cc_.cwnd();
    if (cwnd <= pipe || cwnd - pipe < smss) return;
    const auto hole = board.next_lost(c.snd_.una, smss);
    if (!hole) return;
    const uint32_t length = std::min(hole->length, smss);
    send_segment(c, hole->start, TcpFlag::ack, length, now_us);
    counters_.sack_retransmits.add();
    board.retransmitted(hole->start + length, now_us);
  }
}

uint8_t TcpStack::receive_window_scale() const {
  uint8_t shift = 0;
  while (shift < kMaxWindowScale && (settings_.receive_buffer >> shift) > 0xffff) ++shift;
  return shift;
}

uint32_t TcpStack::receive_window(const Connection& c) const {
  const uint32_t buffer = std::min(settings_.receive_buffer, memory_share(c));
  uint32_t free = buffer > c.unread_ ? buffer - c.unread_ : 0;
  if (memory_level_ == MemoryLevel::normal) {
    // A share that fell as connections came does not take back a window already offered.
    free = std::max(
        free, std::min(offered_window(c),
                       settings_.receive_buffer - std::min(settings_.receive_buffer, c.unread_)));
  } else {
    free = std::min(free, pressure_window(c));
  }
  free = std::min(free, uint32_t{0xffff} << c.rcv_.wnd_scale);
  // Only multiples of the scale can be advertised; round down so that we never promise more.
  return free & ~((uint32_t{1} << c.rcv_.wnd_scale) - 1);
}

void TcpStack::send_ack(Connection& c, uint64_t now_us) {
  // A segment without data carries SND.MAX, not SND.NXT (as BSD does): after a retransmission
  // timeout has rewound SND.NXT, the peer may already hold data beyond it, and would find an
  // older SEQ outside its window and ignore the acknowledgment this segment carries. But never
  // beyond the right edge of the peer's window, SND.UNA + SND.WND (as Linux's
  // tcp_acceptable_seq): when segments were lost and the peer's window then closed (its
  // application waiting for our ACK to free its own send buffer), SND.MAX lies outside that
  // window, the peer discards the segment with the acknowledgment in it, and both ends wait on
  // each other for ever. The burst-loss test bed found that deadlock.
  const Seq right_edge = c.snd_.una + c.snd_.wnd;
  send_segment(c, c.snd_.max <= right_edge ? c.snd_.max : right_edge, TcpFlag::ack, 0, now_us);
}

void TcpStack::send_challenge_ack(Connection& c, uint64_t now_us) {
  // RFC 5961 7: challenge ACKs are rate-limited, here per connection, so that a blind attacker
  // cannot turn in-window guesses into a stream of ACKs (nor probe the limit's state across
  // connections, the side channel of CVE-2016-5696 that a global limit opened).
  if (!c.challenge_acks_.take(now_us, kChallengeWindowUs, kChallengesPerWindow)) {
    counters_.challenge_acks_suppressed.add();
    return;
  }
  counters_.challenge_acks.add();
  send_ack(c, now_us);
}

void TcpStack::send_out_of_window_ack(Connection& c, const Segment& s, uint64_t now_us) {
  // Limited for segments without data, as Linux does: two ends that disagree about the window
  // would otherwise answer each other's ACKs for ever, and a blind attacker would get an ACK for
  // every segment it forges. A segment with data is always answered (its sender needs the ACK to
  // recover), unless it is a SYN.
  const bool carries_data = s.length > 0 && !s.has(TcpFlag::syn);
  if (!carries_data &&
      !c.out_of_window_acks_.take(now_us, settings_.out_of_window_ack_interval_us, 1)) {
    counters_.out_of_window_acks_suppressed.add();
    return;
  }
  send_ack(c, now_us);
}

size_t TcpStack::sack_option(const Connection& c, uint8_t* out, size_t max_blocks) const {
  if (!c.sack_ok_ || c.ooo_.empty()) return 0;
  // The queue's contiguous ranges, in sequence order.
  std::array<std::pair<Seq, Seq>, kOutOfOrderPerConnection> ranges;
  size_t count = 0;
  ooo_store_.for_each(c.ooo_, [&](Seq left, const rte_mbuf* segment) {
    const Seq right = left + rte_pktmbuf_pkt_len(segment);
    if (count > 0 && left <= ranges[count - 1].second) {
      ranges[count - 1].second = seq_max(ranges[count - 1].second, right);
    } else {
      ranges[count++] = {left, right};
    }
  });
  // RFC 2018 4: the first block holds the most recently received segment; the others follow.
  size_t first = 0;
  const Seq latest = ooo_store_.latest(c.ooo_);
  for (size_t i = 0; i < count; ++i) {
    if (ranges[i].first <= latest && latest < ranges[i].second) first = i;
  }
  const size_t blocks = std::min(count, max_blocks);
  size_t n = 0;
  out[n++] = kind_byte(TcpOptionKind::nop);
  out[n++] = kind_byte(TcpOptionKind::nop);
  out[n++] = kind_byte(TcpOptionKind::sack);
  out[n++] = static_cast<uint8_t>(2 + 8 * blocks);
  for (size_t k = 0; k < blocks; ++k) {
    const size_t i = k == 0 ? first : (k <= first ? k - 1 : k);
    wire::store_be32(out + n, ranges[i].first.raw());
    wire::store_be32(out + n + 4, ranges[i].second.raw());
    n += 8;
  }
  return n;
}

namespace {

// Appends `payload` bytes of `queue` from `offset` to `m` without copying them: each piece is an
// indirect mbuf attached to the queued segment's buffer (its reference count keeps the data until
// both the ACK and the device are done with it). Returns the payload's ones'-complement sum
// (when `sum_it`; 0 otherwise), pieces that start at an odd position byte-swapped (RFC 1071
// 2(B)); nullopt when out of mbufs.
std::optional<uint16_t> chain_payload(rte_mbuf* m, rte_mempool* pool, const MbufQueue& queue,
                                      uint32_t offset, uint32_t payload, bool sum_it) {
  uint16_t sum = 0;
  uint32_t position = 0;
  rte_mbuf* last = m;
  bool ok = true;
  queue.for_each_piece(offset, payload, [&](rte_mbuf* seg, uint16_t at, uint16_t n) {
    if (!ok) return;
    rte_mbuf* piece = rte_pktmbuf_alloc(pool);
    if (piece == nullptr) {
      ok = false;
      return;
    }
    rte_pktmbuf_attach(piece, seg);
    piece->data_off = static_cast<uint16_t>(piece->data_off + at);
    piece->data_len = n;
    piece->pkt_len = n;
    last->next = piece;
    last = piece;
    m->nb_segs = static_cast<uint16_t>(m->nb_segs + 1);
    m->pkt_len += n;
    if (!sum_it) return;
    uint16_t part = net::ones_complement_sum({rte_pktmbuf_mtod(piece, const uint8_t*), n});
    if (position % 2 == 1) part = static_cast<uint16_t>(part << 8 | part >> 8);
    sum = net::ones_complement_add(sum, part);
    position += n;
  });
  if (!ok) return std::nullopt;
  return sum;
}

}  // namespace

void TcpStack::send_segment(Connection& c, Seq seq, TcpFlags flags, uint32_t payload,
                            uint64_t now_us) {
  // Not zeroed: only the first options_length bytes are written and read.
  std::array<uint8_t, net::TcpView::kMaxSize - net::TcpView::kMinSize> options;
  size_t options_length = 0;
  if (c.ts_ok_)
    options_length = put_timestamps(options.data(), timestamp_now(now_us), c.ts_recent_);
  // SACK blocks go on segments without data only, so that a full segment keeps its payload
  // (RFC 2018 asks for them on every ACK; the ACKs that matter, the duplicate ones, carry them).
  if (payload == 0 && !flags.has(TcpFlag::syn) && !flags.has(TcpFlag::rst)) {
    // With timestamps, 28 option bytes are left: room for three blocks.
    options_length +=
        sack_option(c, options.data() + options_length, c.ts_ok_ ? 3 : net::kMaxSackBlocks);
  }
  const uint32_t window = receive_window(c);
  const uint32_t offset = static_cast<uint32_t>(seq - c.snd_.una);
  const net::TxChecksumOffload offload = net_stack_.tx_checksum_offload(c.port_);
  // Headers only; the payload follows as indirect mbufs over the send queue (zero copy).
  rte_mbuf* m =
      build_segment(pool_, ip_id_, c.tuple_, seq, c.rcv_.nxt, flags,
                    static_cast<uint16_t>(std::min<uint32_t>(window >> c.rcv_.wnd_scale, 0xffff)),
                    std::span<const uint8_t>(options.data(), options_length), payload, offload);
  if (m == nullptr) {
    counters_.allocation_failures.add();
    return;
  }
  if (payload > 0) {
    const auto payload_sum = chain_payload(m, pool_, c.send_queue_, offset, payload, !offload.tcp);
    if (!payload_sum) {
      counters_.allocation_failures.add();
      rte_pktmbuf_free(m);
      return;
    }
    if (!offload.tcp) {
      // The headers' checksum covers the pseudo-header (with the payload's length) and the
      // headers: the payload's sum is added.
      auto tcp = net::TcpView::parse(
          {rte_pktmbuf_mtod_offset(m, uint8_t*, 20), rte_pktmbuf_data_len(m) - 20u});
      const uint16_t sum = static_cast<uint16_t>(~tcp->checksum());
      tcp->set_checksum(static_cast<uint16_t>(~net::ones_complement_add(sum, *payload_sum)));
    }
  }
  c.rcv_.edge = c.rcv_.nxt + window;
  if (memory_level_ != MemoryLevel::normal && !c.window_clamped_) {
    c.window_clamped_ = true;
    if (clamped_.size() < slots_.size()) {
      clamped_.push_back(c.slot_);
    } else {
      sweep_all_clamped_ = true;
    }
  }
  if (memory_level_ != MemoryLevel::normal && window == 0 && !c.share_clamped_ && heavy(c)) {
    c.share_clamped_ = true;  // once an episode (reopen_clamped_windows clears it)
    counters_.windows_stopped_source_share.add();
  }
  if (flags.has(TcpFlag::ack)) {
    wheel_.cancel(c.delayed_ack_timer_);
    c.rcv_.unacked_segments = 0;
  }
  if (seq < c.snd_.max && (payload > 0 || flags.has(TcpFlag::fin)))
    counters_.retransmitted_segments.add();
  counters_.segments_out.add();
  net_stack_.send_ipv4(c.port_, m, now_us);
}

void TcpStack::send_syn(Connection& c, uint64_t now_us) {
  // MSS, window scale, SACK-permitted and timestamps offered.
  std::array<uint8_t, 20> options{};
  size_t n = 0;
  options[n++] = kind_byte(TcpOptionKind::mss);
  options[n++] = 4;
  wire::store_be16(options.data() + n, port_mss(c.port_));
  n += 2;
  options[n++] = kind_byte(TcpOptionKind::nop);
  options[n++] = kind_byte(TcpOptionKind::window_scale);
  options[n++] = 3;
  options[n++] = receive_window_scale();
  n += put_timestamps(options.data() + n, timestamp_now(now_us), 0);
  // SACK-permitted in place of the timestamps' NOPs (RFC 2018 2)
  options[n - 12] = kind_byte(TcpOptionKind::sack_permitted);
  options[n - 11] = 2;
  const uint16_t window =
      static_cast<uint16_t>(std::min<uint32_t>(settings_.receive_buffer, 0xffff));
  rte_mbuf* m = build_segment(pool_, ip_id_, c.tuple_, c.snd_.iss, Seq(0), TcpFlag::syn, window,
                              std::span<const uint8_t>(options.data(), n), 0,
                              net_stack_.tx_checksum_offload(c.port_));
  if (m == nullptr) {
    counters_.allocation_failures.add();
    return;
  }
  c.rtt_start_us_ = now_us;  // the handshake's RTT is timed from its last SYN
  if (c.retransmissions_ > 0) counters_.retransmitted_segments.add();
  counters_.segments_out.add();
  net_stack_.send_ipv4(c.port_, m, now_us);
}

void TcpStack::send_syn_ack_for(PortIndex port, const Segment& s, Seq iss, uint16_t mss,
                                uint64_t now_us, bool cookie, Connection* c) {
  std::array<uint8_t, 20> options{};
  size_t n = 0;
  options[n++] = kind_byte(TcpOptionKind::mss);  // RFC 9293 3.2
  options[n++] = 4;
  wire::store_be16(options.data() + n, mss);
  n += 2;
  const uint8_t shift = receive_window_scale();
  if (s.window_scale) {
    options[n++] = kind_byte(TcpOptionKind::nop);  // NOP, window scale (RFC 7323 2.2)
    options[n++] = kind_byte(TcpOptionKind::window_scale);
    options[n++] = 3;
    options[n++] = shift;
  }
  if (s.timestamps) {
    uint32_t value = timestamp_now(now_us);
    if (cookie) value = encode_cookie_timestamp(value, s.window_scale, s.sack_permitted);
    n += put_timestamps(options.data() + n, value, s.timestamps->value);
    if (s.sack_permitted) {
      // SACK-permitted takes the place of the two NOPs before the timestamps, as Linux lays it.
      options[n - 12] = kind_byte(TcpOptionKind::sack_permitted);
      options[n - 11] = 2;
    }
  } else if (s.sack_permitted) {
    options[n++] = kind_byte(TcpOptionKind::nop);  // NOP, NOP, SACK-permitted (RFC 2018 2)
    options[n++] = kind_byte(TcpOptionKind::nop);
    options[n++] = kind_byte(TcpOptionKind::sack_permitted);
    options[n++] = 2;
  }
  // The SYN-ACK's window is never scaled (RFC 7323 2.2).
  const uint16_t window =
      static_cast<uint16_t>(std::min<uint32_t>(settings_.receive_buffer, 0xffff));
  rte_mbuf* m = build_segment(pool_, ip_id_, s.tuple, iss, s.seq + 1u, TcpFlag::syn | TcpFlag::ack,
                              window, std::span<const uint8_t>(options.data(), n), 0,
                              net_stack_.tx_checksum_offload(port));
  if (m == nullptr) {
    counters_.allocation_failures.add();
    return;
  }
  if (c != nullptr) {
    c->rcv_.edge = c->rcv_.nxt + window;
    c->rtt_start_us_ = now_us;  // the handshake's RTT is timed from its last SYN-ACK
  }
  counters_.segments_out.add();
  net_stack_.send_ipv4(port, m, now_us);
}

void TcpStack::send_reset(PortIndex port, const FourTuple& tuple, Seq seq, Seq ack, bool with_ack,
                          uint64_t now_us) {
  const TcpFlags flags = with_ack ? TcpFlag::rst | TcpFlag::ack : TcpFlags(TcpFlag::rst);
  rte_mbuf* m = build_segment(pool_, ip_id_, tuple, seq, with_ack ? ack : Seq(0), flags, 0, {}, 0,
                              net_stack_.tx_checksum_offload(port));
  if (m == nullptr) {
    counters_.allocation_failures.add();
    return;
  }
  counters_.resets_sent.add();
  counters_.segments_out.add();
  net_stack_.send_ipv4(port, m, now_us);
}

}  // namespace weir::tcp
