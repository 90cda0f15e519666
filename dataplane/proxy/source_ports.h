// Backend-side source ports, found in O(1): for a connection from `source` to `backend`:`port`, a
// local port whose replies the NIC (or software steering) hands to this worker, not in use toward
// that destination, and not released so recently that its TIME-WAIT may still hold the 4-tuple.
//
// Why it can be O(1): the Toeplitz hash is linear over XOR, so the hash of a reply's 4-tuple is
// hash(backend, source, backend port, 0) ^ hash(0, 0, 0, local port). The indirection table reads
// only the low bits of the hash (its size is a power of two), so the owner of a flow is
// ((d ^ p) & mask) % workers, with d fixed per destination and p fixed per local port. The ports
// are grouped once, by p & mask (PortBuckets); a destination's owned buckets are d ^ f for every
// entry f that the table maps to this worker. A destination hands out fresh ports by walking its
// owned buckets with a cursor, and takes back closed ones in a FIFO that it reuses once they are
// older than the TIME-WAIT. No search: when both are empty the answer is "exhausted", counted by
// the caller.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <unordered_map>
#include <vector>

#include "dataplane/flow_owner.h"

namespace weir::proxy {

inline constexpr uint16_t kFirstSourcePort = 1024;
inline constexpr uint32_t kSourcePorts = 65536 - kFirstSourcePort;

// The ephemeral ports grouped by the bits of their hash contribution that choose the owner. Built
// once per worker (16 XORs a port), 126 KiB for the ports plus the bucket offsets.
class PortBuckets {
 public:
  explicit PortBuckets(const dataplane::FlowOwnership& ownership);

  // The bucket a destination must draw from to hit `entry` (an indirection entry, masked).
  uint32_t bucket_count() const { return mask_ + 1; }
  uint32_t mask() const { return mask_; }
  // Every port's owner must be checked one by one: the table's size is not a power of two (no
  // driver known to Weir reports one), so the low bits of the hash do not decide the entry.
  bool checks_each_port() const { return check_each_; }
  uint32_t bucket_size(uint32_t bucket) const { return start_[bucket + 1] - start_[bucket]; }
  uint16_t port(uint32_t bucket, uint32_t i) const { return ports_[start_[bucket] + i]; }
  // The part of a reply's hash that the destination decides (the local port counted as 0).
  uint32_t destination_bits(uint32_t source, uint32_t backend, uint16_t backend_port) const;
  // Entries of the (masked) table this worker owns: f, f + workers, ... (all of them once when
  // the owner is checked port by port).
  uint32_t first_owned_entry() const { return check_each_ ? 0 : ownership_.worker; }
  uint32_t owned_entry_step() const { return check_each_ ? 1 : ownership_.workers; }
  const dataplane::FlowOwnership& ownership() const { return ownership_; }

 private:
  dataplane::FlowOwnership ownership_;
  uint32_t mask_ = 0;
  bool check_each_ = false;
  std::vector<uint16_t> ports_;  // kSourcePorts, grouped by bucket
  std::vector<uint32_t> start_;  // bucket -> first index in ports_; one past the end last
};

// One worker's source ports toward every destination it connects to. Single-threaded (the worker).
class SourcePorts {
 public:
  // `reuse_after_us`: how long a released port rests before it is handed out again (the TCP
  // stack's TIME-WAIT, so that a 4-tuple Weir still holds is never chosen).
  SourcePorts(const dataplane::FlowOwnership& ownership, uint64_t reuse_after_us);

  // A local port for `source` -> `backend`:`backend_port`, or nullopt when every port this worker
  // owns toward it is in use or resting.
  std::optional<uint16_t> take(uint32_t source, uint32_t backend, uint16_t backend_port,
                               uint64_t now_us);
  // The port's connection has closed (or was never made).
  void give_back(uint32_t source, uint32_t backend, uint16_t backend_port, uint16_t port,
                 uint64_t now_us);
  // Forgets destinations with nothing in use whose released ports have all rested: looks at one
  // destination a call.
  void tick(uint64_t now_us);

  size_t destinations() const { return destinations_.size(); }
  size_t in_use() const { return in_use_; }
  // What the destinations hold, for the memory figure of an idle session.
  size_t memory_bytes() const;

 private:
  struct Key {
    uint32_t source, backend;
    uint16_t backend_port;
    friend bool operator==(const Key&, const Key&) = default;
  };
  struct KeyHash {
    size_t operator()(const Key& k) const {
      const uint64_t v = (uint64_t{k.source} << 32 | k.backend) * 0x9e3779b97f4a7c15ull;
      return static_cast<size_t>(v ^ (v >> 29) ^
                                 (uint64_t{k.backend_port} * 0xff51afd7ed558ccdull));
    }
  };
  struct Released {
    uint64_t at_us;
    uint16_t port;
  };
  struct Destination {
    uint32_t selector = 0;    // the destination's hash bits, masked
    uint32_t next_entry = 0;  // the owned table entry whose bucket the cursor is in
    uint32_t next_in_bucket = 0;
    uint32_t in_use = 0;
    uint64_t last_release_us = 0;
    bool queued_idle = false;  // in idle_
    // A ring, grown by doubling: the released ports, oldest first.
    std::vector<Released> released;
    size_t released_head = 0, released_count = 0;
  };

  std::optional<uint16_t> fresh(const Key& key, Destination& d);
  void push_released(Destination& d, uint16_t port, uint64_t now_us);

  PortBuckets buckets_;
  uint64_t reuse_after_us_;
  std::unordered_map<Key, Destination, KeyHash> destinations_;
  // Destinations that reached zero ports in use, oldest first: checked for forgetting in tick().
  std::deque<Key> idle_;
  size_t in_use_ = 0;
};

}  // namespace weir::proxy
