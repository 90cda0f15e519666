// The boundary between protocol code and ports. Workers and protocol code move mbufs through this
// interface only, so unit tests drive them with in-memory queues (tests/unit) and production with
// DPDK ethdev queues (port.h). One virtual call per burst, never per packet.
#pragma once

#include <cstdint>

struct rte_mbuf;

namespace weir::dataplane {

// Index of a port in the configuration's `dataplane.ports` list (not a DPDK port id).
using PortIndex = uint16_t;

class PacketIo {
 public:
  virtual ~PacketIo() = default;
  virtual PortIndex port_count() const = 0;
  // Receives up to `max` packets; ownership of each returned mbuf passes to the caller.
  virtual uint16_t receive(PortIndex port, rte_mbuf** packets, uint16_t max) = 0;
  // Offers `count` packets; returns how many were taken. The caller still owns the rest.
  virtual uint16_t transmit(PortIndex port, rte_mbuf** packets, uint16_t count) = 0;
};

}  // namespace weir::dataplane
