// A token bucket for log lines: `burst` lines at once, then one every `interval_us`; what it
// refuses is counted, so that the next line let through can say how many were left out. One per
// log site or category (common/log.h) and per listener for frame events
// (dataplane/main_lcore/frame_event_log.h): a storm of bad packets or bad requests becomes a few
// lines and a count, never a storm of lines (the time comes from the caller: testable).
#pragma once

#include <algorithm>
#include <cstdint>

namespace weir {

class LogRateLimit {
 public:
  LogRateLimit(uint32_t burst, uint64_t interval_us)
      : burst_(std::max<uint32_t>(burst, 1)),
        interval_us_(std::max<uint64_t>(interval_us, 1)),
        tokens_(burst_) {}

  // True when a line may be written at `now_us` (a monotonic clock).
  bool allow(uint64_t now_us) {
    refill(now_us);
    if (tokens_ == 0) {
      ++suppressed_;
      ++suppressed_total_;
      return false;
    }
    --tokens_;
    return true;
  }

  // Lines refused since the last call (the one let through says so), and in all.
  uint64_t take_suppressed() {
    const uint64_t n = suppressed_;
    suppressed_ = 0;
    return n;
  }
  uint64_t suppressed_total() const { return suppressed_total_; }

 private:
  void refill(uint64_t now_us) {
    if (!started_) {
      started_ = true;
      last_us_ = now_us;
      return;
    }
    if (now_us <= last_us_) return;
    const uint64_t earned = (now_us - last_us_) / interval_us_;
    if (earned == 0) return;
    tokens_ = static_cast<uint32_t>(std::min<uint64_t>(burst_, tokens_ + earned));
    last_us_ += earned * interval_us_;
  }

  uint32_t burst_;
  uint64_t interval_us_;
  uint32_t tokens_;
  bool started_ = false;
  uint64_t last_us_ = 0;
  uint64_t suppressed_ = 0;
  uint64_t suppressed_total_ = 0;
};

}  // namespace weir
