// The proxy on one worker, driven with frames through the in-memory PacketIo: a client's
// handshake in, the backend connection's SYN out, and what the proxy chose for it.
#include "dataplane/proxy/proxy.h"

#include <gtest/gtest.h>

#include <rte_thash.h>

#include <algorithm>
#include <map>
#include <set>
#include <vector>

#include "dataplane/net/tcp.h"
#include "dataplane/port.h"
#include "tests/support/dataplane_harness.h"
#include "tests/support/eal_environment.h"
#include "tests/support/packet_builder.h"
#include "tests/support/proxy_wire.h"

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

// The port's config with more source addresses for backend connections.
net::StackConfig port_config_with_sources(std::vector<Ipv4Address> sources) {
  net::StackConfig config = test::harness_port_config();
  config.ports[0].source_addresses = std::move(sources);
  return config;
}

class ProxyHarness {
 public:
  explicit ProxyHarness(const dataplane::FlowOwnership& ownership,
                        std::vector<Ipv4Address> sources = {}, uint32_t max_sessions = 100)
      : port_(port_config_with_sources(std::move(sources)), test::test_mbuf_pool()) {
    tcp::TcpSettings settings;
    settings.max_connections = std::max<uint32_t>(256, 2 * max_sessions + 16);
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
    listener.max_connections = max_sessions;
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
  uint16_t backend_syn_port(uint16_t client_port) { return backend_syn(client_port).second; }
  // The same, with the SYN's source address; {0, 0} when there is none. `sent` gets every frame.
  std::pair<uint32_t, uint16_t> backend_syn(uint16_t client_port,
                                            std::vector<Frame>* sent = nullptr) {
    inject(
        Eth(kClientMac, kPortMac)
            .IPv4(kClientIp, kVip)
            .TCP(client_port, 80, net::TcpFlags::from_bits(0x02), 1000, 0, TcpOptions().mss(1460))
            .build());
    const auto synack = drain();
    EXPECT_EQ(synack.size(), 1u);
    if (synack.empty()) return {0, 0};
    const auto tcp = net::ConstTcpView::parse(std::span<const uint8_t>(synack[0]).subspan(34));
    inject(
        Eth(kClientMac, kPortMac)
            .IPv4(kClientIp, kVip)
            .TCP(client_port, 80, net::TcpFlags::from_bits(0x10), 1001, tcp->sequence_number() + 1)
            .build());
    const std::vector<Frame> frames = drain();
    if (sent != nullptr) *sent = frames;
    for (const Frame& f : frames) {
      const auto view = net::ConstTcpView::parse(std::span<const uint8_t>(f).subspan(34));
      const auto ip = net::ConstIpv4View::parse(std::span<const uint8_t>(f).subspan(14));
      if (view && ip && view->destination_port() == kBackendPort && view->flags().bits() == 0x02)
        return {ip->source().value(), view->source_port()};
    }
    return {0, 0};
  }
  const Proxy& proxy() const { return *proxy_; }

 private:
  test::StackPortHarness port_;
  dataplane::TcpCounters counters_{};
  std::unique_ptr<tcp::TcpStack> tcp_;
  std::unique_ptr<Proxy> proxy_;
};

// The queue the NIC picks for a backend's reply, computed the way the hardware does it, with
// DPDK's own software Toeplitz (rte_softrss) over the RETA Weir programs.
uint16_t nic_queue(uint16_t local_port, uint16_t queues, uint16_t reta_size,
                   uint32_t local_address = kPortIp.value()) {
  rte_ipv4_tuple tuple{};
  tuple.src_addr = kBackendIp.value();
  tuple.dst_addr = local_address;
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

// Backend connections leave from the port's address and its source addresses in turn, each with a
// source port whose replies come back to this worker for that address.
TEST(ProxySourceAddresses, BackendConnectionsTakeEachSourceInTurn) {
  const Ipv4Address second = Ipv4Address::from_octets(10, 77, 0, 201);
  const Ipv4Address third = Ipv4Address::from_octets(10, 77, 0, 202);
  const dataplane::FlowOwnership ownership{4, 128, 2};
  ProxyHarness h(ownership, {second, third});
  std::map<uint32_t, int> by_source;
  for (uint16_t client = 40000; client < 40030; ++client) {
    const auto [source, port] = h.backend_syn(client);
    ASSERT_NE(port, 0) << client;
    EXPECT_EQ(nic_queue(port, 4, 128, source), 2) << "source port " << port;
    ++by_source[source];
  }
  EXPECT_EQ(by_source, (std::map<uint32_t, int>{
                           {kPortIp.value(), 10}, {second.value(), 10}, {third.value(), 10}}));
}

// Every source port this worker owns toward the backend in use (the backend never answers, so
// each SYN holds its port): the next client is reset at once, counted as exhaustion, not searched.
TEST(ProxySourceAddresses, ExhaustionIsCountedAndTheClientReset) {
  const dataplane::FlowOwnership ownership{4, 128, 1};
  SourcePorts reference(ownership, 0);
  uint32_t owned = 0;
  while (reference.take(kPortIp.value(), kBackendIp.value(), kBackendPort, 0)) ++owned;
  ProxyHarness h(ownership, {}, owned + 1);
  std::set<uint16_t> ports;
  for (uint32_t i = 0; i < owned; ++i) {
    const uint16_t port = h.backend_syn_port(static_cast<uint16_t>(1024 + i));
    ASSERT_NE(port, 0) << i;
    ports.insert(port);
  }
  EXPECT_EQ(ports.size(), owned);
  std::vector<Frame> sent;
  EXPECT_EQ(h.backend_syn(static_cast<uint16_t>(1024 + owned), &sent).second, 0);
  bool client_reset = false;
  for (const Frame& f : sent) {
    const auto view = net::ConstTcpView::parse(std::span<const uint8_t>(f).subspan(34));
    if (view && view->source_port() == 80 && (view->flags().bits() & 0x04) != 0)
      client_reset = true;
  }
  EXPECT_TRUE(client_reset) << "the client is reset when no source port is free";
  // The first attempt and both retries found none.
  EXPECT_EQ(h.proxy().backend_counters(0, 0).source_ports_exhausted.get(), 3u);
  EXPECT_EQ(h.proxy().counters(0).no_backend.get(), 1u);
}

// Back-to-back transactions toward one backend on a 1 ms TIME-WAIT: the source ports come back
// from the rest FIFO again and again. A TIME-WAIT ends at the first timer tick after its deadline,
// so a port that had rested exactly the TIME-WAIT could find its 4-tuple still held; the session
// was then reset as "exhausted" with tens of thousands of fresh ports left.
TEST(ProxySourceAddresses, PortsReusedAfterTimeWaitAreNeverStillHeld) {
  test::ProxyWireBed bed(test::test_mbuf_pool(), 16);
  // Enough for many generations of released ports (a generation lasts about a TIME-WAIT).
  const uint64_t transactions = 3000;
  ASSERT_TRUE(bed.run_until(transactions, 2'000'000))
      << bed.clients.completed << " transactions done, " << bed.clients.failures << " failed";
  EXPECT_EQ(bed.clients.failures, 0u);
  EXPECT_EQ(bed.clients.mismatched_bytes, 0u);
  EXPECT_EQ(bed.worker->proxy().backend_counters(0, 0).source_ports_exhausted.get(), 0u);
  EXPECT_EQ(bed.worker->proxy().backend_counters(0, 0).connect_failures.get(), 0u);
  // Rested ports are taken before fresh ones, so over this many TIME-WAITs they came back.
  EXPECT_GT(bed.rounds * test::kRoundUs, 10 * test::kTimeWaitUs);
}

}  // namespace
}  // namespace weir::proxy
