// ARP (RFC 826) for IPv4 over Ethernet: the 28-byte packet
//   0 htype | 2 ptype | 4 hlen | 5 plen | 6 oper | 8 sha | 14 spa | 18 tha | 24 tpa
// The address fields sit at these offsets only when hlen = 6 and plen = 4; RFC 826's reception
// algorithm checks the hardware and protocol types first, so callers check is_ethernet_ipv4()
// before trusting the addresses. See ether.h for the view conventions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <type_traits>

#include "common/net/address.h"
#include "dataplane/net/protocol_numbers.h"
#include "common/wire/byte_order.h"

namespace weir::net {

template <typename Byte>
class BasicArpView {
  static_assert(std::is_same_v<std::remove_const_t<Byte>, uint8_t>);
  static constexpr bool kWritable = !std::is_const_v<Byte>;

 public:
  static constexpr size_t kSize = 28;

  static std::optional<BasicArpView> parse(std::span<Byte> packet) {
    if (packet.size() < kSize) return std::nullopt;
    return BasicArpView(packet);
  }

  uint16_t hardware_type() const { return wire::load_be16(bytes_.data()); }
  uint16_t protocol_type() const { return wire::load_be16(bytes_.data() + 2); }
  uint8_t hardware_length() const { return bytes_[4]; }
  uint8_t protocol_length() const { return bytes_[5]; }
  uint16_t operation() const { return wire::load_be16(bytes_.data() + 6); }
  MacAddress sender_mac() const { return MacAddress::load(bytes_.data() + 8); }
  Ipv4Address sender_ip() const { return Ipv4Address::load(bytes_.data() + 14); }
  MacAddress target_mac() const { return MacAddress::load(bytes_.data() + 18); }
  Ipv4Address target_ip() const { return Ipv4Address::load(bytes_.data() + 24); }

  // RFC 826 packet reception: Ethernet hardware, IPv4 protocol, and the lengths that go with them.
  bool is_ethernet_ipv4() const {
    return hardware_type() == kArpHardwareEthernet && protocol_type() == kEtherTypeIpv4 &&
           hardware_length() == MacAddress::kSize && protocol_length() == Ipv4Address::kSize;
  }

  std::span<Byte> bytes() const { return bytes_; }

  // Writes htype, ptype, hlen and plen for IPv4 over Ethernet.
  void set_ethernet_ipv4() requires kWritable {
    set_hardware_type(kArpHardwareEthernet);
    set_protocol_type(kEtherTypeIpv4);  // ar$pro is an EtherType
    set_hardware_length(MacAddress::kSize);
    set_protocol_length(Ipv4Address::kSize);
  }
  void set_hardware_type(uint16_t type) requires kWritable {
    wire::store_be16(bytes_.data(), type);
  }
  void set_protocol_type(uint16_t type) requires kWritable {
    wire::store_be16(bytes_.data() + 2, type);
  }
  void set_hardware_length(uint8_t length) requires kWritable { bytes_[4] = length; }
  void set_protocol_length(uint8_t length) requires kWritable { bytes_[5] = length; }
  void set_operation(uint16_t operation) requires kWritable {
    wire::store_be16(bytes_.data() + 6, operation);
  }
  void set_sender_mac(const MacAddress& mac) requires kWritable { mac.store(bytes_.data() + 8); }
  void set_sender_ip(Ipv4Address address) requires kWritable { address.store(bytes_.data() + 14); }
  void set_target_mac(const MacAddress& mac) requires kWritable { mac.store(bytes_.data() + 18); }
  void set_target_ip(Ipv4Address address) requires kWritable { address.store(bytes_.data() + 24); }

 private:
  explicit BasicArpView(std::span<Byte> bytes) : bytes_(bytes) {}
  std::span<Byte> bytes_;
};

using ArpView = BasicArpView<uint8_t>;
using ConstArpView = BasicArpView<const uint8_t>;

}  // namespace weir::net
