// Scale-out between boxes (dataplane/cluster_forwarder.h): two or three whole dataplane workers,
// one per box, each on its own in-memory port, wired to one another and to a client by a switch
// in memory. The client is scripted by hand (SYN, ACK, data); the boxes run the echo service on
// the shared VIP. ECMP is the test choosing which box each client packet reaches.
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/maglev.h"
#include "dataplane/net/gue.h"
#include "dataplane/worker.h"
#include "tests/support/dataplane_harness.h"
#include "tests/support/eal_environment.h"
#include "tests/support/memory_io.h"
#include "tests/support/packet_builder.h"
#include "tests/support/tcp_script.h"

namespace weir::dataplane {
namespace {

using net::Ipv4Address;
using net::MacAddress;
using net::TcpFlag;
using test::Eth;
using test::Frame;
using test::kClientIp;
using test::kClientMac;
using test::kVip;

constexpr uint64_t kNow = 1'000'000;
constexpr uint16_t kEchoPort = 7;
constexpr uint32_t kRows = 101;  // a small prime: the owner table's rows
constexpr uint32_t kClientIsn = 5'000;

MacAddress box_mac(size_t i) {
  return MacAddress({0x02, 0x77, 0, 0, 1, static_cast<uint8_t>(i)});
}
Ipv4Address box_ip(size_t i) {
  return Ipv4Address::from_octets(10, 77, 0, static_cast<uint8_t>(2 + i));
}
std::string box_name(size_t i) {
  return std::string(1, static_cast<char>('a' + i));
}

bool same_mac(const Frame& f, size_t offset, const MacAddress& mac) {
  return std::equal(mac.octets().begin(), mac.octets().end(), f.begin() + offset);
}

// A plan over `count` boxes; boxes at or past `live` are gone (not yet joined).
std::shared_ptr<const ClusterPlan> plan_for(size_t count, size_t live, uint8_t self) {
  std::vector<cluster::Peer> peers;
  std::vector<Ipv4Address> addresses;
  for (size_t i = 0; i < count; ++i) {
    peers.push_back({box_name(i), i < live ? cluster::PeerState::live : cluster::PeerState::gone});
    addresses.push_back(box_ip(i));
  }
  return std::make_shared<const ClusterPlan>(peers, addresses, self, kRows);
}

// The boxes, the switch between them and the client's side of the wire.
struct Cluster {
  Cluster(size_t count, size_t live) {
    for (size_t i = 0; i < count; ++i) {
      WorkerSettings settings;
      settings.id = static_cast<uint16_t>(i);  // names the worker's rings: unique in the process
      settings.tcp.max_connections = 64;
      settings.tcp.listen_mss_reserve = net::gue::kOverhead;
      settings.services.push_back({kVip, kEchoPort, true, 16});
      settings.cluster = plan_for(count, live, static_cast<uint8_t>(i));
      net::StackConfig stack = test::one_port_config(box_mac(i), box_ip(i));
      stack.listener_addresses.push_back(kVip);
      auto io = std::make_unique<test::MemoryIo>(1, test::test_mbuf_pool());
      io_.push_back(io.get());
      box.push_back(
          std::make_unique<Worker>(settings, std::move(io), stack, test::test_mbuf_pool()));
    }
  }
  ~Cluster() {
    box.clear();
    EXPECT_EQ(mbufs.leaked(), 0);
  }

  // Every box's new plan, as the main lcore would post it.
  void change_plans(size_t count, size_t live) {
    for (size_t i = 0; i < box.size(); ++i) {
      auto* message = new WorkerMessage;
      message->kind = WorkerMessage::Kind::cluster_plan;
      message->cluster_plan = plan_for(count, live, static_cast<uint8_t>(i));
      ASSERT_TRUE(box[i]->post(message));
    }
    deliver();
    for (auto& b : box) {
      for (WorkerMessage* m = b->take_done(); m != nullptr; m = b->take_done()) delete m;
    }
  }

  // The client sends `frame` (built for box `to`'s MAC) to box `to`, then the network runs until
  // quiet.
  void client_sends(size_t to, const Frame& frame) {
    io_[to]->inject(0, frame);
    deliver();
  }

