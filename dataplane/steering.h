// Software steering, for ports without RSS (net_af_packet, net_tap) and more than one worker: the
// device spreads packets over the workers' queues its own way (the kernel's fanout hash), so each
// worker works out which worker owns a TCP segment and hands it over. The owner is the same
// function the proxy uses to choose backend-side source ports (proxy::Proxy::rss_queue with no
// indirection table): the Toeplitz hash of the segment's 4-tuple, with the key the ports use,
// modulo the number of workers. So both halves of a proxied flow still meet on one worker.
#pragma once

#include <rte_mbuf.h>

#include <cstdint>
#include <optional>

#include "common/wire/byte_order.h"
#include "dataplane/port.h"
#include "dataplane/rss.h"

namespace weir::dataplane {

enum class SteeringClass : uint8_t { tcp, arp, other };

// What a received frame is, for steering: a TCP segment (with its owner), an ARP message (every
// worker's neighbour table should learn from it), or anything else (handled where it arrived).
struct SteeringVerdict {
  SteeringClass kind = SteeringClass::other;
  uint16_t owner = 0;
};

inline SteeringVerdict classify_for_steering(const rte_mbuf* m, uint16_t workers) {
  const uint8_t* p = rte_pktmbuf_mtod(m, const uint8_t*);
  const uint32_t length = rte_pktmbuf_data_len(m);
  if (length < 14) return {};
  const uint16_t ethertype = wire::load_be16(p + 12);
  if (ethertype == 0x0806) return {SteeringClass::arp, 0};
  if (ethertype != 0x0800 || length < 14 + 20) return {};
  const uint8_t* ip = p + 14;
  const uint32_t ihl = (ip[0] & 0x0f) * 4u;
  const bool fragment = (wire::load_be16(ip + 6) & 0x3fff) != 0;
  if ((ip[0] >> 4) != 4 || ihl < 20 || ip[9] != 6 || fragment || length < 14 + ihl + 4) return {};
  const uint8_t* tcp = ip + ihl;
  const auto input = rss_ipv4_tcp_input(wire::load_be32(ip + 12), wire::load_be32(ip + 16),
                                        wire::load_be16(tcp), wire::load_be16(tcp + 2));
  const uint32_t hash = toeplitz_hash(kRssToeplitzKey, input);
  return {SteeringClass::tcp, static_cast<uint16_t>(hash % workers)};
}

}  // namespace weir::dataplane
