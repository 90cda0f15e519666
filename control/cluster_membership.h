// weir-control's side of the heartbeats (docs/scale-out.md, "Membership"): every
// cluster.heartbeat.interval_ms it asks its dataplane (`box`) what it heard from each peer, feeds
// that to Membership (control/membership.h) with this box's drain, and sends the dataplane
// `cluster_peers` when the resulting states change. `weirctl cluster-peers` sets overrides here.
// Called from weir-control's main loop and admin handler (one thread); describe() is also read by
// the metrics threads, hence the lock.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>

#include "common/channel/line_client.h"
#include "config/config.h"
#include "control/membership.h"

namespace weir::control {

class ClusterMembership {
 public:
  // Follows the configuration: without `cluster`, nothing; a new peer list, node or heartbeat
  // settings start afresh (keeping the overrides of peers still listed).
  void configure(const config::Config& config, uint64_t now_ms);
  bool enabled() const { return membership_.has_value(); }
  // An interval since the last look.
  bool due(uint64_t now_ms) const { return enabled() && now_ms >= next_ms_; }
  // The dataplane (re)started: its heartbeat table is new and its peers all live.
  void dataplane_restarted(uint64_t now_ms);
  // One look (see above); `again`: send the states even if unchanged. "" or what went wrong.
  std::string step(channel::LineClient& dataplane, bool drained, bool again, uint64_t now_ms);
  // weirctl cluster-peers: {name: live|draining|gone|auto}; sent at once. "" or the error.
  std::string override_states(const nlohmann::json& peers, channel::LineClient& dataplane,
                              bool drained, uint64_t now_ms);
  // {"states", "overrides", "peers_lost"}, or null without a cluster.
  nlohmann::json describe() const;

 private:
  mutable std::mutex mutex_;
  std::optional<Membership> membership_;
  std::string signature_;  // what membership_ was built from
  uint32_t interval_ms_ = 0;
  uint64_t next_ms_ = 0;
};

}  // namespace weir::control
