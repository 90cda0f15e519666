// A worker lcore's state and poll loop. Shared-nothing: the Worker object owns everything the
// packet path touches (its queues' I/O, TX buffers, protocol state, counters), is cache-aligned,
// and is reached from other threads only through its counters (single writer, relaxed reads).
#pragma once

#include <rte_mempool.h>
#include <rte_ring.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>

#include "dataplane/cluster_forwarder.h"
#include "dataplane/counters.h"
#include "dataplane/idle_backoff.h"
#include "dataplane/net/stack.h"
#include "dataplane/packet_io.h"
#include "dataplane/proxy/proxy.h"
#include "dataplane/tcp/services.h"
#include "dataplane/tcp/tcp_stack.h"
#include "dataplane/tx_buffers.h"

namespace weir::dataplane {

// A listener the dataplane serves itself (protocol echo or discard).
struct ServiceListener {
  net::Ipv4Address address;
  uint16_t port = 0;
  bool echo = true;  // false: discard
  uint32_t backlog = 128;
};

// A change for a worker, made on the main lcore and applied by the worker between bursts. The
// worker hands every message back (with what it replaced) so that memory is freed off the
// packet path.
struct WorkerMessage {
  enum class Kind : uint8_t {
    pool,                // `plan` for pool `pool` (appended when pool == the worker's pool count)
    add_listener,        // `listener` (tcp, framed)
    remove_listener,     // `name`
    add_service,         // `service` (echo, discard)
    remove_service,      // `service`'s address and port
    listener_addresses,  // `addresses`: the addresses answered for (ARP, ICMP) besides the ports'
    // Shutdown (SIGTERM): every proxied listener and the `services` stop accepting; sessions go
    // on. Then, once the grace is over, every session left is reset; the worker sets `count`.
    stop_listening,
    reset_sessions,
    // The box's drain (weirctl drain-box): `accepting` false, every proxied listener and the
    // `services` stop accepting, sessions go on; true, they listen again. Reversible, unlike
    // stop_listening.
    set_accepting,
    // tls listeners (main_lcore/tls_worker_socket.h): the channel to TLS worker `tls_index`
    // (`tls_channel`, this worker's own memory, and `tls_event_fd`, its own dup of the eventfd
    // that wakes the TLS worker: the worker closes it), or that TLS worker gone.
    tls_channel,
    tls_channel_gone,
    // `cluster_plan`: the cluster's new peer set and owner table (null: no cluster). The worker
    // hands back the one it replaced in the same field.
    cluster_plan,
  };
  Kind kind = Kind::pool;
  size_t pool = 0;
  std::shared_ptr<const proxy::PoolPlan> plan;                  // the pool's new plan
  std::vector<std::shared_ptr<const proxy::PoolPlan>> retired;  // filled by the worker
  std::optional<proxy::ListenerPlan> listener;
  std::string name;
  ServiceListener service;
  std::vector<net::Ipv4Address> addresses;
  std::vector<ServiceListener> services;  // stop_listening, set_accepting: echo and discard
  bool accepting = true;                  // set_accepting
  size_t count = 0;                       // reset_sessions: the sessions the worker reset
  size_t tls_index = 0;
  std::shared_ptr<shm::ChannelMemory> tls_channel;  // shared: messages are copied (post_all)
  int tls_event_fd = -1;
  std::shared_ptr<const ClusterPlan> cluster_plan;
};

struct WorkerSettings {
  uint16_t id = 0;
  IdleMode idle_mode = IdleMode::backoff;
  uint32_t max_sleep_us = config::kDefaultMaxSleepUs;
  tcp::TcpSettings tcp;
  tcp::Secret secret{};  // ISNs, SYN cookies, the connection table's hash: one per process
  std::vector<ServiceListener> services;
  std::vector<std::shared_ptr<const proxy::PoolPlan>> pools;  // one per Config::pools entry
  std::vector<proxy::ListenerPlan> proxied;                   // tcp and framed listeners
  FlowOwnership flow_ownership;                // which worker owns a flow (flow_owner.h)
  std::shared_ptr<const ClusterPlan> cluster;  // null: a single box
};

class alignas(64) Worker {
 public:
  Worker(const WorkerSettings& settings, std::unique_ptr<PacketIo> io,
         const ::weir::net::StackConfig& stack_config, rte_mempool* mbuf_pool);
  ~Worker();

  // Main lcore: queues a message for the worker (false when its inbox is full; try later).
  bool post(WorkerMessage* message);
  // Main lcore: how many messages the inbox can take now.
  unsigned inbox_room() const { return rte_ring_free_count(inbox_); }
  // Main lcore: messages the worker has applied, handed back to be freed.
  WorkerMessage* take_done();

