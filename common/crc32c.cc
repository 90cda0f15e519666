#include "common/crc32c.h"

#include <isa-l/crc.h>

#include <algorithm>
#include <array>
#include <cassert>

namespace weir {
namespace {

constexpr uint32_t kPolynomial = 0x82F63B78u;  // reflected Castagnoli polynomial

// Product of two polynomials modulo P in the reflected representation (bit 31 is x^0).
constexpr uint32_t multiply_mod_p(uint32_t a, uint32_t b) {
  uint32_t product = 0;
  for (uint32_t bit = 1u << 31; bit != 0; bit >>= 1) {
    if (a & bit) product ^= b;
    b = (b & 1) ? (b >> 1) ^ kPolynomial : b >> 1;  // b *= x
  }
  return product;
}

// kPowers[k] = x^(2^k) mod P, computed at compile time by repeated squaring. A shift by d bytes
// is x^(8d): bit j of d selects kPowers[j + 3], so a 64-bit d needs k up to 66.
constexpr std::array<uint32_t, 67> make_powers() {
  std::array<uint32_t, 67> powers{};
  powers[0] = 1u << 30;  // x^1
  for (size_t k = 1; k < powers.size(); ++k)
    powers[k] = multiply_mod_p(powers[k - 1], powers[k - 1]);
  return powers;
}

constexpr std::array<uint32_t, 67> kPowers = make_powers();

}  // namespace

uint32_t crc32c(const void* data, size_t n) {
  return ~crc32_iscsi(static_cast<unsigned char*>(const_cast<void*>(data)), static_cast<int>(n),
                      0xFFFFFFFFu);
}

uint32_t crc32c_extend(uint32_t crc, const void* data, size_t n) {
  uint32_t reg = ~crc;
  const auto* p = static_cast<const unsigned char*>(data);
  // crc32_iscsi takes an int length; feed very large buffers in pieces.
  while (n > 0) {
    const size_t chunk = std::min<size_t>(n, 1u << 30);
    reg = crc32_iscsi(const_cast<unsigned char*>(p), static_cast<int>(chunk), reg);
    p += chunk;
    n -= chunk;
  }
  return ~reg;
}

void Crc32cStream::update(const void* data, size_t n) {
  reg_ = ~crc32c_extend(~reg_, data, n);
}

uint32_t crc32c_shift(uint32_t reg, uint64_t zero_bytes) {
  // x^(8d) = product of x^(2^k) over the set bits k of 8d, i.e. bits of d shifted by 3.
  size_t k = 3;
  while (zero_bytes != 0) {
    if (zero_bytes & 1) reg = multiply_mod_p(kPowers[k], reg);
    zero_bytes >>= 1;
    ++k;
  }
  return reg;
}

uint32_t crc32c_update(uint32_t message_crc, uint64_t message_length, uint64_t offset,
                       const void* old_bytes, const void* new_bytes, size_t k) {
  assert(offset + k <= message_length);
  const auto* old_p = static_cast<const uint8_t*>(old_bytes);
  const auto* new_p = static_cast<const uint8_t*>(new_bytes);
  // The CRC register is linear in the message once the initial value and final XOR cancel, which
  // they do between two messages of one length: CRC(M') ^ CRC(M) = lin(M' ^ M). The difference is
  // zero outside [offset, offset + k); leading zeros do not move a zero register, trailing ones
  // multiply by x^8 each.
  uint32_t delta_reg = 0;
  std::array<uint8_t, 64> delta{};
  for (size_t done = 0; done < k;) {
    const size_t chunk = std::min(delta.size(), k - done);
    for (size_t i = 0; i < chunk; ++i) delta[i] = old_p[done + i] ^ new_p[done + i];
    delta_reg = crc32_iscsi(delta.data(), static_cast<int>(chunk), delta_reg);
    done += chunk;
  }
  return message_crc ^ crc32c_shift(delta_reg, message_length - offset - k);
}

}  // namespace weir
