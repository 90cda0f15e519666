// CRC-32C (Castagnoli): reflected polynomial 0x82F63B78, initial value and final XOR 0xFFFFFFFF
// (RFC 3720 B.4). Hardware accelerated through ISA-L's crc32_iscsi, which works on the raw
// register (no final XOR): the standard CRC is ~crc32_iscsi(p, n, 0xFFFFFFFF).
#pragma once

#include <cstddef>
#include <cstdint>

namespace weir {

// The CRC-32C of n bytes.
uint32_t crc32c(const void* data, size_t n);

// Continues a finished CRC over more bytes: crc32c_extend(crc32c(a), b) == crc32c(a ++ b).
uint32_t crc32c_extend(uint32_t crc, const void* data, size_t n);

// Streaming: feed arbitrary chunks, read the CRC of everything fed so far.
class Crc32cStream {
 public:
  void update(const void* data, size_t n);
  uint32_t value() const { return ~reg_; }
  void reset() { reg_ = 0xFFFFFFFFu; }

 private:
  uint32_t reg_ = 0xFFFFFFFFu;
};

// Multiplies a raw CRC register by x^(8 * zero_bytes) mod P: the effect of appending that many
// zero bytes to a message under a zero initial value. O(log zero_bytes).
uint32_t crc32c_shift(uint32_t reg, uint64_t zero_bytes);

// Incremental update (CRC linearity). A message of `message_length` bytes has CRC `message_crc`;
// the k bytes at `offset` change from `old_bytes` to `new_bytes`. Returns the CRC of the changed
// message, reading only the changed bytes: CRC(M') = CRC(M) ^ lin(delta) * x^(8 * following bytes).
// Applied to a corrupt message's CRC it yields a CRC that is still wrong for the changed message:
// the update never vouches for bytes it did not read.
uint32_t crc32c_update(uint32_t message_crc, uint64_t message_length, uint64_t offset,
                       const void* old_bytes, const void* new_bytes, size_t k);

}  // namespace weir
