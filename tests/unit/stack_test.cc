// The layer 2/3 stack (dataplane/net/stack.h) driven through the in-memory PacketIo: frames from
// the packet builders in, frames and counters out, no DPDK port. Expected frames are built
// independently with the same builders, so a reply is checked byte for byte.
#include "dataplane/net/stack.h"

#include <gtest/gtest.h>
#include <rte_mempool.h>

#include <cstring>
#include <span>
#include <string>
#include <vector>

#include "common/counter_catalogue.h"
#include "dataplane/net/checksum.h"
#include "dataplane/net/tcp.h"
#include "tests/support/dataplane_harness.h"
#include "tests/support/eal_environment.h"
#include "tests/support/packet_builder.h"

namespace weir::net {
namespace {

using dataplane::DropReason;
using test::Eth;
using test::Frame;
using test::kClientIp;
using test::kClientMac;
using test::kPortIp;
using test::kPortMac;
using test::kVip;

constexpr MacAddress kGatewayMac({0x02, 0x77, 0x00, 0x00, 0x00, 0xfe});
constexpr Ipv4Address kGatewayIp = Ipv4Address::from_octets(10, 77, 0, 254);
// One of the port's source_addresses (backend-side sources): answered and announced like its own.
constexpr Ipv4Address kSourceAddress = Ipv4Address::from_octets(10, 77, 0, 201);
constexpr Ipv4Address kRemoteIp = Ipv4Address::from_octets(198, 51, 100, 7);
constexpr Ipv4Address kOtherIp = Ipv4Address::from_octets(10, 77, 0, 99);
constexpr uint16_t kArpRequest = 1;

const std::vector<uint8_t> kPingData = {'w', 'e', 'i', 'r', 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};

struct RecordingTransport final : TransportHandler {
  struct Call {
    bool icmp_error;
    uint8_t type;
    uint8_t code;
    Frame bytes;  // from the IPv4 header (segment) or the ICMP payload's quoted header (error)
  };
  std::vector<Call> calls;

  static Frame bytes_of(rte_mbuf* m) {
    Frame bytes(rte_pktmbuf_pkt_len(m));
    const void* p = rte_pktmbuf_read(m, 0, static_cast<uint32_t>(bytes.size()), bytes.data());
    if (p != bytes.data()) std::memcpy(bytes.data(), p, bytes.size());
    return bytes;
  }
  void tcp_segment(PortIndex, rte_mbuf* packet, uint64_t) override {
    calls.push_back({false, 0, 0, bytes_of(packet)});
    rte_pktmbuf_free(packet);
  }
  void tcp_icmp_error(PortIndex, uint8_t type, uint8_t code, rte_mbuf* packet, uint64_t) override {
    calls.push_back({true, type, code, bytes_of(packet)});
    rte_pktmbuf_free(packet);
  }
};

class StackTest : public ::testing::Test {
 public:
  static StackConfig make_config() {
    StackConfig config = test::harness_port_config();
    config.ports[0].gateway = kGatewayIp;
    config.ports[0].source_addresses = {kSourceAddress};
    config.neighbour_timers.retry_us = 1'000'000;
    config.neighbour_timers.max_probes = 3;
    config.neighbour_capacity = 16;
    return config;
  }

  static Frame arp_request(Ipv4Address target, MacAddress destination = MacAddress::broadcast()) {
    return Eth(kClientMac, destination)
        .ARPRequest(kClientMac, kClientIp, target)
        .pad_to(60)
        .build();
  }
  static Frame arp_reply_from(MacAddress mac, Ipv4Address ip) {
    return Eth(mac, kPortMac).ARPReply(mac, ip, kPortMac, kPortIp).pad_to(60).build();
  }
  static Frame ping(Ipv4Address destination, uint16_t sequence = 1) {
    return Eth(kClientMac, kPortMac)
        .IPv4(kClientIp, destination)
        .id(0x1234)
        .ICMPEchoRequest(0x77, sequence)
        .payload(kPingData)
        .build();
  }
  static Frame expected_pong(Ipv4Address from, uint16_t sequence = 1) {
    return Eth(kPortMac, kClientMac)
        .IPv4(from, kClientIp)
        .id(0x1234)
        .ICMPEchoReply(0x77, sequence)
        .payload(kPingData)
        .build();
  }
  static Frame tcp_to(Ipv4Address destination) {
    return Eth(kClientMac, kPortMac)
        .IPv4(kClientIp, destination)
        .TCP(40000, 7, TcpFlag::syn, 1000, 0, test::TcpOptions().mss(1460))
        .build();
  }

