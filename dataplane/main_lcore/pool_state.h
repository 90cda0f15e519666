// The operator-visible state of every pool's backends (up, down, draining; weight), kept on the
// main lcore, and the immutable PoolPlans built from it for the workers. A change builds a new
// plan (a new Maglev table over the backends that take new connections) off the packet path;
// the workers receive it by message (WorkerMessage, dataplane/worker.h, posted by
// running_dataplane.cc).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "dataplane/proxy/proxy.h"

namespace weir::dataplane {

enum class BackendState : uint8_t { up, down, draining };
std::string_view name_of(BackendState state);
std::optional<BackendState> backend_state_from(std::string_view name);

class PoolStates {
 public:
  explicit PoolStates(const config::Config& config);

  size_t pool_count() const { return pools_.size(); }
  const config::Pool& pool(size_t i) const { return pools_[i].config; }
  BackendState state(size_t pool, size_t backend) const {
    return pools_[pool].backends[backend].state;
  }
  uint32_t weight(size_t pool, size_t backend) const {
    return pools_[pool].backends[backend].weight;
  }
  std::optional<size_t> find_pool(std::string_view name) const;
  std::optional<size_t> find_backend(size_t pool, std::string_view name) const;

  // Changes a backend; returns an error message (naming the rule) or "" when applied.
  std::string set(size_t pool, size_t backend, std::optional<BackendState> state,
                  std::optional<uint32_t> weight);

  uint16_t slot(size_t pool, size_t backend) const { return pools_[pool].backends[backend].slot; }

  // A reload: a pool's new configuration (backends matched by name keep their state and their
  // counters' slot; new ones are up), or a new pool appended. Return an error or "".
  std::string replace(size_t pool, const config::Pool& config);
  std::string add(const config::Pool& config);

  // The plan for `pool` as it stands.
  std::shared_ptr<proxy::PoolPlan> plan(size_t pool) const;

 private:
  struct Backend {
    BackendState state = BackendState::up;
    uint32_t weight = 1;
    uint16_t slot = 0;
  };
  struct Pool {
    config::Pool config;
    std::vector<Backend> backends;
    uint16_t next_slot = 0;  // slots are never reused: a removed backend's sessions keep theirs
  };
  std::vector<Pool> pools_;
};

}  // namespace weir::dataplane
