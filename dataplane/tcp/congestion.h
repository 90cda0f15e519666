// Congestion control behind one interface: NewReno (RFC 5681, RFC 6582's window rules) and CUBIC
// (RFC 9438, the default). The sender owns loss detection and recovery; these classes own only the
// congestion window and the slow-start threshold, in bytes.
#pragma once

#include <cstdint>
#include <memory>

namespace weir::tcp {

// The window algorithm (the configuration's `tcp.congestion`, translated where the dataplane builds
// its TcpSettings).
enum class CongestionAlgorithm : uint8_t { cubic, newreno };

class CongestionControl {
 public:
  explicit CongestionControl(uint32_t mss);
  virtual ~CongestionControl() = default;

  // Newly acknowledged data outside recovery. `rtt_us` is the connection's smoothed RTT.
  virtual void on_ack(uint32_t acked_bytes, uint64_t now_us, uint64_t rtt_us) = 0;
  // Loss detected by duplicate ACKs or SACK (entering fast recovery) with `flight` bytes out.
  virtual void on_loss(uint32_t flight, uint64_t now_us) = 0;
  // The retransmission timer expired (RFC 5681 3.1: cwnd becomes the loss window, one segment).
  virtual void on_timeout(uint32_t flight, uint64_t now_us) = 0;

  uint32_t cwnd() const { return cwnd_; }
  uint32_t ssthresh() const { return ssthresh_; }
  uint32_t mss() const { return mss_; }
  bool in_slow_start() const { return cwnd_ < ssthresh_; }

 protected:
  // RFC 5681 3.1 slow start with appropriate byte counting (RFC 3465, L = 2 segments).
  void slow_start(uint32_t acked_bytes);

  uint32_t mss_;
  uint32_t cwnd_;
  uint32_t ssthresh_ = UINT32_MAX;  // RFC 5681 3.1: "arbitrarily high"
};

// RFC 6928: IW = min(10 MSS, max(2 MSS, 14600 bytes)).
uint32_t initial_window(uint32_t mss);

class NewReno final : public CongestionControl {
 public:
  using CongestionControl::CongestionControl;
  void on_ack(uint32_t acked_bytes, uint64_t now_us, uint64_t rtt_us) override;
  void on_loss(uint32_t flight, uint64_t now_us) override;
  void on_timeout(uint32_t flight, uint64_t now_us) override;

 private:
  uint32_t bytes_acked_ = 0;  // RFC 5681 3.1 congestion avoidance by byte counting
};

class Cubic final : public CongestionControl {
 public:
  static constexpr double kC = 0.4;     // RFC 9438 4.1
  static constexpr double kBeta = 0.7;  // RFC 9438 4.6

  using CongestionControl::CongestionControl;
  void on_ack(uint32_t acked_bytes, uint64_t now_us, uint64_t rtt_us) override;
  void on_loss(uint32_t flight, uint64_t now_us) override;
  void on_timeout(uint32_t flight, uint64_t now_us) override;

  double w_max_segments() const { return w_max_; }
  double k_seconds() const { return k_; }

 private:
  void reduce(uint64_t now_us);

  double w_max_ = 0;          // segments, the window before the last reduction
  double w_last_max_ = 0;     // for fast convergence (RFC 9438 4.7)
  double k_ = 0;              // seconds
  double w_est_ = 0;          // segments, the Reno-friendly estimate (RFC 9438 4.3)
  double cwnd_fraction_ = 0;  // sub-segment growth carried between ACKs
  uint64_t epoch_start_us_ = 0;
  bool epoch_started_ = false;
};

std::unique_ptr<CongestionControl> make_congestion_control(CongestionAlgorithm algorithm,
                                                           uint32_t mss);

}  // namespace weir::tcp