 protected:
  ~StackTest() override {
    // Every mbuf the stack was given is freed or transmitted (and drained): nothing leaks.
    port_.stack.reset();
    port_.take_sent();
    EXPECT_EQ(mbufs_.leaked(), 0) << "mbufs leaked";
  }

  // Delivers one frame and returns what the stack transmitted in response.
  std::vector<Frame> deliver(const Frame& frame, uint64_t now_us = 0) {
    port_.deliver(frame, now_us);
    return port_.take_sent();
  }

  // Sends an IPv4 packet (the builder's frame without its Ethernet header) through send_ipv4.
  std::vector<Frame> send_ipv4(const Frame& frame, uint64_t now_us) {
    rte_mbuf* m = rte_pktmbuf_alloc(port_.pool);
    const size_t length = frame.size() - 14;
    std::memcpy(rte_pktmbuf_append(m, static_cast<uint16_t>(length)), frame.data() + 14, length);
    port_.stack->send_ipv4(0, m, now_us);
    return port_.take_sent();
  }

  std::vector<Frame> tick(uint64_t now_us) {
    port_.stack->tick(now_us);
    return port_.take_sent();
  }

  uint64_t drops(DropReason reason) const { return port_.port_counters[0].dropped(reason); }
  uint64_t total_drops() const {
    uint64_t total = 0;
    for (const auto& drop : port_.port_counters[0].drops) total += drop.get();
    return total;
  }

  test::MbufLeakCheck mbufs_{test::test_mbuf_pool()};
  test::StackPortHarness port_{make_config(), test::test_mbuf_pool()};
};

TEST_F(StackTest, AnswersArpForThePortItsSourceAndListenerAddresses) {
  for (const Ipv4Address target : {kPortIp, kVip, kSourceAddress}) {
    const std::vector<Frame> out = deliver(arp_request(target));
    ASSERT_EQ(out.size(), 1u) << target.to_string();
    // RFC 826: the reply swaps sender and target and names our MAC; the request's padding stays.
    EXPECT_EQ(out[0], Eth(kPortMac, kClientMac)
                          .ARPReply(kPortMac, target, kClientMac, kClientIp)
                          .pad_to(60)
                          .build());
  }
  EXPECT_EQ(port_.l3.arp_requests_answered.get(), 3u);
  EXPECT_EQ(port_.port_counters[0].tx_packets.get(), 3u);
  EXPECT_EQ(total_drops(), 0u);
  // A request that targets us also teaches us the sender (RFC 826 merge, "am I the target?").
  ASSERT_NE(port_.stack->neighbours().find(kClientIp.value()), nullptr);
  EXPECT_EQ(port_.stack->neighbours().find(kClientIp.value())->mac, kClientMac);
}

TEST_F(StackTest, AnswersPingForThePortAndListenerAddresses) {
  for (const Ipv4Address target : {kPortIp, kVip}) {
    const std::vector<Frame> out = deliver(ping(target, 9));
    ASSERT_EQ(out.size(), 1u) << target.to_string();
    EXPECT_EQ(out[0], expected_pong(target, 9));
  }
  EXPECT_EQ(port_.l3.icmp_echo_replies.get(), 2u);
  EXPECT_EQ(total_drops(), 0u);
}

TEST_F(StackTest, EthernetPaddingIsNotEchoed) {
  // A short echo request arrives padded to the 60-byte minimum; the reply carries only the IPv4
  // total length's worth (the padding is not ICMP data).
  const Frame request =
      Eth(kClientMac, kPortMac).IPv4(kClientIp, kPortIp).ICMPEchoRequest(1, 2).pad_to(60).build();
  const std::vector<Frame> out = deliver(request);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0], Eth(kPortMac, kClientMac).IPv4(kPortIp, kClientIp).ICMPEchoReply(1, 2).build());
}

TEST_F(StackTest, GratuitousArpAnnouncesEveryOwnedAddressAtStart) {
  port_.stack->start(0, true);
  const std::vector<Frame> out = port_.take_sent();
  // RFC 5227 2.4 announcement: a broadcast request with sender and target both the address.
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[0], Eth(kPortMac, MacAddress::broadcast())
                        .ARP(kArpRequest, kPortMac, kPortIp, MacAddress(), kPortIp)
                        .build());
  EXPECT_EQ(out[1], Eth(kPortMac, MacAddress::broadcast())
                        .ARP(kArpRequest, kPortMac, kSourceAddress, MacAddress(), kSourceAddress)
                        .build());
  EXPECT_EQ(out[2], Eth(kPortMac, MacAddress::broadcast())
                        .ARP(kArpRequest, kPortMac, kVip, MacAddress(), kVip)
                        .build());
  EXPECT_EQ(port_.l3.gratuitous_arp_sent.get(), 3u);
}

