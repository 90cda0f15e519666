#include "dataplane/tcp/connection_table.h"

#include <immintrin.h>

#include <array>
#include <cstring>
#include <span>

#include "common/maglev.h"  // siphash24
#include "common/wire/byte_order.h"

namespace weir::tcp {

namespace {

__attribute__((target("aes,sse4.1"))) uint32_t aes_hash(const std::array<uint8_t, 48>& keys,
                                                        const FourTuple& t) {
  __m128i k[3];
  std::memcpy(k, keys.data(), sizeof k);
  __m128i block =
      _mm_set_epi32(0x77656972, static_cast<int>(uint32_t{t.local_port} << 16 | t.remote_port),
                    static_cast<int>(t.remote_address), static_cast<int>(t.local_address));
  block = _mm_xor_si128(block, k[0]);
  block = _mm_aesenc_si128(block, k[1]);
  block = _mm_aesenc_si128(block, k[2]);
  block = _mm_aesenc_si128(block, k[0]);
  return static_cast<uint32_t>(_mm_cvtsi128_si32(block));
}

}  // namespace

ConnectionTable::ConnectionTable(uint32_t max_connections, const Secret& secret)
    : max_connections_(max_connections == 0 ? 1 : max_connections), secret_(secret) {
  use_aes_ = __builtin_cpu_supports("aes");
  // Round keys from the secret through SipHash, so that no key byte is the secret itself.
  for (uint8_t i = 0; i < 6; ++i) {
    const std::array<uint8_t, 1> label = {i};
    const uint64_t word = maglev::siphash24(secret_, std::span<const uint8_t>(label));
    std::memcpy(aes_keys_.data() + 8 * i, &word, 8);
  }
  uint64_t capacity = 2;
  while (capacity < uint64_t{max_connections_} * 2) capacity *= 2;
  entries_.resize(capacity);
  mask_ = static_cast<uint32_t>(capacity - 1);
}

size_t ConnectionTable::bytes_per_connection() const {
  return entries_.size() * sizeof(Entry) / max_connections_;
}

uint32_t ConnectionTable::home(const FourTuple& t) const {
  if (use_aes_) return aes_hash(aes_keys_, t) & mask_;
  std::array<uint8_t, 12> key{};
  wire::store_be32(key.data(), t.local_address);
  wire::store_be32(key.data() + 4, t.remote_address);
  wire::store_be16(key.data() + 8, t.local_port);
  wire::store_be16(key.data() + 10, t.remote_port);
  return static_cast<uint32_t>(maglev::siphash24(secret_, std::span<const uint8_t>(key))) & mask_;
}

std::optional<ConnectionTable::Slot> ConnectionTable::find(const FourTuple& tuple) const {
  for (uint32_t i = home(tuple);; i = (i + 1) & mask_) {
    const Entry& entry = entries_[i];
    if (entry.slot == kEmpty) return std::nullopt;
    if (entry.tuple == tuple) return entry.slot;
  }
}

bool ConnectionTable::insert(const FourTuple& tuple, Slot slot) {
  if (size_ >= max_connections_) return false;
  for (uint32_t i = home(tuple);; i = (i + 1) & mask_) {
    Entry& entry = entries_[i];
    if (entry.slot == kEmpty) {
      entry = Entry{tuple, slot};
      ++size_;
      return true;
    }
    if (entry.tuple == tuple) return false;
  }
}

bool ConnectionTable::erase(const FourTuple& tuple) {
  uint32_t hole = home(tuple);
  for (;; hole = (hole + 1) & mask_) {
    if (entries_[hole].slot == kEmpty) return false;
    if (entries_[hole].tuple == tuple) break;
  }
  // Algorithm R: move later entries of the run back into the hole when their home position does
  // not lie cyclically in (hole, i]; they would otherwise become unreachable.
  for (uint32_t i = (hole + 1) & mask_; entries_[i].slot != kEmpty; i = (i + 1) & mask_) {
    const uint32_t h = home(entries_[i].tuple);
    const bool home_between = hole <= i ? (hole < h && h <= i) : (hole < h || h <= i);
    if (!home_between) {
      entries_[hole] = entries_[i];
      hole = i;
    }
  }
  entries_[hole] = Entry{};
  --size_;
  return true;
}

}  // namespace weir::tcp
