// CRC-32C (Castagnoli): reflected polynomial 0x82F63B78, initial value and final XOR 0xFFFFFFFF
// (RFC 3720 B.4). Hardware accelerated on any -march: short inputs with the CRC32 instruction and
// shifts with PCLMULQDQ where the CPU has them (checked at run time), the rest through ISA-L's
// crc32_iscsi, which dispatches on the CPU itself. Both work on the raw register (no final XOR):
// the standard CRC is ~crc32_iscsi(p, n, 0xFFFFFFFF).
//
// Two kinds of value appear below. A *CRC* is the finished, standard value (what a frame trailer
// carries). A *register* is the raw linear remainder with no initial value and no final XOR; it is
// what crc32c_shift works on, because only the raw remainder is linear in the message.
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
  void update(const void* data, size_t n) { crc_ = crc32c_extend(crc_, data, n); }
  uint32_t value() const { return crc_; }
  void reset() { crc_ = 0; }

 private:
  uint32_t crc_ = 0;  // the CRC of the empty message
};

// Multiplies a raw register by x^(8 * zero_bytes) mod P: the register after `zero_bytes` zero
// bytes are appended to the message it stands for. O(log zero_bytes): one carry-less multiply per
// set bit of zero_bytes, by precomputed x^(2^j) mod P.
uint32_t crc32c_shift(uint32_t reg, uint64_t zero_bytes);

// Incremental update (CRC linearity). A message of `message_length` bytes has CRC `message_crc`;
// the k bytes at `offset` change from `old_bytes` to `new_bytes`. Returns the CRC of the changed
// message, reading only the 2k changed bytes, in O(k + log(message_length)):
//   CRC(M') = CRC(M) ^ reg(old ^ new) * x^(8 * (message_length - offset - k)) mod P.
// Applied to a corrupt message's CRC it yields a CRC that is still wrong for the changed message:
// the update never vouches for bytes it did not read.
// Precondition: offset + k <= message_length.
uint32_t crc32c_update(uint32_t message_crc, uint64_t message_length, uint64_t offset,
                       const void* old_bytes, const void* new_bytes, size_t k);

// The implementations the functions above choose between at run time, by what the CPU has rather
// than what the build's -march promises (docs/operations.md, "Installing"). Public so that the
// tests check each against the others on every machine; callers use the functions above.
namespace crc32c_detail {
bool cpu_has_crc32_instruction();  // SSE 4.2
bool cpu_has_clmul();              // PCLMULQDQ and SSE 4.2
// a * b mod P for raw registers: with PCLMULQDQ (only where cpu_has_clmul()), and bit by bit.
uint32_t multiply_clmul(uint32_t a, uint32_t b);
uint32_t multiply_portable(uint32_t a, uint32_t b);
// A raw register continued over n bytes: with the CRC32 instruction (only where
// cpu_has_crc32_instruction()), and with ISA-L, which dispatches on the CPU itself.
uint32_t extend_register_sse42(uint32_t reg, const unsigned char* p, size_t n);
uint32_t extend_register_isal(uint32_t reg, const unsigned char* p, size_t n);
}  // namespace crc32c_detail

}  // namespace weir
