#include "dataplane/tcp/syn_cookie.h"

#include <span>

#include "common/maglev.h"  // siphash24
#include "common/wire/byte_order.h"

namespace weir::tcp {
namespace {

// The 4-tuple and two more 32-bit words, serialised big-endian: a fixed layout, so the hash does
// not depend on struct padding or the host's byte order.
uint64_t keyed_hash(const Secret& secret, const FourTuple& t, uint32_t extra1, uint32_t extra2) {
  std::array<uint8_t, 20> message{};
  wire::store_be32(message.data(), t.local_address);
  wire::store_be32(message.data() + 4, t.remote_address);
  wire::store_be16(message.data() + 8, t.local_port);
  wire::store_be16(message.data() + 10, t.remote_port);
  wire::store_be32(message.data() + 12, extra1);
  wire::store_be32(message.data() + 16, extra2);
  return maglev::siphash24(secret, std::span<const uint8_t>(message));
}

constexpr uint32_t kHashBits = 24;
constexpr uint32_t kHashMask = (uint32_t{1} << kHashBits) - 1;
constexpr uint32_t kPeriodBits = 5;
constexpr uint32_t kPeriodMask = (uint32_t{1} << kPeriodBits) - 1;

uint32_t period_of(uint64_t now_us) {
  return static_cast<uint32_t>(now_us / kCookiePeriodUs);
}

// The MSS index is hashed too, so that a forged ACK cannot raise the MSS it carries.
uint32_t cookie_hash(const Secret& secret, const FourTuple& tuple, Seq client_isn, uint32_t period,
                     uint32_t mss_index) {
  return static_cast<uint32_t>(
             keyed_hash(secret, tuple, client_isn.raw(), period << 3 | mss_index)) &
         kHashMask;
}

constexpr uint32_t kTsOptionBits = 6;
constexpr uint32_t kTsOptionMask = (uint32_t{1} << kTsOptionBits) - 1;
constexpr uint32_t kTsNoWindowScale = 0xf;
constexpr uint32_t kTsSack = 1u << 4;
constexpr uint32_t kTsMarker = 1u << 5;

}  // namespace

Seq initial_sequence(const Secret& secret, const FourTuple& tuple, uint64_t now_us) {
  const uint32_t clock = static_cast<uint32_t>(now_us / 4);  // RFC 6528 3: a 4 us timer
  return Seq(clock + static_cast<uint32_t>(keyed_hash(secret, tuple, 0, 0)));
}

Seq make_cookie(const Secret& secret, const FourTuple& tuple, Seq client_isn, uint16_t client_mss,
                uint64_t now_us) {
  uint32_t mss_index = 0;
  for (uint32_t i = 0; i < kCookieMss.size(); ++i) {
    if (kCookieMss[i] <= client_mss) mss_index = i;
  }
  const uint32_t period = period_of(now_us);
  return Seq((period & kPeriodMask) << 27 | mss_index << kHashBits |
             cookie_hash(secret, tuple, client_isn, period, mss_index));
}

std::optional<uint16_t> check_cookie(const Secret& secret, const FourTuple& tuple, Seq client_isn,
                                     Seq ack, uint64_t now_us) {
  const uint32_t cookie = (ack - 1).raw();
  const uint32_t carried_period = cookie >> 27;
  const uint32_t mss_index = (cookie >> kHashBits) & 0x7;
  const uint32_t now_period = period_of(now_us);
  // The cookie's period, recovered from its low 5 bits: this period or the one before.
  for (uint32_t age = 0; age < 2; ++age) {
    if (now_period < age) break;
    const uint32_t period = now_period - age;
    if ((period & kPeriodMask) != carried_period) continue;
    if (cookie_hash(secret, tuple, client_isn, period, mss_index) == (cookie & kHashMask)) {
      return kCookieMss[mss_index];
    }
  }
  return std::nullopt;
}

uint32_t encode_cookie_timestamp(uint32_t clock, std::optional<uint8_t> window_scale,
                                 bool sack_permitted) {
  uint32_t options = kTsMarker | (window_scale ? (*window_scale & 0xf) : kTsNoWindowScale);
  if (sack_permitted) options |= kTsSack;
  uint32_t value = (clock & ~kTsOptionMask) | options;
  if (value > clock) value -= kTsOptionMask + 1;  // never ahead of the clock
  return value;
}

std::optional<CookieOptions> decode_cookie_timestamp(uint32_t echoed, uint16_t mss) {
  const uint32_t options = echoed & kTsOptionMask;
  if ((options & kTsMarker) == 0) return std::nullopt;
  CookieOptions decoded;
  decoded.mss = mss;
  const uint32_t scale = options & 0xf;
  if (scale != kTsNoWindowScale) {
    if (scale > 14) return std::nullopt;  // RFC 7323 2.3: at most 14
    decoded.window_scale = static_cast<uint8_t>(scale);
  }
  decoded.sack_permitted = (options & kTsSack) != 0;
  return decoded;
}

}  // namespace weir::tcp
