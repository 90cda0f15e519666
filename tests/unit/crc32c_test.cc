#include "common/crc32c.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace weir {
namespace {

// The definition, bit by bit: an independent reference for the accelerated code.
uint32_t bitwise_crc32c(const uint8_t* p, size_t n) {
  uint32_t crc = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; ++i) {
    crc ^= p[i];
    for (int bit = 0; bit < 8; ++bit) crc = (crc & 1) ? (crc >> 1) ^ 0x82F63B78u : crc >> 1;
  }
  return ~crc;
}

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
  std::vector<size_t> lengths = {0, 1, 2, 3, 7, 8, 15, 16, 31, 63, 64, 255, 256, 1023, 4096, 65536};
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
    const uint32_t one_shot = crc32c(data.data(), data.size());
    Crc32cStream stream;
    size_t done = 0;
    while (done < data.size()) {
      const size_t chunk = std::min<size_t>(data.size() - done, rng() % 300);
      stream.update(data.data() + done, chunk);
      done += chunk;
    }
    ASSERT_EQ(stream.value(), one_shot) << trial;
    // extend is the same continuation for finished CRCs.
    const size_t cut = data.empty() ? 0 : rng() % data.size();
    ASSERT_EQ(crc32c_extend(crc32c(data.data(), cut), data.data() + cut, data.size() - cut),
              one_shot);
  }
}

TEST(Crc32c, ShiftEqualsAppendingZeros) {
  std::mt19937 rng(3);
  for (uint64_t zeros : {0ull, 1ull, 2ull, 3ull, 17ull, 100ull, 4096ull, 65535ull, 1000003ull}) {
    const uint32_t reg = rng();
    std::vector<uint8_t> zero_bytes(zeros, 0);
    // A raw register continued over zero bytes with no init/xorout is the definition of the shift.
    uint32_t expected = reg;
    for (uint64_t i = 0; i < zeros; ++i) {
      for (int bit = 0; bit < 8; ++bit)
        expected = (expected & 1) ? (expected >> 1) ^ 0x82F63B78u : expected >> 1;
    }
    EXPECT_EQ(crc32c_shift(reg, zeros), expected) << zeros;
  }
}

TEST(Crc32c, IncrementalUpdateEqualsRecomputation) {
  std::mt19937 rng(4);
  for (int trial = 0; trial < 2000; ++trial) {
    auto message = random_bytes(rng, 1 + rng() % 5000);
    const size_t k = 1 + rng() % std::min<size_t>(message.size(), 80);
    size_t offset = rng() % (message.size() - k + 1);
    if (trial % 10 == 0) offset = 0;                   // at the very start
    if (trial % 10 == 1) offset = message.size() - k;  // at the very end
    const uint32_t before = crc32c(message.data(), message.size());
    std::vector<uint8_t> old_bytes(message.begin() + offset, message.begin() + offset + k);
    const auto new_bytes = random_bytes(rng, k);
    std::memcpy(message.data() + offset, new_bytes.data(), k);
    const uint32_t updated =
        crc32c_update(before, message.size(), offset, old_bytes.data(), new_bytes.data(), k);
    ASSERT_EQ(updated, crc32c(message.data(), message.size())) << trial;
  }
}

TEST(Crc32c, IncrementalUpdateNeverRepairsEarlierCorruption) {
  std::mt19937 rng(5);
  auto message = random_bytes(rng, 1000);
  const uint32_t good_crc = crc32c(message.data(), message.size());
  message[500] ^= 0x10;  // corrupted after the CRC was computed
  const uint8_t old_hop[4] = {message[12], message[13], message[14], message[15]};
  const uint8_t new_hop[4] = {0, 0, 0, 7};
  std::memcpy(message.data() + 12, new_hop, 4);
  const uint32_t stamped = crc32c_update(good_crc, message.size(), 12, old_hop, new_hop, 4);
  EXPECT_NE(stamped, crc32c(message.data(), message.size()));
}

}  // namespace
}  // namespace weir
