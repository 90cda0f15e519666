// The frame event log, on the main lcore: every corrupt or malformed frame a worker reported
// (dataplane/proxy/frame_events.h), named (listener, pool, backend) and
//   - written as one structured log line (warning), at most kBurst at once and then one a second
//     per listener; the first line let through after some were held back says how many, and a
//     listener whose lines were held back with no event since gets a line saying so;
//   - kept among the kRecent latest, which the control channel's `events` operation serves
//     (`weirctl events`);
//   - the last time of each path (pool, backend, direction), the Prometheus gauge
//     weir_backend_last_corrupt_frame_timestamp_seconds.
// No DPDK here: unit-tested on its own (tests/unit/frame_event_log_test.cc).
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <string>
#include <tuple>

#include "common/log.h"
#include "dataplane/main_lcore/listener_log_limits.h"
#include "dataplane/proxy/frame_events.h"

namespace weir::dataplane {

// The names the main lcore gives an event's indices.
struct FrameEventNames {
  std::string listener;
  std::string pool;
  std::string backend;  // "" when the session had no backend yet
};

// The log line's message (without the logger's time and level): key=value pairs, values without
// spaces. `unix_us`: when the worker inspected the frame.
std::string format_frame_event(const proxy::FrameEvent& event, const FrameEventNames& names,
                               uint64_t unix_us);
// The same as JSON, for `weirctl events`.
nlohmann::json frame_event_json(const proxy::FrameEvent& event, const FrameEventNames& names,
                                uint64_t unix_us);
// "2026-12-02T10:45:19.123456Z"
std::string utc_time(uint64_t unix_us);
// A name as a log value: spaces would break the key=value form ("-" when empty).
std::string log_value(const std::string& name);

class FrameEventLog {
 public:
  static constexpr size_t kRecent = 256;
  static constexpr uint32_t kBurst = 10;
  static constexpr uint64_t kIntervalUs = 1'000'000;
  using Sink = std::function<void(log::Level, const std::string&)>;

  explicit FrameEventLog(Sink sink = [](log::Level level,
                                        const std::string& line) { log::write(level, line); })
      : sink_(std::move(sink)) {}

  // One event drained from a worker's ring. `now_us`: the main lcore's monotonic clock (for the
  // rate limit).
  void record(const proxy::FrameEvent& event, const FrameEventNames& names, uint64_t unix_us,
              uint64_t now_us);
  // After a drain: a line for each listener whose held-back lines have not been reported yet,
  // once its limit allows one.
  void report_suppressed(uint64_t now_us);

  // The latest `limit` events, oldest first, each with its sequence number ("seq", from 1).
  nlohmann::json recent(size_t limit) const;
  // When the path last saw a corrupt or malformed frame (Unix time, µs); 0: never.
  uint64_t last_seen_unix_us(const std::string& pool, const std::string& backend,
                             uint8_t direction) const;

  uint64_t recorded() const { return recorded_; }
  uint64_t logged() const { return logged_; }
  uint64_t suppressed() const { return limits_.suppressed(); }

 private:
  Sink sink_;
  ListenerLogLimits limits_{kBurst, kIntervalUs};
  std::deque<nlohmann::json> recent_;
  std::map<std::tuple<std::string, std::string, uint8_t>, uint64_t> last_seen_;  // by path
  uint64_t recorded_ = 0;
  uint64_t logged_ = 0;
};

}  // namespace weir::dataplane
