// A worker's accounting by source (issue 12: one client never hurts another): for each client
// IPv4 address, the connections it holds on this worker and the bytes those connections keep
// (send queues and unread data, the backend side of a proxied session included). Under memory
// pressure the TCP stack refuses new connections, and stops the windows, only of sources that
// hold at least an equal share of what all of them hold (tcp_memory.cc), so that a client holding
// little is still served while one client floods (Linux prunes per socket; HAProxy and nginx
// limit per source).
//
// Fixed capacity, no allocation after construction, no locks: the table is the worker's own.
// Past `max_sources` distinct addresses, new ones share one overflow entry (judged as one source;
// the caller counts it), so the table's memory is bounded whatever the number of clients. The
// index is a ConnectionTable keyed by the address alone: keyed hashing, so that a client choosing
// its addresses cannot aim them at one probe sequence.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "dataplane/tcp/connection_table.h"

namespace weir::tcp {

class SourceTable {
 public:
  using Index = uint32_t;
  // The entry shared by sources that found the table full.
  static constexpr Index kOverflow = 0;
  struct Entry {
    uint32_t address = 0;
    uint32_t connections = 0;
    uint64_t bytes = 0;
  };

  // Room for `max_sources` distinct addresses (at least 1) besides the overflow entry.
  SourceTable(uint32_t max_sources, const Secret& secret);

  // One more connection of `address`: its entry, added if new. *overflowed is set when the
  // address found the table full and was given the overflow entry.
  Index attach(uint32_t address, bool* overflowed);
  // One connection fewer; an entry left with none (and so holding nothing) is freed.
  void detach(Index index);
  // A connection of the entry held `from` bytes and now holds `to`.
  void charge(Index index, uint32_t from, uint32_t to) {
    entries_[index].bytes += to;
    entries_[index].bytes -= from;
    held_ += to;
    held_ -= from;
  }
  // The entry a new connection of `address` would be charged to, without adding it: none for an
  // address not seen that would get an entry of its own.
  std::optional<Index> lookup(uint32_t address) const;
  const Entry& entry(Index index) const { return entries_[index]; }
  // Sources holding at least one connection (the overflow entry counts as one).
  uint32_t active() const { return active_; }
  uint64_t held_bytes() const { return held_; }
  uint32_t max_sources() const { return static_cast<uint32_t>(entries_.size() - 1); }
  // Whether the entry holds something and at least an equal share (1/active) of all that the
  // sources hold: the heaviest holders, which pressure refuses and stops first. A source alone
  // holding anything is over its share; of several holding the same, each is.
  bool over_share(Index index) const {
    const uint64_t bytes = entries_[index].bytes;
    return bytes > 0 && bytes * active_ >= held_;
  }

 private:
  static FourTuple key(uint32_t address) { return FourTuple{0, address, 0, 0}; }

  ConnectionTable index_;       // address -> entry
  std::vector<Entry> entries_;  // [kOverflow], then one per source
  std::vector<Index> free_;
  uint32_t active_ = 0;
  uint64_t held_ = 0;
};

}  // namespace weir::tcp
