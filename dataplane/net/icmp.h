// ICMP (RFC 792): 0 type | 1 code | 2 checksum | 4 rest of header | 8 data. For echo and echo
// reply the rest of header is identifier (4) and sequence number (6). The checksum covers the
// whole ICMP message, so a view's span must be exactly the message (the IPv4 payload, trimmed to
// the total length) for checksum_valid and update_checksum to mean anything. See ether.h for the
// view conventions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <type_traits>

#include "common/wire/byte_order.h"
#include "dataplane/net/checksum.h"

namespace weir::net {

template <typename Byte>
class BasicIcmpView {
  static_assert(std::is_same_v<std::remove_const_t<Byte>, uint8_t>);
  static constexpr bool kWritable = !std::is_const_v<Byte>;

 public:
  static constexpr size_t kSize = 8;
  // RFC 792 message types Weir answers or passes on.
  static constexpr uint8_t kEchoReply = 0;
  static constexpr uint8_t kDestinationUnreachable = 3;
  static constexpr uint8_t kEchoRequest = 8;
  static constexpr uint8_t kTimeExceeded = 11;
  static constexpr uint8_t kParameterProblem = 12;

  static std::optional<BasicIcmpView> parse(std::span<Byte> message) {
    if (message.size() < kSize) return std::nullopt;
    return BasicIcmpView(message);
  }

  uint8_t type() const { return bytes_[0]; }
  uint8_t code() const { return bytes_[1]; }
  uint16_t checksum() const { return wire::load_be16(bytes_.data() + 2); }
  uint32_t rest_of_header() const { return wire::load_be32(bytes_.data() + 4); }
  uint16_t identifier() const { return wire::load_be16(bytes_.data() + 4); }  // echo only
  uint16_t sequence() const { return wire::load_be16(bytes_.data() + 6); }    // echo only

  // Echo data, or for error messages the quoted IPv4 header and leading payload bytes.
  std::span<Byte> payload() const { return bytes_.subspan(kSize); }
  std::span<Byte> bytes() const { return bytes_; }

  bool checksum_valid() const { return internet_checksum(bytes_) == 0; }

  void set_type(uint8_t type) requires kWritable { bytes_[0] = type; }
  void set_code(uint8_t code) requires kWritable { bytes_[1] = code; }
  void set_checksum(uint16_t checksum) requires kWritable {
    wire::store_be16(bytes_.data() + 2, checksum);
  }
  void set_rest_of_header(uint32_t value) requires kWritable {
    wire::store_be32(bytes_.data() + 4, value);
  }
  void set_identifier(uint16_t id) requires kWritable { wire::store_be16(bytes_.data() + 4, id); }
  void set_sequence(uint16_t sequence) requires kWritable {
    wire::store_be16(bytes_.data() + 6, sequence);
  }
  // Recomputes the checksum over the whole span.
  void update_checksum() requires kWritable {
    set_checksum(0);
    set_checksum(internet_checksum(bytes_));
  }

 private:
  explicit BasicIcmpView(std::span<Byte> bytes) : bytes_(bytes) {}
  std::span<Byte> bytes_;
};

using IcmpView = BasicIcmpView<uint8_t>;
using ConstIcmpView = BasicIcmpView<const uint8_t>;

}  // namespace weir::net
