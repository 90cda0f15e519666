// The Weir frame (docs/protocol.md), all integers big-endian:
//   0 magic "WF" | 2 version 1 | 3 flags (bit 0 PING, bit 1 PONG) | 4 length | 8 stream | 12 hop
//   16 payload (length bytes) | 16+length CRC-32C of bytes [0, 16+length)
// The decoder takes bytes in arbitrary chunks, as TCP delivers them, and reports per frame: the
// header, the payload as spans of the caller's chunk (never copied), and a verdict at the trailer.
// Everything but the 4-byte trailer can be forwarded before the verdict (cut-through).
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "common/crc32c.h"
#include "common/wire/byte_order.h"

namespace weir::frame {

inline constexpr size_t kHeaderSize = 16;
inline constexpr size_t kTrailerSize = 4;
inline constexpr uint8_t kMagic0 = 0x57;  // 'W'
inline constexpr uint8_t kMagic1 = 0x46;  // 'F'
inline constexpr uint8_t kVersion = 1;
inline constexpr uint8_t kFlagPing = 0x01;
inline constexpr uint8_t kFlagPong = 0x02;
inline constexpr uint32_t kHardMaxPayload = 16u << 20;  // 16 MiB, whatever max_frame says
inline constexpr size_t kHopOffset = 12;

struct Header {
  uint8_t flags = 0;
  uint32_t length = 0;
  uint32_t stream = 0;
  uint32_t hop = 0;
};

enum class Malformed : uint8_t {
  bad_magic,
  bad_version,
  reserved_flags,     // a flag bit other than PING and PONG is set
  ping_and_pong,      // a frame is a request or an answer, not both
  length_over_limit,  // length above the listener's max_frame (or the 16 MiB hard limit)
};

const char* to_string(Malformed reason);

struct Verdict {
  bool ok = false;
  uint32_t received_crc = 0;  // the trailer as sent
  uint32_t computed_crc = 0;  // the CRC of the bytes as received
};

// Checks a complete 16-byte header. Returns the reason when malformed.
bool parse_header(const uint8_t* bytes, uint32_t max_payload, Header& header, Malformed& reason);

// Writes a header for `h` into 16 bytes.
void write_header(const Header& h, uint8_t* out);

// Encodes a whole frame (for tools and tests).
std::vector<uint8_t> encode(uint8_t flags, uint32_t stream, uint32_t hop,
                            std::span<const uint8_t> payload);

// Hop stamping: the trailer a frame must carry after its hop field changes from `old_hop` to
// `new_hop`, derived from the trailer it arrived with by the incremental CRC update. Never a
// recomputation: a frame corrupted before the stamp stays corrupt after it.
uint32_t stamped_trailer(uint32_t received_crc, uint32_t payload_length, uint32_t old_hop,
                         uint32_t new_hop);

// Streaming decoder. `Visitor` provides:
//   void on_header(const Header&, std::span<const uint8_t, kHeaderSize> raw);
//   void on_payload(std::span<const uint8_t> bytes);      // a piece of the caller's chunk
//   void on_verdict(const Header&, const Verdict&);       // the trailer has fully arrived
//   void on_malformed(Malformed reason);                  // the stream is unrecoverable
// The decoder holds at most the 16 header bytes and 4 trailer bytes of the frame in progress; no
// allocation. After a malformed header it consumes nothing more.
class Decoder {
 public:
  explicit Decoder(uint32_t max_payload = 1u << 20) : max_payload_(max_payload) {}

  template <class Visitor>
  size_t feed(std::span<const uint8_t> chunk, Visitor& visitor);

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
  Crc32cStream crc_;
};

template <class Visitor>
size_t Decoder::feed(std::span<const uint8_t> chunk, Visitor& visitor) {
  size_t pos = 0;
  while (pos < chunk.size() && state_ != State::failed) {
    switch (state_) {
      case State::header: {
        const size_t take = std::min<size_t>(kHeaderSize - filled_, chunk.size() - pos);
        std::copy_n(chunk.data() + pos, take, header_bytes_.data() + filled_);
        filled_ += static_cast<uint32_t>(take);
        pos += take;
        if (filled_ < kHeaderSize) break;
        Malformed reason{};
        if (!parse_header(header_bytes_.data(), max_payload_, header_, reason)) {
          state_ = State::failed;
          visitor.on_malformed(reason);
          return pos;
        }
        crc_.reset();
        crc_.update(header_bytes_.data(), kHeaderSize);
        visitor.on_header(header_, std::span<const uint8_t, kHeaderSize>(header_bytes_));
        filled_ = 0;
        remaining_ = header_.length;
        state_ = remaining_ == 0 ? State::trailer : State::payload;
        break;
      }
      case State::payload: {
        const size_t take = std::min<size_t>(remaining_, chunk.size() - pos);
        const std::span<const uint8_t> piece = chunk.subspan(pos, take);
        crc_.update(piece.data(), piece.size());
        visitor.on_payload(piece);
        remaining_ -= static_cast<uint32_t>(take);
        pos += take;
        if (remaining_ == 0) state_ = State::trailer;
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
        break;
    }
  }
  return pos;
}

}  // namespace weir::frame
