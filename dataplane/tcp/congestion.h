// Congestion control: NewReno (RFC 5681, RFC 6582's window rules) and CUBIC (RFC 9438, the
// default). The sender owns loss detection and recovery; this class owns only the congestion
// window and the slow-start threshold, in bytes.
//
// One class for both algorithms, held by value in the connection's record: no allocation and no
// virtual call per connection, and an idle connection pays only for these few bytes (the memory per
// idle proxied session, docs/operations.md). CUBIC's growth state is kept in floats except the
// Reno-friendly estimate, which grows by tiny steps on large windows and needs a double.
#pragma once

#include <cstdint>

namespace weir::tcp {

// The window algorithm (the configuration's `tcp.congestion`, translated where the dataplane builds
// its TcpSettings).
enum class CongestionAlgorithm : uint8_t { cubic, newreno };

class CongestionControl {
 public:
  CongestionControl(CongestionAlgorithm algorithm, uint32_t mss);

  // Newly acknowledged data outside recovery. `rtt_us` is the connection's smoothed RTT.
  void on_ack(uint32_t acked_bytes, uint64_t now_us, uint64_t rtt_us);
  // Loss detected by duplicate ACKs or SACK (entering fast recovery) with `flight` bytes out.
  void on_loss(uint32_t flight, uint64_t now_us);
  // The retransmission timer expired (RFC 5681 3.1: cwnd becomes the loss window, one segment).
  void on_timeout(uint32_t flight, uint64_t now_us);

  CongestionAlgorithm algorithm() const { return algorithm_; }
  uint32_t cwnd() const { return cwnd_; }
  uint32_t ssthresh() const { return ssthresh_; }
  uint32_t mss() const { return mss_; }
  bool in_slow_start() const { return cwnd_ < ssthresh_; }
  // CUBIC's W_max (segments) and K (seconds).
  double w_max_segments() const { return w_max_; }
  double k_seconds() const { return k_; }

 private:
  // RFC 5681 3.1 slow start with appropriate byte counting (RFC 3465, L = 2 segments).
  void slow_start(uint32_t acked_bytes);
  // ssthresh after a loss or a timeout; the callers set cwnd.
  void reduce(uint32_t flight, uint64_t now_us);
  void newreno_ack(uint32_t acked_bytes);
  void cubic_ack(uint32_t acked_bytes, uint64_t now_us, uint64_t rtt_us);
  void cubic_reduce(uint64_t now_us);

  uint32_t cwnd_;
  uint32_t ssthresh_ = UINT32_MAX;  // RFC 5681 3.1: "arbitrarily high"
  // CUBIC (RFC 9438).
  double w_est_ = 0;  // segments, the Reno-friendly estimate (4.3)
  uint64_t epoch_start_us_ = 0;
  float w_max_ = 0;       // segments, the window before the last reduction
  float w_last_max_ = 0;  // for fast convergence (4.7)
  float k_ = 0;           // seconds
  union {
    float cwnd_fraction_ = 0;  // CUBIC: sub-byte growth carried between ACKs
    uint32_t bytes_acked_;     // NewReno: congestion avoidance by byte counting (RFC 5681 3.1)
  };
  uint16_t mss_;
  CongestionAlgorithm algorithm_;
  bool epoch_started_ = false;
};
// Part of every connection's record (tcp_stack.h): growth here is growth of every idle session.
static_assert(sizeof(CongestionControl) <= 48, "congestion state outgrew its 48 bytes");

// The algorithms by name, for tests and for code that wants one explicitly.
class NewReno final : public CongestionControl {
 public:
  explicit NewReno(uint32_t mss) : CongestionControl(CongestionAlgorithm::newreno, mss) {}
};

class Cubic final : public CongestionControl {
 public:
  static constexpr double kC = 0.4;     // RFC 9438 4.1
  static constexpr double kBeta = 0.7;  // RFC 9438 4.6
  explicit Cubic(uint32_t mss) : CongestionControl(CongestionAlgorithm::cubic, mss) {}
};

// RFC 6928: IW = min(10 MSS, max(2 MSS, 14600 bytes)).
uint32_t initial_window(uint32_t mss);

}  // namespace weir::tcp
