#include "control/cluster_membership.h"

#include "common/log.h"

namespace weir::control {

void ClusterMembership::configure(const config::Config& config, uint64_t now_ms) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!config.cluster) {
    membership_.reset();
    signature_.clear();
    return;
  }
  const config::Cluster& cluster = *config.cluster;
  std::string signature = cluster.node + "|" + std::to_string(cluster.heartbeat.interval_ms) + "|" +
                          std::to_string(cluster.heartbeat.missed);
  std::vector<std::string> names;
  for (const config::ClusterPeer& peer : cluster.peers) {
    names.push_back(peer.name);
    signature += "|" + peer.name;
  }
  if (membership_ && signature == signature_) return;
  std::map<std::string, std::string> kept;
  if (membership_) {
    for (const auto& [name, state] : membership_->overrides()) {
      if (std::find(names.begin(), names.end(), name) != names.end()) kept[name] = state;
    }
  }
  membership_.emplace(std::move(names), cluster.node_index, cluster.heartbeat.interval_ms,
                      cluster.heartbeat.missed);
  membership_->set_overrides(kept);
  membership_->restart(now_ms);
  signature_ = std::move(signature);
  interval_ms_ = cluster.heartbeat.interval_ms;
  next_ms_ = now_ms;
}

void ClusterMembership::dataplane_restarted(uint64_t now_ms) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (membership_) membership_->restart(now_ms);
}

std::string ClusterMembership::step(channel::LineClient& dataplane, bool drained, bool again,
                                    uint64_t now_ms) {
  if (!enabled()) return "";
  next_ms_ = now_ms + interval_ms_;
  std::string error;
  const auto box = dataplane.call(nlohmann::json{{"op", "box"}}, error);
  if (!box || !box->value("ok", false)) return "the dataplane's box: " + error;
  const nlohmann::json* heard = nullptr;
  if (const auto cluster = box->find("cluster"); cluster != box->end() && cluster->is_object()) {
    if (const auto h = cluster->find("heard"); h != cluster->end()) heard = &*h;
  }
  std::optional<Membership::States> states;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    membership_->observe(heard_from_box(heard != nullptr ? *heard : nlohmann::json()), drained,
                         now_ms);
    states = membership_->to_send(again);
  }
  if (!states) return "";
  const auto reply =
      dataplane.call(nlohmann::json{{"op", "cluster_peers"}, {"peers", *states}}, error);
  if (!reply || !reply->value("ok", false))
    return "the dataplane refused the cluster peers' states: " +
           (reply ? reply->value("error", std::string()) : error);
  std::string list;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    membership_->sent(*states);
  }
  for (const auto& [name, state] : *states) list += " " + name + "=" + state;
  // `again`: to a dataplane that (re)started; else a change.
  log::printf(log::Level::notice, "%s:%s",
              again ? "sent the cluster peers' states to the dataplane" : "cluster peers",
              list.c_str());
  return "";
}

std::string ClusterMembership::override_states(const nlohmann::json& peers,
                                               channel::LineClient& dataplane, bool drained,
                                               uint64_t now_ms) {
  if (!enabled()) return "this box has no cluster section";
  if (!peers.is_object() || peers.empty())
    return "cluster_peers needs \"peers\" (a map of peer name to state)";
  std::map<std::string, std::string> states;
  for (const auto& [name, state] : peers.items()) {
    if (!state.is_string()) return "the state of peer \"" + name + "\" must be a string";
    states[name] = state.get<std::string>();
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (std::string error = membership_->set_overrides(states); !error.empty()) return error;
  }
  return step(dataplane, drained, false, now_ms);
}

nlohmann::json ClusterMembership::describe() const {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!membership_) return nullptr;
  return {{"states", membership_->states()},
          {"overrides", membership_->overrides()},
          {"peers_lost", membership_->peers_lost()}};
}

}  // namespace weir::control
