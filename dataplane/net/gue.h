// Generic UDP Encapsulation (draft-ietf-intarea-gue, variant 0) between Weir boxes: how a box
// hands a packet of a flow it holds no state for to the box that does (docs/scale-out.md). Built
// and stripped here, by Weir's own code, so no kernel module (fou, ipip) is needed on any box.
//
// A forwarded packet is the client's IPv4 packet, untouched, behind 36 bytes:
//   outer IPv4 (20 bytes, no options, DF set; from the sending box's cluster address to the
//     receiving box's),
//   UDP (8 bytes) to kPort; the source port carries the inner flow's hash, so that the receiving
//     NIC's RSS spreads forwarded flows over its queues (the outer addresses never change);
//     checksum 0 (RFC 768 allows it over IPv4; the inner TCP checksum covers the payload),
//   GUE (4 bytes): version 0, C 0 (data), Hlen 1 (one word of private data), Proto/ctype 4 (IPv4),
//     flags 0,
//   private data (4 bytes; the GUE draft leaves its meaning to the sender and receiver, as GLB
//     uses it): kPrivateType, the hop count (boxes that forwarded it: 1 or 2), two zero bytes.
// No GLB field layout is kept: only Weir boxes talk this, and the hop count is all they need.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "dataplane/net/ipv4.h"

namespace weir::net::gue {

// The UDP port forwarded packets are sent to: the one GitHub's GLB uses for GUE.
inline constexpr uint16_t kPort = 19523;
inline constexpr size_t kOuterIpv4Size = 20;
inline constexpr size_t kUdpSize = 8;
inline constexpr size_t kGueSize = 8;  // the 4-byte base header and one word of private data
// What encapsulation adds to a packet: the MSS Weir advertises in a cluster leaves room for it.
inline constexpr size_t kOverhead = kOuterIpv4Size + kUdpSize + kGueSize;
inline constexpr uint8_t kProtoIpv4 = 4;       // GUE Proto/ctype: the IP protocol number of IPv4
inline constexpr uint8_t kPrivateType = 0x57;  // 'W': a Weir hop header
// A packet is forwarded at most twice: to the primary, then to the secondary (second chance).
inline constexpr uint8_t kMaxHops = 2;

// A heartbeat (docs/scale-out.md, "Membership"): every box's dataplane sends one to every other
// box every cluster.heartbeat.interval_ms, from and to the cluster addresses, on the same link and
// UDP port as forwarded packets, so a box whose dataplane is dead falls silent even when its
// kernel lives. A GUE control message: the same outer headers, then the GUE header with C 1,
// Hlen 1, ctype kCtypeHeartbeat, flags 0, private data kPrivateType and three zero bytes, then
// kHeartbeatBodySize bytes: version 1, the sender's state (HeartbeatState), two zero bytes, a
// sequence number (big-endian, counting from 0 at the dataplane's start).
inline constexpr uint8_t kCtypeHeartbeat = 0x48;  // 'H'
inline constexpr size_t kHeartbeatBodySize = 8;
inline constexpr size_t kHeartbeatSize = kOverhead + kHeartbeatBodySize;
enum class HeartbeatState : uint8_t { live = 0, draining = 1 };

struct Header {
  Ipv4Address source;       // the sending box's cluster address
  Ipv4Address destination;  // the receiving box's
  uint16_t source_port = 0;
  uint8_t hops = 1;  // the forwards this packet has had, this one included
  uint8_t ttl = 64;
};

// The UDP source port for a flow hash: in the dynamic range (RFC 6335), so that no middlebox
// takes it for a service, with 14 bits of the hash.
inline uint16_t source_port_for(uint64_t flow_hash) {
  return static_cast<uint16_t>(0xc000u |
                               (static_cast<uint32_t>(flow_hash ^ (flow_hash >> 32)) & 0x3fffu));
}

// Writes the kOverhead bytes that go before an inner IPv4 packet of `inner_length` bytes
// (at most 65535 - kOverhead; the caller checks it against the link's MTU first).
void write(std::span<uint8_t, kOverhead> out, const Header& header, uint16_t inner_length);

// Writes a whole heartbeat packet, from the outer IPv4 header (`header.hops` is not used).
void write_heartbeat(std::span<uint8_t, kHeartbeatSize> out, const Header& header,
                     HeartbeatState state, uint32_t sequence);

// Why an encapsulated packet was refused. Each is counted as malformed by the dataplane; tests
// read the reason.
enum class Malformed : uint8_t {
  outer_ip_options,   // IHL > 5: nothing Weir sends carries options
  outer_ip_checksum,  // the outer IPv4 header checksum is wrong
  outer_ip_length,    // total length shorter than its headers, or longer than the frame
  outer_fragment,     // Weir sets DF and never fragments: a fragment is not from a peer
  udp_length,         // the UDP length disagrees with the IPv4 total length
  udp_checksum,       // a non-zero UDP checksum that is wrong
  gue_truncated,      // no room for the GUE header and its private data
  gue_version,        // not variant 0 (variant 1 is direct IP, never sent by Weir)
  gue_control,        // a control message (C bit) of a type other than kCtypeHeartbeat
  heartbeat,          // a heartbeat with a bad length, header, version, state or reserved bytes
  gue_header_length,  // Hlen other than one word, or flags set: not a Weir hop header
  inner_protocol,     // Proto/ctype other than IPv4
  private_type,       // private data that is not a Weir hop header
  hop_count,          // hops 0, or more than kMaxHops
  inner_ip,           // the inner packet is not an IPv4 header of exactly the rest's length
  inner_not_tcp,      // only TCP segments are forwarded between boxes
};
const char* name_of(Malformed reason);

struct Parsed {
  Ipv4Address source;       // the outer source: the sending box
  Ipv4Address destination;  // the outer destination
  uint16_t source_port = 0;
  uint8_t hops = 0;
  size_t inner_offset = 0;                      // from the outer IPv4 header: always kOverhead
  size_t inner_length = 0;                      // the inner IPv4 packet's total length
  HeartbeatState state = HeartbeatState::live;  // heartbeats only
  uint32_t sequence = 0;                        // heartbeats only
};

struct ParseResult {
  enum class Kind : uint8_t {
    not_gue,    // not UDP to kPort (or too short to tell): the ordinary IPv4 path's to judge
    malformed,  // addressed to the GUE port but refused: `why`
    gue,        // `packet` describes it
    heartbeat,  // a well-formed heartbeat: `packet`'s addresses, state and sequence
  };
  Kind kind = Kind::not_gue;
  Malformed why = Malformed::outer_ip_options;
  Parsed packet;
};

// Reads an IPv4 packet (from its header to the end of the frame; Ethernet padding allowed) as a
// GUE-encapsulated Weir hop. Checks everything the ordinary IPv4 path would have (it bypasses
// it), and the inner header's version and length; the inner packet's own checksums are checked
// when it is received as the inner packet.
ParseResult parse(std::span<const uint8_t> packet);

}  // namespace weir::net::gue
