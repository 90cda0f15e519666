// Link and network addresses as strong types, so a MAC, an IPv4 address and a plain integer can
// never be swapped by accident. Ipv4Address holds the address in host order; the only way to or
// from wire bytes is load/store, which are big-endian (RFC 791 3.1: "network byte order").
#pragma once

#include <array>
#include <compare>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>

#include "common/wire/byte_order.h"

namespace weir::net {

class MacAddress {
 public:
  static constexpr size_t kSize = 6;

  constexpr MacAddress() = default;  // 00:00:00:00:00:00
  constexpr explicit MacAddress(const std::array<uint8_t, kSize>& octets) : octets_(octets) {}

  static constexpr MacAddress broadcast() {
    return MacAddress({0xff, 0xff, 0xff, 0xff, 0xff, 0xff});
  }

  // Reads/writes the six octets at `p` (in transmission order); the caller guarantees the room.
  // Through a local array: a loop between `p` and octets_ themselves, which the compiler cannot
  // prove apart, was copied byte by byte (some 40 instructions a frame on the ACK path,
  // callgrind); between a local and `p` the six bytes merge into two moves.
  static MacAddress load(const uint8_t* p) {
    std::array<uint8_t, kSize> octets;
    for (size_t i = 0; i < kSize; ++i) octets[i] = p[i];
    return MacAddress(octets);
  }
  void store(uint8_t* p) const {
    const std::array<uint8_t, kSize> octets = octets_;
    for (size_t i = 0; i < kSize; ++i) p[i] = octets[i];
  }

  constexpr const std::array<uint8_t, kSize>& octets() const { return octets_; }
  constexpr bool is_broadcast() const { return *this == broadcast(); }
  // IEEE 802 individual/group bit: the least significant bit of the first octet.
  constexpr bool is_multicast() const { return (octets_[0] & 0x01) != 0; }
  constexpr bool is_zero() const { return *this == MacAddress(); }

  // "aa:bb:cc:dd:ee:ff": six two-digit hex octets separated by ':' (either case).
  static std::optional<MacAddress> parse(std::string_view text) {
    if (text.size() != 17) return std::nullopt;
    MacAddress mac;
    for (size_t i = 0; i < kSize; ++i) {
      if (i > 0 && text[3 * i - 1] != ':') return std::nullopt;
      const int high = hex_digit(text[3 * i]);
      const int low = hex_digit(text[3 * i + 1]);
      if (high < 0 || low < 0) return std::nullopt;
      mac.octets_[i] = static_cast<uint8_t>(high << 4 | low);
    }
    return mac;
  }

  std::string to_string() const {
    char text[18];
    std::snprintf(text, sizeof text, "%02x:%02x:%02x:%02x:%02x:%02x", octets_[0], octets_[1],
                  octets_[2], octets_[3], octets_[4], octets_[5]);
    return text;
  }

  friend constexpr bool operator==(const MacAddress&, const MacAddress&) = default;

 private:
  static constexpr int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  }

  std::array<uint8_t, kSize> octets_{};
};

class Ipv4Address {
 public:
  static constexpr size_t kSize = 4;

  constexpr Ipv4Address() = default;  // 0.0.0.0
  constexpr explicit Ipv4Address(uint32_t host_order) : value_(host_order) {}

  static constexpr Ipv4Address from_octets(uint8_t a, uint8_t b, uint8_t c, uint8_t d) {
    return Ipv4Address(uint32_t{a} << 24 | uint32_t{b} << 16 | uint32_t{c} << 8 | uint32_t{d});
  }
  // Reads/writes four bytes in network order at `p`; the caller guarantees the room.
  static Ipv4Address load(const uint8_t* p) { return Ipv4Address(wire::load_be32(p)); }
  void store(uint8_t* p) const { wire::store_be32(p, value_); }

  std::array<uint8_t, kSize> network_bytes() const {
    std::array<uint8_t, kSize> bytes{};
    store(bytes.data());
    return bytes;
  }

  constexpr uint32_t value() const { return value_; }  // host order

  // Strict dotted quad: exactly four decimal octets 0-255, no sign, no spaces, and no leading
  // zeros (inet_aton would read "010" as octal 8; refusing it removes the ambiguity).
  static constexpr std::optional<Ipv4Address> parse(std::string_view text) {
    uint32_t value = 0;
    size_t position = 0;
    for (int octet = 0; octet < 4; ++octet) {
      if (octet > 0) {
        if (position >= text.size() || text[position] != '.') return std::nullopt;
        ++position;
      }
      const size_t start = position;
      uint32_t number = 0;
      while (position < text.size() && text[position] >= '0' && text[position] <= '9' &&
             position - start < 3) {
        number = number * 10 + static_cast<uint32_t>(text[position] - '0');
        ++position;
      }
      const size_t digits = position - start;
      if (digits == 0 || number > 255 || (digits > 1 && text[start] == '0')) return std::nullopt;
      value = value << 8 | number;
    }
    if (position != text.size()) return std::nullopt;
    return Ipv4Address(value);
  }

  std::string to_string() const {
    char text[16];
    std::snprintf(text, sizeof text, "%u.%u.%u.%u", value_ >> 24, (value_ >> 16) & 0xff,
                  (value_ >> 8) & 0xff, value_ & 0xff);
    return text;
  }

  friend constexpr auto operator<=>(const Ipv4Address&, const Ipv4Address&) = default;

 private:
  uint32_t value_ = 0;
};

}  // namespace weir::net
