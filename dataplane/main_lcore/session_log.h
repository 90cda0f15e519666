// The session log, on the main lcore: each sampled session of a listener with
// `session_log_sample` (docs/configuration.md), as a worker reported it when the session ended
// (dataplane/proxy/session_records.h), named and written as one info line in nginx stream's
// access_log spirit: client, backend, bytes each way, duration, how it ended. Off the packet path.
// A storm of short sessions must not become a storm of log lines (issue 16's Jawas seed: a server
// brought down by its own syslog), so besides the sampling and the workers' bounded rings (a full
// ring drops and counts), each listener's lines are rate-limited (kBurst at once, then one every
// kIntervalUs) and the lines held back are counted and said by the next line let through.
// No DPDK here: unit-tested on its own (tests/unit/frame_event_log_test.cc).
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "dataplane/main_lcore/frame_event_log.h"
#include "dataplane/main_lcore/listener_log_limits.h"
#include "dataplane/proxy/session_records.h"

namespace weir::dataplane {

// The line (without the logger's time and level). `start_unix_us`: when the session was accepted.
std::string format_session_record(const proxy::SessionRecord& record, const FrameEventNames& names,
                                  uint64_t start_unix_us);

class SessionLog {
 public:
  static constexpr uint32_t kBurst = 100;
  static constexpr uint64_t kIntervalUs = 100'000;  // 10 lines a second per listener after that
  using Sink = std::function<void(log::Level, const std::string&)>;

  explicit SessionLog(Sink sink = [](log::Level level,
                                     const std::string& line) { log::write(level, line); })
      : sink_(std::move(sink)) {}

  // One record drained from a worker's ring; `now_us`: the main lcore's monotonic clock.
  void record(const proxy::SessionRecord& record, const FrameEventNames& names,
              uint64_t start_unix_us, uint64_t now_us);
  // After a drain: a line for each listener whose held-back lines were not said yet, once its
  // limit allows one.
  void report_suppressed(uint64_t now_us);

  uint64_t logged() const { return logged_; }
  uint64_t suppressed() const { return limits_.suppressed(); }

 private:
  Sink sink_;
  ListenerLogLimits limits_{kBurst, kIntervalUs};
  uint64_t logged_ = 0;
};

}  // namespace weir::dataplane
