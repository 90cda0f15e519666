#include "control/membership.h"

#include <nlohmann/json.hpp>

#include <algorithm>

namespace weir::control {

Membership::Membership(std::vector<std::string> peers, size_t self, uint32_t interval_ms,
                       uint32_t missed)
    : peers_(std::move(peers)),
      self_(self),
      silence_ms_(uint64_t{interval_ms} * missed),
      heard_(peers_.size()),
      was_heard_alive_(peers_.size(), false) {}

void Membership::restart(uint64_t now_ms) {
  started_ = true;
  now_ms_ = now_ms;
  settled_at_ms_ = now_ms + silence_ms_;
  std::fill(heard_.begin(), heard_.end(), std::nullopt);
  std::fill(was_heard_alive_.begin(), was_heard_alive_.end(), false);
}

void Membership::observe(const std::map<std::string, Heard>& heard, bool self_draining,
                         uint64_t now_ms) {
  if (!started_) restart(now_ms);
  now_ms_ = now_ms;
  self_draining_ = self_draining;
  for (size_t i = 0; i < peers_.size(); ++i) {
    const auto it = heard.find(peers_[i]);
    heard_[i] = it == heard.end() ? std::nullopt : std::optional<Heard>(it->second);
    if (i == self_) continue;
    // A loss is a peer heard in time at the last look and silent too long now; a peer never
    // heard was never there.
    const bool fresh = heard_[i] && heard_[i]->ms_ago <= silence_ms_;
    if (was_heard_alive_[i] && !fresh) ++peers_lost_;
    was_heard_alive_[i] = fresh;
  }
}

std::string Membership::heartbeat_state(size_t peer) const {
  if (peer == self_) return self_draining_ ? "draining" : "live";
  const std::optional<Heard>& heard = heard_[peer];
  if (heard && heard->ms_ago <= silence_ms_) return heard->draining ? "draining" : "live";
  // Never heard, or silent too long: gone, unless the heartbeats have not had time yet.
  return now_ms_ >= settled_at_ms_ ? "gone" : "live";
}

std::string Membership::set_overrides(const std::map<std::string, std::string>& states) {
  for (const auto& [name, state] : states) {
    if (std::find(peers_.begin(), peers_.end(), name) == peers_.end())
      return "no peer named \"" + name + "\" in cluster.peers";
    if (state != "live" && state != "draining" && state != "gone" && state != "auto")
      return "the state of peer \"" + name + "\" must be live, draining, gone or auto";
  }
  for (const auto& [name, state] : states) {
    if (state == "auto") {
      overrides_.erase(name);
    } else {
      overrides_[name] = state;
    }
  }
  return "";
}

Membership::States Membership::states() const {
  States states;
  for (size_t i = 0; i < peers_.size(); ++i) {
    const auto it = overrides_.find(peers_[i]);
    states[peers_[i]] = it != overrides_.end() ? it->second : heartbeat_state(i);
  }
  return states;
}

std::optional<Membership::States> Membership::to_send(bool again) const {
  if (!started_ || (now_ms_ < settled_at_ms_ && overrides_.empty())) return std::nullopt;
  States now = states();
  if (!again && sent_ == now) return std::nullopt;
  return now;
}

std::map<std::string, Membership::Heard> heard_from_box(const nlohmann::json& heard) {
  std::map<std::string, Membership::Heard> out;
  if (!heard.is_object()) return out;
  for (const auto& [name, entry] : heard.items()) {
    if (!entry.is_object()) continue;
    const auto ms_ago = entry.find("ms_ago");
    const auto state = entry.find("state");
    if (ms_ago == entry.end() || !ms_ago->is_number_integer() || *ms_ago < 0 ||
        state == entry.end() || !state->is_string())
      continue;
    const std::string s = state->get<std::string>();
    if (s != "live" && s != "draining") continue;
    out[name] = {ms_ago->get<uint64_t>(), s == "draining"};
  }
  return out;
}

}  // namespace weir::control
