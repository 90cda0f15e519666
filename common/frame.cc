#include "common/frame.h"

#include <stdexcept>
#include <string>

namespace weir::frame {

const char* to_string(Malformed reason) {
  switch (reason) {
    case Malformed::bad_magic:
      return "bad magic in bytes 0-1 (expected 0x57 0x46, \"WF\")";
    case Malformed::bad_version:
      return "unsupported version in byte 2 (expected 1)";
    case Malformed::reserved_flags:
      return "reserved flag bits set in byte 3 (only bit 0 PING and bit 1 PONG are defined)";
    case Malformed::ping_and_pong:
      return "PING and PONG both set in byte 3 (a frame is a request or an answer, not both)";
    case Malformed::length_over_limit:
      return "payload length in bytes 4-7 over the listener's max_frame or the 16 MiB hard limit";
  }
  return "unknown malformation";
}

bool parse_header(std::span<const uint8_t, kHeaderSize> bytes, uint32_t max_payload, Header& header,
                  Malformed& reason) {
  if (bytes[kMagicOffset] != kMagic0 || bytes[kMagicOffset + 1] != kMagic1) {
    reason = Malformed::bad_magic;
    return false;
  }
  if (bytes[kVersionOffset] != kVersion) {
    reason = Malformed::bad_version;
    return false;
  }
  const uint8_t flags = bytes[kFlagsOffset];
  if ((flags & ~(kFlagPing | kFlagPong)) != 0) {
    reason = Malformed::reserved_flags;
    return false;
  }
  if ((flags & kFlagPing) && (flags & kFlagPong)) {
    reason = Malformed::ping_and_pong;
    return false;
  }
  const uint32_t length = wire::load_be32(bytes.data() + kLengthOffset);
  if (length > max_payload || length > kHardMaxPayload) {
    reason = Malformed::length_over_limit;
    return false;
  }
  header.flags = flags;
  header.length = length;
  header.stream = wire::load_be32(bytes.data() + kStreamOffset);
  header.hop = wire::load_be32(bytes.data() + kHopOffset);
  return true;
}

void write_header(const Header& header, std::span<uint8_t, kHeaderSize> out) {
  out[kMagicOffset] = kMagic0;
  out[kMagicOffset + 1] = kMagic1;
  out[kVersionOffset] = kVersion;
  out[kFlagsOffset] = header.flags;
  wire::store_be32(out.data() + kLengthOffset, header.length);
  wire::store_be32(out.data() + kStreamOffset, header.stream);
  wire::store_be32(out.data() + kHopOffset, header.hop);
}

size_t encode_into(std::span<uint8_t> out, uint8_t flags, uint32_t stream, uint32_t hop,
                   std::span<const uint8_t> payload) {
  if ((flags & ~(kFlagPing | kFlagPong)) != 0 || flags == (kFlagPing | kFlagPong)) {
    throw std::invalid_argument("frame::encode: flags " + std::to_string(flags) +
                                " are not a valid combination (0, PING 0x01 or PONG 0x02)");
  }
  if (payload.size() > kHardMaxPayload) {
    throw std::length_error("frame::encode: payload of " + std::to_string(payload.size()) +
                            " bytes is over the 16 MiB hard limit");
  }
  const size_t size = encoded_size(payload.size());
  if (out.size() < size) {
    throw std::length_error("frame::encode: a frame of " + std::to_string(size) +
                            " bytes does not fit in " + std::to_string(out.size()));
  }
  write_header(Header{flags, static_cast<uint32_t>(payload.size()), stream, hop},
               out.first<kHeaderSize>());
  std::copy(payload.begin(), payload.end(), out.begin() + kHeaderSize);
  const size_t covered = kHeaderSize + payload.size();
  wire::store_be32(out.data() + covered, crc32c(out.data(), covered));
  return size;
}

std::vector<uint8_t> encode(uint8_t flags, uint32_t stream, uint32_t hop,
                            std::span<const uint8_t> payload) {
  // Checked before sizing the buffer, so an oversized payload throws rather than allocating.
  if (payload.size() > kHardMaxPayload) {
    throw std::length_error("frame::encode: payload of " + std::to_string(payload.size()) +
                            " bytes is over the 16 MiB hard limit");
  }
  std::vector<uint8_t> out(encoded_size(payload.size()));
  encode_into(out, flags, stream, hop, payload);
  return out;
}

std::array<uint8_t, kHeaderSize> stamped_header(std::span<const uint8_t, kHeaderSize> received,
                                                uint32_t node_id) {
  std::array<uint8_t, kHeaderSize> out;
  std::copy(received.begin(), received.end(), out.begin());
  wire::store_be32(out.data() + kHopOffset, node_id);
  return out;
}

uint32_t stamped_trailer(uint32_t received_crc, uint32_t payload_length, uint32_t old_hop,
                         uint32_t new_hop) {
  std::array<uint8_t, 4> old_bytes;
  std::array<uint8_t, 4> new_bytes;
  wire::store_be32(old_bytes.data(), old_hop);
  wire::store_be32(new_bytes.data(), new_hop);
  return crc32c_update(received_crc, kHeaderSize + uint64_t{payload_length}, kHopOffset,
                       old_bytes.data(), new_bytes.data(), old_bytes.size());
}

}  // namespace weir::frame
