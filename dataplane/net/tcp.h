// TCP header (RFC 9293 section 3.1):
//   0 source port | 2 destination port | 4 sequence number | 8 acknowledgment number
//   12 data offset (4 bits)|reserved | 13 CWR ECE URG ACK PSH RST SYN FIN | 14 window
//   16 checksum | 18 urgent pointer | 20 options, padded to data offset * 4 bytes
// and its options (RFC 9293 section 3.2, RFC 7323, RFC 2018). `parse` guarantees the fixed 20
// bytes; the data offset is the sender's claim and is checked before options or payload are
// handed out. The view's span is the whole segment (the IPv4 payload), which the checksum covers.
// See ether.h for the view conventions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <type_traits>

#include "common/net/address.h"
#include "common/wire/byte_order.h"
#include "dataplane/net/checksum.h"
#include "dataplane/net/ipv4.h"

namespace weir::net {

// Control bits, by their position in byte 13 (RFC 9293 section 3.1; CWR and ECE from RFC 3168).
enum class TcpFlag : uint8_t {
  fin = 0x01,
  syn = 0x02,
  rst = 0x04,
  psh = 0x08,
  ack = 0x10,
  urg = 0x20,
  ece = 0x40,
  cwr = 0x80,
};

class TcpFlags {
 public:
  constexpr TcpFlags() = default;
  constexpr TcpFlags(TcpFlag flag) : bits_(static_cast<uint8_t>(flag)) {}  // NOLINT: implicit
  static constexpr TcpFlags from_bits(uint8_t bits) {
    TcpFlags flags;
    flags.bits_ = bits;
    return flags;
  }

  constexpr uint8_t bits() const { return bits_; }
  constexpr bool has(TcpFlag flag) const { return (bits_ & static_cast<uint8_t>(flag)) != 0; }
  constexpr bool empty() const { return bits_ == 0; }

  friend constexpr TcpFlags operator|(TcpFlags a, TcpFlags b) {
    return from_bits(a.bits_ | b.bits_);
  }
  friend constexpr bool operator==(TcpFlags, TcpFlags) = default;

 private:
  uint8_t bits_ = 0;
};

constexpr TcpFlags operator|(TcpFlag a, TcpFlag b) {
  return TcpFlags(a) | TcpFlags(b);
}

// Option kinds (IANA "TCP Option Kind Numbers"). Other values pass through the reader as
// unknown options, which RFC 9293 section 3.2 has receivers ignore, skipping them by length.
enum class TcpOptionKind : uint8_t {
  end_of_list = 0,     // RFC 9293 section 3.2
  nop = 1,             // RFC 9293 section 3.2
  mss = 2,             // RFC 9293 section 3.2, length 4
  window_scale = 3,    // RFC 7323 section 2.2, length 3
  sack_permitted = 4,  // RFC 2018 section 2, length 2
  sack = 5,            // RFC 2018 section 3, length 2 + 8n
  timestamps = 8,      // RFC 7323 section 3.2, length 10
};

// RFC 2018 section 3: a block of received data, [left edge, right edge).
struct SackBlock {
  uint32_t left = 0;
  uint32_t right = 0;
  friend constexpr bool operator==(const SackBlock&, const SackBlock&) = default;
};

// RFC 7323 section 3.2: TSval and TSecr.
struct TcpTimestamps {
  uint32_t value = 0;
  uint32_t echo_reply = 0;
  friend constexpr bool operator==(const TcpTimestamps&, const TcpTimestamps&) = default;
};

// 40 option bytes hold at most four SACK blocks (RFC 2018 section 3).
inline constexpr size_t kMaxSackBlocks = 4;

// One option as found by TcpOptionReader, which has checked its length against its kind, so the
// typed accessors cannot read outside it. Each returns nullopt for an option of another kind.
class TcpOption {
 public:
  TcpOptionKind kind() const { return kind_; }
  size_t offset() const { return offset_; }                  // from the start of the options
  std::span<const uint8_t> value() const { return value_; }  // after kind and length

