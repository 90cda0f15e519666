#include "control/controller.h"

namespace weir::control {

void Controller::adopt(std::shared_ptr<const config::Config> config) {
  std::map<Key, Backend> next;
  std::vector<Key> order;
  for (const config::Pool& pool : config->pools) {
    for (const config::Backend& backend : pool.backends) {
      Key key{pool.name, backend.name};
      Backend b;
      if (auto it = backends_.find(key); it != backends_.end()) b = it->second;  // keep its state
      b.config_weight = backend.weight;
      b.checked = pool.health.has_value();
      if (!b.checked) b.health_up = true;
      next[key] = b;
      order.push_back(key);
    }
  }
  backends_ = std::move(next);
  order_ = std::move(order);
  config_ = std::move(config);
}

std::string Controller::effective_state(const Backend& b) {
  if (b.override_state) return *b.override_state;
  return b.health_up ? "up" : "down";
}

uint32_t Controller::effective_weight(const Backend& b) {
  return b.override_weight.value_or(b.config_weight);
}

void Controller::health(const std::string& pool, const std::string& backend, bool up) {
  if (auto it = backends_.find({pool, backend}); it != backends_.end()) it->second.health_up = up;
}

std::string Controller::set(const std::string& pool, const std::string& backend,
                            const std::optional<std::string>& state,
                            const std::optional<uint32_t>& weight) {
  auto it = backends_.find({pool, backend});
  if (it == backends_.end()) return "no backend \"" + backend + "\" in a pool \"" + pool + "\"";
  if (state && *state != "up" && *state != "down" && *state != "draining" && *state != "auto")
    return "state \"" + *state + "\" is not one of up, down, draining, auto";
  if (weight && (*weight < 1 || *weight > config::kMaxWeight))
    return "weight " + std::to_string(*weight) + " is outside 1-" +
           std::to_string(config::kMaxWeight);
  if (state) {
    if (*state == "auto") {
      it->second.override_state.reset();
    } else {
      it->second.override_state = *state;
    }
  }
  if (weight) it->second.override_weight = *weight;
  return "";
}

std::vector<BackendChange> Controller::pending(bool everything) {
  std::vector<BackendChange> out;
  for (const Key& key : order_) {
    Backend& b = backends_[key];
    const std::string state = effective_state(b);
    const uint32_t weight = effective_weight(b);
    if (!everything && state == b.sent_state && weight == b.sent_weight) continue;
    out.push_back(BackendChange{key.first, key.second, state, weight});
    b.sent_state = state;
    b.sent_weight = weight;
  }
  return out;
}

std::string Controller::reload(std::shared_ptr<const config::Config> next,
                               std::vector<std::string>& changes) {
  // The dataplane changes backends' states and weights in place; listeners and pool membership
  // are fixed for its lifetime (docs/operations.md).
  const config::Config& now = *config_;
  if (next->listeners.size() != now.listeners.size() || next->pools.size() != now.pools.size())
    return "the new configuration adds or removes listeners or pools, which needs a dataplane "
           "restart; the running configuration stays";
  for (size_t i = 0; i < now.listeners.size(); ++i) {
    const auto& a = now.listeners[i];
    const auto& b = next->listeners[i];
    if (a.name != b.name || a.address != b.address || a.port != b.port ||
        a.protocol != b.protocol || a.pool != b.pool)
      return "listener \"" + a.name + "\" changes its name, address, port, protocol or pool, " +
             "which needs a dataplane restart; the running configuration stays";
  }
  for (size_t p = 0; p < now.pools.size(); ++p) {
    const auto& a = now.pools[p];
    const auto& b = next->pools[p];
    if (a.name != b.name || a.backends.size() != b.backends.size())
      return "pool \"" + a.name + "\" changes its name or its backends, which needs a " +
             "dataplane restart; the running configuration stays";
    for (size_t i = 0; i < a.backends.size(); ++i) {
      const auto& x = a.backends[i];
      const auto& y = b.backends[i];
      if (x.name != y.name || x.address != y.address || x.port != y.port)
        return "backend \"" + a.name + "/" + x.name + "\" changes its name, address or port, " +
               "which needs a dataplane restart; the running configuration stays";
      if (x.weight != y.weight)
        changes.push_back("weight of " + a.name + "/" + x.name + ": " + std::to_string(x.weight) +
                          " -> " + std::to_string(y.weight));
    }
    if (a.health.has_value() != b.health.has_value() ||
        (a.health &&
         (a.health->type != b.health->type || a.health->interval_ms != b.health->interval_ms ||
          a.health->timeout_ms != b.health->timeout_ms || a.health->rise != b.health->rise ||
          a.health->fall != b.health->fall)))
      changes.push_back("health checks of pool " + a.name);
  }
  adopt(std::move(next));
  return "";
}

nlohmann::json Controller::describe() const {
  nlohmann::json out = nlohmann::json::array();
  for (const Key& key : order_) {
    const Backend& b = backends_.at(key);
    out.push_back({{"pool", key.first},
                   {"backend", key.second},
                   {"health", !b.checked    ? "unchecked"
                              : b.health_up ? "up"
                                            : "down"},
                   {"override", b.override_state ? nlohmann::json(*b.override_state) : nullptr},
                   {"state", effective_state(b)},
                   {"weight", effective_weight(b)}});
  }
  return out;
}

}  // namespace weir::control
