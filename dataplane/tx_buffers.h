// Buffered transmit: protocol code queues packets per port during a poll; the worker flushes every
// port once per loop iteration, so a burst of replies leaves as one device call. Packets the device
// refuses are freed and counted as tx_ring_full: a worker never waits on a full TX ring.
// Before a burst goes, each chain longer than the device takes (PacketIo::tx_limits) is copied
// into one it does take (counted as tx_linearised), and the device checks the burst
// (PacketIo::prepare, rte_eth_tx_prepare).
#pragma once

#include <rte_mbuf.h>

#include <array>
#include <cstdint>

#include "dataplane/counters.h"
#include "dataplane/packet_io.h"

namespace weir::dataplane {

inline constexpr uint16_t kBurstSize = 32;
inline constexpr PortIndex kMaxPorts = 8;

// Returns `chain`'s bytes in at most `max_segments` mbufs: in its first mbuf when that is the
// chain's own and has the room (no allocation), else copied into fresh mbufs of the first one's
// pool. On success `chain` is consumed (it may be the mbuf returned); on failure (no mbuf free,
// or the bytes need more than `max_segments` buffers) nullptr, and `chain` is untouched.
rte_mbuf* linearise(rte_mbuf* chain, uint16_t max_segments);

class TxBuffers {
 public:
  TxBuffers(PacketIo& io, std::array<PortCounters, kMaxPorts>& counters)
      : io_(io), counters_(counters) {}
  // Whatever was queued after the last flush is freed, not leaked.
  ~TxBuffers() {
    for (Pending& pending : pending_) {
      for (uint16_t i = 0; i < pending.count; ++i) rte_pktmbuf_free(pending.packets[i]);
    }
  }
  TxBuffers(const TxBuffers&) = delete;
  TxBuffers& operator=(const TxBuffers&) = delete;

  void send(PortIndex port, rte_mbuf* packet) {
    Pending& pending = pending_[port];
    pending.packets[pending.count++] = packet;
    if (pending.count == kBurstSize) flush(port);
  }

  void flush_all() {
    for (PortIndex port = 0; port < io_.port_count(); ++port) flush(port);
  }

 private:
  struct Pending {
    std::array<rte_mbuf*, kBurstSize> packets{};
    uint16_t count = 0;
  };

  void flush(PortIndex port);
  // Linearises what the device cannot chain and drops what it refuses to prepare; compacts
  // `pending` to the packets left.
  void fit_to_device(PortIndex port, Pending& pending);

  PacketIo& io_;
  std::array<PortCounters, kMaxPorts>& counters_;
  std::array<Pending, kMaxPorts> pending_{};
};

}  // namespace weir::dataplane
