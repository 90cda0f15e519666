// CRC-32C from its definition, bit by bit (reflected polynomial 0x82F63B78, initial value and final
// XOR 0xFFFFFFFF): slow and obviously right, the independent reference the tests and the fuzz
// target check the accelerated code against.
#pragma once

#include <cstddef>
#include <cstdint>

namespace weir::test {

inline uint32_t bitwise_crc32c(const uint8_t* p, size_t n) {
  uint32_t crc = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; ++i) {
    crc ^= p[i];
    for (int bit = 0; bit < 8; ++bit) crc = (crc & 1) ? (crc >> 1) ^ 0x82F63B78u : crc >> 1;
  }
  return ~crc;
}

}  // namespace weir::test
