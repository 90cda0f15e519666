// weir::proxy::FrameRelay, one direction of a framed connection: streams of frames fed in every
// chunking (whole, fixed sizes, seeded random sizes, and for short streams every split at one or
// two points), with the far side's bytes reassembled as the proxy sends them (released held bytes
// first, then the chunk's forward_bytes prefix). After every chunk the bytes sent must be exactly
// the bytes received so far less an incomplete trailer: cut-through for everything else, never a
// trailer byte before its verdict.
#include "dataplane/proxy/frame_relay.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "common/crc32c.h"
#include "common/frame.h"
#include "common/wire/byte_order.h"
#include "tests/support/crc32c_reference.h"

namespace weir::proxy {
namespace {

using frame::kHeaderSize;
using frame::kTrailerSize;
using Outcome = FrameRelay::Outcome;

const char* name_of(Outcome o) {
  switch (o) {
    case Outcome::forward:
      return "forward";
    case Outcome::reset_corrupt:
      return "reset_corrupt";
    case Outcome::reset_malformed:
      return "reset_malformed";
  }
  return "?";
}

std::vector<uint8_t> payload_of(size_t n, uint32_t seed) {
  std::vector<uint8_t> p(n);
  std::mt19937 rng(seed);
  for (size_t i = 0; i < n; i += 4) {
    const uint32_t r = rng();
    for (size_t j = i; j < std::min(n, i + 4); ++j) p[j] = static_cast<uint8_t>(r >> (8 * (j - i)));
  }
  return p;
}

// A test stream: frames back to back, and where each one's parts lie.
struct Stream {
  struct Frame {
    size_t begin = 0;
    size_t trailer_begin = 0;  // begin + 16 + length; unused for a malformed header
    size_t end = 0;
    uint32_t length = 0;
    bool corrupt = false;    // damaged after encoding (the trailer does not match)
    bool malformed = false;  // the header breaks a rule; nothing after it is a frame
  };
  std::vector<uint8_t> bytes;
  std::vector<Frame> frames;

  // A good frame, with the bit `corrupt_bit` of byte `corrupt_at` (frame offsets) flipped if given.
  Stream& add(uint32_t length, uint32_t hop = 0, uint8_t flags = 0,
              std::optional<size_t> corrupt_at = std::nullopt, unsigned corrupt_bit = 0) {
    const uint32_t stream_id = static_cast<uint32_t>(frames.size() + 1) * 0x01010101u;
    std::vector<uint8_t> f =
        frame::encode(flags, stream_id, hop, payload_of(length, stream_id ^ length));
    if (corrupt_at) f.at(*corrupt_at) ^= static_cast<uint8_t>(1u << corrupt_bit);
    Frame info;
    info.begin = bytes.size();
    info.trailer_begin = info.begin + kHeaderSize + length;
    info.end = info.begin + f.size();
    info.length = length;
    info.corrupt = corrupt_at.has_value();
    bytes.insert(bytes.end(), f.begin(), f.end());
    frames.push_back(info);
    return *this;
  }

  // A frame of `length` payload bytes whose header is then broken by `mutate`.
  template <class F>
  Stream& add_malformed(uint32_t length, F mutate) {
    const size_t begin = bytes.size();
    add(length);
    mutate(std::span<uint8_t, kHeaderSize>(bytes.data() + begin, kHeaderSize));
    frames.back().malformed = true;
    return *this;
  }

  // Bytes that may have gone once `in` bytes have come in: all of them but an incomplete trailer.
  size_t forwardable(size_t in) const {
    for (const Frame& f : frames) {
      if (f.malformed) break;
      if (f.trailer_begin < in && in < f.end) return f.trailer_begin;
    }
    return in;
  }

  bool at_boundary(size_t in) const {
    if (in == 0) return true;
    for (const Frame& f : frames) {
      if (f.malformed) return false;
      if (f.end == in) return true;
    }
    return false;
  }

