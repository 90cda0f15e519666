// The assigned numbers Weir's packet code uses, each defined once: EtherTypes (IEEE registry),
// ARP's hardware type and operations (RFC 826, IANA), IPv4 protocol numbers (IANA). Header
// layouts (sizes, flag bits, field offsets) live with their views in ether.h, arp.h, ipv4.h,
// icmp.h and tcp.h; TCP's flags and option kinds in tcp.h.
#pragma once

#include <cstdint>

namespace weir::net {

// EtherTypes (IEEE 802 numbers registry).
inline constexpr uint16_t kEtherTypeIpv4 = 0x0800;
inline constexpr uint16_t kEtherTypeArp = 0x0806;

// ARP (RFC 826): ar$hrd for Ethernet, and ar$op.
inline constexpr uint16_t kArpHardwareEthernet = 1;
inline constexpr uint16_t kArpRequest = 1;  // ares_op$REQUEST
inline constexpr uint16_t kArpReply = 2;    // ares_op$REPLY

// IPv4 protocol numbers (IANA "Assigned Internet Protocol Numbers").
inline constexpr uint8_t kIpProtocolIcmp = 1;
inline constexpr uint8_t kIpProtocolTcp = 6;
inline constexpr uint8_t kIpProtocolUdp = 17;

}  // namespace weir::net
