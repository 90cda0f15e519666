#include "common/frame.h"

namespace weir::frame {

const char* to_string(Malformed reason) {
  switch (reason) {
    case Malformed::bad_magic:
      return "bad magic (expected 0x57 0x46, \"WF\")";
    case Malformed::bad_version:
      return "unsupported version (expected 1)";
    case Malformed::reserved_flags:
      return "reserved flag bits set (only bit 0 PING and bit 1 PONG are defined)";
    case Malformed::ping_and_pong:
      return "PING and PONG both set";
    case Malformed::length_over_limit:
      return "payload length over the listener's max_frame";
  }
  return "unknown";
}

bool parse_header(const uint8_t* bytes, uint32_t max_payload, Header& header, Malformed& reason) {
  if (bytes[0] != kMagic0 || bytes[1] != kMagic1) {
    reason = Malformed::bad_magic;
    return false;
  }
  if (bytes[2] != kVersion) {
    reason = Malformed::bad_version;
    return false;
  }
  const uint8_t flags = bytes[3];
  if ((flags & ~(kFlagPing | kFlagPong)) != 0) {
    reason = Malformed::reserved_flags;
    return false;
  }
  if ((flags & kFlagPing) && (flags & kFlagPong)) {
    reason = Malformed::ping_and_pong;
    return false;
  }
  const uint32_t length = wire::load_be32(bytes + 4);
  if (length > max_payload || length > kHardMaxPayload) {
    reason = Malformed::length_over_limit;
    return false;
  }
  header.flags = flags;
  header.length = length;
  header.stream = wire::load_be32(bytes + 8);
  header.hop = wire::load_be32(bytes + kHopOffset);
  return true;
}

void write_header(const Header& h, uint8_t* out) {
  out[0] = kMagic0;
  out[1] = kMagic1;
  out[2] = kVersion;
  out[3] = h.flags;
  wire::store_be32(out + 4, h.length);
  wire::store_be32(out + 8, h.stream);
  wire::store_be32(out + kHopOffset, h.hop);
}

std::vector<uint8_t> encode(uint8_t flags, uint32_t stream, uint32_t hop,
                            std::span<const uint8_t> payload) {
  std::vector<uint8_t> out(kHeaderSize + payload.size() + kTrailerSize);
  write_header(Header{flags, static_cast<uint32_t>(payload.size()), stream, hop}, out.data());
  std::copy(payload.begin(), payload.end(), out.begin() + kHeaderSize);
  const uint32_t crc = crc32c(out.data(), kHeaderSize + payload.size());
  wire::store_be32(out.data() + kHeaderSize + payload.size(), crc);
  return out;
}

uint32_t stamped_trailer(uint32_t received_crc, uint32_t payload_length, uint32_t old_hop,
                         uint32_t new_hop) {
  uint8_t old_bytes[4];
  uint8_t new_bytes[4];
  wire::store_be32(old_bytes, old_hop);
  wire::store_be32(new_bytes, new_hop);
  return crc32c_update(received_crc, kHeaderSize + uint64_t{payload_length}, kHopOffset, old_bytes,
                       new_bytes, 4);
}

}  // namespace weir::frame
