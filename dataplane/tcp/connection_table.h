// A worker's connection table: 4-tuple -> connection slot, fixed capacity, no allocation after
// construction. Open addressing with linear probing at a load factor of at most 1/2, and deletion
// by backward shift (Knuth, TAOCP vol. 3, 6.4, Algorithm R), so no tombstones accumulate under
// churn. The hash is keyed with a per-table secret: a remote peer chooses the source address and
// port, and with an unkeyed (or linear, like CRC) hash could aim every connection at one probe
// sequence. It is three AES rounds over the tuple (AES-NI; the construction of Go's runtime map
// hash and Rust's aHash), about 20 instructions where SipHash-2-4 took about 480 on the packet
// path; SipHash-2-4 remains the fallback on CPUs without AES-NI.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <vector>

#include "dataplane/tcp/syn_cookie.h"  // FourTuple, Secret

namespace weir::tcp {

class ConnectionTable {
 public:
  using Slot = uint32_t;  // index of the connection record in the worker's pool

  // Holds up to `max_connections` entries (at least 1).
  ConnectionTable(uint32_t max_connections, const Secret& secret);

  uint32_t size() const { return size_; }
  uint32_t max_connections() const { return max_connections_; }
  // Bytes this table uses per connection it can hold (the entries array only).
  size_t bytes_per_connection() const;

  std::optional<Slot> find(const FourTuple& tuple) const;
  // false when the tuple is present already or the table is full (the caller counts a refusal).
  bool insert(const FourTuple& tuple, Slot slot);
  // false when absent.
  bool erase(const FourTuple& tuple);

 private:
  struct Entry {
    FourTuple tuple;
    Slot slot = kEmpty;
  };
  static constexpr Slot kEmpty = UINT32_MAX;

  uint32_t home(const FourTuple& tuple) const;

  bool use_aes_;
  std::array<uint8_t, 48> aes_keys_;  // three 16-byte round keys derived from the secret
  std::vector<Entry> entries_;
  uint32_t mask_;
  uint32_t max_connections_;
  uint32_t size_ = 0;
  Secret secret_;
};

}  // namespace weir::tcp