TEST_F(StackTest, OnlyTheAnnouncingWorkerSendsGratuitousArp) {
  port_.stack->start(0, false);
  EXPECT_TRUE(port_.take_sent().empty());
  EXPECT_EQ(port_.l3.gratuitous_arp_sent.get(), 0u);
}

// Every malformed or foreign frame is dropped, counted under exactly one reason, and answered by
// nothing.
struct DropCase {
  const char* name;
  Frame frame;
  DropReason reason;
};

class StackDrops : public StackTest, public ::testing::WithParamInterface<DropCase> {};

TEST_P(StackDrops, DropsAndCountsUnderOneReason) {
  EXPECT_TRUE(deliver(GetParam().frame).empty());
  EXPECT_EQ(drops(GetParam().reason), 1u)
      << counters::kDropReasons[static_cast<size_t>(GetParam().reason)].name;
  EXPECT_EQ(total_drops(), 1u);
  EXPECT_EQ(port_.l3.icmp_echo_replies.get() + port_.l3.arp_requests_answered.get(), 0u);
}

const Frame kGoodPing = StackTest::ping(kPortIp);
Frame cut(Frame frame, size_t length) {
  frame.resize(length);
  return frame;
}

INSTANTIATE_TEST_SUITE_P(
    Table, StackDrops,
    ::testing::Values(
        DropCase{"runt_ethernet", Frame(10, 0xff), DropReason::truncated},
        DropCase{
            "other_mac",
            Eth(kClientMac, kGatewayMac).IPv4(kClientIp, kPortIp).ICMPEchoRequest(1, 1).build(),
            DropReason::not_ours},
        DropCase{"ipv6_ethertype",
                 Eth(kClientMac, kPortMac).ether_type(0x86dd).payload("0123456789").build(),
                 DropReason::unsupported},
        DropCase{"bad_ipv4_checksum",
                 Eth(kClientMac, kPortMac)
                     .IPv4(kClientIp, kPortIp)
                     .corrupt_ip_checksum()
                     .ICMPEchoRequest(1, 1)
                     .build(),
                 DropReason::bad_checksum},
        DropCase{"ipv4_header_cut", cut(kGoodPing, 14 + 12), DropReason::truncated},
        DropCase{
            "ihl_below_5",
            Eth(kClientMac, kPortMac).IPv4(kClientIp, kPortIp).ihl(4).ICMPEchoRequest(1, 1).build(),
            DropReason::malformed},
        DropCase{"ip_version_6",
                 Eth(kClientMac, kPortMac)
                     .IPv4(kClientIp, kPortIp)
                     .ip_version(6)
                     .ICMPEchoRequest(1, 1)
                     .build(),
                 DropReason::malformed},
        DropCase{"total_length_past_frame",
                 Eth(kClientMac, kPortMac)
                     .IPv4(kClientIp, kPortIp)
                     .ip_total_length(1400)
                     .ICMPEchoRequest(1, 1)
                     .build(),
                 DropReason::truncated},
        DropCase{"total_length_below_header",
                 Eth(kClientMac, kPortMac)
                     .IPv4(kClientIp, kPortIp)
                     .ip_total_length(12)
                     .ICMPEchoRequest(1, 1)
                     .build(),
                 DropReason::malformed},
        DropCase{"frame_cut_inside_payload", cut(kGoodPing, kGoodPing.size() - 4),
                 DropReason::truncated},
        DropCase{"first_fragment",
                 Eth(kClientMac, kPortMac)
                     .IPv4(kClientIp, kPortIp)
                     .dont_fragment(false)
                     .more_fragments(true)
                     .ICMPEchoRequest(1, 1)
                     .build(),
                 DropReason::fragment},
        DropCase{"later_fragment",
                 Eth(kClientMac, kPortMac)
                     .IPv4(kClientIp, kPortIp)
                     .dont_fragment(false)
                     .fragment_offset(100)
                     .ICMPEchoRequest(1, 1)
                     .build(),
                 DropReason::fragment},
        DropCase{"ip_options",
                 Eth(kClientMac, kPortMac)
                     .IPv4(kClientIp, kPortIp)
                     .ip_options(std::vector<uint8_t>{1, 1, 1, 0})
                     .ICMPEchoRequest(1, 1)
                     .build(),
                 DropReason::ip_options},
        DropCase{
            "ttl_zero",
            Eth(kClientMac, kPortMac).IPv4(kClientIp, kPortIp).ttl(0).ICMPEchoRequest(1, 1).build(),
            DropReason::ttl_expired},
        DropCase{"not_our_address", StackTest::ping(kOtherIp), DropReason::not_ours},
        DropCase{"bad_icmp_checksum",
                 Eth(kClientMac, kPortMac)
                     .IPv4(kClientIp, kPortIp)
                     .ICMPEchoRequest(1, 1)
                     .corrupt_icmp_checksum()
                     .build(),
                 DropReason::bad_checksum},
        DropCase{"icmp_cut_short",
                 Eth(kClientMac, kPortMac)
                     .IPv4(kClientIp, kPortIp)
                     .ICMPEchoRequest(1, 1)
                     .truncate(14 + 20 + 3)
                     .build(),
                 DropReason::truncated},
        DropCase{"icmp_timestamp_request",
                 Eth(kClientMac, kPortMac)
                     .IPv4(kClientIp, kPortIp)
                     .ICMP(13, 0, 0)
                     .payload(Frame(12, 0))
                     .build(),
                 DropReason::unsupported},
        DropCase{"udp",
                 Eth(kClientMac, kPortMac)
                     .IPv4(kClientIp, kPortIp)
                     .ip_protocol(17)
                     .payload(Frame(8, 0))
                     .build(),
                 DropReason::unsupported},
        DropCase{"bad_tcp_checksum",
                 Eth(kClientMac, kPortMac)
                     .IPv4(kClientIp, kVip)
                     .TCP(40000, 7, TcpFlag::syn, 1, 0)
                     .corrupt_tcp_checksum()
                     .build(),
                 DropReason::bad_checksum},
        DropCase{"tcp_header_cut",
                 Eth(kClientMac, kPortMac)
                     .IPv4(kClientIp, kVip)
                     .ip_protocol(6)
                     .payload(Frame(12, 0))
                     .build(),
                 DropReason::truncated},
        DropCase{"tcp_without_a_transport", StackTest::tcp_to(kVip), DropReason::unsupported},
        DropCase{"arp_bad_lengths",
                 Eth(kClientMac, MacAddress::broadcast())
                     .ARPRequest(kClientMac, kClientIp, kPortIp)
                     .arp_lengths(8, 4)
                     .pad_to(60)
                     .build(),
                 DropReason::malformed},
        DropCase{"arp_not_ipv4",
                 Eth(kClientMac, MacAddress::broadcast())
                     .ARPRequest(kClientMac, kClientIp, kPortIp)
                     .arp_types(1, 0x86dd)
                     .pad_to(60)
                     .build(),
                 DropReason::malformed},
        DropCase{"arp_cut", cut(StackTest::arp_request(kPortIp), 14 + 20), DropReason::truncated},
        DropCase{"arp_for_someone_else", StackTest::arp_request(kOtherIp), DropReason::not_ours}),
    [](const ::testing::TestParamInfo<DropCase>& info) { return std::string(info.param.name); });