  // Rings between the workers (dataplane/steering.h), set up by the main lcore before the workers
  // start when there are several: `out[w]` carries what this worker hands to worker w (null for
  // itself), `in` the rings other workers fill for it. Single producer, single consumer each: no
  // atomic read-modify-write. Every ARP message is copied to every worker (RSS does not spread
  // ARP, so otherwise only one worker's neighbour table would learn); with `steer_tcp` (ports
  // without RSS) each TCP segment is also handed to the worker that owns its flow.
  void enable_steering(std::vector<rte_ring*> out, std::vector<rte_ring*> in, bool steer_tcp);
  // For tests: what this worker's L2/L3 stack has learned.
  const net::NeighbourTable& neighbours() const { return net_stack_.neighbours(); }
  const SteeringCounters& steering_counters() const { return steering_counters_; }
  // Main lcore: the heartbeats this worker received (relaxed atomics).
  const HeardHeartbeats& heard_heartbeats() const { return cluster_.heard(); }

  // Polls until `stop` becomes true. Runs on the worker's lcore.
  void run(const std::atomic<bool>& stop);

  // One iteration: receive a burst from every port, process it, run due timers, flush TX.
  // Returns whether any packet was received. Exposed for tests that drive a worker step by step.
  bool poll_once(uint64_t now_us);

  // Applies what the main lcore has posted (pool plans, listeners); every poll_once() calls it.
  void apply_messages();
  // Work done once before the first poll. Worker 0 announces the owned addresses (gratuitous ARP);
  // one announcement per address is enough whatever the number of workers.
  void start(uint64_t now_us) {
    net_stack_.start(now_us, settings_.id == 0);
    tx_.flush_all();
  }

  uint16_t id() const { return settings_.id; }
  static constexpr unsigned kInboxSize = 64;
  const std::array<PortCounters, kMaxPorts>& port_counters() const { return port_counters_; }
  const L3Counters& l3_counters() const { return l3_counters_; }
  const WorkerLoopCounters& loop_counters() const { return loop_counters_; }
  const TcpCounters& tcp_counters() const { return tcp_counters_; }
  const ClusterCounters& cluster_counters() const { return cluster_counters_; }
  const proxy::Proxy& proxy() const { return proxy_; }
  // Main lcore (the single consumer of the worker's frame event ring): the next event, if any.
  bool take_frame_event(proxy::FrameEvent& event) { return proxy_.take_frame_event(event); }
  bool take_session_record(proxy::SessionRecord& record) {
    return proxy_.take_session_record(record);
  }
  // Read from the main lcore (plain loads of values the worker writes; approximate by design).
  size_t tcp_connections() const { return tcp_.connections(); }
  size_t tcp_capacity() const { return tcp_.capacity(); }
  rte_mempool* mbuf_pool() const { return mbuf_pool_; }

 private:
  void listen_service(const ServiceListener& service);
  // Returns the plan it replaces.
  std::shared_ptr<const ClusterPlan> set_cluster_plan(std::shared_ptr<const ClusterPlan> plan);
  WorkerSettings settings_;
  std::unique_ptr<PacketIo> io_;
  std::array<PortCounters, kMaxPorts> port_counters_{};
  L3Counters l3_counters_{};
  WorkerLoopCounters loop_counters_{};
  TcpCounters tcp_counters_{};
  TxBuffers tx_;
  ::weir::net::Stack net_stack_;
  tcp::TcpStack tcp_;
  tcp::EchoService echo_{tcp_};
  tcp::DiscardService discard_{tcp_};
  proxy::Proxy proxy_;
  ClusterCounters cluster_counters_{};
  ClusterForwarder cluster_{net_stack_, cluster_counters_};
  IdleBackoff backoff_;
  // When the last poll began, and the gap between polls past which the worker counts as having
  // been away (a stall, not an idle sleep): TCP's loss timers then wait until it has read what
  // arrived meanwhile.
  uint64_t last_poll_us_ = 0;
  uint64_t absence_us_;
  void receive(PortIndex port, rte_mbuf* packet, uint64_t now_us);
  // A stripped GUE packet's inner frame: handled here or by the worker that owns its flow.
  void receive_inner(PortIndex port, rte_mbuf* frame, uint8_t hops, uint64_t now_us);
  // `hops`: how often a stripped GUE packet was forwarded (0 for anything else).
  void steer(PortIndex port, rte_mbuf* packet, uint16_t to, uint8_t hops = 0);

  rte_mempool* mbuf_pool_;
  bool share_arp_ = false;  // rings to the other workers exist
  bool steer_tcp_ = false;
  std::vector<rte_ring*> steer_out_;
  std::vector<rte_ring*> steer_in_;  // owned: freed with the worker
  SteeringCounters steering_counters_{};
  rte_ring* inbox_ = nullptr;  // main -> worker, single producer, single consumer
  rte_ring* done_ = nullptr;   // worker -> main
};

}  // namespace weir::dataplane
