#include "dataplane/worker.h"

#include <algorithm>

#include "dataplane/steering.h"

#include <rte_cycles.h>
#include <sys/prctl.h>
#include <time.h>

#include <stdexcept>
#include <string>

namespace weir::dataplane {
namespace {

// A gap between polls longer than this (or than four idle sleeps) is an absence: the worker was
// not scheduled, not asleep by choice.
constexpr uint64_t kMinAbsenceUs = 5'000;

uint64_t monotonic_us() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000u + static_cast<uint64_t>(ts.tv_nsec) / 1000u;
}

void sleep_us(uint32_t us) {
  timespec ts{.tv_sec = 0, .tv_nsec = static_cast<long>(us) * 1000};
  nanosleep(&ts, nullptr);
}

}  // namespace

Worker::Worker(const WorkerSettings& settings, std::unique_ptr<PacketIo> io,
               const net::StackConfig& stack_config, rte_mempool* mbuf_pool)
    : settings_(settings),
      io_(std::move(io)),
      tx_(*io_, port_counters_),
      net_stack_(stack_config, mbuf_pool, tx_, port_counters_, l3_counters_),
      tcp_(settings.tcp, net_stack_, mbuf_pool, tcp_counters_, settings.secret, monotonic_us()),
      proxy_(tcp_, net_stack_, mbuf_pool, settings.pools, settings.proxied, settings.flow_ownership,
             settings.tcp.time_wait_us),
      backoff_(settings.idle_mode, settings.max_sleep_us),
      absence_us_(std::max<uint64_t>(kMinAbsenceUs, 4 * uint64_t{settings.max_sleep_us})),
      mbuf_pool_(mbuf_pool) {
  net_stack_.set_transport(&tcp_);
  set_cluster_plan(settings.cluster);
  for (const ServiceListener& service : settings.services) listen_service(service);
  proxy_.start();
  const std::string in = "weir_in_" + std::to_string(settings.id);
  const std::string done = "weir_done_" + std::to_string(settings.id);
  inbox_ = rte_ring_create(in.c_str(), kInboxSize, SOCKET_ID_ANY, RING_F_SP_ENQ | RING_F_SC_DEQ);
  done_ = rte_ring_create(done.c_str(), kInboxSize, SOCKET_ID_ANY, RING_F_SP_ENQ | RING_F_SC_DEQ);
  if (inbox_ == nullptr || done_ == nullptr)
    throw std::runtime_error("cannot create worker " + std::to_string(settings.id) + "'s rings");
}

std::shared_ptr<const ClusterPlan> Worker::set_cluster_plan(
    std::shared_ptr<const ClusterPlan> plan) {
  // A single box asks nothing about unknown flows: no SYN cookie is checked twice for nothing.
  tcp_.set_miss_handler(plan != nullptr ? &cluster_ : nullptr);
  return cluster_.set_plan(std::move(plan));
}

void Worker::enable_steering(std::vector<rte_ring*> out, std::vector<rte_ring*> in,
                             bool steer_tcp) {
  share_arp_ = true;
  steer_tcp_ = steer_tcp;
  steer_out_ = std::move(out);
  steer_in_ = std::move(in);
}

// Hands `packet` to worker `to`. The port index rides in the mbuf's user hash field (Weir sets no
// RSS hash to keep there), and a stripped GUE packet's hop count above it.
void Worker::steer(PortIndex port, rte_mbuf* packet, uint16_t to, uint8_t hops) {
  packet->hash.usr = uint32_t{port} | uint32_t{hops} << 16;
  if (rte_ring_sp_enqueue(steer_out_[to], packet) != 0) {
    steering_counters_.ring_full.add();
    rte_pktmbuf_free(packet);
    return;
  }
  steering_counters_.handed_out.add();
}

void Worker::receive_inner(PortIndex port, rte_mbuf* frame, uint8_t hops, uint64_t now_us) {
  // The device placed the packet by its outer header, which says nothing of the inner flow.
  if (share_arp_) {
    const SteeringVerdict verdict = classify_for_steering(frame, settings_.flow_ownership);
    if (verdict.kind == SteeringClass::tcp && verdict.owner != settings_.id) {
      steer(port, frame, verdict.owner, hops);
      return;
    }
  }
  cluster_.set_arrival_hops(hops);
  net_stack_.receive(port, frame, now_us);
  cluster_.set_arrival_hops(0);
}

