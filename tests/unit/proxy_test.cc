// The proxy on one worker, driven with frames through the in-memory PacketIo: a client's
// handshake in, the backend connection's SYN out, and what the proxy chose for it.
#include "dataplane/proxy/proxy.h"

#include <gtest/gtest.h>

#include <rte_thash.h>

#include <algorithm>
#include <functional>
#include <map>
#include <set>
#include <vector>

#include "common/frame.h"
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
                        std::vector<Ipv4Address> sources = {}, uint32_t max_sessions = 100,
                        const std::function<void(ListenerPlan&)>& adjust = {})
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
    if (adjust) adjust(listener);
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
  void tick(uint64_t now_us) {
    tcp_->tick(now_us);
    proxy_->tick(now_us);
  }

  // A session with both handshakes done at kNow: what the client and the backend send next.
  struct Session {
    uint16_t client_port = 0;
    uint16_t backend_port = 0;    // the proxy's source port toward the backend
    uint32_t client_next = 1001;  // the client's next sequence number
    uint32_t to_client_ack = 0;   // the ack that covers what the proxy sent the client
    uint32_t to_backend_ack = 0;  // the backend's ack of the proxy's SYN
  };
  Session open_session(uint16_t client_port) {
    Session s;
    s.client_port = client_port;
    inject(
        Eth(kClientMac, kPortMac)
            .IPv4(kClientIp, kVip)
            .TCP(client_port, 80, net::TcpFlags::from_bits(0x02), 1000, 0, TcpOptions().mss(1460))
            .build());
    const auto synack = drain();
    EXPECT_EQ(synack.size(), 1u);
    if (synack.empty()) return s;
    s.to_client_ack = tcp_of(synack[0])->sequence_number() + 1;
    inject(Eth(kClientMac, kPortMac)
               .IPv4(kClientIp, kVip)
               .TCP(client_port, 80, net::TcpFlags::from_bits(0x10), 1001, s.to_client_ack)
               .build());
    for (const Frame& f : drain()) {
      const auto view = tcp_of(f);
      if (view && view->destination_port() == kBackendPort && view->flags().bits() == 0x02) {
        s.backend_port = view->source_port();
        s.to_backend_ack = view->sequence_number() + 1;
      }
    }
    EXPECT_NE(s.backend_port, 0);
    inject(Eth(kBackendMac, kPortMac)
               .IPv4(kBackendIp, kPortIp)
               .TCP(kBackendPort, s.backend_port, net::TcpFlags::from_bits(0x12), 5000,
                    s.to_backend_ack, TcpOptions().mss(1460))
               .build());
    drain();
    return s;
  }
  // The client sends `bytes` at `now_us`.
  void client_sends(Session& s, std::span<const uint8_t> bytes, uint64_t now_us) {
    port_.deliver(
        Eth(kClientMac, kPortMac)
            .IPv4(kClientIp, kVip)
            .TCP(s.client_port, 80, net::TcpFlags::from_bits(0x18), s.client_next, s.to_client_ack)
            .payload(bytes)
            .build(),
        now_us);
    s.client_next += static_cast<uint32_t>(bytes.size());
  }
  // Which of the session's two connections the proxy reset in what it sent since last asked.
  std::pair<bool, bool> resets_sent(const Session& s) {
    bool client = false, backend = false;
    for (const Frame& f : drain()) {
      const auto view = tcp_of(f);
      if (!view || (view->flags().bits() & 0x04) == 0) continue;
      if (view->source_port() == 80 && view->destination_port() == s.client_port) client = true;
      if (view->source_port() == s.backend_port && view->destination_port() == kBackendPort)
        backend = true;
    }
    return {client, backend};
  }

 private:
  static std::optional<net::ConstTcpView> tcp_of(const Frame& f) {
    return net::ConstTcpView::parse(std::span<const uint8_t>(f).subspan(34));
  }

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

// What a test reads off a sent frame: its TCP ports, flags, sequence and payload length.
struct SentSegment {
  uint16_t source_port, destination_port;
  uint8_t flags;
  uint32_t seq, ack;
  size_t payload;
};
std::vector<SentSegment> segments_of(const std::vector<Frame>& frames) {
  std::vector<SentSegment> out;
  for (const Frame& f : frames) {
    if (f.size() < 34 + 20) continue;
    const auto view = net::ConstTcpView::parse(std::span<const uint8_t>(f).subspan(34));
    if (!view) continue;
    const auto payload = view->payload();
    out.push_back({view->source_port(), view->destination_port(), view->flags().bits(),
                   view->sequence_number(), view->acknowledgment_number(),
                   payload ? payload->size() : 0});
  }
  return out;
}

