#include "dataplane/control/pool_state.h"

namespace weir::dataplane {

std::string_view name_of(BackendState state) {
  switch (state) {
    case BackendState::up:
      return "up";
    case BackendState::down:
      return "down";
    case BackendState::draining:
      return "draining";
  }
  return "?";
}

std::optional<BackendState> backend_state_from(std::string_view name) {
  for (BackendState s : {BackendState::up, BackendState::down, BackendState::draining}) {
    if (name == name_of(s)) return s;
  }
  return std::nullopt;
}

PoolStates::PoolStates(const config::Config& config) {
  for (const config::Pool& pool : config.pools) {
    Pool p{pool, {}};
    for (const config::Backend& backend : pool.backends)
      p.backends.push_back(Backend{BackendState::up, backend.weight});
    pools_.push_back(std::move(p));
  }
}

std::optional<size_t> PoolStates::find_pool(std::string_view name) const {
  for (size_t i = 0; i < pools_.size(); ++i) {
    if (pools_[i].config.name == name) return i;
  }
  return std::nullopt;
}

std::optional<size_t> PoolStates::find_backend(size_t pool, std::string_view name) const {
  const auto& backends = pools_[pool].config.backends;
  for (size_t i = 0; i < backends.size(); ++i) {
    if (backends[i].name == name) return i;
  }
  return std::nullopt;
}

std::string PoolStates::set(size_t pool, size_t backend, std::optional<BackendState> state,
                            std::optional<uint32_t> weight) {
  if (weight && (*weight < 1 || *weight > config::kMaxWeight)) {
    return "weight " + std::to_string(*weight) + " is outside 1-" +
           std::to_string(config::kMaxWeight);
  }
  Backend& b = pools_[pool].backends[backend];
  if (state) b.state = *state;
  if (weight) b.weight = *weight;
  return "";
}

std::shared_ptr<proxy::PoolPlan> PoolStates::plan(size_t pool) const {
  const Pool& p = pools_[pool];
  std::vector<proxy::BackendPlan> backends;
  for (size_t i = 0; i < p.backends.size(); ++i) {
    const config::Backend& c = p.config.backends[i];
    const Backend& b = p.backends[i];
    backends.push_back(proxy::BackendPlan{c.name, c.address, c.port, b.weight,
                                          b.state == BackendState::up,
                                          b.state == BackendState::draining});
  }
  return proxy::plan_pool(p.config, std::move(backends));
}

}  // namespace weir::dataplane
