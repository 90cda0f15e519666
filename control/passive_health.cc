#include "control/passive_health.h"

#include <algorithm>

namespace weir::control {
namespace {

uint64_t counter(const nlohmann::json& backend, const char* name) {
  const auto it = backend.find(name);
  return it != backend.end() && it->is_number_unsigned() ? it->get<uint64_t>() : 0;
}

}  // namespace

std::vector<PassiveHealth::Verdict> PassiveHealth::observe(const config::Config& config,
                                                           const nlohmann::json& pools,
                                                           uint64_t now_us) {
  std::vector<Verdict> out;
  std::map<std::pair<std::string, std::string>, Track> kept;
  if (!pools.is_array()) return out;
  for (const config::Pool& pool : config.pools) {
    if (!pool.passive_health) continue;
    const config::PassiveHealth& settings = *pool.passive_health;
    for (const nlohmann::json& p : pools) {
      if (!p.is_object() || p.value("name", "") != pool.name || !p.contains("backends") ||
          !p["backends"].is_array())
        continue;
      for (const nlohmann::json& b : p["backends"]) {
        if (!b.is_object() || !b.contains("name") || !b["name"].is_string()) continue;
        const std::pair<std::string, std::string> key{pool.name, b["name"].get<std::string>()};
        Track t = tracks_.contains(key) ? tracks_[key] : Track{};
        const uint64_t errors = counter(b, "connect_failures") + counter(b, "resets");
        const uint64_t successes = counter(b, "connections");
        if (!t.seen || errors < t.errors || successes < t.successes) {
          t.seen = true;  // a first look, or a restarted dataplane: a baseline only
          t.run = 0;
        } else {
          const uint64_t new_errors = errors - t.errors;
          if (successes > t.successes) t.run = 0;
          t.run += new_errors;
        }
        t.errors = errors;
        t.successes = successes;
        if (t.down && now_us >= t.down_until_us) {
          t.down = false;
          t.run = 0;
          out.push_back({key.first, key.second, false,
                         "hold-down of " + std::to_string(settings.hold_down_ms) + " ms over"});
        } else if (!t.down && t.run >= settings.error_limit) {
          t.down = true;
          t.down_until_us = now_us + uint64_t{settings.hold_down_ms} * 1000;
          ++t.mark_downs;
          out.push_back({key.first, key.second, true,
                         std::to_string(t.run) + " data-path errors in a row (error_limit " +
                             std::to_string(settings.error_limit) + ")"});
        }
        kept[key] = t;
      }
    }
  }
  // A backend no longer tracked (removed, or its pool's passive_health turned off) that was down
  // is reported up, so that nothing stays down for a setting that is gone.
  for (const auto& [key, t] : tracks_) {
    if (t.down && !kept.contains(key))
      out.push_back({key.first, key.second, false, "passive health no longer applies"});
  }
  tracks_ = std::move(kept);
  return out;
}

nlohmann::json PassiveHealth::describe() const {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& [key, t] : tracks_) {
    out.push_back({{"pool", key.first},
                   {"backend", key.second},
                   {"down", t.down},
                   {"errors_in_row", t.run},
                   {"mark_downs", t.mark_downs}});
  }
  return out;
}

nlohmann::json PassiveHealth::held_down(uint64_t now_us, uint64_t unix_now_ms) const {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& [key, t] : tracks_) {
    if (!t.down) continue;
    const uint64_t left_ms = t.down_until_us > now_us ? (t.down_until_us - now_us + 999) / 1000 : 0;
    out.push_back({{"pool", key.first},
                   {"backend", key.second},
                   {"down_until_unix_ms", unix_now_ms + left_ms}});
  }
  return out;
}

std::vector<PassiveHealth::Verdict> PassiveHealth::restore(const config::Config& config,
                                                           const nlohmann::json& held_down,
                                                           uint64_t now_us, uint64_t unix_now_ms,
                                                           std::vector<std::string>& skipped) {
  std::vector<Verdict> out;
  if (!held_down.is_array()) {
    skipped.push_back("\"passive_down\" is not a list");
    return out;
  }
  for (size_t i = 0; i < held_down.size(); ++i) {
    const nlohmann::json& entry = held_down[i];
    const std::string where = "passive_down[" + std::to_string(i) + "]";
    if (!entry.is_object() || !entry.contains("pool") || !entry["pool"].is_string() ||
        !entry.contains("backend") || !entry["backend"].is_string() ||
        !entry.contains("down_until_unix_ms") ||
        !entry["down_until_unix_ms"].is_number_unsigned()) {
      skipped.push_back(where + ": no \"pool\" and \"backend\" strings and \"down_until_unix_ms\"");
      continue;
    }
    const std::string pool_name = entry["pool"], backend = entry["backend"];
    const config::Pool* pool = nullptr;
    for (const config::Pool& p : config.pools) {
      if (p.name == pool_name) pool = &p;
    }
    bool configured = false;
    for (size_t b = 0; pool != nullptr && b < pool->backends.size(); ++b)
      configured = configured || pool->backends[b].name == backend;
    if (!configured || !pool->passive_health) {
      skipped.push_back(where + " (" + pool_name + "/" + backend +
                        "): " + (configured ? "its pool has no passive_health" : "not configured"));
      continue;
    }
    const uint64_t until_ms = entry["down_until_unix_ms"].get<uint64_t>();
    if (until_ms <= unix_now_ms) {
      out.push_back(
          {pool_name, backend, false, "its hold-down ended while weir-control was stopped"});
      continue;
    }
    const uint64_t left_ms =
        std::min<uint64_t>(until_ms - unix_now_ms, pool->passive_health->hold_down_ms);
    Track& t = tracks_[{pool_name, backend}];
    t = Track{};  // not seen: the first look takes the counters as a baseline
    t.down = true;
    t.down_until_us = now_us + left_ms * 1000;
    out.push_back({pool_name, backend, true,
                   "held down across weir-control's restart, " + std::to_string(left_ms) +
                       " ms of its hold-down left"});
  }
  return out;
}

}  // namespace weir::control