// A session whose client completed its handshake and whose backend answered with a zero
// window: what the client sends waits in the proxy's send queue toward the backend.
struct HeldSession {
  uint16_t client_port;
  uint32_t proxy_isn = 0;       // the proxy's SYN-ACK to the client
  uint16_t backend_source = 0;  // the backend connection's source port
  uint32_t backend_isn = 0;     // the proxy's SYN to the backend
};
HeldSession open_with_closed_backend_window(ProxyHarness& h, uint16_t client_port) {
  HeldSession held{client_port};
  h.inject(
      Eth(kClientMac, kPortMac)
          .IPv4(kClientIp, kVip)
          .TCP(client_port, 80, net::TcpFlags::from_bits(0x02), 1000, 0, TcpOptions().mss(1460))
          .build());
  const auto synack = segments_of(h.drain());
  EXPECT_EQ(synack.size(), 1u);
  if (synack.empty()) return held;
  held.proxy_isn = synack[0].seq;
  h.inject(Eth(kClientMac, kPortMac)
               .IPv4(kClientIp, kVip)
               .TCP(client_port, 80, net::TcpFlags::from_bits(0x10), 1001, held.proxy_isn + 1)
               .build());
  for (const SentSegment& seg : segments_of(h.drain()))
    if (seg.destination_port == kBackendPort && seg.flags == 0x02) {
      held.backend_source = seg.source_port;
      held.backend_isn = seg.seq;
    }
  if (held.backend_source == 0) return held;
  h.inject(Eth(kBackendMac, kPortMac)
               .IPv4(kBackendIp, kPortIp)
               .TCP(kBackendPort, held.backend_source, net::TcpFlags::from_bits(0x12), 5000,
                    held.backend_isn + 1, TcpOptions().mss(1460))
               .window(0)
               .build());
  return held;
}

Frame from_client(const HeldSession& held, uint8_t flags, uint32_t seq, std::string_view data) {
  return Eth(kClientMac, kPortMac)
      .IPv4(kClientIp, kVip)
      .TCP(held.client_port, 80, net::TcpFlags::from_bits(flags), seq,
           (flags & 0x04) ? 0 : held.proxy_isn + 1)
      .payload(data)
      .build();
}

Frame from_backend(const HeldSession& held, uint8_t flags, uint32_t ack, std::string_view data) {
  return Eth(kBackendMac, kPortMac)
      .IPv4(kBackendIp, kPortIp)
      .TCP(kBackendPort, held.backend_source, net::TcpFlags::from_bits(flags), 5001, ack)
      .payload(data)
      .build();
}

bool backend_reset(const std::vector<Frame>& sent) {
  for (const SentSegment& seg : segments_of(sent))
    if (seg.destination_port == kBackendPort && (seg.flags & 0x04)) return true;
  return false;
}

constexpr uint8_t kAck = 0x10, kFinAck = 0x11, kRst = 0x04, kPshAck = 0x18;

// A client that sent its request and its FIN, then vanished with a RST (its TIME-WAIT ended
// before the proxy's FIN came, or it closed with SO_LINGER 0), while the backend had not taken the
// request yet (zero window). Weir acknowledged those bytes to the client: they must still reach
// the backend, then a FIN; never a RST that throws them away.
TEST(ProxyClientGone, AResetAfterTheClientsFinStillDeliversItsBytesToTheBackend) {
  ProxyHarness h(dataplane::FlowOwnership{});
  const HeldSession held = open_with_closed_backend_window(h, 40100);
  ASSERT_NE(held.backend_source, 0) << "the proxy connects to the backend";
  const std::string request(100, 'q');
  h.inject(from_client(held, kPshAck, 1001, request));
  h.inject(from_client(held, kFinAck, 1101, ""));
  bool fin_acknowledged = false;
  for (const SentSegment& seg : segments_of(h.drain())) {
    EXPECT_FALSE(seg.destination_port == kBackendPort && seg.payload > 0)
        << "the backend's window is closed";
    if (seg.destination_port == held.client_port && (seg.flags & kAck) && seg.ack == 1102)
      fin_acknowledged = true;
  }
  ASSERT_TRUE(fin_acknowledged) << "the client's request and FIN are acknowledged";
  // The client is gone.
  h.inject(from_client(held, kRst, 1102, ""));
  EXPECT_FALSE(backend_reset(h.drain()))
      << "the backend is not reset while the client's acknowledged bytes are undelivered";
  // The backend opens its window: the request goes, then the FIN.
  h.inject(from_backend(held, kAck, held.backend_isn + 1, ""));
  size_t delivered = 0;
  bool fin = false, reset = false;
  for (const SentSegment& seg : segments_of(h.drain())) {
    if (seg.destination_port != kBackendPort) continue;
    delivered += seg.payload;
    fin = fin || (seg.flags & 0x01);
    reset = reset || (seg.flags & kRst);
  }
  EXPECT_EQ(delivered, request.size());
  EXPECT_TRUE(fin) << "a FIN follows the request";
  EXPECT_FALSE(reset);
  // Once the backend has it all, data toward the vanished client resets the backend (Linux's
  // rule for a closed socket that receives data).
  const uint32_t all_acknowledged =
      held.backend_isn + 1 + static_cast<uint32_t>(request.size()) + 1;
  h.inject(from_backend(held, kPshAck, all_acknowledged, "response"));
  EXPECT_TRUE(backend_reset(h.drain()));
}

