#include "dataplane/net/gue.h"

#include <cstring>

#include "common/wire/byte_order.h"
#include "dataplane/net/checksum.h"
#include "dataplane/net/protocol_numbers.h"

namespace weir::net::gue {
namespace {

constexpr size_t kUdpOffset = kOuterIpv4Size;
constexpr size_t kGueOffset = kOuterIpv4Size + kUdpSize;
// Version 0 (bits 0-1), C 0 (bit 2), Hlen 1 (bits 3-7): the first byte of every Weir GUE header.
constexpr uint8_t kFirstByte = 0x01;

ParseResult refuse(Malformed why) {
  return {ParseResult::Kind::malformed, why, {}};
}

}  // namespace

const char* name_of(Malformed reason) {
  switch (reason) {
    case Malformed::outer_ip_options:
      return "outer_ip_options";
    case Malformed::outer_ip_checksum:
      return "outer_ip_checksum";
    case Malformed::outer_ip_length:
      return "outer_ip_length";
    case Malformed::outer_fragment:
      return "outer_fragment";
    case Malformed::udp_length:
      return "udp_length";
    case Malformed::udp_checksum:
      return "udp_checksum";
    case Malformed::gue_truncated:
      return "gue_truncated";
    case Malformed::gue_version:
      return "gue_version";
    case Malformed::gue_control:
      return "gue_control";
    case Malformed::heartbeat:
      return "heartbeat";
    case Malformed::gue_header_length:
      return "gue_header_length";
    case Malformed::inner_protocol:
      return "inner_protocol";
    case Malformed::private_type:
      return "private_type";
    case Malformed::hop_count:
      return "hop_count";
    case Malformed::inner_ip:
      return "inner_ip";
    case Malformed::inner_not_tcp:
      return "inner_not_tcp";
  }
  return "?";
}

void write(std::span<uint8_t, kOverhead> out, const Header& header, uint16_t inner_length) {
  std::memset(out.data(), 0, out.size());
  auto ip = Ipv4View::parse(out.first(kOuterIpv4Size));
  ip->set_version(4);
  ip->set_ihl(5);
  ip->set_total_length(static_cast<uint16_t>(kOverhead + inner_length));
  ip->set_dont_fragment(true);
  ip->set_ttl(header.ttl);
  ip->set_protocol(kIpProtocolUdp);
  ip->set_source(header.source);
  ip->set_destination(header.destination);
  ip->update_checksum();
  uint8_t* udp = out.data() + kUdpOffset;
  wire::store_be16(udp, header.source_port);
  wire::store_be16(udp + 2, kPort);
  wire::store_be16(udp + 4, static_cast<uint16_t>(kUdpSize + kGueSize + inner_length));
  // udp + 6: checksum 0, none (RFC 768; RFC 8086 allows it for tunnels over IPv4).
  uint8_t* gue = out.data() + kGueOffset;
  gue[0] = kFirstByte;
  gue[1] = kProtoIpv4;
  // gue[2..3]: flags 0.
  gue[4] = kPrivateType;
  gue[5] = header.hops;
  // gue[6..7]: reserved, 0.
}

void write_heartbeat(std::span<uint8_t, kHeartbeatSize> out, const Header& header,
                     HeartbeatState state, uint32_t sequence) {
  write(out.first<kOverhead>(), header, static_cast<uint16_t>(kHeartbeatBodySize));
  uint8_t* gue = out.data() + kGueOffset;
  gue[0] = kFirstByte | 0x20;  // C: a control message
  gue[1] = kCtypeHeartbeat;
  gue[5] = 0;  // no hops: a heartbeat is never forwarded
  uint8_t* body = out.data() + kOverhead;
  std::memset(body, 0, kHeartbeatBodySize);
  body[0] = 1;
  body[1] = static_cast<uint8_t>(state);
  wire::store_be32(body + 4, sequence);
}

ParseResult parse(std::span<const uint8_t> packet) {
  // First only what says whether this is for the GUE port at all.
  if (packet.size() < kOuterIpv4Size) return {};
  const auto ip = ConstIpv4View::parse(packet);
  if (ip->version() != 4 || ip->ihl() < 5) return {};
  const size_t header_length = ip->header_length();
  if (ip->protocol() != kIpProtocolUdp || packet.size() < header_length + kUdpSize) return {};
  const uint8_t* udp = packet.data() + header_length;
  if (wire::load_be16(udp + 2) != kPort) return {};

  if (header_length != kOuterIpv4Size) return refuse(Malformed::outer_ip_options);
  if (!ip->checksum_valid()) return refuse(Malformed::outer_ip_checksum);
  const size_t total = ip->total_length();
  if (total < kOuterIpv4Size + kUdpSize || total > packet.size())
    return refuse(Malformed::outer_ip_length);
  if (ip->is_fragment()) return refuse(Malformed::outer_fragment);
  const std::span<const uint8_t> datagram = packet.subspan(kUdpOffset, total - kUdpOffset);
  if (wire::load_be16(udp + 4) != datagram.size()) return refuse(Malformed::udp_length);
  if (wire::load_be16(udp + 6) != 0 &&
      !ipv4_transport_checksum_valid(ip->source(), ip->destination(), kIpProtocolUdp, datagram))
    return refuse(Malformed::udp_checksum);

  if (datagram.size() < kUdpSize + kGueSize) return refuse(Malformed::gue_truncated);
  const uint8_t* gue = datagram.data() + kUdpSize;
  if ((gue[0] >> 6) != 0) return refuse(Malformed::gue_version);
  if ((gue[0] & 0x20) != 0) {
    if (gue[1] != kCtypeHeartbeat) return refuse(Malformed::gue_control);
    const uint8_t* body = gue + kGueSize;
    if ((gue[0] & 0x1f) != 1 || wire::load_be16(gue + 2) != 0 || gue[4] != kPrivateType ||
        gue[5] != 0 || gue[6] != 0 || gue[7] != 0 ||
        datagram.size() != kUdpSize + kGueSize + kHeartbeatBodySize || body[0] != 1 ||
        body[1] > static_cast<uint8_t>(HeartbeatState::draining) || body[2] != 0 || body[3] != 0)
      return refuse(Malformed::heartbeat);
    ParseResult result;
    result.kind = ParseResult::Kind::heartbeat;
    result.packet.source = ip->source();
    result.packet.destination = ip->destination();
    result.packet.source_port = wire::load_be16(udp);
    result.packet.state = static_cast<HeartbeatState>(body[1]);
    result.packet.sequence = wire::load_be32(body + 4);
    return result;
  }
  if ((gue[0] & 0x1f) != 1 || wire::load_be16(gue + 2) != 0)
    return refuse(Malformed::gue_header_length);
  if (gue[1] != kProtoIpv4) return refuse(Malformed::inner_protocol);
  if (gue[4] != kPrivateType) return refuse(Malformed::private_type);
  const uint8_t hops = gue[5];
  if (hops == 0 || hops > kMaxHops) return refuse(Malformed::hop_count);

  const std::span<const uint8_t> inner = packet.subspan(kOverhead, total - kOverhead);
  const auto inner_ip = ConstIpv4View::parse(inner);
  if (!inner_ip || inner_ip->version() != 4 || inner_ip->total_length() != inner.size())
    return refuse(Malformed::inner_ip);
  if (inner_ip->protocol() != kIpProtocolTcp) return refuse(Malformed::inner_not_tcp);

  ParseResult result;
  result.kind = ParseResult::Kind::gue;
  result.packet =
      Parsed{ip->source(), ip->destination(), wire::load_be16(udp), hops, kOverhead, inner.size()};
  return result;
}

}  // namespace weir::net::gue
