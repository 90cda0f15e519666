// The cluster's peer set as weir-control finds it (docs/scale-out.md, "Membership"). Every box's
// dataplane sends a heartbeat to every peer each cluster.heartbeat.interval_ms through the data
// link, carrying its state (live, or draining once `weirctl drain-box` made the dataplane stop
// accepting); the dataplane's `box` operation tells when it last heard each peer and in what
// state. From that, and from the operator's `weirctl cluster-peers` (an override per peer), this
// computes every peer's state for the dataplane's `cluster_peers`:
//   - a peer the operator set (live, draining or gone) has that state, whatever its heartbeats
//     say, until the operator sets it back to `auto`;
//   - this box is live, or draining while drained;
//   - another peer is the state its last heartbeat carried if that came within `missed`
//     intervals, else gone. A draining box that still holds sessions keeps heartbeating, so it
//     stays draining, never gone, until it stops or dies.
// Until `missed` intervals have passed since the start (or since the dataplane restarted) a peer
// never heard from counts as live, as the dataplane's own start does, and nothing is sent unless
// the operator set something: a box just started must not take every other box for gone.
// Pure: no clock, no I/O; weir_control.cc feeds it. Tested by tests/unit/membership_test.cc.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace weir::control {

class Membership {
 public:
  struct Heard {
    uint64_t ms_ago = 0;
    bool draining = false;
  };
  using States = std::map<std::string, std::string>;  // peer name -> live, draining or gone

  Membership(std::vector<std::string> peers, size_t self, uint32_t interval_ms, uint32_t missed);

  // At start and when the dataplane restarted (its heartbeat table is new): waits `missed`
  // intervals again before counting silence.
  void restart(uint64_t now_ms);
  // The dataplane's view of the heartbeats at `now_ms`: peers absent from `heard` were never heard.
  void observe(const std::map<std::string, Heard>& heard, bool self_draining, uint64_t now_ms);
  // weirctl cluster-peers: name -> live, draining, gone or auto (the heartbeats decide again).
  // Some peers or all; nothing changes when any name or state is wrong (the error says which).
  std::string set_overrides(const std::map<std::string, std::string>& states);
  const std::map<std::string, std::string>& overrides() const { return overrides_; }

  States states() const;
  // The states to send the dataplane: when they differ from the last sent, or `again` (a
  // dataplane that restarted); none before the heartbeats are settled, unless overridden.
  std::optional<States> to_send(bool again) const;
  void sent(const States& states) { sent_ = states; }

  // Peers whose heartbeats stopped (live or draining, then silent): for /metrics.
  uint64_t peers_lost() const { return peers_lost_; }

 private:
  std::string heartbeat_state(size_t peer) const;

  std::vector<std::string> peers_;
  size_t self_;
  uint64_t silence_ms_;  // interval_ms * missed
  uint64_t settled_at_ms_ = 0;
  uint64_t now_ms_ = 0;
  bool started_ = false;
  bool self_draining_ = false;
  std::vector<std::optional<Heard>> heard_;  // by peer index
  std::vector<bool> was_heard_alive_;        // by peer index: live or draining at the last look
  std::map<std::string, std::string> overrides_;
  std::optional<States> sent_;
  uint64_t peers_lost_ = 0;
};

// The `heard` object of the dataplane's `box` reply ({name: {ms_ago, state, sequence}}). Entries
// of the wrong shape are left out, as if never heard: a malformed reply never stops weir-control.
std::map<std::string, Membership::Heard> heard_from_box(const nlohmann::json& heard);

}  // namespace weir::control
