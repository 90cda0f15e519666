#include "common/crc32c.h"
#include "tests/support/crc32c_reference.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace weir {
namespace {

using test::bitwise_crc32c;

std::vector<uint8_t> random_bytes(std::mt19937& rng, size_t n) {
  std::vector<uint8_t> bytes(n);
  for (auto& b : bytes) b = static_cast<uint8_t>(rng());
  return bytes;
}

TEST(Crc32c, CheckValue) {
  const std::string check = "123456789";
  EXPECT_EQ(crc32c(check.data(), check.size()), 0xE3069283u);
}

// RFC 3720 appendix B.4.
TEST(Crc32c, Rfc3720Vectors) {
  std::vector<uint8_t> data(32, 0x00);
  EXPECT_EQ(crc32c(data.data(), data.size()), 0x8A9136AAu);
  std::fill(data.begin(), data.end(), 0xFF);
  EXPECT_EQ(crc32c(data.data(), data.size()), 0x62A8AB43u);
  for (size_t i = 0; i < 32; ++i) data[i] = static_cast<uint8_t>(i);
  EXPECT_EQ(crc32c(data.data(), data.size()), 0x46DD794Eu);
  for (size_t i = 0; i < 32; ++i) data[i] = static_cast<uint8_t>(31 - i);
  EXPECT_EQ(crc32c(data.data(), data.size()), 0x113FDB5Cu);
}

TEST(Crc32c, EmptyInput) {
  EXPECT_EQ(crc32c(nullptr, 0), 0u);
}

TEST(Crc32c, RandomLengthsAtEveryAlignmentMatchTheBitwiseReference) {
  std::mt19937 rng(1);
  std::vector<uint8_t> buffer = random_bytes(rng, 65536 + 16);
  // Every length up to 300 covers both code paths (a CRC32-instruction loop below 256 bytes, ISA-L
  // above) and every tail length of each; then sizes up to 64 KiB.
  std::vector<size_t> lengths;
  for (size_t length = 0; length <= 300; ++length) lengths.push_back(length);
  for (size_t length : {511, 512, 1023, 1024, 4095, 4096, 4097, 65535, 65536}) {
    lengths.push_back(length);
  }
  for (int i = 0; i < 24; ++i) lengths.push_back(rng() % 65537);
  for (size_t length : lengths) {
    for (size_t alignment = 0; alignment < 16; ++alignment) {
      const uint8_t* p = buffer.data() + alignment;
      ASSERT_EQ(crc32c(p, length), bitwise_crc32c(p, length))
          << "length " << length << " alignment " << alignment;
    }
  }
}

TEST(Crc32c, RandomChunkSplitsEqualOneShot) {
  std::mt19937 rng(2);
  for (int trial = 0; trial < 200; ++trial) {
    const auto data = random_bytes(rng, rng() % 20000);
    const uint32_t expected = bitwise_crc32c(data.data(), data.size());
    Crc32cStream stream;
    size_t done = 0;
    while (done < data.size()) {
      // Mostly small pieces, some past the 256-byte switch to ISA-L, some empty.
      const size_t chunk = std::min<size_t>(data.size() - done, rng() % (trial % 2 ? 40 : 700));
      stream.update(data.data() + done, chunk);
      done += chunk;
    }
    ASSERT_EQ(stream.value(), expected) << trial;
    // extend is the same continuation for finished CRCs.
    const size_t cut = data.empty() ? 0 : rng() % data.size();
    ASSERT_EQ(crc32c_extend(crc32c(data.data(), cut), data.data() + cut, data.size() - cut),
              expected);
  }
}

TEST(Crc32c, StreamStartsEmptyAndResets) {
  Crc32cStream stream;
  EXPECT_EQ(stream.value(), 0u);  // the CRC of no bytes: 0xFFFFFFFF ^ 0xFFFFFFFF
  stream.update("junk", 4);
  stream.reset();
  stream.update("123456789", 9);
  EXPECT_EQ(stream.value(), 0xE3069283u);
}

// The raw register stepped over zero bytes with no init/xorout: the definition of the shift.
uint32_t bitwise_shift(uint32_t reg, uint64_t zero_bytes) {
  for (uint64_t i = 0; i < zero_bytes * 8; ++i)
    reg = (reg & 1) ? (reg >> 1) ^ 0x82F63B78u : reg >> 1;
  return reg;
}

TEST(Crc32c, ShiftEqualsAppendingZeros) {
  std::mt19937 rng(3);
  std::vector<uint64_t> counts = {0, 1, 2, 3, 4, 5, 7, 8, 17, 100, 4096, 65535, 1000003};
  for (int i = 0; i < 200; ++i) counts.push_back(rng() % 3000);
  for (uint64_t zeros : counts) {
    for (uint32_t reg : {0u, 1u, 0x80000000u, 0xFFFFFFFFu, static_cast<uint32_t>(rng())}) {
      ASSERT_EQ(crc32c_shift(reg, zeros), bitwise_shift(reg, zeros))
          << "reg " << reg << " zeros " << zeros;
    }
  }
}

// Past what a bitwise loop can check: shifts compose, x^(8a) * x^(8b) = x^(8(a+b)), up to 2^62.
TEST(Crc32c, ShiftsComposeForHugeCounts) {
  std::mt19937_64 rng(6);
  for (int trial = 0; trial < 1000; ++trial) {
    const uint64_t a = rng() >> (2 + rng() % 60);
    const uint64_t b = rng() >> (2 + rng() % 60);
    const uint32_t reg = static_cast<uint32_t>(rng());
    ASSERT_EQ(crc32c_shift(crc32c_shift(reg, a), b), crc32c_shift(reg, a + b)) << a << " " << b;
  }
}

// Each implementation the run-time dispatch chooses from (common/crc32c.h, crc32c_detail), against
// the bitwise definitions: the portable ones on every machine, the hardware ones where the CPU has
// the instructions, whatever -march the test was built for.
void expect_extend_matches_reference(uint32_t (*extend)(uint32_t, const unsigned char*, size_t)) {
  std::mt19937 rng(8);
  const std::vector<uint8_t> buffer = random_bytes(rng, 4096 + 16);
  for (size_t length = 0; length <= 4096; length += (length < 300 ? 1 : 509)) {
    for (size_t alignment = 0; alignment < 16; alignment += 3) {
      const uint8_t* p = buffer.data() + alignment;
      ASSERT_EQ(~extend(0xFFFFFFFFu, p, length), bitwise_crc32c(p, length))
          << "length " << length << " alignment " << alignment;
    }
  }
}

// multiply(reg, x^(8k)) is reg after k zero bytes; x^(8k) is x^0 (bit 31) after k zero bytes.
void expect_multiply_matches_reference(uint32_t (*multiply)(uint32_t, uint32_t)) {
  std::mt19937 rng(9);
  for (uint64_t k = 0; k < 70; ++k) {
    const uint32_t power = bitwise_shift(0x80000000u, k);
    for (uint32_t reg : {0u, 1u, 0x80000000u, 0xFFFFFFFFu, static_cast<uint32_t>(rng())}) {
      ASSERT_EQ(multiply(reg, power), bitwise_shift(reg, k)) << "reg " << reg << " k " << k;
      ASSERT_EQ(multiply(power, reg), bitwise_shift(reg, k)) << "reg " << reg << " k " << k;
    }
  }
}

TEST(Crc32c, PortableImplementationsMatchTheDefinition) {
  expect_extend_matches_reference(crc32c_detail::extend_register_isal);
  expect_multiply_matches_reference(crc32c_detail::multiply_portable);
}

TEST(Crc32c, CrcInstructionLoopMatchesTheDefinition) {
  if (!crc32c_detail::cpu_has_crc32_instruction()) GTEST_SKIP() << "this CPU has no SSE 4.2";
  expect_extend_matches_reference(crc32c_detail::extend_register_sse42);
}

TEST(Crc32c, CarryLessMultiplyMatchesTheDefinitionAndThePortableOne) {
  if (!crc32c_detail::cpu_has_clmul()) GTEST_SKIP() << "this CPU has no PCLMULQDQ";
  expect_multiply_matches_reference(crc32c_detail::multiply_clmul);
  std::mt19937 rng(10);
  for (int i = 0; i < 10000; ++i) {
    const uint32_t a = static_cast<uint32_t>(rng()), b = static_cast<uint32_t>(rng());
    ASSERT_EQ(crc32c_detail::multiply_clmul(a, b), crc32c_detail::multiply_portable(a, b))
        << a << " * " << b;
  }
}

TEST(Crc32c, IncrementalUpdateEqualsRecomputation) {
  std::mt19937 rng(4);
  for (int trial = 0; trial < 2000; ++trial) {
    auto message = random_bytes(rng, 1 + rng() % 5000);
    size_t k = 1 + rng() % std::min<size_t>(message.size(), trial % 3 ? 16 : 600);
    if (trial % 50 == 2) k = message.size();  // the whole message changes
    size_t offset = rng() % (message.size() - k + 1);
    if (trial % 10 == 0) offset = 0;                   // at the very start
    if (trial % 10 == 1) offset = message.size() - k;  // at the very end
    const uint32_t before = bitwise_crc32c(message.data(), message.size());
    std::vector<uint8_t> old_bytes(message.begin() + offset, message.begin() + offset + k);
    const auto new_bytes = random_bytes(rng, k);
    std::memcpy(message.data() + offset, new_bytes.data(), k);
    const uint32_t updated =
        crc32c_update(before, message.size(), offset, old_bytes.data(), new_bytes.data(), k);
    ASSERT_EQ(updated, bitwise_crc32c(message.data(), message.size()))
        << "trial " << trial << " length " << message.size() << " offset " << offset << " k " << k;
  }
}

// The update adjusts a CRC for one change and for nothing else: a CRC that was wrong for its
// message stays wrong by exactly as much (the syndrome received ^ actual is preserved).
TEST(Crc32c, IncrementalUpdateNeverRepairsEarlierCorruption) {
  std::mt19937 rng(5);
  for (int trial = 0; trial < 500; ++trial) {
    auto message = random_bytes(rng, 16 + rng() % 3000);
    const uint32_t good_crc = bitwise_crc32c(message.data(), message.size());
    message[rng() % message.size()] ^= static_cast<uint8_t>(1u << (rng() % 8));  // damage
    const uint32_t syndrome = good_crc ^ bitwise_crc32c(message.data(), message.size());
    ASSERT_NE(syndrome, 0u);  // CRC-32C detects every single-bit error
    const uint8_t old_hop[4] = {message[12], message[13], message[14], message[15]};
    const auto new_hop = random_bytes(rng, 4);
    std::memcpy(message.data() + 12, new_hop.data(), 4);
    const uint32_t stamped =
        crc32c_update(good_crc, message.size(), 12, old_hop, new_hop.data(), 4);
    ASSERT_EQ(stamped ^ bitwise_crc32c(message.data(), message.size()), syndrome) << trial;
  }
}

}  // namespace
}  // namespace weir
