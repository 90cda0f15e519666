// The retransmission timeout of RFC 6298, per connection, in microseconds.
//
//   (2.1) before any measurement RTO = 1 s
//   (2.2) first measurement R:  SRTT = R, RTTVAR = R/2
//   (2.3) later measurements:   RTTVAR = 3/4 RTTVAR + 1/4 |SRTT - R|, then SRTT = 7/8 SRTT + 1/8 R
//         and RTO = SRTT + max(G, 4 RTTVAR), G the clock granularity
//   (2.4) RTO is at least `min_rto` (the RFC says 1 s; Weir's default is Linux's 200 ms,
//         `tcp.min_rto_ms`), (2.5) and at most `max_rto` (`tcp.max_rto_ms`)
//   (3)   Karn's algorithm: samples from retransmitted segments are not taken (the caller does
//         not call sample() for them; with timestamps, RFC 7323 4.1 makes every ACK a sample)
//   (5.5) on expiry the timer backs off: RTO = min(2 RTO, max_rto)
//   (5.7) a new sample after backoff recomputes RTO from SRTT and RTTVAR, ending the backoff;
//         and when the SYN had to be sent again, RTO is 3 s once data transmission begins
// Integer arithmetic only, in the fixed-point style of the RFC's reference (Jacobson 1988).
#pragma once

#include <algorithm>
#include <cstdint>

namespace weir::tcp {

class RtoEstimator {
 public:
  static constexpr uint64_t kInitialRtoUs = 1'000'000;             // RFC 6298 2.1
  static constexpr uint64_t kGranularityUs = 1'000;                // the worker's timer tick
  static constexpr uint64_t kAfterHandshakeTimeoutUs = 3'000'000;  // RFC 6298 5.7

  // The bounds are at most kMaxRtoUs (the configuration allows 600 s).
  RtoEstimator(uint64_t min_rto_us, uint64_t max_rto_us)
      : min_rto_us_(narrow(min_rto_us)),
        max_rto_us_(narrow(max_rto_us)),
        rto_us_(clamp(kInitialRtoUs)) {}

  void sample(uint64_t rtt_us) {
    rtt_us = std::min<uint64_t>(rtt_us, kMaxRttUs);
    uint64_t srtt = rtt_us, rttvar = rtt_us / 2;
    if (has_sample_) {
      const uint64_t error = srtt_us_ > rtt_us ? srtt_us_ - rtt_us : rtt_us - srtt_us_;
      rttvar = (3 * uint64_t{rttvar_us_} + error) / 4;
      srtt = (7 * uint64_t{srtt_us_} + rtt_us) / 8;
    }
    srtt_us_ = static_cast<uint32_t>(srtt);
    rttvar_us_ = static_cast<uint32_t>(rttvar);
    has_sample_ = true;
    rto_us_ = clamp(srtt + std::max(kGranularityUs, 4 * rttvar));
    backoffs_ = 0;
  }

  // RFC 6298 5.7: the handshake's SYN (or SYN-ACK) timed out and gave no sample, so RTO starts
  // data transmission at 3 s rather than at the backed-off handshake value.
  void restart_after_handshake_timeout() {
    rto_us_ = clamp(kAfterHandshakeTimeoutUs);
    backoffs_ = 0;
  }

  // The retransmission timer expired: RFC 6298 5.5.
  void back_off() {
    rto_us_ = std::min(rto_us_ * 2, max_rto_us_);
    if (backoffs_ < UINT8_MAX) ++backoffs_;
  }

  uint64_t rto_us() const { return rto_us_; }
  uint64_t srtt_us() const { return srtt_us_; }
  uint64_t rttvar_us() const { return rttvar_us_; }
  bool has_sample() const { return has_sample_; }
  uint32_t backoffs() const { return backoffs_; }

 private:
  // Kept in 32 bits (every connection's record holds one: tcp_stack.h): an RTO is at most
  // kMaxRtoUs, and a sample is taken as at most kMaxRttUs (over an hour), so that 4 RTTVAR and
  // 7 SRTT are computed in 64 bits without overflow and stored back in 32.
  static constexpr uint64_t kMaxRtoUs = 1'000'000'000;
  static constexpr uint64_t kMaxRttUs = UINT32_MAX;
  static uint32_t narrow(uint64_t us) { return static_cast<uint32_t>(std::min(us, kMaxRtoUs)); }
  uint32_t clamp(uint64_t rto) const {
    return static_cast<uint32_t>(std::clamp<uint64_t>(rto, min_rto_us_, max_rto_us_));
  }

  uint32_t min_rto_us_;
  uint32_t max_rto_us_;
  uint32_t rto_us_;
  uint32_t srtt_us_ = 0;
  uint32_t rttvar_us_ = 0;
  uint8_t backoffs_ = 0;  // saturates: only ever compared with small numbers
  bool has_sample_ = false;
};
static_assert(sizeof(RtoEstimator) <= 24, "every connection's record holds one");

}  // namespace weir::tcp
