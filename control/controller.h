// weir-control's state and decisions, apart from its sockets and loop (control/weir_control.cc):
// each backend's health (from the HealthChecker and from passive health), the operator's override
// (weirctl drain, down, up), the weights, the box's drain (weirctl drain-box), and what the
// dataplane was last told. The effective state is the override if any, else down when either the
// active checks or passive health say so, else up; only a change of the effective state or weight
// is sent to the dataplane, so health results that cross no threshold cost nothing, and a flapping
// backend costs one message per rise/fall crossing at most.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "config/config.h"

namespace weir::control {

// One set_backend the dataplane should receive.
struct BackendChange {
  std::string pool;
  std::string backend;
  std::string state;  // up, down, draining
  uint32_t weight = 1;
};

class Controller {
 public:
  explicit Controller(std::shared_ptr<const config::Config> config) { adopt(std::move(config)); }

  const config::Config& config() const { return *config_; }

  // The health checker's verdict for a backend.
  void health(const std::string& pool, const std::string& backend, bool up);
  // Passive health's verdict (control/passive_health.h): down while marked down.
  void passive(const std::string& pool, const std::string& backend, bool down);
  // weirctl: "down", "draining", "up" (a manual state), or "auto" (clear the override); and/or a
  // weight. Returns an error message or "".
  std::string set(const std::string& pool, const std::string& backend,
                  const std::optional<std::string>& state, const std::optional<uint32_t>& weight);

  // What must be sent so that the dataplane matches: the changed backends, or all of them when
  // `everything` (the dataplane restarted or weir-control just connected). Marks them sent.
  std::vector<BackendChange> pending(bool everything);

  // Whether pools[pool_index] has a backend whose effective state is up (what a VIP announcement
  // needs: control/bird_announcer.h).
  bool pool_has_backend_up(size_t pool_index) const;

  // weirctl drain-box / undrain-box: no listener of the box accepts new connections while drained.
  void drain_box(bool drained) { box_drained_ = drained; }
  bool box_drained() const { return box_drained_; }
  // Whether the dataplane must be told the box's state (changed, or `everything`): the value to
  // send, marked sent.
  std::optional<bool> pending_box(bool everything);
  // After a refused send: sent again by the next pending_box.
  void box_unsent() { sent_box_.reset(); }

  // The operator's overrides and the box's drain, for the state file (control/state_file.h):
  //   {"box_drained": false, "backends": [{"pool", "backend", "state"?, "weight"?}]}
  nlohmann::json overrides() const;
  // Applies a state file's overrides; an entry this configuration cannot take (a backend no longer
  // configured, a bad value) is skipped with a sentence in `skipped`. Returns "" or why the whole
  // document was refused (not of the shape above), changing nothing.
  std::string restore(const nlohmann::json& state, std::vector<std::string>& skipped);

  // A validated new configuration the dataplane has applied: appends the differences it makes
  // here (backends added or removed, weights) as sentences. Returns an error or "".
  std::string reload(std::shared_ptr<const config::Config> next, std::vector<std::string>& changes);

  // For weirctl backends and the metrics: per backend, health, override, effective state, weight.
  nlohmann::json describe() const;

 private:
  struct Backend {
    bool checked = false;  // the pool has health checks
    bool health_up = true;
    bool passive_down = false;
    std::optional<std::string> override_state;
    std::optional<uint32_t> override_weight;
    uint32_t config_weight = 1;
    std::string sent_state;  // "" until sent
    uint32_t sent_weight = 0;
  };
  using Key = std::pair<std::string, std::string>;

  void adopt(std::shared_ptr<const config::Config> config);
  static std::string effective_state(const Backend& b);
  static uint32_t effective_weight(const Backend& b);

  std::shared_ptr<const config::Config> config_;
  std::map<Key, Backend> backends_;
  std::vector<Key> order_;  // config order, for output
  bool box_drained_ = false;
  std::optional<bool> sent_box_;  // none until sent
};

}  // namespace weir::control
