// Test packet builders: whole Ethernet frames with lengths and checksums filled in, written in the
// style of scapy's layer stacking, e.g.
//   Eth(src_mac, dst_mac).IPv4(src, dst).TCP(40000, 80, TcpFlag::syn, 1000, 0,
//       TcpOptions().mss(1460).window_scale(7)).payload("hello").build()
// plus knobs that make frames malformed on purpose (wrong checksums, lengths, IHL, TTL, fragment
// bits, truncation) for the dataplane's drop-path tests.
//
// The builder writes every byte itself at its own offsets and computes checksums with its own
// plain reference_checksum: of dataplane/net/ it shares only the address and TCP flag types, not
// the header views or checksum code that the tests check. tests/integration/
// test_packet_builders.py checks the builder itself against scapy byte for byte.
//
// A layer's knobs follow the layer (Eth().IPv4().ttl(1), not Eth().ttl(1).IPv4()); misuse throws
// std::logic_error naming the mistake, since this is test code and a wrong test must fail loudly.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "common/net/address.h"
#include "dataplane/net/tcp.h"

namespace weir::test {

using net::Ipv4Address;
using net::MacAddress;
using net::SackBlock;
using net::TcpFlag;
using net::TcpFlags;

// Addresses used when a layer is given without them: locally administered MACs and RFC 5737
// documentation addresses, which no real network routes.
inline constexpr MacAddress kDefaultSourceMac({0x02, 0x00, 0x00, 0x00, 0x00, 0x01});
inline constexpr MacAddress kDefaultDestinationMac({0x02, 0x00, 0x00, 0x00, 0x00, 0x02});
inline constexpr Ipv4Address kDefaultSourceIp = Ipv4Address::from_octets(192, 0, 2, 1);
inline constexpr Ipv4Address kDefaultDestinationIp = Ipv4Address::from_octets(192, 0, 2, 2);
inline constexpr uint16_t kDefaultSourcePort = 40000;
inline constexpr uint16_t kDefaultDestinationPort = 80;

// RFC 1071 straight from the definition: 16-bit big-endian words, a final odd byte padded with
// zero, added with end-around carry one at a time, complemented. Slow and obviously right: the
// reference the fast checksum code is tested against.
uint16_t reference_checksum(std::span<const uint8_t> bytes);

// TCP options in the order given.
class TcpOptions {
 public:
  TcpOptions& mss(uint16_t mss);                                // RFC 9293 section 3.2
  TcpOptions& window_scale(uint8_t shift);                      // RFC 7323 section 2.2
  TcpOptions& sack_permitted();                                 // RFC 2018 section 2
  TcpOptions& sack(const std::vector<SackBlock>& blocks);       // RFC 2018 section 3
  TcpOptions& timestamps(uint32_t value, uint32_t echo_reply);  // RFC 7323 section 3.2
  TcpOptions& nop();
  TcpOptions& end_of_list();
  // Appends NOPs until the options end on a 4-byte boundary.
  TcpOptions& nops_to_boundary();
  // Any bytes at all, e.g. a malformed or unknown option.
  TcpOptions& raw(std::span<const uint8_t> bytes);

  // The options, zero-padded to a multiple of 4 bytes (RFC 9293 section 3.1, "Padding": the
  // padding is composed of zeros).
  std::vector<uint8_t> bytes() const;

 private:
  std::vector<uint8_t> bytes_;
};

class PacketBuilder {
 public:
  PacketBuilder(MacAddress source, MacAddress destination);

  // Ethernet: overrides the EtherType the next layer implies (required when there is none).
  PacketBuilder& ether_type(uint16_t type);

  // IPv4 (RFC 791). Defaults: TOS 0, ID 0, DF set (as Linux sends TCP), TTL 64, no options.
  PacketBuilder& IPv4(Ipv4Address source = kDefaultSourceIp,
                      Ipv4Address destination = kDefaultDestinationIp);
  PacketBuilder& tos(uint8_t tos);
  PacketBuilder& id(uint16_t id);
  PacketBuilder& ttl(uint8_t ttl);
  PacketBuilder& dont_fragment(bool on);
  PacketBuilder& more_fragments(bool on);
  PacketBuilder& fragment_offset(uint16_t units);               // 8-byte units, 13 bits
  PacketBuilder& reserved_flag(bool on);                        // must be zero (RFC 791)
  PacketBuilder& ip_options(std::span<const uint8_t> options);  // zero-padded to 4 bytes
  // Malformed-IPv4 knobs: each replaces the computed value and nothing else (the header checksum
  // is computed over the header as sent, so it stays right unless overridden too).
  PacketBuilder& ip_version(uint8_t version);
  PacketBuilder& ihl(uint8_t words);
  PacketBuilder& ip_total_length(uint16_t length);
  PacketBuilder& ip_protocol(uint8_t protocol);
  PacketBuilder& ip_checksum(uint16_t checksum);
  PacketBuilder& corrupt_ip_checksum();  // the right checksum with its lowest bit flipped

