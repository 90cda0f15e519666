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
  return b.health_up && !b.passive_down ? "up" : "down";
}

uint32_t Controller::effective_weight(const Backend& b) {
  return b.override_weight.value_or(b.config_weight);
}

void Controller::health(const std::string& pool, const std::string& backend, bool up) {
  if (auto it = backends_.find({pool, backend}); it != backends_.end()) it->second.health_up = up;
}

void Controller::passive(const std::string& pool, const std::string& backend, bool down) {
  if (auto it = backends_.find({pool, backend}); it != backends_.end())
    it->second.passive_down = down;
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

bool Controller::pool_has_backend_up(size_t pool_index) const {
  if (pool_index >= config_->pools.size()) return false;
  const std::string& pool = config_->pools[pool_index].name;
  for (const auto& [key, backend] : backends_) {
    if (key.first == pool && effective_state(backend) == "up") return true;
  }
  return false;
}

std::optional<bool> Controller::pending_box(bool everything) {
  if (!everything && sent_box_ == box_drained_) return std::nullopt;
  sent_box_ = box_drained_;
  return box_drained_;
}

nlohmann::json Controller::overrides() const {
  nlohmann::json backends = nlohmann::json::array();
  for (const Key& key : order_) {
    const Backend& b = backends_.at(key);
    if (!b.override_state && !b.override_weight) continue;
    nlohmann::json entry{{"pool", key.first}, {"backend", key.second}};
    if (b.override_state) entry["state"] = *b.override_state;
    if (b.override_weight) entry["weight"] = *b.override_weight;
    backends.push_back(std::move(entry));
  }
  return {{"box_drained", box_drained_}, {"backends", backends}};
}

std::string Controller::restore(const nlohmann::json& state, std::vector<std::string>& skipped) {
  if (!state.is_object()) return "not a JSON object";
  const auto box = state.find("box_drained");
  if (box != state.end() && !box->is_boolean()) return "\"box_drained\" is not true or false";
  const auto list = state.find("backends");
  if (list != state.end() && !list->is_array()) return "\"backends\" is not a list";
  if (box != state.end()) box_drained_ = box->get<bool>();
  if (list == state.end()) return "";
  for (size_t i = 0; i < list->size(); ++i) {
    const nlohmann::json& entry = (*list)[i];
    const std::string where = "backends[" + std::to_string(i) + "]";
    if (!entry.is_object() || !entry.contains("pool") || !entry["pool"].is_string() ||
        !entry.contains("backend") || !entry["backend"].is_string()) {
      skipped.push_back(where + ": no \"pool\" and \"backend\" strings");
      continue;
    }
    std::optional<std::string> override_state;
    std::optional<uint32_t> weight;
    if (entry.contains("state")) {
      if (!entry["state"].is_string() || entry["state"] == "auto") {
        skipped.push_back(where + ": \"state\" is not up, down or draining");
        continue;
      }
      override_state = entry["state"].get<std::string>();
    }
    if (entry.contains("weight")) {
      if (!entry["weight"].is_number_unsigned() || entry["weight"].get<uint64_t>() > UINT32_MAX) {
        skipped.push_back(where + ": \"weight\" is not a positive integer");
        continue;
      }
      weight = entry["weight"].get<uint32_t>();
    }
    const std::string pool = entry["pool"], backend = entry["backend"];
    if (const std::string error = set(pool, backend, override_state, weight); !error.empty())
      skipped.push_back(where + " (" + pool + "/" + backend + "): " + error);
  }
  return "";
}

std::string Controller::reload(std::shared_ptr<const config::Config> next,
                               std::vector<std::string>& changes) {
  // The dataplane has applied the structure (listeners, pools, backends); what is left here is
  // each backend's weight and the health checks. Backends keep their health and override by name.
  for (const config::Pool& pool : next->pools) {
    for (const config::Backend& backend : pool.backends) {
      const auto it = backends_.find({pool.name, backend.name});
      if (it == backends_.end()) {
        changes.push_back("backend " + pool.name + "/" + backend.name + " added");
      } else if (it->second.config_weight != backend.weight && it->second.override_weight) {
        changes.push_back("weight of " + pool.name + "/" + backend.name + " stays " +
                          std::to_string(*it->second.override_weight) +
                          " (set by weirctl; the file says " + std::to_string(backend.weight) +
                          ")");
      } else if (it->second.config_weight != backend.weight) {
        changes.push_back("weight of " + pool.name + "/" + backend.name + ": " +
                          std::to_string(it->second.config_weight) + " -> " +
                          std::to_string(backend.weight));
      }
    }
  }
  for (const Key& key : order_) {
    bool kept = false;
    for (const config::Pool& pool : next->pools) {
      for (const config::Backend& backend : pool.backends)
        kept = kept || (pool.name == key.first && backend.name == key.second);
    }
    if (!kept) changes.push_back("backend " + key.first + "/" + key.second + " removed");
  }
  const std::map<Key, Backend> before = backends_;
  adopt(std::move(next));
  // The dataplane took every kept backend's weight from the file (apply_config): that is what it
  // holds now, so a weight set by weirctl is sent again by the next pending(), not lost.
  for (auto& [key, b] : backends_) {
    if (before.contains(key)) b.sent_weight = b.config_weight;
  }
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
                   {"passive", b.passive_down ? "down" : "ok"},
                   {"state", effective_state(b)},
                   {"weight", effective_weight(b)}});
  }
  return out;
}

}  // namespace weir::control
