// Fuzz target for the PROXY protocol v2 writer (dataplane/proxy/proxy_v2.h), checked against a
// parser written here from haproxy's proxy-protocol.txt, section 2.2, not from the writer.
// Input: bytes 0-11 are the header's fields (source address, destination address, source port,
// destination port, big-endian; short input is padded with zeros); the whole input is also a
// candidate header for the parser on its own.
// Invariants, abort() on violation:
//  - the writer's header parses as a complete PROXY command for TCP over IPv4 with exactly the
//    fields it was given, a 12-byte address block and no TLVs;
//  - the parser never reads past its input, and whatever it accepts fits in the input;
//  - a canonical header (PROXY, TCP over IPv4, no TLVs) that the parser accepts from raw bytes is
//    what the writer writes for the fields it read: the writer has one spelling per header.
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <span>
#include <vector>

#include "dataplane/proxy/proxy_v2.h"

namespace {

void check(bool condition) {
  if (!condition) std::abort();
}

// ---- the independent parser: proxy-protocol.txt 2.2, byte by byte ----------------------------

enum class Status { incomplete, invalid, ok };

struct Tlv {
  uint8_t type = 0;
  std::span<const uint8_t> value;
};

struct Parsed {
  Status status = Status::incomplete;
  uint8_t command = 0;     // 0 LOCAL, 1 PROXY
  uint8_t family = 0;      // 0 UNSPEC, 1 INET, 2 INET6, 3 UNIX
  uint8_t transport = 0;   // 0 UNSPEC, 1 STREAM, 2 DGRAM
  size_t header_size = 0;  // 16 + len
  uint32_t src = 0, dst = 0;
  uint16_t src_port = 0, dst_port = 0;
  std::vector<Tlv> tlvs;
};

uint16_t be16(const uint8_t* p) {
  return static_cast<uint16_t>(p[0] << 8 | p[1]);
}
uint32_t be32(const uint8_t* p) {
  return uint32_t{p[0]} << 24 | uint32_t{p[1]} << 16 | uint32_t{p[2]} << 8 | p[3];
}

Parsed parse(std::span<const uint8_t> in) {
  static constexpr uint8_t kSig[12] = {'\r', '\n', '\r', '\n', '\0', '\r',
                                       '\n', 'Q',  'U',  'I',  'T',  '\n'};
  Parsed p;
  // The signature is checked on what is there, so that a wrong prefix is refused early.
  for (size_t i = 0; i < sizeof kSig && i < in.size(); ++i) {
    if (in[i] != kSig[i]) {
      p.status = Status::invalid;
      return p;
    }
  }
  if (in.size() < 16) return p;  // incomplete
  const uint8_t version = in[12] >> 4;
  p.command = in[12] & 0x0F;
  if (version != 2 || p.command > 1) {
    p.status = Status::invalid;
    return p;
  }
  p.family = in[13] >> 4;
  p.transport = in[13] & 0x0F;
  if (p.family > 3 || p.transport > 2) {
    p.status = Status::invalid;
    return p;
  }
  const size_t len = be16(&in[14]);
  p.header_size = 16 + len;
  if (in.size() < p.header_size) return p;  // incomplete
  // The address block's size per family (2.2: 12 for INET, 36 for INET6, 216 for UNIX).
  static constexpr size_t kAddressBytes[4] = {0, 12, 36, 216};
  const size_t address_bytes = kAddressBytes[p.family];
  if (len < address_bytes) {
    p.status = Status::invalid;
    return p;
  }
  const uint8_t* a = &in[16];
  if (p.family == 1) {
    p.src = be32(a);
    p.dst = be32(a + 4);
    p.src_port = be16(a + 8);
    p.dst_port = be16(a + 10);
  }
  // TLVs (2.2.7) tile the rest: type, 16-bit length, value.
  size_t at = 16 + address_bytes;
  while (at < p.header_size) {
    if (p.header_size - at < 3) {
      p.status = Status::invalid;
      return p;
    }
    const size_t length = be16(&in[at + 1]);
    if (p.header_size - at - 3 < length) {
      p.status = Status::invalid;
      return p;
    }
    p.tlvs.push_back(Tlv{in[at], in.subspan(at + 3, length)});
    at += 3 + length;
  }
  p.status = Status::ok;
  return p;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // The writer against the parser.
  uint8_t fields[12] = {};
  std::memcpy(fields, data, size < sizeof fields ? size : sizeof fields);
  const weir::proxy::ProxyV2Ipv4 given{be32(fields), be32(fields + 4), be16(fields + 8),
                                       be16(fields + 10)};
  const auto header = weir::proxy::proxy_v2_header(given);
  const Parsed written = parse(header);
  check(written.status == Status::ok);
  check(written.command == 1 && written.family == 1 && written.transport == 1);
  check(written.header_size == header.size() && written.tlvs.empty());
  check(written.src == given.source_address && written.dst == given.destination_address);
  check(written.src_port == given.source_port && written.dst_port == given.destination_port);
  // Every prefix of a header is incomplete, never invalid.
  check(parse(std::span<const uint8_t>(header).first(size % header.size())).status ==
        Status::incomplete);

  // The parser on raw bytes, copied to a buffer of their exact size so that ASan sees any
  // overread.
  std::vector<uint8_t> raw(data, data + size);
  const Parsed read = parse(raw);
  if (read.status != Status::ok) return 0;
  check(read.header_size <= raw.size());
  for (const Tlv& t : read.tlvs)
    check(t.value.data() >= raw.data() + 16 &&
          t.value.data() + t.value.size() <= raw.data() + read.header_size);
  if (read.command == 1 && read.family == 1 && read.transport == 1 && read.tlvs.empty() &&
      read.header_size == weir::proxy::kProxyV2Ipv4HeaderSize) {
    const auto again = weir::proxy::proxy_v2_header(
        weir::proxy::ProxyV2Ipv4{read.src, read.dst, read.src_port, read.dst_port});
    check(std::memcmp(again.data(), raw.data(), again.size()) == 0);
  }
  return 0;
}
