// The kernel's drops at a net_af_packet port's RX rings. DPDK 22.11's af_packet driver does not
// report them (its imissed is always 0), yet they are where a worker that falls behind loses
// packets: when the kernel finds the mmap'ed ring full it drops the frame and counts it in the
// socket's PACKET_STATISTICS, which the driver never reads. Weir reads it from the driver's own
// sockets, found among the process's descriptors by family and bound interface.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace weir::dataplane {

class AfPacketRingDrops {
 public:
  AfPacketRingDrops() = default;
  // The process's AF_PACKET sockets bound to interface `if_index` (the driver opens one per queue
  // pair at probe time). None found: drops() stays 0.
  static AfPacketRingDrops for_interface(uint32_t if_index);

  // Drops so far. PACKET_STATISTICS resets on every read, so the reads are summed here: one
  // reader only (the main lcore, which serves the counters).
  uint64_t drops();
  size_t sockets() const { return sockets_.size(); }

 private:
  std::vector<int> sockets_;  // owned by the driver
  uint64_t total_ = 0;
};

}  // namespace weir::dataplane