TEST_F(StackTest, StillAnswersAfterAStormOfMalformedFrames) {
  Frame garbage = kGoodPing;
  for (int i = 0; i < 2000; ++i) {
    Frame frame = garbage;
    frame[14 + (i % 40)] ^= static_cast<uint8_t>(1 + i % 255);  // damage one header byte
    frame.resize(14 + static_cast<size_t>(i) % (garbage.size() - 14));
    EXPECT_TRUE(deliver(frame).empty());
  }
  EXPECT_EQ(total_drops(), 2000u);
  const std::vector<Frame> out = deliver(ping(kPortIp));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0], expected_pong(kPortIp));
}

TEST_F(StackTest, TcpSegmentsAndIcmpErrorsAboutTcpReachTheTransport) {
  RecordingTransport transport;
  port_.stack->set_transport(&transport);
  const Frame syn = tcp_to(kVip);
  EXPECT_TRUE(deliver(syn).empty());

  // A port unreachable that quotes a TCP segment we sent (RFC 792: the IPv4 header and 8 bytes).
  const Frame sent =
      Eth(kPortMac, kClientMac).IPv4(kVip, kClientIp).TCP(7, 40000, TcpFlag::ack, 5, 6).build();
  const Frame quoted(sent.begin() + 14, sent.begin() + 14 + 28);
  const Frame error =
      Eth(kClientMac, kPortMac).IPv4(kClientIp, kVip).ICMP(3, 3, 0).payload(quoted).build();
  EXPECT_TRUE(deliver(error).empty());

  ASSERT_EQ(transport.calls.size(), 2u);
  EXPECT_FALSE(transport.calls[0].icmp_error);
  EXPECT_EQ(transport.calls[0].bytes, Frame(syn.begin() + 14, syn.end())) << "from the IPv4 header";
  EXPECT_TRUE(transport.calls[1].icmp_error);
  EXPECT_EQ(transport.calls[1].type, 3);
  EXPECT_EQ(transport.calls[1].code, 3);
  EXPECT_EQ(transport.calls[1].bytes, Frame(error.begin() + 14 + 20, error.end())) << "from ICMP";
  EXPECT_EQ(port_.l3.icmp_errors_to_tcp.get(), 1u);
  EXPECT_EQ(total_drops(), 0u);
}

