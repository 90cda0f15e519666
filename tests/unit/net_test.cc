// Header views, checksums and TCP options of dataplane/net/, and the pcap writer of tests/support.
// The frames come from the test packet builder, which writes bytes at its own offsets with its own
// checksum and is itself checked byte for byte against scapy (tests/integration/
// test_packet_builders.py); checksums are checked against published vectors and the builder's
// word-at-a-time reference_checksum.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <iterator>
#include <ostream>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/net/address.h"
#include "dataplane/net/arp.h"
#include "dataplane/net/checksum.h"
#include "dataplane/net/ether.h"
#include "dataplane/net/icmp.h"
#include "dataplane/net/ipv4.h"
#include "dataplane/net/tcp.h"
#include "tests/support/packet_builder.h"
#include "tests/support/pcap_writer.h"

namespace weir::net {

// Readable failure messages (found by argument-dependent lookup, so in the types' namespace).
void PrintTo(const MacAddress& mac, std::ostream* out) {
  *out << mac.to_string();
}
void PrintTo(const Ipv4Address& address, std::ostream* out) {
  *out << address.to_string();
}
void PrintTo(const TcpFlags& flags, std::ostream* out) {
  *out << "TcpFlags(0x" << std::hex << int{flags.bits()} << std::dec << ")";
}
void PrintTo(const TcpOptionError& error, std::ostream* out) {
  *out << to_string(error);
}

namespace {

using test::Eth;
using test::reference_checksum;
using test::TcpOptions;

constexpr MacAddress kClientMac({0x52, 0x54, 0x00, 0x12, 0x34, 0x56});
constexpr MacAddress kServerMac({0x52, 0x54, 0x00, 0xab, 0xcd, 0xef});
constexpr Ipv4Address kClientIp = Ipv4Address::from_octets(198, 51, 100, 7);
constexpr Ipv4Address kServerIp = Ipv4Address::from_octets(203, 0, 113, 10);
constexpr size_t kEthernet = 14;
constexpr size_t kIpv4 = 20;

using Bytes = std::vector<uint8_t>;

std::span<uint8_t> after(Bytes& bytes, size_t offset) {
  return std::span<uint8_t>(bytes).subspan(offset);
}

Bytes random_bytes(std::mt19937& rng, size_t n) {
  Bytes bytes(n);
  for (auto& b : bytes) b = static_cast<uint8_t>(rng());
  return bytes;
}

// ---------------------------------------------------------------- addresses

TEST(MacAddress, ParsesAndPrints) {
  const auto mac = MacAddress::parse("52:54:00:AB:cd:eF");
  ASSERT_TRUE(mac);
  EXPECT_EQ(mac->octets(), (std::array<uint8_t, 6>{0x52, 0x54, 0x00, 0xab, 0xcd, 0xef}));
  EXPECT_EQ(mac->to_string(), "52:54:00:ab:cd:ef");
  for (const char* bad : {"", "52:54:00:ab:cd", "52:54:00:ab:cd:ef:", "52-54-00-ab-cd-ef",
                          "52:54:00:ab:cd:eg", "52:54:00:ab:cd:e", "5:254:00:ab:cd:ef"}) {
    EXPECT_FALSE(MacAddress::parse(bad)) << bad;
  }
}

TEST(MacAddress, Classification) {
  EXPECT_TRUE(MacAddress::broadcast().is_broadcast());
  EXPECT_TRUE(MacAddress::broadcast().is_multicast());
  EXPECT_TRUE(MacAddress::parse("01:00:5e:00:00:01")->is_multicast());
  EXPECT_FALSE(kClientMac.is_multicast());
  EXPECT_FALSE(kClientMac.is_broadcast());
  EXPECT_TRUE(MacAddress().is_zero());
  EXPECT_FALSE(kClientMac.is_zero());
}

TEST(Ipv4Address, ParsesDottedQuads) {
  EXPECT_EQ(Ipv4Address::parse("192.0.2.1"), Ipv4Address(0xc0000201));
  EXPECT_EQ(Ipv4Address::parse("0.0.0.0"), Ipv4Address(0));
  EXPECT_EQ(Ipv4Address::parse("255.255.255.255"), Ipv4Address(0xffffffff));
  EXPECT_EQ(Ipv4Address::parse("10.0.0.10"), Ipv4Address::from_octets(10, 0, 0, 10));
  for (const char* bad : {"", "1.2.3", "1.2.3.4.5", "256.0.0.1", "1.2.3.256", "01.2.3.4",
                          "1.2.3.00", "1.2.3.4 ", " 1.2.3.4", "1..3.4", "1.2.3.-4", "+1.2.3.4",
                          "1.2.3.1000", "1.2.3.4.", "a.b.c.d", "1.2.3.4/24"}) {
    EXPECT_FALSE(Ipv4Address::parse(bad)) << bad;
  }
}

TEST(Ipv4Address, NetworkBytesAreBigEndian) {
  const uint8_t wire[4] = {192, 0, 2, 1};
  const Ipv4Address address = Ipv4Address::load(wire);
  EXPECT_EQ(address.value(), 0xc0000201u);
  EXPECT_EQ(address.network_bytes(), (std::array<uint8_t, 4>{192, 0, 2, 1}));
  uint8_t out[4] = {};
  Ipv4Address::from_octets(10, 20, 30, 40).store(out);
  EXPECT_EQ(Bytes(out, out + 4), (Bytes{10, 20, 30, 40}));
  EXPECT_EQ(address.to_string(), "192.0.2.1");
  EXPECT_LT(Ipv4Address::from_octets(10, 0, 0, 2), Ipv4Address::from_octets(192, 0, 0, 1));
}

// ---------------------------------------------------------------- checksums

// RFC 1071 section 3, the numerical example: bytes 00 01 f2 03 f4 f5 f6 f7 sum to ddf2.
TEST(Checksum, Rfc1071NumericalExample) {
  const Bytes data = {0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7};
  EXPECT_EQ(ones_complement_sum(data), 0xddf2);
  EXPECT_EQ(internet_checksum(data), 0x220d);
}

// The widely published IPv4 header example (192.168.0.1 -> 192.168.0.199, UDP, total length 115).
// By hand: 4500+0073+0000+4000+4011+c0a8+0001+c0a8+00c7 = 2479c; 479c + 2 = 479e; ~479e = b861.
TEST(Checksum, PublishedIpv4HeaderExample) {
  Bytes header = {0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11,
                  0x00, 0x00, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7};
  EXPECT_EQ(internet_checksum(header), 0xb861);
  header[10] = 0xb8;
  header[11] = 0x61;
  EXPECT_EQ(internet_checksum(header), 0);
  EXPECT_TRUE(ConstIpv4View::parse(header)->checksum_valid());
  header[8] = 0x3f;  // TTL 63 without updating the checksum
  EXPECT_FALSE(ConstIpv4View::parse(header)->checksum_valid());
}

TEST(Checksum, AllZeroAndAllOnesData) {
  const Bytes zeros(64, 0x00);
  const Bytes ones(64, 0xff);
  EXPECT_EQ(ones_complement_sum(zeros), 0x0000);
  EXPECT_EQ(internet_checksum(zeros), 0xffff);
  EXPECT_EQ(ones_complement_sum(ones), 0xffff);
  EXPECT_EQ(internet_checksum(ones), 0x0000);
  EXPECT_EQ(internet_checksum({}), 0xffff);
}

TEST(Checksum, MatchesTheReferenceAtEveryLengthAndAlignment) {
  std::mt19937 rng(7);
  const Bytes buffer = random_bytes(rng, 65535 + 8);
  std::vector<size_t> lengths;
  for (size_t n = 0; n <= 130; ++n) lengths.push_back(n);
  for (size_t n : {1499, 1500, 9000, 65534, 65535}) lengths.push_back(n);
  for (size_t length : lengths) {
    for (size_t alignment = 0; alignment < 8; ++alignment) {
      const std::span<const uint8_t> data(buffer.data() + alignment, length);
      ASSERT_EQ(internet_checksum(data), reference_checksum(data))
          << "length " << length << " alignment " << alignment;
    }
  }
}

// Carries pile up in the wide accumulator when every word is 0xffff or near it.
TEST(Checksum, MatchesTheReferenceOnCarryHeavyData) {
  for (uint8_t fill : {0xff, 0xfe, 0x80, 0x7f}) {
    for (size_t length : {1, 2, 3, 15, 16, 17, 4096, 65535}) {
      const Bytes data(length, fill);
      ASSERT_EQ(internet_checksum(data), reference_checksum(data))
          << "fill " << int{fill} << " length " << length;
    }
  }
}

TEST(Checksum, EvenLengthPiecesCombine) {
  std::mt19937 rng(11);
  const Bytes data = random_bytes(rng, 301);  // odd: the last piece carries the odd byte
  const std::span<const uint8_t> all(data);
  for (size_t split = 0; split <= data.size(); split += 2) {
    const uint16_t first = ones_complement_sum(all.first(split));
    EXPECT_EQ(ones_complement_sum(all.subspan(split), first), ones_complement_sum(all))
        << "split " << split;
    EXPECT_EQ(ones_complement_add(first, ones_complement_sum(all.subspan(split))),
              ones_complement_sum(all));
  }
}

// RFC 1624 section 4: m = 5555 changes to m' = 3285 where the other words sum to cd7a. The full
// recomputation gives 0000; RFC 1141's HC' = HC + m + ~m' gives ffff; eqn. 3 must give 0000.
TEST(Checksum, Rfc1624CornerCaseGivesZeroNotAllOnes) {
  Bytes header = {0xcd, 0x7a, 0x55, 0x55, 0x00, 0x00};
  const uint16_t before = internet_checksum(header);
  ASSERT_EQ(before, 0xdd2f);  // ~(cd7a + 5555) = ~22d0
  header[2] = 0x32;
  header[3] = 0x85;
  ASSERT_EQ(internet_checksum(header), 0x0000);

  const auto rfc1141 = [](uint16_t hc, uint16_t m, uint16_t m_new) {
    return ones_complement_add(ones_complement_add(hc, m), static_cast<uint16_t>(~m_new));
  };
  ASSERT_EQ(rfc1141(before, 0x5555, 0x3285), 0xffff) << "the vector no longer hits the corner";
  EXPECT_EQ(checksum_update16(before, 0x5555, 0x3285), 0x0000);
}

// Chains of random 16- and 32-bit field changes over random data (with a fixed non-zero word, as
// IPv4's version/IHL byte is): each incremental update equals the checksum recomputed in full by
// the reference. A quarter of the changes are chosen to make the new checksum 0x0000, the RFC 1624
// corner, which the next change then starts from.
TEST(Checksum, IncrementalUpdatesEqualFullRecomputation) {
  std::mt19937 rng(1624);
  constexpr size_t kChecksumOffset = 10;
  const auto store_checksum = [](Bytes& data, uint16_t checksum) {
    data[kChecksumOffset] = static_cast<uint8_t>(checksum >> 8);
    data[kChecksumOffset + 1] = static_cast<uint8_t>(checksum);
  };
  const auto full = [&](Bytes data) {  // by value: the checksum field is zeroed in the copy
    store_checksum(data, 0);
    return reference_checksum(data);
  };
  const size_t offsets16[] = {2, 4, 6, 8, 12, 14, 16, 18, 20, 22};
  const size_t offsets32[] = {4, 12, 16, 20};
  for (int chain = 0; chain < 4000; ++chain) {
    Bytes data = random_bytes(rng, 24);
    data[0] = 0x45;
    uint16_t checksum = full(data);
    store_checksum(data, checksum);
    for (int step = 0; step < 5; ++step) {
      const bool wide = rng() % 2 == 0;
      const size_t offset = wide ? offsets32[rng() % 4] : offsets16[rng() % 10];
      const uint32_t old_value =
          wide ? wire::load_be32(&data[offset]) : wire::load_be16(&data[offset]);
      uint32_t new_value = wide ? static_cast<uint32_t>(rng()) : rng() & 0xffff;
      if (rng() % 4 == 0) {
        // The rest of the data sums to `rest`; adding ~rest makes the sum all ones.
        Bytes without = data;
        for (size_t i = 0; i < (wide ? 4u : 2u); ++i) without[offset + i] = 0;
        const uint16_t rest = static_cast<uint16_t>(~full(without));
        new_value = static_cast<uint16_t>(~rest);
      }
      if (wide) {
        wire::store_be32(&data[offset], new_value);
        checksum = checksum_update32(checksum, old_value, new_value);
      } else {
        wire::store_be16(&data[offset], static_cast<uint16_t>(new_value));
        checksum = checksum_update16(checksum, static_cast<uint16_t>(old_value),
                                     static_cast<uint16_t>(new_value));
      }
      ASSERT_EQ(checksum, full(data)) << "chain " << chain << " step " << step << " offset "
                                      << offset << (wide ? " (32-bit)" : " (16-bit)");
      store_checksum(data, checksum);
      ASSERT_EQ(internet_checksum(data), 0) << "chain " << chain << " step " << step;
    }
  }
}

TEST(Checksum, PseudoHeaderSumMatchesTheReference) {
  const Bytes pseudo = {198, 51, 100, 7, 203, 0, 113, 10, 0, 6, 0x05, 0xdc};
  EXPECT_EQ(ipv4_pseudo_header_sum(kClientIp, kServerIp, kIpProtocolTcp, 1500),
            static_cast<uint16_t>(~reference_checksum(pseudo)));
}

TEST(Checksum, TcpChecksumDetectsEveryBitFlipAndWrongAddresses) {
  Bytes frame = Eth(kClientMac, kServerMac)
                    .IPv4(kClientIp, kServerIp)
                    .TCP(40000, 80, TcpFlag::psh | TcpFlag::ack, 1, 2, TcpOptions().mss(1460))
                    .payload("odd length payload!")  // 19 bytes
                    .build();
  Bytes segment(frame.begin() + kEthernet + kIpv4, frame.end());
  ASSERT_EQ(segment.size() % 2, 1u);
  EXPECT_TRUE(tcp_checksum_valid(kClientIp, kServerIp, segment));
  EXPECT_FALSE(tcp_checksum_valid(Ipv4Address::from_octets(198, 51, 100, 8), kServerIp, segment));
  EXPECT_FALSE(ipv4_transport_checksum_valid(kClientIp, kServerIp, kIpProtocolUdp, segment));
  for (size_t bit = 0; bit < segment.size() * 8; ++bit) {
    segment[bit / 8] ^= static_cast<uint8_t>(1 << (bit % 8));
    ASSERT_FALSE(tcp_checksum_valid(kClientIp, kServerIp, segment)) << "bit " << bit;
    segment[bit / 8] ^= static_cast<uint8_t>(1 << (bit % 8));
  }
  EXPECT_FALSE(tcp_checksum_valid(kClientIp, kServerIp,
                                  std::span<const uint8_t>(segment).first(segment.size() - 1)));
}

TEST(Checksum, TransportChecksumRejectsSegmentsLongerThanIpv4Allows) {
  const Bytes segment(65536, 0);
  EXPECT_FALSE(tcp_checksum_valid(kClientIp, kServerIp, segment));
}

// ---------------------------------------------------------------- Ethernet

TEST(EthernetView, ReadsEveryField) {
  Bytes frame =
      Eth(kClientMac, kServerMac).IPv4(kClientIp, kServerIp).ICMPEchoRequest(1, 2).build();
  const auto ether = EthernetView::parse(frame);
  ASSERT_TRUE(ether);
  EXPECT_EQ(ether->destination(), kServerMac);
  EXPECT_EQ(ether->source(), kClientMac);
  EXPECT_EQ(ether->ether_type(), 0x0800);
  EXPECT_EQ(ether->payload().data(), frame.data() + kEthernet);
  EXPECT_EQ(ether->payload().size(), frame.size() - kEthernet);

  const Bytes arp =
      Eth(kClientMac, MacAddress::broadcast()).ARPRequest(kClientMac, kClientIp, kServerIp).build();
  const auto arp_ether = ConstEthernetView::parse(arp);
  ASSERT_TRUE(arp_ether);
  EXPECT_EQ(arp_ether->ether_type(), 0x0806);
  EXPECT_TRUE(arp_ether->destination().is_broadcast());
}

TEST(EthernetView, RejectsFramesShorterThanTheHeader) {
  Bytes frame = Eth().ether_type(0x88b5).payload("x").build();
  for (size_t n = 0; n < EthernetView::kSize; ++n) {
    EXPECT_FALSE(EthernetView::parse(std::span<uint8_t>(frame).first(n))) << n;
  }
  const auto exact = EthernetView::parse(std::span<uint8_t>(frame).first(EthernetView::kSize));
  ASSERT_TRUE(exact);
  EXPECT_TRUE(exact->payload().empty());
}

TEST(EthernetView, SettersWriteTheWireBytes) {
  Bytes frame = Eth(kClientMac, kServerMac).ether_type(0x1234).payload("data").build();
  auto ether = EthernetView::parse(frame);
  ether->set_destination(kClientMac);
  ether->set_source(kServerMac);
  ether->set_ether_type(0x88b5);
  EXPECT_EQ(frame, Eth(kServerMac, kClientMac).ether_type(0x88b5).payload("data").build());
}

// ---------------------------------------------------------------- ARP

TEST(ArpView, ReadsEveryFieldOfRequestAndReply) {
  Bytes request =
      Eth(kClientMac, MacAddress::broadcast()).ARPRequest(kClientMac, kClientIp, kServerIp).build();
  const auto arp = ConstArpView::parse(std::span<const uint8_t>(request).subspan(kEthernet));
  ASSERT_TRUE(arp);
  EXPECT_EQ(arp->hardware_type(), 1);
  EXPECT_EQ(arp->protocol_type(), 0x0800);
  EXPECT_EQ(arp->hardware_length(), 6);
  EXPECT_EQ(arp->protocol_length(), 4);
  EXPECT_EQ(arp->operation(), kArpRequest);
  EXPECT_EQ(arp->sender_mac(), kClientMac);
  EXPECT_EQ(arp->sender_ip(), kClientIp);
  EXPECT_TRUE(arp->target_mac().is_zero());
  EXPECT_EQ(arp->target_ip(), kServerIp);
  EXPECT_TRUE(arp->is_ethernet_ipv4());

  Bytes reply =
      Eth(kServerMac, kClientMac).ARPReply(kServerMac, kServerIp, kClientMac, kClientIp).build();
  const auto answer = ArpView::parse(after(reply, kEthernet));
  ASSERT_TRUE(answer);
  EXPECT_EQ(answer->operation(), kArpReply);
  EXPECT_EQ(answer->sender_mac(), kServerMac);
  EXPECT_EQ(answer->sender_ip(), kServerIp);
  EXPECT_EQ(answer->target_mac(), kClientMac);
  EXPECT_EQ(answer->target_ip(), kClientIp);
}

TEST(ArpView, RejectsPacketsShorterThan28Bytes) {
  Bytes frame = Eth().ARPRequest(kClientMac, kClientIp, kServerIp).build();
  const auto packet = after(frame, kEthernet);
  ASSERT_EQ(packet.size(), ArpView::kSize);
  for (size_t n = 0; n < ArpView::kSize; ++n) EXPECT_FALSE(ArpView::parse(packet.first(n))) << n;
  EXPECT_TRUE(ArpView::parse(packet));
}

TEST(ArpView, IsEthernetIpv4ChecksTypesAndLengths) {
  struct Case {
    uint16_t hardware_type, protocol_type;
    uint8_t hardware_length, protocol_length;
  };
  for (const Case& c : {Case{6, 0x0800, 6, 4}, Case{1, 0x86dd, 6, 4}, Case{1, 0x0800, 8, 4},
                        Case{1, 0x0800, 6, 16}}) {
    Bytes frame = Eth()
                      .ARPRequest(kClientMac, kClientIp, kServerIp)
                      .arp_types(c.hardware_type, c.protocol_type)
                      .arp_lengths(c.hardware_length, c.protocol_length)
                      .build();
    const auto arp = ArpView::parse(after(frame, kEthernet));
    ASSERT_TRUE(arp);
    EXPECT_FALSE(arp->is_ethernet_ipv4())
        << c.hardware_type << " " << c.protocol_type << " " << int{c.hardware_length} << " "
        << int{c.protocol_length};
  }
}

// What the stack does with a request for one of its addresses: answer in place.
TEST(ArpView, SettersTurnARequestIntoTheReply) {
  Bytes frame =
      Eth(kClientMac, MacAddress::broadcast()).ARPRequest(kClientMac, kClientIp, kServerIp).build();
  auto ether = EthernetView::parse(frame);
  ether->set_destination(kClientMac);
  ether->set_source(kServerMac);
  auto arp = ArpView::parse(after(frame, kEthernet));
  arp->set_operation(kArpReply);
  arp->set_target_mac(kClientMac);
  arp->set_target_ip(kClientIp);
  arp->set_sender_mac(kServerMac);
  arp->set_sender_ip(kServerIp);
  EXPECT_EQ(
      frame,
      Eth(kServerMac, kClientMac).ARPReply(kServerMac, kServerIp, kClientMac, kClientIp).build());

  Bytes blank(ArpView::kSize, 0);
  ArpView::parse(blank)->set_ethernet_ipv4();
  EXPECT_EQ(Bytes(blank.begin(), blank.begin() + 6), (Bytes{0x00, 0x01, 0x08, 0x00, 0x06, 0x04}));
}

// ---------------------------------------------------------------- IPv4

TEST(Ipv4View, ReadsEveryField) {
  const Bytes router_alert = {0x94, 0x04, 0x00, 0x00};
  Bytes frame = Eth()
                    .IPv4(kClientIp, kServerIp)
                    .tos(0x2e)
                    .id(0xbeef)
                    .ttl(17)
                    .dont_fragment(false)
                    .more_fragments(true)
                    .fragment_offset(0x1abc)
                    .ip_options(router_alert)
                    .ICMPEchoRequest(1, 1)
                    .payload("abc")
                    .build();
  const auto ip = Ipv4View::parse(after(frame, kEthernet));
  ASSERT_TRUE(ip);
  EXPECT_EQ(ip->version(), 4);
  EXPECT_EQ(ip->ihl(), 6);
  EXPECT_EQ(ip->header_length(), 24u);
  EXPECT_EQ(ip->tos(), 0x2e);
  EXPECT_EQ(ip->total_length(), 24 + 8 + 3);
  EXPECT_EQ(ip->identification(), 0xbeef);
  EXPECT_FALSE(ip->reserved_flag());
  EXPECT_FALSE(ip->dont_fragment());
  EXPECT_TRUE(ip->more_fragments());
  EXPECT_EQ(ip->fragment_offset(), 0x1abc);
  EXPECT_EQ(ip->ttl(), 17);
  EXPECT_EQ(ip->protocol(), kIpProtocolIcmp);
  EXPECT_EQ(ip->checksum(), frame[kEthernet + 10] << 8 | frame[kEthernet + 11]);
  EXPECT_EQ(ip->source(), kClientIp);
  EXPECT_EQ(ip->destination(), kServerIp);
  EXPECT_TRUE(ip->header_fits());
  EXPECT_TRUE(ip->checksum_valid());
  ASSERT_TRUE(ip->options());
  EXPECT_EQ(Bytes(ip->options()->begin(), ip->options()->end()), router_alert);
  ASSERT_TRUE(ip->payload());
  EXPECT_EQ(ip->payload()->data(), frame.data() + kEthernet + 24);
  EXPECT_EQ(ip->payload()->size(), 11u);

  Bytes evil = Eth().IPv4().reserved_flag(true).dont_fragment(true).ICMPEchoRequest(1, 1).build();
  const auto flags = ConstIpv4View::parse(std::span<const uint8_t>(evil).subspan(kEthernet));
  EXPECT_TRUE(flags->reserved_flag());
  EXPECT_TRUE(flags->dont_fragment());
  EXPECT_FALSE(flags->more_fragments());
  EXPECT_EQ(flags->fragment_offset(), 0);
}

TEST(Ipv4View, RejectsPacketsShorterThan20Bytes) {
  Bytes frame = Eth().IPv4().ICMPEchoRequest(1, 1).build();
  const auto packet = after(frame, kEthernet);
  for (size_t n = 0; n < Ipv4View::kMinSize; ++n)
    EXPECT_FALSE(Ipv4View::parse(packet.first(n))) << n;
  EXPECT_TRUE(Ipv4View::parse(packet.first(Ipv4View::kMinSize)));
}

TEST(Ipv4View, ClaimedHeaderLengthIsCheckedAgainstTheSpan) {
  for (uint8_t ihl : {0, 4}) {
    Bytes frame = Eth().IPv4().ihl(ihl).ICMPEchoRequest(1, 1).build();
    const auto ip = Ipv4View::parse(after(frame, kEthernet));
    ASSERT_TRUE(ip);
    EXPECT_FALSE(ip->header_fits()) << int{ihl};
    EXPECT_FALSE(ip->options()) << int{ihl};
    EXPECT_FALSE(ip->payload()) << int{ihl};
    EXPECT_FALSE(ip->checksum_valid()) << "checksum over a header shorter than 20 bytes";
  }
  // IHL 15 claims 60 bytes; the packet has 20 + 8 + 1.
  Bytes frame = Eth().IPv4().ihl(15).ICMPEchoRequest(1, 1).payload("x").build();
  const auto ip = Ipv4View::parse(after(frame, kEthernet));
  EXPECT_EQ(ip->header_length(), 60u);
  EXPECT_FALSE(ip->header_fits());
  EXPECT_FALSE(ip->options());
  EXPECT_FALSE(ip->checksum_valid());
  EXPECT_FALSE(ip->payload());
  const Bytes before = frame;
  auto writable = Ipv4View::parse(after(frame, kEthernet));
  EXPECT_FALSE(writable->update_checksum());
  EXPECT_EQ(frame, before);

  // A truncated options area: IHL 6 but the span ends after 22 bytes.
  const Bytes nops = {1, 1, 1, 1};
  Bytes with_options =
      Eth().IPv4().ip_options(nops).ICMPEchoRequest(1, 1).truncate(kEthernet + 22).build();
  const auto cut = Ipv4View::parse(after(with_options, kEthernet));
  ASSERT_TRUE(cut);
  EXPECT_FALSE(cut->header_fits());
  EXPECT_FALSE(cut->options());
}

TEST(Ipv4View, PayloadEndsAtTheTotalLength) {
  // Ethernet pads a 20 + 8 byte ICMP packet to 46 bytes of payload; the padding is not payload.
  Bytes padded = Eth().IPv4().ICMPEchoRequest(1, 1).pad_to(60).build();
  const auto ip = Ipv4View::parse(after(padded, kEthernet));
  ASSERT_TRUE(ip->payload());
  EXPECT_EQ(ip->payload()->size(), 8u);

  Bytes too_long = Eth().IPv4().ip_total_length(29).ICMPEchoRequest(1, 1).build();  // 28 sent
  EXPECT_FALSE(Ipv4View::parse(after(too_long, kEthernet))->payload());
  Bytes below_header = Eth().IPv4().ip_total_length(19).ICMPEchoRequest(1, 1).build();
  EXPECT_FALSE(Ipv4View::parse(after(below_header, kEthernet))->payload());
  Bytes header_only = Eth().IPv4().ip_total_length(20).ICMPEchoRequest(1, 1).build();
  ASSERT_TRUE(Ipv4View::parse(after(header_only, kEthernet))->payload());
  EXPECT_TRUE(Ipv4View::parse(after(header_only, kEthernet))->payload()->empty());
}

TEST(Ipv4View, IsFragmentUnlessMoreFragmentsIsClearAndOffsetIsZero) {
  struct Case {
    bool dont_fragment, more_fragments;
    uint16_t offset;
    bool fragment;
  };
  for (const Case& c :
       {Case{true, false, 0, false}, Case{false, false, 0, false}, Case{false, true, 0, true},
        Case{false, false, 1, true}, Case{false, true, 0x1fff, true}}) {
    Bytes frame = Eth()
                      .IPv4()
                      .dont_fragment(c.dont_fragment)
                      .more_fragments(c.more_fragments)
                      .fragment_offset(c.offset)
                      .ICMPEchoRequest(1, 1)
                      .build();
    const auto ip = Ipv4View::parse(after(frame, kEthernet));
    EXPECT_EQ(ip->is_fragment(), c.fragment)
        << "DF " << c.dont_fragment << " MF " << c.more_fragments << " offset " << c.offset;
    EXPECT_EQ(ip->dont_fragment(), c.dont_fragment);
  }
}

TEST(Ipv4View, ChecksumCatchesEveryBitFlipAndWrongValues) {
  const Bytes options = {0x94, 0x04, 0x00, 0x00};
  Bytes frame = Eth().IPv4().ip_options(options).ICMPEchoRequest(1, 1).build();
  const std::span<uint8_t> header = after(frame, kEthernet).first(24);
  ASSERT_TRUE(Ipv4View::parse(after(frame, kEthernet))->checksum_valid());
  for (size_t bit = 0; bit < header.size() * 8; ++bit) {
    header[bit / 8] ^= static_cast<uint8_t>(1 << (bit % 8));
    // Flipping an IHL bit changes what the header is; it must still not verify.
    ASSERT_FALSE(Ipv4View::parse(after(frame, kEthernet))->checksum_valid()) << "bit " << bit;
    header[bit / 8] ^= static_cast<uint8_t>(1 << (bit % 8));
  }
  Bytes corrupt = Eth().IPv4().corrupt_ip_checksum().ICMPEchoRequest(1, 1).build();
  EXPECT_FALSE(Ipv4View::parse(after(corrupt, kEthernet))->checksum_valid());
  Bytes wrong = Eth().IPv4().ip_checksum(0x1234).ICMPEchoRequest(1, 1).build();
  EXPECT_FALSE(Ipv4View::parse(after(wrong, kEthernet))->checksum_valid());
}

TEST(Ipv4View, SettersWriteTheWireBytes) {
  Bytes frame = Eth()
                    .IPv4(kClientIp, kServerIp)
                    .tos(0)
                    .id(1)
                    .ttl(64)
                    .dont_fragment(true)
                    .ICMPEchoRequest(5, 6)
                    .build();
  auto ip = Ipv4View::parse(after(frame, kEthernet));
  ip->set_version(4);
  ip->set_ihl(5);
  ip->set_tos(0xb8);
  ip->set_total_length(28);
  ip->set_identification(0xfeed);
  ip->set_dont_fragment(false);
  ip->set_more_fragments(true);
  ip->set_fragment_offset(0x0123);
  ip->set_ttl(3);
  ip->set_protocol(kIpProtocolIcmp);
  ip->set_source(kServerIp);
  ip->set_destination(kClientIp);
  ASSERT_TRUE(ip->update_checksum());
  EXPECT_EQ(frame, Eth()
                       .IPv4(kServerIp, kClientIp)
                       .tos(0xb8)
                       .id(0xfeed)
                       .ttl(3)
                       .dont_fragment(false)
                       .more_fragments(true)
                       .fragment_offset(0x0123)
                       .ICMPEchoRequest(5, 6)
                       .build());

  // Flag setters touch only their own bit; the offset setter keeps the flags.
  ip->set_fragment_offset(0xffff);
  EXPECT_EQ(ip->fragment_offset(), 0x1fff);
  EXPECT_TRUE(ip->more_fragments());
  EXPECT_FALSE(ip->dont_fragment());
  ip->set_more_fragments(false);
  EXPECT_EQ(ip->fragment_offset(), 0x1fff);
  ip->set_version(6);
  EXPECT_EQ(ip->version(), 6);
  EXPECT_EQ(ip->ihl(), 5);
}

// ---------------------------------------------------------------- ICMP

TEST(IcmpView, ReadsAnEchoRequest) {
  Bytes frame = Eth().IPv4().ICMPEchoRequest(0x1234, 0xabcd).payload("ping data").build();
  const auto icmp = IcmpView::parse(after(frame, kEthernet + kIpv4));
  ASSERT_TRUE(icmp);
  EXPECT_EQ(icmp->type(), IcmpView::kEchoRequest);
  EXPECT_EQ(icmp->code(), 0);
  EXPECT_EQ(icmp->identifier(), 0x1234);
  EXPECT_EQ(icmp->sequence(), 0xabcd);
  EXPECT_EQ(icmp->rest_of_header(), 0x1234abcdu);
  EXPECT_EQ(icmp->checksum(), frame[kEthernet + kIpv4 + 2] << 8 | frame[kEthernet + kIpv4 + 3]);
  EXPECT_EQ(std::string(icmp->payload().begin(), icmp->payload().end()), "ping data");
  EXPECT_TRUE(icmp->checksum_valid());

  Bytes corrupt = Eth().IPv4().ICMPEchoRequest(1, 1).payload("x").corrupt_icmp_checksum().build();
  EXPECT_FALSE(IcmpView::parse(after(corrupt, kEthernet + kIpv4))->checksum_valid());
}

TEST(IcmpView, RejectsMessagesShorterThan8Bytes) {
  Bytes frame = Eth().IPv4().ICMPEchoRequest(1, 1).build();
  const auto message = after(frame, kEthernet + kIpv4);
  ASSERT_EQ(message.size(), IcmpView::kSize);
  for (size_t n = 0; n < IcmpView::kSize; ++n) EXPECT_FALSE(IcmpView::parse(message.first(n))) << n;
  EXPECT_TRUE(IcmpView::parse(message));
}

// The stack's echo reply: change the type, update the checksum incrementally (RFC 1624).
TEST(IcmpView, EchoReplyByIncrementalChecksumUpdate) {
  for (const char* data : {"", "a", "odd length!!!", "even length!"}) {
    Bytes request = Eth().IPv4().ICMPEchoRequest(0x4242, 7).payload(data).build();
    auto icmp = IcmpView::parse(after(request, kEthernet + kIpv4));
    icmp->set_type(IcmpView::kEchoReply);
    icmp->set_checksum(checksum_update16(icmp->checksum(), IcmpView::kEchoRequest << 8,
                                         IcmpView::kEchoReply << 8));
    const Bytes reply = Eth().IPv4().ICMPEchoReply(0x4242, 7).payload(data).build();
    EXPECT_EQ(request, reply) << '"' << data << '"';
  }
}

TEST(IcmpView, SettersAndFullChecksum) {
  Bytes frame = Eth().IPv4().ICMPEchoRequest(1, 2).payload("xyz").build();
  auto icmp = IcmpView::parse(after(frame, kEthernet + kIpv4));
  icmp->set_identifier(0x0102);
  icmp->set_sequence(0x0304);
  icmp->update_checksum();
  EXPECT_EQ(frame, Eth().IPv4().ICMPEchoRequest(0x0102, 0x0304).payload("xyz").build());
  icmp->set_type(3);
  icmp->set_code(4);
  icmp->set_rest_of_header(0x000005dc);  // fragmentation needed, next-hop MTU 1500 (RFC 1191)
  icmp->update_checksum();
  EXPECT_EQ(frame, Eth().IPv4().ICMP(3, 4, 0x000005dc).payload("xyz").build());
}

// ---------------------------------------------------------------- TCP

TEST(TcpView, ReadsEveryField) {
  Bytes frame = Eth()
                    .IPv4(kClientIp, kServerIp)
                    .TCP(51514, 443, TcpFlag::psh | TcpFlag::ack, 0xfedcba98, 0x01234567,
                         TcpOptions().nop().nop().timestamps(5, 6))
                    .window(0x1f2e)
                    .urgent_pointer(0x3d4c)
                    .payload("hello")
                    .build();
  const auto tcp = TcpView::parse(after(frame, kEthernet + kIpv4));
  ASSERT_TRUE(tcp);
  EXPECT_EQ(tcp->source_port(), 51514);
  EXPECT_EQ(tcp->destination_port(), 443);
  EXPECT_EQ(tcp->sequence_number(), 0xfedcba98u);
  EXPECT_EQ(tcp->acknowledgment_number(), 0x01234567u);
  EXPECT_EQ(tcp->data_offset(), 8);
  EXPECT_EQ(tcp->header_length(), 32u);
  EXPECT_EQ(tcp->flags(), TcpFlag::psh | TcpFlag::ack);
  EXPECT_EQ(tcp->window(), 0x1f2e);
  EXPECT_EQ(tcp->urgent_pointer(), 0x3d4c);
  EXPECT_EQ(tcp->checksum(), frame[kEthernet + kIpv4 + 16] << 8 | frame[kEthernet + kIpv4 + 17]);
  EXPECT_TRUE(tcp->header_fits());
  EXPECT_TRUE(tcp->checksum_valid(kClientIp, kServerIp));
  ASSERT_TRUE(tcp->options());
  EXPECT_EQ(Bytes(tcp->options()->begin(), tcp->options()->end()),
            TcpOptions().nop().nop().timestamps(5, 6).bytes());
  ASSERT_TRUE(tcp->payload());
  EXPECT_EQ(std::string(tcp->payload()->begin(), tcp->payload()->end()), "hello");
}

// RFC 9293 section 3.1 (and RFC 3168 for CWR/ECE): the bit of each flag in byte 13.
TEST(TcpView, EachFlagHasItsOwnBit) {
  const std::pair<TcpFlag, uint8_t> flags[] = {
      {TcpFlag::fin, 0x01}, {TcpFlag::syn, 0x02}, {TcpFlag::rst, 0x04}, {TcpFlag::psh, 0x08},
      {TcpFlag::ack, 0x10}, {TcpFlag::urg, 0x20}, {TcpFlag::ece, 0x40}, {TcpFlag::cwr, 0x80},
  };
  for (const auto& [flag, bit] : flags) {
    Bytes frame = Eth().IPv4().TCP(flag, 0, 0).build();
    ASSERT_EQ(frame[kEthernet + kIpv4 + 13], bit);
    const auto tcp = TcpView::parse(after(frame, kEthernet + kIpv4));
    for (const auto& [other, other_bit] : flags) {
      EXPECT_EQ(tcp->flags().has(other), other_bit == bit) << int{bit} << " " << int{other_bit};
    }
  }
  EXPECT_TRUE(TcpFlags().empty());
  EXPECT_EQ((TcpFlag::syn | TcpFlag::ack).bits(), 0x12);
  EXPECT_EQ(TcpFlags::from_bits(0x12), TcpFlag::syn | TcpFlag::ack);
}

TEST(TcpView, RejectsSegmentsShorterThan20Bytes) {
  Bytes frame = Eth().IPv4().TCP(TcpFlag::ack, 1, 2).build();
  const auto segment = after(frame, kEthernet + kIpv4);
  ASSERT_EQ(segment.size(), TcpView::kMinSize);
  for (size_t n = 0; n < TcpView::kMinSize; ++n)
    EXPECT_FALSE(TcpView::parse(segment.first(n))) << n;
  ASSERT_TRUE(TcpView::parse(segment));
  EXPECT_TRUE(TcpView::parse(segment)->options()->empty());
  EXPECT_TRUE(TcpView::parse(segment)->payload()->empty());
}

TEST(TcpView, ClaimedDataOffsetIsCheckedAgainstTheSpan) {
  for (uint8_t words : {0, 4}) {
    Bytes frame =
        Eth().IPv4().TCP(TcpFlag::ack, 1, 2).tcp_data_offset(words).payload("data").build();
    const auto tcp = TcpView::parse(after(frame, kEthernet + kIpv4));
    EXPECT_FALSE(tcp->header_fits()) << int{words};
    EXPECT_FALSE(tcp->options()) << int{words};
    EXPECT_FALSE(tcp->payload()) << int{words};
  }
  // Offset 15 claims 60 bytes; the segment has 24.
  Bytes frame = Eth().IPv4().TCP(TcpFlag::ack, 1, 2).tcp_data_offset(15).payload("data").build();
  const auto tcp = TcpView::parse(after(frame, kEthernet + kIpv4));
  EXPECT_EQ(tcp->header_length(), 60u);
  EXPECT_FALSE(tcp->header_fits());
  EXPECT_FALSE(tcp->options());
  // Options cut off by truncation.
  Bytes cut = Eth()
                  .IPv4()
                  .TCP(TcpFlag::syn, 1, 0, TcpOptions().mss(1460))
                  .truncate(kEthernet + kIpv4 + 22)
                  .build();
  EXPECT_FALSE(TcpView::parse(after(cut, kEthernet + kIpv4))->header_fits());
}

TEST(TcpView, ChecksumFollowsTheBuilderAndTheSetters) {
  Bytes frame = Eth()
                    .IPv4(kClientIp, kServerIp)
                    .TCP(1000, 2000, TcpFlag::syn, 3000, 0, TcpOptions().mss(1400).sack_permitted())
                    .window(5000)
                    .build();
  auto tcp = TcpView::parse(after(frame, kEthernet + kIpv4));
  EXPECT_TRUE(tcp->checksum_valid(kClientIp, kServerIp));
  tcp->set_source_port(51514);
  tcp->set_destination_port(443);
  tcp->set_sequence_number(0x11223344);
  tcp->set_acknowledgment_number(0x55667788);
  tcp->set_flags(TcpFlag::syn | TcpFlag::ack);
  tcp->set_window(0xfff0);
  tcp->set_urgent_pointer(0);
  tcp->set_data_offset(7);
  EXPECT_FALSE(tcp->checksum_valid(kClientIp, kServerIp));
  ASSERT_TRUE(tcp->update_checksum(kClientIp, kServerIp));
  EXPECT_EQ(frame, Eth()
                       .IPv4(kClientIp, kServerIp)
                       .TCP(51514, 443, TcpFlag::syn | TcpFlag::ack, 0x11223344, 0x55667788,
                            TcpOptions().mss(1400).sack_permitted())
                       .window(0xfff0)
                       .build());

  Bytes bad =
      Eth().IPv4(kClientIp, kServerIp).TCP(TcpFlag::ack, 1, 2).corrupt_tcp_checksum().build();
  EXPECT_FALSE(TcpView::parse(after(bad, kEthernet + kIpv4))->checksum_valid(kClientIp, kServerIp));
}

// Sequence number rewriting (e.g. SYN cookies, NAT-style rewrites) with a 32-bit update.
TEST(TcpView, IncrementalUpdateOfSequenceAndAddress) {
  Bytes frame = Eth().IPv4(kClientIp, kServerIp).TCP(TcpFlag::ack, 100, 200).payload("abc").build();
  auto tcp = TcpView::parse(after(frame, kEthernet + kIpv4));
  tcp->set_sequence_number(0xdeadbeef);
  tcp->set_checksum(checksum_update32(tcp->checksum(), 100, 0xdeadbeef));
  // The destination address is in the pseudo-header: it updates the same way.
  const Ipv4Address backend = Ipv4Address::from_octets(10, 1, 2, 3);
  tcp->set_checksum(checksum_update32(tcp->checksum(), kServerIp.value(), backend.value()));
  EXPECT_TRUE(tcp->checksum_valid(kClientIp, backend));
  const Bytes expected =
      Eth().IPv4(kClientIp, backend).TCP(TcpFlag::ack, 0xdeadbeef, 200).payload("abc").build();
  EXPECT_EQ(tcp->checksum(),
            expected[kEthernet + kIpv4 + 16] << 8 | expected[kEthernet + kIpv4 + 17]);
}

// ---------------------------------------------------------------- TCP options

std::vector<TcpOption> read_all(TcpOptionReader& reader) {
  std::vector<TcpOption> options;
  while (auto option = reader.next()) {
    options.push_back(*option);
    if (options.size() > 64) break;  // a reader that never ends fails below
  }
  return options;
}

TEST(TcpOptionReader, ReadsEveryKind) {
  Bytes frame = Eth()
                    .IPv4()
                    .TCP(TcpFlag::syn, 1, 0,
                         TcpOptions()
                             .mss(1460)
                             .sack_permitted()
                             .timestamps(0xdeadbeef, 0x01020304)
                             .nop()
                             .window_scale(7))
                    .build();
  const auto tcp = ConstTcpView::parse(std::span<const uint8_t>(frame).subspan(kEthernet + kIpv4));
  TcpOptionReader reader(*tcp->options());
  const std::vector<TcpOption> options = read_all(reader);
  EXPECT_EQ(reader.error(), TcpOptionError::none);
  ASSERT_EQ(options.size(), 5u);

  EXPECT_EQ(options[0].kind(), TcpOptionKind::mss);
  EXPECT_EQ(options[0].offset(), 0u);
  EXPECT_EQ(options[0].mss(), 1460);
  EXPECT_EQ(options[1].kind(), TcpOptionKind::sack_permitted);
  EXPECT_EQ(options[1].offset(), 4u);
  EXPECT_TRUE(options[1].value().empty());
  EXPECT_EQ(options[2].kind(), TcpOptionKind::timestamps);
  EXPECT_EQ(options[2].offset(), 6u);
  EXPECT_EQ(options[2].timestamps(), (TcpTimestamps{0xdeadbeef, 0x01020304}));
  EXPECT_EQ(options[3].kind(), TcpOptionKind::nop);
  EXPECT_EQ(options[3].offset(), 16u);
  EXPECT_EQ(options[4].kind(), TcpOptionKind::window_scale);
  EXPECT_EQ(options[4].offset(), 17u);
  EXPECT_EQ(options[4].window_scale(), 7);
  EXPECT_FALSE(reader.next());  // stays finished
}

TEST(TcpOptionReader, TypedAccessorsAnswerOnlyForTheirKind) {
  const Bytes bytes = TcpOptions().mss(536).bytes();
  TcpOptionReader reader(bytes);
  const auto mss = reader.next();
  ASSERT_TRUE(mss);
  EXPECT_EQ(mss->mss(), 536);
  EXPECT_FALSE(mss->window_scale());
  EXPECT_FALSE(mss->timestamps());
  EXPECT_EQ(mss->sack_block_count(), 0u);
  EXPECT_FALSE(mss->sack_block(0));
}

TEST(TcpOptionReader, SackBlocksOneToFour) {
  std::vector<SackBlock> blocks = {
      {0x00000001, 0x000005b5}, {0xfffffff0, 0x00000010}, {7, 8}, {0x80000000, 0x80001000}};
  for (size_t n = 1; n <= kMaxSackBlocks; ++n) {
    const std::vector<SackBlock> some(blocks.begin(), blocks.begin() + static_cast<ptrdiff_t>(n));
    const Bytes bytes = TcpOptions().nop().nop().sack(some).bytes();
    TcpOptionReader reader(bytes);
    const std::vector<TcpOption> options = read_all(reader);
    EXPECT_EQ(reader.error(), TcpOptionError::none);
    ASSERT_GE(options.size(), 3u);
    const TcpOption& sack = options[2];
    ASSERT_EQ(sack.kind(), TcpOptionKind::sack);
    ASSERT_EQ(sack.sack_block_count(), n);
    for (size_t i = 0; i < n; ++i) EXPECT_EQ(sack.sack_block(i), blocks[i]) << n << " " << i;
    EXPECT_FALSE(sack.sack_block(n));
    EXPECT_FALSE(sack.mss());
  }
}

// RFC 9293 section 3.2: what follows End of Option List is padding, not options.
TEST(TcpOptionReader, EndOfOptionListEndsTheOptions) {
  const Bytes bytes = {0x01, 0x00, 0x02, 0x00, 0x05};  // NOP, EOL, then bytes that would be bad
  TcpOptionReader reader(bytes);
  const std::vector<TcpOption> options = read_all(reader);
  EXPECT_EQ(reader.error(), TcpOptionError::none);
  ASSERT_EQ(options.size(), 2u);
  EXPECT_EQ(options[0].kind(), TcpOptionKind::nop);
  EXPECT_EQ(options[1].kind(), TcpOptionKind::end_of_list);
  EXPECT_EQ(options[1].offset(), 1u);
}

TEST(TcpOptionReader, EmptyOptionsEndAtOnce) {
  TcpOptionReader reader({});
  EXPECT_FALSE(reader.next());
  EXPECT_EQ(reader.error(), TcpOptionError::none);
}

// RFC 9293 section 3.2: options a receiver does not know are skipped by their length.
TEST(TcpOptionReader, SkipsUnknownKindsByLength) {
  const Bytes unknown = {0xfd, 0x04, 0xaa, 0xbb, 0x1e, 0x02};  // kind 253, then kind 30 empty
  const Bytes bytes = TcpOptions().raw(unknown).mss(1200).bytes();
  TcpOptionReader reader(bytes);
  const std::vector<TcpOption> options = read_all(reader);
  EXPECT_EQ(reader.error(), TcpOptionError::none);
  ASSERT_EQ(options.size(), 4u);  // the last is End of Option List: the zero padding
  EXPECT_EQ(static_cast<int>(options[0].kind()), 253);
  EXPECT_EQ(Bytes(options[0].value().begin(), options[0].value().end()), (Bytes{0xaa, 0xbb}));
  EXPECT_EQ(static_cast<int>(options[1].kind()), 30);
  EXPECT_TRUE(options[1].value().empty());
  EXPECT_EQ(options[2].mss(), 1200);
  EXPECT_EQ(options[3].kind(), TcpOptionKind::end_of_list);
}

TEST(TcpOptionReader, RejectsMalformedOptions) {
  struct Case {
    const char* what;
    Bytes bytes;
    TcpOptionError error;
    size_t offset;
    size_t good_before;  // options read before the bad one
  };
  Bytes five_sack_blocks = {0x05, 42};
  five_sack_blocks.resize(42, 0);
  Bytes timestamps_length_12 = {0x08, 12};
  timestamps_length_12.resize(12, 0);
  Bytes sack_length_11 = {0x05, 11};
  sack_length_11.resize(11, 0);
  const Case cases[] = {
      {"length 0", {0x02, 0x00, 0x05, 0xb4}, TcpOptionError::length_too_small, 0, 0},
      {"length 1 after a NOP", {0x01, 0x08, 0x01, 0x00}, TcpOptionError::length_too_small, 1, 1},
      {"unknown kind, length 0", {0xfe, 0x00}, TcpOptionError::length_too_small, 0, 0},
      {"length past the end", {0x02, 0x04, 0x05}, TcpOptionError::length_past_end, 0, 0},
      {"timestamps cut short",
       {0x01, 0x01, 0x08, 0x0a, 0, 0, 0, 0},
       TcpOptionError::length_past_end,
       2,
       2},
      {"kind with no length byte", {0x01, 0x01, 0x01, 0x03}, TcpOptionError::missing_length, 3, 3},
      {"MSS length 3", {0x02, 0x03, 0x05, 0x00}, TcpOptionError::wrong_length, 0, 0},
      {"MSS length 5", {0x02, 0x05, 0x05, 0xb4, 0x00}, TcpOptionError::wrong_length, 0, 0},
      {"window scale length 2", {0x03, 0x02}, TcpOptionError::wrong_length, 0, 0},
      {"window scale length 4", {0x03, 0x04, 0x07, 0x00}, TcpOptionError::wrong_length, 0, 0},
      {"SACK permitted length 3", {0x04, 0x03, 0x00}, TcpOptionError::wrong_length, 0, 0},
      {"timestamps length 8", {0x08, 0x08, 0, 0, 0, 0, 0, 0}, TcpOptionError::wrong_length, 0, 0},
      {"timestamps length 12", timestamps_length_12, TcpOptionError::wrong_length, 0, 0},
      {"SACK with no block", {0x05, 0x02}, TcpOptionError::wrong_length, 0, 0},
      {"SACK length 11", sack_length_11, TcpOptionError::wrong_length, 0, 0},
      {"SACK with five blocks", five_sack_blocks, TcpOptionError::wrong_length, 0, 0},
  };
  for (const Case& c : cases) {
    TcpOptionReader reader(c.bytes);
    const std::vector<TcpOption> options = read_all(reader);
    EXPECT_EQ(reader.error(), c.error) << c.what;
    EXPECT_EQ(reader.error_offset(), c.offset) << c.what;
    EXPECT_EQ(options.size(), c.good_before) << c.what;
    EXPECT_FALSE(reader.next()) << c.what << ": the reader stays stopped";
  }
  EXPECT_STREQ(to_string(TcpOptionError::length_past_end),
               "option runs past the end of the options");
}

// A malformed option inside a real segment, found through the view.
TEST(TcpOptionReader, MalformedOptionInASegment) {
  const Bytes zero_length_mss = {0x02, 0x00};
  Bytes frame =
      Eth().IPv4().TCP(TcpFlag::syn, 1, 0, TcpOptions().nop().raw(zero_length_mss)).build();
  const auto tcp = TcpView::parse(after(frame, kEthernet + kIpv4));
  ASSERT_TRUE(tcp->options());
  TcpOptionReader reader(*tcp->options());
  read_all(reader);
  EXPECT_EQ(reader.error(), TcpOptionError::length_too_small);
  EXPECT_EQ(reader.error_offset(), 1u);
}

// ---------------------------------------------------------------- packet builder knobs

TEST(PacketBuilder, FramingAndMisuse) {
  EXPECT_EQ(Eth().ARPRequest(kClientMac, kClientIp, kServerIp).build().size(), 42u);
  EXPECT_EQ(Eth().ARPRequest(kClientMac, kClientIp, kServerIp).pad_to(60).build().size(), 60u);
  EXPECT_EQ(Eth().IPv4().TCP(TcpFlag::syn, 1, 0).truncate(20).build().size(), 20u);
  EXPECT_THROW(Eth().IPv4().ICMPEchoRequest(1, 1).truncate(100).build(), std::logic_error);
  EXPECT_THROW(Eth().ttl(3), std::logic_error);
  EXPECT_THROW(Eth().IPv4().window(3), std::logic_error);
  EXPECT_THROW(Eth().TCP(TcpFlag::syn, 1, 0), std::logic_error);
  EXPECT_THROW(Eth().IPv4().build(), std::logic_error);
  EXPECT_THROW(Eth().payload("x").build(), std::logic_error);
  EXPECT_THROW(Eth().IPv4().TCP(TcpFlag::syn, 1, 0).ICMPEchoRequest(1, 1), std::logic_error);
}

// ---------------------------------------------------------------- pcap

// pcap-savefile(5): magic a1b2c3d4, version 2.4, thiszone 0, sigfigs 0, snaplen, linktype 1,
// here written little-endian.
TEST(Pcap, FileHeaderBytes) {
  EXPECT_EQ(test::pcap_file_header(65535),
            (Bytes{0xd4, 0xc3, 0xb2, 0xa1, 0x02, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00,
                   0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00}));
  EXPECT_EQ(test::pcap_file_header(0x00040000)[16], 0x00);
  EXPECT_EQ(test::pcap_file_header(0x00040000)[18], 0x04);
}

// Record header: ts_sec, ts_usec, incl_len, orig_len, then incl_len bytes.
TEST(Pcap, RecordBytes) {
  const Bytes frame = {1, 2, 3, 4, 5};
  EXPECT_EQ(test::pcap_record(frame, {0x01020304, 0x000a0b0c}),
            (Bytes{0x04, 0x03, 0x02, 0x01, 0x0c, 0x0b, 0x0a, 0x00, 0x05, 0x00, 0x00,
                   0x00, 0x05, 0x00, 0x00, 0x00, 1,    2,    3,    4,    5}));
  // Longer than the snap length: captured 3 of 5 bytes.
  EXPECT_EQ(test::pcap_record(frame, {1, 2}, 3),
            (Bytes{0x01, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00, 0x05,
                   0x00, 0x00, 0x00, 1, 2, 3}));
  EXPECT_THROW(test::pcap_record(frame, {1, 1'000'000}), std::invalid_argument);
}

Bytes read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

TEST(Pcap, WriterWritesHeaderThenRecords) {
  const std::string path = testing::TempDir() + "net_test_writer.pcap";
  const Bytes syn = Eth().IPv4().TCP(TcpFlag::syn, 1, 0).build();
  const Bytes arp = Eth().ARPRequest(kClientMac, kClientIp, kServerIp).build();
  {
    test::PcapWriter writer(path);
    writer.write(syn, {1700000000, 1});
    writer.write(arp, {1700000001, 999999});
    writer.close();
  }
  Bytes expected = test::pcap_file_header();
  for (const Bytes& record :
       {test::pcap_record(syn, {1700000000, 1}), test::pcap_record(arp, {1700000001, 999999})}) {
    expected.insert(expected.end(), record.begin(), record.end());
  }
  EXPECT_EQ(read_file(path), expected);
  std::remove(path.c_str());
}

TEST(Pcap, UncreatableFileErrorNamesThePath) {
  const std::string path = "/nonexistent-weir-directory/out.pcap";
  try {
    test::PcapWriter writer(path);
    FAIL() << "no error for " << path;
  } catch (const std::runtime_error& error) {
    EXPECT_NE(std::string(error.what()).find(path), std::string::npos) << error.what();
  }
}

}  // namespace
}  // namespace weir::net
