// What a port's RX checksum flags (rte_mbuf ol_flags) say about a received packet, and so whether
// the stack must verify the checksum in software. DPDK's four states, for the IPv4 header
// checksum (RTE_MBUF_F_RX_IP_CKSUM_*) and the TCP/UDP checksum (RTE_MBUF_F_RX_L4_CKSUM_*) alike:
//   GOOD     the device verified the checksum                              -> accept
//   BAD      the device found it wrong                                     -> drop
//   NONE     the checksum field is not filled in, but the device vouches   -> accept
//            for the data's integrity: virtio's VIRTIO_NET_HDR_F_NEEDS_CSUM,
//            a packet from another guest or the host itself whose L4 field
//            holds only the pseudo-header sum (Linux's CHECKSUM_PARTIAL);
//            no wire crossed, so there is nothing to verify
//   UNKNOWN  the device says nothing about this packet                     -> verify in software
// UNKNOWN is what a device that advertises RX checksum offload still reports for many packets:
// DPDK's virtio PMD sets no flag at all when the host's virtio-net header carries neither
// NEEDS_CSUM nor DATA_VALID (vhost-user fills it only for packets it was asked to checksum), so
// treating "not GOOD" as bad dropped every TCP segment on a virtio NIC (issue 15).
#pragma once

#include <rte_mbuf_core.h>

#include <cstdint>

namespace weir::net {

enum class RxChecksum : uint8_t {
  good,     // accept without looking
  bad,      // drop as bad_checksum
  unknown,  // verify in software
};

constexpr RxChecksum rx_checksum_state(uint64_t ol_flags, uint64_t mask, uint64_t good,
                                       uint64_t bad, uint64_t none) {
  const uint64_t state = ol_flags & mask;
  if (state == good || state == none) return RxChecksum::good;
  if (state == bad) return RxChecksum::bad;
  return RxChecksum::unknown;
}

// The IPv4 header checksum's state per the port's flags.
constexpr RxChecksum rx_ipv4_checksum(uint64_t ol_flags) {
  return rx_checksum_state(ol_flags, RTE_MBUF_F_RX_IP_CKSUM_MASK, RTE_MBUF_F_RX_IP_CKSUM_GOOD,
                           RTE_MBUF_F_RX_IP_CKSUM_BAD, RTE_MBUF_F_RX_IP_CKSUM_NONE);
}

// The TCP (L4) checksum's state per the port's flags.
constexpr RxChecksum rx_l4_checksum(uint64_t ol_flags) {
  return rx_checksum_state(ol_flags, RTE_MBUF_F_RX_L4_CKSUM_MASK, RTE_MBUF_F_RX_L4_CKSUM_GOOD,
                           RTE_MBUF_F_RX_L4_CKSUM_BAD, RTE_MBUF_F_RX_L4_CKSUM_NONE);
}

}  // namespace weir::net
