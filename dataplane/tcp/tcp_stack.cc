// TcpStack: construction, listeners, active open, the calls of the layer above, and close. Segment
// arrival is in tcp_input.cc, building and sending segments in tcp_output.cc, timers in
// tcp_timers.cc.
#include "dataplane/tcp/tcp_stack.h"

#include <algorithm>

namespace weir::tcp {

// An idle established connection holds no mbuf: its record (CUBIC's state included) and its two
// entries in a connection table kept at most half full stay within 384 bytes (docs/benchmarks.md).
constexpr size_t kIdleConnectionBytes =
    sizeof(Connection) + 2 * (sizeof(FourTuple) + sizeof(ConnectionTable::Slot));
static_assert(kIdleConnectionBytes <= 392, "an idle connection outgrew its 392 bytes");

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

TcpStack::TcpStack(const TcpSettings& settings, net::Stack& net_stack, rte_mempool* pool,
                   TcpCounters& counters, const Secret& secret, uint64_t now_us)
    : settings_(settings),
      net_stack_(net_stack),
      pool_(pool),
      counters_(counters),
      secret_(secret),
      table_(settings.max_connections, secret),
      sources_(std::min(settings.max_sources, settings.max_connections), secret),
      wheel_(4096, kTimerTickUs, now_us),
      slots_(settings.max_connections),
      ooo_store_(settings.out_of_order_segments, kOutOfOrderPerConnection),
      last_now_us_(now_us) {
  scoreboards_.resize(settings.sack_scoreboards);
  for (uint16_t i = settings.sack_scoreboards; i > 0; --i)
    scoreboard_free_.push_back(static_cast<uint16_t>(i - 1));
  free_slots_.reserve(settings.max_connections);
  for (uint32_t i = settings.max_connections; i > 0; --i) free_slots_.push_back(i - 1);
  closing_.reserve(64);
  refresh_memory_share();
  clamped_.reserve(settings.max_connections);
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

Connection* TcpStack::allocate(const FourTuple& tuple, PortIndex port, uint64_t) {
  if (free_slots_.empty()) return nullptr;
  const uint32_t slot = free_slots_.back();
  if (!table_.insert(tuple, slot)) return nullptr;
  refresh_memory_share();
  free_slots_.pop_back();
  slots_[slot] = std::make_unique<Connection>();
  Connection& c = *slots_[slot];
  c.tuple_ = tuple;
  c.port_ = port;
  c.slot_ = slot;
  c.in_table_ = true;
  bool overflowed = false;
  c.source_ = sources_.attach(tuple.remote_address, &overflowed);
  if (overflowed) counters_.sources_table_full.add();
  c.rto_ = RtoEstimator(settings_.min_rto_us, settings_.max_rto_us);
  c.retransmit_timer_.set_tag(Connection::kRetransmit);
  c.delayed_ack_timer_.set_tag(Connection::kDelayedAck);
  c.wait_timer_.set_tag(Connection::kWait);
  return &c;
}

uint16_t TcpStack::port_mss(PortIndex port) const {
  return static_cast<uint16_t>(net_stack_.port_mtu(port) - kIpTcpHeaders);
}

void TcpStack::leave_syn_queue(const Connection& c) {
  if (Listener* l = find_listener(c.tuple_.local_address, c.tuple_.local_port)) {
    if (l->syn_received > 0) --l->syn_received;
  }
}

// ---- active open -------------------------------------------------------------------------------

Connection* TcpStack::connect(PortIndex port, const FourTuple& tuple, ConnectionHandler* handler,
                              uint64_t now_us, uint64_t handshake_timeout_us) {
  last_now_us_ = now_us;
  Connection* c = allocate(tuple, port, now_us);
  if (c == nullptr) {
    if (!table_.find(tuple)) counters_.table_full.add();
    return nullptr;
  }
  counters_.active_opens.add();
  c->handler_ = handler;
  c->state_ = State::syn_sent;
  c->snd_.iss = initial_sequence(secret_, tuple, now_us);
  c->snd_.una = c->snd_.recover = c->snd_.iss;
  c->snd_.nxt = c->snd_.max = c->snd_.iss + 1u;
  c->mss_ = port_mss(port);
  send_syn(*c, now_us);
  arm_retransmit(*c, now_us);
  // The wait timer is free until the handshake completes (established() re-arms it).
  if (handshake_timeout_us != 0) wheel_.arm(c->wait_timer_, now_us + handshake_timeout_us);
  return c;
}

// ---- the application's side --------------------------------------------------------------------

uint32_t TcpStack::send_space(const Connection& c) const {
  if (c.send_queue_.segments() >= settings_.max_send_segments) return 0;
  uint32_t budget = std::min(settings_.send_buffer, memory_share(c));
  // Under pressure a send queue grows no further than four segments: data the application
  // cannot hand over stays unread, and the window of the connection it came from stays shut.
  // A source at or over its share queues nothing more at all (tcp_memory.cc).
  if (memory_level_ != MemoryLevel::normal) budget = heavy(c) ? 0 : std::min(budget, 4u * c.mss_);
  const uint32_t queued = c.send_queue_.bytes();
  return queued >= budget ? 0 : budget - queued;
}

void TcpStack::charge_to(Connection& c, net::Ipv4Address source) {
  sources_.charge(c.source_, c.charged_bytes_, 0);
  sources_.detach(c.source_);
  bool overflowed = false;
  c.source_ = sources_.attach(source.value(), &overflowed);
  if (overflowed) counters_.sources_table_full.add();
  sources_.charge(c.source_, 0, c.charged_bytes_);
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
  // Small writes are merged into the queue's last buffer while none of it has been sent (Linux's
  // rule); once some of it has, each write goes as it comes, and the queue's segment bound caps
  // the small segments in flight.
  const uint32_t sent = static_cast<uint32_t>(c.snd_.max - c.snd_.una);
  const uint32_t unsent = c.send_queue_.bytes() > sent ? c.send_queue_.bytes() - sent : 0;
  if (unsent >= c.send_queue_.tail_bytes() && unsent > 0) {
    counters_.segments_collapsed.add(c.send_queue_.push_collapsing(data));
  } else {
    c.send_queue_.push(data);
  }
  account(c);
  output(c, now_us);
  return true;
}

void TcpStack::keep_received(MbufQueue& queue, rte_mbuf* data) {
  counters_.segments_collapsed.add(queue.push_collapsing(data));
}

void TcpStack::consumed(Connection& c, uint32_t bytes, uint64_t now_us) {
  c.unread_ -= std::min(bytes, c.unread_);
  account(c);
  if (c.state_ == State::closed) return;
  // Consumed while process_data hands it a segment: the ACK decision after the handler returns
  // covers the window update.
  if (c.delivering_) return;
  if (window_update_due(c, receive_window(c))) {
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
    send_reset(c.port_, c.tuple_, c.snd_.nxt, Seq(0), false, now_us);
  }
  close(c, CloseReason::aborted);
}

// ---- closing -----------------------------------------------------------------------------------

void TcpStack::close(Connection& c, CloseReason reason) {
  if (c.state_ == State::closed) return;
  if (c.state_ == State::syn_received) leave_syn_queue(c);
  if (c.state_ == State::time_wait) --time_wait_connections_;
  c.state_ = State::closed;
  wheel_.cancel(c.retransmit_timer_);
  wheel_.cancel(c.delayed_ack_timer_);
  wheel_.cancel(c.wait_timer_);
  if (c.in_table_) {
    table_.erase(c.tuple_);
    refresh_memory_share();
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