// The same client vanishing before its FIN: its stream is cut short, and the backend is reset so
// that it cannot mistake the truncated request for a whole one.
TEST(ProxyClientGone, AResetBeforeTheClientsFinResetsTheBackend) {
  ProxyHarness h(dataplane::FlowOwnership{});
  const HeldSession held = open_with_closed_backend_window(h, 40101);
  ASSERT_NE(held.backend_source, 0);
  h.inject(from_client(held, kPshAck, 1001, std::string(100, 'q')));
  h.drain();
  h.inject(from_client(held, kRst, 1101, ""));
  EXPECT_TRUE(backend_reset(h.drain()));
}

// ---- inactivity and frame timeouts
// ---------------------------------------------------------------

constexpr uint64_t kMs = 1000;

ProxyHarness timeout_harness(uint64_t client_ms, uint64_t server_ms, uint64_t frame_ms = 0) {
  return ProxyHarness(dataplane::FlowOwnership{}, {}, 100, [=](ListenerPlan& l) {
    l.client_timeout_us = client_ms * kMs;
    l.server_timeout_us = server_ms * kMs;
    if (frame_ms != 0) {
      l.framed = true;
      l.frame_timeout_us = frame_ms * kMs;
    }
  });
}

// A client that sends nothing after its handshake: its own timeout resets both connections, and it
// is counted as the client's, not the backend's.
TEST(ProxyTimeouts, ASilentClientHitsTheClientTimeoutAndTheBackendIsResetToo) {
  ProxyHarness h = timeout_harness(1000, 60'000);
  auto s = h.open_session(41000);
  h.tick(kNow + 999 * kMs);
  EXPECT_EQ(h.resets_sent(s), std::make_pair(false, false));
  h.tick(kNow + 1000 * kMs);
  EXPECT_EQ(h.resets_sent(s), std::make_pair(true, true));
  const ListenerCounters& c = h.proxy().counters(0);
  EXPECT_EQ(c.client_timeouts.get(), 1u);
  EXPECT_EQ(c.server_timeouts.get(), 0u);
  EXPECT_EQ(c.idle_timeouts.get(), 1u);
  EXPECT_EQ(h.proxy().sessions(), 0u);
}

// A client that keeps talking to a backend that never answers nor acknowledges: the backend's
// clock runs from the last data it took (the client's request, relayed at once), and the
// client's activity does not restart it.
TEST(ProxyTimeouts, ASilentBackendHitsTheServerTimeoutAndTheClientIsResetToo) {
  ProxyHarness h = timeout_harness(60'000, 1000);
  auto s = h.open_session(41001);
  const std::vector<uint8_t> request(100, 'r');
  h.client_sends(s, request, kNow + 600 * kMs);  // relayed to the backend: it took data at 600
  // The backend acknowledges nothing: the proxy's retransmissions are not its activity.
  h.tick(kNow + 1000 * kMs);
  EXPECT_EQ(h.resets_sent(s), std::make_pair(false, false)) << "the backend took data at 600 ms";
  h.tick(kNow + 1599 * kMs);
  EXPECT_EQ(h.resets_sent(s), std::make_pair(false, false));
  h.tick(kNow + 1600 * kMs);
  EXPECT_EQ(h.resets_sent(s), std::make_pair(true, true));
  const ListenerCounters& c = h.proxy().counters(0);
  EXPECT_EQ(c.server_timeouts.get(), 1u);
  EXPECT_EQ(c.client_timeouts.get(), 0u);
  EXPECT_EQ(c.idle_timeouts.get(), 1u);
}

// Each side's own activity keeps its own clock: a client that speaks every 600 ms outlives a
// client timeout of 1 s for as long as it speaks (the backend's 60 s are not reached).
TEST(ProxyTimeouts, ASideThatKeepsTalkingIsNotTimedOut) {
  ProxyHarness h = timeout_harness(1000, 60'000);
  auto s = h.open_session(41002);
  const std::vector<uint8_t> byte(1, 'x');
  for (uint64_t t = 600; t <= 6000; t += 600) {
    h.client_sends(s, byte, kNow + t * kMs);
    h.tick(kNow + t * kMs + 500 * kMs);
  }
  EXPECT_EQ(h.resets_sent(s), std::make_pair(false, false));
  EXPECT_EQ(h.proxy().counters(0).idle_timeouts.get(), 0u);
  EXPECT_EQ(h.proxy().sessions(), 1u);
}

// A plan made in code without timeouts (0) has none: the TCP fuzz target's sessions rely on it.
TEST(ProxyTimeouts, ZeroMeansNoTimeout) {
  ProxyHarness h = timeout_harness(0, 0);
  auto s = h.open_session(41005);
  h.tick(kNow + 86'400'000 * kMs);
  EXPECT_EQ(h.resets_sent(s), std::make_pair(false, false));
  EXPECT_EQ(h.proxy().sessions(), 1u);
}

// Slowloris on a framed listener: a client sends a frame's header and never the rest. The frame's
// clock starts with its first byte and is not restarted by more bytes of the same frame; at
// frame_timeout_ms the session is reset, counted. A client whose frames complete is never reset.
TEST(ProxyTimeouts, AFrameLeftIncompleteIsResetAtTheFrameTimeout) {
  ProxyHarness h = timeout_harness(60'000, 60'000, 2000);
  auto slow = h.open_session(41003);
  auto whole = h.open_session(41004);
  const std::vector<uint8_t> payload(64, 'p');
  const std::vector<uint8_t> frame = frame::encode(0, 1, 0, payload);
  const std::span<const uint8_t> all(frame);
  h.client_sends(slow, all.first(frame::kHeaderSize), kNow + 100 * kMs);
  h.client_sends(whole, all.first(frame::kHeaderSize), kNow + 100 * kMs);
  EXPECT_EQ(h.proxy().counters(0).partial_frames_started.get(), 2u);
  h.client_sends(whole, all.subspan(frame::kHeaderSize), kNow + 1000 * kMs);  // now whole
  // More of the slow client's frame, one byte: not a new frame, so its clock goes on.
  h.client_sends(slow, all.subspan(frame::kHeaderSize, 1), kNow + 2000 * kMs);
  h.tick(kNow + 2099 * kMs);
  EXPECT_EQ(h.resets_sent(slow), std::make_pair(false, false));
  h.tick(kNow + 2100 * kMs);
  const ListenerCounters& c = h.proxy().counters(0);
  EXPECT_EQ(c.frame_timeouts.get(), 1u);
  EXPECT_EQ(c.partial_frames_started.get() - c.partial_frames_ended.get(), 0u);
  EXPECT_EQ(h.proxy().sessions(), 1u) << "the client whose frame completed is still served";
  EXPECT_EQ(c.idle_timeouts.get(), 0u);
}

// Back-to-back transactions toward one backend on a 1 ms TIME-WAIT: the source ports come back
// from the rest FIFO again and again. A TIME-WAIT ends at the first timer tick after its deadline,
// so a port that had rested exactly the TIME-WAIT could find its 4-tuple still held; the session
// was then reset as "exhausted" with tens of thousands of fresh ports left. And a SYN polled in
// the same poll as the tick that ends the TIME-WAIT found it still held if packets went before
// timers: which happens depends on where the clock starts within the tick, so several starts.
TEST(ProxySourceAddresses, PortsReusedAfterTimeWaitAreNeverStillHeld) {
  for (uint64_t phase_us = 0; phase_us < 200; phase_us += 7) {
    SCOPED_TRACE(testing::Message() << "clock starting " << phase_us << " us into a tick");
    test::ProxyWireBed bed(test::test_mbuf_pool(), 16, phase_us);
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
}

}  // namespace
}  // namespace weir::proxy
