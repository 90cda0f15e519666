#include "dataplane/net/checksum.h"

#include <bit>
#include <cstring>

#if defined(__x86_64__)
#include <x86intrin.h>
#endif

namespace weir::net {
namespace {

// Folds a wide one's-complement accumulator to 16 bits, end-around carries included.
uint16_t fold(uint64_t sum) {
  sum = (sum & 0xffffffff) + (sum >> 32);
  sum = (sum & 0xffffffff) + (sum >> 32);
  sum = (sum & 0xffff) + (sum >> 16);
  sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(sum);
}

// Sums the data in the host's native word order. RFC 1071 section 2(B): the one's-complement sum
// is byte-order independent, so summing byte-swapped words gives the byte-swapped sum; one swap
// of the folded result (on little-endian hosts) replaces a swap per word. 32-bit words go into a
// 64-bit accumulator, which cannot overflow before 2^32 words (16 GiB), and the compiler
// vectorises the loop.
uint16_t native_sum(const uint8_t* p, size_t n) {
  uint64_t sum = 0;
#if defined(__x86_64__)
  // The bulk as 64-bit words in one add-with-carry chain (as Linux's csum_partial): about one
  // instruction per 8 bytes, where the 32-bit loop below takes about five per 16. A carry out of
  // the chain is worth 1 (2^64 = 1 modulo 2^16 - 1), added back below.
  if (n >= 64) {
    unsigned long long wide = 0;
    unsigned char carry = 0;
    const auto word = [](const uint8_t* at) {
      unsigned long long w;
      std::memcpy(&w, at, sizeof w);
      return w;
    };
    while (n >= 64) {  // written out: GCC keeps the chain in CF only within straight-line code
      carry = _addcarry_u64(carry, wide, word(p), &wide);
      carry = _addcarry_u64(carry, wide, word(p + 8), &wide);
      carry = _addcarry_u64(carry, wide, word(p + 16), &wide);
      carry = _addcarry_u64(carry, wide, word(p + 24), &wide);
      carry = _addcarry_u64(carry, wide, word(p + 32), &wide);
      carry = _addcarry_u64(carry, wide, word(p + 40), &wide);
      carry = _addcarry_u64(carry, wide, word(p + 48), &wide);
      carry = _addcarry_u64(carry, wide, word(p + 56), &wide);
      p += 64;
      n -= 64;
    }
    sum = (wide & 0xffffffff) + (wide >> 32) + carry;  // at most 2^33: the loop below can't wrap
  }
#endif
  while (n >= 16) {
    uint32_t words[4];
    std::memcpy(words, p, sizeof words);
    sum += uint64_t{words[0]} + words[1] + words[2] + words[3];
    p += 16;
    n -= 16;
  }
  while (n >= 4) {
    uint32_t word;
    std::memcpy(&word, p, sizeof word);
    sum += word;
    p += 4;
    n -= 4;
  }
  if (n >= 2) {
    uint16_t word;
    std::memcpy(&word, p, sizeof word);
    sum += word;
    p += 2;
    n -= 2;
  }
  if (n == 1) {
    // The odd byte is the first byte of a word whose second byte is zero: copied into a zeroed
    // native word it lands where the host's order puts a word's first byte.
    uint16_t word = 0;
    std::memcpy(&word, p, 1);
    sum += word;
  }
  return fold(sum);
}

}  // namespace

uint16_t ones_complement_sum(std::span<const uint8_t> bytes, uint16_t initial) {
  uint16_t sum = native_sum(bytes.data(), bytes.size());
  if constexpr (std::endian::native == std::endian::little) {
    sum = static_cast<uint16_t>(sum << 8 | sum >> 8);
  }
  return ones_complement_add(sum, initial);
}

uint16_t ipv4_transport_checksum(Ipv4Address source, Ipv4Address destination, uint8_t protocol,
                                 std::span<const uint8_t> segment) {
  const uint16_t pseudo =
      ipv4_pseudo_header_sum(source, destination, protocol, static_cast<uint16_t>(segment.size()));
  return static_cast<uint16_t>(~ones_complement_sum(segment, pseudo));
}

}  // namespace weir::net