  std::optional<uint16_t> mss() const {
    if (kind_ != TcpOptionKind::mss) return std::nullopt;
    return wire::load_be16(value_.data());
  }
  // The shift count as sent; RFC 7323 section 2.3 has the receiver use 14 for larger values.
  std::optional<uint8_t> window_scale() const {
    if (kind_ != TcpOptionKind::window_scale) return std::nullopt;
    return value_[0];
  }
  std::optional<TcpTimestamps> timestamps() const {
    if (kind_ != TcpOptionKind::timestamps) return std::nullopt;
    return TcpTimestamps{wire::load_be32(value_.data()), wire::load_be32(value_.data() + 4)};
  }
  size_t sack_block_count() const { return kind_ == TcpOptionKind::sack ? value_.size() / 8 : 0; }
  std::optional<SackBlock> sack_block(size_t index) const {
    if (index >= sack_block_count()) return std::nullopt;
    const uint8_t* p = value_.data() + index * 8;
    return SackBlock{wire::load_be32(p), wire::load_be32(p + 4)};
  }

 private:
  friend class TcpOptionReader;
  TcpOption(TcpOptionKind kind, size_t offset, std::span<const uint8_t> value)
      : kind_(kind), offset_(offset), value_(value) {}

  TcpOptionKind kind_;
  size_t offset_;
  std::span<const uint8_t> value_;
};

enum class TcpOptionError : uint8_t {
  none,
  missing_length,    // a kind other than EOL/NOP is the last byte: no room for its length
  length_too_small,  // length 0 or 1: it must count its own kind and length bytes
  length_past_end,   // the option runs past the end of the options
  wrong_length,      // the length is not the one the kind's RFC prescribes
};

constexpr const char* to_string(TcpOptionError error) {
  switch (error) {
    case TcpOptionError::none:
      return "none";
    case TcpOptionError::missing_length:
      return "option length byte missing";
    case TcpOptionError::length_too_small:
      return "option length below 2";
    case TcpOptionError::length_past_end:
      return "option runs past the end of the options";
    case TcpOptionError::wrong_length:
      return "option length wrong for its kind";
  }
  return "unknown TcpOptionError";
}

// Walks an options area one option at a time. RFC 9293 section 3.2 asks receivers to be prepared
// for illegal option lengths, e.g. zero; the reader stops at the first malformed option and
// names it, since nothing after it can be located.
class TcpOptionReader {
 public:
  explicit TcpOptionReader(std::span<const uint8_t> options) : options_(options) {}

  // The next option (End of Option List and NOP included), or nullopt once the options end (after
  // End of Option List, whose remaining bytes are padding, or at the end of the bytes) or at a
  // malformed option, which error() and error_offset() then describe.
  std::optional<TcpOption> next() {
    if (finished_) return std::nullopt;
    if (position_ >= options_.size()) {
      finished_ = true;
      return std::nullopt;
    }
    const size_t start = position_;
    const auto kind = static_cast<TcpOptionKind>(options_[start]);
    // RFC 9293 section 3.2: End of Option List and NOP are the two single-byte options.
    if (kind == TcpOptionKind::end_of_list) {
      finished_ = true;
      return TcpOption(kind, start, {});
    }
    if (kind == TcpOptionKind::nop) {
      ++position_;
      return TcpOption(kind, start, {});
    }
    if (options_.size() - start < 2) return fail(TcpOptionError::missing_length);
    const size_t length = options_[start + 1];
    if (length < 2) return fail(TcpOptionError::length_too_small);
    if (length > options_.size() - start) return fail(TcpOptionError::length_past_end);
    if (!length_fits_kind(kind, length)) return fail(TcpOptionError::wrong_length);
    position_ = start + length;
    return TcpOption(kind, start, options_.subspan(start + 2, length - 2));
  }

  TcpOptionError error() const { return error_; }
  size_t error_offset() const { return error_offset_; }

 private:
  static constexpr bool length_fits_kind(TcpOptionKind kind, size_t length) {
    switch (kind) {
      case TcpOptionKind::mss:
        return length == 4;
      case TcpOptionKind::window_scale:
        return length == 3;
      case TcpOptionKind::sack_permitted:
        return length == 2;
      case TcpOptionKind::sack:
        return length >= 2 + 8 && (length - 2) % 8 == 0 && (length - 2) / 8 <= kMaxSackBlocks;
      case TcpOptionKind::timestamps:
        return length == 10;
      default:
        return true;  // unknown kinds: any length >= 2, skipped by the caller
    }
  }

  std::optional<TcpOption> fail(TcpOptionError error) {
    finished_ = true;
    error_ = error;
    error_offset_ = position_;
    return std::nullopt;
  }