void Worker::receive(PortIndex port, rte_mbuf* packet, uint64_t now_us) {
  if (cluster_.enabled()) {
    uint8_t hops = 0;
    switch (cluster_.strip(port, packet, hops, now_us)) {
      case ClusterForwarder::Arrival::not_gue:
        break;
      case ClusterForwarder::Arrival::dropped:
        return;
      case ClusterForwarder::Arrival::inner:
        receive_inner(port, packet, hops, now_us);
        return;
    }
  }
  if (share_arp_) {
    // With RSS only ARP needs looking at: no hash is computed for the other packets.
    const SteeringVerdict verdict =
        steer_tcp_ ? classify_for_steering(packet, settings_.flow_ownership)
                   : SteeringVerdict{is_arp(packet) ? SteeringClass::arp : SteeringClass::other};
    if (verdict.kind == SteeringClass::tcp && verdict.owner != settings_.id) {
      steer(port, packet, verdict.owner);
      return;
    }
    if (verdict.kind == SteeringClass::arp) {
      // Every worker resolves neighbours for its own connections: each learns from every ARP
      // message, whichever queue it arrived on.
      for (uint16_t w = 0; w < settings_.flow_ownership.workers; ++w) {
        if (w == settings_.id) continue;
        rte_mbuf* copy = rte_pktmbuf_copy(packet, mbuf_pool_, 0, UINT32_MAX);
        if (copy == nullptr) break;
        steering_counters_.arp_copies.add();
        steer(port, copy, w);
      }
    }
  }
  net_stack_.receive(port, packet, now_us);
}

Worker::~Worker() {
  for (rte_ring* ring : steer_in_) {
    void* m = nullptr;
    while (rte_ring_sc_dequeue(ring, &m) == 0) rte_pktmbuf_free(static_cast<rte_mbuf*>(m));
    rte_ring_free(ring);
  }
  for (WorkerMessage* m = take_done(); m != nullptr; m = take_done()) delete m;
  void* pending = nullptr;
  while (inbox_ != nullptr && rte_ring_sc_dequeue(inbox_, &pending) == 0)
    delete static_cast<WorkerMessage*>(pending);
  rte_ring_free(inbox_);
  rte_ring_free(done_);
}

void Worker::listen_service(const ServiceListener& service) {
  tcp::ListenerHandler* handler = service.echo ? static_cast<tcp::ListenerHandler*>(&echo_)
                                               : static_cast<tcp::ListenerHandler*>(&discard_);
  tcp_.listen(service.address, service.port, handler, service.backlog);
}

bool Worker::post(WorkerMessage* message) {
  return rte_ring_sp_enqueue(inbox_, message) == 0;
}

WorkerMessage* Worker::take_done() {
  void* m = nullptr;
  if (done_ == nullptr || rte_ring_sc_dequeue(done_, &m) != 0) return nullptr;
  return static_cast<WorkerMessage*>(m);
}

void Worker::apply_messages() {
  void* m = nullptr;
  while (rte_ring_sc_dequeue(inbox_, &m) == 0) {
    auto* message = static_cast<WorkerMessage*>(m);
    switch (message->kind) {
      case WorkerMessage::Kind::pool:
        proxy_.update_pool(message->pool, message->plan, message->retired);
        break;
      case WorkerMessage::Kind::add_listener:
        proxy_.add_listener(std::move(*message->listener));
        break;
      case WorkerMessage::Kind::remove_listener:
        proxy_.remove_listener(message->name);
        break;
      case WorkerMessage::Kind::add_service: {
        // While the box is drained, set_accepting(true) opens it with the others.
        if (proxy_.accepting()) listen_service(message->service);
        break;
      }
      case WorkerMessage::Kind::remove_service:
        tcp_.unlisten(message->service.address, message->service.port);
        break;
      case WorkerMessage::Kind::listener_addresses:
        net_stack_.set_listener_addresses(std::move(message->addresses));
        break;
      case WorkerMessage::Kind::stop_listening:
        // A SYN to a listener removed here is answered with a RST, as on a closed port; the
        // addresses stay answered (ARP), for the sessions that go on.
        for (size_t i = 0; i < proxy_.listener_count(); ++i) {
          if (!proxy_.listener_retired(i)) proxy_.remove_listener(proxy_.listener(i).name);
        }
        for (const ServiceListener& s : message->services) tcp_.unlisten(s.address, s.port);
        break;
      case WorkerMessage::Kind::reset_sessions:
        message->count = proxy_.reset_all_sessions();
        break;
      case WorkerMessage::Kind::cluster_plan:
        message->cluster_plan = set_cluster_plan(std::move(message->cluster_plan));
        break;
      case WorkerMessage::Kind::set_accepting:
        if (message->accepting == proxy_.accepting()) break;
        proxy_.set_accepting(message->accepting);
        for (const ServiceListener& s : message->services) {
          if (message->accepting) {
            listen_service(s);
          } else {
            tcp_.unlisten(s.address, s.port);
          }
        }
        break;
      case WorkerMessage::Kind::tls_channel:
        proxy_.attach_tls_channel(message->tls_index, std::move(*message->tls_channel),
                                  message->tls_event_fd);
        break;
      case WorkerMessage::Kind::tls_channel_gone:
        proxy_.detach_tls_channel(message->tls_index);
        break;
    }
    // The done ring is as large as the inbox, and main drains it before posting more.
    rte_ring_sp_enqueue(done_, message);
  }
}

