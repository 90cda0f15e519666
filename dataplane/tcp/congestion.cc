#include "dataplane/tcp/congestion.h"

#include <algorithm>
#include <cmath>

namespace weir::tcp {

uint32_t initial_window(uint32_t mss) {
  return std::min(10 * mss, std::max(2 * mss, uint32_t{14600}));
}

CongestionControl::CongestionControl(CongestionAlgorithm algorithm, uint32_t mss)
    : cwnd_(initial_window(mss)), mss_(static_cast<uint16_t>(mss)), algorithm_(algorithm) {
  if (algorithm == CongestionAlgorithm::newreno) bytes_acked_ = 0;
}

void CongestionControl::slow_start(uint32_t acked_bytes) {
  cwnd_ += std::min(acked_bytes, 2u * mss_);
}

void CongestionControl::on_ack(uint32_t acked_bytes, uint64_t now_us, uint64_t rtt_us) {
  if (in_slow_start()) {
    slow_start(acked_bytes);
  } else if (algorithm_ == CongestionAlgorithm::newreno) {
    newreno_ack(acked_bytes);
  } else {
    cubic_ack(acked_bytes, now_us, rtt_us);
  }
}

void CongestionControl::on_loss(uint32_t flight, uint64_t now_us) {
  reduce(flight, now_us);
  // NewReno: RFC 6582 3.2 sets cwnd to ssthresh on exit from recovery, which the sender's
  // recovery logic inflates meanwhile. CUBIC: RFC 9438 4.6.
  cwnd_ = ssthresh_;
}

void CongestionControl::on_timeout(uint32_t flight, uint64_t now_us) {
  reduce(flight, now_us);
  // RFC 5681 3.1: the loss window; RFC 9438 4.8: slow start from one segment up to ssthresh.
  cwnd_ = mss_;
  epoch_started_ = false;  // CUBIC: the next epoch starts when congestion avoidance resumes
}

void CongestionControl::reduce(uint32_t flight, uint64_t now_us) {
  if (algorithm_ == CongestionAlgorithm::cubic) {
    cubic_reduce(now_us);
    return;
  }
  // RFC 5681 (4): ssthresh = max(FlightSize / 2, 2 SMSS).
  ssthresh_ = std::max(flight / 2, 2u * mss_);
  bytes_acked_ = 0;
}

// ---- NewReno -----------------------------------------------------------------------------------

void CongestionControl::newreno_ack(uint32_t acked_bytes) {
  // RFC 5681 3.1: one segment per window of data acknowledged.
  bytes_acked_ += acked_bytes;
  if (bytes_acked_ >= cwnd_) {
    bytes_acked_ -= cwnd_;
    cwnd_ += mss_;
  }
}

// ---- CUBIC -------------------------------------------------------------------------------------

void CongestionControl::cubic_reduce(uint64_t now_us) {
  const double cwnd_segments = static_cast<double>(cwnd_) / mss_;
  // RFC 9438 4.7 fast convergence: a flow whose window keeps shrinking releases bandwidth.
  const double w_max =
      cwnd_segments < w_last_max_ ? cwnd_segments * (1.0 + Cubic::kBeta) / 2.0 : cwnd_segments;
  w_max_ = static_cast<float>(w_max);
  w_last_max_ = static_cast<float>(cwnd_segments);
  // RFC 9438 4.6: ssthresh = cwnd * beta, at least 2 segments.
  ssthresh_ = std::max(static_cast<uint32_t>(cwnd_segments * Cubic::kBeta * mss_), 2u * mss_);
  // Eq. 2: K = cbrt(W_max (1 - beta) / C) with cwnd_epoch = ssthresh.
  const double w_epoch = static_cast<double>(ssthresh_) / mss_;
  k_ = static_cast<float>(std::cbrt(std::max(0.0, w_max - w_epoch) / Cubic::kC));
  epoch_start_us_ = now_us;
  epoch_started_ = true;
  w_est_ = w_epoch;
  cwnd_fraction_ = 0;
}

void CongestionControl::cubic_ack(uint32_t acked_bytes, uint64_t now_us, uint64_t rtt_us) {
  const double cwnd_segments = static_cast<double>(cwnd_) / mss_;
  if (!epoch_started_) {
    // Congestion avoidance without a reduction to start from (after slow start or a timeout):
    // RFC 9438 4.2 starts the epoch here, with W_max the current window and K = 0.
    epoch_started_ = true;
    epoch_start_us_ = now_us;
    w_max_ = static_cast<float>(std::max<double>(w_max_, cwnd_segments));
    k_ = static_cast<float>(std::cbrt(std::max(0.0, w_max_ - cwnd_segments) / Cubic::kC));
    w_est_ = cwnd_segments;
  }
  const double t = static_cast<double>(now_us - epoch_start_us_) / 1e6;
  const double rtt = static_cast<double>(rtt_us) / 1e6;
  const double acked_segments = static_cast<double>(acked_bytes) / mss_;
  // Eq. 4: the Reno-friendly estimate, alpha = 3 (1 - beta) / (1 + beta) per window acked.
  const double alpha = 3.0 * (1.0 - Cubic::kBeta) / (1.0 + Cubic::kBeta);
  w_est_ += alpha * acked_segments / cwnd_segments;
  // Eq. 1, evaluated one RTT ahead (4.4), with the target clamped to [cwnd, 1.5 cwnd].
  const double w_cubic = Cubic::kC * std::pow(t + rtt - k_, 3.0) + w_max_;
  const double target = std::clamp(w_cubic, cwnd_segments, 1.5 * cwnd_segments);
  double growth_segments;
  if (w_cubic < w_est_) {
    growth_segments = w_est_ - cwnd_segments;  // 4.3: the Reno-friendly region
  } else {
    growth_segments = (target - cwnd_segments) / cwnd_segments * acked_segments;  // 4.4, 4.5
  }
  const double fraction = cwnd_fraction_ + std::max(0.0, growth_segments) * mss_;
  const uint32_t whole = static_cast<uint32_t>(fraction);
  cwnd_ += whole;
  cwnd_fraction_ = static_cast<float>(fraction - whole);
}

}  // namespace weir::tcp
