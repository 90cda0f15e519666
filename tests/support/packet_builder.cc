#include "tests/support/packet_builder.h"

#include <stdexcept>
#include <string>

namespace weir::test {
namespace {

constexpr uint16_t kEtherTypeIpv4 = 0x0800;
constexpr uint16_t kEtherTypeArp = 0x0806;
constexpr uint8_t kProtocolIcmp = 1;
constexpr uint8_t kProtocolTcp = 6;

// Big-endian appends: the builder's own, independent of common/wire.
void put8(std::vector<uint8_t>& out, uint8_t value) {
  out.push_back(value);
}
void put16(std::vector<uint8_t>& out, uint16_t value) {
  out.push_back(static_cast<uint8_t>(value >> 8));
  out.push_back(static_cast<uint8_t>(value));
}
void put32(std::vector<uint8_t>& out, uint32_t value) {
  put16(out, static_cast<uint16_t>(value >> 16));
  put16(out, static_cast<uint16_t>(value));
}
void put_mac(std::vector<uint8_t>& out, const MacAddress& mac) {
  out.insert(out.end(), mac.octets().begin(), mac.octets().end());
}
void put_ip(std::vector<uint8_t>& out, Ipv4Address address) {
  put32(out, address.value());
}
void set16(std::vector<uint8_t>& out, size_t offset, uint16_t value) {
  out[offset] = static_cast<uint8_t>(value >> 8);
  out[offset + 1] = static_cast<uint8_t>(value);
}

void pad_to_multiple_of_4(std::vector<uint8_t>& bytes) {
  while (bytes.size() % 4 != 0) bytes.push_back(0);
}

[[noreturn]] void misuse(const std::string& what) {
  throw std::logic_error("PacketBuilder: " + what);
}

}  // namespace

uint16_t reference_checksum(std::span<const uint8_t> bytes) {
  uint32_t sum = 0;
  for (size_t i = 0; i < bytes.size(); i += 2) {
    const uint32_t high = bytes[i];
    const uint32_t low = i + 1 < bytes.size() ? bytes[i + 1] : 0;
    sum += high << 8 | low;
    if (sum > 0xffff) sum = (sum & 0xffff) + 1;
  }
  return static_cast<uint16_t>(~sum);
}

TcpOptions& TcpOptions::mss(uint16_t mss) {
  put8(bytes_, 2);
  put8(bytes_, 4);
  put16(bytes_, mss);
  return *this;
}

TcpOptions& TcpOptions::window_scale(uint8_t shift) {
  put8(bytes_, 3);
  put8(bytes_, 3);
  put8(bytes_, shift);
  return *this;
}

TcpOptions& TcpOptions::sack_permitted() {
  put8(bytes_, 4);
  put8(bytes_, 2);
  return *this;
}

TcpOptions& TcpOptions::sack(const std::vector<SackBlock>& blocks) {
  put8(bytes_, 5);
  put8(bytes_, static_cast<uint8_t>(2 + 8 * blocks.size()));
  for (const SackBlock& block : blocks) {
    put32(bytes_, block.left);
    put32(bytes_, block.right);
  }
  return *this;
}

TcpOptions& TcpOptions::timestamps(uint32_t value, uint32_t echo_reply) {
  put8(bytes_, 8);
  put8(bytes_, 10);
  put32(bytes_, value);
  put32(bytes_, echo_reply);
  return *this;
}

TcpOptions& TcpOptions::nop() {
  put8(bytes_, 1);
  return *this;
}

TcpOptions& TcpOptions::end_of_list() {
  put8(bytes_, 0);
  return *this;
}

TcpOptions& TcpOptions::nops_to_boundary() {
  while (bytes_.size() % 4 != 0) put8(bytes_, 1);
  return *this;
}

TcpOptions& TcpOptions::raw(std::span<const uint8_t> bytes) {
  bytes_.insert(bytes_.end(), bytes.begin(), bytes.end());
  return *this;
}

std::vector<uint8_t> TcpOptions::bytes() const {
  std::vector<uint8_t> padded = bytes_;
  pad_to_multiple_of_4(padded);
  return padded;
}

PacketBuilder::PacketBuilder(MacAddress source, MacAddress destination)
    : source_(source), destination_(destination) {}

PacketBuilder& PacketBuilder::ether_type(uint16_t type) {
  ether_type_ = type;
  return *this;
}

PacketBuilder& PacketBuilder::IPv4(Ipv4Address source, Ipv4Address destination) {
  if (network_ != Network::none) misuse("IPv4 after another network layer");
  network_ = Network::ipv4;
  ipv4_.source = source;
  ipv4_.destination = destination;
  return *this;
}

PacketBuilder::Ipv4Fields& PacketBuilder::ipv4_knob(const char* knob) {
  if (network_ != Network::ipv4) misuse(std::string(knob) + " needs IPv4() first");
  return ipv4_;
}

PacketBuilder& PacketBuilder::tos(uint8_t tos) {
  ipv4_knob("tos").tos = tos;
  return *this;
}
PacketBuilder& PacketBuilder::id(uint16_t id) {
  ipv4_knob("id").id = id;
  return *this;
}
PacketBuilder& PacketBuilder::ttl(uint8_t ttl) {
  ipv4_knob("ttl").ttl = ttl;
  return *this;
}
PacketBuilder& PacketBuilder::dont_fragment(bool on) {
  ipv4_knob("dont_fragment").dont_fragment = on;
  return *this;
}
PacketBuilder& PacketBuilder::more_fragments(bool on) {
  ipv4_knob("more_fragments").more_fragments = on;
  return *this;
}
PacketBuilder& PacketBuilder::fragment_offset(uint16_t units) {
  if (units > 0x1fff) misuse("fragment offset " + std::to_string(units) + " exceeds 13 bits");
  ipv4_knob("fragment_offset").fragment_offset = units;
  return *this;
}
PacketBuilder& PacketBuilder::reserved_flag(bool on) {
  ipv4_knob("reserved_flag").reserved_flag = on;
  return *this;
}
PacketBuilder& PacketBuilder::ip_options(std::span<const uint8_t> options) {
  Ipv4Fields& ipv4 = ipv4_knob("ip_options");
  ipv4.options.assign(options.begin(), options.end());
  pad_to_multiple_of_4(ipv4.options);  // RFC 791: padding to a 32-bit boundary, with zeros
  if (ipv4.options.size() > 40) misuse("IPv4 options longer than 40 bytes");
  return *this;
}
PacketBuilder& PacketBuilder::ip_version(uint8_t version) {
  ipv4_knob("ip_version").version = version;
  return *this;
}
PacketBuilder& PacketBuilder::ihl(uint8_t words) {
  ipv4_knob("ihl").ihl = words;
  return *this;
}
PacketBuilder& PacketBuilder::ip_total_length(uint16_t length) {
  ipv4_knob("ip_total_length").total_length = length;
  return *this;
}
PacketBuilder& PacketBuilder::ip_protocol(uint8_t protocol) {
  ipv4_knob("ip_protocol").protocol = protocol;
  return *this;
}
PacketBuilder& PacketBuilder::ip_checksum(uint16_t checksum) {
  ipv4_knob("ip_checksum").checksum = checksum;
  return *this;
}
PacketBuilder& PacketBuilder::corrupt_ip_checksum() {
  ipv4_knob("corrupt_ip_checksum").corrupt_checksum = true;
  return *this;
}

void PacketBuilder::add_transport(Transport transport, const char* layer) {
  if (network_ != Network::ipv4) misuse(std::string(layer) + " needs IPv4() first");
  if (transport_ != Transport::none) misuse(std::string(layer) + " after another transport layer");
  transport_ = transport;
}

PacketBuilder& PacketBuilder::TCP(uint16_t source_port, uint16_t destination_port, TcpFlags flags,
                                  uint32_t sequence, uint32_t acknowledgment,
                                  const TcpOptions& options) {
  add_transport(Transport::tcp, "TCP");
  tcp_.source_port = source_port;
  tcp_.destination_port = destination_port;
  tcp_.flags = flags;
  tcp_.sequence = sequence;
  tcp_.acknowledgment = acknowledgment;
  tcp_.options = options.bytes();
  if (tcp_.options.size() > 40) misuse("TCP options longer than 40 bytes");
  return *this;
}

PacketBuilder& PacketBuilder::TCP(TcpFlags flags, uint32_t sequence, uint32_t acknowledgment,
                                  const TcpOptions& options) {
  return TCP(kDefaultSourcePort, kDefaultDestinationPort, flags, sequence, acknowledgment, options);
}

PacketBuilder::TcpFields& PacketBuilder::tcp_knob(const char* knob) {
  if (transport_ != Transport::tcp) misuse(std::string(knob) + " needs TCP() first");
  return tcp_;
}

PacketBuilder& PacketBuilder::window(uint16_t window) {
  tcp_knob("window").window = window;
  return *this;
}
PacketBuilder& PacketBuilder::urgent_pointer(uint16_t pointer) {
  tcp_knob("urgent_pointer").urgent_pointer = pointer;
  return *this;
}
PacketBuilder& PacketBuilder::tcp_data_offset(uint8_t words) {
  tcp_knob("tcp_data_offset").data_offset = words;
  return *this;
}
PacketBuilder& PacketBuilder::tcp_checksum(uint16_t checksum) {
  tcp_knob("tcp_checksum").checksum = checksum;
  return *this;
}
PacketBuilder& PacketBuilder::corrupt_tcp_checksum() {
  tcp_knob("corrupt_tcp_checksum").corrupt_checksum = true;
  return *this;
}

PacketBuilder& PacketBuilder::ICMP(uint8_t type, uint8_t code, uint32_t rest_of_header) {
  add_transport(Transport::icmp, "ICMP");
  icmp_.type = type;
  icmp_.code = code;
  icmp_.rest_of_header = rest_of_header;
  return *this;
}

PacketBuilder& PacketBuilder::ICMPEchoRequest(uint16_t identifier, uint16_t sequence) {
  return ICMP(8, 0, uint32_t{identifier} << 16 | sequence);
}

PacketBuilder& PacketBuilder::ICMPEchoReply(uint16_t identifier, uint16_t sequence) {
  return ICMP(0, 0, uint32_t{identifier} << 16 | sequence);
}

PacketBuilder::IcmpFields& PacketBuilder::icmp_knob(const char* knob) {
  if (transport_ != Transport::icmp) misuse(std::string(knob) + " needs ICMP() first");
  return icmp_;
}

PacketBuilder& PacketBuilder::icmp_checksum(uint16_t checksum) {
  icmp_knob("icmp_checksum").checksum = checksum;
  return *this;
}
PacketBuilder& PacketBuilder::corrupt_icmp_checksum() {
  icmp_knob("corrupt_icmp_checksum").corrupt_checksum = true;
  return *this;
}

PacketBuilder& PacketBuilder::ARP(uint16_t operation, MacAddress sender_mac, Ipv4Address sender_ip,
                                  MacAddress target_mac, Ipv4Address target_ip) {
  if (network_ != Network::none) misuse("ARP after another network layer");
  network_ = Network::arp;
  arp_.operation = operation;
  arp_.sender_mac = sender_mac;
  arp_.sender_ip = sender_ip;
  arp_.target_mac = target_mac;
  arp_.target_ip = target_ip;
  return *this;
}

PacketBuilder& PacketBuilder::ARPRequest(MacAddress sender_mac, Ipv4Address sender_ip,
                                         Ipv4Address target_ip) {
  return ARP(1, sender_mac, sender_ip, MacAddress(), target_ip);
}

PacketBuilder& PacketBuilder::ARPReply(MacAddress sender_mac, Ipv4Address sender_ip,
                                       MacAddress target_mac, Ipv4Address target_ip) {
  return ARP(2, sender_mac, sender_ip, target_mac, target_ip);
}

PacketBuilder::ArpFields& PacketBuilder::arp_knob(const char* knob) {
  if (network_ != Network::arp) misuse(std::string(knob) + " needs ARP() first");
  return arp_;
}

PacketBuilder& PacketBuilder::arp_types(uint16_t hardware_type, uint16_t protocol_type) {
  ArpFields& arp = arp_knob("arp_types");
  arp.hardware_type = hardware_type;
  arp.protocol_type = protocol_type;
  return *this;
}

PacketBuilder& PacketBuilder::arp_lengths(uint8_t hardware_length, uint8_t protocol_length) {
  ArpFields& arp = arp_knob("arp_lengths");
  arp.hardware_length = hardware_length;
  arp.protocol_length = protocol_length;
  return *this;
}

PacketBuilder& PacketBuilder::payload(std::span<const uint8_t> bytes) {
  payload_.assign(bytes.begin(), bytes.end());
  return *this;
}

PacketBuilder& PacketBuilder::payload(std::string_view text) {
  payload_.assign(text.begin(), text.end());
  return *this;
}

PacketBuilder& PacketBuilder::pad_to(size_t frame_length) {
  pad_to_ = frame_length;
  return *this;
}

PacketBuilder& PacketBuilder::truncate(size_t frame_length) {
  truncate_to_ = frame_length;
  return *this;
}

// The transport header and payload, checksum included (it needs the IPv4 addresses only).
std::vector<uint8_t> PacketBuilder::build_transport() const {
  std::vector<uint8_t> out;
  switch (transport_) {
    case Transport::none:
      break;
    case Transport::tcp: {
      // RFC 9293 section 3.1.
      put16(out, tcp_.source_port);
      put16(out, tcp_.destination_port);
      put32(out, tcp_.sequence);
      put32(out, tcp_.acknowledgment);
      const size_t header_length = 20 + tcp_.options.size();
      put8(out, static_cast<uint8_t>(tcp_.data_offset.value_or(header_length / 4) << 4));
      put8(out, tcp_.flags.bits());
      put16(out, tcp_.window);
      put16(out, 0);  // checksum, below
      put16(out, tcp_.urgent_pointer);
      out.insert(out.end(), tcp_.options.begin(), tcp_.options.end());
      out.insert(out.end(), payload_.begin(), payload_.end());
      // The pseudo-header (RFC 9293 section 3.1) summed along with the segment.
      std::vector<uint8_t> summed;
      put_ip(summed, ipv4_.source);
      put_ip(summed, ipv4_.destination);
      put8(summed, 0);
      put8(summed, kProtocolTcp);
      put16(summed, static_cast<uint16_t>(out.size()));
      summed.insert(summed.end(), out.begin(), out.end());
      uint16_t checksum = reference_checksum(summed);
      if (tcp_.corrupt_checksum) checksum ^= 1;
      set16(out, 16, tcp_.checksum.value_or(checksum));
      break;
    }
    case Transport::icmp: {
      // RFC 792: the checksum covers the ICMP message, header and data.
      put8(out, icmp_.type);
      put8(out, icmp_.code);
      put16(out, 0);
      put32(out, icmp_.rest_of_header);
      out.insert(out.end(), payload_.begin(), payload_.end());
      uint16_t checksum = reference_checksum(out);
      if (icmp_.corrupt_checksum) checksum ^= 1;
      set16(out, 2, icmp_.checksum.value_or(checksum));
      break;
    }
  }
  return out;
}

std::vector<uint8_t> PacketBuilder::build_ipv4(const std::vector<uint8_t>& transport) const {
  std::optional<uint8_t> protocol = ipv4_.protocol;
  if (!protocol) {
    if (transport_ == Transport::tcp) protocol = kProtocolTcp;
    if (transport_ == Transport::icmp) protocol = kProtocolIcmp;
  }
  if (!protocol) misuse("IPv4 without a transport layer needs ip_protocol()");
  const std::vector<uint8_t>& data = transport_ == Transport::none ? payload_ : transport;

  // RFC 791 section 3.1.
  const size_t header_length = 20 + ipv4_.options.size();
  std::vector<uint8_t> out;
  put8(out, static_cast<uint8_t>(ipv4_.version.value_or(4) << 4 |
                                 (ipv4_.ihl.value_or(header_length / 4) & 0x0f)));
  put8(out, ipv4_.tos);
  put16(out, ipv4_.total_length.value_or(static_cast<uint16_t>(header_length + data.size())));
  put16(out, ipv4_.id);
  uint16_t flags_fragment = ipv4_.fragment_offset;
  if (ipv4_.reserved_flag) flags_fragment |= 0x8000;
  if (ipv4_.dont_fragment) flags_fragment |= 0x4000;
  if (ipv4_.more_fragments) flags_fragment |= 0x2000;
  put16(out, flags_fragment);
  put8(out, ipv4_.ttl);
  put8(out, *protocol);
  put16(out, 0);  // checksum, below
  put_ip(out, ipv4_.source);
  put_ip(out, ipv4_.destination);
  out.insert(out.end(), ipv4_.options.begin(), ipv4_.options.end());
  uint16_t checksum = reference_checksum(out);
  if (ipv4_.corrupt_checksum) checksum ^= 1;
  set16(out, 10, ipv4_.checksum.value_or(checksum));
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

std::vector<uint8_t> PacketBuilder::build() const {
  std::vector<uint8_t> frame;
  put_mac(frame, destination_);
  put_mac(frame, source_);
  std::optional<uint16_t> type = ether_type_;
  if (!type && network_ == Network::ipv4) type = kEtherTypeIpv4;
  if (!type && network_ == Network::arp) type = kEtherTypeArp;
  if (!type) misuse("Ethernet without a network layer needs ether_type()");
  put16(frame, *type);

  switch (network_) {
    case Network::none:
      frame.insert(frame.end(), payload_.begin(), payload_.end());
      break;
    case Network::ipv4: {
      const std::vector<uint8_t> packet = build_ipv4(build_transport());
      frame.insert(frame.end(), packet.begin(), packet.end());
      break;
    }
    case Network::arp:
      // RFC 826 packet format.
      put16(frame, arp_.hardware_type);
      put16(frame, arp_.protocol_type);
      put8(frame, arp_.hardware_length);
      put8(frame, arp_.protocol_length);
      put16(frame, arp_.operation);
      put_mac(frame, arp_.sender_mac);
      put_ip(frame, arp_.sender_ip);
      put_mac(frame, arp_.target_mac);
      put_ip(frame, arp_.target_ip);
      frame.insert(frame.end(), payload_.begin(), payload_.end());
      break;
  }

  if (pad_to_ && frame.size() < *pad_to_) frame.resize(*pad_to_, 0);
  if (truncate_to_) {
    if (*truncate_to_ > frame.size()) {
      misuse("truncate(" + std::to_string(*truncate_to_) + ") is longer than the " +
             std::to_string(frame.size()) + "-byte frame");
    }
    frame.resize(*truncate_to_);
  }
  return frame;
}

}  // namespace weir::test
