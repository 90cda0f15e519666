// Active health checks for weir-control: probes every backend of every pool that has a `health`
// map, over the host's kernel network, and reports when a backend goes down or comes back up.
//
// One HealthChecker is single-threaded and owns no thread: it is a set of non-blocking sockets and
// a timerfd in one epoll instance. The owner either calls poll(timeout_ms) in a loop, or adds fd()
// to its own epoll set (EPOLLIN) and calls poll(0) whenever it is readable. fd() becomes readable
// when a socket has news *or* when the next probe is due or a probe times out (the timerfd inside
// is always armed for the earliest deadline), so the owner never has to compute timeouts.
//
// Checks (pools[].health.type, docs/configuration.md):
//   tcp          the connect completes within timeout_ms.
//   http         connect, send "<request line>\r\nHost: <address>[:<port>]\r\nConnection: close
//                \r\n\r\n", read the status line; passes if the status is in [status_min,
//                status_max]. The port is left out of Host for port 80 (RFC 9110 7.2).
//   framed_ping  connect, send a Weir PING frame (random stream id, 8 random payload bytes, hop 0);
//                passes if the first frame back is a PONG with a good CRC, the same stream and
//                the same payload. Anything else fails with the first problem found.
// Every check has the whole of timeout_ms from the start of its connect to its verdict. The socket
// is then closed with an RST (SO_LINGER 0) so frequent checks leave no TIME_WAIT sockets behind.
//
// State and damping: every backend starts *up* (the dataplane starts with every backend up and a
// checker restart must not take a healthy pool down). It goes down after `fall` consecutive
// failures and back up after `rise` consecutive passes; one odd result in between resets the
// count, so a flapping backend produces a transition only when a run of results crosses a
// threshold, never one per check. A transition is queued exactly once per crossing.
//
// Scheduling: a target's first check starts at a random offset in [0, interval) after
// construction, each later one interval +-10% (uniform) after the start of the one before, or as
// soon as the one before finishes if that is later (timeout_ms may be close to interval_ms). The
// random source (offsets, jitter, PING stream ids and payloads) is seeded by the caller: the first
// offsets are reproducible; later draws follow the order in which checks finish.
//
// Cost: poll() is O(targets) on top of the events it handles, fine for thousands of backends.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "common/net/address.h"

namespace weir::control {

class HealthChecker {
 public:
  // One backend to check.
  struct Target {
    std::string pool;
    std::string backend;
    net::Ipv4Address address;
    uint16_t port = 0;
    config::Health health;
  };

  enum class Result : uint8_t { none, pass, fail };

  // Per-target state for metrics and logs. Times are now_us() values (CLOCK_MONOTONIC).
  struct Status {
    bool up = true;
    Result last_result = Result::none;  // none until the first check has finished
    std::string last_reason;            // of the last result: "status 200", "connect refused", ...
    uint32_t consecutive_passes = 0;
    uint32_t consecutive_failures = 0;
    uint64_t checks = 0;            // finished checks
    uint64_t failures = 0;          // finished checks that failed
    uint64_t transitions = 0;       // up/down changes
    uint64_t last_duration_us = 0;  // of the last finished check (a timeout: until it was noticed)
    uint64_t last_started_us = 0;   // start of the last finished check
    uint64_t next_check_at_us = 0;  // start of the next check (0 while one is in flight)
    bool in_flight = false;
  };

  // Queued when a backend crosses a threshold; take them with take_transitions().
  struct Transition {
    std::string pool;
    std::string backend;
    bool up = false;
    // Down: the reason of the failure that crossed `fall` ("timeout after 500 ms connecting").
    // Up: "N consecutive passes".
    std::string reason;
    uint64_t at_us = 0;  // when the deciding check finished
  };

  // Throws std::invalid_argument for a target the config loader would refuse (zero interval,
  // timeout, rise or fall; http without its request) and std::system_error if the epoll instance
  // or the timer cannot be created.
  HealthChecker(std::vector<Target> targets, uint64_t seed);
  ~HealthChecker();
  HealthChecker(const HealthChecker&) = delete;
  HealthChecker& operator=(const HealthChecker&) = delete;

  // The epoll fd, readable when poll(0) has work. Owned by the checker.
  int fd() const { return epoll_fd_; }

  // Waits up to timeout_ms (-1: until there is work; 0: not at all) for socket events or a due
  // deadline, handles them, starts the probes that are due and fails the ones past their timeout.
  // Returns after one round; call it in a loop. Throws std::system_error only if epoll or the timer
  // itself fails; a socket error is a failed check.
  void poll(int timeout_ms);

  // The transitions queued since the last call, oldest first.
  std::vector<Transition> take_transitions();

  size_t size() const { return targets_.size(); }
  const Target& target(size_t index) const { return targets_[index]; }
  const Status& status(size_t index) const;

  // CLOCK_MONOTONIC in microseconds: the clock of every time above.
  static uint64_t now_us();

 private:
  struct Probe;

  void start(size_t index, uint64_t now);
  void on_event(size_t index, uint32_t events);
  void on_connected(size_t index);
  bool flush_output(size_t index);  // false if the probe finished (failed) meanwhile
  void on_readable(size_t index);
  void finish(size_t index, bool pass, std::string reason);
  void run_due(uint64_t now);
  void arm_timer();
  void watch(size_t index, uint32_t events);

  std::vector<Target> targets_;
  std::vector<Probe> probes_;
  std::vector<Transition> transitions_;
  std::mt19937_64 rng_;
  int epoll_fd_ = -1;
  int timer_fd_ = -1;
};

// The targets for every backend of every pool that has a `health` map, in config order.
std::vector<HealthChecker::Target> health_targets(const config::Config& config);

// The status code of an HTTP/1.x status line ("HTTP/1.1 503 Service Unavailable", without the line
// end), or nullopt if the line is not one.
std::optional<int> parse_http_status(std::string_view line);

}  // namespace weir::control
