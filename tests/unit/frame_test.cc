#include "common/frame.h"
#include "tests/support/crc32c_reference.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <optional>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

namespace weir::frame {
namespace {

using test::bitwise_crc32c;

// A frame laid out by hand from the format table, independently of encode().
std::vector<uint8_t> reference_frame(uint8_t flags, uint32_t stream, uint32_t hop,
                                     const std::vector<uint8_t>& payload) {
  std::vector<uint8_t> f = {0x57, 0x46, 0x01, flags};
  for (uint32_t v : {static_cast<uint32_t>(payload.size()), stream, hop}) {
    for (int shift = 24; shift >= 0; shift -= 8) f.push_back(static_cast<uint8_t>(v >> shift));
  }
  f.insert(f.end(), payload.begin(), payload.end());
  const uint32_t crc = bitwise_crc32c(f.data(), f.size());
  for (int shift = 24; shift >= 0; shift -= 8) f.push_back(static_cast<uint8_t>(crc >> shift));
  return f;
}

std::vector<uint8_t> bytes_of(const std::string& s) {
  return {s.begin(), s.end()};
}

std::vector<uint8_t> random_bytes(std::mt19937& rng, size_t n) {
  std::vector<uint8_t> bytes(n);
  for (auto& b : bytes) b = static_cast<uint8_t>(rng());
  return bytes;
}

void append(std::vector<uint8_t>& to, const std::vector<uint8_t>& bytes) {
  to.insert(to.end(), bytes.begin(), bytes.end());
}

// Records what the decoder reported, reassembling payload spans, and checks that every payload
// span lies inside the chunk being fed (the decoder hands out the caller's bytes, not copies).
struct Recorder {
  struct Frame {
    Header header;
    std::array<uint8_t, kHeaderSize> raw{};
    std::vector<uint8_t> payload;
    size_t payload_events = 0;
    std::optional<Verdict> verdict;
  };
  std::vector<Frame> frames;
  std::optional<Malformed> malformed;
  size_t malformed_events = 0;
  std::span<const uint8_t> chunk;
  size_t spans_outside_chunk = 0;

