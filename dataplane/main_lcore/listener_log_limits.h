// Per-listener log rate limits with a count of the lines held back, shared by the frame event log
// (frame_event_log.h) and the session log (session_log.h): each listener gets its own token bucket
// (common/rate_limit.h), so that a storm on one listener cannot silence another, and the lines a
// listener's limit held back are said by its next line let through, or by a summary line once the
// limit allows one (report_held_back). No DPDK here: unit-tested
// (tests/unit/frame_event_log_test.cc).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "common/rate_limit.h"

namespace weir::dataplane {

class ListenerLogLimits {
 public:
  ListenerLogLimits(uint32_t burst, uint64_t interval_us)
      : burst_(burst), interval_us_(interval_us) {}

  // A line of `listener` at `now_us` (a monotonic clock): nullopt when the limit holds it back
  // (counted), else how many of the listener's lines were held back since the last that said so
  // (the caller says it in this line).
  std::optional<uint64_t> admit(const std::string& listener, uint64_t now_us) {
    Limit& limit = limit_of(listener);
    if (!limit.bucket.allow(now_us)) {
      ++suppressed_;
      ++limit.unreported;
      return std::nullopt;
    }
    return take(limit);
  }

  // For each listener whose held-back lines were not said yet, once its limit allows a line:
  // say(listener, count).
  template <typename Say>
  void report_held_back(uint64_t now_us, Say say) {
    for (auto& [name, limit] : limits_) {
      if (limit.unreported == 0 || !limit.bucket.allow(now_us)) continue;
      say(name, take(limit));
    }
  }

  uint64_t suppressed() const { return suppressed_; }

 private:
  struct Limit {
    LogRateLimit bucket;
    uint64_t unreported = 0;  // held back since the last line that said so
  };
  Limit& limit_of(const std::string& listener) {
    auto it = limits_.find(listener);
    if (it == limits_.end())
      it = limits_.emplace(listener, Limit{LogRateLimit(burst_, interval_us_)}).first;
    return it->second;
  }
  static uint64_t take(Limit& limit) {
    limit.bucket.take_suppressed();  // counted here, per listener, instead
    const uint64_t n = limit.unreported;
    limit.unreported = 0;
    return n;
  }

  uint32_t burst_;
  uint64_t interval_us_;
  std::map<std::string, Limit> limits_;  // by listener: at most the listeners ever made
  uint64_t suppressed_ = 0;
};

}  // namespace weir::dataplane