TEST_F(StackTest, ResolvesANeighbourThenSendsWhatWaited) {
  const Frame packet =
      Eth(kPortMac, kClientMac).IPv4(kVip, kClientIp).TCP(7, 40000, TcpFlag::ack, 1, 1).build();
  // First packet: held, and one broadcast ARP request from the port address.
  std::vector<Frame> out = send_ipv4(packet, 0);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0], Eth(kPortMac, MacAddress::broadcast())
                        .ARP(kArpRequest, kPortMac, kPortIp, MacAddress(), kClientIp)
                        .build());
  // A second packet waits too, without a second request.
  EXPECT_TRUE(send_ipv4(packet, 10).empty());
  // The reply releases both, addressed to the learned MAC.
  out = deliver(arp_reply_from(kClientMac, kClientIp), 20);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0], packet);
  EXPECT_EQ(out[1], packet);
  EXPECT_EQ(port_.l3.arp_replies_learned.get(), 1u);
  // Resolved: the next packet leaves at once.
  out = send_ipv4(packet, 30);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0], packet);
}

TEST_F(StackTest, OffLinkDestinationsGoThroughTheGateway) {
  const Frame packet =
      Eth(kPortMac, kGatewayMac).IPv4(kVip, kRemoteIp).TCP(7, 40000, TcpFlag::ack, 1, 1).build();
  std::vector<Frame> out = send_ipv4(packet, 0);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0], Eth(kPortMac, MacAddress::broadcast())
                        .ARP(kArpRequest, kPortMac, kPortIp, MacAddress(), kGatewayIp)
                        .build());
  out = deliver(arp_reply_from(kGatewayMac, kGatewayIp), 5);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0], packet);
}

