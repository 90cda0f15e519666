// Passive health (pools[].passive_health, docs/configuration.md): the dataplane's own experience of
// a backend, beside the active checks. A backend the health checks reach over the management
// network but the data path cannot (a firewall, a route, a VLAN on the dataplane's side) passes
// every check while each session to it fails; this marks it down, as HAProxy's `observe layer4`
// with `on-error mark-down` does.
//
// The errors are the dataplane's per-backend counters (summed over its workers, single-writer
// each): connect_failures (a RST to the SYN, no answer within connect_timeout_ms, no route) and
// resets (an established connection the backend reset or that timed out). The successes are its
// `connections` (backend connections established). weir-control looks at them at every poll of
// the dataplane (once a second): the errors since the last look are added to the backend's run;
// a look that also saw a success starts the run again from those errors. A run reaching
// error_limit marks the backend down for hold_down_ms; then it is up again unless the active
// checks (or the operator) say otherwise, and a new run must reach error_limit to take it down
// again. The first look after weir-control starts, or after the dataplane restarted (a counter
// went backwards), only takes the counters as they are: errors from before are not judged.
//
// A backend held down survives weir-control's restart: its hold-down's end, on the wall clock (a
// reboot resets the monotonic one), goes into the state file (control/state_file.h, key
// "passive_down") and is restored on start; one whose hold-down ended meanwhile comes back up.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "config/config.h"

namespace weir::control {

class PassiveHealth {
 public:
  struct Verdict {
    std::string pool;
    std::string backend;
    bool down = false;
    std::string reason;  // for the log: "12 errors in a row (error_limit 10)", "hold-down over"
  };

  // One look at the dataplane's `pools` reply (its "pools" list) at now_us (a monotonic clock):
  // the backends whose passive state changes. Pools without passive_health are not tracked.
  std::vector<Verdict> observe(const config::Config& config, const nlohmann::json& pools,
                               uint64_t now_us);

  // Per tracked backend: {"pool", "backend", "down", "errors_in_row", "mark_downs"}.
  nlohmann::json describe() const;

  // The backends held down at now_us, for the state file: [{"pool", "backend",
  // "down_until_unix_ms"}], the hold-down's end moved to the wall clock (unix_now_ms is now).
  nlohmann::json held_down(uint64_t now_us, uint64_t unix_now_ms) const;
  // A state file's "passive_down" list: each backend of a pool with passive_health whose hold-down
  // has not ended at unix_now_ms is down until then (at most the pool's hold_down_ms from now: a
  // clock set back or an edited file cannot hold a backend down longer). Returns the backends
  // restored down, and "... is up: its hold-down ended ..." entries (down false) for the others;
  // an entry this configuration cannot take is skipped with a sentence in `skipped`.
  std::vector<Verdict> restore(const config::Config& config, const nlohmann::json& held_down,
                               uint64_t now_us, uint64_t unix_now_ms,
                               std::vector<std::string>& skipped);

 private:
  struct Track {
    bool seen = false;
    uint64_t errors = 0;     // connect_failures + resets at the last look
    uint64_t successes = 0;  // connections at the last look
    uint64_t run = 0;        // errors in the current run
    bool down = false;
    uint64_t down_until_us = 0;
    uint64_t mark_downs = 0;
  };
  std::map<std::pair<std::string, std::string>, Track> tracks_;
};

}  // namespace weir::control
