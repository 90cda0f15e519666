// The proxy on one worker, driven with frames through the in-memory PacketIo: a client's
// handshake in, the backend connection's SYN out, and what the proxy chose for it.
#include "dataplane/proxy/proxy.h"

#include <gtest/gtest.h>

#include <rte_thash.h>

#include <map>
#include <vector>

#include "dataplane/net/tcp.h"
#include "dataplane/port.h"
#include "tests/support/dataplane_harness.h"
#include "tests/support/eal_environment.h"
#include "tests/support/packet_builder.h"

namespace weir::proxy {
namespace {

using net::Ipv4Address;
using net::MacAddress;
using test::Eth;
using test::Frame;
using test::kBackendIp;
using test::kBackendMac;
using test::kClientIp;
using test::kClientMac;
using test::kPortIp;
using test::kPortMac;
using test::kVip;
using test::TcpOptions;

constexpr uint16_t kBackendPort = 8000;
constexpr uint64_t kNow = 10'000'000;

class ProxyHarness {
 public:
  explicit ProxyHarness(const dataplane::FlowOwnership& ownership) {
    tcp::TcpSettings settings;
    settings.max_connections = 256;
    tcp_ = std::make_unique<tcp::TcpStack>(settings, *port_.stack, port_.pool, counters_,
                                           tcp::Secret{3}, kNow);
    port_.stack->set_transport(tcp_.get());
    auto pool = std::make_shared<PoolPlan>(PoolPlan{
        "app",
        {BackendPlan{"b1", kBackendIp, kBackendPort, 1}},
        maglev::Table::build(
            std::vector<maglev::Backend>{{"b1", kBackendIp.value(), kBackendPort, 1, true}}, 101),
        maglev::FlowKey::five_tuple,
        2});
    ListenerPlan listener;
    listener.name = "web";
    listener.address = kVip;
    listener.port = 80;
    listener.max_connections = 100;
    proxy_ = std::make_unique<Proxy>(*tcp_, *port_.stack, port_.pool,
                                     std::vector<std::shared_ptr<const PoolPlan>>{pool},
                                     std::vector<ListenerPlan>{listener}, ownership);
    proxy_->start();
    // Both peers' MACs, learned from their ARP requests as the stack learns them.
    for (auto [mac, ip] : {std::pair{kClientMac, kClientIp}, std::pair{kBackendMac, kBackendIp}}) {
      inject(Eth(mac, MacAddress::broadcast()).ARPRequest(mac, ip, kPortIp).pad_to(60).build());
    }
    port_.take_sent();
  }
  void inject(const Frame& frame) { port_.deliver(frame, kNow); }
  std::vector<Frame> drain() { return port_.take_sent(); }

  // A client completes the handshake from `client_port`; returns the SYN the proxy sends the
  // backend (as the TCP view's source port), or 0.
  uint16_t backend_syn_port(uint16_t client_port) {
    inject(
        Eth(kClientMac, kPortMac)
            .IPv4(kClientIp, kVip)
            .TCP(client_port, 80, net::TcpFlags::from_bits(0x02), 1000, 0, TcpOptions().mss(1460))
            .build());
    const auto synack = drain();
    EXPECT_EQ(synack.size(), 1u);
    if (synack.empty()) return 0;
    const auto tcp = net::ConstTcpView::parse(std::span<const uint8_t>(synack[0]).subspan(34));
    inject(
        Eth(kClientMac, kPortMac)
            .IPv4(kClientIp, kVip)
            .TCP(client_port, 80, net::TcpFlags::from_bits(0x10), 1001, tcp->sequence_number() + 1)
            .build());
    for (const Frame& f : drain()) {
      const auto view = net::ConstTcpView::parse(std::span<const uint8_t>(f).subspan(34));
      if (view && view->destination_port() == kBackendPort && view->flags().bits() == 0x02)
        return view->source_port();
    }
    return 0;
  }

 private:
  test::StackPortHarness port_{test::harness_port_config(), test::test_mbuf_pool()};
  dataplane::TcpCounters counters_{};
  std::unique_ptr<tcp::TcpStack> tcp_;
  std::unique_ptr<Proxy> proxy_;
};

// The queue the NIC picks for a backend's reply, computed the way the hardware does it, with
// DPDK's own software Toeplitz (rte_softrss) over the RETA Weir programs.
uint16_t nic_queue(uint16_t local_port, uint16_t queues, uint16_t reta_size) {
  rte_ipv4_tuple tuple{};
  tuple.src_addr = kBackendIp.value();
  tuple.dst_addr = kPortIp.value();
  tuple.sport = kBackendPort;
  tuple.dport = local_port;
  const uint32_t hash = rte_softrss(reinterpret_cast<uint32_t*>(&tuple), RTE_THASH_V4_L4_LEN,
                                    dataplane::kRssToeplitzKey.data());
  return static_cast<uint16_t>((hash % reta_size) % queues);
}

TEST(ProxySteering, BackendSourcePortsSteerRepliesToThisWorkersQueue) {
  for (uint16_t queue : {0, 1, 3}) {
    const dataplane::FlowOwnership ownership{4, 128, queue};
    ProxyHarness h(ownership);
    std::map<uint16_t, int> queues_seen;
    for (uint16_t client = 40000; client < 40020; ++client) {
      const uint16_t port = h.backend_syn_port(client);
      ASSERT_NE(port, 0) << "no SYN to the backend for client port " << client;
      EXPECT_EQ(nic_queue(port, 4, 128), queue) << "source port " << port;
      ++queues_seen[port];
    }
    EXPECT_EQ(queues_seen.size(), 20u) << "each connection its own source port";
  }
}

TEST(ProxySteering, WithoutRssAnyPortWillDo) {
  ProxyHarness h(dataplane::FlowOwnership{});
  std::map<uint16_t, int> queues;
  for (uint16_t client = 40000; client < 40040; ++client)
    ++queues[nic_queue(h.backend_syn_port(client), 4, 128)];
  EXPECT_GT(queues.size(), 1u) << "consecutive ports spread over queues when nothing steers";
}

}  // namespace
}  // namespace weir::proxy