  void on_header(const Header& h, std::span<const uint8_t, kHeaderSize> raw) {
    Frame f;
    f.header = h;
    std::copy(raw.begin(), raw.end(), f.raw.begin());
    frames.push_back(f);
  }
  void on_payload(std::span<const uint8_t> bytes) {
    if (bytes.data() < chunk.data() || bytes.data() + bytes.size() > chunk.data() + chunk.size()) {
      ++spans_outside_chunk;
    }
    frames.back().payload.insert(frames.back().payload.end(), bytes.begin(), bytes.end());
    ++frames.back().payload_events;
  }
  void on_verdict(const Header& h, const Verdict& v) {
    EXPECT_EQ(h.stream, frames.back().header.stream);
    frames.back().verdict = v;
  }
  void on_malformed(Malformed reason) {
    malformed = reason;
    ++malformed_events;
  }
};

// What must not depend on how the stream was cut: everything but the payload piece count.
void expect_same_events(const Recorder& a, const Recorder& b, const std::string& where) {
  ASSERT_EQ(a.frames.size(), b.frames.size()) << where;
  for (size_t i = 0; i < a.frames.size(); ++i) {
    const auto& fa = a.frames[i];
    const auto& fb = b.frames[i];
    EXPECT_EQ(fa.raw, fb.raw) << where << " frame " << i;
    EXPECT_EQ(fa.header.flags, fb.header.flags) << where << " frame " << i;
    EXPECT_EQ(fa.header.length, fb.header.length) << where << " frame " << i;
    EXPECT_EQ(fa.header.stream, fb.header.stream) << where << " frame " << i;
    EXPECT_EQ(fa.header.hop, fb.header.hop) << where << " frame " << i;
    EXPECT_EQ(fa.payload, fb.payload) << where << " frame " << i;
    ASSERT_EQ(fa.verdict.has_value(), fb.verdict.has_value()) << where << " frame " << i;
    if (fa.verdict) {
      EXPECT_EQ(fa.verdict->ok, fb.verdict->ok) << where << " frame " << i;
      EXPECT_EQ(fa.verdict->received_crc, fb.verdict->received_crc) << where << " frame " << i;
      EXPECT_EQ(fa.verdict->computed_crc, fb.verdict->computed_crc) << where << " frame " << i;
    }
  }
  EXPECT_EQ(a.malformed, b.malformed) << where;
  EXPECT_EQ(a.malformed_events, b.malformed_events) << where;
}

constexpr uint32_t kMaxFrame = 1u << 20;

// Feeds `stream` cut at the given ascending positions; every feed must consume its whole chunk
// unless the stream has failed.
Recorder decode_cut(const std::vector<uint8_t>& stream, const std::vector<size_t>& cuts,
                    uint32_t max_payload = kMaxFrame) {
  Decoder decoder(max_payload);
  Recorder r;
  const std::span<const uint8_t> all(stream);
  size_t begin = 0;
  for (size_t i = 0; i <= cuts.size(); ++i) {
    const size_t end = i < cuts.size() ? cuts[i] : stream.size();
    r.chunk = all.subspan(begin, end - begin);
    const bool failed_before = decoder.failed();
    const size_t consumed = decoder.feed(r.chunk, r);
    if (!decoder.failed()) {
      EXPECT_EQ(consumed, r.chunk.size());
    }
    if (failed_before) {
      EXPECT_EQ(consumed, 0u);
    }
    begin = end;
  }
  EXPECT_EQ(r.spans_outside_chunk, 0u);
  return r;
}

Recorder decode_whole(const std::vector<uint8_t>& stream, uint32_t max_payload = kMaxFrame) {
  return decode_cut(stream, {}, max_payload);
}

TEST(Frame, EncodesTheDocumentedLayout) {
  const auto frame = encode(kFlagPing, 0x01020304, 0, bytes_of("hello"));
  // docs/protocol.md, worked example; its CRC computed by a bitwise CRC-32C in Python (checked
  // against "123456789" -> 0xE3069283).
  const std::vector<uint8_t> documented = {0x57, 0x46, 0x01, 0x01, 0x00, 0x00, 0x00, 0x05, 0x01,
                                           0x02, 0x03, 0x04, 0x00, 0x00, 0x00, 0x00, 0x68, 0x65,
                                           0x6c, 0x6c, 0x6f, 0x8a, 0xaf, 0x95, 0xc8};
  EXPECT_EQ(frame, documented);
}

TEST(Frame, StampsTheDocumentedExample) {
  const auto frame = encode(kFlagPing, 0x01020304, 0, bytes_of("hello"));
  const auto header = stamped_header(std::span<const uint8_t, kHeaderSize>(frame.data(), 16), 7);
  const std::array<uint8_t, kHeaderSize> documented_header = {0x57, 0x46, 0x01, 0x01, 0x00, 0x00,
                                                              0x00, 0x05, 0x01, 0x02, 0x03, 0x04,
                                                              0x00, 0x00, 0x00, 0x07};
  EXPECT_EQ(header, documented_header);
  // docs/protocol.md: the stamped frame's CRC, computed over the stamped bytes by the bitwise
  // Python CRC-32C.
  EXPECT_EQ(stamped_trailer(0x8AAF95C8u, 5, 0, 7), 0x0CE66965u);
}

TEST(Frame, EncodeMatchesAHandBuiltFrame) {
  std::mt19937 rng(21);
  for (uint32_t length : {0u, 1u, 3u, 255u, 256u, 4097u}) {
    const auto payload = random_bytes(rng, length);
    const uint8_t flags = static_cast<uint8_t>(length % 3);  // none, PING, PONG
    const uint32_t stream = static_cast<uint32_t>(rng());
    const uint32_t hop = static_cast<uint32_t>(rng());
    const auto expected = reference_frame(flags, stream, hop, payload);
    EXPECT_EQ(encode(flags, stream, hop, payload), expected) << length;
    std::vector<uint8_t> buffer(expected.size() + 10, 0xEE);
    ASSERT_EQ(encode_into(buffer, flags, stream, hop, payload), expected.size());
    EXPECT_EQ(std::vector<uint8_t>(buffer.begin(), buffer.begin() + expected.size()), expected);
    EXPECT_EQ(buffer.back(), 0xEE);  // nothing written past the frame
  }
}

TEST(Frame, EncodeRejectsWhatItCannotEncode) {
  const auto payload = bytes_of("abc");
  EXPECT_THROW(encode(kFlagPing | kFlagPong, 1, 0, payload), std::invalid_argument);
  for (int bit = 2; bit < 8; ++bit) {
    EXPECT_THROW(encode(static_cast<uint8_t>(1u << bit), 1, 0, payload), std::invalid_argument);
  }
  std::vector<uint8_t> small(encoded_size(payload.size()) - 1);
  EXPECT_THROW(encode_into(small, 0, 1, 0, payload), std::length_error);
  const std::vector<uint8_t> huge(kHardMaxPayload + 1);
  EXPECT_THROW(encode(0, 1, 0, huge), std::length_error);
}

TEST(Frame, DecodesGoodFramesBackToBackInOneChunk) {
  std::mt19937 rng(22);
  std::vector<uint8_t> stream;
  std::vector<std::vector<uint8_t>> payloads;
  for (uint32_t i = 0; i < 6; ++i) {
    payloads.push_back(random_bytes(rng, i * 100));
    append(stream, reference_frame(static_cast<uint8_t>(i % 3), 1000 + i, i, payloads.back()));
  }
  const Recorder r = decode_whole(stream);
  ASSERT_FALSE(r.malformed);
  ASSERT_EQ(r.frames.size(), 6u);
  size_t offset = 0;
  for (uint32_t i = 0; i < 6; ++i) {
    const auto& f = r.frames[i];
    EXPECT_EQ(f.header.flags, i % 3);
    EXPECT_EQ(f.header.ping(), i % 3 == 1);
    EXPECT_EQ(f.header.pong(), i % 3 == 2);
    EXPECT_EQ(f.header.length, i * 100);
    EXPECT_EQ(f.header.stream, 1000 + i);
    EXPECT_EQ(f.header.hop, i);
    EXPECT_TRUE(std::equal(f.raw.begin(), f.raw.end(), stream.begin() + offset));
    EXPECT_EQ(f.payload, payloads[i]);
    ASSERT_TRUE(f.verdict);
    EXPECT_TRUE(f.verdict->ok);
    const uint32_t trailer = wire::load_be32(stream.data() + offset + kHeaderSize + i * 100);
    EXPECT_EQ(f.verdict->received_crc, trailer);
    EXPECT_EQ(f.verdict->computed_crc, trailer);
    offset += encoded_size(i * 100);
  }
}

TEST(Frame, ZeroLengthPayloadHasNoPayloadEvents) {
  const Recorder r = decode_whole(reference_frame(kFlagPong, 9, 0, {}));
  ASSERT_EQ(r.frames.size(), 1u);
  EXPECT_EQ(r.frames[0].payload_events, 0u);
  ASSERT_TRUE(r.frames[0].verdict);
  EXPECT_TRUE(r.frames[0].verdict->ok);
}

TEST(Frame, CorruptTrailerReportsBothCrcs) {
  auto frame = reference_frame(0, 3, 0, bytes_of("payload"));
  const uint32_t good = wire::load_be32(frame.data() + frame.size() - 4);
  frame.back() ^= 0x01;
  const Recorder r = decode_whole(frame);
  ASSERT_EQ(r.frames.size(), 1u);
  ASSERT_TRUE(r.frames[0].verdict);
  EXPECT_FALSE(r.frames[0].verdict->ok);
  EXPECT_EQ(r.frames[0].verdict->computed_crc, good);
  EXPECT_EQ(r.frames[0].verdict->received_crc, good ^ 1u);
}

void expect_malformed(const std::vector<uint8_t>& frame, Malformed reason, const std::string& name,
                      uint32_t max_payload = kMaxFrame) {
  // Whole, and with the header cut at every byte: one report, no header, no payload, no verdict.
  for (size_t cut = 0; cut <= kHeaderSize; ++cut) {
    Decoder decoder(max_payload);
    Recorder r;
    const std::span<const uint8_t> all(frame);
    r.chunk = all.first(cut);
    size_t consumed = decoder.feed(r.chunk, r);
    r.chunk = all.subspan(cut);
    consumed += decoder.feed(r.chunk, r);
    ASSERT_EQ(r.malformed_events, 1u) << name << " cut " << cut;
    EXPECT_EQ(*r.malformed, reason) << name << " cut " << cut;
    EXPECT_TRUE(r.frames.empty()) << name << " cut " << cut;
    EXPECT_TRUE(decoder.failed()) << name << " cut " << cut;
    EXPECT_EQ(consumed, kHeaderSize) << name << " cut " << cut;
  }
}

TEST(Frame, EveryMalformedHeaderIsReportedWithItsReason) {
  const auto good = reference_frame(0, 1, 0, bytes_of("abc"));
  for (int value = 0; value < 256; ++value) {
    auto frame = good;
    if (value != kMagic0) {
      frame[0] = static_cast<uint8_t>(value);
      expect_malformed(frame, Malformed::bad_magic, "magic[0] " + std::to_string(value));
    }
    frame = good;
    if (value != kMagic1) {
      frame[1] = static_cast<uint8_t>(value);
      expect_malformed(frame, Malformed::bad_magic, "magic[1] " + std::to_string(value));
    }
    frame = good;
    if (value != kVersion) {
      frame[2] = static_cast<uint8_t>(value);
      expect_malformed(frame, Malformed::bad_version, "version " + std::to_string(value));
    }
  }
  for (int bit = 2; bit < 8; ++bit) {
    for (int defined : {0, int{kFlagPing}, int{kFlagPong}}) {
      auto frame = good;
      frame[3] = static_cast<uint8_t>(defined | 1u << bit);
      expect_malformed(frame, Malformed::reserved_flags, "reserved bit " + std::to_string(bit));
    }
  }
  auto frame = good;
  frame[3] = kFlagPing | kFlagPong;
  expect_malformed(frame, Malformed::ping_and_pong, "PING|PONG");
}

TEST(Frame, ReasonsHaveDistinctMessages) {
  std::set<std::string> messages;
  for (Malformed m : {Malformed::bad_magic, Malformed::bad_version, Malformed::reserved_flags,
                      Malformed::ping_and_pong, Malformed::length_over_limit}) {
    messages.insert(to_string(m));
  }
  EXPECT_EQ(messages.size(), 5u);
}

std::vector<uint8_t> header_with_length(uint32_t length) {
  std::vector<uint8_t> header(kHeaderSize);
  write_header(Header{0, length, 1, 0}, std::span<uint8_t, kHeaderSize>(header));
  return header;
}

TEST(Frame, LengthLimits) {
  const auto frame = reference_frame(0, 1, 0, std::vector<uint8_t>(100, 1));
  const Recorder exact = decode_whole(frame, 100);  // exactly max_frame is allowed
  ASSERT_FALSE(exact.malformed);
  ASSERT_EQ(exact.frames.size(), 1u);
  ASSERT_TRUE(exact.frames[0].verdict);
  EXPECT_TRUE(exact.frames[0].verdict->ok);
  expect_malformed(frame, Malformed::length_over_limit, "max_frame 99", 99);
  expect_malformed(header_with_length(1), Malformed::length_over_limit, "max_frame 0", 0);
  // The 16 MiB hard limit holds whatever max_frame says; the header alone decides.
  expect_malformed(header_with_length(kHardMaxPayload + 1), Malformed::length_over_limit,
                   "hard limit + 1", UINT32_MAX);
  expect_malformed(header_with_length(UINT32_MAX), Malformed::length_over_limit, "length 2^32-1",
                   UINT32_MAX);
  const Recorder hard = decode_whole(header_with_length(kHardMaxPayload), UINT32_MAX);
  EXPECT_FALSE(hard.malformed);
  ASSERT_EQ(hard.frames.size(), 1u);
  EXPECT_EQ(hard.frames[0].header.length, kHardMaxPayload);
}

TEST(Frame, DecoderStopsConsumingAfterMalformed) {
  auto stream = reference_frame(0, 1, 0, bytes_of("x"));
  stream[0] = 0;
  const auto next = reference_frame(0, 2, 0, bytes_of("y"));
  append(stream, next);
  Decoder decoder(kMaxFrame);
  Recorder r;
  r.chunk = stream;
  EXPECT_EQ(decoder.feed(r.chunk, r), kHeaderSize);
  EXPECT_TRUE(decoder.failed());
  r.chunk = next;
  EXPECT_EQ(decoder.feed(r.chunk, r), 0u);
  EXPECT_TRUE(r.frames.empty());
  EXPECT_EQ(r.malformed_events, 1u);
}

TEST(Frame, FrameBoundaryIsTracked) {
  const auto frame = reference_frame(0, 1, 0, bytes_of("hello"));
  for (size_t cut = 0; cut <= frame.size(); ++cut) {
    Decoder decoder(kMaxFrame);
    Recorder r;
    r.chunk = std::span<const uint8_t>(frame).first(cut);
    decoder.feed(r.chunk, r);
    EXPECT_EQ(decoder.at_frame_boundary(), cut == 0 || cut == frame.size()) << cut;
  }
}

// A stream with good frames of several sizes and flags, a corrupt one in the middle, zero-length
// frames, and a truncated frame at the end.
std::vector<uint8_t> mixed_stream() {
  std::mt19937 rng(23);
  std::vector<uint8_t> stream;
  append(stream, reference_frame(kFlagPing, 1, 0, {}));
  append(stream, reference_frame(0, 2, 0, random_bytes(rng, 1)));
  append(stream, reference_frame(kFlagPong, 3, 9, random_bytes(rng, 7)));
  auto corrupt = reference_frame(0, 4, 0, random_bytes(rng, 40));
  corrupt[kHeaderSize + 17] ^= 0x20;
  append(stream, corrupt);
  append(stream, reference_frame(0, 5, 0, random_bytes(rng, 64)));
  append(stream, reference_frame(kFlagPong, 6, 0, {}));
  const auto truncated = reference_frame(0, 7, 0, random_bytes(rng, 30));
  stream.insert(stream.end(), truncated.begin(), truncated.end() - 6);
  return stream;
}

TEST(Frame, SplitAtEveryByteBoundaryGivesTheSameEvents) {
  const auto stream = mixed_stream();
  const Recorder whole = decode_whole(stream);
  // The stream's own story, checked once: six verdicts, the fourth corrupt, a pending seventh.
  ASSERT_EQ(whole.frames.size(), 7u);
  for (size_t i = 0; i < 6; ++i) {
    ASSERT_TRUE(whole.frames[i].verdict) << i;
    EXPECT_EQ(whole.frames[i].verdict->ok, i != 3) << i;
  }
  EXPECT_FALSE(whole.frames[6].verdict);
  EXPECT_EQ(whole.frames[6].payload.size(), 30u - 2);
  for (size_t cut = 0; cut <= stream.size(); ++cut) {
    expect_same_events(decode_cut(stream, {cut}), whole, "cut " + std::to_string(cut));
  }
  std::vector<size_t> every_byte;
  for (size_t cut = 1; cut < stream.size(); ++cut) every_byte.push_back(cut);
  expect_same_events(decode_cut(stream, every_byte), whole, "one byte at a time");
}

TEST(Frame, RandomMultiSplitsGiveTheSameEvents) {
  const auto stream = mixed_stream();
  const Recorder whole = decode_whole(stream);
  std::mt19937 rng(24);
  for (int trial = 0; trial < 500; ++trial) {
    std::set<size_t> cut_set;
    const size_t count = 1 + rng() % 40;
    for (size_t i = 0; i < count; ++i) cut_set.insert(rng() % (stream.size() + 1));
    const std::vector<size_t> cuts(cut_set.begin(), cut_set.end());
    expect_same_events(decode_cut(stream, cuts), whole, "trial " + std::to_string(trial));
  }
}

// What a single flipped bit must do to a PING with `length` payload bytes under max_frame 1 MiB.
// Every outcome is "detected": the frame is never reported good.
enum class Outcome { malformed, corrupt, incomplete };

struct Expected {
  Outcome outcome;
  Malformed reason{};
};

Expected expected_for_bit_flip(size_t bit, uint32_t length) {
  const size_t byte = bit / 8;
  const unsigned bit_in_byte = bit % 8;
  if (byte < 2) return {Outcome::malformed, Malformed::bad_magic};
  if (byte == 2) return {Outcome::malformed, Malformed::bad_version};
  if (byte == kFlagsOffset) {
    if (bit_in_byte == 0) return {Outcome::corrupt};  // PING cleared: well-formed, wrong CRC
    if (bit_in_byte == 1) return {Outcome::malformed, Malformed::ping_and_pong};
    return {Outcome::malformed, Malformed::reserved_flags};
  }
  if (byte >= kLengthOffset && byte < kLengthOffset + 4) {
    const uint32_t flipped = length ^ (1u << (8 * (kLengthOffset + 3 - byte) + bit_in_byte));
    if (flipped > kMaxFrame) return {Outcome::malformed, Malformed::length_over_limit};
    // Longer: the decoder waits for bytes that never come. Shorter: the CRC is checked at the
    // wrong place and fails.
    return {flipped > length ? Outcome::incomplete : Outcome::corrupt};
  }
  return {Outcome::corrupt};  // stream, hop, payload, trailer
}

TEST(Frame, EverySingleBitErrorIsDetected) {
  std::mt19937 rng(25);
  for (uint32_t length : {0u, 1u, 13u, 200u, 300u}) {
    const auto good = reference_frame(kFlagPing, 77, 5, random_bytes(rng, length));
    ASSERT_TRUE(decode_whole(good).frames.at(0).verdict->ok);
    for (size_t bit = 0; bit < good.size() * 8; ++bit) {
      auto bad = good;
      bad[bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
      const Recorder r = decode_whole(bad);
      const Expected expected = expected_for_bit_flip(bit, length);
      const std::string where = "length " + std::to_string(length) + " bit " + std::to_string(bit);
      switch (expected.outcome) {
        case Outcome::malformed:
          ASSERT_TRUE(r.malformed) << where;
          EXPECT_EQ(*r.malformed, expected.reason) << where;
          EXPECT_TRUE(r.frames.empty()) << where;
          break;
        case Outcome::corrupt:
          ASSERT_FALSE(r.frames.empty()) << where;
          ASSERT_TRUE(r.frames[0].verdict) << where;
          EXPECT_FALSE(r.frames[0].verdict->ok) << where;
          break;
        case Outcome::incomplete:
          EXPECT_FALSE(r.malformed) << where;
          ASSERT_EQ(r.frames.size(), 1u) << where;
          EXPECT_FALSE(r.frames[0].verdict) << where;
          break;
      }
    }
  }
}

// A cut-through proxy built on the decoder as the dataplane uses it: forwards the stamped header
// and the payload spans as they come, and at the verdict the incrementally updated trailer. Corrupt
// frames are forwarded too (on_corrupt: count), so the far side's check can be tested.
struct StampingProxy {
  uint32_t node_id;
  std::vector<uint8_t> out;
  size_t corrupt = 0;

  void on_header(const Header&, std::span<const uint8_t, kHeaderSize> raw) {
    const auto header = stamped_header(raw, node_id);
    out.insert(out.end(), header.begin(), header.end());
  }
  void on_payload(std::span<const uint8_t> bytes) {
    out.insert(out.end(), bytes.begin(), bytes.end());
  }
  void on_verdict(const Header& h, const Verdict& v) {
    if (!v.ok) ++corrupt;
    uint8_t trailer[kTrailerSize];
    wire::store_be32(trailer, stamped_trailer(v.received_crc, h.length, h.hop, node_id));
    out.insert(out.end(), trailer, trailer + kTrailerSize);
  }
  void on_malformed(Malformed) { ADD_FAILURE() << "unexpected malformed header"; }
};

std::vector<uint8_t> proxy(const std::vector<uint8_t>& stream, uint32_t node_id, size_t chunk) {
  Decoder decoder(kMaxFrame);
  StampingProxy p{node_id, {}, 0};
  const std::span<const uint8_t> all(stream);
  for (size_t pos = 0; pos < stream.size(); pos += chunk) {
    decoder.feed(all.subspan(pos, std::min(chunk, stream.size() - pos)), p);
  }
  return p.out;
}

TEST(Frame, StampedFramesVerifyWithTheNewHop) {
  std::mt19937 rng(26);
  std::vector<uint8_t> stream;
  std::vector<std::vector<uint8_t>> payloads;
  const std::vector<uint32_t> lengths = {0, 1, 5, 255, 256, 3000, 70000};
  for (uint32_t length : lengths) {
    payloads.push_back(random_bytes(rng, length));
    append(stream,
           reference_frame(kFlagPing, length, static_cast<uint32_t>(rng()), payloads.back()));
  }
  for (size_t chunk : {1u, 7u, 1500u, 100000u}) {
    const auto stamped = proxy(stream, 0xC0FFEE01, chunk);
    // The stamped stream is what the format says a frame with hop 0xC0FFEE01 is, byte for byte.
    std::vector<uint8_t> expected;
    for (size_t i = 0; i < lengths.size(); ++i) {
      append(expected, reference_frame(kFlagPing, lengths[i], 0xC0FFEE01, payloads[i]));
    }
    EXPECT_EQ(stamped, expected) << "chunk " << chunk;
    // And a fresh decoder accepts every frame with the new hop.
    const Recorder r = decode_whole(stamped);
    ASSERT_EQ(r.frames.size(), lengths.size());
    for (const auto& f : r.frames) {
      EXPECT_EQ(f.header.hop, 0xC0FFEE01u);
      ASSERT_TRUE(f.verdict);
      EXPECT_TRUE(f.verdict->ok);
    }
  }
}

// Damage that happened before the stamp survives it: the stamped frame fails the far side's check,
// by exactly the same CRC difference as before the stamp (the update never launders).
TEST(Frame, CorruptedThenStampedFrameDoesNotVerify) {
  std::mt19937 rng(27);
  for (int trial = 0; trial < 300; ++trial) {
    const uint32_t length = rng() % 2000;
    auto frame = reference_frame(0, 5, static_cast<uint32_t>(rng()), random_bytes(rng, length));
    // Anywhere but magic, version, flags and length (which would make it malformed or misframed).
    const size_t target_bytes = frame.size() - kStreamOffset;
    frame[kStreamOffset + rng() % target_bytes] ^= static_cast<uint8_t>(1u << (rng() % 8));
    const Recorder before = decode_whole(frame);
    ASSERT_TRUE(before.frames.at(0).verdict);
    ASSERT_FALSE(before.frames[0].verdict->ok) << trial;
    const auto stamped = proxy(frame, 7, 1 + rng() % 100);
    const Recorder after = decode_whole(stamped);
    ASSERT_EQ(after.frames.size(), 1u);
    ASSERT_TRUE(after.frames[0].verdict);
    EXPECT_FALSE(after.frames[0].verdict->ok) << trial;
    EXPECT_EQ(after.frames[0].header.hop, 7u);
    EXPECT_EQ(after.frames[0].verdict->received_crc ^ after.frames[0].verdict->computed_crc,
              before.frames[0].verdict->received_crc ^ before.frames[0].verdict->computed_crc)
        << trial;
  }
}

TEST(Frame, StampedTrailerDependsOnlyOnTheHopChange) {
  // Stamping the hop a frame already carries changes nothing; stamping and stamping back restores.
  const uint32_t crc = 0x12345678;
  EXPECT_EQ(stamped_trailer(crc, 100, 42, 42), crc);
  EXPECT_EQ(stamped_trailer(stamped_trailer(crc, 100, 0, 42), 100, 42, 0), crc);
  EXPECT_NE(stamped_trailer(crc, 100, 0, 42), crc);
}

}  // namespace
}  // namespace weir::frame
