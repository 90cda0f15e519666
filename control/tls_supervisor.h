// weir-control's supervision of the weir-tls-worker processes (docs/tls.md, "Worker crash"): it
// keeps tls.workers of them running, restarts one that ends with a back-off per slot (100 ms,
// doubling to 10 s; back to 100 ms after one that stayed up 60 s, so a worker crashing at start
// costs a start every 10 s, not a busy loop), counts the restarts, and stops them all on its own
// stop. Starting and signalling a process are the caller's functions, and the clock is passed in,
// so the schedule is tested without processes or waiting (tests/unit/tls_supervisor_test.cc).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <vector>

namespace weir::control {

class TlsSupervisor {
 public:
  struct Options {
    size_t workers = 1;
    uint64_t backoff_min_ms = 100;
    uint64_t backoff_max_ms = 10'000;
    uint64_t stable_ms = 60'000;  // up this long: the next crash starts from backoff_min_ms again
  };
  // Starts the worker of `slot`: its pid, or -1 (counted as a worker that ended at once).
  using Spawn = std::function<pid_t(size_t slot)>;
  using Signal = std::function<void(pid_t, int)>;

  TlsSupervisor(Options options, Spawn spawn, Signal signal);

  // Starts every worker.
  void start(uint64_t now_ms);
  // A child ended (from waitpid). False if it is not one of the workers.
  bool exited(pid_t pid, uint64_t now_ms);
  // Starts the workers whose back-off has passed.
  void tick(uint64_t now_ms);
  // Milliseconds until the next restart is due, or -1 if none is pending (a poll timeout).
  int next_due_in(uint64_t now_ms) const;
  // No more restarts; `signal` sent to every running worker (SIGTERM, then SIGKILL if need be).
  void stop(int signal);

  size_t running() const;
  uint64_t restarts() const { return restarts_; }
  std::vector<pid_t> pids() const;                              // the running workers'
  pid_t pid(size_t slot) const { return slots_.at(slot).pid; }  // -1 when not running
  // The delay before slot's next start (for status and tests).
  uint64_t backoff_ms(size_t slot) const { return slots_.at(slot).backoff_ms; }

 private:
  struct Slot {
    pid_t pid = -1;  // -1: not running
    uint64_t started_ms = 0;
    uint64_t restart_at_ms = 0;  // when not running
    uint64_t backoff_ms = 0;     // the delay the next end will wait
  };
  void launch(size_t slot, uint64_t now_ms);
  void ended(Slot& slot, uint64_t now_ms);

  Options options_;
  Spawn spawn_;
  Signal signal_;
  std::vector<Slot> slots_;
  uint64_t restarts_ = 0;
  bool stopping_ = false;
};

}  // namespace weir::control
