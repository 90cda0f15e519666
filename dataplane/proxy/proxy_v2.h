// The PROXY protocol version 2 header (haproxy's proxy-protocol.txt, section 2.2) that a listener
// with proxy_protocol: v2 sends the backend before any client byte: the 12-byte signature, version
// 2 and the PROXY command, AF_INET over STREAM, and 12 address bytes: the client's address and port
// as the source, the listener's as the destination. No TLVs. Pure, so that a fuzz target can
// round-trip it through a parser written from the specification (tests/fuzz/proxy_v2_fuzz.cc).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

#include "common/wire/byte_order.h"

namespace weir::proxy {

inline constexpr size_t kProxyV2Ipv4HeaderSize = 28;

// Addresses and ports in host byte order.
struct ProxyV2Ipv4 {
  uint32_t source_address = 0;
  uint32_t destination_address = 0;
  uint16_t source_port = 0;
  uint16_t destination_port = 0;
};

inline std::array<uint8_t, kProxyV2Ipv4HeaderSize> proxy_v2_header(const ProxyV2Ipv4& a) {
  std::array<uint8_t, kProxyV2Ipv4HeaderSize> h{0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
                                                0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};
  h[12] = 0x21;                         // version 2, PROXY
  h[13] = 0x11;                         // AF_INET, SOCK_STREAM
  wire::store_be16(h.data() + 14, 12);  // the address block's length
  wire::store_be32(h.data() + 16, a.source_address);
  wire::store_be32(h.data() + 20, a.destination_address);
  wire::store_be16(h.data() + 24, a.source_port);
  wire::store_be16(h.data() + 26, a.destination_port);
  return h;
}

}  // namespace weir::proxy
