#include "dataplane/tcp/tcp_stack.h"

#include <algorithm>
#include <cstring>

#include "common/wire/byte_order.h"
#include "dataplane/net/ipv4.h"
#include "dataplane/net/tcp.h"

namespace weir::tcp {

using net::TcpFlag;
using net::TcpFlags;
using net::TcpOptionKind;

namespace {

constexpr uint8_t kMaxWindowScale = 14;  // RFC 7323 2.3
constexpr uint32_t kIpTcpHeaders = 40;
constexpr uint16_t kDefaultPeerMss = 536;  // RFC 9293 3.7.1, when the SYN carries no MSS

bool synchronized(State s) {
  return s != State::closed && s != State::syn_received;
}

}  // namespace

// Builds IPv4 + TCP in a fresh mbuf (data starting at the IPv4 header, room for Ethernet before
// it) and hands it to the IP layer. `payload` copies the data in.
static rte_mbuf* build_segment(rte_mempool* pool, uint16_t& ip_id, const FourTuple& tuple, Seq seq,
                               Seq ack, TcpFlags flags, uint16_t window,
                               std::span<const uint8_t> options) {
  rte_mbuf* m = rte_pktmbuf_alloc(pool);
  if (m == nullptr) return nullptr;
  const uint32_t tcp_length = net::TcpView::kMinSize + static_cast<uint32_t>(options.size());
  const uint32_t total = 20 + tcp_length;
  auto* data = reinterpret_cast<uint8_t*>(rte_pktmbuf_append(m, static_cast<uint16_t>(total)));
  if (data == nullptr) {
    rte_pktmbuf_free(m);
    return nullptr;
  }
  std::memset(data, 0, kIpTcpHeaders);
  auto ip = net::Ipv4View::parse({data, total});
  ip->set_version(4);
  ip->set_ihl(5);
  ip->set_total_length(static_cast<uint16_t>(total));
  ip->set_identification(ip_id++);
  ip->set_dont_fragment(true);
  ip->set_ttl(64);
  ip->set_protocol(net::kIpProtocolTcp);
  ip->set_source(net::Ipv4Address(tuple.local_address));
  ip->set_destination(net::Ipv4Address(tuple.remote_address));
  ip->update_checksum();
  uint8_t* tcp_bytes = data + 20;
  auto tcp = net::TcpView::parse({tcp_bytes, tcp_length});
  tcp->set_source_port(tuple.local_port);
  tcp->set_destination_port(tuple.remote_port);
  tcp->set_sequence_number(seq.raw());
  tcp->set_acknowledgment_number(ack.raw());
  tcp->set_data_offset(static_cast<uint8_t>(tcp_length / 4));
  tcp->set_flags(flags);
  tcp->set_window(window);
  std::memcpy(tcp_bytes + net::TcpView::kMinSize, options.data(), options.size());
  tcp->update_checksum(net::Ipv4Address(tuple.local_address),
                       net::Ipv4Address(tuple.remote_address));
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

const char* name_of(State state) {
  switch (state) {
    case State::closed:
      return "CLOSED";
    case State::syn_sent:
      return "SYN-SENT";
    case State::syn_received:
      return "SYN-RECEIVED";
    case State::established:
      return "ESTABLISHED";
    case State::fin_wait_1:
      return "FIN-WAIT-1";
    case State::fin_wait_2:
      return "FIN-WAIT-2";
    case State::close_wait:
      return "CLOSE-WAIT";
    case State::closing:
      return "CLOSING";
    case State::last_ack:
      return "LAST-ACK";
    case State::time_wait:
      return "TIME-WAIT";
  }
  return "?";
}

const char* name_of(CloseReason reason) {
  switch (reason) {
    case CloseReason::fin:
      return "fin";
    case CloseReason::rst:
      return "rst";
    case CloseReason::timeout:
      return "timeout";
    case CloseReason::refused:
      return "refused";
    case CloseReason::aborted:
      return "aborted";
  }
  return "?";
}

// ---- parsing -----------------------------------------------------------------------------------

struct TcpStack::Segment {
  FourTuple tuple;  // local = the destination
  Seq seq, ack;
  TcpFlags flags;
  uint16_t window = 0;
  uint32_t payload_offset = 0;  // from the IPv4 header
  uint32_t length = 0;          // payload bytes
  std::optional<uint16_t> mss;
  std::optional<uint8_t> window_scale;
  bool sack_permitted = false;
  std::optional<net::TcpTimestamps> timestamps;
  std::array<net::SackBlock, net::kMaxSackBlocks> sack{};
  uint8_t sack_blocks = 0;

  bool has(TcpFlag flag) const { return flags.has(flag); }
  // SEG.LEN of RFC 9293: the payload plus one for SYN and one for FIN.
  uint32_t seg_len() const {
    return length + (has(TcpFlag::syn) ? 1 : 0) + (has(TcpFlag::fin) ? 1 : 0);
  }
};

TcpStack::TcpStack(const TcpSettings& settings, net::Stack& ip, rte_mempool* pool,
                   TcpCounters& counters, const Secret& secret, uint64_t now_us)
    : settings_(settings),
      ip_(ip),
      pool_(pool),
      counters_(counters),
      secret_(secret),
      table_(settings.max_connections, secret),
      wheel_(4096, 1000, now_us),
      slots_(settings.max_connections),
      last_now_us_(now_us) {
  ooo_blocks_.resize(settings.out_of_order_blocks);
  for (uint16_t i = settings.out_of_order_blocks; i > 0; --i)
    ooo_free_.push_back(static_cast<uint16_t>(i - 1));
  scoreboards_.resize(settings.sack_scoreboards);
  for (uint16_t i = settings.sack_scoreboards; i > 0; --i)
    scoreboard_free_.push_back(static_cast<uint16_t>(i - 1));
  free_slots_.reserve(settings.max_connections);
  for (uint32_t i = settings.max_connections; i > 0; --i) free_slots_.push_back(i - 1);
  closing_.reserve(64);
}

TcpStack::~TcpStack() {
  for (auto& slot : slots_) {
    if (!slot) continue;
    free_out_of_order(*slot);
    release_scoreboard(*slot);
    wheel_.cancel(slot->retransmit_timer_);
    wheel_.cancel(slot->delayed_ack_timer_);
    wheel_.cancel(slot->wait_timer_);
  }
}

bool TcpStack::listen(net::Ipv4Address address, uint16_t port, ListenerHandler* handler,
                      uint32_t backlog) {
  if (find_listener(address.value(), port) != nullptr) return false;
  listeners_.push_back(Listener{address, port, handler, std::max<uint32_t>(backlog, 1)});
  return true;
}

bool TcpStack::unlisten(net::Ipv4Address address, uint16_t port) {
  return std::erase_if(listeners_, [&](const Listener& l) {
           return l.address == address && l.port == port;
         }) > 0;
}

TcpStack::Listener* TcpStack::find_listener(uint32_t address, uint16_t port) {
  for (Listener& l : listeners_) {
    if (l.address.value() == address && l.port == port) return &l;
  }
  return nullptr;
}

// ---- input -------------------------------------------------------------------------------------

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
    on_segment(*slots_[*slot], s, packet, now_us);
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
  if (!(c.snd_una_ <= quoted_seq && quoted_seq < c.snd_max_)) return;
  constexpr uint8_t kUnreachable = 3;
  if (type == kUnreachable && code == 4) {
    // RFC 1191: fragmentation needed and DF set. The segments above the path MTU are lost:
    // shrink the MSS and send again from SND.UNA.
    const uint32_t mss = next_hop_mtu > kIpTcpHeaders ? next_hop_mtu - kIpTcpHeaders : 0;
    if (mss >= settings_.min_mss && mss < c.mss_) {
      c.mss_ = static_cast<uint16_t>(mss);
      counters_.pmtu_reductions.add();
      if (synchronized(c.state_)) {
        c.snd_nxt_ = c.snd_una_;
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

Connection* TcpStack::allocate(const FourTuple& tuple, PortIndex port, uint64_t) {
  if (free_slots_.empty()) return nullptr;
  const uint32_t slot = free_slots_.back();
  if (!table_.insert(tuple, slot)) return nullptr;
  free_slots_.pop_back();
  slots_[slot] = std::make_unique<Connection>();
  Connection& c = *slots_[slot];
  c.tuple_ = tuple;
  c.port_ = port;
  c.slot_ = slot;
  c.in_table_ = true;
  c.rto_ = RtoEstimator(settings_.min_rto_us, settings_.max_rto_us);
  for (auto* timer : {&c.retransmit_timer_, &c.delayed_ack_timer_, &c.wait_timer_})
    timer->owner = &c;
  c.retransmit_timer_.kind = Connection::kRetransmit;
  c.delayed_ack_timer_.kind = Connection::kDelayedAck;
  c.wait_timer_.kind = Connection::kWait;
  return &c;
}

void TcpStack::on_listen(Listener& listener, PortIndex port, const Segment& s, rte_mbuf* packet,
                         uint64_t now_us) {
  // RFC 9293 3.10.7.2, LISTEN.
  if (s.has(TcpFlag::rst)) {
    rte_pktmbuf_free(packet);
    return;
  }
  const uint16_t our_mss = port_mss(port);
  if (s.has(TcpFlag::ack)) {
    if (!s.has(TcpFlag::syn)) {
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
        c->irs_ = client_isn;
        c->rcv_nxt_ = s.seq;
        c->iss_ = s.ack - 1u;
        c->snd_una_ = c->snd_nxt_ = c->snd_max_ = c->recover_ = s.ack;
        c->mss_ = std::min<uint16_t>(*mss, our_mss);
        if (s.timestamps) {
          if (const auto options = decode_cookie_timestamp(s.timestamps->echo_reply, c->mss_)) {
            c->ts_ok_ = true;
            c->ts_recent_ = s.timestamps->value;
            c->sack_ok_ = options->sack_permitted;
            if (options->window_scale) {
              c->snd_wscale_ = std::min(*options->window_scale, kMaxWindowScale);
              c->rcv_wscale_ = receive_window_scale();
            }
          }
        }
        c->snd_wnd_ = uint32_t{s.window} << c->snd_wscale_;
        c->snd_wl1_ = s.seq;
        c->snd_wl2_ = s.ack;
        c->cc_ = make_congestion_control(settings_.congestion, c->mss_);
        established(*c, now_us);
        if (c->state_ == State::closed) {
          rte_pktmbuf_free(packet);
          return;
        }
        on_segment(*c, s, packet, now_us);
        return;
      }
      if (listener.syn_received >= listener.backlog) counters_.syn_cookies_rejected.add();
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
  if (listener.syn_received >= listener.backlog) {
    // The SYN queue is full: answer statelessly (RFC 4987 3.6).
    counters_.syn_cookies_sent.add();
    const Seq cookie = make_cookie(secret_, s.tuple, s.seq, peer_mss, now_us);
    send_syn_ack_for(port, s, cookie, our_mss, now_us, true);
    rte_pktmbuf_free(packet);
    return;
  }
  Connection* c = allocate(s.tuple, port, now_us);
  if (c == nullptr) {
    counters_.table_full.add();
    rte_pktmbuf_free(packet);
    return;
  }
  counters_.passive_opens.add();
  ++listener.syn_received;
  c->listener_ = listener.handler;
  c->state_ = State::syn_received;
  c->irs_ = s.seq;
  c->rcv_nxt_ = s.seq + 1u;
  c->iss_ = initial_sequence(secret_, s.tuple, now_us);
  c->snd_una_ = c->recover_ = c->iss_;
  c->snd_nxt_ = c->snd_max_ = c->iss_ + 1u;
  negotiate(*c, s);
  c->snd_wnd_ = s.window;  // a SYN's window is never scaled (RFC 7323 2.2)
  c->snd_wl1_ = s.seq;
  c->snd_wl2_ = c->iss_;
  send_syn_ack_for(port, s, c->iss_, our_mss, now_us, false, c);
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
    send_ack(c, now_us);
    rte_pktmbuf_free(packet);
    return;
  }
  // RFC 9293 3.10.7.4, first: the acceptability test.
  const uint32_t window = receive_window(c);
  const uint32_t len = s.seg_len();
  bool acceptable;
  if (len == 0) {
    // The right edge itself is accepted too (as Linux's tcp_sequence does): a peer that filled
    // the window sends its ACKs with SEQ = RCV.NXT + RCV.WND, and refusing them would refuse the
    // acknowledgments the connection needs to make progress.
    acceptable = window == 0 ? s.seq == c.rcv_nxt_ : in_window(s.seq, c.rcv_nxt_, window + 1);
  } else {
    acceptable = window != 0 && (in_window(s.seq, c.rcv_nxt_, window) ||
                                 in_window(s.seq + (len - 1), c.rcv_nxt_, window));
    // A zero window still takes the ACK of a segment at RCV.NXT (its data is dropped).
    if (window == 0 && s.seq == c.rcv_nxt_) acceptable = true;
  }
  if (!acceptable) {
    if (!s.has(TcpFlag::rst)) send_ack(c, now_us);
    rte_pktmbuf_free(packet);
    return;
  }
  // Second: RST (RFC 5961 3.2: only an exact match resets; in-window, a challenge ACK).
  if (s.has(TcpFlag::rst)) {
    if (s.seq == c.rcv_nxt_) {
      counters_.resets_received.add();
      close(c, CloseReason::rst);
    } else {
      send_challenge_ack(c, now_us);
    }
    rte_pktmbuf_free(packet);
    return;
  }
  // Fourth: SYN in a synchronized state (RFC 5961 4.2): challenge ACK. A retransmitted SYN in
  // SYN-RECEIVED gets the SYN-ACK again.
  if (s.has(TcpFlag::syn)) {
    if (c.state_ == State::syn_received && s.seq == c.irs_) {
      send_syn_ack_for(c.port_, s, c.iss_, port_mss(c.port_), now_us, false, &c);
    } else {
      send_challenge_ack(c, now_us);
    }
    rte_pktmbuf_free(packet);
    return;
  }
  // Fifth: ACK.
  if (!s.has(TcpFlag::ack)) {
    rte_pktmbuf_free(packet);
    return;
  }
  if (s.timestamps && !s.has(TcpFlag::rst) && s.seq <= c.rcv_nxt_) {
    c.ts_recent_ = s.timestamps->value;  // RFC 7323 4.3
  }
  if (c.state_ == State::syn_received) {
    if (!(c.snd_una_ < s.ack && s.ack <= c.snd_nxt_)) {
      send_reset(c.port_, c.tuple_, s.ack, Seq(0), false, now_us);
      rte_pktmbuf_free(packet);
      return;
    }
    c.snd_una_ = c.iss_ + 1u;
    c.snd_wnd_ = uint32_t{s.window} << c.snd_wscale_;
    c.snd_wl1_ = s.seq;
    c.snd_wl2_ = s.ack;
    if (c.ts_ok_ && s.timestamps && s.timestamps->echo_reply != 0) {
      c.rto_.sample((timestamp_now(now_us) - s.timestamps->echo_reply) * uint64_t{1000});
    }
    wheel_.cancel(c.retransmit_timer_);
    c.retransmissions_ = 0;
    established(c, now_us);
    if (c.state_ == State::closed) {
      rte_pktmbuf_free(packet);
      return;
    }
  }
  if (!process_ack(c, s, now_us) || c.state_ == State::closed) {
    rte_pktmbuf_free(packet);
    return;
  }
  // Seventh and eighth: data and FIN.
  process_data(c, s, packet, now_us);
  if (c.state_ != State::closed) output(c, now_us);
}

// The first segment to send again from SND.UNA: never beyond what was sent before (SND.MAX), so
// that a retransmission cannot carry new data past the sequence space the peer has been told of.
uint32_t TcpStack::retransmit_length(const Connection& c) const {
  uint32_t outstanding = static_cast<uint32_t>(c.snd_max_ - c.snd_una_);
  if (c.fin_sent_ && outstanding > 0) --outstanding;
  return std::min({uint32_t{c.segment_payload()}, outstanding, c.send_queue_.bytes()});
}

bool TcpStack::process_ack(Connection& c, const Segment& s, uint64_t now_us) {
  if (s.ack > c.snd_max_) {
    // RFC 9293 3.10.7.4 and RFC 5961 5.2: an ACK for data never sent is dropped and answered.
    counters_.acks_for_unsent_data.add();
    send_ack(c, now_us);
    return false;
  }
  const uint32_t scaled_window = uint32_t{s.window} << c.snd_wscale_;
  bool window_changed = false;
  if (c.snd_wl1_ < s.seq || (c.snd_wl1_ == s.seq && c.snd_wl2_ <= s.ack)) {
    window_changed = scaled_window != c.snd_wnd_;
    c.snd_wnd_ = scaled_window;
    c.snd_wl1_ = s.seq;
    c.snd_wl2_ = s.ack;
  }
  if (s.ack > c.snd_una_) {
    uint32_t acked = static_cast<uint32_t>(s.ack - c.snd_una_);
    const bool fin_acked = c.fin_sent_ && s.ack == c.snd_max_;
    const uint32_t data_acked = std::min(acked - (fin_acked ? 1 : 0), c.send_queue_.bytes());
    c.send_queue_.drop_front(data_acked);
    // RTT: from the echoed timestamp (RFC 7323 4.1, every ACK), or from the one timed segment
    // when it was not retransmitted (Karn).
    if (c.ts_ok_ && s.timestamps && s.timestamps->echo_reply != 0) {
      const uint32_t rtt_ms = timestamp_now(now_us) - s.timestamps->echo_reply;
      c.rto_.sample(std::max<uint64_t>(uint64_t{rtt_ms} * 1000, 1));
    } else if (c.timing_rtt_ && s.ack > c.rtt_seq_) {
      c.rto_.sample(now_us - c.rtt_start_us_);
      c.timing_rtt_ = false;
    }
    c.snd_una_ = s.ack;
    if (c.snd_nxt_ < c.snd_una_) c.snd_nxt_ = c.snd_una_;
    c.retransmissions_ = 0;
    c.dupacks_ = 0;
    if (SackScoreboard* board = scoreboard(c)) board->advance(c.snd_una_);
    update_scoreboard(c, s);
    if (c.in_recovery_) {
      if (s.ack >= c.recover_) {
        // RFC 6582 3.2 (3) and RFC 6675 5 (A): a full acknowledgment ends recovery.
        c.in_recovery_ = false;
      } else if (scoreboard(c) == nullptr) {
        // RFC 6582 3.2 (4): a partial ACK; the next hole is retransmitted at once. (With a
        // scoreboard, output() sends what it says is lost.)
        send_segment(c, c.snd_una_, TcpFlag::ack, retransmit_length(c), now_us);
      }
    } else {
      c.cc_->on_ack(data_acked, now_us, c.rto_.srtt_us());
    }
    if (!c.in_recovery_ && scoreboard(c) != nullptr && scoreboard(c)->empty())
      release_scoreboard(c);
    if (c.snd_una_ == c.snd_max_) {
      wheel_.cancel(c.retransmit_timer_);
    } else {
      arm_retransmit(c, now_us);  // RFC 6298 5.3
    }
    if (fin_acked) {
      switch (c.state_) {
        case State::fin_wait_1:
          c.state_ = State::fin_wait_2;
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
  } else if (s.ack == c.snd_una_ && c.snd_max_ > c.snd_una_) {
    const uint32_t newly_sacked = update_scoreboard(c, s);
    // A duplicate ACK: with a scoreboard, one that SACKs new data (RFC 6675 2); without, RFC 5681
    // 2's ACK that carries nothing and changes nothing.
    const SackScoreboard* board = scoreboard(c);
    const bool duplicate = board != nullptr ? newly_sacked > 0
                                            : s.length == 0 && !s.has(TcpFlag::fin) &&
                                                  !window_changed && s.sack_blocks == 0;
    if (duplicate && c.dupacks_ < UINT8_MAX) ++c.dupacks_;
    // RFC 5681 3.2 and RFC 6675 5 (4): the third duplicate ACK, or a scoreboard showing the first
    // unacknowledged segment lost, starts loss recovery.
    if (!c.in_recovery_ && (c.dupacks_ >= SackScoreboard::kDupThresh ||
                            (board != nullptr && board->is_lost(c.snd_una_, c.segment_payload()))))
      enter_recovery(c, now_us);
  }
  return true;
}

void TcpStack::enter_recovery(Connection& c, uint64_t now_us) {
  counters_.fast_retransmits.add();
  c.in_recovery_ = true;
  c.recover_ = c.snd_max_;  // RFC 6675 5 (4.1) RecoveryPoint = HighData
  c.cc_->on_loss(static_cast<uint32_t>(c.snd_max_ - c.snd_una_), now_us);
  c.timing_rtt_ = false;  // Karn: nothing sent from here on times the path
  // RFC 6675 5 (4.3) and RFC 6582 3.2 (2): the first unacknowledged segment goes again at once.
  const uint32_t length = retransmit_length(c);
  send_segment(c, c.snd_una_, TcpFlag::ack, length, now_us);
  if (SackScoreboard* board = scoreboard(c)) board->retransmitted(c.snd_una_ + length);
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
  const Seq data_end = c.snd_max_ - (c.fin_sent_ ? 1u : 0u);
  uint32_t newly = 0;
  for (uint8_t i = 0; i < s.sack_blocks; ++i)
    newly += board->add(Seq(s.sack[i].left), Seq(s.sack[i].right), c.snd_una_, data_end);
  if (board->empty() && !c.in_recovery_) release_scoreboard(c);
  return newly;
}

void TcpStack::release_scoreboard(Connection& c) {
  if (c.scoreboard_ == UINT16_MAX) return;
  scoreboard_free_.push_back(c.scoreboard_);
  c.scoreboard_ = UINT16_MAX;
}

void TcpStack::sack_retransmit(Connection& c, uint64_t now_us) {
  SackScoreboard& board = *scoreboard(c);
  const uint32_t smss = c.segment_payload();
  for (;;) {
    const uint32_t pipe = board.pipe(c.snd_una_, c.snd_max_, smss);
    const uint32_t cwnd = c.cc_->cwnd();
    if (cwnd <= pipe || cwnd - pipe < smss) return;
    const auto hole = board.next_lost(c.snd_una_, smss);
    if (!hole) return;
    const uint32_t length = std::min(hole->length, smss);
    send_segment(c, hole->start, TcpFlag::ack, length, now_us);
    counters_.sack_retransmits.add();
    board.retransmitted(hole->start + length);
  }
}

void TcpStack::process_data(Connection& c, const Segment& s, rte_mbuf* packet, uint64_t now_us) {
  const bool receiving = c.state_ == State::established || c.state_ == State::fin_wait_1 ||
                         c.state_ == State::fin_wait_2;
  bool in_order = true;
  if (s.length > 0 && receiving) {
    if (s.seq > c.rcv_nxt_) {
      // Kept for later if there is room (the FIN, if any, is not: the peer sends it again); an
      // immediate duplicate ACK either way, so that the sender's dupacks count (RFC 5681 4.2).
      const uint32_t window = receive_window(c);
      const uint32_t offset = static_cast<uint32_t>(s.seq - c.rcv_nxt_);
      const uint32_t keep = offset < window ? std::min(s.length, window - offset) : 0;
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
    const uint32_t skip = static_cast<uint32_t>(c.rcv_nxt_ - s.seq);
    const uint32_t usable = std::min(s.length > skip ? s.length - skip : 0, receive_window(c));
    in_order = usable == s.length - std::min(skip, s.length);
    if (usable > 0) {
      rte_pktmbuf_adj(packet, static_cast<uint16_t>(s.payload_offset + skip));
      rte_pktmbuf_trim(packet, static_cast<uint16_t>(rte_pktmbuf_pkt_len(packet) - usable));
      c.rcv_nxt_ += usable;
      c.unread_ += usable;
      // RFC 9293 3.8.6.3 / RFC 5681 4.2: ACK at least every second full segment.
      if (++c.unacked_segments_ >= 2 || s.has(TcpFlag::fin)) {
        send_ack(c, now_us);
      } else if (!c.delayed_ack_timer_.armed()) {
        wheel_.arm(c.delayed_ack_timer_, now_us + settings_.delayed_ack_us);
      }
      ConnectionHandler* handler = c.handler_;
      if (handler != nullptr) {
        handler->on_data(c, packet);
      } else {
        rte_pktmbuf_free(packet);
      }
      packet = nullptr;
      if (c.state_ == State::closed) return;
      if (c.ooo_block_ != UINT16_MAX) {
        // The segment may have filled a hole: what waited behind it follows, and the ACK that
        // tells the sender goes at once.
        deliver_out_of_order(c);
        if (c.state_ == State::closed) return;
        send_ack(c, now_us);
      }
    } else {
      send_ack(c, now_us);  // a duplicate: tell the sender where we are
    }
  }
  if (packet != nullptr) rte_pktmbuf_free(packet);
  if (!s.has(TcpFlag::fin) || !in_order || s.seq + s.length != c.rcv_nxt_) return;
  // Eighth: FIN (RFC 9293 3.10.7.4).
  if (c.state_ == State::time_wait) {
    send_ack(c, now_us);
    wheel_.arm(c.wait_timer_, now_us + settings_.time_wait_us);
    return;
  }
  if (c.fin_received_) return;
  c.fin_received_ = true;
  c.rcv_nxt_ += 1u;
  send_ack(c, now_us);
  switch (c.state_) {
    case State::established:
      c.state_ = State::close_wait;
      break;
    case State::fin_wait_1:
      if (c.fin_sent_ && c.snd_una_ == c.snd_max_) {
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
  if (c.ooo_block_ == UINT16_MAX) {
    if (ooo_free_.empty()) return false;  // the worker's bound
    c.ooo_block_ = ooo_free_.back();
    ooo_free_.pop_back();
  }
  OutOfOrderBlock& block = ooo_blocks_[c.ooo_block_];
  if (block.count == kOutOfOrderPerConnection) return false;  // the connection's bound
  // Sorted by sequence number; a segment starting where one already does is a duplicate.
  size_t at = 0;
  while (at < block.count && block.seq[at] < seq) ++at;
  if (at < block.count && block.seq[at] == seq) return false;
  for (size_t i = block.count; i > at; --i) {
    block.segments[i] = block.segments[i - 1];
    block.seq[i] = block.seq[i - 1];
  }
  block.segments[at] = payload;
  block.seq[at] = seq;
  ++block.count;
  c.last_out_of_order_ = seq;
  return true;
}

void TcpStack::deliver_out_of_order(Connection& c) {
  OutOfOrderBlock& block = ooo_blocks_[c.ooo_block_];
  size_t taken = 0;
  while (taken < block.count && block.seq[taken] <= c.rcv_nxt_) {
    rte_mbuf* m = block.segments[taken];
    const Seq seq = block.seq[taken];
    ++taken;
    const uint32_t length = rte_pktmbuf_pkt_len(m);
    const uint32_t already = static_cast<uint32_t>(c.rcv_nxt_ - seq);
    if (already >= length) {
      rte_pktmbuf_free(m);  // wholly covered by data delivered since
      continue;
    }
    rte_pktmbuf_adj(m, static_cast<uint16_t>(already));
    const uint32_t fresh = length - already;
    c.rcv_nxt_ += fresh;
    c.unread_ += fresh;
    if (c.handler_ != nullptr) {
      c.handler_->on_data(c, m);
    } else {
      rte_pktmbuf_free(m);
    }
    if (c.state_ == State::closed) break;  // free_out_of_order takes the rest
  }
  if (c.ooo_block_ == UINT16_MAX) return;
  for (size_t i = taken; i < block.count; ++i) {
    block.segments[i - taken] = block.segments[i];
    block.seq[i - taken] = block.seq[i];
  }
  block.count = static_cast<uint8_t>(block.count - taken);
  if (block.count == 0) {
    ooo_free_.push_back(c.ooo_block_);
    c.ooo_block_ = UINT16_MAX;
  }
}

void TcpStack::free_out_of_order(Connection& c) {
  if (c.ooo_block_ == UINT16_MAX) return;
  OutOfOrderBlock& block = ooo_blocks_[c.ooo_block_];
  for (size_t i = 0; i < block.count; ++i) rte_pktmbuf_free(block.segments[i]);
  block.count = 0;
  ooo_free_.push_back(c.ooo_block_);
  c.ooo_block_ = UINT16_MAX;
}

size_t TcpStack::sack_option(const Connection& c, uint8_t* out, size_t max_blocks) const {
  if (!c.sack_ok_ || c.ooo_block_ == UINT16_MAX) return 0;
  const OutOfOrderBlock& block = ooo_blocks_[c.ooo_block_];
  // The queue's contiguous ranges, in sequence order.
  std::array<std::pair<Seq, Seq>, kOutOfOrderPerConnection> ranges;
  size_t count = 0;
  for (size_t i = 0; i < block.count; ++i) {
    const Seq left = block.seq[i];
    const Seq right = left + rte_pktmbuf_pkt_len(block.segments[i]);
    if (count > 0 && left <= ranges[count - 1].second) {
      ranges[count - 1].second = seq_max(ranges[count - 1].second, right);
    } else {
      ranges[count++] = {left, right};
    }
  }
  // RFC 2018 4: the first block holds the most recently received segment; the others follow.
  size_t first = 0;
  for (size_t i = 0; i < count; ++i) {
    if (ranges[i].first <= c.last_out_of_order_ && c.last_out_of_order_ < ranges[i].second)
      first = i;
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

uint16_t TcpStack::port_mss(PortIndex port) const {
  return static_cast<uint16_t>(ip_.port_mtu(port) - kIpTcpHeaders);
}

void TcpStack::leave_syn_queue(const Connection& c) {
  if (Listener* l = find_listener(c.tuple_.local_address, c.tuple_.local_port)) {
    if (l->syn_received > 0) --l->syn_received;
  }
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
  c.rcv_adv_ = receive_window(c);
  counters_.established.add();
  if (c.listener_ != nullptr) c.handler_ = c.listener_->accept(c);
  if (c.handler_ != nullptr) c.handler_->on_established(c);
  (void)now_us;
}

// ---- active open -------------------------------------------------------------------------------

Connection* TcpStack::connect(PortIndex port, const FourTuple& tuple, ConnectionHandler* handler,
                              uint64_t now_us) {
  last_now_us_ = now_us;
  Connection* c = allocate(tuple, port, now_us);
  if (c == nullptr) {
    if (!table_.find(tuple)) counters_.table_full.add();
    return nullptr;
  }
  counters_.active_opens.add();
  c->handler_ = handler;
  c->state_ = State::syn_sent;
  c->iss_ = initial_sequence(secret_, tuple, now_us);
  c->snd_una_ = c->recover_ = c->iss_;
  c->snd_nxt_ = c->snd_max_ = c->iss_ + 1u;
  c->mss_ = port_mss(port);
  send_syn(*c, now_us);
  arm_retransmit(*c, now_us);
  return c;
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
  rte_mbuf* m = build_segment(pool_, ip_id_, c.tuple_, c.iss_, Seq(0), TcpFlag::syn, window,
                              std::span<const uint8_t>(options.data(), n));
  if (m == nullptr) return;
  if (c.retransmissions_ > 0) counters_.retransmitted_segments.add();
  counters_.segments_out.add();
  ip_.send_ipv4(c.port_, m, now_us);
}

// The options of the peer's SYN (we offer all of them): MSS, window scale (RFC 7323 2.2: scaling
// only when both SYNs carry it), timestamps, SACK-permitted; and the congestion window for the MSS.
void TcpStack::negotiate(Connection& c, const Segment& s) {
  const uint16_t peer_mss = std::max(s.mss.value_or(kDefaultPeerMss), settings_.min_mss);
  c.mss_ = std::min(peer_mss, port_mss(c.port_));
  if (s.window_scale) {
    c.snd_wscale_ = std::min(*s.window_scale, kMaxWindowScale);
    c.rcv_wscale_ = receive_window_scale();
  } else {
    c.snd_wscale_ = c.rcv_wscale_ = 0;
  }
  if (s.timestamps) {
    c.ts_ok_ = true;
    c.ts_recent_ = s.timestamps->value;
  }
  c.sack_ok_ = s.sack_permitted;
  c.cc_ = make_congestion_control(settings_.congestion, c.mss_);
}

void TcpStack::on_syn_sent(Connection& c, const Segment& s, rte_mbuf* packet, uint64_t now_us) {
  // RFC 9293 3.10.7.3, SYN-SENT.
  rte_pktmbuf_free(packet);
  const bool ack_acceptable = s.has(TcpFlag::ack) && c.iss_ < s.ack && s.ack <= c.snd_max_;
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
  c.irs_ = s.seq;
  c.rcv_nxt_ = s.seq + 1u;
  negotiate(c, s);
  c.snd_wnd_ = s.window;  // a SYN's window is never scaled
  c.snd_wl1_ = s.seq;
  if (!ack_acceptable) {
    // Simultaneous open: our SYN crossed theirs; answer with SYN-ACK from SYN-RECEIVED.
    c.state_ = State::syn_received;
    c.snd_wl2_ = c.iss_;
    Segment syn = s;
    send_syn_ack_for(c.port_, syn, c.iss_, port_mss(c.port_), now_us, false, &c);
    return;
  }
  c.snd_una_ = s.ack;
  c.snd_wl2_ = s.ack;
  if (c.ts_ok_ && s.timestamps->echo_reply != 0) {
    c.rto_.sample(
        std::max<uint64_t>(uint64_t{timestamp_now(now_us) - s.timestamps->echo_reply} * 1000, 1));
  }
  wheel_.cancel(c.retransmit_timer_);
  c.retransmissions_ = 0;
  established(c, now_us);
  if (c.state_ == State::closed) return;
  send_ack(c, now_us);
  output(c, now_us);
}

// ---- the application's side --------------------------------------------------------------------

uint32_t TcpStack::send_space(const Connection& c) const {
  if (c.send_queue_.segments() >= settings_.max_send_segments) return 0;
  const uint32_t queued = c.send_queue_.bytes();
  return queued >= settings_.send_buffer ? 0 : settings_.send_buffer - queued;
}

bool TcpStack::send(Connection& c, rte_mbuf* data, uint64_t now_us) {
  if ((c.state_ != State::established && c.state_ != State::close_wait) || c.fin_queued_) {
    return false;
  }
  if (rte_pktmbuf_pkt_len(data) > send_space(c) ||
      c.send_queue_.segments() + data->nb_segs > settings_.max_send_segments) {
    c.blocked_ = true;
    return false;
  }
  c.send_queue_.push(data);
  output(c, now_us);
  return true;
}

void TcpStack::consumed(Connection& c, uint32_t bytes, uint64_t now_us) {
  c.unread_ -= std::min(bytes, c.unread_);
  if (c.state_ == State::closed) return;
  // Send a window update when the window has opened by two segments or from below one segment
  // (receiver-side silly window avoidance, RFC 9293 3.8.6.2.2).
  const uint32_t window = receive_window(c);
  if (window >= c.rcv_adv_ + 2u * c.mss_ || (c.rcv_adv_ < c.mss_ && window >= c.mss_)) {
    send_ack(c, now_us);
  }
}

void TcpStack::shutdown_write(Connection& c, uint64_t now_us) {
  if (c.fin_queued_ || c.state_ == State::closed) return;
  c.fin_queued_ = true;
  output(c, now_us);
}

void TcpStack::abort(Connection& c, uint64_t now_us) {
  if (c.state_ == State::closed) return;
  if (synchronized(c.state_)) {
    send_reset(c.port_, c.tuple_, c.snd_nxt_, Seq(0), false, now_us);
  }
  close(c, CloseReason::aborted);
}

// ---- output ------------------------------------------------------------------------------------

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
    const uint32_t in_flight = static_cast<uint32_t>(c.snd_nxt_ - c.snd_una_);
    const uint32_t queued = c.send_queue_.bytes();
    const uint32_t unsent = queued > in_flight ? queued - in_flight : 0;
    const bool fin_pending = c.fin_queued_ && (!c.fin_sent_ || c.snd_nxt_ < c.snd_max_);
    if (unsent == 0 && !fin_pending) break;
    uint32_t length = 0;
    if (unsent > 0) {
      const uint32_t flight = sack_recovery ? scoreboards_[c.scoreboard_].pipe(
                                                  c.snd_una_, c.snd_max_, c.segment_payload())
                                            : in_flight;
      const uint32_t cwnd = c.cc_->cwnd();
      const uint32_t allowed = std::min(cwnd > flight ? cwnd - flight : 0,
                                        c.snd_wnd_ > in_flight ? c.snd_wnd_ - in_flight : 0);
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
    const bool new_data = c.snd_nxt_ == c.snd_max_;
    send_segment(c, c.snd_nxt_, flags, length, now_us);
    if (new_data && !c.timing_rtt_ && !c.ts_ok_ && length > 0) {
      c.timing_rtt_ = true;
      c.rtt_seq_ = c.snd_nxt_;
      c.rtt_start_us_ = now_us;
    }
    c.snd_nxt_ += length + (with_fin ? 1u : 0u);
    if (c.snd_max_ < c.snd_nxt_) c.snd_max_ = c.snd_nxt_;
    if (with_fin && !c.fin_sent_) {
      c.fin_sent_ = true;
      c.state_ = c.state_ == State::close_wait ? State::last_ack : State::fin_wait_1;
    }
    if (!c.retransmit_timer_.armed()) arm_retransmit(c, now_us);
    if (with_fin) break;
  }
}

void TcpStack::arm_retransmit(Connection& c, uint64_t now_us) {
  wheel_.arm(c.retransmit_timer_, now_us + c.rto_.rto_us());
}

uint8_t TcpStack::receive_window_scale() const {
  uint8_t shift = 0;
  while (shift < kMaxWindowScale && (settings_.receive_buffer >> shift) > 0xffff) ++shift;
  return shift;
}

uint32_t TcpStack::receive_window(const Connection& c) const {
  uint32_t free = settings_.receive_buffer > c.unread_ ? settings_.receive_buffer - c.unread_ : 0;
  free = std::min(free, uint32_t{0xffff} << c.rcv_wscale_);
  // Only multiples of the scale can be advertised; round down so that we never promise more.
  return free & ~((uint32_t{1} << c.rcv_wscale_) - 1);
}

void TcpStack::send_ack(Connection& c, uint64_t now_us) {
  // A segment without data carries SND.MAX, not SND.NXT (as BSD does): after a retransmission
  // timeout has rewound SND.NXT, the peer may already hold data beyond it, and would find an
  // older SEQ outside its window and ignore the acknowledgment this segment carries.
  send_segment(c, c.snd_max_, TcpFlag::ack, 0, now_us);
}

void TcpStack::send_challenge_ack(Connection& c, uint64_t now_us) {
  // RFC 5961 7: challenge ACKs are rate-limited, here per connection, so that a blind attacker
  // cannot turn in-window guesses into a stream of ACKs (nor probe the limit's state across
  // connections, the side channel of CVE-2016-5696 that a global limit opened).
  if (now_us - c.challenge_window_start_us_ >= kChallengeWindowUs) {
    c.challenge_window_start_us_ = now_us;
    c.challenges_in_window_ = 0;
  }
  if (c.challenges_in_window_ >= kChallengesPerWindow) {
    counters_.challenge_acks_suppressed.add();
    return;
  }
  ++c.challenges_in_window_;
  counters_.challenge_acks.add();
  send_ack(c, now_us);
}

namespace {

// Appends `payload` bytes of `queue` from `offset` to `m` without copying them: each piece is an
// indirect mbuf attached to the queued segment's buffer (its reference count keeps the data until
// both the ACK and the device are done with it). Returns the payload's ones'-complement sum,
// pieces that start at an odd position byte-swapped (RFC 1071 2(B)); nullopt when out of mbufs.
std::optional<uint16_t> chain_payload(rte_mbuf* m, rte_mempool* pool, const MbufQueue& queue,
                                      uint32_t offset, uint32_t payload) {
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
  std::array<uint8_t, net::TcpView::kMaxSize - net::TcpView::kMinSize> options{};
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
  const uint32_t offset = static_cast<uint32_t>(seq - c.snd_una_);
  // Headers only; the payload follows as indirect mbufs over the send queue (zero copy).
  rte_mbuf* m =
      build_segment(pool_, ip_id_, c.tuple_, seq, c.rcv_nxt_, flags,
                    static_cast<uint16_t>(std::min<uint32_t>(window >> c.rcv_wscale_, 0xffff)),
                    std::span<const uint8_t>(options.data(), options_length));
  if (m == nullptr) return;
  if (payload > 0) {
    const auto payload_sum = chain_payload(m, pool_, c.send_queue_, offset, payload);
    if (!payload_sum) {
      rte_pktmbuf_free(m);
      return;
    }
    // The headers were checksummed for a segment without data: lengths and checksums are
    // brought up to date, the TCP checksum by adding the payload's sum and the length change.
    uint8_t* ip = rte_pktmbuf_mtod(m, uint8_t*);
    auto ip_view = net::Ipv4View::parse({ip, 20});
    const uint16_t header_total = ip_view->total_length();
    ip_view->set_total_length(static_cast<uint16_t>(header_total + payload));
    ip_view->update_checksum();
    const uint16_t tcp_header = static_cast<uint16_t>(header_total - 20);
    auto tcp = net::TcpView::parse({ip + 20, tcp_header});
    uint16_t sum = static_cast<uint16_t>(~tcp->checksum());               // pseudo-header + header
    sum = net::ones_complement_add(sum, static_cast<uint16_t>(payload));  // the length grows
    sum = net::ones_complement_add(sum, *payload_sum);
    tcp->set_checksum(static_cast<uint16_t>(~sum));
  }
  c.rcv_adv_ = window;
  if (flags.has(TcpFlag::ack)) {
    wheel_.cancel(c.delayed_ack_timer_);
    c.unacked_segments_ = 0;
  }
  if (seq < c.snd_max_ && (payload > 0 || flags.has(TcpFlag::fin)))
    counters_.retransmitted_segments.add();
  counters_.segments_out.add();
  ip_.send_ipv4(c.port_, m, now_us);
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
                              window, std::span<const uint8_t>(options.data(), n));
  if (m == nullptr) return;
  if (c != nullptr) c->rcv_adv_ = window;
  counters_.segments_out.add();
  ip_.send_ipv4(port, m, now_us);
}

void TcpStack::send_reset(PortIndex port, const FourTuple& tuple, Seq seq, Seq ack, bool with_ack,
                          uint64_t now_us) {
  const TcpFlags flags = with_ack ? TcpFlag::rst | TcpFlag::ack : TcpFlags(TcpFlag::rst);
  rte_mbuf* m = build_segment(pool_, ip_id_, tuple, seq, with_ack ? ack : Seq(0), flags, 0, {});
  if (m == nullptr) return;
  counters_.resets_sent.add();
  counters_.segments_out.add();
  ip_.send_ipv4(port, m, now_us);
}

// ---- timers and closing ------------------------------------------------------------------------

void TcpStack::tick(uint64_t now_us) {
  last_now_us_ = now_us;
  wheel_.advance(now_us, [&](Timer& timer) { on_timer(timer, now_us); });
  for (Connection* c : closing_) {
    const uint32_t slot = c->slot_;
    free_out_of_order(*c);
    release_scoreboard(*c);
    wheel_.cancel(c->retransmit_timer_);
    wheel_.cancel(c->delayed_ack_timer_);
    wheel_.cancel(c->wait_timer_);
    slots_[slot].reset();  // frees its queued mbufs
    free_slots_.push_back(slot);
  }
  closing_.clear();
}

void TcpStack::on_timer(Timer& timer, uint64_t now_us) {
  auto& t = static_cast<Connection::ConnTimer&>(timer);
  Connection& c = *t.owner;
  if (c.state_ == State::closed) return;
  switch (t.kind) {
    case Connection::kDelayedAck:
      send_ack(c, now_us);
      return;
    case Connection::kWait:
      if (c.state_ == State::time_wait) {
        close(c, CloseReason::fin);
      } else if (c.state_ != State::syn_received && c.state_ != State::syn_sent) {
        keepalive(c, now_us);
      } else {
        counters_.timeouts.add();  // bounded time in SYN-RECEIVED
        close(c, CloseReason::timeout);
      }
      return;
    case Connection::kRetransmit:
      break;
  }
  if (c.state_ == State::syn_sent || c.state_ == State::syn_received) {
    // The handshake's own segment again, with backoff, a bounded number of times.
    if (c.retransmissions_ >= settings_.syn_ack_retries) {
      counters_.timeouts.add();
      close(c, CloseReason::timeout);
      return;
    }
    ++c.retransmissions_;
    c.rto_.back_off();
    if (c.state_ == State::syn_sent) {
      send_syn(c, now_us);
    } else {
      // The SYN-ACK answers the options the peer's SYN offered, as the first one did.
      Segment syn;
      syn.tuple = c.tuple_;
      syn.seq = c.irs_;
      if (c.rcv_wscale_ != 0 || c.snd_wscale_ != 0) syn.window_scale = c.snd_wscale_;
      if (c.ts_ok_) syn.timestamps = net::TcpTimestamps{c.ts_recent_, 0};
      syn.sack_permitted = c.sack_ok_;
      send_syn_ack_for(c.port_, syn, c.iss_, port_mss(c.port_), now_us, false, &c);
    }
    arm_retransmit(c, now_us);
    return;
  }
  const bool outstanding = c.snd_max_ > c.snd_una_;
  if (!outstanding) {
    // Persist (RFC 9293 3.8.6.1): probe a zero window with one byte.
    if (c.send_queue_.bytes() > 0 && c.snd_wnd_ == 0) {
      send_segment(c, c.snd_nxt_, TcpFlag::ack, 1, now_us);
      c.snd_nxt_ += 1u;
      c.snd_max_ = c.snd_nxt_;
      c.rto_.back_off();
      arm_retransmit(c, now_us);
    }
    return;
  }
  counters_.rto_expirations.add();
  if (++c.retransmissions_ > settings_.max_retransmissions) {
    counters_.timeouts.add();
    send_reset(c.port_, c.tuple_, c.snd_nxt_, Seq(0), false, now_us);
    close(c, CloseReason::timeout);
    return;
  }
  // RFC 6298 5.4-5.6 and RFC 5681 3.1: back off, collapse the window, go back to SND.UNA.
  c.rto_.back_off();
  c.cc_->on_timeout(static_cast<uint32_t>(c.snd_max_ - c.snd_una_), now_us);
  c.timing_rtt_ = false;
  c.in_recovery_ = false;
  c.dupacks_ = 0;
  // RFC 2018 8 and RFC 6675 5.1: after a timeout the receiver may have reneged; go back to
  // SND.UNA without trusting what was SACKed.
  release_scoreboard(c);
  c.snd_nxt_ = c.snd_una_;
  const uint32_t first = retransmit_length(c);
  const bool fin_only = first == 0 && c.fin_sent_;
  send_segment(c, c.snd_una_, fin_only ? TcpFlag::ack | TcpFlag::fin : TcpFlags(TcpFlag::ack),
               first, now_us);
  c.snd_nxt_ += first + (fin_only ? 1u : 0u);
  arm_retransmit(c, now_us);
}

void TcpStack::keepalive(Connection& c, uint64_t now_us) {
  // Lazy: the timer is not moved on every segment; on expiry, the time since the last one decides.
  const uint64_t quiet_until = c.last_received_us_ + settings_.keepalive_idle_us;
  if (c.keepalive_probes_sent_ == 0 && now_us < quiet_until) {
    wheel_.arm(c.wait_timer_, quiet_until);
    return;
  }
  if (c.keepalive_probes_sent_ >= settings_.keepalive_probes) {
    counters_.timeouts.add();
    send_reset(c.port_, c.tuple_, c.snd_max_, Seq(0), false, now_us);
    close(c, CloseReason::timeout);
    return;
  }
  // RFC 1122 4.2.3.6: a segment with SEQ = SND.UNA - 1 and no data, which the peer must ACK.
  ++c.keepalive_probes_sent_;
  counters_.keepalive_probes.add();
  send_segment(c, c.snd_una_ - 1u, TcpFlag::ack, 0, now_us);
  wheel_.arm(c.wait_timer_, now_us + settings_.keepalive_interval_us);
}

void TcpStack::enter_time_wait(Connection& c, uint64_t now_us) {
  c.state_ = State::time_wait;
  wheel_.cancel(c.retransmit_timer_);
  wheel_.cancel(c.delayed_ack_timer_);
  if (c.handler_ != nullptr && !c.close_notified_) {
    c.close_notified_ = true;
    ConnectionHandler* handler = c.handler_;
    c.handler_ = nullptr;
    handler->on_closed(c, CloseReason::fin);
  }
  if (settings_.time_wait_us == 0) {
    close(c, CloseReason::fin);
    return;
  }
  wheel_.arm(c.wait_timer_, now_us + settings_.time_wait_us);
}

void TcpStack::close(Connection& c, CloseReason reason) {
  if (c.state_ == State::closed) return;
  if (c.state_ == State::syn_received) leave_syn_queue(c);
  c.state_ = State::closed;
  wheel_.cancel(c.retransmit_timer_);
  wheel_.cancel(c.delayed_ack_timer_);
  wheel_.cancel(c.wait_timer_);
  if (c.in_table_) {
    table_.erase(c.tuple_);
    c.in_table_ = false;
  }
  closing_.push_back(&c);
  if (c.handler_ != nullptr && !c.close_notified_) {
    c.close_notified_ = true;
    ConnectionHandler* handler = c.handler_;
    c.handler_ = nullptr;
    handler->on_closed(c, reason);
  }
}

}  // namespace weir::tcp
