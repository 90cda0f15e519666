// Buffered transmit: protocol code queues packets per port during a poll; the worker flushes every
// port once per loop iteration, so a burst of replies leaves as one device call. Packets the device
// refuses are freed and counted as tx_ring_full: a worker never waits on a full TX ring.
#pragma once

#include <rte_mbuf.h>

#include <array>
#include <cstdint>

#include "dataplane/counters.h"
#include "dataplane/packet_io.h"

namespace weir::dataplane {

inline constexpr uint16_t kBurstSize = 32;
inline constexpr PortIndex kMaxPorts = 8;

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

  void flush(PortIndex port) {
    Pending& pending = pending_[port];
    if (pending.count == 0) return;
    uint64_t bytes = 0;
    for (uint16_t i = 0; i < pending.count; ++i) bytes += rte_pktmbuf_pkt_len(pending.packets[i]);
    const uint16_t sent = io_.transmit(port, pending.packets.data(), pending.count);
    uint64_t unsent_bytes = 0;
    for (uint16_t i = sent; i < pending.count; ++i) {
      unsent_bytes += rte_pktmbuf_pkt_len(pending.packets[i]);
      rte_pktmbuf_free(pending.packets[i]);
    }
    PortCounters& counters = counters_[port];
    counters.tx_packets.add(sent);
    counters.tx_bytes.add(bytes - unsent_bytes);
    if (sent < pending.count) counters.drop(DropReason::tx_ring_full, pending.count - sent);
    pending.count = 0;
  }

  PacketIo& io_;
  std::array<PortCounters, kMaxPorts>& counters_;
  std::array<Pending, kMaxPorts> pending_{};
};

}  // namespace weir::dataplane
