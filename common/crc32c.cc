#include "common/crc32c.h"

#include <immintrin.h>
#include <isa-l/crc.h>

#include <algorithm>
#include <array>
#include <cassert>
#include <cstring>

namespace weir {
namespace {

// Representation used throughout: a polynomial of degree < 32 in a uint32_t, reflected as the CRC
// register holds it, so bit 31 is the coefficient of x^0 and bit 0 that of x^31.
constexpr uint32_t kPolynomial = 0x82F63B78u;  // P(x) without its x^32 term, reflected
constexpr uint32_t kOne = 1u << 31;            // x^0

// a * b mod P, one bit of a at a time. Used at compile time for the power table; at run time too
// on targets without carry-less multiply.
constexpr uint32_t multiply_bitwise(uint32_t a, uint32_t b) {
  uint32_t product = 0;
  for (uint32_t bit = kOne; bit != 0; bit >>= 1) {
    if (a & bit) product ^= b;
    b = (b & 1) ? (b >> 1) ^ kPolynomial : b >> 1;  // b *= x
  }
  return product;
}

uint32_t multiply(uint32_t a, uint32_t b) {
  return crc32c_detail::cpu_has_clmul() ? crc32c_detail::multiply_clmul(a, b)
                                        : multiply_bitwise(a, b);
}

// kPowers[j] = x^(2^j) mod P, by repeated squaring at compile time. A shift by d bytes multiplies
// by x^(8d); bit i of d selects x^(2^(i+3)) = kPowers[i + 3], so a 64-bit d needs j up to 66.
constexpr std::array<uint32_t, 67> make_powers() {
  std::array<uint32_t, 67> powers{};
  powers[0] = kOne >> 1;  // x^1
  for (size_t j = 1; j < powers.size(); ++j)
    powers[j] = multiply_bitwise(powers[j - 1], powers[j - 1]);
  return powers;
}

constexpr std::array<uint32_t, 67> kPowers = make_powers();

// x^32 mod P is P without its leading term: a cheap check that the table and the reflected
// representation agree.
static_assert(kPowers[5] == kPolynomial);

// Below this many bytes the CRC32 instruction in a plain loop beats ISA-L, which costs ~18 ns
// before the first byte and switches to its fast folding only at 256 bytes (measured on the CI
// machine: 64 B 7 ns vs 21 ns, 192 B 21 ns vs 43 ns, 256 B 28 ns vs 22 ns). The hop stamp hashes
// 4 + 4 bytes, so this is most of its cost.
constexpr size_t kSmallInput = 256;

// Continues a raw register over n bytes: short inputs with the CRC32 instruction, the rest with
// ISA-L.
uint32_t extend_register(uint32_t reg, const void* data, size_t n) {
  const auto* p = static_cast<const unsigned char*>(data);
  if (n < kSmallInput && crc32c_detail::cpu_has_crc32_instruction())
    return crc32c_detail::extend_register_sse42(reg, p, n);
  return crc32c_detail::extend_register_isal(reg, p, n);
}

}  // namespace

// The build's -march need not include SSE 4.2 or PCLMULQDQ (the default, x86-64-v2, has the first
// but not the second), so the functions that use them are compiled for those features alone and
// chosen at run time, as ISA-L chooses its own. The answers are computed once.
namespace crc32c_detail {

bool cpu_has_crc32_instruction() {
  static const bool has = (__builtin_cpu_init(), __builtin_cpu_supports("sse4.2"));
  return has;
}

bool cpu_has_clmul() {
  static const bool has =
      (__builtin_cpu_init(), __builtin_cpu_supports("sse4.2") && __builtin_cpu_supports("pclmul"));
  return has;
}

// The 64-bit carry-less product of two reflected 32-bit values holds x^(62-i) at bit i; shifted
// left once it is a reflected 64-bit polynomial (bit i = x^(63-i)) whose low half is the
// coefficients of x^63..x^32 and whose high half those of x^31..x^0. The CRC32 instruction on a
// zero register maps a reflected 32-bit V to V * x^32 mod P (Intel SDM, CRC32), which reduces the
// low half; the high half is already reduced.
__attribute__((target("sse4.2,pclmul"))) uint32_t multiply_clmul(uint32_t a, uint32_t b) {
  const __m128i product = _mm_clmulepi64_si128(_mm_cvtsi32_si128(static_cast<int>(a)),
                                               _mm_cvtsi32_si128(static_cast<int>(b)), 0x00);
  const uint64_t reflected = static_cast<uint64_t>(_mm_cvtsi128_si64(product)) << 1;
  return _mm_crc32_u32(0, static_cast<uint32_t>(reflected)) ^
         static_cast<uint32_t>(reflected >> 32);
}

uint32_t multiply_portable(uint32_t a, uint32_t b) {
  return multiply_bitwise(a, b);
}

__attribute__((target("sse4.2"))) uint32_t extend_register_sse42(uint32_t reg,
                                                                 const unsigned char* p, size_t n) {
  uint64_t reg64 = reg;
  for (; n >= 8; p += 8, n -= 8) {
    uint64_t word;
    std::memcpy(&word, p, 8);  // little-endian: the first byte is the first fed, as CRC32 wants
    reg64 = _mm_crc32_u64(reg64, word);
  }
  reg = static_cast<uint32_t>(reg64);
  if (n >= 4) {
    uint32_t word;
    std::memcpy(&word, p, 4);
    reg = _mm_crc32_u32(reg, word);
    p += 4;
    n -= 4;
  }
  for (; n > 0; ++p, --n) reg = _mm_crc32_u8(reg, *p);
  return reg;
}

uint32_t extend_register_isal(uint32_t reg, const unsigned char* p, size_t n) {
  // ISA-L takes a non-const pointer but only reads through it; it takes an int length, so large
  // buffers go in pieces.
  auto* bytes = const_cast<unsigned char*>(p);
  constexpr size_t kMaxPiece = size_t{1} << 30;
  while (n > 0) {
    const size_t piece = std::min(n, kMaxPiece);
    reg = crc32_iscsi(bytes, static_cast<int>(piece), reg);
    bytes += piece;
    n -= piece;
  }
  return reg;
}

}  // namespace crc32c_detail

uint32_t crc32c(const void* data, size_t n) {
  return crc32c_extend(0, data, n);
}

uint32_t crc32c_extend(uint32_t crc, const void* data, size_t n) {
  // A finished CRC is the register complemented; complementing again resumes it.
  return ~extend_register(~crc, data, n);
}

uint32_t crc32c_shift(uint32_t reg, uint64_t zero_bytes) {
  for (size_t j = 3; zero_bytes != 0; zero_bytes >>= 1, ++j) {
    if (zero_bytes & 1) reg = multiply(kPowers[j], reg);
  }
  return reg;
}

uint32_t crc32c_update(uint32_t message_crc, uint64_t message_length, uint64_t offset,
                       const void* old_bytes, const void* new_bytes, size_t k) {
  assert(k <= message_length && offset <= message_length - k);
  // Between two messages of one length the initial value and the final XOR cancel, leaving the
  // linear part: CRC(M) ^ CRC(M') = reg(M ^ M'), reg with a zero initial register. M ^ M' is zero
  // outside [offset, offset + k): leading zeros leave a zero register at zero, the trailing ones
  // are the shift. And reg(old ^ new) = reg(old) ^ reg(new), so no buffer for the XOR is needed.
  const uint32_t delta = extend_register(0, old_bytes, k) ^ extend_register(0, new_bytes, k);
  return message_crc ^ crc32c_shift(delta, message_length - offset - k);
}

}  // namespace weir
