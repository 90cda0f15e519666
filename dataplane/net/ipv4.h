// IPv4 header (RFC 791 section 3.1):
//   0 version|IHL | 1 type of service | 2 total length | 4 identification
//   6 flags (reserved, DF, MF)|fragment offset | 8 TTL | 9 protocol | 10 header checksum
//   12 source | 16 destination | 20 options, padded to IHL * 4 bytes
// `parse` guarantees the 20-byte fixed part; IHL and total length are the sender's claims, so the
// accessors that depend on them (options, payload, checksum) check them against the span and say
// so rather than read past it. See ether.h for the view conventions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <type_traits>

#include "common/net/address.h"
#include "common/wire/byte_order.h"
#include "dataplane/net/checksum.h"
#include "dataplane/net/protocol_numbers.h"

namespace weir::net {

template <typename Byte>
class BasicIpv4View {
  static_assert(std::is_same_v<std::remove_const_t<Byte>, uint8_t>);
  static constexpr bool kWritable = !std::is_const_v<Byte>;

  static constexpr uint16_t kReservedFlag = 0x8000;
  static constexpr uint16_t kDontFragmentFlag = 0x4000;
  static constexpr uint16_t kMoreFragmentsFlag = 0x2000;
  static constexpr uint16_t kFragmentOffsetMask = 0x1fff;

 public:
  static constexpr size_t kMinSize = 20;
  static constexpr size_t kMaxSize = 60;  // IHL is four bits of 32-bit words

  static std::optional<BasicIpv4View> parse(std::span<Byte> packet) {
    if (packet.size() < kMinSize) return std::nullopt;
    return BasicIpv4View(packet);
  }

  uint8_t version() const { return bytes_[0] >> 4; }
  uint8_t ihl() const { return bytes_[0] & 0x0f; }  // header length in 32-bit words
  size_t header_length() const { return size_t{ihl()} * 4; }
  uint8_t tos() const { return bytes_[1]; }
  uint16_t total_length() const { return wire::load_be16(bytes_.data() + 2); }
  uint16_t identification() const { return wire::load_be16(bytes_.data() + 4); }
  bool reserved_flag() const { return (flags_fragment() & kReservedFlag) != 0; }
  bool dont_fragment() const { return (flags_fragment() & kDontFragmentFlag) != 0; }
  bool more_fragments() const { return (flags_fragment() & kMoreFragmentsFlag) != 0; }
  uint16_t fragment_offset() const {
    return flags_fragment() & kFragmentOffsetMask;
  }  // 8-byte units
  uint8_t ttl() const { return bytes_[8]; }
  uint8_t protocol() const { return bytes_[9]; }
  uint16_t checksum() const { return wire::load_be16(bytes_.data() + 10); }
  Ipv4Address source() const { return Ipv4Address::load(bytes_.data() + 12); }
  Ipv4Address destination() const { return Ipv4Address::load(bytes_.data() + 16); }

  // RFC 791: a datagram is a fragment unless it is whole, i.e. MF clear and offset zero.
  bool is_fragment() const { return more_fragments() || fragment_offset() != 0; }

  // IHL is at least 5 (RFC 791: "the minimum value for a correct header is 5") and the header it
  // claims lies inside the span.
  bool header_fits() const { return ihl() >= 5 && header_length() <= bytes_.size(); }

  // The options (IHL * 4 - 20 bytes), or nullopt unless header_fits().
  std::optional<std::span<Byte>> options() const {
    if (!header_fits()) return std::nullopt;
    return bytes_.subspan(kMinSize, header_length() - kMinSize);
  }

  // The bytes between the header and the total length, or nullopt unless header_fits() and the
  // total length covers the header and lies inside the span (bytes past it are link padding).
  std::optional<std::span<Byte>> payload() const {
    if (!header_fits() || total_length() < header_length() || total_length() > bytes_.size()) {
      return std::nullopt;
    }
    return bytes_.subspan(header_length(), total_length() - header_length());
  }

  // The header checksum (RFC 791 section 3.1, "Header Checksum") verifies; false when the header
  // does not fit.
  bool checksum_valid() const {
    return header_fits() && internet_checksum(bytes_.first(header_length())) == 0;
  }

  std::span<Byte> bytes() const { return bytes_; }

  void set_version(uint8_t version) requires kWritable {
    bytes_[0] = static_cast<uint8_t>(version << 4 | (bytes_[0] & 0x0f));
  }
  void set_ihl(uint8_t words) requires kWritable {
    bytes_[0] = static_cast<uint8_t>((bytes_[0] & 0xf0) | (words & 0x0f));
  }
  void set_tos(uint8_t tos) requires kWritable { bytes_[1] = tos; }
  void set_total_length(uint16_t length) requires kWritable {
    wire::store_be16(bytes_.data() + 2, length);
  }
  void set_identification(uint16_t id) requires kWritable {
    wire::store_be16(bytes_.data() + 4, id);
  }
  void set_dont_fragment(bool on) requires kWritable { set_flag(kDontFragmentFlag, on); }
  void set_more_fragments(bool on) requires kWritable { set_flag(kMoreFragmentsFlag, on); }
  void set_fragment_offset(uint16_t units) requires kWritable {
    set_flags_fragment(static_cast<uint16_t>((flags_fragment() & ~kFragmentOffsetMask) |
                                             (units & kFragmentOffsetMask)));
  }
  void set_ttl(uint8_t ttl) requires kWritable { bytes_[8] = ttl; }
  void set_protocol(uint8_t protocol) requires kWritable { bytes_[9] = protocol; }
  void set_checksum(uint16_t checksum) requires kWritable {
    wire::store_be16(bytes_.data() + 10, checksum);
  }
  void set_source(Ipv4Address address) requires kWritable { address.store(bytes_.data() + 12); }
  void set_destination(Ipv4Address address) requires kWritable {
    address.store(bytes_.data() + 16);
  }

  // Recomputes the header checksum over IHL * 4 bytes. Returns false, changing nothing, when the
  // header does not fit.
  bool update_checksum() requires kWritable {
    if (!header_fits()) return false;
    set_checksum(0);
    set_checksum(internet_checksum(bytes_.first(header_length())));
    return true;
  }

 private:
  explicit BasicIpv4View(std::span<Byte> bytes) : bytes_(bytes) {}

  uint16_t flags_fragment() const { return wire::load_be16(bytes_.data() + 6); }
  void set_flags_fragment(uint16_t value) requires kWritable {
    wire::store_be16(bytes_.data() + 6, value);
  }
  void set_flag(uint16_t flag, bool on) requires kWritable {
    set_flags_fragment(
        static_cast<uint16_t>(on ? flags_fragment() | flag : flags_fragment() & ~flag));
  }

  std::span<Byte> bytes_;
};

using Ipv4View = BasicIpv4View<uint8_t>;
using ConstIpv4View = BasicIpv4View<const uint8_t>;

}  // namespace weir::net
