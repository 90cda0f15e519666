#include "dataplane/tcp/congestion.h"

#include <algorithm>
#include <cmath>

namespace weir::tcp {

uint32_t initial_window(uint32_t mss) {
  return std::min(10 * mss, std::max(2 * mss, uint32_t{14600}));
}

CongestionControl::CongestionControl(uint32_t mss) : mss_(mss), cwnd_(initial_window(mss)) {}

void CongestionControl::slow_start(uint32_t acked_bytes) {
  cwnd_ += std::min(acked_bytes, 2 * mss_);
}

// ---- NewReno -----------------------------------------------------------------------------------

void NewReno::on_ack(uint32_t acked_bytes, uint64_t, uint64_t) {
  if (in_slow_start()) {
    slow_start(acked_bytes);
    return;
  }
  // RFC 5681 3.1: one segment per window of data acknowledged.
  bytes_acked_ += acked_bytes;
  if (bytes_acked_ >= cwnd_) {
    bytes_acked_ -= cwnd_;
    cwnd_ += mss_;
  }
}

void NewReno::on_loss(uint32_t flight, uint64_t) {
  // RFC 5681 (4): ssthresh = max(FlightSize / 2, 2 SMSS); RFC 6582 3.2 sets cwnd to it on exit
  // from recovery, which the sender's recovery logic inflates meanwhile.
  ssthresh_ = std::max(flight / 2, 2 * mss_);
  cwnd_ = ssthresh_;
  bytes_acked_ = 0;
}

void NewReno::on_timeout(uint32_t flight, uint64_t) {
  ssthresh_ = std::max(flight / 2, 2 * mss_);
  cwnd_ = mss_;
  bytes_acked_ = 0;
}

// ---- CUBIC -------------------------------------------------------------------------------------

void Cubic::reduce(uint64_t now_us) {
  const double cwnd_segments = static_cast<double>(cwnd_) / mss_;
  // RFC 9438 4.7 fast convergence: a flow whose window keeps shrinking releases bandwidth.
  w_max_ = cwnd_segments < w_last_max_ ? cwnd_segments * (1.0 + kBeta) / 2.0 : cwnd_segments;
  w_last_max_ = cwnd_segments;
  // RFC 9438 4.6: ssthresh = cwnd * beta, at least 2 segments.
  ssthresh_ = std::max(static_cast<uint32_t>(cwnd_segments * kBeta * mss_), 2 * mss_);
  // Eq. 2: K = cbrt(W_max (1 - beta) / C) with cwnd_epoch = ssthresh.
  const double w_epoch = static_cast<double>(ssthresh_) / mss_;
  k_ = std::cbrt(std::max(0.0, w_max_ - w_epoch) / kC);
  epoch_start_us_ = now_us;
  epoch_started_ = true;
  w_est_ = w_epoch;
  cwnd_fraction_ = 0;
}

void Cubic::on_loss(uint32_t, uint64_t now_us) {
  reduce(now_us);
  cwnd_ = ssthresh_;
}

void Cubic::on_timeout(uint32_t, uint64_t now_us) {
  reduce(now_us);
  cwnd_ = mss_;  // RFC 9438 4.8: after a timeout, slow start from one segment up to ssthresh
  epoch_started_ = false;  // the next epoch starts when congestion avoidance resumes
}

void Cubic::on_ack(uint32_t acked_bytes, uint64_t now_us, uint64_t rtt_us) {
  if (in_slow_start()) {
    slow_start(acked_bytes);
    return;
  }
  const double cwnd_segments = static_cast<double>(cwnd_) / mss_;
  if (!epoch_started_) {
    // Congestion avoidance without a reduction to start from (after slow start or a timeout):
    // RFC 9438 4.2 starts the epoch here, with W_max the current window and K = 0.
    epoch_started_ = true;
    epoch_start_us_ = now_us;
    w_max_ = std::max(w_max_, cwnd_segments);
    k_ = std::cbrt(std::max(0.0, w_max_ - cwnd_segments) / kC);
    w_est_ = cwnd_segments;
  }
  const double t = static_cast<double>(now_us - epoch_start_us_) / 1e6;
  const double rtt = static_cast<double>(rtt_us) / 1e6;
  const double acked_segments = static_cast<double>(acked_bytes) / mss_;
  // Eq. 4: the Reno-friendly estimate, alpha = 3 (1 - beta) / (1 + beta) per window acked.
  const double alpha = 3.0 * (1.0 - kBeta) / (1.0 + kBeta);
  w_est_ += alpha * acked_segments / cwnd_segments;
  // Eq. 1, evaluated one RTT ahead (4.4), with the target clamped to [cwnd, 1.5 cwnd].
  const double w_cubic = kC * std::pow(t + rtt - k_, 3.0) + w_max_;
  double target = std::clamp(w_cubic, cwnd_segments, 1.5 * cwnd_segments);
  double growth_segments;
  if (w_cubic < w_est_) {
    growth_segments = w_est_ - cwnd_segments;  // 4.3: the Reno-friendly region
  } else {
    growth_segments = (target - cwnd_segments) / cwnd_segments * acked_segments;  // 4.4, 4.5
  }
  cwnd_fraction_ += std::max(0.0, growth_segments) * mss_;
  const uint32_t whole = static_cast<uint32_t>(cwnd_fraction_);
  cwnd_ += whole;
  cwnd_fraction_ -= whole;
}

std::unique_ptr<CongestionControl> make_congestion_control(CongestionAlgorithm algorithm,
                                                           uint32_t mss) {
  if (algorithm == CongestionAlgorithm::newreno) return std::make_unique<NewReno>(mss);
  return std::make_unique<Cubic>(mss);
}

}  // namespace weir::tcp
