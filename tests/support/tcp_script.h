// The scripted TCP fixture, in the manner of packetdrill: inject this segment at time t, expect
// exactly that segment out, on a fake clock. The stack runs behind the real layer 2/3 stack over
// the in-memory PacketIo; segments in are built with the packet builders, segments out are decoded
// field by field. Shared by the scripted suites (tcp_stack, tcp_defences).
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "dataplane/net/tcp.h"
#include "dataplane/tcp/services.h"
#include "dataplane/tcp/tcp_stack.h"
#include "tests/support/dataplane_harness.h"
#include "tests/support/eal_environment.h"
#include "tests/support/packet_builder.h"

namespace weir::tcp {

using net::Ipv4Address;
using net::MacAddress;
using net::TcpFlag;
using test::Eth;
using test::Frame;
using test::kClientIp;
using test::kClientMac;
using test::kPortMac;
using test::kVip;
using test::TcpOptions;
constexpr uint16_t kEcho = 7;
constexpr uint16_t kDiscard = 9;
constexpr uint16_t kCloser = 13;
constexpr uint16_t kClientPort = 40000;
constexpr uint32_t kClientIsn = 1'000'000;
constexpr uint64_t kStart = 10'000'000;  // the fake clock starts at 10 s

constexpr uint8_t F = 0x01, S = 0x02, R = 0x04, P = 0x08, A = 0x10;

// A client on the harness network. The first is known to the stack from the fixture's start;
// another becomes known by its own ARP request (TcpScriptWith::learn).
struct Peer {
  MacAddress mac;
  Ipv4Address ip;
};
inline constexpr Peer kFirstClient{kClientMac, kClientIp};

// A segment as it left the stack.
struct Out {
  uint8_t flags = 0;
  uint32_t seq = 0, ack = 0;
  uint16_t window = 0;
  uint16_t dst_port = 0;
  std::vector<uint8_t> payload;
  std::optional<uint16_t> mss;
  std::optional<uint8_t> window_scale;
  bool sack_permitted = false;
  std::optional<net::TcpTimestamps> timestamps;
  std::vector<net::SackBlock> sack;
};

inline Out decode(const Frame& frame) {
  Out out;
  const std::span<const uint8_t> bytes(frame);
  EXPECT_EQ(bytes[12], 0x08);
  const auto ip = net::ConstIpv4View::parse(bytes.subspan(14));
  EXPECT_TRUE(ip && ip->checksum_valid());
  const auto segment =
      bytes.subspan(14 + ip->header_length(), ip->total_length() - ip->header_length());
  EXPECT_TRUE(net::tcp_checksum_valid(ip->source(), ip->destination(), segment)) << "TCP checksum";
  const auto tcp = net::ConstTcpView::parse(segment);
  out.flags = tcp->flags().bits();
  out.seq = tcp->sequence_number();
  out.ack = tcp->acknowledgment_number();
  out.window = tcp->window();
  out.dst_port = tcp->destination_port();
  const auto payload = *tcp->payload();
  out.payload.assign(payload.begin(), payload.end());
  net::TcpOptionReader options(*tcp->options());
  while (auto option = options.next()) {
    if (auto v = option->mss()) out.mss = v;
    if (auto v = option->window_scale()) out.window_scale = v;
    if (option->kind() == net::TcpOptionKind::sack_permitted) out.sack_permitted = true;
    if (auto v = option->timestamps()) out.timestamps = v;
    for (size_t i = 0; i < option->sack_block_count(); ++i)
      out.sack.push_back(*option->sack_block(i));
  }
  return out;
}

// Closes its side as soon as a connection is established, to drive the active-close paths.
class CloserService final : public ListenerHandler, public ConnectionHandler {
 public:
  explicit CloserService(TcpStack& tcp) : tcp_(tcp) {}
  ConnectionHandler* accept(Connection&) override { return this; }
  void on_established(Connection& c) override { tcp_.shutdown_write(c, tcp_.now_us()); }
  void on_data(Connection& c, rte_mbuf* data) override {
    tcp_.consumed(c, rte_pktmbuf_pkt_len(data), tcp_.now_us());
    rte_pktmbuf_free(data);
  }
  void on_closed(Connection&, CloseReason reason) override { closed.push_back(reason); }
  std::vector<CloseReason> closed;

