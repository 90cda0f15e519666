// weir-control's state and decisions, apart from its sockets and loop (control/weir_control.cc):
// each backend's health (from the HealthChecker), the operator's override (weirctl drain, down,
// up), the weights, and what the dataplane was last told. The effective state is the override if
// any, else the health; only a change of the effective state or weight is sent to the dataplane,
// so health results that cross no threshold cost nothing, and a flapping backend costs one
// message per rise/fall crossing at most.
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
  // weirctl: "down", "draining", "up" (a manual state), or "auto" (clear the override); and/or a
  // weight. Returns an error message or "".
  std::string set(const std::string& pool, const std::string& backend,
                  const std::optional<std::string>& state, const std::optional<uint32_t>& weight);

  // What must be sent so that the dataplane matches: the changed backends, or all of them when
  // `everything` (the dataplane restarted or weir-control just connected). Marks them sent.
  std::vector<BackendChange> pending(bool everything);

  // A validated new configuration the dataplane has applied: appends the differences it makes
  // here (backends added or removed, weights) as sentences. Returns an error or "".
  std::string reload(std::shared_ptr<const config::Config> next, std::vector<std::string>& changes);

  // For weirctl backends and the metrics: per backend, health, override, effective state, weight.
  nlohmann::json describe() const;

 private:
  struct Backend {
    bool checked = false;  // the pool has health checks
    bool health_up = true;
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
};

}  // namespace weir::control
