#include "dataplane/main_lcore/running_dataplane.h"

#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <array>

#include "common/channel/envelope.h"
#include "common/log.h"
#include "common/version.h"
#include "dataplane/counter_bindings.h"
#include "dataplane/main_lcore/session_log.h"
#include "dataplane/stats.h"

namespace weir::dataplane {
namespace {

const config::Listener* find_listener(const config::Config& c, const std::string& name) {
  for (const config::Listener& l : c.listeners) {
    if (l.name == name) return &l;
  }
  return nullptr;
}

// What of a tls listener the dataplane acts on: its inner protocol and its SNI routes (by pool
// name). Certificates are the TLS workers' business.
bool same_tls_routing(const config::Config& a_config, const config::Listener& a,
                      const config::Config& b_config, const config::Listener& b) {
  if (a.tls.has_value() != b.tls.has_value()) return false;
  if (!a.tls) return true;
  if (a.tls->inner != b.tls->inner || a.tls->sni_pools.size() != b.tls->sni_pools.size())
    return false;
  for (size_t i = 0; i < a.tls->sni_pools.size(); ++i) {
    const config::SniPool& x = a.tls->sni_pools[i];
    const config::SniPool& y = b.tls->sni_pools[i];
    if (x.server_name != y.server_name ||
        a_config.pools[x.pool].name != b_config.pools[y.pool].name)
      return false;
  }
  return true;
}

bool same_listener(const config::Config& a_config, const config::Listener& a,
                   const config::Config& b_config, const config::Listener& b) {
  const auto pool_name = [](const config::Config& c, const config::Listener& l) {
    return l.pool ? c.pools[*l.pool].name : std::string();
  };
  const config::Framed fa = a.framed.value_or(config::Framed{});
  const config::Framed fb = b.framed.value_or(config::Framed{});
  return a.address == b.address && a.port == b.port && a.protocol == b.protocol &&
         pool_name(a_config, a) == pool_name(b_config, b) &&
         a.framed.has_value() == b.framed.has_value() && fa.max_frame == fb.max_frame &&
         fa.on_corrupt == fb.on_corrupt && fa.stamp_hop == fb.stamp_hop &&
         fa.frame_timeout_ms == fb.frame_timeout_ms && a.proxy_protocol == b.proxy_protocol &&
         a.idle_timeout_ms == b.idle_timeout_ms && a.client_timeout_ms == b.client_timeout_ms &&
         a.server_timeout_ms == b.server_timeout_ms && a.max_connections == b.max_connections &&
         a.session_log_sample == b.session_log_sample && same_tls_routing(a_config, a, b_config, b);
}

// The parts a running dataplane keeps: EAL, ports, limits, idle policy, TCP, node id.
std::string fixed_difference(const config::Config& a, const config::Config& b) {
  if (a.dataplane.eal != b.dataplane.eal) return "dataplane.eal";
  if (a.dataplane.control_socket != b.dataplane.control_socket ||
      a.dataplane.control_socket_access != b.dataplane.control_socket_access)
    return "dataplane.control_socket";
  if (a.dataplane.ports.size() != b.dataplane.ports.size()) return "dataplane.ports";
  for (size_t i = 0; i < a.dataplane.ports.size(); ++i) {
    const config::Port& x = a.dataplane.ports[i];
    const config::Port& y = b.dataplane.ports[i];
    if (x.name != y.name || x.device != y.device || x.address != y.address ||
        x.prefix_length != y.prefix_length || x.gateway != y.gateway || x.mtu != y.mtu ||
        x.source_addresses != y.source_addresses)
      return "dataplane.ports";
  }
  if (a.dataplane.limits.connections != b.dataplane.limits.connections) return "dataplane.limits";
  if (a.dataplane.idle.mode != b.dataplane.idle.mode ||
      a.dataplane.idle.max_sleep_us != b.dataplane.idle.max_sleep_us)
    return "dataplane.idle";
  const config::Tcp& s = a.tcp;
  const config::Tcp& t = b.tcp;
  if (s.receive_buffer_bytes != t.receive_buffer_bytes ||
      s.send_buffer_bytes != t.send_buffer_bytes || s.min_rto_ms != t.min_rto_ms ||
      s.max_rto_ms != t.max_rto_ms || s.time_wait_ms != t.time_wait_ms ||
      s.congestion != t.congestion || s.min_mss != t.min_mss ||
      s.keepalive_idle_ms != t.keepalive_idle_ms ||
      s.keepalive_interval_ms != t.keepalive_interval_ms ||
      s.keepalive_probes != t.keepalive_probes ||
      s.fin_wait2_timeout_ms != t.fin_wait2_timeout_ms || s.max_time_wait != t.max_time_wait ||
      s.out_of_window_ack_interval_ms != t.out_of_window_ack_interval_ms)
    return "tcp";
  if (a.node_id != b.node_id) return "node_id";
  return "";
}

}  // namespace

nlohmann::json RunningDataplane::hello() {
  return {{"versions", {channel::kProtocolVersion}},
          {"node_id", config_->node_id},
          {"workers", workers_.size()},
          {"config", config_->source},
          {"pid", getpid()},
          {"version", version()},
          {"revision", revision()}};
}

nlohmann::json RunningDataplane::counters() {
  nlohmann::json out = stats_json(*config_, devices_, workers_);
  uint64_t dropped = 0;
  for (const auto& worker : workers_) dropped += worker->proxy().frame_events_dropped().get();
  const std::array<uint64_t, 4> values = {frame_events_.recorded(), dropped, frame_events_.logged(),
                                          frame_events_.suppressed()};
  static_assert(counters::kFrameEventCounters[0].name == "recorded" &&
                counters::kFrameEventCounters[1].name == "dropped" &&
                counters::kFrameEventCounters[2].name == "logged" &&
                counters::kFrameEventCounters[3].name == "suppressed" &&
                counters::kFrameEventCounters.size() == values.size());
  nlohmann::json events = nlohmann::json::object();
  for (size_t i = 0; i < values.size(); ++i)
    events[std::string(counters::kFrameEventCounters[i].name)] = values[i];
  out["frame_events"] = std::move(events);
  uint64_t sessions_dropped = 0;
  for (const auto& worker : workers_)
    sessions_dropped += worker->proxy().session_records_dropped().get();
  static_assert(counters::kSessionLogCounters[0].name == "logged" &&
                counters::kSessionLogCounters[1].name == "dropped" &&
                counters::kSessionLogCounters[2].name == "suppressed" &&
                counters::kSessionLogCounters.size() == 3);
  out["session_log"] = {{"logged", session_log_.logged()},
                        {"dropped", sessions_dropped},
                        {"suppressed", session_log_.suppressed()}};
  return out;
}

nlohmann::json RunningDataplane::events(size_t limit) {
  drain_frame_events();
  return frame_events_.recent(limit);
}

void RunningDataplane::drain_frame_events() {
  timespec realtime{};
  clock_gettime(CLOCK_REALTIME, &realtime);
  const uint64_t now_us = log::monotonic_us();
  const uint64_t unix_now_us = static_cast<uint64_t>(realtime.tv_sec) * 1'000'000u +
                               static_cast<uint64_t>(realtime.tv_nsec) / 1000u;
  // A worker's monotonic time, carried over to the wall clock.
  const auto unix_of = [&](uint64_t worker_us) {
    const uint64_t age_us = now_us > worker_us ? now_us - worker_us : 0;
    return unix_now_us - std::min(age_us, unix_now_us);
  };
  proxy::FrameEvent event;
  proxy::SessionRecord session;
  for (const auto& worker : workers_) {
    const proxy::Proxy& proxy = worker->proxy();
    while (worker->take_frame_event(event)) {
      const FrameEventNames names = names_of(proxy, event.listener, event.pool, event.backend_slot);
      frame_events_.record(event, names, unix_of(event.time_us), now_us);
    }
    // The session log: sampled already, bounded by the ring, and rate-limited (session_log.h).
    while (worker->take_session_record(session)) {
      const FrameEventNames names =
          names_of(proxy, session.listener, session.pool, session.backend_slot);
      session_log_.record(session, names, unix_of(session.start_us), now_us);
    }
  }
  frame_events_.report_suppressed(now_us);
  session_log_.report_suppressed(now_us);
}

FrameEventNames RunningDataplane::names_of(const proxy::Proxy& proxy, uint16_t listener,
                                           uint16_t pool, uint16_t backend_slot) const {
  FrameEventNames names;
  if (listener < proxy.listener_count()) names.listener = proxy.listener(listener).name;
  if (pool < states_.pool_count()) {
    names.pool = states_.pool(pool).name;
    for (size_t b = 0; b < states_.pool(pool).backends.size(); ++b) {
      if (states_.slot(pool, b) == backend_slot)
        names.backend = states_.pool(pool).backends[b].name;
    }
  }
  return names;
}

nlohmann::json RunningDataplane::listeners() {
  nlohmann::json out = nlohmann::json::array();
  const auto stats = counters()["listeners"];
  for (const config::Listener& l : config_->listeners) {
    nlohmann::json entry{{"name", l.name},
                         {"address", l.address.to_string()},
                         {"port", l.port},
                         {"protocol", config::name_of(l.protocol)}};
    if (l.pool) entry["pool"] = config_->pools[*l.pool].name;
    if (stats.contains(l.name)) {
      entry["connections"] = stats[l.name]["connections"];
      entry["active"] = stats[l.name]["active"];
    }
    out.push_back(entry);
  }
  return out;
}

nlohmann::json RunningDataplane::pools() {
  drain_frame_events();  // the last-seen times as of now
  collect_done();
  nlohmann::json out = nlohmann::json::array();
  for (size_t p = 0; p < states_.pool_count(); ++p) {
    const config::Pool& pool = states_.pool(p);
    nlohmann::json backends = nlohmann::json::array();
    for (size_t b = 0; b < pool.backends.size(); ++b) {
      nlohmann::json backend{{"name", pool.backends[b].name},
                             {"address", pool.backends[b].address.to_string()},
                             {"port", pool.backends[b].port},
                             {"state", name_of(states_.state(p, b))},
                             {"weight", states_.weight(p, b)}};
      // Summed over the workers that have the pool (a new one may not be applied everywhere yet).
      const auto sum = [&](auto value) {
        uint64_t total = 0;
        for (const auto& worker : workers_) {
          if (p >= worker->proxy().pool_count()) continue;
          total += value(worker->proxy().backend_counters(p, states_.slot(p, b)));
        }
        return total;
      };
      for (const auto& binding : kBackendBindings) {
        backend[std::string(binding.name)] =
            sum([&](const proxy::BackendCounters& c) { return value_of(binding, c); });
      }
      for (const auto& binding : kBackendDirectionBindings) {
        for (size_t d = 0; d < counters::kDirections.size(); ++d) {
          backend[counters::direction_key(binding.name, d)] =
              sum([&](const proxy::BackendCounters& c) { return (c.*binding.member)[d].get(); });
        }
      }
      static_assert(counters::kBackendDirectionGauges.size() == 1);
      for (uint8_t d = 0; d < counters::kDirections.size(); ++d) {
        const uint64_t last = frame_events_.last_seen_unix_us(pool.name, pool.backends[b].name, d);
        if (last != 0) {
          backend[counters::direction_key(counters::kBackendDirectionGauges[0].name, d)] =
              static_cast<double>(last) / 1e6;
        }
      }
      backends.push_back(std::move(backend));
    }
    const bool applied = p >= plans_posted_.size() || plans_posted_[p] == plans_returned_[p];
    out.push_back({{"name", pool.name}, {"backends", backends}, {"plan_applied", applied}});
  }
  return out;
}

std::string RunningDataplane::set_backend(const std::string& pool, const std::string& backend,
                                          const std::optional<std::string>& state,
                                          const std::optional<uint32_t>& weight) {
  const auto p = states_.find_pool(pool);
  if (!p) return "no pool named \"" + pool + "\"";
  const auto b = states_.find_backend(*p, backend);
  if (!b) return "pool \"" + pool + "\" has no backend named \"" + backend + "\"";
  std::optional<BackendState> new_state;
  if (state) {
    new_state = backend_state_from(*state);
    if (!new_state) return "state \"" + *state + "\" is not one of up, down, draining";
  }
  if (!room_for(1)) return "a worker's inbox is full; try again";
  if (std::string failure = states_.set(*p, *b, new_state, weight); !failure.empty())
    return failure;
  post_pool(*p);
  return "";
}

nlohmann::json RunningDataplane::apply_config(const std::string& path) {
  if (shutting_down_)
    return {{"ok", false}, {"error", "the dataplane is shutting down (SIGTERM); nothing applied"}};
  const config::LoadResult result = config::load_file(path);
  if (!result.ok()) {
    nlohmann::json diagnostics = nlohmann::json::array();
    for (const auto& d : result.errors) diagnostics.push_back(d.to_string());
    return {{"ok", false},
            {"error", "the configuration is invalid; the running one stays"},
            {"diagnostics", diagnostics}};
  }
  const config::Config& now = *config_;
  const config::Config& next = *result.config;
  if (std::string fixed = fixed_difference(now, next); !fixed.empty())
    return {{"ok", false},
            {"error", fixed + " cannot change while the dataplane runs; restart "
                              "it to apply that (the running configuration stays)"}};
  // What changes, decided before anything is sent, so that a refusal changes nothing.
  std::vector<const config::Listener*> removed, added;
  for (const config::Listener& l : now.listeners) {
    const config::Listener* same = find_listener(next, l.name);
    if (same == nullptr || !same_listener(now, l, next, *same)) removed.push_back(&l);
  }
  for (const config::Listener& l : next.listeners) {
    const config::Listener* same = find_listener(now, l.name);
    if (same == nullptr || !same_listener(now, *same, next, l)) added.push_back(&l);
  }
  size_t new_pools = 0, proxied_added = 0;
  for (const config::Pool& pool : next.pools) new_pools += states_.find_pool(pool.name) ? 0 : 1;
  for (const config::Listener* l : added) proxied_added += l->pool ? 1 : 0;
  if (states_.pool_count() + new_pools > proxy::Proxy::kMaxPools ||
      workers_.front()->proxy().listener_count() + proxied_added > proxy::Proxy::kMaxListeners)
    return {{"ok", false},
            {"error",
             "more pools or listeners than a running dataplane can "
             "take; restart it"}};
  const size_t messages = next.pools.size() + removed.size() + added.size() + 1;
  collect_done();
  if (!room_for(messages)) return {{"ok", false}, {"error", "a worker's inbox is full; try again"}};
  nlohmann::json changes = nlohmann::json::array();
  // Every pool is applied to a copy first: a pool refused half way through (its backend slots
  // used up) must leave the running state, and every worker, as they were.
  PoolStates trial = states_;
  for (const config::Pool& pool : next.pools) {
    const auto index = trial.find_pool(pool.name);
    const std::string error = index ? trial.replace(*index, pool) : trial.add(pool);
    if (!error.empty()) return {{"ok", false}, {"error", error}};
  }
  for (const config::Pool& pool : next.pools) {
    if (!states_.find_pool(pool.name)) changes.push_back("pool " + pool.name + " added");
  }
  states_ = std::move(trial);
  for (const config::Pool& pool : next.pools) post_pool(*states_.find_pool(pool.name));
  for (const config::Listener* l : removed) {
    auto* m = new WorkerMessage;
    m->kind = l->pool ? WorkerMessage::Kind::remove_listener : WorkerMessage::Kind::remove_service;
    m->name = l->name;
    m->service = ServiceListener{l->address, l->port, l->protocol == config::Protocol::echo, 1};
    post_all(m);
    if (find_listener(next, l->name) == nullptr)
      changes.push_back("listener " + l->name + " removed");
  }
  for (const config::Listener* l : added) {
    auto* m = new WorkerMessage;
    if (l->pool) {
      m->kind = WorkerMessage::Kind::add_listener;
      std::vector<size_t> proxy_pool_of;  // every pool of `next` is in states_ by now
      for (const config::Pool& pool : next.pools)
        proxy_pool_of.push_back(*states_.find_pool(pool.name));
      m->listener =
          proxy::plan_listener(next, *l, static_cast<unsigned>(workers_.size()), proxy_pool_of);
    } else {
      m->kind = WorkerMessage::Kind::add_service;
      m->service = ServiceListener{l->address, l->port, l->protocol == config::Protocol::echo,
                                   std::min<uint32_t>(l->max_connections, 1024)};
    }
    post_all(m);
    changes.push_back("listener " + l->name +
                      (find_listener(now, l->name) ? " changed" : " added"));
  }
  auto* addresses = new WorkerMessage;
  addresses->kind = WorkerMessage::Kind::listener_addresses;
  for (const config::Listener& l : next.listeners) {
    if (std::find(addresses->addresses.begin(), addresses->addresses.end(), l.address) ==
        addresses->addresses.end())
      addresses->addresses.push_back(l.address);
  }
  post_all(addresses);
  config_ = result.config;
  return {{"ok", true}, {"changes", changes}};
}

void RunningDataplane::collect_done() {
  for (const auto& worker : workers_) {
    while (WorkerMessage* m = worker->take_done()) {
      if (m->kind == WorkerMessage::Kind::stop_listening) ++stops_returned_;
      if (m->kind == WorkerMessage::Kind::set_accepting) ++accepting_returned_;
      if (m->kind == WorkerMessage::Kind::cluster_plan) ++cluster_returned_;
      if (m->kind == WorkerMessage::Kind::pool && m->pool < plans_returned_.size())
        ++plans_returned_[m->pool];
      if (m->kind == WorkerMessage::Kind::reset_sessions) {
        ++resets_returned_;
        sessions_reset_ += m->count;
      }
      delete m;
    }
  }
}

bool RunningDataplane::stop_listening() {
  if (!room_for(1)) return false;
  shutting_down_ = true;
  auto* m = new WorkerMessage;
  m->kind = WorkerMessage::Kind::stop_listening;
  m->services = services();
  post_all(m);
  return true;
}

std::vector<ServiceListener> RunningDataplane::services() const {
  std::vector<ServiceListener> out;
  for (const config::Listener& l : config_->listeners) {
    if (!l.pool)
      out.push_back(ServiceListener{l.address, l.port, l.protocol == config::Protocol::echo,
                                    std::min<uint32_t>(l.max_connections, 1024)});
  }
  return out;
}

std::string RunningDataplane::set_accepting(bool accepting) {
  if (shutting_down_) return "the dataplane is shutting down (SIGTERM); its listeners stay closed";
  if (!room_for(1)) return "a worker's inbox is full; try again";
  accepting_ = accepting;
  auto* m = new WorkerMessage;
  m->kind = WorkerMessage::Kind::set_accepting;
  m->accepting = accepting;
  m->services = services();
  accepting_posted_ += post_all(m);
  return "";
}

nlohmann::json RunningDataplane::box() {
  collect_done();
  nlohmann::json reply = {{"accepting", accepting_ && !shutting_down_},
                          {"applied", accepting_posted_ == accepting_returned_},
                          {"sessions", open_sessions()}};
  if (config_->cluster) {
    nlohmann::json peers = nlohmann::json::object();
    for (const config::ClusterPeer& peer : config_->cluster->peers) {
      const auto it = cluster_states_.find(peer.name);
      peers[peer.name] = it == cluster_states_.end() ? "live" : it->second;
    }
    reply["cluster"] = {{"peers", peers},
                        {"applied", cluster_posted_ == cluster_returned_},
                        {"heard", heard_heartbeats()}};
  }
  return reply;
}

// Each peer's last heartbeat, the latest any worker received: {name: {ms_ago, state, sequence}};
// a peer never heard from is left out (weir-control decides what silence means).
nlohmann::json RunningDataplane::heard_heartbeats() const {
  nlohmann::json heard = nlohmann::json::object();
  const uint64_t now = log::monotonic_us();
  const auto& peers = config_->cluster->peers;
  for (size_t p = 0; p < peers.size() && p < cluster::kMaxPeers; ++p) {
    uint64_t at = 0;
    uint32_t sequence = 0;
    uint8_t state = 0;
    for (const auto& worker : workers_) {
      const HeardHeartbeats::Peer& peer = worker->heard_heartbeats().peers[p];
      const uint64_t t = peer.at_us.load(std::memory_order_relaxed);
      if (t <= at) continue;
      at = t;
      sequence = peer.sequence.load(std::memory_order_relaxed);
      state = peer.state.load(std::memory_order_relaxed);
    }
    if (at == 0) continue;
    heard[peers[p].name] = {
        {"ms_ago", now > at ? (now - at) / 1000 : 0},
        {"state",
         state == static_cast<uint8_t>(net::gue::HeartbeatState::draining) ? "draining" : "live"},
        {"sequence", sequence}};
  }
  return heard;
}

std::string RunningDataplane::set_cluster_peers(const std::map<std::string, std::string>& states) {
  if (!config_->cluster) return "this box has no cluster section";
  const config::Cluster& cluster = *config_->cluster;
  std::vector<cluster::PeerState> peer_states;
  for (const config::ClusterPeer& peer : cluster.peers) {
    const auto it = states.find(peer.name);
    if (it == states.end()) return "no state for peer \"" + peer.name + "\"";
    if (it->second == "live") {
      peer_states.push_back(cluster::PeerState::live);
    } else if (it->second == "draining") {
      peer_states.push_back(cluster::PeerState::draining);
    } else if (it->second == "gone") {
      peer_states.push_back(cluster::PeerState::gone);
    } else {
      return "the state of peer \"" + peer.name + "\" must be live, draining or gone";
    }
  }
  if (states.size() != cluster.peers.size()) {
    for (const auto& entry : states) {
      const std::string& name = entry.first;  // a structured binding: clang refuses its capture
      if (std::none_of(cluster.peers.begin(), cluster.peers.end(),
                       [&](const config::ClusterPeer& p) { return p.name == name; }))
        return "no peer named \"" + name + "\" in cluster.peers";
    }
  }
  if (!room_for(1)) return "a worker's inbox is full; try again";
  // Built once, here (65,537 rows: some 20 ms for three peers), and shared read-only.
  auto* m = new WorkerMessage;
  m->kind = WorkerMessage::Kind::cluster_plan;
  m->cluster_plan = cluster_plan_for(cluster, peer_states);
  cluster_posted_ += post_all(m);
  cluster_states_ = states;
  return "";
}

bool RunningDataplane::reset_sessions() {
  if (!room_for(1)) return false;
  auto* m = new WorkerMessage;
  m->kind = WorkerMessage::Kind::reset_sessions;
  post_all(m);
  return true;
}

uint64_t RunningDataplane::open_sessions() const {
  uint64_t open = 0;
  const auto& active = kListenerBindings[1];
  static_assert(kListenerBindings[1].name == "active");
  for (const auto& worker : workers_) {
    const proxy::Proxy& p = worker->proxy();
    for (size_t i = 0; i < p.listener_count(); ++i) open += value_of(active, p.counters(i));
  }
  return open;
}

bool RunningDataplane::listening_stopped() {
  collect_done();
  return stops_returned_ >= workers_.size();
}

std::optional<uint64_t> RunningDataplane::sessions_reset() {
  collect_done();
  if (resets_returned_ < workers_.size()) return std::nullopt;
  return sessions_reset_;
}

bool RunningDataplane::room_for(size_t messages) {
  collect_done();
  for (const auto& worker : workers_) {
    if (worker->inbox_room() < messages) return false;
  }
  return true;
}

size_t RunningDataplane::post_all(WorkerMessage* message) {
  size_t posted = 0;
  for (size_t i = 0; i < workers_.size(); ++i) {
    WorkerMessage* copy = i + 1 == workers_.size() ? message : new WorkerMessage(*message);
    if (workers_[i]->post(copy)) {
      ++posted;
    } else {
      delete copy;
    }
  }
  return posted;
}

void RunningDataplane::post_pool(size_t pool) {
  auto* m = new WorkerMessage;
  m->kind = WorkerMessage::Kind::pool;
  m->pool = pool;
  // The plan is built once, here, and shared read-only by every worker.
  m->plan = states_.plan(pool);
  if (plans_posted_.size() <= pool) {
    plans_posted_.resize(pool + 1, 0);
    plans_returned_.resize(pool + 1, 0);
  }
  plans_posted_[pool] += post_all(m);
}

}  // namespace weir::dataplane
