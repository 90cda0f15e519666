// Idle backoff for a poll-mode worker. On a VM a worker that polls an empty queue without pause
// takes a core that co-located processes need; this policy spins briefly after traffic (to keep
// latency low during bursts), then sleeps progressively longer, capped at `max_sleep_us`, and
// returns to full speed on the first poll that finds work. Pure logic: the worker does the
// sleeping.
#pragma once

#include <algorithm>
#include <cstdint>

namespace weir::dataplane {

enum class IdleMode : uint8_t { backoff, busy_poll };

class IdleBackoff {
 public:
  // Empty polls tolerated before the first sleep: about 10-50 us of spinning on a modern core,
  // which covers the gap between packets of one burst.
  static constexpr uint32_t kSpinPolls = 256;
  static constexpr uint32_t kFirstSleepUs = 1;

  IdleBackoff(IdleMode mode, uint32_t max_sleep_us) : mode_(mode), max_sleep_us_(max_sleep_us) {}

  // Returns how long to sleep, in microseconds, after a poll that did (or did not) find work.
  uint32_t after_poll(bool found_work) {
    if (found_work || mode_ == IdleMode::busy_poll) {
      empty_polls_ = 0;
      next_sleep_us_ = kFirstSleepUs;
      return 0;
    }
    if (empty_polls_ < kSpinPolls) {
      ++empty_polls_;
      return 0;
    }
    const uint32_t sleep_us = std::min(next_sleep_us_, max_sleep_us_);
    next_sleep_us_ = std::min(next_sleep_us_ * 2, max_sleep_us_);
    return sleep_us;
  }

 private:
  IdleMode mode_;
  uint32_t max_sleep_us_;
  uint32_t empty_polls_ = 0;
  uint32_t next_sleep_us_ = kFirstSleepUs;
};

}  // namespace weir::dataplane
