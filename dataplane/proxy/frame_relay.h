// One direction of a `framed` listener's connection pair: every Weir frame (docs/protocol.md) is
// verified as its bytes pass, cut-through. Everything but a frame's 4-byte trailer may be forwarded
// before the verdict; trailer bytes are held back until the trailer is complete and the CRC has
// been checked. No packets here: the proxy hands in each received chunk (an mbuf's bytes) and is
// told how much of it may go now, which held bytes go first, and whether to reset.
//
// Hop stamping rewrites the 4 hop bytes in place as they pass and replaces the trailer with
// frame::stamped_trailer() of the one received: an incremental update over the hop bytes only, so a
// frame corrupted before Weir stays corrupt after the stamp (the payload is never re-checksummed).
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

#include "common/frame.h"
#include "common/wire/byte_order.h"

namespace weir::proxy {

struct FrameRelaySettings {
  uint32_t max_frame = frame::kHardMaxPayload;
  bool reset_on_corrupt = true;  // framed.on_corrupt: reset (else count)
  bool stamp_hop = false;
  uint32_t node_id = 0;
};

struct FrameCounts {
  uint64_t frames_verified = 0;  // trailers that matched
  uint64_t bytes_verified = 0;   // whole frames (header, payload, trailer) that matched
  uint64_t frames_corrupt = 0;
  uint64_t frames_malformed = 0;
};

// One frame that failed (FrameRelay::process reports each as it finds it): what the frame
// event log (dataplane/proxy/frame_events.h) records.
struct FrameFault {
  bool malformed = false;     // else corrupt: the trailer did not match
  frame::Malformed reason{};  // malformed only
  uint32_t stream = 0;        // as the header announced (malformed: its raw bytes)
  uint32_t length = 0;        // payload bytes the header announced
  uint32_t expected_crc = 0;  // corrupt only: the CRC-32C of the bytes as they arrived
  uint32_t received_crc = 0;  // corrupt only: the trailer
  bool forwarded = false;     // count mode: the corrupt frame went on
};

class FrameRelay {
 public:
  enum class Outcome : uint8_t { forward, reset_corrupt, reset_malformed };
  struct Result {
    Outcome outcome = Outcome::forward;
    size_t forward_bytes = 0;  // the chunk's prefix that may go now; the rest is a held trailer
    size_t released = 0;       // held bytes (released()) that go before that prefix
  };

  explicit FrameRelay(const FrameRelaySettings& settings)
      : settings_(settings), decoder_(settings.max_frame) {}

