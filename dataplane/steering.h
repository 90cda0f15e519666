// Software steering, for ports without RSS (net_af_packet, net_tap) and more than one worker: the
// device spreads packets over the workers' queues its own way (the kernel's fanout hash), so each
// worker works out which worker owns a TCP segment (flow_owner(), the function the proxy also uses
// to choose backend-side source ports) and hands it over. So both halves of a proxied flow still
// meet on one worker.
#pragma once

#include <rte_mbuf.h>

#include <algorithm>
#include <cstdint>
#include <span>

#include "common/wire/byte_order.h"
#include "dataplane/flow_owner.h"
#include "dataplane/net/ether.h"
#include "dataplane/net/ipv4.h"

namespace weir::dataplane {

enum class SteeringClass : uint8_t { tcp, arp, other };

// What a received frame is, for steering: a TCP segment (with its owner), an ARP message (every
// worker's neighbour table should learn from it), or anything else (handled where it arrived).
struct SteeringVerdict {
  SteeringClass kind = SteeringClass::other;
  uint16_t owner = 0;
};

// An ARP message: copied to every worker so that each neighbour table learns.
inline bool is_arp(const rte_mbuf* m) {
  const std::span<const uint8_t> frame(rte_pktmbuf_mtod(m, const uint8_t*),
                                       rte_pktmbuf_data_len(m));
  const auto ether = net::ConstEthernetView::parse(frame);
  return ether && ether->ether_type() == net::kEtherTypeArp;
}

// Reads only what the owner depends on; the stack that receives the segment validates the rest.
inline SteeringVerdict classify_for_steering(const rte_mbuf* m, const FlowOwnership& ownership) {
  const std::span<const uint8_t> frame(rte_pktmbuf_mtod(m, const uint8_t*),
                                       rte_pktmbuf_data_len(m));
  const auto ether = net::ConstEthernetView::parse(frame);
  if (!ether) return {};
  if (ether->ether_type() == net::kEtherTypeArp) return {SteeringClass::arp, 0};
  if (ether->ether_type() != net::kEtherTypeIpv4) return {};
  const auto ip = net::ConstIpv4View::parse(frame.subspan(net::ConstEthernetView::kSize));
  if (!ip || ip->version() != 4 || ip->header_length() < net::ConstIpv4View::kMinSize ||
      ip->protocol() != net::kIpProtocolTcp || ip->is_fragment()) {
    return {};
  }
  const std::span<const uint8_t> tcp =
      frame.subspan(net::ConstEthernetView::kSize)
          .subspan(std::min(ip->header_length(), frame.size() - net::ConstEthernetView::kSize));
  if (tcp.size() < 4) return {};  // the two port fields
  return {SteeringClass::tcp,
          flow_owner(ownership, ip->source().value(), ip->destination().value(),
                     wire::load_be16(tcp.data()), wire::load_be16(tcp.data() + 2))};
}

}  // namespace weir::dataplane
