// The cluster's owner table (docs/scale-out.md): which Weir box owns a flow when several boxes
// share the VIPs behind ECMP. Each of M rows names a primary (takes the row's SYNs, so holds its
// new connections) and a secondary (the second chance: a primary with no state for a packet hands
// it on to the secondary). A box that receives a packet of a flow it has no state for forwards it
// to the row's primary.
//
// Rendezvous (highest-random-weight) hashing, as GitHub's GLB director builds its forwarding
// table (glb-director, docs/development/glb-hashing.md): every row ranks the peers by
// SipHash-2-4(row, peer name), the best live peer is the primary and the next the secondary. Any
// two peers keep their relative order in a row whatever other peers exist, which gives the
// properties scale-out relies on, and which tests/unit/owner_table_test.cc asserts:
//   - the table is a pure function of the peers' names and states: every box computes the same
//     one, whatever order its configuration lists the peers in;
//   - a peer that leaves changes only the rows where it was primary or secondary, and where it was
//     primary its secondary becomes primary;
//   - a peer that joins becomes primary of about 1/N of the rows and, in exactly those rows, the
//     old primary (which holds the row's connections) becomes the secondary; other rows keep their
//     primary;
//   - a draining peer (a box leaving gracefully) is never primary: where it would be, the next
//     peer is primary and the draining peer secondary, so its sessions still reach it by the
//     second chance while new ones go elsewhere; removing it afterwards moves no primary.
// Like GLB, flows survive one peer changing state at a time; two at once can strand some.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "common/maglev.h"

namespace weir::cluster {

// Most peers a cluster has (the configuration's bound, cluster.peers). Row entries are one byte.
inline constexpr size_t kMaxPeers = 64;
// The default number of rows: the Maglev default, a prime; with 64 peers, ~1,000 rows each.
inline constexpr uint32_t kDefaultRows = 65537;
// The ranking key. Arbitrary but fixed forever: boxes with different keys would disagree on owners.
inline constexpr maglev::SipKey kRankKey = maglev::detail::ascii_key("weir.cluster.own");

enum class PeerState : uint8_t {
  live,      // takes new flows
  draining,  // leaving gracefully: never primary, may stay secondary
  gone,      // down or removed: in no row (kept in the input so indices stay stable)
};

struct Peer {
  std::string name;
  PeerState state = PeerState::live;
};

// A row's owners: indices into the build input, kNoPeer where there is none (no secondary with a
// single eligible peer).
struct Owners {
  static constexpr uint8_t kNoPeer = UINT8_MAX;
  uint8_t primary = kNoPeer;
  uint8_t secondary = kNoPeer;
  bool operator==(const Owners&) const = default;
};

// Peer `name`'s rank weight in `row`: SipHash-2-4 under kRankKey of the row (u32 big-endian), the
// name's length (u32 big-endian) and its bytes. Higher ranks first; equal weights (a 2^-64
// chance) fall back to the smaller name.
uint64_t rank_weight(uint32_t row, std::string_view name);

class OwnerTable {
 public:
  // Builds the table over the peers that are not gone. If every such peer is draining, draining is
  // ignored (someone must take the SYNs). Throws std::invalid_argument, naming the culprit, when
  // `rows` is not a prime in [2, maglev::kMaxTableSize], there are more than kMaxPeers peers, or a
  // name is empty or appears twice. A table with no eligible peer has no rows.
  static OwnerTable build(std::span<const Peer> peers, uint32_t rows = kDefaultRows);

  // The row a flow hash (maglev::hash_five_tuple of the client's side) selects.
  uint32_t row_for(uint64_t flow_hash) const { return maglev::reduce_to_table(flow_hash, size_); }

  // A flow's owners, or std::nullopt when no peer is eligible.
  std::optional<Owners> lookup(uint64_t flow_hash) const {
    if (rows_.empty()) return std::nullopt;
    return rows_[row_for(flow_hash)];
  }

  uint32_t size() const { return size_; }
  // Every row, or empty when no peer was eligible.
  std::span<const Owners> rows() const { return rows_; }

 private:
  OwnerTable(uint32_t size, std::vector<Owners> rows) : size_(size), rows_(std::move(rows)) {}

  uint32_t size_;
  std::vector<Owners> rows_;
};

}  // namespace weir::cluster
