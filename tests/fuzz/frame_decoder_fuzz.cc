// Fuzz target for the frame decoder. Input: one control byte, then the byte stream.
//   control bits 0-2: the decoder's max_payload, from kLimits;
//   control bits 3-7: s, the chunking: a chunk starting at stream offset p is
//                     1 + (stream[p] ^ (p * s)) % (4s + 1) bytes long (s = 0: byte at a time).
// Invariants, abort() on violation:
//  - chunked decoding reports exactly what one-shot decoding reports (a byte-level transcript);
//  - payload spans lie inside the chunk they were reported from;
//  - one-shot events tile the stream: each header, payload and trailer is the stream's own bytes at
//    the next offset, and the decoder consumes all of it, or up to the end of a malformed header;
//  - a verdict is ok exactly when a bitwise CRC-32C over the frame's bytes equals its trailer;
//  - a header is reported malformed exactly when the format's rules say so, with the right reason;
//  - hop stamping preserves the verdict: the stamped frame's CRC mismatch equals the original one.
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <vector>

#include "common/frame.h"
#include "tests/support/crc32c_reference.h"

namespace {

using namespace weir::frame;

constexpr std::array<uint32_t, 8> kLimits = {0, 1, 16, 64, 255, 1024, 4096, kHardMaxPayload};

void check(bool condition) {
  if (!condition) std::abort();
}

using weir::test::bitwise_crc32c;

void put32(std::vector<uint8_t>& out, uint32_t v) {
  uint8_t bytes[4];
  weir::wire::store_be32(bytes, v);
  out.insert(out.end(), bytes, bytes + 4);
}

struct Event {
  enum Kind { header, payload, verdict, malformed };
  Kind kind = header;
  Header h{};
  std::array<uint8_t, kHeaderSize> raw{};  // header: a copy (the decoder's buffer is reused)
  std::span<const uint8_t> bytes;          // payload: the span as reported
  Verdict v{};
  Malformed reason{};
};

// Records a transcript (to compare cuttings) and, when `events` is set, every event in order.
struct Collector {
  std::span<const uint8_t> chunk;
  std::vector<uint8_t> transcript;
  std::vector<Event>* events = nullptr;