  std::span<const uint8_t> options_;
  size_t position_ = 0;
  bool finished_ = false;
  TcpOptionError error_ = TcpOptionError::none;
  size_t error_offset_ = 0;
};

inline bool tcp_checksum_valid(Ipv4Address source, Ipv4Address destination,
                               std::span<const uint8_t> segment) {
  return ipv4_transport_checksum_valid(source, destination, kIpProtocolTcp, segment);
}

template <typename Byte>
class BasicTcpView {
  static_assert(std::is_same_v<std::remove_const_t<Byte>, uint8_t>);
  static constexpr bool kWritable = !std::is_const_v<Byte>;

 public:
  static constexpr size_t kMinSize = 20;
  static constexpr size_t kMaxSize = 60;  // the data offset is four bits of 32-bit words

  static std::optional<BasicTcpView> parse(std::span<Byte> segment) {
    if (segment.size() < kMinSize) return std::nullopt;
    return BasicTcpView(segment);
  }

  uint16_t source_port() const { return wire::load_be16(bytes_.data()); }
  uint16_t destination_port() const { return wire::load_be16(bytes_.data() + 2); }
  uint32_t sequence_number() const { return wire::load_be32(bytes_.data() + 4); }
  uint32_t acknowledgment_number() const { return wire::load_be32(bytes_.data() + 8); }
  uint8_t data_offset() const { return bytes_[12] >> 4; }  // header length in 32-bit words
  size_t header_length() const { return size_t{data_offset()} * 4; }
  TcpFlags flags() const { return TcpFlags::from_bits(bytes_[13]); }
  uint16_t window() const { return wire::load_be16(bytes_.data() + 14); }
  uint16_t checksum() const { return wire::load_be16(bytes_.data() + 16); }
  uint16_t urgent_pointer() const { return wire::load_be16(bytes_.data() + 18); }

  // Data offset is at least 5 (RFC 9293 section 3.1) and the header lies inside the span.
  bool header_fits() const { return data_offset() >= 5 && header_length() <= bytes_.size(); }

  // Options and data, or nullopt unless header_fits().
  std::optional<std::span<Byte>> options() const {
    if (!header_fits()) return std::nullopt;
    return bytes_.subspan(kMinSize, header_length() - kMinSize);
  }
  std::optional<std::span<Byte>> payload() const {
    if (!header_fits()) return std::nullopt;
    return bytes_.subspan(header_length());
  }

  bool checksum_valid(Ipv4Address source, Ipv4Address destination) const {
    return tcp_checksum_valid(source, destination, bytes_);
  }

  std::span<Byte> bytes() const { return bytes_; }

  void set_source_port(uint16_t port) requires kWritable { wire::store_be16(bytes_.data(), port); }
  void set_destination_port(uint16_t port) requires kWritable {
    wire::store_be16(bytes_.data() + 2, port);
  }
  void set_sequence_number(uint32_t sequence) requires kWritable {
    wire::store_be32(bytes_.data() + 4, sequence);
  }
  void set_acknowledgment_number(uint32_t acknowledgment) requires kWritable {
    wire::store_be32(bytes_.data() + 8, acknowledgment);
  }
  void set_data_offset(uint8_t words) requires kWritable {
    bytes_[12] = static_cast<uint8_t>(words << 4 | (bytes_[12] & 0x0f));
  }
  void set_flags(TcpFlags flags) requires kWritable { bytes_[13] = flags.bits(); }
  void set_window(uint16_t window) requires kWritable {
    wire::store_be16(bytes_.data() + 14, window);
  }
  void set_checksum(uint16_t checksum) requires kWritable {
    wire::store_be16(bytes_.data() + 16, checksum);
  }
  void set_urgent_pointer(uint16_t pointer) requires kWritable {
    wire::store_be16(bytes_.data() + 18, pointer);
  }

  // Recomputes the checksum over the whole span. Returns false, changing nothing, when the span is
  // longer than an IPv4 datagram can carry.
  bool update_checksum(Ipv4Address source, Ipv4Address destination) requires kWritable {
    if (bytes_.size() > 0xffff) return false;
    set_checksum(0);
    set_checksum(ipv4_transport_checksum(source, destination, kIpProtocolTcp, bytes_));
    return true;
  }

 private:
  explicit BasicTcpView(std::span<Byte> bytes) : bytes_(bytes) {}
  std::span<Byte> bytes_;
};

using TcpView = BasicTcpView<uint8_t>;
using ConstTcpView = BasicTcpView<const uint8_t>;

}  // namespace weir::net