  // Polls every box and carries what they send (to another box, or to the client, who answers ARP
  // for its address) until nothing moves; bounded.
  void deliver() {
    for (int round = 0; round < 50; ++round) {
      bool moved = false;
      for (auto& b : box) b->poll_once(kNow);
      for (size_t from = 0; from < box.size(); ++from) {
        for (Frame& f : io_[from]->drain(0)) {
          moved = true;
          route(from, std::move(f));
        }
      }
      if (!moved) return;
    }
    ADD_FAILURE() << "the network never went quiet";
  }

  void route(size_t from, Frame f) {
    const bool arp = f[12] == 0x08 && f[13] == 0x06;
    if (same_mac(f, 0, MacAddress::broadcast())) {
      if (arp && Ipv4Address::load(f.data() + 38) == kClientIp) {
        io_[from]->inject(0, Eth(kClientMac, box_mac(from))
                                 .ARPReply(kClientMac, kClientIp, box_mac(from), box_ip(from))
                                 .pad_to(60)
                                 .build());
        return;
      }
      for (size_t i = 0; i < box.size(); ++i) {
        if (i != from) io_[i]->inject(0, f);
      }
      return;
    }
    if (same_mac(f, 0, kClientMac)) {
      to_client.push_back({from, std::move(f)});
      return;
    }
    for (size_t i = 0; i < box.size(); ++i) {
      if (same_mac(f, 0, box_mac(i))) {
        io_[i]->inject(0, f);
        return;
      }
    }
    ADD_FAILURE() << "a frame to nobody";
  }

  // The client's segments, to the VIP by way of box `to`.
  Frame segment(size_t to, uint16_t client_port, net::TcpFlags flags, uint32_t seq, uint32_t ack,
                std::string_view payload = {}) const {
    auto b = Eth(kClientMac, box_mac(to)).IPv4(kClientIp, kVip);
    if (flags.has(TcpFlag::syn)) {
      b.TCP(client_port, kEchoPort, flags, seq, ack, test::TcpOptions().mss(1460));
    } else {
      b.TCP(client_port, kEchoPort, flags, seq, ack);
    }
    return b.payload(payload).build();
  }

  // Which box is primary and secondary of the client's flow from `client_port`, by `plan`.
  static cluster::Owners owners(const ClusterPlan& plan, uint16_t client_port) {
    const uint64_t hash = maglev::hash_five_tuple(
        {kClientIp.value(), kVip.value(), client_port, kEchoPort, net::kIpProtocolTcp});
    return *plan.table.lookup(hash);
  }

  // A client port whose flow `accept` likes.
  template <typename Accept>
  static uint16_t find_client_port(Accept accept) {
    for (uint16_t port = 40000; port < 60000; ++port) {
      if (accept(port)) return port;
    }
    ADD_FAILURE() << "no client port fits";
    return 0;
  }

  // The frames the client received since the last call, with the box each came from.
  std::vector<std::pair<size_t, Frame>> take_client_frames() {
    std::vector<std::pair<size_t, Frame>> out;
    out.swap(to_client);
    return out;
  }

  // The three-way handshake: the SYN through box `syn_to`, the ACK through `ack_to`. Returns the
  // server's ISN and the box the SYN-ACK came from.
  std::pair<uint32_t, size_t> connect(uint16_t client_port, size_t syn_to, size_t ack_to) {
    client_sends(syn_to, segment(syn_to, client_port, TcpFlag::syn, kClientIsn, 0));
    const auto frames = take_client_frames();
    EXPECT_EQ(frames.size(), 1u);
    if (frames.empty()) return {0, 0};
    const tcp::Out syn_ack = tcp::decode(frames[0].second);
    EXPECT_EQ(syn_ack.flags, tcp::S | tcp::A);
    EXPECT_EQ(syn_ack.mss.value_or(0), 1460 - net::gue::kOverhead)
        << "room left for the encapsulation";
    client_sends(ack_to,
                 segment(ack_to, client_port, TcpFlag::ack, kClientIsn + 1, syn_ack.seq + 1));
    return {syn_ack.seq, frames[0].first};
  }

