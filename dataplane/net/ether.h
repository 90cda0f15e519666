// Ethernet II header (RFC 894 frames IPv4 this way): destination, source, EtherType. No 802.1Q
// tag: Weir's ports are untagged.
//
// Every header view in dataplane/net/ follows one pattern. A view wraps a span of packet bytes
// starting at its header; `parse` returns nullopt unless the span holds the fixed part of the
// header, so no accessor can read past the end. Accessors take and return host-order values and
// do the big-endian conversion themselves. Basic*View<uint8_t> can write; Basic*View<const
// uint8_t> (the Const* aliases) can only read.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <type_traits>

#include "common/net/address.h"
#include "common/wire/byte_order.h"

namespace weir::net {

template <typename Byte>
class BasicEthernetView {
  static_assert(std::is_same_v<std::remove_const_t<Byte>, uint8_t>);
  static constexpr bool kWritable = !std::is_const_v<Byte>;

 public:
  static constexpr size_t kSize = 14;

  static std::optional<BasicEthernetView> parse(std::span<Byte> frame) {
    if (frame.size() < kSize) return std::nullopt;
    return BasicEthernetView(frame);
  }

  MacAddress destination() const { return MacAddress::load(bytes_.data()); }
  MacAddress source() const { return MacAddress::load(bytes_.data() + 6); }
  uint16_t ether_type() const { return wire::load_be16(bytes_.data() + 12); }

  // The frame as given to parse, and what follows the header (up to the end of that span).
  std::span<Byte> bytes() const { return bytes_; }
  std::span<Byte> payload() const { return bytes_.subspan(kSize); }

  void set_destination(const MacAddress& mac) requires kWritable { mac.store(bytes_.data()); }
  void set_source(const MacAddress& mac) requires kWritable { mac.store(bytes_.data() + 6); }
  void set_ether_type(uint16_t type) requires kWritable {
    wire::store_be16(bytes_.data() + 12, type);
  }

 private:
  explicit BasicEthernetView(std::span<Byte> bytes) : bytes_(bytes) {}
  std::span<Byte> bytes_;
};

using EthernetView = BasicEthernetView<uint8_t>;
using ConstEthernetView = BasicEthernetView<const uint8_t>;

}  // namespace weir::net
