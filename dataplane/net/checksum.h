// The Internet checksum (RFC 1071): the 16-bit one's complement of the one's-complement sum of
// the data taken as 16-bit big-endian words, a final odd byte padded with a zero byte.
//
// Two quantities appear below and must not be mixed up:
//   a *sum*      — the folded one's-complement sum, not complemented (what partial sums combine);
//   a *checksum* — its complement, the value carried in a header's checksum field.
// Verifying data that contains its own checksum field yields a checksum of 0 (RFC 1071 section 1,
// step 3: the sum over everything, checksum included, is all ones).
#pragma once

#include <cstdint>
#include <span>

#include "common/net/address.h"

namespace weir::net {

// One's-complement addition of two folded sums (RFC 1071 section 2(A): the end-around carry).
constexpr uint16_t ones_complement_add(uint16_t a, uint16_t b) {
  const uint32_t sum = uint32_t{a} + b;
  return static_cast<uint16_t>((sum & 0xffff) + (sum >> 16));
}

// The folded sum of `bytes` added to `initial`. Pieces can be summed separately and combined with
// `initial` or ones_complement_add as long as every piece but the last has an even length (the
// words of a later piece would otherwise be misaligned by one byte).
uint16_t ones_complement_sum(std::span<const uint8_t> bytes, uint16_t initial = 0);

// The checksum of `bytes`: ~sum. Over a header whose checksum field holds zero, the value to store;
// over a header with its checksum in place, 0 when the header is intact.
inline uint16_t internet_checksum(std::span<const uint8_t> bytes) {
  return static_cast<uint16_t>(~ones_complement_sum(bytes));
}

// The sum of the IPv4 pseudo-header that TCP (RFC 9293 section 3.1, "Checksum") and UDP (RFC 768)
// prepend to their checksum: source, destination, zero, protocol, segment length.
constexpr uint16_t ipv4_pseudo_header_sum(Ipv4Address source, Ipv4Address destination,
                                          uint8_t protocol, uint16_t length) {
  uint16_t sum = ones_complement_add(static_cast<uint16_t>(source.value() >> 16),
                                     static_cast<uint16_t>(source.value()));
  sum = ones_complement_add(sum, static_cast<uint16_t>(destination.value() >> 16));
  sum = ones_complement_add(sum, static_cast<uint16_t>(destination.value()));
  sum = ones_complement_add(sum, protocol);
  return ones_complement_add(sum, length);
}

// The checksum over pseudo-header and `segment` (the whole TCP or UDP header and data; a UDP
// sender then sends a zero result as 0xFFFF, RFC 768, since zero there means "none"). An IPv4
// datagram carries at most 65535 bytes, so callers pass no more; ipv4_transport_checksum_valid
// rejects a longer span outright rather than checking it against a wrapped length.
uint16_t ipv4_transport_checksum(Ipv4Address source, Ipv4Address destination, uint8_t protocol,
                                 std::span<const uint8_t> segment);

inline bool ipv4_transport_checksum_valid(Ipv4Address source, Ipv4Address destination,
                                          uint8_t protocol, std::span<const uint8_t> segment) {
  return segment.size() <= 0xffff &&
         ipv4_transport_checksum(source, destination, protocol, segment) == 0;
}

// RFC 1624 section 3, eqn. 3: when a 16-bit word of the covered data changes from `old_word` to
// `new_word`, the new checksum is HC' = ~(~HC + ~m + m'). Unlike RFC 1141's HC' = HC + m + ~m'
// it never yields 0xFFFF where a full recomputation yields 0x0000 (RFC 1624 section 4).
constexpr uint16_t checksum_update16(uint16_t checksum, uint16_t old_word, uint16_t new_word) {
  uint16_t sum =
      ones_complement_add(static_cast<uint16_t>(~checksum), static_cast<uint16_t>(~old_word));
  sum = ones_complement_add(sum, new_word);
  return static_cast<uint16_t>(~sum);
}

// The same for an aligned 32-bit field (an IPv4 address, a TCP sequence number): two words.
constexpr uint16_t checksum_update32(uint16_t checksum, uint32_t old_value, uint32_t new_value) {
  const uint16_t high = checksum_update16(checksum, static_cast<uint16_t>(old_value >> 16),
                                          static_cast<uint16_t>(new_value >> 16));
  return checksum_update16(high, static_cast<uint16_t>(old_value),
                           static_cast<uint16_t>(new_value));
}

}  // namespace weir::net