  size_t good_frames() const {
    return static_cast<size_t>(std::count_if(
        frames.begin(), frames.end(), [](const Frame& f) { return !f.corrupt && !f.malformed; }));
  }
  uint64_t good_bytes() const {
    uint64_t n = 0;
    for (const Frame& f : frames) {
      if (!f.corrupt && !f.malformed) n += f.end - f.begin;
    }
    return n;
  }
};

// What the far side should receive with hop stamping: every header's hop := node_id, and each
// frame's trailer off from the CRC of the stamped bytes by exactly what the received trailer was
// off from the CRC of the received bytes (zero for a good frame). Computed from the definition with
// the bitwise reference CRC, not with frame::stamped_trailer. A malformed header's hop bytes are
// stamped too: they pass in place before the header is judged.
std::vector<uint8_t> stamped_expectation(const Stream& s, uint32_t node_id) {
  std::vector<uint8_t> out = s.bytes;
  for (const Stream::Frame& f : s.frames) {
    wire::store_be32(out.data() + f.begin + frame::kHopOffset, node_id);
    if (f.malformed) break;
    const size_t covered = f.trailer_begin - f.begin;
    const uint32_t error = wire::load_be32(s.bytes.data() + f.trailer_begin) ^
                           test::bitwise_crc32c(s.bytes.data() + f.begin, covered);
    wire::store_be32(out.data() + f.trailer_begin,
                     test::bitwise_crc32c(out.data() + f.begin, covered) ^ error);
  }
  return out;
}

struct Chunking {
  std::string name;
  std::vector<size_t> sizes;
};

std::vector<size_t> split_at(size_t total, std::initializer_list<size_t> cuts) {
  std::vector<size_t> sizes;
  size_t last = 0;
  for (size_t cut : cuts) {
    sizes.push_back(cut - last);
    last = cut;
  }
  sizes.push_back(total - last);
  return sizes;
}

// Whole; fixed sizes 1..max_fixed; `randoms` seeded random mixes of small and large chunks; and for
// streams of at most `exhaustive_up_to` bytes every split at one point and at two.
std::vector<Chunking> chunkings(size_t total, size_t max_fixed = 40, int randoms = 30,
                                size_t exhaustive_up_to = 100) {
  std::vector<Chunking> out;
  out.push_back({"whole", {total}});
  for (size_t n = 1; n <= std::min(max_fixed, total); ++n) {
    Chunking c{"fixed " + std::to_string(n), {}};
    for (size_t left = total; left > 0; left -= std::min(n, left)) {
      c.sizes.push_back(std::min(n, left));
    }
    out.push_back(std::move(c));
  }
  for (int seed = 1; seed <= randoms; ++seed) {
    std::mt19937 rng(static_cast<uint32_t>(seed));
    Chunking c{"random seed " + std::to_string(seed), {}};
    for (size_t left = total; left > 0;) {
      const size_t n = rng() % 4 == 0 ? 1 + rng() % total : 1 + rng() % 9;
      c.sizes.push_back(std::min(n, left));
      left -= c.sizes.back();
    }
    out.push_back(std::move(c));
  }
  if (total <= exhaustive_up_to) {
    for (size_t i = 1; i < total; ++i) {
      out.push_back({"split at " + std::to_string(i), split_at(total, {i})});
      for (size_t j = i + 1; j < total; ++j) {
        out.push_back(
            {"split at " + std::to_string(i) + "," + std::to_string(j), split_at(total, {i, j})});
      }
    }
  }
  return out;
}

struct Relayed {
  std::vector<uint8_t> out;  // what the far side received
  Outcome outcome = Outcome::forward;
  size_t reset_chunk_begin = 0;  // stream offsets of the chunk that returned reset_*
  size_t reset_chunk_end = 0;
  FrameCounts counts;
  std::string error;  // the first broken invariant; empty if none
};

// Feeds `s` to a relay in `chunking`, sending what it allows as the proxy does, and checks after
// every forwarded chunk that the far side has exactly s.forwardable(bytes in) bytes, each equal to
// `expected` (the stream itself, or its stamped form). Stops at the first reset.
Relayed pass(const FrameRelaySettings& settings, const Stream& s,
             const std::vector<uint8_t>& expected, const Chunking& chunking) {
  Relayed run;
  FrameRelay relay(settings);
  std::vector<uint8_t> wire = s.bytes;  // the relay may rewrite it in place
  size_t in = 0;
  auto fail = [&](const std::string& what) {
    if (run.error.empty()) {
      run.error = chunking.name + ", after " + std::to_string(in) + " bytes in: " + what;
    }
  };
  for (size_t size : chunking.sizes) {
    const std::span<uint8_t> chunk(wire.data() + in, size);
    const FrameRelay::Result r = relay.process(chunk);
    const size_t chunk_begin = in;
    in += size;
    if (r.outcome != Outcome::forward) {
      run.outcome = r.outcome;
      run.reset_chunk_begin = chunk_begin;
      run.reset_chunk_end = in;
      break;  // the proxy resets both connections: nothing of this chunk goes
    }
    if (r.released > kTrailerSize) fail("released " + std::to_string(r.released) + " bytes");
    if (r.forward_bytes > size) fail("forward_bytes " + std::to_string(r.forward_bytes));
    if (!run.error.empty()) break;
    const size_t before = run.out.size();
    const std::span<const uint8_t> held = relay.released(r.released);
    run.out.insert(run.out.end(), held.begin(), held.end());
    run.out.insert(run.out.end(), chunk.begin(), chunk.begin() + r.forward_bytes);
    if (run.out.size() != s.forwardable(in)) {
      fail(std::to_string(run.out.size()) + " bytes sent, expected " +
           std::to_string(s.forwardable(in)));
      break;
    }
    const auto mismatch =
        std::mismatch(run.out.begin() + before, run.out.end(), expected.begin() + before);
    if (mismatch.first != run.out.end()) {
      const size_t at = static_cast<size_t>(mismatch.first - run.out.begin());
      fail("byte " + std::to_string(at) + " sent as " + std::to_string(*mismatch.first) +
           ", expected " + std::to_string(*mismatch.second));
      break;
    }
    if (relay.between_frames() != s.at_boundary(in)) {
      fail(std::string("between_frames() is ") + (relay.between_frames() ? "true" : "false"));
      break;
    }
  }
  run.counts = relay.counts();
  return run;
}

// The frames the far side would decode from what it received.
struct Decoded {
  struct Frame {
    frame::Header header;
    std::vector<uint8_t> payload;
    std::optional<frame::Verdict> verdict;
  };
  std::vector<Frame> frames;
  bool malformed = false;

