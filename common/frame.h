// The Weir frame (docs/protocol.md), all integers big-endian:
//   0 magic "WF" | 2 version 1 | 3 flags (bit 0 PING, bit 1 PONG) | 4 length | 8 stream | 12 hop
//   16 payload (length bytes) | 16+length CRC-32C of bytes [0, 16+length)
// The decoder takes bytes in arbitrary chunks, as TCP delivers them, and reports per frame: the
// header, the payload as spans of the caller's chunk (never copied), and a verdict at the trailer.
// Everything but the 4-byte trailer can be forwarded before the verdict (cut-through).
#pragma once

#include <algorithm>
#include <array>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "common/crc32c.h"
#include "common/wire/byte_order.h"

namespace weir::frame {

inline constexpr size_t kHeaderSize = 16;
inline constexpr size_t kTrailerSize = 4;
inline constexpr size_t kMagicOffset = 0;
inline constexpr size_t kVersionOffset = 2;
inline constexpr size_t kFlagsOffset = 3;
inline constexpr size_t kLengthOffset = 4;
inline constexpr size_t kStreamOffset = 8;
inline constexpr size_t kHopOffset = 12;
inline constexpr uint8_t kMagic0 = 0x57;  // 'W'
inline constexpr uint8_t kMagic1 = 0x46;  // 'F'
inline constexpr uint8_t kVersion = 1;
inline constexpr uint8_t kFlagPing = 0x01;
inline constexpr uint8_t kFlagPong = 0x02;
inline constexpr uint32_t kHardMaxPayload = 16u << 20;  // 16 MiB, whatever max_frame says

struct Header {
  uint8_t flags = 0;
  uint32_t length = 0;  // payload bytes
  uint32_t stream = 0;
  uint32_t hop = 0;

  bool ping() const { return flags & kFlagPing; }
  bool pong() const { return flags & kFlagPong; }
};

enum class Malformed : uint8_t {
  bad_magic,
  bad_version,
  reserved_flags,     // a flag bit other than PING and PONG is set
  ping_and_pong,      // a frame is a request or an answer, not both
  length_over_limit,  // length above the listener's max_frame or the 16 MiB hard limit
};

// A sentence naming the field and the rule it broke, for logs.
const char* to_string(Malformed reason);

struct Verdict {
  bool ok = false;            // received_crc == computed_crc
  uint32_t received_crc = 0;  // the trailer as it arrived
  uint32_t computed_crc =
      0;  // the CRC of the header and payload as they arrived (the expected one)
};

// Checks a complete header against the format and a payload limit (the listener's max_frame; the
// 16 MiB hard limit applies as well). On success fills `header`; otherwise sets `reason`.
bool parse_header(std::span<const uint8_t, kHeaderSize> bytes, uint32_t max_payload, Header& header,
                  Malformed& reason);

// Writes the 16 header bytes for `header` as given, unchecked, so tests and tools can also build
// malformed headers on purpose.
void write_header(const Header& header, std::span<uint8_t, kHeaderSize> out);

// Bytes of a frame carrying `payload_length` payload bytes.
constexpr size_t encoded_size(size_t payload_length) {
  return kHeaderSize + payload_length + kTrailerSize;
}

// Encodes a well-formed frame into the start of `out` and returns its size. Throws
// std::invalid_argument if `flags` has reserved bits or both PING and PONG, std::length_error if
// the payload is over the 16 MiB hard limit or `out` is too small.
size_t encode_into(std::span<uint8_t> out, uint8_t flags, uint32_t stream, uint32_t hop,
                   std::span<const uint8_t> payload);

// The same into a new buffer (for tools and tests).
std::vector<uint8_t> encode(uint8_t flags, uint32_t stream, uint32_t hop,
                            std::span<const uint8_t> payload);

// Hop stamping, for a proxy forwarding with the decoder below: the header to send instead of the
// received one (hop := node_id, every other byte as received)...
std::array<uint8_t, kHeaderSize> stamped_header(std::span<const uint8_t, kHeaderSize> received,
                                                uint32_t node_id);
// ...and the trailer the stamped frame must carry, derived from the trailer it arrived with by the
// incremental CRC update over the 4 hop bytes. Never a recomputation over the payload: a frame
// corrupted before the stamp stays corrupt after it.
uint32_t stamped_trailer(uint32_t received_crc, uint32_t payload_length, uint32_t old_hop,
                         uint32_t new_hop);

// What the decoder reports, in stream order. Calls arrive synchronously from inside feed().
template <class V>
concept Visitor = requires(V& v, const Header& h, std::span<const uint8_t, kHeaderSize> raw,
                           std::span<const uint8_t> bytes, const Verdict& verdict,
                           Malformed reason) {
  // A well-formed header. `raw` is the decoder's copy (a header may straddle chunks), valid
  // during the call: forward it, or the stamped_header() of it.
  v.on_header(h, raw);
  // Payload bytes of the current frame: a subspan of the chunk passed to feed(), never a copy.
  // Forwardable at once (cut-through); a frame's payload may come in any number of pieces.
  v.on_payload(bytes);
  // All 4 trailer bytes have arrived (they may straddle chunks; the decoder gathers them and
  // reports no partial trailer). Forward the trailer only now, and only if the verdict allows.
  v.on_verdict(h, verdict);
  // The header is malformed; the stream cannot be resynchronised and the decoder stops.
  v.on_malformed(reason);
};

// Streaming frame decoder. Holds at most one header and one trailer of the frame in progress; no
// allocation. One instance per direction of a connection.
class Decoder {
 public:
  // max_payload: the listener's max_frame. Values above kHardMaxPayload are held to it.
  explicit Decoder(uint32_t max_payload) : max_payload_(max_payload) {}