TEST_F(StackTest, RetriesThenGivesUpAndDropsWhatWaited) {
  const Frame packet =
      Eth(kPortMac, kClientMac).IPv4(kVip, kClientIp).TCP(7, 40000, TcpFlag::ack, 1, 1).build();
  ASSERT_EQ(send_ipv4(packet, 0).size(), 1u);  // probe 1
  EXPECT_TRUE(tick(500'000).empty()) << "before the retry interval";
  EXPECT_EQ(tick(1'000'000).size(), 1u) << "probe 2";
  EXPECT_EQ(tick(2'000'000).size(), 1u) << "probe 3";
  EXPECT_EQ(drops(DropReason::no_neighbour), 0u);
  EXPECT_TRUE(tick(3'000'000).empty()) << "no fourth probe";
  EXPECT_EQ(drops(DropReason::no_neighbour), 1u);
  EXPECT_EQ(port_.l3.neighbour_resolution_failures.get(), 1u);
  EXPECT_EQ(port_.l3.arp_requests_sent.get(), 3u);
}

TEST_F(StackTest, TheQueueForAnUnresolvedNeighbourIsBounded) {
  const Frame packet =
      Eth(kPortMac, kClientMac).IPv4(kVip, kClientIp).TCP(7, 40000, TcpFlag::ack, 1, 1).build();
  const size_t bound = NeighbourTable::kQueuePerNeighbour;
  for (size_t i = 0; i < bound + 5; ++i) send_ipv4(packet, i);
  EXPECT_EQ(drops(DropReason::no_neighbour), 5u);
  EXPECT_EQ(deliver(arp_reply_from(kClientMac, kClientIp), 100).size(), bound);
}

// What waits for resolution is bounded per worker as well as per neighbour: a thousand SYNs to
// new backends fit, the packet past the store is dropped but its neighbour still gets its ARP
// request, and a resolution gives the room back.
TEST_F(StackTest, WaitingPacketsShareABoundedStoreAndANewNeighbourIsStillAsked) {
  auto to = [](uint8_t host) {
    return Eth(kPortMac, kClientMac)
        .IPv4(kVip, net::Ipv4Address::from_octets(10, 77, 0, host))
        .TCP(7, 40000, TcpFlag::syn, 1, 0)
        .build();
  };
  constexpr size_t kPer = NeighbourTable::kQueuePerNeighbour;
  constexpr size_t kFull = NeighbourTable::kWaitingPackets / kPer;  // neighbours that fill it
  for (uint8_t n = 0; n < kFull; ++n) {
    for (size_t i = 0; i < kPer; ++i) send_ipv4(to(static_cast<uint8_t>(20 + n)), 0);
  }
  EXPECT_EQ(drops(DropReason::no_neighbour), 0u);
  EXPECT_EQ(port_.stack->neighbours().waiting(), NeighbourTable::kWaitingPackets);
  const std::vector<Frame> asked = send_ipv4(to(200), 0);
  ASSERT_EQ(asked.size(), 1u) << "the ARP request for the new neighbour goes out";
  EXPECT_EQ(drops(DropReason::no_neighbour), 1u) << "its packet had no room";
  // The first neighbour answers: its packets leave, and their places are free again.
  const Ipv4Address first = net::Ipv4Address::from_octets(10, 77, 0, 20);
  EXPECT_EQ(deliver(arp_reply_from(kClientMac, first), 100).size(), kPer);
  EXPECT_EQ(port_.stack->neighbours().waiting(), NeighbourTable::kWaitingPackets - kPer);
  EXPECT_TRUE(send_ipv4(to(200), 200).empty()) << "queued now";
  EXPECT_EQ(drops(DropReason::no_neighbour), 1u);
}

TEST_F(StackTest, AnArpReplyWeDidNotAskForCreatesNoEntry) {
  // RFC 826 merge rule: a reply for someone else updates nothing that does not exist already.
  const Frame unsolicited = Eth(kGatewayMac, MacAddress::broadcast())
                                .ARPReply(kGatewayMac, kGatewayIp, kClientMac, kClientIp)
                                .pad_to(60)
                                .build();
  EXPECT_TRUE(deliver(unsolicited).empty());
  EXPECT_EQ(port_.stack->neighbours().find(kGatewayIp.value()), nullptr);
  EXPECT_EQ(drops(DropReason::not_ours), 1u);
}

// A device that takes only part of a burst: the rest is freed (the fixture checks for leaks) and
// counted, and the worker goes on; what was taken leaves intact.
TEST_F(StackTest, WhatAFullTxRingRefusesIsFreedAndCountedAsTxRingFull) {
  port_.io.set_tx_capacity(2);
  for (uint16_t sequence = 1; sequence <= 5; ++sequence) {
    port_.io.inject(0, ping(kPortIp, sequence));
    rte_mbuf* m = nullptr;
    ASSERT_EQ(port_.io.receive(0, &m, 1), 1);
    port_.stack->receive(0, m, 0);
  }
  port_.tx.flush_all();  // one burst of 5 replies; the ring takes 2
  const std::vector<Frame> out = port_.io.drain(0);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0], expected_pong(kPortIp, 1));
  EXPECT_EQ(out[1], expected_pong(kPortIp, 2));
  EXPECT_EQ(port_.l3.icmp_echo_replies.get(), 5u);
  EXPECT_EQ(drops(DropReason::tx_ring_full), 3u);
  EXPECT_EQ(total_drops(), 3u);
  EXPECT_EQ(port_.port_counters[0].tx_packets.get(), 2u);
  EXPECT_EQ(port_.port_counters[0].tx_bytes.get(), 2 * expected_pong(kPortIp, 1).size());
  // Room again: the next reply leaves.
  port_.io.set_tx_capacity(4096);
  EXPECT_EQ(deliver(ping(kPortIp, 6)), std::vector<Frame>{expected_pong(kPortIp, 6)});
  EXPECT_EQ(drops(DropReason::tx_ring_full), 3u);
}

// With every mbuf of the pool taken, the ARP request a packet to an unresolved neighbour needs
// cannot be built: counted as mbuf_exhausted, the packet still waits, and the next probe goes out
// once mbufs are back.
TEST_F(StackTest, NoMbufForAnArpRequestIsCountedAsMbufExhausted) {
  const Frame packet =
      Eth(kPortMac, kClientMac).IPv4(kVip, kClientIp).TCP(7, 40000, TcpFlag::ack, 1, 1).build();
  rte_mbuf* m = rte_pktmbuf_alloc(port_.pool);
  ASSERT_NE(m, nullptr);
  const size_t length = packet.size() - 14;
  std::memcpy(rte_pktmbuf_append(m, static_cast<uint16_t>(length)), packet.data() + 14, length);
  std::vector<rte_mbuf*> taken;
  while (rte_mbuf* spare = rte_pktmbuf_alloc(port_.pool)) taken.push_back(spare);
  ASSERT_EQ(rte_mempool_avail_count(port_.pool), 0u);
  port_.stack->send_ipv4(0, m, 0);
  port_.tx.flush_all();
  EXPECT_TRUE(port_.io.drain(0).empty()) << "no request could be built";
  EXPECT_EQ(drops(DropReason::mbuf_exhausted), 1u);
  EXPECT_EQ(total_drops(), 1u);
  for (rte_mbuf* spare : taken) rte_pktmbuf_free(spare);
  const std::vector<Frame> retry = tick(1'000'000);
  ASSERT_EQ(retry.size(), 1u);
  EXPECT_EQ(retry[0], Eth(kPortMac, MacAddress::broadcast())
                          .ARP(kArpRequest, kPortMac, kPortIp, MacAddress(), kClientIp)
                          .build());
  EXPECT_EQ(deliver(arp_reply_from(kClientMac, kClientIp), 1'000'010), std::vector<Frame>{packet});
  EXPECT_EQ(drops(DropReason::mbuf_exhausted), 1u);
}

