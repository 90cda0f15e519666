#include "common/frame.h"

#include <gtest/gtest.h>

#include <optional>
#include <random>
#include <string>
#include <vector>

namespace weir::frame {
namespace {

// Records what the decoder reported, reassembling payload spans.
struct Recorder {
  struct Frame {
    Header header;
    std::vector<uint8_t> payload;
    std::optional<Verdict> verdict;
  };
  std::vector<Frame> frames;
  std::optional<Malformed> malformed;

  void on_header(const Header& h, std::span<const uint8_t, kHeaderSize>) {
    frames.push_back({h, {}, {}});
  }
  void on_payload(std::span<const uint8_t> bytes) {
    frames.back().payload.insert(frames.back().payload.end(), bytes.begin(), bytes.end());
  }
  void on_verdict(const Header&, const Verdict& v) { frames.back().verdict = v; }
  void on_malformed(Malformed reason) { malformed = reason; }
};

std::vector<uint8_t> bytes_of(const std::string& s) {
  return {s.begin(), s.end()};
}

Recorder decode_whole(const std::vector<uint8_t>& stream, uint32_t max_payload = 1u << 20) {
  Decoder decoder(max_payload);
  Recorder recorder;
  decoder.feed(stream, recorder);
  return recorder;
}

TEST(Frame, EncodesTheDocumentedLayout) {
  const auto frame = encode(kFlagPing, 0x01020304, 0, bytes_of("hello"));
  const std::vector<uint8_t> header = {0x57, 0x46, 0x01, 0x01, 0, 0, 0, 5,
                                       0x01, 0x02, 0x03, 0x04, 0, 0, 0, 0};
  ASSERT_EQ(frame.size(), 16u + 5 + 4);
  EXPECT_EQ(std::vector<uint8_t>(frame.begin(), frame.begin() + 16), header);
  EXPECT_EQ(std::string(frame.begin() + 16, frame.begin() + 21), "hello");
  EXPECT_EQ(wire::load_be32(frame.data() + 21), crc32c(frame.data(), 21));
  // The worked example of docs/protocol.md, its CRC computed independently (bitwise, in Python).
  EXPECT_EQ(wire::load_be32(frame.data() + 21), 0x8AAF95C8u);
}

TEST(Frame, DecodesGoodFramesBackToBack) {
  std::vector<uint8_t> stream;
  for (uint32_t i = 0; i < 5; ++i) {
    const auto f = encode(i % 2 ? kFlagPong : 0, i, 0, std::vector<uint8_t>(i * 100, uint8_t(i)));
    stream.insert(stream.end(), f.begin(), f.end());
  }
  const Recorder r = decode_whole(stream);
  ASSERT_FALSE(r.malformed);
  ASSERT_EQ(r.frames.size(), 5u);
  for (uint32_t i = 0; i < 5; ++i) {
    EXPECT_EQ(r.frames[i].header.stream, i);
    EXPECT_EQ(r.frames[i].payload, std::vector<uint8_t>(i * 100, uint8_t(i)));
    ASSERT_TRUE(r.frames[i].verdict);
    EXPECT_TRUE(r.frames[i].verdict->ok);
  }
}

TEST(Frame, ZeroLengthPayload) {
  const Recorder r = decode_whole(encode(kFlagPing, 9, 0, {}));
  ASSERT_EQ(r.frames.size(), 1u);
  EXPECT_TRUE(r.frames[0].payload.empty());
  ASSERT_TRUE(r.frames[0].verdict);
  EXPECT_TRUE(r.frames[0].verdict->ok);
}

TEST(Frame, EveryMalformedHeaderIsReportedWithItsReason) {
  const auto good = encode(0, 1, 0, bytes_of("abc"));
  struct Case {
    const char* name;
    size_t offset;
    uint8_t value;
    Malformed reason;
  };
  const Case cases[] = {
      {"magic byte 0", 0, 0x58, Malformed::bad_magic},
      {"magic byte 1", 1, 0x00, Malformed::bad_magic},
      {"version 0", 2, 0, Malformed::bad_version},
      {"version 2", 2, 2, Malformed::bad_version},
      {"ping and pong", 3, 0x03, Malformed::ping_and_pong},
  };
  for (const Case& c : cases) {
    auto frame = good;
    frame[c.offset] = c.value;
    const Recorder r = decode_whole(frame);
    ASSERT_TRUE(r.malformed) << c.name;
    EXPECT_EQ(*r.malformed, c.reason) << c.name;
    EXPECT_TRUE(r.frames.empty()) << c.name;
  }
  for (int bit = 2; bit < 8; ++bit) {
    auto frame = good;
    frame[3] = static_cast<uint8_t>(1u << bit);
    const Recorder r = decode_whole(frame);
    ASSERT_TRUE(r.malformed) << bit;
    EXPECT_EQ(*r.malformed, Malformed::reserved_flags) << bit;
  }
}

TEST(Frame, LengthLimits) {
  const auto frame = encode(0, 1, 0, std::vector<uint8_t>(100, 1));
  EXPECT_FALSE(decode_whole(frame, 100).malformed);  // exactly max_frame is allowed
  const Recorder over = decode_whole(frame, 99);
  ASSERT_TRUE(over.malformed);
  EXPECT_EQ(*over.malformed, Malformed::length_over_limit);
  // The 16 MiB hard limit holds whatever max_frame says; only the header is needed to know.
  std::vector<uint8_t> header(kHeaderSize);
  write_header(Header{0, kHardMaxPayload + 1, 0, 0}, header.data());
  const Recorder hard = decode_whole(header, UINT32_MAX);
  ASSERT_TRUE(hard.malformed);
  EXPECT_EQ(*hard.malformed, Malformed::length_over_limit);
  write_header(Header{0, kHardMaxPayload, 0, 0}, header.data());
  EXPECT_FALSE(decode_whole(header, UINT32_MAX).malformed);
}

TEST(Frame, DecoderStopsConsumingAfterMalformed) {
  auto stream = encode(0, 1, 0, bytes_of("x"));
  stream[0] = 0;
  const auto next = encode(0, 2, 0, bytes_of("y"));
  stream.insert(stream.end(), next.begin(), next.end());
  Decoder decoder;
  Recorder r;
  EXPECT_EQ(decoder.feed(stream, r), kHeaderSize);
  EXPECT_TRUE(decoder.failed());
  EXPECT_EQ(decoder.feed(next, r), 0u);
  EXPECT_TRUE(r.frames.empty());
}

TEST(Frame, SplitAtEveryByteBoundaryGivesTheSameResult) {
  std::vector<uint8_t> stream;
  for (uint32_t len : {0u, 1u, 7u, 64u}) {
    const auto f = encode(kFlagPing, len, 0, std::vector<uint8_t>(len, uint8_t(len + 1)));
    stream.insert(stream.end(), f.begin(), f.end());
  }
  const Recorder whole = decode_whole(stream);
  for (size_t cut = 0; cut <= stream.size(); ++cut) {
    Decoder decoder;
    Recorder r;
    const std::span<const uint8_t> all(stream);
    EXPECT_EQ(decoder.feed(all.first(cut), r), cut);
    EXPECT_EQ(decoder.feed(all.subspan(cut), r), stream.size() - cut);
    ASSERT_EQ(r.frames.size(), whole.frames.size()) << cut;
    for (size_t i = 0; i < r.frames.size(); ++i) {
      EXPECT_EQ(r.frames[i].payload, whole.frames[i].payload) << cut;
      ASSERT_TRUE(r.frames[i].verdict) << cut;
      EXPECT_TRUE(r.frames[i].verdict->ok) << cut;
    }
    EXPECT_TRUE(decoder.at_frame_boundary());
  }
  // And one byte at a time.
  Decoder decoder;
  Recorder r;
  for (uint8_t b : stream) decoder.feed(std::span<const uint8_t>(&b, 1), r);
  ASSERT_EQ(r.frames.size(), whole.frames.size());
  for (size_t i = 0; i < r.frames.size(); ++i) {
    EXPECT_EQ(r.frames[i].payload, whole.frames[i].payload);
  }
}

TEST(Frame, EverySingleBitErrorIsDetected) {
  for (uint32_t len : {0u, 1u, 13u, 200u}) {
    const auto good = encode(kFlagPing, 77, 0, std::vector<uint8_t>(len, 0xA5));
    for (size_t bit = 0; bit < good.size() * 8; ++bit) {
      auto bad = good;
      bad[bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
      const Recorder r = decode_whole(bad);
      const bool malformed = r.malformed.has_value();
      const bool corrupt = !r.frames.empty() && r.frames[0].verdict && !r.frames[0].verdict->ok;
      // A flipped length bit may leave the frame incomplete: the decoder then waits for more bytes
      // and never reports the frame as good.
      const bool never_good = r.frames.empty() || !r.frames[0].verdict || !r.frames[0].verdict->ok;
      ASSERT_TRUE(never_good) << "len " << len << " bit " << bit;
      if (bit >= 32 && bit / 8 != 4 && bit / 8 != 5 && bit / 8 != 6 && bit / 8 != 7) {
        // Outside magic, version, flags and length, the header parses and the CRC must fail.
        ASSERT_TRUE(corrupt) << "len " << len << " bit " << bit;
      }
      if (bit < 16) {
        ASSERT_TRUE(malformed) << "magic bit " << bit;
      }
    }
  }
}

// Emits a frame as a stamping proxy would: header with the new hop, payload as received, and the
// trailer adjusted incrementally from the received one.
std::vector<uint8_t> stamp(const std::vector<uint8_t>& received, uint32_t node_id) {
  auto out = received;
  const uint32_t length = wire::load_be32(received.data() + 4);
  const uint32_t old_hop = wire::load_be32(received.data() + kHopOffset);
  const uint32_t received_crc = wire::load_be32(received.data() + kHeaderSize + length);
  wire::store_be32(out.data() + kHopOffset, node_id);
  wire::store_be32(out.data() + kHeaderSize + length,
                   stamped_trailer(received_crc, length, old_hop, node_id));
  return out;
}

TEST(Frame, StampedFrameVerifiesWithTheNewHop) {
  const auto received = encode(0, 5, 0, std::vector<uint8_t>(3000, 0x3C));
  const Recorder r = decode_whole(stamp(received, 7));
  ASSERT_EQ(r.frames.size(), 1u);
  EXPECT_EQ(r.frames[0].header.hop, 7u);
  ASSERT_TRUE(r.frames[0].verdict);
  EXPECT_TRUE(r.frames[0].verdict->ok);
}

TEST(Frame, CorruptedThenStampedFrameDoesNotVerify) {
  std::mt19937 rng(11);
  for (int trial = 0; trial < 200; ++trial) {
    auto frame = encode(0, 5, 0, std::vector<uint8_t>(1 + rng() % 2000, 0x3C));
    const size_t payload_length = frame.size() - kHeaderSize - kTrailerSize;
    frame[kHeaderSize + rng() % payload_length] ^= static_cast<uint8_t>(1u << (rng() % 8));
    const Recorder r = decode_whole(stamp(frame, 7));
    ASSERT_EQ(r.frames.size(), 1u);
    ASSERT_TRUE(r.frames[0].verdict);
    EXPECT_FALSE(r.frames[0].verdict->ok) << trial;
  }
}

TEST(Frame, MalformedReasonsHaveMessages) {
  for (Malformed m : {Malformed::bad_magic, Malformed::bad_version, Malformed::reserved_flags,
                      Malformed::ping_and_pong, Malformed::length_over_limit}) {
    EXPECT_GT(std::string(to_string(m)).size(), 5u) << static_cast<int>(m);
  }
}

}  // namespace
}  // namespace weir::frame
