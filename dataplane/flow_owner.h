// Which worker owns a TCP flow: the one place that decides it. Both halves of a proxied flow must
// be handled by one worker, so the proxy picks backend-side source ports whose replies land on its
// own worker (proxy.cc), and ports without RSS hand each segment to its owner in software
// (steering.h). Both ask flow_owner(): the Toeplitz hash (Microsoft RSS specification) of the
// flow's 4-tuple under the key every RSS port is programmed with (port.cc), through the
// indirection table as port.cc programs it (entry i -> queue i mod workers), or through a table of
// the same kind when there is none.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

namespace weir::dataplane {

// The Toeplitz key programmed into every RSS-capable port: the key of Microsoft's RSS
// specification, whose published test vectors let tests check the software hash below. Aligned
// for DPDK's rte_softrss (the tests' reference), which reads the key as uint32_t words.
alignas(uint32_t) inline constexpr std::array<uint8_t, 40> kRssToeplitzKey = {
    0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3,
    0x8f, 0xb0, 0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3,
    0x80, 0x30, 0xf2, 0x0c, 0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
};

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

// What a worker knows to compute flow owners: how many workers share the ports, the ports'
// indirection table size (0 when there is none: software steering, or one worker), and itself.
struct FlowOwnership {
  uint16_t workers = 1;
  uint16_t reta_size = 0;
  uint16_t worker = 0;  // this worker's index, which is also its queue on every port
};

// Without an indirection table (software steering) flows are owned as through a table of this
// many entries, so that there too the low bits of the hash decide the owner: the proxy's source
// ports rely on it (proxy/source_ports.h).
inline constexpr uint32_t kSoftwareTableSize = 512;

// The worker that receives a segment from `remote`:`remote_port` to `local`:`local_port` (host
// order).
inline uint16_t flow_owner(const FlowOwnership& ownership, uint32_t remote, uint32_t local,
                           uint16_t remote_port, uint16_t local_port) {
  if (ownership.workers <= 1) return 0;
  const uint32_t hash =
      toeplitz_hash(kRssToeplitzKey, rss_ipv4_tcp_input(remote, local, remote_port, local_port));
  const uint32_t entry =
      hash % (ownership.reta_size != 0 ? uint32_t{ownership.reta_size} : kSoftwareTableSize);
  return static_cast<uint16_t>(entry % ownership.workers);
}

}  // namespace weir::dataplane
