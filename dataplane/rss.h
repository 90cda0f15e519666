// Software Toeplitz hash (Microsoft RSS specification) with the key every port is programmed with,
// so the dataplane can predict which worker's queue a 4-tuple lands on. The proxy needs this to
// pick source ports whose backend replies return to the worker that owns the client side.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

namespace weir::dataplane {

// Toeplitz hash of `input` (bytes in network order) under a 40-byte key: for every set bit of the
// input, XOR in the 32-bit window of the key that starts at that bit position.
inline uint32_t toeplitz_hash(std::span<const uint8_t, 40> key, std::span<const uint8_t> input) {
  uint32_t result = 0;
  // The window is the key's bits [i, i + 32); it slides left one bit per input bit.
  uint64_t window = (uint64_t{key[0]} << 56) | (uint64_t{key[1]} << 48) | (uint64_t{key[2]} << 40) |
                    (uint64_t{key[3]} << 32) | (uint64_t{key[4]} << 24);
  size_t next_key_byte = 5;
  for (size_t i = 0; i < input.size(); ++i) {
    for (int bit = 7; bit >= 0; --bit) {
      if ((input[i] >> bit) & 1) result ^= static_cast<uint32_t>(window >> 32);
      window <<= 1;
    }
    // After 8 shifts the low byte is free again: refill it from the key.
    if (next_key_byte < key.size()) window |= uint64_t{key[next_key_byte++]} << 24;
  }
  return result;
}

// The RSS input for TCP over IPv4: source address, destination address, source port, destination
// port, all in network byte order (RSS specification, "TCP/IPv4" hash type). Arguments in host
// order.
inline std::array<uint8_t, 12> rss_ipv4_tcp_input(uint32_t source, uint32_t destination,
                                                  uint16_t source_port, uint16_t destination_port) {
  return {static_cast<uint8_t>(source >> 24),          static_cast<uint8_t>(source >> 16),
          static_cast<uint8_t>(source >> 8),           static_cast<uint8_t>(source),
          static_cast<uint8_t>(destination >> 24),     static_cast<uint8_t>(destination >> 16),
          static_cast<uint8_t>(destination >> 8),      static_cast<uint8_t>(destination),
          static_cast<uint8_t>(source_port >> 8),      static_cast<uint8_t>(source_port),
          static_cast<uint8_t>(destination_port >> 8), static_cast<uint8_t>(destination_port)};
}

}  // namespace weir::dataplane