  // Inspects `chunk` (the next bytes of the stream), rewriting hop and trailer bytes in place when
  // stamping. After reset_* nothing more may be forwarded in this direction.
  Result process(std::span<uint8_t> chunk) {
    return process(chunk, [](const FrameFault&) {});
  }
  // The same, calling on_fault(const FrameFault&) for each corrupt or malformed frame.
  template <class OnFault>
  Result process(std::span<uint8_t> chunk, OnFault&& on_fault) {
    Result result;
    size_t pos = 0;
    size_t trailer_start = chunk.size();  // where this chunk's bytes of an incomplete trailer begin
    while (pos < chunk.size()) {
      const size_t left = chunk.size() - pos;
      switch (phase_) {
        case Phase::header: {
          const size_t take = std::min<size_t>(frame::kHeaderSize - filled_, left);
          // The raw header as received (a malformed one is never parsed: the event shows it).
          std::copy_n(chunk.begin() + pos, take, raw_header_.begin() + filled_);
          feed(chunk.subspan(pos, take));
          if (settings_.stamp_hop) stamp_header_bytes(chunk.subspan(pos, take), filled_);
          filled_ += static_cast<uint32_t>(take);
          pos += take;
          if (malformed_) {
            ++counts_.frames_malformed;
            on_fault(FrameFault{
                true, malformed_reason_, wire::load_be32(raw_header_.data() + frame::kStreamOffset),
                wire::load_be32(raw_header_.data() + frame::kLengthOffset), 0, 0, false});
            result.outcome = Outcome::reset_malformed;
            return result;
          }
          if (filled_ == frame::kHeaderSize) {
            filled_ = 0;
            phase_ = header_.length > 0 ? Phase::payload : Phase::trailer;
            remaining_ = header_.length;
          }
          break;
        }
        case Phase::payload: {
          const size_t take = std::min<size_t>(remaining_, left);
          feed(chunk.subspan(pos, take));
          remaining_ -= static_cast<uint32_t>(take);
          pos += take;
          if (remaining_ == 0) phase_ = Phase::trailer;
          break;
        }
        case Phase::trailer: {
          const size_t take = std::min<size_t>(frame::kTrailerSize - filled_, left);
          const std::span<uint8_t> slice = chunk.subspan(pos, take);
          feed(slice);
          if (!verdict_) {
            // Incomplete at the chunk's end: these bytes wait with any held before them.
            std::copy(slice.begin(), slice.end(), held_.begin() + held_count_);
            held_count_ += take;
            filled_ += static_cast<uint32_t>(take);
            trailer_start = pos;
            pos += take;
            break;
          }
          // The trailer is complete: its first bytes may have been held from earlier chunks.
          const Verdict v = *verdict_;
          verdict_.reset();
          if (v.ok) {
            ++counts_.frames_verified;
            counts_.bytes_verified += frame::encoded_size(header_.length);
          } else {
            ++counts_.frames_corrupt;
            on_fault(FrameFault{false,
                                {},
                                header_.stream,
                                header_.length,
                                v.computed_crc,
                                v.received_crc,
                                !settings_.reset_on_corrupt});
            if (settings_.reset_on_corrupt) {
              result.outcome = Outcome::reset_corrupt;
              return result;
            }
          }
          if (settings_.stamp_hop) {
            std::array<uint8_t, frame::kTrailerSize> stamped{};
            wire::store_be32(stamped.data(),
                             frame::stamped_trailer(v.received_crc, header_.length, header_.hop,
                                                    settings_.node_id));
            std::copy_n(stamped.begin(), held_count_, held_.begin());
            std::copy_n(stamped.begin() + held_count_, take, slice.begin());
          }
          // Held bytes exist only before the first trailer a chunk completes: a later trailer in
          // the same chunk must not overwrite what that one released.
          if (held_count_ > 0) {
            result.released = held_count_;
            released_ = held_;
          }
          held_count_ = 0;
          filled_ = 0;
          pos += take;
          phase_ = Phase::header;
          break;
        }
      }
    }
    result.forward_bytes = trailer_start;
    return result;
  }

  // The held bytes a Result::released refers to (valid until the next process()).
  std::span<const uint8_t> released(size_t count) const {
    return std::span<const uint8_t>(released_.data(), count);
  }
  const FrameCounts& counts() const { return counts_; }
  bool between_frames() const { return phase_ == Phase::header && filled_ == 0; }

 private:
  enum class Phase : uint8_t { header, payload, trailer };
  using Verdict = frame::Verdict;

  struct Events {
    FrameRelay& relay;
    void on_header(const frame::Header& h, std::span<const uint8_t, frame::kHeaderSize>) {
      relay.header_ = h;
    }
    void on_payload(std::span<const uint8_t>) {}
    void on_verdict(const frame::Header&, const Verdict& v) { relay.verdict_ = v; }
    void on_malformed(frame::Malformed reason) {
      relay.malformed_ = true;
      relay.malformed_reason_ = reason;
    }
  };

  void feed(std::span<const uint8_t> bytes) {
    Events events{*this};
    decoder_.feed(bytes, events);
  }

  // The header bytes at frame offsets [first, first + bytes.size()) that fall on the hop field
  // become the node id's, big-endian.
  void stamp_header_bytes(std::span<uint8_t> bytes, uint32_t first) const {
    for (size_t i = 0; i < bytes.size(); ++i) {
      const size_t offset = first + i;
      if (offset < frame::kHopOffset || offset >= frame::kHopOffset + 4) continue;
      const unsigned shift = 8 * (3 - static_cast<unsigned>(offset - frame::kHopOffset));
      bytes[i] = static_cast<uint8_t>(settings_.node_id >> shift);
    }
  }

  FrameRelaySettings settings_;
  frame::Decoder decoder_;
  Phase phase_ = Phase::header;
  uint32_t filled_ = 0;     // header or trailer bytes seen of the frame in progress
  uint32_t remaining_ = 0;  // payload bytes still to come
  frame::Header header_{};
  std::optional<Verdict> verdict_;
  bool malformed_ = false;
  frame::Malformed malformed_reason_{};
  std::array<uint8_t, frame::kHeaderSize> raw_header_{};
  std::array<uint8_t, frame::kTrailerSize> held_{};
  std::array<uint8_t, frame::kTrailerSize> released_{};
  size_t held_count_ = 0;
  FrameCounts counts_;
};

}  // namespace weir::proxy
