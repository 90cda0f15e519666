// Initial sequence numbers (RFC 6528) and SYN cookies (RFC 4987 3.6), pure functions of a secret,
// the 4-tuple and the clock, so that they are testable without a stack.
#pragma once

#include <array>
#include <cstdint>
#include <optional>

#include "dataplane/tcp/seq.h"

namespace weir::tcp {

// A connection's addresses and ports, host order, as seen from Weir (local = ours).
struct FourTuple {
  uint32_t local_address = 0;
  uint32_t remote_address = 0;
  uint16_t local_port = 0;
  uint16_t remote_port = 0;
  friend constexpr bool operator==(const FourTuple&, const FourTuple&) = default;
};

using Secret = std::array<uint8_t, 16>;

// RFC 6528 3: ISN = M + F(localip, localport, remoteip, remoteport, secretkey), M a timer that
// ticks every 4 microseconds, F a keyed PRF (SipHash-2-4 here). Distinct connections get
// unrelated ISNs, and a reincarnation of one 4-tuple starts ahead of the old one's numbers.
Seq initial_sequence(const Secret& secret, const FourTuple& tuple, uint64_t now_us);

// SYN cookies (RFC 4987 3.6) in the shape Linux uses: when a listener's SYN queue is full the
// SYN-ACK's ISN encodes everything needed to rebuild the connection from the returning ACK.
//
//   bits 31..27  a 5-bit counter of 64-second periods (a cookie is honoured for two periods)
//   bits 26..24  the index of the MSS in kCookieMss (the largest entry <= the client's MSS)
//   bits 23..0   SipHash-2-4(secret, 4-tuple, the client's ISN, the period, the MSS index)
//
// Window scale and SACK-permitted do not fit; as in Linux they travel in the low 6 bits of the
// timestamp value of the SYN-ACK, and come back in the ACK's timestamp echo (RFC 7323 allows any
// TSval; the clock's low bits are sacrificed). Without timestamps they are lost: the connection
// then runs without window scaling and SACK, which RFC 4987 accepts as the cookies' cost.
inline constexpr std::array<uint16_t, 8> kCookieMss = {64, 256, 536, 1024, 1220, 1300, 1440, 1460};
inline constexpr uint64_t kCookiePeriodUs = 64'000'000;
// The longest a cookie is honoured after it was made: the rest of its period and the next one.
inline constexpr uint64_t kCookieLifetimeUs = 2 * kCookiePeriodUs;

struct CookieOptions {
  uint16_t mss = 536;
  std::optional<uint8_t> window_scale;  // 0..14, as the client offered it
  bool sack_permitted = false;
  friend constexpr bool operator==(const CookieOptions&, const CookieOptions&) = default;
};

// The ISN for the SYN-ACK. `client_mss` is the client's offered MSS (536 when it sent none, RFC
// 9293 3.7.1); the cookie keeps the largest table entry not above it.
Seq make_cookie(const Secret& secret, const FourTuple& tuple, Seq client_isn, uint16_t client_mss,
                uint64_t now_us);

// For the third segment of the handshake: `ack` is its acknowledgment number (our ISN + 1) and
// `client_isn` its sequence number - 1. Returns the MSS the cookie carries, or nullopt when the
// cookie is forged, damaged or older than two periods.
std::optional<uint16_t> check_cookie(const Secret& secret, const FourTuple& tuple, Seq client_isn,
                                     Seq ack, uint64_t now_us);

// The SYN-ACK's TSval carrying window scale and SACK-permitted in its low 6 bits: bits 3..0 the
// client's window scale (15 = none), bit 4 SACK-permitted, bit 5 set so that the value is never
// mistaken for a plain clock. Never above `clock` (timestamps must not run ahead, RFC 7323 5.4).
uint32_t encode_cookie_timestamp(uint32_t clock, std::optional<uint8_t> window_scale,
                                 bool sack_permitted);
// From the returning ACK's TSecr. nullopt when the low bits do not carry a cookie encoding.
std::optional<CookieOptions> decode_cookie_timestamp(uint32_t echoed, uint16_t mss);

}  // namespace weir::tcp