  const ClusterCounters& counters(size_t i) const { return box[i]->cluster_counters(); }

  test::MbufLeakCheck mbufs{test::test_mbuf_pool()};
  std::vector<std::unique_ptr<Worker>> box;
  std::vector<std::pair<size_t, Frame>> to_client;

 private:
  std::vector<test::MemoryIo*> io_;
};

// The echoed payload the client received, asserting each frame came from box `owner`.
std::string echoed_from(Cluster& c, size_t owner) {
  std::string echoed;
  for (const auto& [from, frame] : c.take_client_frames()) {
    EXPECT_EQ(from, owner) << "replies leave the owner for the client directly";
    const tcp::Out out = tcp::decode(frame);
    EXPECT_EQ(out.flags & tcp::R, 0) << "no reset";
    echoed.append(out.payload.begin(), out.payload.end());
  }
  return echoed;
}

TEST(ClusterForwarding, AConnectionOnBoxASurvivesItsPacketsArrivingAtBoxB) {
  Cluster c(2, 2);
  const auto plan = plan_for(2, 2, 0);
  const uint16_t port =
      Cluster::find_client_port([&](uint16_t p) { return Cluster::owners(*plan, p).primary == 0; });
  // The SYN reaches A, its primary; then the router's hash changes and everything reaches B.
  const auto [server_isn, syn_ack_from] = c.connect(port, 0, 1);
  EXPECT_EQ(syn_ack_from, 0u);
  std::string sent;
  for (int i = 0; i < 1000; ++i) sent.push_back(static_cast<char>('!' + (i * 7) % 90));
  c.client_sends(
      1, c.segment(1, port, TcpFlag::ack | TcpFlag::psh, kClientIsn + 1, server_isn + 1, sent));
  EXPECT_EQ(echoed_from(c, 0), sent) << "relayed through B, bytes intact";
  EXPECT_EQ(c.box[0]->tcp_connections(), 1u);
  EXPECT_EQ(c.box[1]->tcp_connections(), 0u) << "B holds nothing for the flow";
  EXPECT_EQ(c.counters(1).forwarded_to_primary.get(), 2u) << "the ACK and the data";
  EXPECT_EQ(c.counters(0).encapsulated_received.get(), 2u);
  EXPECT_EQ(c.counters(0).forwarded_to_primary.get(), 0u);
  EXPECT_EQ(c.counters(0).forwarded_to_secondary.get(), 0u);
  EXPECT_EQ(c.box[1]->tcp_counters().resets_sent.get(), 0u);
}

TEST(ClusterForwarding, ASynReachingABoxThatIsNotThePrimaryIsAcceptedByThePrimary) {
  Cluster c(2, 2);
  const auto plan = plan_for(2, 2, 0);
  const uint16_t port =
      Cluster::find_client_port([&](uint16_t p) { return Cluster::owners(*plan, p).primary == 1; });
  const auto [server_isn, syn_ack_from] = c.connect(port, 0, 0);
  EXPECT_EQ(syn_ack_from, 1u) << "B, the primary, answers the SYN A received";
  EXPECT_EQ(c.box[0]->tcp_counters().passive_opens.get(), 0u);
  EXPECT_EQ(c.box[1]->tcp_counters().passive_opens.get(), 1u);
  EXPECT_EQ(c.counters(0).forwarded_to_primary.get(), 2u) << "the SYN and the ACK";
  c.client_sends(0, c.segment(0, port, TcpFlag::ack | TcpFlag::psh, kClientIsn + 1, server_isn + 1,
                              "through A"));
  EXPECT_EQ(echoed_from(c, 1), "through A");
}

TEST(ClusterForwarding, AfterABoxJoinsThePrimaryHandsTheOldFlowToTheSecondary) {
  // A and B serve; C is configured but gone. A flow made on A, its primary then, keeps working
  // once C joins and becomes the row's primary (A its secondary), whichever box it enters by.
  Cluster c(3, 2);
  const auto before = plan_for(3, 2, 0);
  const auto after = plan_for(3, 3, 0);
  const uint16_t port = Cluster::find_client_port([&](uint16_t p) {
    const cluster::Owners now = Cluster::owners(*before, p), then = Cluster::owners(*after, p);
    return now.primary == 0 && then.primary == 2 && then.secondary == 0;
  });
  const auto [server_isn, syn_ack_from] = c.connect(port, 0, 0);
  EXPECT_EQ(syn_ack_from, 0u);
  c.change_plans(3, 3);
  uint32_t seq = kClientIsn + 1;
  for (size_t via : {1, 2, 0}) {
    const std::string data = "via box " + box_name(via);
    c.client_sends(via,
                   c.segment(via, port, TcpFlag::ack | TcpFlag::psh, seq, server_isn + 1, data));
    seq += static_cast<uint32_t>(data.size());
    EXPECT_EQ(echoed_from(c, 0), data) << "entered by " << box_name(via);
  }
  // Through B: B -> C (primary) -> A (secondary, second chance); through C: C -> A; through A:
  // A holds it.
  EXPECT_EQ(c.counters(1).forwarded_to_primary.get(), 1u);
  EXPECT_EQ(c.counters(2).forwarded_to_secondary.get(), 2u);
  EXPECT_EQ(c.counters(0).encapsulated_received.get(), 2u);
  EXPECT_EQ(c.counters(2).encapsulated_received.get(), 1u);
  for (size_t i = 0; i < 3; ++i) EXPECT_EQ(c.counters(i).hop_limit_drops.get(), 0u) << i;
  EXPECT_EQ(c.box[2]->tcp_connections(), 0u);

  // A new connection in the same row is C's now, even when its SYN reaches A.
  const uint16_t other = Cluster::find_client_port(
      [&](uint16_t p) { return p != port && Cluster::owners(*after, p).primary == 2; });
  const auto [isn, from] = c.connect(other, 0, 0);
  EXPECT_EQ(from, 2u);
  EXPECT_EQ(c.box[2]->tcp_connections(), 1u);
}

TEST(ClusterForwarding, APacketNoBoxHoldsIsForwardedTwiceAtMostThenDroppedWithoutAReset) {
  Cluster c(3, 3);
  const auto plan = plan_for(3, 3, 0);
  // Entering by B, a box that is neither owner: B -> C (primary) -> A (secondary) -> stop.
  const uint16_t port = Cluster::find_client_port([&](uint16_t p) {
    const cluster::Owners o = Cluster::owners(*plan, p);
    return o.primary == 2 && o.secondary == 0;
  });
  c.client_sends(1, c.segment(1, port, TcpFlag::ack | TcpFlag::psh, 77, 88, "stray"));
  EXPECT_EQ(c.counters(1).forwarded_to_primary.get(), 1u);
  EXPECT_EQ(c.counters(2).forwarded_to_secondary.get(), 1u);
  EXPECT_EQ(c.counters(0).hop_limit_drops.get(), 1u) << "A would send it on a third time";
  EXPECT_EQ(c.counters(0).forwarded_to_primary.get(), 0u);
  EXPECT_TRUE(c.take_client_frames().empty()) << "no RST: the flow may live where tables differ";
  for (size_t i = 0; i < 3; ++i) EXPECT_EQ(c.box[i]->tcp_counters().resets_sent.get(), 0u) << i;

  // Entering by its secondary, A: A -> C (primary) -> A again (second chance) -> stop at A.
  c.client_sends(0, c.segment(0, port, TcpFlag::ack, 77, 88));
  EXPECT_EQ(c.counters(0).forwarded_to_primary.get(), 1u);
  EXPECT_EQ(c.counters(2).forwarded_to_secondary.get(), 2u);
  EXPECT_EQ(c.counters(0).hop_limit_drops.get(), 2u);
  EXPECT_TRUE(c.take_client_frames().empty());
}

// A GUE packet to box `to` from `from` (any address), carrying a client segment to the VIP.
Frame gue_frame(size_t to, Ipv4Address from, uint8_t hops, std::string_view payload = "x") {
  const Frame client = Eth(kClientMac, box_mac(to))
                           .IPv4(kClientIp, kVip)
                           .TCP(40000, kEchoPort, TcpFlag::ack, 1, 1)
                           .payload(payload)
                           .build();
  // Ethernet, then the outer headers, then the client's packet from its IPv4 header on.
  constexpr size_t kEther = 14;
  Frame frame(client.size() + net::gue::kOverhead);
  std::copy(client.begin(), client.begin() + kEther, frame.begin());
  net::gue::write(
      std::span<uint8_t, net::gue::kOverhead>(frame.data() + kEther, net::gue::kOverhead),
      {from, box_ip(to), 0xc000, hops, 64}, static_cast<uint16_t>(client.size() - kEther));
  std::copy(client.begin() + kEther, client.end(),
            frame.begin() + static_cast<std::ptrdiff_t>(kEther + net::gue::kOverhead));
  return frame;
}

TEST(ClusterForwarding, HostileGuePacketsAreDroppedAndCounted) {
  Cluster c(2, 2);
  // From an address that is no peer, from the box itself, malformed, and at the hop limit.
  c.client_sends(0, gue_frame(0, Ipv4Address::from_octets(10, 77, 0, 50), 1));
  c.client_sends(0, gue_frame(0, box_ip(0), 1));
  EXPECT_EQ(c.counters(0).unknown_peer_drops.get(), 2u);
  Frame bad_version = gue_frame(0, box_ip(1), 1);
  bad_version[14 + 28] |= 0x40;
  c.client_sends(0, bad_version);
  Frame short_frame = gue_frame(0, box_ip(1), 1);
  short_frame.resize(14 + net::gue::kOverhead + 10);  // cut inside the inner header
  c.client_sends(0, short_frame);
  Frame inner_garbage = gue_frame(0, box_ip(1), 1);
  inner_garbage[14 + 36] = 0x00;  // inner version 0
  c.client_sends(0, inner_garbage);
  EXPECT_EQ(c.counters(0).malformed_drops.get(), 3u);
  EXPECT_EQ(c.counters(0).encapsulated_received.get(), 0u);
  // Well formed, from B, forwarded twice already, for a flow A has no state for.
  const auto plan = plan_for(2, 2, 0);
  const bool a_is_primary = Cluster::owners(*plan, 40000).primary == 0;
  c.client_sends(0, gue_frame(0, box_ip(1), 2));
  EXPECT_EQ(c.counters(0).encapsulated_received.get(), 1u);
  EXPECT_EQ(c.counters(0).hop_limit_drops.get(), 1u)
      << "A is " << (a_is_primary ? "primary" : "secondary") << ": either way, no third hop";
  EXPECT_EQ(c.counters(1).encapsulated_received.get(), 0u);
  EXPECT_TRUE(c.take_client_frames().empty());
  EXPECT_EQ(c.box[0]->tcp_counters().resets_sent.get(), 0u);
}

TEST(ClusterForwarding, WithoutAClusterNothingIsForwardedAndGueIsNotRecognised) {
  // The same boxes with no plan: B answers A's connection's data with a RST, as a single box
  // does, and a GUE packet is just UDP nobody serves.
  Cluster c(2, 2);
  c.change_plans(2, 2);
  for (auto& b : c.box) {
    auto* message = new WorkerMessage;
    message->kind = WorkerMessage::Kind::cluster_plan;  // null: leave the cluster
    ASSERT_TRUE(b->post(message));
  }
  c.deliver();
  const uint16_t port = 40000;
  c.client_sends(1, c.segment(1, port, TcpFlag::ack, 10, 20, "data"));
  const auto frames = c.take_client_frames();
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_NE(tcp::decode(frames[0].second).flags & tcp::R, 0);
  c.client_sends(0, gue_frame(0, box_ip(1), 1));
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(c.counters(i).forwarded_to_primary.get(), 0u);
    EXPECT_EQ(c.counters(i).encapsulated_received.get(), 0u);
    EXPECT_EQ(c.counters(i).malformed_drops.get(), 0u);
  }
}

}  // namespace
}  // namespace weir::dataplane
