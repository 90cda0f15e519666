#include "tests/support/dataplane_harness.h"

#include <stdexcept>

namespace weir::test {

net::StackConfig one_port_config(net::MacAddress mac, net::Ipv4Address address) {
  net::StackConfig config;
  net::StackPort port;
  port.mac = mac;
  port.address = address;
  port.prefix_length = 24;
  config.ports.push_back(port);
  return config;
}

net::StackConfig harness_port_config() {
  net::StackConfig config = one_port_config(kPortMac, kPortIp);
  config.listener_addresses.push_back(kVip);
  return config;
}

StackPortHarness::StackPortHarness(const net::StackConfig& config, rte_mempool* mbuf_pool)
    : pool(mbuf_pool),
      io(1, mbuf_pool),
      tx(io, port_counters),
      stack(std::make_unique<net::Stack>(config, mbuf_pool, tx, port_counters, l3)) {}

void StackPortHarness::deliver(const Frame& frame, uint64_t now_us, uint64_t rx_ol_flags) {
  io.inject(0, frame);
  rte_mbuf* m = nullptr;
  if (io.receive(0, &m, 1) != 1) throw std::logic_error("StackPortHarness: injected frame lost");
  m->ol_flags |= rx_ol_flags;
  stack->receive(0, m, now_us);
  tx.flush_all();
}

std::vector<Frame> StackPortHarness::take_sent() {
  tx.flush_all();
  return io.drain(0);
}

}  // namespace weir::test
