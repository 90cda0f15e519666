#include "dataplane/main_lcore/pool_state.h"

#include <stdexcept>

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
    if (std::string error = add(pool); !error.empty()) throw std::invalid_argument(error);
  }
}

std::string PoolStates::add(const config::Pool& config) {
  if (pools_.size() == proxy::Proxy::kMaxPools)
    return "more than " + std::to_string(proxy::Proxy::kMaxPools) + " pools";
  pools_.push_back(Pool{config, {}, 0});
  const std::string error = replace(pools_.size() - 1, config);
  if (!error.empty()) pools_.pop_back();
  return error;
}

std::string PoolStates::replace(size_t pool, const config::Pool& config) {
  Pool& p = pools_[pool];
  std::vector<Backend> next;
  uint16_t next_slot = p.next_slot;
  for (const config::Backend& backend : config.backends) {
    std::optional<size_t> old;
    for (size_t i = 0; i < p.config.backends.size() && i < p.backends.size(); ++i) {
      if (p.config.backends[i].name == backend.name) old = i;
    }
    if (old) {
      Backend b = p.backends[*old];
      b.weight = backend.weight;  // the file's weight wins on reload
      next.push_back(b);
    } else {
      if (next_slot == proxy::Proxy::kMaxBackendSlots)
        return "pool \"" + config.name + "\" would have had more than " +
               std::to_string(proxy::Proxy::kMaxBackendSlots) +
               " backends over the dataplane's life; restart it";
      next.push_back(Backend{BackendState::up, backend.weight, next_slot++});
    }
  }
  p.config = config;
  p.backends = std::move(next);
  p.next_slot = next_slot;
  return "";
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
    backends.push_back(proxy::BackendPlan{c.name, c.address, c.port, b.weight, b.slot,
                                          b.state == BackendState::up,
                                          b.state == BackendState::draining});
  }
  return proxy::plan_pool(p.config, std::move(backends));
}

}  // namespace weir::dataplane
