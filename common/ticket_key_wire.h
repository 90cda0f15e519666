// Session ticket keys as weir-control hands them to weir-tls-worker (docs/tls.md, "Session
// tickets"): one message per delivery on a SOCK_SEQPACKET socket pair, carrying the whole set,
// newest first, so a message that was never read is superseded by the next one. Shared by the
// producer (control/) and the consumer (tls/), which must not include each other.
//
//   "WTK1" | count (1 byte, 1..kAccepted) | count x (name 16 | aes 32 | hmac 32)
//
// The worker answers each message it applied with the newest key's name (16 bytes), so its sender
// knows which keys each worker encrypts with.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

namespace weir::ticket_keys {

// Tickets under the newest key are issued; the last kAccepted keys decrypt (HAProxy's convention).
inline constexpr size_t kAccepted = 3;

struct Key {
  std::array<uint8_t, 16> name{};
  std::array<uint8_t, 32> aes{};   // AES-256-CBC
  std::array<uint8_t, 32> hmac{};  // HMAC-SHA256
};

inline constexpr char kMagic[4] = {'W', 'T', 'K', '1'};
inline constexpr size_t kKeyBytes = 16 + 32 + 32;
inline constexpr size_t kMaxMessageBytes = sizeof kMagic + 1 + kAccepted * kKeyBytes;

// The message for `keys` (newest first; at most kAccepted are sent).
inline std::string encode(const std::vector<Key>& keys) {
  const size_t count = keys.size() < kAccepted ? keys.size() : kAccepted;
  std::string out(kMagic, sizeof kMagic);
  out.push_back(static_cast<char>(count));
  for (size_t i = 0; i < count; ++i) {
    out.append(reinterpret_cast<const char*>(keys[i].name.data()), keys[i].name.size());
    out.append(reinterpret_cast<const char*>(keys[i].aes.data()), keys[i].aes.size());
    out.append(reinterpret_cast<const char*>(keys[i].hmac.data()), keys[i].hmac.size());
  }
  return out;
}

// The keys of a message, newest first, or nothing if it is not exactly one well-formed message.
inline std::optional<std::vector<Key>> decode(const uint8_t* data, size_t size) {
  if (size < sizeof kMagic + 1 || std::memcmp(data, kMagic, sizeof kMagic) != 0)
    return std::nullopt;
  const size_t count = data[sizeof kMagic];
  if (count == 0 || count > kAccepted || size != sizeof kMagic + 1 + count * kKeyBytes)
    return std::nullopt;
  std::vector<Key> keys(count);
  const uint8_t* p = data + sizeof kMagic + 1;
  for (Key& key : keys) {
    std::memcpy(key.name.data(), p, key.name.size());
    std::memcpy(key.aes.data(), p + 16, key.aes.size());
    std::memcpy(key.hmac.data(), p + 48, key.hmac.size());
    p += kKeyBytes;
  }
  return keys;
}

}  // namespace weir::ticket_keys
