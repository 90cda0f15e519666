// Scale-out's packet path (docs/scale-out.md, "The packet path"): a worker's handling of packets
// of flows this box holds no state for, and of the packets other boxes forward to it. One per
// worker, shared-nothing; the plan it reads is immutable and shared by every worker of the box.
//
//   - A TCP segment to a VIP that matches no connection (TcpStack's FlowMissHandler): a SYN is
//     this box's if it is the flow's primary, else forwarded to the primary; any other segment
//     is forwarded to the primary, or, by the primary, to the secondary (the second chance), and
//     is this box's only where no other box could hold it (no secondary) or it completes one of
//     this box's SYN cookies. Segments to this box's own addresses (backend connections) are
//     never forwarded: they cannot belong to another box.
//   - A GUE packet (net/gue.h) from a peer to this box's cluster address: checked, stripped in
//     place and received as the inner packet, remembering how often it was forwarded. A packet
//     forwarded twice is never forwarded again: with no state here it is dropped, not answered
//     with a RST (the flow may live on a box whose table disagrees, and a RST would kill it).
// Replies leave the owner for the client directly (direct server return): the owner's TCP sends
// them through its own route, never back through the box the packet came in by.
#pragma once

#include <rte_mbuf.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "common/owner_table.h"
#include "dataplane/counters.h"
#include "dataplane/net/gue.h"
#include "dataplane/net/stack.h"
#include "dataplane/tcp/tcp_stack.h"

namespace weir::config {
struct Cluster;
}

namespace weir::dataplane {

// What every worker of a box knows of the cluster: built on the main lcore when the peer set
// changes, then read-only.
struct ClusterPlan {
  ClusterPlan(std::span<const cluster::Peer> peers, std::vector<net::Ipv4Address> addresses,
              uint8_t self, uint32_t rows = cluster::kDefaultRows);

  // The peer with this cluster address (an index into addresses and the owner table's input).
  std::optional<uint8_t> peer_at(net::Ipv4Address address) const;

  std::vector<net::Ipv4Address> addresses;  // by peer index: the order the table was built in
  uint8_t self;                             // this box
  cluster::OwnerTable table;
  uint64_t heartbeat_interval_us = 300'000;  // cluster.heartbeat.interval_ms
};

// The last heartbeat a worker received from each peer (by index into cluster.peers). Written only
// by its worker, read by the main lcore (the `box` operation), which takes the latest over the
// workers: relaxed atomics, a heartbeat's fields may be read from two different heartbeats, each
// of which is a whole value.
struct HeardHeartbeats {
  struct Peer {
    std::atomic<uint64_t> at_us{0};  // monotonic_us() when received; 0: never
    std::atomic<uint32_t> sequence{0};
    std::atomic<uint8_t> state{0};  // net::gue::HeartbeatState
  };
  std::array<Peer, cluster::kMaxPeers> peers;
};

// The plan for `cluster` with each peer's state, by index into cluster.peers (empty: every peer
// live, as at start).
std::shared_ptr<const ClusterPlan> cluster_plan_for(
    const config::Cluster& cluster, std::span<const cluster::PeerState> states = {});

class ClusterForwarder final : public tcp::FlowMissHandler {
 public:
  ClusterForwarder(net::Stack& stack, ClusterCounters& counters)
      : stack_(stack), counters_(counters) {}

  // Between bursts. Null: no cluster (nothing is forwarded, GUE is not recognised). Returns the
  // plan it replaces, to be freed off the worker.
  std::shared_ptr<const ClusterPlan> set_plan(std::shared_ptr<const ClusterPlan> plan) {
    plan_.swap(plan);
    return plan;
  }
  bool enabled() const { return plan_ != nullptr; }

  enum class Arrival : uint8_t {
    not_gue,  // not a GUE packet to this box: `frame` is untouched
    dropped,  // a GUE packet refused (counted), or a heartbeat taken note of; `frame` is freed
    inner,    // stripped: `frame` is now the Ethernet header and the inner packet; `hops` set
  };
  // Looks at a received Ethernet frame.
  Arrival strip(PortIndex port, rte_mbuf* frame, uint8_t& hops, uint64_t now_us);

  // One worker of the box sends the heartbeats: to every other peer, whatever its state (a gone
  // box may come back), each plan.heartbeat_interval_us, with this box's state.
  void send_heartbeats_if_due(rte_mempool* pool, net::gue::HeartbeatState state, uint64_t now_us);
  const HeardHeartbeats& heard() const { return heard_; }

  // How often the packet being received was forwarded already (0 unless it came in GUE): set
  // around each net::Stack::receive() by the worker, read when the packet is diverted.
  void set_arrival_hops(uint8_t hops) { arrival_hops_ = hops; }

  // tcp::FlowMissHandler
  bool divert(PortIndex port, const tcp::FourTuple& tuple, net::TcpFlags flags,
              bool completes_cookie, rte_mbuf* packet, uint64_t now_us) override;

 private:
  void forward(rte_mbuf* packet, uint8_t to, uint64_t flow_hash, bool second_chance,
               uint64_t now_us);

  net::Stack& stack_;
  ClusterCounters& counters_;
  std::shared_ptr<const ClusterPlan> plan_;
  uint8_t arrival_hops_ = 0;
  HeardHeartbeats heard_;
  uint64_t next_heartbeat_us_ = 0;
  uint32_t heartbeat_sequence_ = 0;
};

}  // namespace weir::dataplane
