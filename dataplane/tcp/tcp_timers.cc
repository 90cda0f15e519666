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
  counters_.rto_expirations.add();
  if (++c.retransmissions_ > settings_.max_retransmissions) {
    counters_.timeouts.add();
    send_reset(c.port_, c.tuple_, c.snd_.nxt, Seq(0), false, now_us);
    close(c, CloseReason::timeout);
    return;
  }
  // RFC 6298 5.4-5.6 and RFC 5681 3.1: back off, collapse the window, go back to SND.UNA.
  c.rto_.back_off();
  c.cc_->on_timeout(static_cast<uint32_t>(c.snd_.max - c.snd_.una), now_us);
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

void TcpStack::arm_retransmit(Connection& c, uint64_t now_us) {
  wheel_.arm(c.retransmit_timer_, now_us + c.rto_.rto_us());
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
