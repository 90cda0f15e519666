// See tls_supervisor.h.
#include "control/tls_supervisor.h"

#include <algorithm>

namespace weir::control {

TlsSupervisor::TlsSupervisor(Options options, Spawn spawn, Signal signal)
    : options_(options), spawn_(std::move(spawn)), signal_(std::move(signal)) {
  slots_.resize(options_.workers);
  for (Slot& s : slots_) s.backoff_ms = options_.backoff_min_ms;
}

void TlsSupervisor::start(uint64_t now_ms) {
  for (size_t i = 0; i < slots_.size(); ++i) launch(i, now_ms);
}

void TlsSupervisor::launch(size_t slot, uint64_t now_ms) {
  Slot& s = slots_[slot];
  s.pid = spawn_(slot);
  s.started_ms = now_ms;
  if (s.pid < 0) ended(s, now_ms);
}

// Schedules the slot's restart: a worker that stayed up stable_ms starts again after the shortest
// delay; otherwise each end doubles the delay, up to backoff_max_ms.
void TlsSupervisor::ended(Slot& s, uint64_t now_ms) {
  s.pid = -1;
  if (now_ms - s.started_ms >= options_.stable_ms) s.backoff_ms = options_.backoff_min_ms;
  s.restart_at_ms = now_ms + s.backoff_ms;
  s.backoff_ms = std::min(s.backoff_ms * 2, options_.backoff_max_ms);
}

bool TlsSupervisor::exited(pid_t pid, uint64_t now_ms) {
  for (Slot& s : slots_) {
    if (s.pid != pid || pid < 0) continue;
    ended(s, now_ms);
    return true;
  }
  return false;
}

void TlsSupervisor::tick(uint64_t now_ms) {
  if (stopping_) return;
  for (size_t i = 0; i < slots_.size(); ++i) {
    if (slots_[i].pid >= 0 || now_ms < slots_[i].restart_at_ms) continue;
    ++restarts_;
    launch(i, now_ms);
  }
}

int TlsSupervisor::next_due_in(uint64_t now_ms) const {
  if (stopping_) return -1;
  int64_t soonest = -1;
  for (const Slot& s : slots_) {
    if (s.pid >= 0) continue;
    const int64_t in =
        s.restart_at_ms > now_ms ? static_cast<int64_t>(s.restart_at_ms - now_ms) : 0;
    if (soonest < 0 || in < soonest) soonest = in;
  }
  return static_cast<int>(soonest);
}

void TlsSupervisor::stop(int signal) {
  stopping_ = true;
  for (const Slot& s : slots_) {
    if (s.pid >= 0) signal_(s.pid, signal);
  }
}

size_t TlsSupervisor::running() const {
  return static_cast<size_t>(
      std::count_if(slots_.begin(), slots_.end(), [](const Slot& s) { return s.pid >= 0; }));
}

std::vector<pid_t> TlsSupervisor::pids() const {
  std::vector<pid_t> out;
  for (const Slot& s : slots_) {
    if (s.pid >= 0) out.push_back(s.pid);
  }
  return out;
}

}  // namespace weir::control
