// Weighted Maglev consistent hashing: the lookup table of Eisenbud et al., "Maglev: A Fast and
// Reliable Software Network Load Balancer", NSDI 2016, section 3.4, extended with weights.
//
// Several Weir boxes behind one ECMP group must send a flow to the same backend without talking to
// each other, so the table is a pure function of the eligible backends' identities (name, address,
// port) and weights: the input order, the process, the machine and the compiler do not matter.
// That is why every hash here is SipHash-2-4 with fixed, published-in-source keys (never
// std::hash, whose values are implementation-defined) and why the builder sorts the backends into
// a canonical order before populating the table.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace weir::maglev {

// SipHash-2-4 (Aumasson and Bernstein, "SipHash: a fast short-input PRF", 2012): a well-specified
// 64-bit keyed hash with published test vectors, so every build of Weir computes the same value.
using SipKey = std::array<uint8_t, 16>;
uint64_t siphash24(const SipKey& key, std::span<const uint8_t> message);

namespace detail {
constexpr SipKey ascii_key(const char (&text)[17]) {
  SipKey key{};
  for (size_t i = 0; i < key.size(); ++i) key[i] = static_cast<uint8_t>(text[i]);
  return key;
}
}  // namespace detail

// The three fixed keys: h1 (offset) and h2 (skip) of the paper's permutation, and the flow hash.
// They are arbitrary but must never change: a different key gives a different table, and two
// Weir versions with different keys would disagree on every flow during a rolling upgrade.
inline constexpr SipKey kOffsetKey = detail::ascii_key("weir.maglev.offs");
inline constexpr SipKey kSkipKey = detail::ascii_key("weir.maglev.skip");
inline constexpr SipKey kFlowKey = detail::ascii_key("weir.flow.hash.1");

// Deterministic primality test (trial division; exact for every uint32_t).
bool is_prime(uint32_t n);

// The paper's recommended size (section 3.4 uses 65537; M should exceed 100 N for shares within
// about 1%). Any prime in [2, kMaxTableSize] is accepted; the cap bounds memory (4 bytes a slot)
// and keeps the build's arithmetic within 64 bits.
inline constexpr uint32_t kDefaultTableSize = 65537;
inline constexpr uint32_t kMaxTableSize = uint32_t{1} << 24;

// A flow hash's index in a table of `size` entries: multiply-shift range reduction (Lemire, "Fast
// Random Integer Generation in an Interval", 2019) of the hash folded to 32 bits; uniform to within
// size / 2^32. Shared by the Maglev table and the cluster's owner table (common/owner_table.h).
inline uint32_t reduce_to_table(uint64_t flow_hash, uint32_t size) {
  const uint32_t folded = static_cast<uint32_t>(flow_hash ^ (flow_hash >> 32));
  return static_cast<uint32_t>((uint64_t{folded} * size) >> 32);
}

struct Backend {
  std::string name;
  uint32_t address;        // IPv4, host byte order
  uint16_t port;           // host byte order
  uint32_t weight;         // >= 1; a backend's share of the slots is weight / (sum of weights)
  bool accepts_new_flows;  // false while down or draining: kept in the input, left out of the table
};

// The backend's permutation of the slots (paper section 3.4): slot j of its preference list is
// (offset + j * skip) mod M. offset = h1(id) mod M, skip = h2(id) mod (M - 1) + 1, where id is the
// identity encoding below and h1, h2 are SipHash-2-4 under kOffsetKey and kSkipKey. M prime and
// 1 <= skip < M make every list a full permutation.
//
// Identity encoding (big-endian): u32 name length, the name's bytes, u32 address, u16 port. The
// length prefix makes the encoding injective: a name's last bytes cannot pass for an address. The
// weight is not part of the identity: changing a weight moves slots between backends but does not
// reshuffle anyone's preferences.
struct Preference {
  uint32_t offset;
  uint32_t skip;
};
Preference preference(const Backend& backend, uint32_t table_size);

class Table {
 public:
  // Marks a slot owned by nobody; never stored in a built table (every slot has an owner unless
  // the table has no eligible backend, in which case it has no slots at all).
  static constexpr uint32_t kNoBackend = UINT32_MAX;

  // Builds the table from the backends whose accepts_new_flows is true. The result maps to
  // indices into `backends` (the caller's order), but its content by identity does not depend on
  // that order. Throws std::invalid_argument, naming the culprit, when table_size is not a prime in
  // [2, kMaxTableSize], a weight is 0 (for any backend, eligible or not: whether a configuration is
  // valid must not depend on which backends happen to be up), two backends share an identity, a
  // name is longer than 2^32 - 1 bytes, or more backends are eligible than the table has slots.
  static Table build(std::span<const Backend> backends, uint32_t table_size = kDefaultTableSize);

  // The backend (index into the build input) for a flow, or std::nullopt when no backend was
  // eligible. No allocation, no division: one multiply and one load.
  std::optional<uint32_t> lookup(uint64_t flow_hash) const {
    if (owners_.empty()) return std::nullopt;
    return owners_[slot_for(flow_hash)];
  }

  // The slot a flow hash selects (reduce_to_table, below).
  uint32_t slot_for(uint64_t flow_hash) const { return reduce_to_table(flow_hash, size_); }

  uint32_t size() const { return size_; }

  // Every slot's owner (index into the build input), or empty when no backend was eligible.
  // 4 bytes a slot: a 16-bit entry would cap a pool at 65535 backends counting the excluded ones
  // (the entries index the full input), and 65537 x 4 B = 256 KiB still sits in a core's L2.
  std::span<const uint32_t> entries() const { return owners_; }

 private:
  Table(uint32_t size, std::vector<uint32_t> owners) : size_(size), owners_(std::move(owners)) {}

  uint32_t size_;
  std::vector<uint32_t> owners_;
};

// Flow hashes for the pool's `hash.key`. All fields are host byte order; the hash input is their
// big-endian encoding (five_tuple: src address, dst address, src port, dst port, protocol = 13
// bytes; source_ip: src address = 4 bytes), hashed with SipHash-2-4 under kFlowKey.
struct FiveTuple {
  uint32_t src_address;
  uint32_t dst_address;
  uint16_t src_port;
  uint16_t dst_port;
  uint8_t protocol;
};

enum class FlowKey : uint8_t { five_tuple, source_ip };

uint64_t hash_five_tuple(const FiveTuple& tuple);
uint64_t hash_source_ip(uint32_t src_address);
uint64_t flow_hash(FlowKey key, const FiveTuple& tuple);

}  // namespace weir::maglev