// The RX checksum flags of a port with checksum offload (dataplane/net/rx_checksum.h), every
// state against an intact and a damaged packet. UNKNOWN is what virtio reports for a packet the
// host did not checksum: it must fall back to the software check, not count as bad (issue 15).
enum class Damage : uint8_t {
  none,     // checksums right
  corrupt,  // the checksum under test off by one bit
  partial,  // TCP checksum field holding only the pseudo-header sum (virtio NEEDS_CSUM)
};

struct RxChecksumCase {
  const char* name;
  bool offload;       // the port enabled RX checksum offload (IPv4 and TCP)
  uint64_t ol_flags;  // what the device reported
  Damage damage;
  bool accepted;  // else dropped as bad_checksum
};

constexpr uint64_t kL4Unknown = RTE_MBUF_F_RX_L4_CKSUM_UNKNOWN;
constexpr uint64_t kL4Good = RTE_MBUF_F_RX_L4_CKSUM_GOOD;
constexpr uint64_t kL4Bad = RTE_MBUF_F_RX_L4_CKSUM_BAD;
constexpr uint64_t kL4None = RTE_MBUF_F_RX_L4_CKSUM_NONE;
constexpr uint64_t kIpUnknown = RTE_MBUF_F_RX_IP_CKSUM_UNKNOWN;
constexpr uint64_t kIpGood = RTE_MBUF_F_RX_IP_CKSUM_GOOD;
constexpr uint64_t kIpBad = RTE_MBUF_F_RX_IP_CKSUM_BAD;
constexpr uint64_t kIpNone = RTE_MBUF_F_RX_IP_CKSUM_NONE;

std::string rx_case_name(const ::testing::TestParamInfo<RxChecksumCase>& info) {
  return info.param.name;
}

class RxChecksumTest : public ::testing::TestWithParam<RxChecksumCase> {
 protected:
  static StackConfig config_for(bool offload) {
    StackConfig config = StackTest::make_config();
    config.ports[0].rx_ipv4_checksum_offload = offload;
    config.ports[0].rx_l4_checksum_offload = offload;
    return config;
  }
  ~RxChecksumTest() override {
    port_.stack.reset();
    port_.take_sent();
    EXPECT_EQ(mbufs_.leaked(), 0) << "mbufs leaked";
  }
  uint64_t bad_checksum_drops() const {
    return port_.port_counters[0].dropped(DropReason::bad_checksum);
  }

  test::MbufLeakCheck mbufs_{test::test_mbuf_pool()};
  test::StackPortHarness port_{config_for(GetParam().offload), test::test_mbuf_pool()};
};

class RxTcpChecksum : public RxChecksumTest {};

TEST_P(RxTcpChecksum, AcceptsOrDropsPerFlagsAndContent) {
  const RxChecksumCase& c = GetParam();
  RecordingTransport transport;
  port_.stack->set_transport(&transport);
  auto syn = [](bool corrupt) {
    auto builder = Eth(kClientMac, kPortMac)
                       .IPv4(kClientIp, kVip)
                       .TCP(40000, 7, TcpFlag::syn, 1000, 0, test::TcpOptions().mss(1460));
    if (corrupt) builder.corrupt_tcp_checksum();
    return builder.build();
  };
  Frame frame = syn(c.damage == Damage::corrupt);
  if (c.damage == Damage::partial) {
    // What a virtio host hands over for a packet it was asked to checksum (Linux's
    // CHECKSUM_PARTIAL): the field holds the folded pseudo-header sum, the data is not summed.
    const auto length = static_cast<uint16_t>(frame.size() - 14 - 20);
    const uint16_t partial = ipv4_pseudo_header_sum(kClientIp, kVip, 6, length);
    frame[14 + 20 + 16] = static_cast<uint8_t>(partial >> 8);
    frame[14 + 20 + 17] = static_cast<uint8_t>(partial);
    ASSERT_FALSE(tcp_checksum_valid(kClientIp, kVip, std::span(frame).subspan(14 + 20)));
  }
  port_.deliver(frame, 0, c.ol_flags);
  if (c.accepted) {
    ASSERT_EQ(transport.calls.size(), 1u) << "the segment reaches the transport";
    EXPECT_EQ(transport.calls[0].bytes, Frame(frame.begin() + 14, frame.end()));
    EXPECT_EQ(bad_checksum_drops(), 0u);
  } else {
    EXPECT_TRUE(transport.calls.empty());
    EXPECT_EQ(bad_checksum_drops(), 1u);
  }
  port_.stack->set_transport(nullptr);
}