 private:
  TcpStack& tcp_;
};

// A fixture's settings as they are (see TcpScriptWith).
struct DefaultSettings {
  static void adjust(TcpSettings&) {}
};

template <uint64_t KeepaliveIdleUs, typename Adjust = DefaultSettings>
class TcpScriptWith : public ::testing::Test {
 protected:
  static TcpSettings settings() {
    TcpSettings s;
    s.max_connections = 64;
    s.time_wait_us = 2'000'000;
    s.max_time_wait = 2;  // reachable in a script
    s.keepalive_idle_us = KeepaliveIdleUs;
    s.keepalive_interval_us = 100'000;
    s.keepalive_probes = 3;
    Adjust::adjust(s);
    return s;
  }

  TcpScriptWith() {
    tcp_->listen(kVip, kEcho, &echo_, 8);
    tcp_->listen(kVip, kDiscard, &discard_, 1);
    tcp_->listen(kVip, kCloser, &closer_, 8);
    learn(kFirstClient);
  }
  // The client's MAC, learned the way the stack learns it: from its ARP request for the VIP.
  void learn(const Peer& peer) {
    inject(Eth(peer.mac, MacAddress::broadcast())
               .ARPRequest(peer.mac, peer.ip, kVip)
               .pad_to(60)
               .build());
    port_.take_sent();
  }
  ~TcpScriptWith() override {
    tcp_.reset();
    port_.stack.reset();
    port_.take_sent();
    EXPECT_EQ(mbufs_.leaked(), 0) << "mbufs leaked";
  }

  void inject(const Frame& frame) { port_.deliver(frame, now_); }
  // Injects a client segment and returns what the stack sent in response.
  std::vector<Out> send(uint16_t dst_port, uint8_t flags, uint32_t seq, uint32_t ack,
                        const std::string& data = "", const TcpOptions& options = {},
                        uint16_t window = 65535, uint16_t src_port = kClientPort) {
    return send_from(kFirstClient, dst_port, flags, seq, ack, data, options, window, src_port);
  }
  std::vector<Out> send_from(const Peer& peer, uint16_t dst_port, uint8_t flags, uint32_t seq,
                             uint32_t ack, const std::string& data = "",
                             const TcpOptions& options = {}, uint16_t window = 65535,
                             uint16_t src_port = kClientPort) {
    inject(Eth(peer.mac, kPortMac)
               .IPv4(peer.ip, kVip)
               .TCP(src_port, dst_port, net::TcpFlags::from_bits(flags), seq, ack, options)
               .window(window)
               .payload(data)
               .build());
    return collect();
  }
  std::vector<Out> collect() {
    std::vector<Out> out;
    for (const Frame& f : port_.take_sent()) out.push_back(decode(f));
    return out;
  }
  // Moves the fake clock and runs the timers.
  std::vector<Out> advance_to(uint64_t t_us) {
    now_ = t_us;
    tcp_->tick(now_);
    return collect();
  }

  // The three-way handshake with timestamps and window scale; returns our ISN.
  uint32_t handshake(uint16_t port, uint16_t src_port = kClientPort,
                     const Peer& peer = kFirstClient) {
    const auto synack =
        send_from(peer, port, S, kClientIsn, 0, "",
                  TcpOptions().mss(1460).sack_permitted().timestamps(100, 0).nop().window_scale(7),
                  65535, src_port);
    EXPECT_EQ(synack.size(), 1u);
    if (synack.empty()) return 0;
    const uint32_t iss = synack[0].seq;
    our_tsval_ = synack[0].timestamps->value;
    const auto after =
        send_from(peer, port, A, kClientIsn + 1, iss + 1, "",
                  TcpOptions().nop().nop().timestamps(101, our_tsval_), 65535, src_port);
    EXPECT_TRUE(after.size() <= 1u);  // the closer sends its FIN at once; the others nothing
    last_ = after;
    return iss;
  }
  TcpOptions ts(uint32_t value) { return TcpOptions().nop().nop().timestamps(value, our_tsval_); }

  uint64_t now_ = kStart;
  uint32_t our_tsval_ = 0;
  std::vector<Out> last_;
  test::MbufLeakCheck mbufs_{test::test_mbuf_pool()};
  test::StackPortHarness port_{test::harness_port_config(), test::test_mbuf_pool()};
  dataplane::TcpCounters counters_{};
  std::unique_ptr<TcpStack> tcp_ = [&] {
    auto tcp = std::make_unique<TcpStack>(settings(), *port_.stack, port_.pool, counters_,
                                          Secret{7}, kStart);
    port_.stack->set_transport(tcp.get());
    return tcp;
  }();
  EchoService echo_{*tcp_};
  DiscardService discard_{*tcp_};
  CloserService closer_{*tcp_};
};

using TcpScript = TcpScriptWith<0>;
using TcpKeepaliveScript = TcpScriptWith<1'000'000>;

}  // namespace weir::tcp
