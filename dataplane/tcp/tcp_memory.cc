// TcpStack: memory pressure (Linux's tcp_mem). The workers share one mbuf pool with the RX rings;
// whatever TCP keeps (send queues, unread data, out-of-order segments) comes out of it. The pool's
// free count, sampled at most every memory_sample_us, sets a level. Under pressure (and at the
// critical mark) the sources (client addresses, source_table.h) holding at least an equal share
// of what the worker's connections hold are the ones refused new connections, and their
// connections that hold unread data take no more; a source holding less still connects, and its
// connections keep their floor. Below half the critical mark nothing is taken at all, so that TCP
// frees what arrives and the RX rings always refill. The rules are in TcpSettings;
// docs/operations.md ("Limits and defences") gives the marks the dataplane uses.
#include "dataplane/tcp/tcp_stack.h"

#include <algorithm>

namespace weir::tcp {

uint32_t TcpStack::memory_share(const Connection& c) const {
  if (settings_.memory_budget_bytes == 0) return UINT32_MAX;
  return static_cast<uint32_t>(
      std::clamp<uint64_t>(share_per_connection_, 4u * c.mss_, UINT32_MAX));
}

void TcpStack::refresh_memory_share() {
  share_per_connection_ = settings_.memory_budget_bytes / (2 * std::max<size_t>(table_.size(), 1));
}

uint32_t TcpStack::pressure_window(const Connection& c) const {
  // Below half the critical mark nothing more is taken at all: what remains is the RX rings'.
  if (memory_level_ == MemoryLevel::critical && free_mbufs_ < settings_.critical_free_mbufs / 2)
    return 0;
  // The heaviest holders stop first: a connection of a source at or over its share takes nothing
  // more, even one holding nothing itself: one client's thousands of connections, each with a
  // floor of four segments, held the whole pool (measured: tests/integration/test_memory.py).
  if (heavy(c)) return 0;
  // Never past the edge already offered, except a floor for a connection whose application keeps
  // up: it holds nothing, and four segments keep it moving (Linux keeps 4 * advmss).
  const uint32_t floor = c.unread_ == 0 ? 4u * c.mss_ : 0;
  return std::max(offered_window(c), floor);
}

void TcpStack::account(Connection& c) {
  const uint32_t held = c.send_queue_.bytes() + c.unread_;
  if (held == c.charged_bytes_) return;
  sources_.charge(c.source_, c.charged_bytes_, held);
  c.charged_bytes_ = held;
}

bool TcpStack::admit_under_pressure(uint32_t address) {
  if (memory_level_ == MemoryLevel::critical && free_mbufs_ < settings_.critical_free_mbufs / 2) {
    counters_.syns_refused_memory.add();
    return false;
  }
  // A client not yet seen holds nothing (unless the table is full: then it is judged with the
  // others that share the overflow entry).
  const std::optional<SourceTable::Index> source = sources_.lookup(address);
  if (source && sources_.over_share(*source)) {
    counters_.syns_refused_source_share.add();
    return false;
  }
  counters_.syns_admitted_under_pressure.add();
  return true;
}

void TcpStack::sample_memory(uint64_t now_us) {
  next_memory_sample_us_ = now_us + settings_.memory_sample_us;
  const unsigned free = rte_mempool_avail_count(pool_);
  free_mbufs_ = free;
  // Pressure ends an eighth of the way from the pressure mark back up past it (hysteresis).
  const uint32_t band = settings_.pressure_free_mbufs > settings_.critical_free_mbufs
                            ? settings_.pressure_free_mbufs - settings_.critical_free_mbufs
                            : settings_.pressure_free_mbufs;
  const uint32_t leave = settings_.pressure_free_mbufs + band / 8;
  MemoryLevel level = MemoryLevel::normal;
  if (free < settings_.critical_free_mbufs) {
    level = MemoryLevel::critical;
  } else if (free < settings_.pressure_free_mbufs ||
             (memory_level_ != MemoryLevel::normal && free < leave)) {
    level = MemoryLevel::pressure;
  }
  if (level == memory_level_) return;
  const MemoryLevel was = memory_level_;
  memory_level_ = level;
  if (was == MemoryLevel::normal) {
    counters_.memory_pressure_entered.add();
    prune_out_of_order();
  } else if (level == MemoryLevel::normal) {
    reopen_clamped_windows(now_us);
  }
}

void TcpStack::prune_out_of_order() {
  // What waits behind a hole is the cheapest memory to give back: its sender still has it and
  // sends it again (RFC 2018 8 allows the receiver to renege on SACKed data).
  counters_.out_of_order_pruned.add(ooo_store_.clear_all());
}

void TcpStack::reopen_clamped_windows(uint64_t now_us) {
  auto reopen = [&](Connection& c) {
    if (!c.window_clamped_) return;
    c.window_clamped_ = false;
    c.share_clamped_ = false;
    const bool receiving = c.state_ == State::established || c.state_ == State::fin_wait_1 ||
                           c.state_ == State::fin_wait_2;
    // A window update at once: a sender told of a closed window would otherwise wait for its
    // persist timer, backed off through the whole episode.
    if (receiving && window_update_due(c, receive_window(c))) send_ack(c, now_us);
  };
  if (sweep_all_clamped_) {
    for (auto& slot : slots_)
      if (slot) reopen(*slot);
  } else {
    for (uint32_t slot : clamped_)
      if (slots_[slot]) reopen(*slots_[slot]);
  }
  clamped_.clear();
  sweep_all_clamped_ = false;
}

}  // namespace weir::tcp
