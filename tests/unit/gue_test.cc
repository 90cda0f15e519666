// GUE between Weir boxes (dataplane/net/gue.h): the header write() builds, checked byte for byte
// against one assembled here from the packet builder (its IPv4 header and checksum are its own,
// checked against scapy) and hand-written UDP and GUE bytes; parse() on the good packet, on one
// mutation per refusal reason, on every truncation, and on packets that are not GUE at all.
#include "dataplane/net/gue.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "dataplane/net/checksum.h"
#include "tests/support/packet_builder.h"

namespace weir::net::gue {
namespace {

using Bytes = std::vector<uint8_t>;

constexpr MacAddress kMacA({0x02, 0, 0, 0, 0, 0x0a});
constexpr MacAddress kMacB({0x02, 0, 0, 0, 0, 0x0b});
constexpr Ipv4Address kBoxA = Ipv4Address::from_octets(10, 77, 1, 2);
constexpr Ipv4Address kBoxB = Ipv4Address::from_octets(10, 77, 1, 3);
constexpr Ipv4Address kClient = Ipv4Address::from_octets(192, 0, 2, 7);
constexpr Ipv4Address kVip = Ipv4Address::from_octets(10, 77, 0, 100);
constexpr uint16_t kSourcePort = 0xc123;

// The client's packet as the first box received it, from its IPv4 header on.
Bytes inner_packet(std::string_view payload = "forwarded bytes") {
  const Bytes frame = test::Eth(kMacA, kMacB)
                          .IPv4(kClient, kVip)
                          .TCP(40000, 80, TcpFlag::ack | TcpFlag::psh, 1000, 2000)
                          .payload(payload)
                          .build();
  return Bytes(frame.begin() + 14, frame.end());
}

// UDP (checksum 0), GUE (version 0, C 0, Hlen 1, IPv4, flags 0), private data (type 'W', hops).
Bytes udp_and_gue(uint16_t inner_length, uint8_t hops) {
  const uint16_t udp_length = static_cast<uint16_t>(8 + 8 + inner_length);
  return {static_cast<uint8_t>(kSourcePort >> 8),
          static_cast<uint8_t>(kSourcePort),
          0x4c,
          0x43,  // 19523
          static_cast<uint8_t>(udp_length >> 8),
          static_cast<uint8_t>(udp_length),
          0,
          0,
          0x01,
          0x04,
          0x00,
          0x00,
          0x57,
          hops,
          0x00,
          0x00};
}

// The whole encapsulated packet from the outer IPv4 header, assembled independently of write().
Bytes reference_packet(uint8_t hops = 1, const Bytes& inner = inner_packet()) {
  Bytes payload = udp_and_gue(static_cast<uint16_t>(inner.size()), hops);
  payload.insert(payload.end(), inner.begin(), inner.end());
  const Bytes frame =
      test::Eth(kMacA, kMacB).IPv4(kBoxA, kBoxB).ip_protocol(17).payload(payload).build();
  return Bytes(frame.begin() + 14, frame.end());
}

Bytes written_packet(uint8_t hops = 1, const Bytes& inner = inner_packet()) {
  Bytes out(kOverhead);
  write(std::span<uint8_t, kOverhead>(out.data(), kOverhead),
        Header{kBoxA, kBoxB, kSourcePort, hops, 64}, static_cast<uint16_t>(inner.size()));
  out.insert(out.end(), inner.begin(), inner.end());
  return out;
}

void fix_ip_checksum(Bytes& p) {
  p[10] = p[11] = 0;
  const uint16_t sum = internet_checksum(std::span<const uint8_t>(p).first(20));
  p[10] = static_cast<uint8_t>(sum >> 8);
  p[11] = static_cast<uint8_t>(sum);
}

TEST(GueWrite, MatchesTheIndependentlyAssembledPacketByteForByte) {
  for (const uint8_t hops : {1, 2}) {
    EXPECT_EQ(written_packet(hops), reference_packet(hops)) << "hops " << int{hops};
  }
  const Bytes big = inner_packet(std::string(1400, 'x'));
  EXPECT_EQ(written_packet(1, big), reference_packet(1, big));
}

TEST(GueParse, ReadsBackWhatWriteBuilt) {
  const Bytes inner = inner_packet();
  for (const uint8_t hops : {1, 2}) {
    Bytes packet = written_packet(hops, inner);
    packet.resize(packet.size() + 7, 0);  // Ethernet padding after the total length is allowed
    const ParseResult r = parse(packet);
    ASSERT_EQ(r.kind, ParseResult::Kind::gue) << name_of(r.why);
    EXPECT_EQ(r.packet.source, kBoxA);
    EXPECT_EQ(r.packet.destination, kBoxB);
    EXPECT_EQ(r.packet.source_port, kSourcePort);
    EXPECT_EQ(r.packet.hops, hops);
    EXPECT_EQ(r.packet.inner_offset, kOverhead);
    ASSERT_EQ(r.packet.inner_length, inner.size());
    EXPECT_EQ(Bytes(packet.begin() + kOverhead, packet.begin() + kOverhead + inner.size()), inner);
  }
}

TEST(GueParse, AcceptsACorrectUdpChecksumAndRefusesAWrongOne) {
  Bytes packet = written_packet();
  const std::span<const uint8_t> datagram = std::span<const uint8_t>(packet).subspan(20);
  uint16_t sum = ipv4_transport_checksum(kBoxA, kBoxB, 17, datagram);
  if (sum == 0) sum = 0xffff;
  packet[26] = static_cast<uint8_t>(sum >> 8);
  packet[27] = static_cast<uint8_t>(sum);
  EXPECT_EQ(parse(packet).kind, ParseResult::Kind::gue);
  packet[27] ^= 0x01;
  const ParseResult r = parse(packet);
  EXPECT_EQ(r.kind, ParseResult::Kind::malformed);
  EXPECT_EQ(r.why, Malformed::udp_checksum);
}

struct MalformedCase {
  std::string name;
  std::function<void(Bytes&)> mutate;
  Malformed expected;
};

TEST(GueParse, RefusesEachMalformationForItsOwnReason) {
  const size_t inner = inner_packet().size();
  const std::vector<MalformedCase> cases = {
      {"outer options",
       [](Bytes& p) {
         p.insert(p.begin() + 20, {1, 1, 1, 1});
         p[0] = 0x46;
         const uint16_t total = static_cast<uint16_t>(p.size());
         p[2] = static_cast<uint8_t>(total >> 8);
         p[3] = static_cast<uint8_t>(total);
         fix_ip_checksum(p);
       },
       Malformed::outer_ip_options},
      {"outer checksum", [](Bytes& p) { p[11] ^= 0x01; }, Malformed::outer_ip_checksum},
      {"total length past the frame",
       [](Bytes& p) {
         p[3] += 1;
         fix_ip_checksum(p);
       },
       Malformed::outer_ip_length},
      {"total length under the headers",
       [](Bytes& p) {
         p[2] = 0;
         p[3] = 27;
         fix_ip_checksum(p);
       },
       Malformed::outer_ip_length},
      {"more fragments",
       [](Bytes& p) {
         p[6] |= 0x20;
         fix_ip_checksum(p);
       },
       Malformed::outer_fragment},
      {"fragment offset",
       [](Bytes& p) {
         p[7] = 1;
         fix_ip_checksum(p);
       },
       Malformed::outer_fragment},
      {"UDP length short", [](Bytes& p) { p[25] -= 1; }, Malformed::udp_length},
      {"UDP length long", [](Bytes& p) { p[25] += 1; }, Malformed::udp_length},
      {"no room for GUE",
       [](Bytes& p) {
         p.resize(20 + 8 + 6);
         p[2] = 0;
         p[3] = 34;
         fix_ip_checksum(p);
         p[24] = 0;
         p[25] = 14;
       },
       Malformed::gue_truncated},
      {"GUE version 1", [](Bytes& p) { p[28] |= 0x40; }, Malformed::gue_version},
      {"GUE version 3", [](Bytes& p) { p[28] |= 0xc0; }, Malformed::gue_version},
      {"control message", [](Bytes& p) { p[28] |= 0x20; }, Malformed::gue_control},
      {"Hlen 0", [](Bytes& p) { p[28] = 0x00; }, Malformed::gue_header_length},
      {"Hlen 2", [](Bytes& p) { p[28] = 0x02; }, Malformed::gue_header_length},
      {"a flag set", [](Bytes& p) { p[31] = 0x01; }, Malformed::gue_header_length},
      {"IPv6 inside", [](Bytes& p) { p[29] = 41; }, Malformed::inner_protocol},
      {"inner protocol TCP (not IP)", [](Bytes& p) { p[29] = 6; }, Malformed::inner_protocol},
      {"foreign private data", [](Bytes& p) { p[32] = 0x00; }, Malformed::private_type},
      {"hops 0", [](Bytes& p) { p[33] = 0; }, Malformed::hop_count},
      {"hops 3", [](Bytes& p) { p[33] = 3; }, Malformed::hop_count},
      {"hops 255", [](Bytes& p) { p[33] = 255; }, Malformed::hop_count},
      {"inner version 6", [](Bytes& p) { p[36] = 0x65; }, Malformed::inner_ip},
      {"inner total length short",
       [inner](Bytes& p) { p[36 + 3] = static_cast<uint8_t>(inner - 1); }, Malformed::inner_ip},
      {"inner header cut",
       [](Bytes& p) {
         p.resize(36 + 12);
         p[2] = 0;
         p[3] = 48;
         fix_ip_checksum(p);
         p[24] = 0;
         p[25] = 28;
       },
       Malformed::inner_ip},
      {"inner ICMP", [](Bytes& p) { p[36 + 9] = 1; }, Malformed::inner_not_tcp},
  };
  for (const MalformedCase& c : cases) {
    Bytes packet = written_packet();
    c.mutate(packet);
    const ParseResult r = parse(packet);
    EXPECT_EQ(r.kind, ParseResult::Kind::malformed) << c.name;
    EXPECT_EQ(r.why, c.expected) << c.name << ": got " << name_of(r.why);
  }
}

TEST(GueParse, EveryTruncationIsRefusedOrLeftAloneAndNeverReadPastTheEnd) {
  // Each prefix copied into a buffer of exactly its size, so that ASan sees any read past it.
  const Bytes packet = written_packet();
  for (size_t length = 0; length < packet.size(); ++length) {
    const Bytes prefix(packet.begin(), packet.begin() + static_cast<std::ptrdiff_t>(length));
    const ParseResult r = parse(prefix);
    EXPECT_NE(r.kind, ParseResult::Kind::gue) << length;
    // Once the UDP destination port is readable, it is GUE's to refuse.
    if (length >= 28) {
      EXPECT_EQ(r.kind, ParseResult::Kind::malformed) << length;
    }
  }
}

TEST(GueParse, LeavesWhatIsNotForTheGuePortToTheOrdinaryPath) {
  const std::vector<std::pair<std::string, std::function<void(Bytes&)>>> cases = {
      {"TCP",
       [](Bytes& p) {
         p[9] = 6;
         fix_ip_checksum(p);
       }},
      {"another UDP port", [](Bytes& p) { p[23] = 0x44; }},
      {"version 6", [](Bytes& p) { p[0] = 0x65; }},
      {"IHL 4", [](Bytes& p) { p[0] = 0x44; }},
      {"IHL past the frame",
       [](Bytes& p) {
         p.resize(30);
         p[0] = 0x4f;
       }},
  };
  for (const auto& [name, mutate] : cases) {
    Bytes packet = written_packet();
    mutate(packet);
    EXPECT_EQ(parse(packet).kind, ParseResult::Kind::not_gue) << name;
  }
}

TEST(GueSourcePort, SpreadsFlowHashesOverTheDynamicRange) {
  EXPECT_EQ(source_port_for(0), 0xc000);
  EXPECT_EQ(source_port_for(0x3fff), 0xffff);
  EXPECT_EQ(source_port_for(uint64_t{0x1234} << 32), 0xc000 | 0x1234);
  std::vector<bool> seen(0x4000);
  size_t distinct = 0;
  for (uint64_t h = 0; h < 0x4000; ++h) {
    const uint16_t port = source_port_for(h * 0x9e3779b97f4a7c15ull);
    ASSERT_GE(port, 0xc000);
    if (!seen[port - 0xc000]) {
      seen[port - 0xc000] = true;
      ++distinct;
    }
  }
  EXPECT_GT(distinct, 0x4000 / 2) << "the hash reaches most of the range";
}

}  // namespace
}  // namespace weir::net::gue