bool Worker::poll_once(uint64_t now_us) {
  std::array<rte_mbuf*, kBurstSize> burst{};
  bool found_work = false;
  // Timers due by now fire before this poll's packets are seen: a TIME-WAIT past its deadline is
  // gone before a SYN could need its 4-tuple (a source port rests exactly long enough for that),
  // however long the worker slept. The second tick below reclaims what this burst closed. After a
  // stall (the worker not scheduled on a busy machine) loss timers wait for the ring's ACKs.
  if (last_poll_us_ != 0 && now_us - last_poll_us_ > absence_us_)
    tcp_.worker_was_away(last_poll_us_, now_us);
  last_poll_us_ = now_us;
  tcp_.tick(now_us);
  for (PortIndex port = 0; port < io_->port_count(); ++port) {
    const uint16_t received = io_->receive(port, burst.data(), kBurstSize);
    if (received == 0) continue;
    found_work = true;
    PortCounters& counters = port_counters_[port];
    counters.rx_packets.add(received);
    uint64_t bytes = 0;
    for (uint16_t i = 0; i < received; ++i) bytes += rte_pktmbuf_pkt_len(burst[i]);
    counters.rx_bytes.add(bytes);
    for (uint16_t i = 0; i < received; ++i) receive(port, burst[i], now_us);
  }
  for (rte_ring* ring : steer_in_) {
    const unsigned taken = rte_ring_sc_dequeue_burst(ring, reinterpret_cast<void**>(burst.data()),
                                                     kBurstSize, nullptr);
    if (taken == 0) continue;
    found_work = true;
    steering_counters_.taken_in.add(taken);
    for (unsigned i = 0; i < taken; ++i) {
      const auto port = static_cast<PortIndex>(burst[i]->hash.usr & 0xffff);
      const auto hops = static_cast<uint8_t>(burst[i]->hash.usr >> 16);
      // A copied ARP message is learned from only (its receiver answered it); segments handed
      // over are this worker's to process.
      if (is_arp(burst[i])) {
        net_stack_.learn_from_shared_arp(port, burst[i], now_us);
      } else {
        cluster_.set_arrival_hops(hops);
        net_stack_.receive(port, burst[i], now_us);
        cluster_.set_arrival_hops(0);
      }
    }
  }
  apply_messages();
  if (settings_.id == 0 && cluster_.enabled()) {
    cluster_.send_heartbeats_if_due(
        mbuf_pool_,
        proxy_.accepting() ? net::gue::HeartbeatState::live : net::gue::HeartbeatState::draining,
        now_us);
  }
  net_stack_.tick(now_us);
  tcp_.tick(now_us);
  proxy_.tick(now_us);
  // The TLS workers' records, after this burst's bytes went to them; then what they produced
  // leaves with this loop's TX.
  if (proxy_.poll_tls()) found_work = true;
  tx_.flush_all();
  return found_work;
}

void Worker::run(const std::atomic<bool>& stop) {
  // The kernel's default 50 us timer slack would stretch every short backoff sleep; the backoff
  // policy already decides how long to sleep.
  prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);
  uint64_t last_tsc = rte_rdtsc();
  while (!stop.load(std::memory_order_relaxed)) {
    const bool found_work = poll_once(monotonic_us());
    const uint64_t now_tsc = rte_rdtsc();
    const uint64_t elapsed = now_tsc - last_tsc;
    last_tsc = now_tsc;
    loop_counters_.polls.add();
    loop_counters_.total_cycles.add(elapsed);
    if (found_work) {
      loop_counters_.busy_polls.add();
      loop_counters_.busy_cycles.add(elapsed);
    }
    if (const uint32_t sleep = backoff_.after_poll(found_work); sleep != 0) {
      loop_counters_.sleeps.add();
      sleep_us(sleep);
      const uint64_t after_sleep = rte_rdtsc();
      loop_counters_.total_cycles.add(after_sleep - last_tsc);
      last_tsc = after_sleep;
    }
  }
}

}  // namespace weir::dataplane
