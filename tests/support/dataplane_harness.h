// What the in-memory dataplane tests and benchmarks share: one small network (the port under
// test, a client and a backend on one /24, and the listener address the port answers for), stack
// configurations for it, and a port in memory under a layer 2/3 stack that frames are delivered to
// and taken from. Tests compose these with their own transport (TCP, the proxy, a recorder).
#pragma once

#include <rte_mempool.h>

#include <array>
#include <cstdint>
#include <memory>
#include <vector>

#include "dataplane/net/stack.h"
#include "tests/support/memory_io.h"

namespace weir::test {

using Frame = std::vector<uint8_t>;

inline constexpr net::MacAddress kPortMac({0x02, 0x77, 0, 0, 0, 0x02});
inline constexpr net::MacAddress kClientMac({0x02, 0x77, 0, 0, 0, 0x01});
inline constexpr net::MacAddress kBackendMac({0x02, 0x77, 0, 0, 0, 0x0b});
inline constexpr net::Ipv4Address kPortIp = net::Ipv4Address::from_octets(10, 77, 0, 2);
inline constexpr net::Ipv4Address kVip = net::Ipv4Address::from_octets(10, 77, 0, 100);
inline constexpr net::Ipv4Address kClientIp = net::Ipv4Address::from_octets(10, 77, 0, 1);
inline constexpr net::Ipv4Address kBackendIp = net::Ipv4Address::from_octets(10, 77, 0, 11);

// One port, `mac` at `address`/24, with no listener addresses and the stack's default timers.
net::StackConfig one_port_config(net::MacAddress mac, net::Ipv4Address address);
// The harness network's port: kPortMac at kPortIp/24, answering for kVip.
net::StackConfig harness_port_config();

// Counts a pool's free mbufs when made; leaked() is how many fewer there are now, so 0 once the
// code under test is gone and its port drained, unless it lost some.
class MbufLeakCheck {
 public:
  explicit MbufLeakCheck(rte_mempool* pool)
      : pool_(pool), free_at_start_(rte_mempool_avail_count(pool)) {}
  int64_t leaked() const {
    return int64_t{free_at_start_} - int64_t{rte_mempool_avail_count(pool_)};
  }

 private:
  rte_mempool* pool_;
  unsigned free_at_start_;
};

// Port 0 in memory under a layer 2/3 stack: its queues, its counters, the TX buffers and the
// stack itself. Whatever sits above the stack (set_transport) is the test's, and must be
// destroyed before this.
struct StackPortHarness {
  StackPortHarness(const net::StackConfig& config, rte_mempool* mbuf_pool);

  // Hands `frame` to the stack as received on port 0 at `now_us`, with `rx_ol_flags` in its mbuf
  // as a device's RX offloads would set them, then flushes what the stack sent in response into
  // the port's transmit queue.
  void deliver(const Frame& frame, uint64_t now_us, uint64_t rx_ol_flags = 0);
  // Flushes the TX buffers and removes the frames sent on port 0 since the last call.
  std::vector<Frame> take_sent();

  rte_mempool* const pool;
  MemoryIo io;
  std::array<dataplane::PortCounters, dataplane::kMaxPorts> port_counters{};
  dataplane::L3Counters l3{};
  dataplane::TxBuffers tx;
  std::unique_ptr<net::Stack> stack;
};

}  // namespace weir::test