namespace weir::net::gue {
namespace {

// A heartbeat from box A to box B, assembled by hand: UDP (checksum 0), GUE (C 1, Hlen 1, ctype
// 'H', flags 0), private data ('W', three zeros), body (version 1, state, two zeros, sequence).
Bytes reference_heartbeat(uint8_t state, uint32_t sequence) {
  const Bytes payload = {static_cast<uint8_t>(kSourcePort >> 8),
                         static_cast<uint8_t>(kSourcePort),
                         0x4c,
                         0x43,
                         0,
                         24,
                         0,
                         0,
                         0x21,
                         0x48,
                         0,
                         0,
                         0x57,
                         0,
                         0,
                         0,
                         1,
                         state,
                         0,
                         0,
                         static_cast<uint8_t>(sequence >> 24),
                         static_cast<uint8_t>(sequence >> 16),
                         static_cast<uint8_t>(sequence >> 8),
                         static_cast<uint8_t>(sequence)};
  const Bytes frame =
      test::Eth(kMacA, kMacB).IPv4(kBoxA, kBoxB).ip_protocol(17).payload(payload).build();
  return Bytes(frame.begin() + 14, frame.end());
}

Bytes written_heartbeat(HeartbeatState state, uint32_t sequence) {
  Bytes out(kHeartbeatSize);
  write_heartbeat(std::span<uint8_t, kHeartbeatSize>(out.data(), kHeartbeatSize),
                  Header{kBoxA, kBoxB, kSourcePort, 1, 64}, state, sequence);
  return out;
}

TEST(GueHeartbeat, WriteMatchesTheIndependentlyAssembledPacketAndParsesBack) {
  for (const auto& [state, sequence] :
       {std::pair{HeartbeatState::live, 0u}, std::pair{HeartbeatState::draining, 0x01020304u}}) {
    const Bytes packet = written_heartbeat(state, sequence);
    EXPECT_EQ(packet, reference_heartbeat(static_cast<uint8_t>(state), sequence));
    const ParseResult r = parse(packet);
    ASSERT_EQ(r.kind, ParseResult::Kind::heartbeat) << name_of(r.why);
    EXPECT_EQ(r.packet.source, kBoxA);
    EXPECT_EQ(r.packet.destination, kBoxB);
    EXPECT_EQ(r.packet.state, state);
    EXPECT_EQ(r.packet.sequence, sequence);
  }
}

// A heartbeat one byte longer or shorter (IPv4 and UDP lengths kept consistent).
Bytes resized_heartbeat(size_t body) {
  Bytes p = written_heartbeat(HeartbeatState::live, 7);
  p.resize(kOverhead + body, 0);
  p[2] = 0;
  p[3] = static_cast<uint8_t>(p.size());
  fix_ip_checksum(p);
  p[24] = 0;
  p[25] = static_cast<uint8_t>(p.size() - 20);
  return p;
}

TEST(GueHeartbeat, RefusesEachMalformationAndNeverTakesATruncationForAHeartbeat) {
  const std::vector<MalformedCase> cases = {
      {"another control type", [](Bytes& p) { p[29] = 0x01; }, Malformed::gue_control},
      {"Hlen 2", [](Bytes& p) { p[28] = 0x22; }, Malformed::heartbeat},
      {"a flag set", [](Bytes& p) { p[31] = 0x80; }, Malformed::heartbeat},
      {"foreign private data", [](Bytes& p) { p[32] = 0x00; }, Malformed::heartbeat},
      {"hops set", [](Bytes& p) { p[33] = 1; }, Malformed::heartbeat},
      {"private data reserved", [](Bytes& p) { p[35] = 1; }, Malformed::heartbeat},
      {"body version 2", [](Bytes& p) { p[36] = 2; }, Malformed::heartbeat},
      {"state 2", [](Bytes& p) { p[37] = 2; }, Malformed::heartbeat},
      {"state 255", [](Bytes& p) { p[37] = 255; }, Malformed::heartbeat},
      {"body reserved", [](Bytes& p) { p[38] = 1; }, Malformed::heartbeat},
      {"a byte more", [](Bytes& p) { p = resized_heartbeat(kHeartbeatBodySize + 1); },
       Malformed::heartbeat},
      {"a byte less", [](Bytes& p) { p = resized_heartbeat(kHeartbeatBodySize - 1); },
       Malformed::heartbeat},
      {"no body", [](Bytes& p) { p = resized_heartbeat(0); }, Malformed::heartbeat},
  };
  for (const MalformedCase& c : cases) {
    Bytes packet = written_heartbeat(HeartbeatState::live, 7);
    c.mutate(packet);
    const ParseResult r = parse(packet);
    EXPECT_EQ(r.kind, ParseResult::Kind::malformed) << c.name;
    EXPECT_EQ(r.why, c.expected) << c.name << ": got " << name_of(r.why);
  }
  const Bytes packet = written_heartbeat(HeartbeatState::draining, 9);
  for (size_t length = 0; length < packet.size(); ++length) {
    const Bytes prefix(packet.begin(), packet.begin() + static_cast<std::ptrdiff_t>(length));
    EXPECT_NE(parse(prefix).kind, ParseResult::Kind::heartbeat) << length;
  }
}

}  // namespace
}  // namespace weir::net::gue