  void on_header(const frame::Header& h, std::span<const uint8_t, kHeaderSize>) {
    frames.push_back({h, {}, std::nullopt});
  }
  void on_payload(std::span<const uint8_t> bytes) {
    frames.back().payload.insert(frames.back().payload.end(), bytes.begin(), bytes.end());
  }
  void on_verdict(const frame::Header&, const frame::Verdict& v) { frames.back().verdict = v; }
  void on_malformed(frame::Malformed) { malformed = true; }
};

Decoded decode(std::span<const uint8_t> bytes) {
  Decoded d;
  frame::Decoder decoder(frame::kHardMaxPayload);
  decoder.feed(bytes, d);
  return d;
}

FrameRelaySettings reset_mode() {
  return {};
}
FrameRelaySettings count_mode() {
  FrameRelaySettings s;
  s.reset_on_corrupt = false;
  return s;
}
FrameRelaySettings stamping(FrameRelaySettings s, uint32_t node_id) {
  s.stamp_hop = true;
  s.node_id = node_id;
  return s;
}

// --- 1. Good frames pass whole, byte for byte, trailers only after their verdicts --------------

struct GoodCase {
  std::string name;
  std::vector<uint32_t> lengths;
  uint32_t max_frame = frame::kHardMaxPayload;
  size_t max_fixed = 40;
};

TEST(FrameRelayTest, GoodFramesPassUnchangedInEveryChunking) {
  const std::vector<GoodCase> cases = {
      {"one empty frame", {0}},
      {"empty frames back to back", {0, 0, 0}},
      {"short payloads around the trailer size", {0, 1, 2, 3, 4, 5, 0, 7}},
      {"header- and trailer-sized payloads", {16, 15, 17, 4, 20}},
      {"payload exactly max_frame", {64, 0, 64, 63}, 64},
      {"longer payloads", {0, 1, 255, 1000, 4093, 4096, 9000, 3, 65536}, frame::kHardMaxPayload, 8},
  };
  for (const GoodCase& c : cases) {
    Stream s;
    uint8_t flags = 0;
    for (uint32_t length : c.lengths) {
      s.add(length, 0, flags);
      flags = static_cast<uint8_t>((flags + 1) % 3);  // none, PING, PONG in turn
    }
    for (const FrameRelaySettings& base : {reset_mode(), count_mode()}) {
      FrameRelaySettings settings = base;
      settings.max_frame = c.max_frame;
      for (const Chunking& chunking : chunkings(s.bytes.size(), c.max_fixed)) {
        const Relayed run = pass(settings, s, s.bytes, chunking);
        ASSERT_EQ(run.error, "") << c.name;
        ASSERT_EQ(run.outcome, Outcome::forward) << c.name << ", " << chunking.name;
        ASSERT_EQ(run.out, s.bytes) << c.name << ", " << chunking.name;
        EXPECT_EQ(run.counts.frames_verified, c.lengths.size()) << c.name << ", " << chunking.name;
        EXPECT_EQ(run.counts.bytes_verified, s.bytes.size()) << c.name << ", " << chunking.name;
        EXPECT_EQ(run.counts.frames_corrupt, 0u) << c.name << ", " << chunking.name;
        EXPECT_EQ(run.counts.frames_malformed, 0u) << c.name << ", " << chunking.name;
      }
    }
  }
}

// A frame at the 16 MiB hard limit passes with the default max_frame.
TEST(FrameRelayTest, FrameAtTheHardLimitPasses) {
  Stream s;
  s.add(0).add(frame::kHardMaxPayload).add(3);
  const size_t total = s.bytes.size();
  const size_t big_trailer = s.frames[1].trailer_begin;
  std::vector<Chunking> cs = {
      {"whole", {total}},
      {"1 MiB chunks then the rest", {}},
      {"trailer split 1+3", split_at(total, {big_trailer + 1})},
      {"trailer split 3+1", split_at(total, {big_trailer + 3})},
      {"trailer split 1+2+1", split_at(total, {big_trailer + 1, big_trailer + 3})}};
  for (size_t left = total; left > 0; left -= cs[1].sizes.back()) {
    cs[1].sizes.push_back(std::min<size_t>(left, 1u << 20));
  }
  for (const Chunking& chunking : cs) {
    const Relayed run = pass(reset_mode(), s, s.bytes, chunking);
    ASSERT_EQ(run.error, "");
    ASSERT_EQ(run.outcome, Outcome::forward) << chunking.name;
    EXPECT_TRUE(run.out == s.bytes) << chunking.name;
    EXPECT_EQ(run.counts.frames_verified, 3u) << chunking.name;
    EXPECT_EQ(run.counts.bytes_verified, total) << chunking.name;
  }
}

// --- 2 and 3. Corrupt frames: reset before the trailer goes, or counted and passed unchanged -----

enum class Where {
  payload_first,
  payload_last,
  stream_field,
  hop_field,
  trailer_first,
  trailer_last
};

size_t offset_in_frame(Where where, uint32_t length) {
  switch (where) {
    case Where::payload_first:
      return kHeaderSize;
    case Where::payload_last:
      return kHeaderSize + length - 1;
    case Where::stream_field:
      return frame::kStreamOffset + 2;
    case Where::hop_field:
      return frame::kHopOffset + 3;
    case Where::trailer_first:
      return kHeaderSize + length;
    case Where::trailer_last:
      return kHeaderSize + length + kTrailerSize - 1;
  }
  return 0;
}

struct CorruptCase {
  std::string name;
  std::vector<uint32_t> lengths;
  std::vector<size_t> corrupt;  // indices into lengths; the reset cases use only the first
  Where where;
  unsigned bit;
};

const std::vector<CorruptCase>& corrupt_cases() {
  static const std::vector<CorruptCase> cases = {
      {"first frame, first payload byte", {5, 0, 7}, {0}, Where::payload_first, 0},
      {"first frame, last payload byte", {5, 0, 7}, {0}, Where::payload_last, 7},
      {"last frame, last payload byte", {5, 0, 7}, {2}, Where::payload_last, 3},
      {"middle frame, one-byte payload", {6, 1, 4}, {1}, Where::payload_first, 5},
      {"empty frame, stream field", {5, 0, 7}, {1}, Where::stream_field, 1},
      {"middle frame, hop field", {3, 8, 2}, {1}, Where::hop_field, 0},
      {"first trailer byte", {4, 9}, {1}, Where::trailer_first, 6},
      {"last trailer byte", {9, 4}, {0}, Where::trailer_last, 0},
      {"alone", {11}, {0}, Where::payload_first, 2},
      {"two of four", {2, 5, 0, 3}, {1, 3}, Where::payload_last, 4},
  };
  return cases;
}

Stream corrupt_stream(const CorruptCase& c, bool first_only, uint32_t hop = 0) {
  Stream s;
  for (size_t i = 0; i < c.lengths.size(); ++i) {
    const bool bad = first_only
                         ? i == c.corrupt.front()
                         : std::find(c.corrupt.begin(), c.corrupt.end(), i) != c.corrupt.end();
    if (bad) {
      s.add(c.lengths[i], hop, 0, offset_in_frame(c.where, c.lengths[i]), c.bit);
    } else {
      s.add(c.lengths[i], hop);
    }
  }
  return s;
}

// Reset mode: the chunk that completes the corrupt frame's trailer resets, and the far side never
// got a byte of that trailer, so it never holds the corrupt frame whole.
void expect_reset_before_corrupt_trailer(const FrameRelaySettings& settings, const Stream& s,
                                         const std::vector<uint8_t>& expected,
                                         const std::string& name) {
  const auto bad = std::find_if(s.frames.begin(), s.frames.end(),
                                [](const Stream::Frame& f) { return f.corrupt; });
  ASSERT_NE(bad, s.frames.end());
  const size_t good_before = static_cast<size_t>(bad - s.frames.begin());
  for (const Chunking& chunking : chunkings(s.bytes.size())) {
    const Relayed run = pass(settings, s, expected, chunking);
    ASSERT_EQ(run.error, "") << name;
    ASSERT_EQ(run.outcome, Outcome::reset_corrupt)
        << name << ", " << chunking.name << ": " << name_of(run.outcome);
    EXPECT_TRUE(run.reset_chunk_begin < bad->end && bad->end <= run.reset_chunk_end)
        << name << ", " << chunking.name << ": reset in the chunk [" << run.reset_chunk_begin
        << ", " << run.reset_chunk_end << "), the corrupt frame ends at " << bad->end;
    EXPECT_LE(run.out.size(), bad->trailer_begin)
        << name << ", " << chunking.name << ": a byte of the corrupt trailer was sent";
    EXPECT_EQ(run.counts.frames_corrupt, 1u) << name << ", " << chunking.name;
    EXPECT_EQ(run.counts.frames_verified, good_before) << name << ", " << chunking.name;
    EXPECT_EQ(run.counts.bytes_verified, bad->begin) << name << ", " << chunking.name;
    EXPECT_EQ(run.counts.frames_malformed, 0u) << name << ", " << chunking.name;
  }
}

TEST(FrameRelayTest, CorruptFrameResetsBeforeItsTrailerGoes) {
  for (const CorruptCase& c : corrupt_cases()) {
    const Stream s = corrupt_stream(c, true);
    expect_reset_before_corrupt_trailer(reset_mode(), s, s.bytes, c.name);
  }
}

TEST(FrameRelayTest, CountModePassesCorruptFramesUnchangedAndCountsThem) {
  for (const CorruptCase& c : corrupt_cases()) {
    const Stream s = corrupt_stream(c, false);
    for (const Chunking& chunking : chunkings(s.bytes.size())) {
      const Relayed run = pass(count_mode(), s, s.bytes, chunking);
      ASSERT_EQ(run.error, "") << c.name;
      ASSERT_EQ(run.outcome, Outcome::forward) << c.name << ", " << chunking.name;
      ASSERT_EQ(run.out, s.bytes) << c.name << ", " << chunking.name;
      EXPECT_EQ(run.counts.frames_corrupt, c.corrupt.size()) << c.name << ", " << chunking.name;
      EXPECT_EQ(run.counts.frames_verified, s.good_frames()) << c.name << ", " << chunking.name;
      EXPECT_EQ(run.counts.bytes_verified, s.good_bytes()) << c.name << ", " << chunking.name;
      EXPECT_EQ(run.counts.frames_malformed, 0u) << c.name << ", " << chunking.name;
    }
  }
}

// --- 4. Malformed headers reset whatever on_corrupt says ----------------------------------------

struct MalformedCase {
  std::string name;
  void (*mutate)(std::span<uint8_t, kHeaderSize>);
  uint32_t max_frame = frame::kHardMaxPayload;
};

TEST(FrameRelayTest, MalformedHeaderResets) {
  const std::vector<MalformedCase> cases = {
      {"bad magic, first byte", [](auto h) { h[0] = 'w'; }},
      {"bad magic, second byte", [](auto h) { h[1] ^= 0x80; }},
      {"version 0", [](auto h) { h[2] = 0; }},
      {"version 2", [](auto h) { h[2] = 2; }},
      {"reserved flag bit 2", [](auto h) { h[3] = 0x04; }},
      {"reserved flag bit 7 with PING", [](auto h) { h[3] = 0x81; }},
      {"PING and PONG", [](auto h) { h[3] = 0x03; }},
      {"length max_frame + 1", [](auto h) { wire::store_be32(h.data() + 4, 65); }, 64},
      {"length far over max_frame", [](auto h) { wire::store_be32(h.data() + 4, 0xFFFFFFFF); }, 64},
      {"length 16 MiB + 1, max_frame above the hard limit",
       [](auto h) { wire::store_be32(h.data() + 4, frame::kHardMaxPayload + 1); }, 0xFFFFFFFF},
  };
  for (const MalformedCase& c : cases) {
    Stream s;
    s.add(5).add(0).add_malformed(3, c.mutate).add(2);
    const Stream::Frame& bad = s.frames[2];
    const size_t header_end = bad.begin + kHeaderSize;
    for (bool stamp : {false, true}) {
      for (FrameRelaySettings settings : {reset_mode(), count_mode()}) {
        settings.max_frame = c.max_frame;
        if (stamp) settings = stamping(settings, 0x0A0B0C0D);
        const std::vector<uint8_t> expected =
            stamp ? stamped_expectation(s, settings.node_id) : s.bytes;
        for (const Chunking& chunking : chunkings(s.bytes.size())) {
          const Relayed run = pass(settings, s, expected, chunking);
          ASSERT_EQ(run.error, "") << c.name;
          ASSERT_EQ(run.outcome, Outcome::reset_malformed)
              << c.name << ", " << chunking.name << ": " << name_of(run.outcome);
          EXPECT_TRUE(run.reset_chunk_begin < header_end && header_end <= run.reset_chunk_end)
              << c.name << ", " << chunking.name << ": reset in the chunk ["
              << run.reset_chunk_begin << ", " << run.reset_chunk_end << "), the header ends at "
              << header_end;
          EXPECT_LT(run.out.size(), header_end) << c.name << ", " << chunking.name;
          EXPECT_EQ(run.counts.frames_malformed, 1u) << c.name << ", " << chunking.name;
          EXPECT_EQ(run.counts.frames_verified, 2u) << c.name << ", " << chunking.name;
          EXPECT_EQ(run.counts.bytes_verified, bad.begin) << c.name << ", " << chunking.name;
          EXPECT_EQ(run.counts.frames_corrupt, 0u) << c.name << ", " << chunking.name;
        }
      }
    }
  }
}

// --- 5. Hop stamping: good frames verify with the new hop; corrupt ones stay exactly as corrupt
// ---

TEST(FrameRelayTest, StampsTheDocumentedExampleInEveryChunking) {
  // docs/protocol.md, "Worked example": the PING "hello", stamped by node 7.
  Stream s;
  s.bytes = {0x57, 0x46, 0x01, 0x01, 0x00, 0x00, 0x00, 0x05, 0x01, 0x02, 0x03, 0x04, 0x00,
             0x00, 0x00, 0x00, 0x68, 0x65, 0x6c, 0x6c, 0x6f, 0x8a, 0xaf, 0x95, 0xc8};
  s.frames.push_back({0, 21, 25, 5, false, false});
  const std::vector<uint8_t> stamped = {0x57, 0x46, 0x01, 0x01, 0x00, 0x00, 0x00, 0x05, 0x01,
                                        0x02, 0x03, 0x04, 0x00, 0x00, 0x00, 0x07, 0x68, 0x65,
                                        0x6c, 0x6c, 0x6f, 0x0c, 0xe6, 0x69, 0x65};
  for (const Chunking& chunking : chunkings(s.bytes.size())) {
    const Relayed run = pass(stamping(reset_mode(), 7), s, stamped, chunking);
    ASSERT_EQ(run.error, "");
    ASSERT_EQ(run.outcome, Outcome::forward) << chunking.name;
    EXPECT_EQ(run.out, stamped) << chunking.name;
    EXPECT_EQ(run.counts.frames_verified, 1u) << chunking.name;
  }
}

struct StampCase {
  std::string name;
  std::vector<uint32_t> lengths;
  uint32_t hop_in;
  uint32_t node_id;
};

TEST(FrameRelayTest, StampedGoodFramesVerifyWithTheNodesHop) {
  const std::vector<StampCase> cases = {
      {"hop 0 to 7", {5, 0, 7, 1}, 0, 7},
      {"hop 7 to 7 (unchanged)", {5, 0, 7, 1}, 7, 7},
      {"every hop bit flips", {0, 4, 16, 3}, 0xFFFFFFFF, 0},
      {"mixed bytes", {2, 0, 0, 9}, 0x01020304, 0xA1B2C3D4},
      {"longer payloads", {300, 0, 4096, 17}, 0x11111111, 0xFEDCBA98},
  };
  for (const StampCase& c : cases) {
    Stream s;
    for (uint32_t length : c.lengths) s.add(length, c.hop_in, length % 2 ? frame::kFlagPong : 0);
    const std::vector<uint8_t> expected = stamped_expectation(s, c.node_id);
    // The expectation, checked against the encoder: each frame encoded afresh with hop node_id.
    for (const Stream::Frame& f : s.frames) {
      const uint8_t* in = s.bytes.data() + f.begin;
      const std::vector<uint8_t> fresh =
          frame::encode(in[frame::kFlagsOffset], wire::load_be32(in + frame::kStreamOffset),
                        c.node_id, {in + kHeaderSize, f.length});
      ASSERT_TRUE(std::equal(fresh.begin(), fresh.end(), expected.begin() + f.begin)) << c.name;
    }
    const size_t max_fixed = s.bytes.size() > 1000 ? 8 : 40;
    for (const FrameRelaySettings& base : {reset_mode(), count_mode()}) {
      const FrameRelaySettings settings = stamping(base, c.node_id);
      for (const Chunking& chunking : chunkings(s.bytes.size(), max_fixed)) {
        const Relayed run = pass(settings, s, expected, chunking);
        ASSERT_EQ(run.error, "") << c.name;
        ASSERT_EQ(run.outcome, Outcome::forward) << c.name << ", " << chunking.name;
        ASSERT_EQ(run.out, expected) << c.name << ", " << chunking.name;
        EXPECT_EQ(run.counts.frames_verified, c.lengths.size()) << c.name << ", " << chunking.name;
        EXPECT_EQ(run.counts.bytes_verified, s.bytes.size()) << c.name << ", " << chunking.name;
        EXPECT_EQ(run.counts.frames_corrupt, 0u) << c.name << ", " << chunking.name;
      }
    }
    // What the far side decodes: every frame verifies, carries the node's hop, payload unchanged.
    const Decoded d = decode(expected);
    ASSERT_FALSE(d.malformed) << c.name;
    ASSERT_EQ(d.frames.size(), c.lengths.size()) << c.name;
    for (size_t i = 0; i < d.frames.size(); ++i) {
      const Stream::Frame& f = s.frames[i];
      const uint8_t* in = s.bytes.data() + f.begin;
      ASSERT_TRUE(d.frames[i].verdict) << c.name << ", frame " << i;
      EXPECT_TRUE(d.frames[i].verdict->ok) << c.name << ", frame " << i;
      EXPECT_EQ(d.frames[i].header.hop, c.node_id) << c.name << ", frame " << i;
      EXPECT_EQ(d.frames[i].header.stream, wire::load_be32(in + frame::kStreamOffset));
      EXPECT_EQ(d.frames[i].header.flags, in[frame::kFlagsOffset]);
      EXPECT_TRUE(std::equal(d.frames[i].payload.begin(), d.frames[i].payload.end(),
                             in + kHeaderSize, in + kHeaderSize + f.length))
          << c.name << ", frame " << i;
    }
  }
}

// A frame damaged before Weir is forwarded stamped but exactly as corrupt as it came: its trailer
// is off from the CRC of the stamped bytes by what it was off from the CRC of the received ones.
TEST(FrameRelayTest, StampingNeverLaundersACorruptFrame) {
  for (const CorruptCase& c : corrupt_cases()) {
    for (uint32_t hop_in : {0u, 0x5A5A5A5Au}) {
      const uint32_t node_id = 0x00C0FFEE;
      const Stream s = corrupt_stream(c, false, hop_in);
      const std::vector<uint8_t> expected = stamped_expectation(s, node_id);
      for (const Chunking& chunking : chunkings(s.bytes.size())) {
        const Relayed run = pass(stamping(count_mode(), node_id), s, expected, chunking);
        ASSERT_EQ(run.error, "") << c.name;
        ASSERT_EQ(run.outcome, Outcome::forward) << c.name << ", " << chunking.name;
        ASSERT_EQ(run.out, expected) << c.name << ", " << chunking.name;
        EXPECT_EQ(run.counts.frames_corrupt, c.corrupt.size()) << c.name << ", " << chunking.name;
        EXPECT_EQ(run.counts.frames_verified, s.good_frames()) << c.name << ", " << chunking.name;
      }
      // The far side's check: good frames verify with the new hop, the damaged ones fail by the
      // same CRC difference as before the stamp.
      const Decoded before = decode(s.bytes);
      const Decoded after = decode(expected);
      ASSERT_EQ(after.frames.size(), s.frames.size()) << c.name;
      ASSERT_EQ(before.frames.size(), s.frames.size()) << c.name;
      for (size_t i = 0; i < s.frames.size(); ++i) {
        ASSERT_TRUE(before.frames[i].verdict && after.frames[i].verdict) << c.name;
        const frame::Verdict& b = *before.frames[i].verdict;
        const frame::Verdict& a = *after.frames[i].verdict;
        EXPECT_EQ(a.ok, !s.frames[i].corrupt) << c.name << ", frame " << i;
        EXPECT_EQ(a.received_crc ^ a.computed_crc, b.received_crc ^ b.computed_crc)
            << c.name << ", frame " << i;
        EXPECT_EQ(after.frames[i].header.hop, node_id) << c.name << ", frame " << i;
        EXPECT_EQ(after.frames[i].payload, before.frames[i].payload) << c.name << ", frame " << i;
      }
    }
  }
}

TEST(FrameRelayTest, StampingStillResetsBeforeACorruptTrailer) {
  for (const CorruptCase& c : corrupt_cases()) {
    const Stream s = corrupt_stream(c, true, 3);
    expect_reset_before_corrupt_trailer(stamping(reset_mode(), 0xDEADBEEF), s,
                                        stamped_expectation(s, 0xDEADBEEF), c.name);
  }
}

}  // namespace
}  // namespace weir::proxy