  void on_header(const Header& h, std::span<const uint8_t, kHeaderSize> raw) {
    transcript.push_back('H');
    transcript.insert(transcript.end(), raw.begin(), raw.end());
    for (uint32_t v : {uint32_t{h.flags}, h.length, h.stream, h.hop}) put32(transcript, v);
    if (events) {
      Event e;
      e.kind = Event::header;
      e.h = h;
      std::copy(raw.begin(), raw.end(), e.raw.begin());
      events->push_back(e);
    }
  }
  void on_payload(std::span<const uint8_t> bytes) {
    check(!bytes.empty());
    check(bytes.data() >= chunk.data() &&
          bytes.data() + bytes.size() <= chunk.data() + chunk.size());
    // Pieces are cut differently in each run; only their bytes belong in the transcript.
    transcript.insert(transcript.end(), bytes.begin(), bytes.end());
    if (events) {
      Event e;
      e.kind = Event::payload;
      e.bytes = bytes;
      events->push_back(e);
    }
  }
  void on_verdict(const Header& h, const Verdict& v) {
    transcript.push_back(v.ok ? 'K' : 'C');
    put32(transcript, v.received_crc);
    put32(transcript, v.computed_crc);
    put32(transcript, h.stream);
    if (events) {
      Event e;
      e.kind = Event::verdict;
      e.h = h;
      e.v = v;
      events->push_back(e);
    }
  }
  void on_malformed(Malformed reason) {
    transcript.push_back('M');
    transcript.push_back(static_cast<uint8_t>(reason));
    if (events) {
      Event e;
      e.kind = Event::malformed;
      e.reason = reason;
      events->push_back(e);
    }
  }
};

// The format's rules for a header, written out again from docs/protocol.md.
bool expect_malformed(const uint8_t* h, uint32_t max_payload, Malformed& reason) {
  const uint32_t length = weir::wire::load_be32(h + 4);
  if (h[0] != 0x57 || h[1] != 0x46) {
    reason = Malformed::bad_magic;
  } else if (h[2] != 1) {
    reason = Malformed::bad_version;
  } else if (h[3] & 0xFC) {
    reason = Malformed::reserved_flags;
  } else if (h[3] == 0x03) {
    reason = Malformed::ping_and_pong;
  } else if (length > max_payload || length > (16u << 20)) {
    reason = Malformed::length_over_limit;
  } else {
    return false;
  }
  return true;
}

// Walks the one-shot events against the stream they came from.
void check_tiling(std::span<const uint8_t> stream, const std::vector<Event>& events,
                  uint32_t max_payload, size_t consumed, bool failed, bool at_boundary) {
  size_t pos = 0;          // stream offset of the next byte the events should cover
  size_t frame_start = 0;  // where the frame in progress began
  size_t payload_left = 0;
  Header current{};
  bool in_frame = false;
  for (const Event& e : events) {
    switch (e.kind) {
      case Event::header: {
        check(!in_frame && pos + kHeaderSize <= stream.size());
        Malformed reason{};
        check(!expect_malformed(stream.data() + pos, max_payload, reason));
        check(std::equal(e.raw.begin(), e.raw.end(), stream.begin() + pos));
        check(e.h.flags == stream[pos + 3]);
        check(e.h.length == weir::wire::load_be32(stream.data() + pos + 4));
        check(e.h.stream == weir::wire::load_be32(stream.data() + pos + 8));
        check(e.h.hop == weir::wire::load_be32(stream.data() + pos + 12));
        current = e.h;
        frame_start = pos;
        payload_left = e.h.length;
        in_frame = true;
        pos += kHeaderSize;
        break;
      }
      case Event::payload:
        check(in_frame && e.bytes.size() <= payload_left);
        check(e.bytes.data() == stream.data() + pos);  // in place, in order, no gap
        payload_left -= e.bytes.size();
        pos += e.bytes.size();
        break;
      case Event::verdict: {
        check(in_frame && payload_left == 0 && pos + kTrailerSize <= stream.size());
        check(e.h.stream == current.stream && e.h.length == current.length);
        const uint32_t trailer = weir::wire::load_be32(stream.data() + pos);
        const uint32_t actual = bitwise_crc32c(stream.data() + frame_start, pos - frame_start);
        check(e.v.received_crc == trailer);
        check(e.v.computed_crc == actual);
        check(e.v.ok == (trailer == actual));
        // Stamping with another hop keeps the mismatch exactly: good stays good, bad stays bad.
        const uint32_t node_id = current.hop ^ 0x5A5A0001u;
        std::vector<uint8_t> stamped(stream.begin() + frame_start, stream.begin() + pos);
        const auto header = stamped_header(
            std::span<const uint8_t, kHeaderSize>(stream.data() + frame_start, kHeaderSize),
            node_id);
        std::copy(header.begin(), header.end(), stamped.begin());
        const uint32_t stamped_crc = stamped_trailer(trailer, current.length, current.hop, node_id);
        check((stamped_crc ^ bitwise_crc32c(stamped.data(), stamped.size())) == (trailer ^ actual));
        in_frame = false;
        pos += kTrailerSize;
        break;
      }
      case Event::malformed: {
        check(!in_frame && pos + kHeaderSize <= stream.size());
        Malformed reason{};
        check(expect_malformed(stream.data() + pos, max_payload, reason) && reason == e.reason);
        pos += kHeaderSize;
        check(failed && consumed == pos && &e == &events.back());
        return;
      }
    }
  }
  check(!failed && consumed == stream.size());
  // What is left after the last event is a frame in progress, never a whole one.
  const size_t left = stream.size() - pos;
  if (!in_frame) {
    check(left < kHeaderSize);
  } else {
    check(payload_left > 0 ? left == 0 : left < kTrailerSize);
  }
  check(at_boundary == (!in_frame && left == 0));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint32_t max_payload = kLimits[data[0] & 7];
  const size_t s = data[0] >> 3;
  const std::span<const uint8_t> stream(data + 1, size - 1);

  std::vector<Event> events;
  Collector whole;
  whole.events = &events;
  whole.chunk = stream;
  Decoder one_shot(max_payload);
  const size_t consumed = one_shot.feed(stream, whole);
  check_tiling(stream, events, max_payload, consumed, one_shot.failed(),
               one_shot.at_frame_boundary());

  Collector chunked;
  Decoder decoder(max_payload);
  size_t chunked_consumed = 0;
  for (size_t pos = 0; pos < stream.size();) {
    const size_t length = 1 + (stream[pos] ^ (pos * s)) % (4 * s + 1);
    chunked.chunk = stream.subspan(pos, std::min(length, stream.size() - pos));
    const bool failed_before = decoder.failed();
    const size_t n = decoder.feed(chunked.chunk, chunked);
    check(failed_before ? n == 0 : (decoder.failed() || n == chunked.chunk.size()));
    chunked_consumed += n;
    pos += chunked.chunk.size();
  }
  check(chunked.transcript == whole.transcript);
  check(chunked_consumed == consumed);
  check(decoder.failed() == one_shot.failed());
  check(decoder.at_frame_boundary() == one_shot.at_frame_boundary());
  return 0;
}