INSTANTIATE_TEST_SUITE_P(
    Table, RxTcpChecksum,
    ::testing::Values(
        // The virtio case: offload on, the host said nothing, the checksum is right.
        RxChecksumCase{"unknown_intact", true, kL4Unknown, Damage::none, true},
        RxChecksumCase{"unknown_corrupt", true, kL4Unknown, Damage::corrupt, false},
        RxChecksumCase{"unknown_partial", true, kL4Unknown, Damage::partial, false},
        RxChecksumCase{"good_intact", true, kL4Good, Damage::none, true},
        // GOOD is the device's word: the software check is skipped (that is the offload).
        RxChecksumCase{"good_corrupt", true, kL4Good, Damage::corrupt, true},
        RxChecksumCase{"bad_intact", true, kL4Bad, Damage::none, false},
        RxChecksumCase{"bad_corrupt", true, kL4Bad, Damage::corrupt, false},
        RxChecksumCase{"none_partial", true, kL4None, Damage::partial, true},
        RxChecksumCase{"none_intact", true, kL4None, Damage::none, true},
        // An IPv4 verdict from the device stops the packet before TCP.
        RxChecksumCase{"ip_bad_l4_good", true, kIpBad | kL4Good, Damage::none, false},
        RxChecksumCase{"ip_good_l4_unknown_corrupt", true, kIpGood | kL4Unknown, Damage::corrupt,
                       false},
        // Without the offload the flags are not the device's and mean nothing.
        RxChecksumCase{"no_offload_good_flag_corrupt", false, kL4Good, Damage::corrupt, false},
        RxChecksumCase{"no_offload_none_flag_partial", false, kL4None, Damage::partial, false},
        RxChecksumCase{"no_offload_bad_flag_intact", false, kL4Bad | kIpBad, Damage::none, true}),
    rx_case_name);

class RxIpv4Checksum : public RxChecksumTest {};

TEST_P(RxIpv4Checksum, AnswersOrDropsPerFlagsAndContent) {
  const RxChecksumCase& c = GetParam();
  auto request = Eth(kClientMac, kPortMac)
                     .IPv4(kClientIp, kPortIp)
                     .id(0x1234)
                     .ICMPEchoRequest(0x77, 1)
                     .payload(kPingData);
  if (c.damage == Damage::corrupt) request.corrupt_ip_checksum();
  port_.deliver(request.build(), 0, c.ol_flags);
  const std::vector<Frame> out = port_.take_sent();
  if (c.accepted) {
    ASSERT_EQ(out.size(), 1u) << "answered";
    EXPECT_EQ(out[0], StackTest::expected_pong(kPortIp));
    EXPECT_EQ(bad_checksum_drops(), 0u);
  } else {
    EXPECT_TRUE(out.empty());
    EXPECT_EQ(bad_checksum_drops(), 1u);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Table, RxIpv4Checksum,
    ::testing::Values(
        RxChecksumCase{"unknown_intact", true, kIpUnknown, Damage::none, true},
        RxChecksumCase{"unknown_corrupt", true, kIpUnknown, Damage::corrupt, false},
        RxChecksumCase{"good_intact", true, kIpGood, Damage::none, true},
        RxChecksumCase{"good_corrupt", true, kIpGood, Damage::corrupt, true},
        RxChecksumCase{"bad_intact", true, kIpBad, Damage::none, false},
        RxChecksumCase{"none_intact", true, kIpNone, Damage::none, true},
        RxChecksumCase{"no_offload_good_flag_corrupt", false, kIpGood, Damage::corrupt, false},
        RxChecksumCase{"no_offload_bad_flag_intact", false, kIpBad, Damage::none, true}),
    rx_case_name);

}  // namespace
}  // namespace weir::net