  // Consumes `chunk`, calling the visitor for each event in it. Returns the bytes consumed: all
  // of them, except after a malformed header, where consumption stops at the end of that header
  // (and every later call returns 0).
  template <Visitor V>
  size_t feed(std::span<const uint8_t> chunk, V& visitor);

  bool failed() const { return state_ == State::failed; }
  // True between frames: no partial frame is pending.
  bool at_frame_boundary() const { return state_ == State::header && filled_ == 0; }

 private:
  enum class State : uint8_t { header, payload, trailer, failed };

  uint32_t max_payload_;
  State state_ = State::header;
  uint32_t filled_ = 0;     // header or trailer bytes gathered so far
  uint32_t remaining_ = 0;  // payload bytes still to come
  Header header_{};
  std::array<uint8_t, kHeaderSize> header_bytes_{};
  std::array<uint8_t, kTrailerSize> trailer_bytes_{};
  Crc32cStream crc_;  // over the header and payload bytes as received
};

template <Visitor V>
size_t Decoder::feed(std::span<const uint8_t> chunk, V& visitor) {
  size_t pos = 0;
  while (pos < chunk.size()) {
    switch (state_) {
      case State::header: {
        const size_t take = std::min<size_t>(kHeaderSize - filled_, chunk.size() - pos);
        std::copy_n(chunk.data() + pos, take, header_bytes_.data() + filled_);
        filled_ += static_cast<uint32_t>(take);
        pos += take;
        if (filled_ < kHeaderSize) break;
        Malformed reason{};
        if (!parse_header(header_bytes_, max_payload_, header_, reason)) {
          state_ = State::failed;
          visitor.on_malformed(reason);
          return pos;
        }
        crc_.reset();
        crc_.update(header_bytes_.data(), kHeaderSize);
        filled_ = 0;
        remaining_ = header_.length;
        state_ = remaining_ == 0 ? State::trailer : State::payload;
        visitor.on_header(header_, std::span<const uint8_t, kHeaderSize>(header_bytes_));
        break;
      }
      case State::payload: {
        const size_t take = std::min<size_t>(remaining_, chunk.size() - pos);
        const std::span<const uint8_t> piece = chunk.subspan(pos, take);
        crc_.update(piece.data(), piece.size());
        remaining_ -= static_cast<uint32_t>(take);
        pos += take;
        if (remaining_ == 0) state_ = State::trailer;
        visitor.on_payload(piece);
        break;
      }
      case State::trailer: {
        const size_t take = std::min<size_t>(kTrailerSize - filled_, chunk.size() - pos);
        std::copy_n(chunk.data() + pos, take, trailer_bytes_.data() + filled_);
        filled_ += static_cast<uint32_t>(take);
        pos += take;
        if (filled_ < kTrailerSize) break;
        Verdict verdict;
        verdict.received_crc = wire::load_be32(trailer_bytes_.data());
        verdict.computed_crc = crc_.value();
        verdict.ok = verdict.received_crc == verdict.computed_crc;
        filled_ = 0;
        state_ = State::header;
        visitor.on_verdict(header_, verdict);
        break;
      }
      case State::failed:
        return pos;
    }
  }
  return pos;
}

}  // namespace weir::frame
