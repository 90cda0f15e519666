// The boundary between protocol code and ports. Workers and protocol code move mbufs through this
// interface only, so unit tests drive them with in-memory queues (tests/unit) and production with
// DPDK ethdev queues (port.h). A few virtual calls per burst, never per packet.
#pragma once

#include <cstdint>

struct rte_mbuf;

namespace weir::dataplane {

// Index of a port in the configuration's `dataplane.ports` list (not a DPDK port id).
using PortIndex = uint16_t;

// What a port's transmit path accepts. TCP builds a data segment as a chain (a header mbuf, then
// the payload as indirect mbufs over the send queue); a device without
// RTE_ETH_TX_OFFLOAD_MULTI_SEGS sends only the first mbuf of a chain (net_af_xdp: the headers
// and whatever follows them in that buffer), and one that chains takes at most
// tx_desc_lim.nb_mtu_seg_max mbufs a packet (i40e disables the queue beyond it). TxBuffers copies
// a longer chain into one the device takes before it reaches transmit().
struct TxLimits {
  uint16_t max_segments = UINT16_MAX;  // 1: the device does not chain
};

class PacketIo {
 public:
  virtual ~PacketIo() = default;
  virtual PortIndex port_count() const = 0;
  // Receives up to `max` packets; ownership of each returned mbuf passes to the caller.
  virtual uint16_t receive(PortIndex port, rte_mbuf** packets, uint16_t max) = 0;
  // Offers `count` packets; returns how many were taken. The caller still owns the rest.
  virtual uint16_t transmit(PortIndex port, rte_mbuf** packets, uint16_t count) = 0;
  // Fixed for the port's life (read when a burst is flushed).
  virtual TxLimits tx_limits(PortIndex) const { return {}; }
  // The device's own check of a burst before transmit() (rte_eth_tx_prepare): returns how many
  // of the first packets it accepts; if fewer than `count`, packets[returned] is one the device
  // would refuse or mishandle, and the caller drops it. Nothing is taken.
  virtual uint16_t prepare(PortIndex, rte_mbuf**, uint16_t count) { return count; }
};

}  // namespace weir::dataplane