// ---- the faults reported for the frame event log ----------------------------------------------

namespace weir::proxy {
namespace {

TEST(FrameRelayFaults, ACorruptFrameIsReportedWithItsStreamLengthAndBothCrcs) {
  const std::vector<uint8_t> payload = payload_of(300, 9);
  std::vector<uint8_t> good = frame::encode(0, 4242, 0, payload);
  std::vector<uint8_t> bytes = frame::encode(0, 1, 0, payload_of(10, 1));  // a clean one first
  const size_t damaged_at = bytes.size();
  bytes.insert(bytes.end(), good.begin(), good.end());
  bytes[damaged_at + kHeaderSize + 7] ^= 0x04;
  const uint32_t trailer = wire::load_be32(good.data() + good.size() - kTrailerSize);
  const uint32_t damaged_crc = crc32c(bytes.data() + damaged_at, kHeaderSize + payload.size());
  ASSERT_NE(trailer, damaged_crc);

  FrameRelaySettings count_mode;
  count_mode.reset_on_corrupt = false;
  FrameRelay relay(count_mode);
  std::vector<FrameFault> faults;
  // Split inside the damaged frame's trailer: the verdict comes with the second chunk.
  const size_t split = bytes.size() - 2;
  for (auto chunk :
       {std::span<uint8_t>(bytes).first(split), std::span<uint8_t>(bytes).subspan(split)}) {
    relay.process(chunk, [&](const FrameFault& f) { faults.push_back(f); });
  }
  ASSERT_EQ(faults.size(), 1u);
  EXPECT_FALSE(faults[0].malformed);
  EXPECT_EQ(faults[0].stream, 4242u);
  EXPECT_EQ(faults[0].length, payload.size());
  EXPECT_EQ(faults[0].received_crc, trailer);
  EXPECT_EQ(faults[0].expected_crc, damaged_crc);
  EXPECT_TRUE(faults[0].forwarded);  // count mode
  EXPECT_EQ(relay.counts().frames_verified, 1u);
}

TEST(FrameRelayFaults, AMalformedHeaderIsReportedWithItsReasonAndRawFields) {
  std::vector<uint8_t> bytes = frame::encode(0, 77, 0, payload_of(20, 2));
  bytes[0] = 'X';  // bad magic
  FrameRelay relay(FrameRelaySettings{});
  std::vector<FrameFault> faults;
  for (size_t i = 0; i < bytes.size(); ++i) {  // a byte at a time: the header straddles chunks
    const auto r = relay.process(std::span<uint8_t>(bytes).subspan(i, 1),
                                 [&](const FrameFault& f) { faults.push_back(f); });
    if (r.outcome != Outcome::forward) break;
  }
  ASSERT_EQ(faults.size(), 1u);
  EXPECT_TRUE(faults[0].malformed);
  EXPECT_EQ(faults[0].reason, frame::Malformed::bad_magic);
  EXPECT_EQ(faults[0].stream, 77u);
  EXPECT_EQ(faults[0].length, 20u);
  EXPECT_FALSE(faults[0].forwarded);
}

TEST(FrameRelayFaults, ResetModeReportsTheCorruptFrameAsNotForwarded) {
  std::vector<uint8_t> bytes = frame::encode(0, 5, 0, payload_of(64, 3));
  bytes[kHeaderSize] ^= 1;
  FrameRelay relay(FrameRelaySettings{});
  std::vector<FrameFault> faults;
  const auto r = relay.process(bytes, [&](const FrameFault& f) { faults.push_back(f); });
  EXPECT_EQ(r.outcome, Outcome::reset_corrupt);
  ASSERT_EQ(faults.size(), 1u);
  EXPECT_FALSE(faults[0].forwarded);
}

}  // namespace
}  // namespace weir::proxy
