// TcpStack: the timers. Retransmission (and persist), delayed ACK, and the wait timer (the bound on
// SYN-RECEIVED, keepalive, the bound on FIN-WAIT-2, TIME-WAIT); and the freeing of closed
// connections on each tick.
#include "dataplane/tcp/tcp_stack.h"

namespace weir::tcp {

using net::TcpFlag;
using net::TcpFlags;

void TcpStack::tick(uint64_t now_us) {
  last_now_us_ = now_us;
  if (settings_.pressure_free_mbufs != 0 && now_us >= next_memory_sample_us_) sample_memory(now_us);
  wheel_.advance(now_us, [&](Timer& timer) { on_timer(timer, now_us); });
  for (Connection* c : closing_) {
    const uint32_t slot = c->slot_;
    sources_.charge(c->source_, c->charged_bytes_, 0);
    sources_.detach(c->source_);
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
  Connection& c = Connection::of_timer(timer);
  if (c.state_ == State::closed) return;
  switch (timer.tag()) {
    case Connection::kDelayedAck:
      send_ack(c, now_us);
      return;
    case Connection::kWait:
      if (c.state_ == State::time_wait) {
        close(c, CloseReason::fin);
      } else if (c.state_ == State::fin_wait_2) {
        fin_wait2_expired(c, now_us);
      } else if (c.state_ != State::syn_received && c.state_ != State::syn_sent) {
        keepalive(c, now_us);
      } else {
        counters_.timeouts.add();  // bounded time in SYN-RECEIVED, or a connect timeout
        close(c, CloseReason::timeout);
      }
      return;
    case Connection::kRetransmit:
      if (defer_after_absence(c, now_us)) return;
      break;
  }
  if (c.state_ == State::syn_sent || c.state_ == State::syn_received) {
    // The handshake's own segment again, with backoff, a bounded number of times.
    if (c.retransmissions_ >= settings_.syn_ack_retries) {
      counters_.timeouts.add();
      close(c, CloseReason::timeout);
      return;
    }
    c.count_retransmission();
    c.rto_.back_off();
    if (c.state_ == State::syn_sent) {
      send_syn(c, now_us);
    } else {
      // The SYN-ACK answers the options the peer's SYN offered, as the first one did.
      Segment syn;
      syn.tuple = c.tuple_;
      syn.seq = c.rcv_.irs;
      if (c.rcv_.wnd_scale != 0 || c.snd_.wnd_scale != 0) syn.window_scale = c.snd_.wnd_scale;
      if (c.ts_ok_) syn.timestamps = net::TcpTimestamps{c.ts_recent_, 0};
      syn.sack_permitted = c.sack_ok_;
      send_syn_ack_for(c.port_, syn, c.snd_.iss, port_mss(c.port_), now_us, false, &c);
    }
    arm_retransmit(c, now_us);
    return;
  }
  const bool outstanding = c.snd_.max > c.snd_.una;
  if (!outstanding) {
    // Persist (RFC 9293 3.8.6.1): probe a zero window with one byte.
    if (c.send_queue_.bytes() > 0 && c.snd_.wnd == 0) {
      send_segment(c, c.snd_.nxt, TcpFlag::ack, 1, now_us);
      c.snd_.nxt += 1u;
      c.snd_.max = c.snd_.nxt;
      c.rto_.back_off();
      arm_retransmit(c, now_us);
    }
    return;
  }
  if (c.loss_timer_ == Connection::LossTimer::probe) {
    send_loss_probe(c, now_us);
    return;
  }
  if (c.loss_timer_ == Connection::LossTimer::reorder) {
    reordering_window_passed(c, now_us);
    return;
  }
  counters_.rto_expirations.add();
  c.count_retransmission();
  if (c.retransmissions_ > settings_.max_retransmissions) {
    counters_.timeouts.add();
    send_reset(c.port_, c.tuple_, c.snd_.nxt, Seq(0), false, now_us);
    close(c, CloseReason::timeout);
    return;
  }
  // RFC 6298 5.4-5.6 and RFC 5681 3.1: back off, collapse the window, go back to SND.UNA.
  c.rto_.back_off();
  c.cc_.on_timeout(static_cast<uint32_t>(c.snd_.max - c.snd_.una), now_us);
  c.timing_rtt_ = false;
  c.in_recovery_ = false;
  c.snd_.dupacks = 0;
  // RFC 2018 8 and RFC 6675 5.1: after a timeout the receiver may have reneged; go back to
  // SND.UNA without trusting what was SACKed.
  release_scoreboard(c);
  c.snd_.nxt = c.snd_.una;
  const uint32_t first = retransmit_length(c);
  const bool fin_only = first == 0 && c.fin_sent_;
  send_segment(c, c.snd_.una, fin_only ? TcpFlag::ack | TcpFlag::fin : TcpFlags(TcpFlag::ack),
               first, now_us);
  c.snd_.nxt += first + (fin_only ? 1u : 0u);
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
    send_reset(c.port_, c.tuple_, c.snd_.max, Seq(0), false, now_us);
    close(c, CloseReason::timeout);
    return;
  }
  // RFC 1122 4.2.3.6: a segment with SEQ = SND.UNA - 1 and no data, which the peer must ACK.
  ++c.keepalive_probes_sent_;
  counters_.keepalive_probes.add();
  send_segment(c, c.snd_.una - 1u, TcpFlag::ack, 0, now_us);
  wheel_.arm(c.wait_timer_, now_us + settings_.keepalive_interval_us);
}

void TcpStack::fin_wait2_expired(Connection& c, uint64_t now_us) {
  // Lazy, as keepalive is: the bound counts from the peer's last segment, so a peer still sending
  // on its half of a half-closed connection keeps it.
  const uint64_t quiet_until = c.last_received_us_ + settings_.fin_wait2_timeout_us;
  if (now_us < quiet_until) {
    wheel_.arm(c.wait_timer_, quiet_until);
    return;
  }
  // As Linux does when tcp_fin_timeout passes: a RST, so that a peer still there hears of it.
  counters_.fin_wait2_timeouts.add();
  send_reset(c.port_, c.tuple_, c.snd_.max, Seq(0), false, now_us);
  close(c, CloseReason::timeout);
}

// A loss timer that comes due in the first tick after the worker was away judged a silence it did
// not listen to: the ACKs may be waiting in the receive ring, read after this tick. Such timers
// fired by the dozen after each stall of the worker on a busy machine: every connection with data
// in flight backed off, collapsed its window and went back to SND.UNA, and the inflated timeouts
// then made the next real loss cost seconds. It waits until the worker has listened for
// kCatchUpUs, once: a peer that is really silent times out a millisecond later.
bool TcpStack::defer_after_absence(Connection& c, uint64_t now_us) {
  if (c.loss_timer_deferred_ || back_at_us_ == 0 || now_us >= back_at_us_ + kCatchUpUs)
    return false;
  c.loss_timer_deferred_ = true;
  counters_.loss_timers_deferred.add();
  wheel_.arm(c.retransmit_timer_, back_at_us_ + kCatchUpUs);
  return true;
}

uint64_t TcpStack::path_rtt(uint64_t measured_us, uint64_t now_us) const {
  if (back_at_us_ == 0 || now_us >= back_at_us_ + kCatchUpUs) return measured_us;
  // The ACK came after the worker left (it would have been read before), so the round trip was at
  // least the time from sending to leaving: the measurement less the absence.
  const uint64_t away = now_us - away_since_us_;
  return measured_us > away ? measured_us - away : 1;
}

void TcpStack::arm_retransmit(Connection& c, uint64_t now_us) {
  c.loss_timer_deferred_ = false;
  uint64_t deadline = now_us + c.rto_.rto_us();
  Connection::LossTimer kind = Connection::LossTimer::rto;
  if (const uint64_t probe = probe_timeout(c); probe != 0 && now_us + probe < deadline) {
    deadline = now_us + probe;
    kind = Connection::LossTimer::probe;
  }
  // A running reordering window is not pushed back by the ACKs that follow.
  if (reordering_window_running(c) &&
      c.retransmit_timer_.deadline_tick() * wheel_.tick_us() <= deadline) {
    return;
  }
  c.loss_timer_ = kind;
  wheel_.arm(c.retransmit_timer_, deadline);
}

// RFC 8985 7.2: when the ACKs stop with data outstanding, probe after about two round trips
// rather than wait for the RTO, which under a noisy RTT is many times longer. Burst loss takes
// the tail of a flight whole, and nothing is left to SACK it: the probe's ACK shows the holes. Only
// with SACK (the probe is useless without it), outside recovery, one probe per episode, and not
// after a timeout until a new RTT sample (the backoff then says the path is in trouble).
uint64_t TcpStack::probe_timeout(const Connection& c) const {
  constexpr uint64_t kWorstCaseDelayedAckUs = 200'000;  // RFC 8985 7.2's WCDelAckT
  constexpr uint64_t kFloorUs = 10'000;  // not faster than a busy peer's ACK can come back
  if (!c.sack_ok_ || c.in_recovery_ || c.probe_outstanding_ || c.rto_.backoffs() != 0 ||
      !(c.snd_.una < c.snd_.max)) {
    return 0;
  }
  if (c.state_ != State::established && c.state_ != State::close_wait &&
      c.state_ != State::fin_wait_1 && c.state_ != State::closing && c.state_ != State::last_ack) {
    return 0;
  }
  // Without a sample (a handshake that was retransmitted leaves RTO at 3 s), RFC 8985's 1 s.
  if (!c.rto_.has_sample()) return RtoEstimator::kInitialRtoUs;
  uint64_t timeout = 2 * c.rto_.srtt_us();
  // A lone segment may wait out the peer's delayed-ACK timer before anything comes back.
  if (static_cast<uint32_t>(c.snd_.max - c.snd_.una) <= c.segment_payload() + 1u) {
    timeout += kWorstCaseDelayedAckUs;
  }
  return std::max(timeout, kFloorUs);
}

// RFC 8985 7.3: the highest segment sent, again (with the FIN if one was sent), then the RTO.
void TcpStack::send_loss_probe(Connection& c, uint64_t now_us) {
  counters_.tail_loss_probes.add();
  c.probe_outstanding_ = true;
  const Seq data_end = c.snd_.max - (c.fin_sent_ ? 1u : 0u);
  const uint32_t length =
      std::min<uint32_t>(c.segment_payload(), static_cast<uint32_t>(data_end - c.snd_.una));
  const TcpFlags flags = c.fin_sent_ ? TcpFlag::ack | TcpFlag::fin : TcpFlags(TcpFlag::ack);
  send_segment(c, data_end - length, flags, length, now_us);
  arm_retransmit(c, now_us);
}

void TcpStack::watch_reordering(Connection& c, uint64_t now_us) {
  const SackScoreboard* board = scoreboard(c);
  if (board == nullptr || !board->has_unmarked_hole(c.snd_.una, c.segment_payload())) {
    if (reordering_window_running(c)) {  // nothing left to wait for
      c.loss_timer_ = Connection::LossTimer::rto;
      arm_retransmit(c, now_us);
    }
    return;
  }
  if (reordering_window_running(c)) return;
  // RFC 8985 6.2's reordering window, a quarter of the round trip (SRTT here, for want of the
  // minimum), at least a tick of the wheel.
  const uint64_t deadline = now_us + std::max(c.rto_.srtt_us() / 4, wheel_.tick_us());
  if (!c.retransmit_timer_.armed() ||
      deadline < c.retransmit_timer_.deadline_tick() * wheel_.tick_us()) {
    c.loss_timer_deferred_ = false;
    wheel_.arm(c.retransmit_timer_, deadline);
    c.loss_timer_ = Connection::LossTimer::reorder;
  }
}

void TcpStack::reordering_window_passed(Connection& c, uint64_t now_us) {
  c.loss_timer_ = Connection::LossTimer::rto;
  if (SackScoreboard* board = scoreboard(c);
      board != nullptr && board->has_unmarked_hole(c.snd_.una, c.segment_payload())) {
    board->mark_lost_below(board->highest_sacked());
    counters_.losses_marked_by_time.add();
    if (!c.in_recovery_) enter_recovery(c, now_us);
    output(c, now_us);
  }
  if (c.snd_.una < c.snd_.max) arm_retransmit(c, now_us);
}

void TcpStack::enter_time_wait(Connection& c, uint64_t now_us) {
  c.state_ = State::time_wait;
  ++time_wait_connections_;  // close() takes it off
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
  if (time_wait_connections_ > settings_.max_time_wait) {
    // As Linux past tcp_max_tw_buckets: the table is worth more than protection from old
    // duplicates of this one connection.
    counters_.time_wait_overflows.add();
    close(c, CloseReason::fin);
    return;
  }
  wheel_.arm(c.wait_timer_, now_us + settings_.time_wait_us);
}

}  // namespace weir::tcp