  // TCP (RFC 9293). Defaults: window 65535, urgent pointer 0.
  PacketBuilder& TCP(uint16_t source_port, uint16_t destination_port, TcpFlags flags,
                     uint32_t sequence, uint32_t acknowledgment, const TcpOptions& options = {});
  PacketBuilder& TCP(TcpFlags flags, uint32_t sequence, uint32_t acknowledgment,
                     const TcpOptions& options = {});
  PacketBuilder& window(uint16_t window);
  PacketBuilder& urgent_pointer(uint16_t pointer);
  PacketBuilder& tcp_data_offset(uint8_t words);  // malformed: replaces the computed offset
  PacketBuilder& tcp_checksum(uint16_t checksum);
  PacketBuilder& corrupt_tcp_checksum();  // the right checksum with its lowest bit flipped

  // ICMP (RFC 792).
  PacketBuilder& ICMP(uint8_t type, uint8_t code, uint32_t rest_of_header);
  PacketBuilder& ICMPEchoRequest(uint16_t identifier, uint16_t sequence);
  PacketBuilder& ICMPEchoReply(uint16_t identifier, uint16_t sequence);
  PacketBuilder& icmp_checksum(uint16_t checksum);
  PacketBuilder& corrupt_icmp_checksum();

  // ARP (RFC 826) for IPv4 over Ethernet.
  PacketBuilder& ARP(uint16_t operation, MacAddress sender_mac, Ipv4Address sender_ip,
                     MacAddress target_mac, Ipv4Address target_ip);
  PacketBuilder& ARPRequest(MacAddress sender_mac, Ipv4Address sender_ip, Ipv4Address target_ip);
  PacketBuilder& ARPReply(MacAddress sender_mac, Ipv4Address sender_ip, MacAddress target_mac,
                          Ipv4Address target_ip);
  // Malformed-ARP knobs: hardware/protocol type and length fields as given (layout unchanged).
  PacketBuilder& arp_types(uint16_t hardware_type, uint16_t protocol_type);
  PacketBuilder& arp_lengths(uint8_t hardware_length, uint8_t protocol_length);

  // Data after the last header (TCP data, ICMP data, or whatever follows IPv4 or Ethernet).
  PacketBuilder& payload(std::span<const uint8_t> bytes);
  PacketBuilder& payload(std::string_view text);

  // Framing: zero bytes appended up to `frame_length` (60 is the Ethernet minimum without FCS), or
  // the frame cut to `frame_length` after everything else, checksums included.
  PacketBuilder& pad_to(size_t frame_length);
  PacketBuilder& truncate(size_t frame_length);

  std::vector<uint8_t> build() const;

 private:
  enum class Network : uint8_t { none, ipv4, arp };
  enum class Transport : uint8_t { none, tcp, icmp };

  struct Ipv4Fields {
    Ipv4Address source;
    Ipv4Address destination;
    uint8_t tos = 0;
    uint16_t id = 0;
    uint8_t ttl = 64;
    bool reserved_flag = false;
    bool dont_fragment = true;
    bool more_fragments = false;
    uint16_t fragment_offset = 0;
    std::vector<uint8_t> options;
    std::optional<uint8_t> version;
    std::optional<uint8_t> ihl;
    std::optional<uint16_t> total_length;
    std::optional<uint8_t> protocol;
    std::optional<uint16_t> checksum;
    bool corrupt_checksum = false;
  };
  struct TcpFields {
    uint16_t source_port = 0;
    uint16_t destination_port = 0;
    TcpFlags flags;
    uint32_t sequence = 0;
    uint32_t acknowledgment = 0;
    std::vector<uint8_t> options;
    uint16_t window = 65535;
    uint16_t urgent_pointer = 0;
    std::optional<uint8_t> data_offset;
    std::optional<uint16_t> checksum;
    bool corrupt_checksum = false;
  };
  struct IcmpFields {
    uint8_t type = 0;
    uint8_t code = 0;
    uint32_t rest_of_header = 0;
    std::optional<uint16_t> checksum;
    bool corrupt_checksum = false;
  };
  struct ArpFields {
    uint16_t hardware_type = 1;
    uint16_t protocol_type = 0x0800;
    uint8_t hardware_length = 6;
    uint8_t protocol_length = 4;
    uint16_t operation = 0;
    MacAddress sender_mac;
    Ipv4Address sender_ip;
    MacAddress target_mac;
    Ipv4Address target_ip;
  };

  Ipv4Fields& ipv4_knob(const char* knob);
  TcpFields& tcp_knob(const char* knob);
  IcmpFields& icmp_knob(const char* knob);
  ArpFields& arp_knob(const char* knob);
  void add_transport(Transport transport, const char* layer);

  std::vector<uint8_t> build_transport() const;
  std::vector<uint8_t> build_ipv4(const std::vector<uint8_t>& transport) const;

  MacAddress source_;
  MacAddress destination_;
  std::optional<uint16_t> ether_type_;
  Network network_ = Network::none;
  Transport transport_ = Transport::none;
  Ipv4Fields ipv4_;
  TcpFields tcp_;
  IcmpFields icmp_;
  ArpFields arp_;
  std::vector<uint8_t> payload_;
  std::optional<size_t> pad_to_;
  std::optional<size_t> truncate_to_;
};

inline PacketBuilder Eth(MacAddress source = kDefaultSourceMac,
                         MacAddress destination = kDefaultDestinationMac) {
  return PacketBuilder(source, destination);
}

}  // namespace weir::test
