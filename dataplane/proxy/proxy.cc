#include "dataplane/proxy/proxy.h"

#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include "dataplane/flow_owner.h"
#include "dataplane/proxy/proxy_session.h"
#include "dataplane/proxy/proxy_v2.h"
#include "dataplane/tcp/mbuf_queue.h"

namespace weir::proxy {

// ---- sessions -----------------------------------------------------------------------------------

size_t Proxy::session_record_bytes() {
  return sizeof(Session);
}

Proxy::Proxy(tcp::TcpStack& tcp, net::Stack& net_stack, rte_mempool* pool,
             std::vector<std::shared_ptr<const PoolPlan>> pools,
             std::vector<ListenerPlan> listeners, const dataplane::FlowOwnership& ownership,
             uint64_t source_port_rest_us)
    : tcp_(tcp),
      net_stack_(net_stack),
      mbuf_pool_(pool),
      ownership_(ownership),
      // The TIME-WAIT ends up to a timer tick after its deadline: a port that rested exactly
      // time_wait_us could find its 4-tuple still held, connect() refuses it, and after a few
      // such ports the session was reset as "exhausted" with fresh ports left.
      source_ports_(ownership, source_port_rest_us + tcp::TcpStack::kTimerTickUs),
      tls_relay_(*this, static_cast<uint32_t>(tcp.capacity())) {
  if (pools.size() > kMaxPools || listeners.size() > kMaxListeners)
    throw std::invalid_argument("more than " + std::to_string(kMaxPools) + " pools or " +
                                std::to_string(kMaxListeners) + " proxied listeners");
  pools_.reserve(kMaxPools);
  listeners_.reserve(kMaxListeners);
  for (auto& plan : pools) append_pool(std::move(plan));
  for (auto& plan : listeners) add_listener(std::move(plan));
}

void Proxy::append_pool(std::shared_ptr<const PoolPlan> plan) {
  PoolRuntime runtime;
  runtime.plan = std::move(plan);
  runtime.counters = std::make_unique<BackendCounters[]>(kMaxBackendSlots);
  runtime.drain_deadline_us.assign(kMaxBackendSlots, 0);
  pools_.push_back(std::move(runtime));  // within the reserved capacity: nothing moves
  pool_count_.store(pools_.size(), std::memory_order_release);
}

void Proxy::add_listener(ListenerPlan plan) {
  if (listeners_.size() == kMaxListeners) return;  // refused on the main lcore before it is sent
  auto state = std::make_unique<ListenerState>();
  state->proxy = this;
  state->index = static_cast<uint16_t>(listeners_.size());
  state->plan = std::move(plan);
  state->refuser = std::make_unique<Refuser>(tcp_);
  ListenerState& l = *state;
  listeners_.push_back(std::move(state));
  listener_count_.store(listeners_.size(), std::memory_order_release);
  if (started_ && accepting_) {
    tcp_.listen(l.plan.address, l.plan.port, &l, std::min<uint32_t>(l.plan.max_connections, 1024));
  }
}

bool Proxy::remove_listener(const std::string& name) {
  for (auto& l : listeners_) {
    if (l->plan.name != name || l->retired.load(std::memory_order_relaxed)) continue;
    l->retired.store(true, std::memory_order_release);
    tcp_.unlisten(l->plan.address, l->plan.port);
    return true;
  }
  return false;
}

void Proxy::set_accepting(bool accepting) {
  if (accepting == accepting_) return;
  accepting_ = accepting;
  if (!started_) return;
  for (auto& l : listeners_) {
    if (l->retired.load(std::memory_order_relaxed)) continue;
    if (accepting) {
      tcp_.listen(l->plan.address, l->plan.port, l.get(),
                  std::min<uint32_t>(l->plan.max_connections, 1024));
    } else {
      tcp_.unlisten(l->plan.address, l->plan.port);
    }
  }
}

size_t Proxy::reset_all_sessions() {
  size_t count = 0;
  for (const auto& session : sessions_) {  // a reset session goes to the free list, not away
    if (!session->live) continue;
    ++count;
    reset_both(*session, SessionEnd::shutdown);
  }
  return count;
}

bool Proxy::listener_retired(size_t i) const {
  return listeners_[i]->retired.load(std::memory_order_acquire);
}

Proxy::~Proxy() {
  for (const int fd : tls_event_fds_)
    if (fd >= 0) close(fd);
}

size_t Proxy::listener_count() const {
  return listener_count_.load(std::memory_order_acquire);
}
const ListenerPlan& Proxy::listener(size_t i) const {
  return listeners_[i]->plan;
}
const ListenerCounters& Proxy::counters(size_t i) const {
  return *listeners_[i]->counters;
}

void Proxy::start() {
  started_ = true;
  for (auto& l : listeners_) {
    tcp_.listen(l->plan.address, l->plan.port, l.get(),
                std::min<uint32_t>(l->plan.max_connections, 1024));
  }
}

Proxy::Session* Proxy::new_session(ListenerState& listener) {
  Session* s = nullptr;
  if (!free_sessions_.empty()) {
    s = free_sessions_.back();
    free_sessions_.pop_back();
    s->reset();
  } else {
    sessions_.push_back(std::make_unique<Session>());
    s = sessions_.back().get();
  }
  s->listener = &listener;
  s->client_side = Side{};
  s->client_side.proxy = this;
  s->client_side.session = s;
  s->backend_side.proxy = this;
  s->backend_side.session = s;
  s->live = true;
  if (listener.plan.tls) s->tls = std::make_unique<TlsState>();
  if (listener.plan.framed) {
    s->relays = std::make_unique<FrameRelayPair>(listener.plan.frames);
  }
  if (listener.plan.session_log_sample != 0 &&
      listener.sessions_seen++ % listener.plan.session_log_sample == 0) {
    s->log = std::make_unique<SessionRecord>();
    s->log->start_us = tcp_.now_us();
    s->log->listener = listener.index;
  }
  ++listener.active;
  ++active_;
  touch(*s, true);
  touch(*s, false);  // the backend's clock runs from the start: connect_timeout_ms bounds less
  return s;
}

void Proxy::place_in_pool(Session& s, size_t pool) {
  s.pool = static_cast<uint16_t>(pool);
  if (s.log) s.log->pool = s.pool;
  const tcp::FourTuple& t = s.client->tuple();
  s.flow_hash = maglev::flow_hash(
      pools_[pool].plan->key, maglev::FiveTuple{t.remote_address, t.local_address, t.remote_port,
                                                t.local_port, net::kIpProtocolTcp});
}

// The next candidate for a failed attempt: the flow hash stirred (SplitMix64's finaliser), so a
// retry lands on another slot of the table, the same one for every worker and every box.
static uint64_t stir(uint64_t h) {
  h += 0x9e3779b97f4a7c15ull;
  h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ull;
  h = (h ^ (h >> 27)) * 0x94d049bb133111ebull;
  return h ^ (h >> 31);
}

void Proxy::connect_backend(Session& s) {
  ListenerState& l = *s.listener;
  PoolRuntime& runtime = pools_[s.pool];
  const PoolPlan& pool = *runtime.plan;
  const uint64_t now = tcp_.now_us();
  while (s.client != nullptr) {
    if (s.attempts > pool.retries) break;
    uint64_t hash = s.flow_hash;
    for (uint8_t i = 0; i < s.attempts; ++i) hash = stir(hash);
    std::optional<uint32_t> index = pool.table.lookup(hash);
    // A retry prefers a backend not tried yet (a few stirs; a pool of one has no other).
    for (int spin = 0;
         index && s.attempts > 0 && spin < 16 && *index < 64 && (s.tried >> *index) & 1; ++spin) {
      hash = stir(hash);
      index = pool.table.lookup(hash);
    }
    if (!index) break;
    ++s.attempts;
    if (*index < 64) s.tried |= uint64_t{1} << *index;
    const BackendPlan& backend = pool.backends[*index];
    const uint16_t slot = backend.slot;
    const std::optional<dataplane::PortIndex> port = net_stack_.route(backend.address);
    if (!port) {
      l.counters->backend_connect_failures.add();
      runtime.counters[slot].connect_failures.add();
      continue;
    }
    const ConnectResult result =
        connect_from_sources(s, *port, backend, now, pool.connect_timeout_us);
    if (result != ConnectResult::connected) {
      if (result == ConnectResult::no_source_port)
        runtime.counters[slot].source_ports_exhausted.add();
      l.counters->backend_connect_failures.add();
      runtime.counters[slot].connect_failures.add();
      continue;
    }
    // What the session holds on its backend side counts against its client, so that under
    // memory pressure a client flooding through its backends is the one refused and stopped.
    if (s.client != nullptr)
      tcp_.charge_to(*s.backend, net::Ipv4Address(s.client->tuple().remote_address));
    s.backend_slot = slot;
    if (s.log) s.log->backend_slot = slot;
    runtime.counters[slot].assigned.add();
    return;
  }
  // Nothing to connect to: the client is reset (the real cause is in the counters).
  l.counters->no_backend.add();
  note_end(s, SessionEnd::no_backend);
  if (s.client != nullptr) tcp_.abort(*s.client, now);
}

Proxy::ConnectResult Proxy::connect_from_sources(Session& s, dataplane::PortIndex port,
                                                 const BackendPlan& backend, uint64_t now_us,
                                                 uint64_t timeout_us) {
  // A port whose 4-tuple the TCP stack still holds (a TIME-WAIT older than the rest, which only
  // a change of tcp.time_wait_ms makes) rests again, and the next is tried, a few per source.
  constexpr int kPortsTriedPerSource = 4;
  const std::vector<net::Ipv4Address>& sources = net_stack_.backend_sources(port);
  const uint32_t first = next_source_++;
  for (size_t i = 0; i < sources.size(); ++i) {
    const uint32_t source = sources[(first + i) % sources.size()].value();
    for (int tried = 0; tried < kPortsTriedPerSource; ++tried) {
      const std::optional<uint16_t> local_port =
          source_ports_.take(source, backend.address.value(), backend.port, now_us);
      if (!local_port) break;  // every port of this source toward the backend is taken
      s.backend = tcp_.connect(
          port, tcp::FourTuple{source, backend.address.value(), *local_port, backend.port},
          &s.backend_side, now_us, timeout_us);
      if (s.backend != nullptr) return ConnectResult::connected;
      source_ports_.give_back(source, backend.address.value(), backend.port, *local_port, now_us);
      if (tcp_.connections() >= tcp_.capacity()) return ConnectResult::table_full;
    }
  }
  return ConnectResult::no_source_port;
}

void Proxy::release_source_port(const tcp::FourTuple& tuple) {
  source_ports_.give_back(tuple.local_address, tuple.remote_address, tuple.remote_port,
                          tuple.local_port, tcp_.now_us());
}

void Proxy::on_established(Session& s, bool client_side) {
  if (client_side) {
    // A tls session's backend waits for the handshake (tls_handshake_done).
    s.tls ? open_tls(s) : connect_backend(s);
    return;
  }
  s.backend_established = true;
  touch(s, false);
  pools_[s.pool].counters[s.backend_slot].connections.add();
  s.backend_counted = true;
  if (s.listener->plan.proxy_protocol_v2 && !send_proxy_header(s)) {
    reset_both(s);
    return;
  }
  pump(s, true);
  pump(s, false);
}

// The PROXY protocol v2 header (proxy_v2.h): the client's address and port as the source, the
// listener's as the destination.
bool Proxy::send_proxy_header(Session& s) {
  rte_mbuf* m = rte_pktmbuf_alloc(mbuf_pool_);
  if (m == nullptr) return false;
  const tcp::FourTuple& t = s.client->tuple();
  const auto header =
      proxy_v2_header(ProxyV2Ipv4{t.remote_address, t.local_address, t.remote_port, t.local_port});
  std::memcpy(rte_pktmbuf_append(m, header.size()), header.data(), header.size());
  if (!tcp_.send(*s.backend, m, tcp_.now_us())) {
    rte_pktmbuf_free(m);
    return false;
  }
  return true;
}

void Proxy::on_data(Session& s, bool client_side, rte_mbuf* data) {
  if (!client_side && s.client == nullptr) {
    discard_for_gone_client(s, data);
    return;
  }
  touch(s, client_side);
  const Direction direction = client_side ? kToBackend : kToClient;
  if (s.tls) {
    // The client's ciphertext goes to the worker as it came; the backend's plaintext, with
    // `inner: framed`, is verified (and stamped) before the worker encrypts it.
    tcp::MbufQueue& parked = s.tls->parked[direction];
    if (client_side || !s.relays) {
      tcp_.keep_received(parked, data);
    } else if (!inspect_frames(s, false, data, parked)) {
      return;
    }
    pump_tls(s, client_side);
    return;
  }
  if (s.relays) {
    if (!inspect_frames(s, client_side, data, s.pending[direction])) return;
  } else {
    tcp_.keep_received(s.pending[direction], data);
  }
  pump(s, client_side);
}

// The backend sends toward a client already gone by RST or timeout after its own FIN. While the
// client's bytes are still on their way to the backend, what it sends is dropped and its window
// kept open; once they are all acknowledged, more data resets the backend, as Linux resets a
// closed socket that still receives data (LINUX_MIB_TCPABORTONDATA).
void Proxy::discard_for_gone_client(Session& s, rte_mbuf* data) {
  const uint32_t length = rte_pktmbuf_pkt_len(data);
  rte_pktmbuf_free(data);
  const uint64_t now = tcp_.now_us();
  if (s.fin_to[kToBackend] && s.backend->send_queued() == 0) {
    tcp_.abort(*s.backend, now);
    return;
  }
  tcp_.consumed(*s.backend, length, now);
}

// Runs each segment of `data` through the direction's frame relay and parks what may go: held
// trailer bytes of an earlier segment first (in a small mbuf of their own; at most 3 bytes copied),
// then the segment less any trailer bytes it ends with. A corrupt frame in reset mode, or a
// malformed header, resets both connections before the trailer leaves.
bool Proxy::inspect_frames(Session& s, bool client_side, rte_mbuf* data, tcp::MbufQueue& pending) {
  const Direction direction = client_side ? kToBackend : kToClient;
  FrameRelay& relay = *s.relay(direction);
  ListenerCounters& counters = *s.listener->counters;
  const FrameCounts before = relay.counts();
  bool ok = true;
  rte_mbuf* segment = data;
  while (segment != nullptr) {
    rte_mbuf* next = segment->next;
    segment->next = nullptr;
    segment->nb_segs = 1;
    segment->pkt_len = segment->data_len;
    if (!ok) {
      rte_pktmbuf_free(segment);
      segment = next;
      continue;
    }
    const FrameRelay::Result r =
        relay.process({rte_pktmbuf_mtod(segment, uint8_t*), segment->data_len},
                      [&](const FrameFault& fault) { record_frame_event(s, direction, fault); });
    if (r.outcome != FrameRelay::Outcome::forward) {
      ok = false;
      rte_pktmbuf_free(segment);
      segment = next;
      continue;
    }
    if (r.released > 0) {
      rte_mbuf* held = rte_pktmbuf_alloc(mbuf_pool_);
      if (held == nullptr) {
        ok = false;  // cannot keep the stream whole: reset rather than forward a gap
        rte_pktmbuf_free(segment);
        segment = next;
        continue;
      }
      const auto bytes = relay.released(r.released);
      std::memcpy(rte_pktmbuf_append(held, static_cast<uint16_t>(bytes.size())), bytes.data(),
                  bytes.size());
      tcp_.keep_received(pending, held);
    }
    if (r.forward_bytes == 0) {
      rte_pktmbuf_free(segment);
    } else {
      rte_pktmbuf_trim(segment, static_cast<uint16_t>(segment->data_len - r.forward_bytes));
      tcp_.keep_received(pending, segment);
    }
    segment = next;
  }
  const FrameCounts& after = relay.counts();
  counters.frames_verified[direction].add(after.frames_verified - before.frames_verified);
  counters.bytes_verified[direction].add(after.bytes_verified - before.bytes_verified);
  counters.frames_corrupt[direction].add(after.frames_corrupt - before.frames_corrupt);
  counters.frames_malformed[direction].add(after.frames_malformed - before.frames_malformed);
  if (s.backend_slot != UINT32_MAX) {  // the path: the session's pool and backend
    BackendCounters& path = pools_[s.pool].counters[s.backend_slot];
    path.frames_verified[direction].add(after.frames_verified - before.frames_verified);
    path.frames_corrupt[direction].add(after.frames_corrupt - before.frames_corrupt);
    path.frames_malformed[direction].add(after.frames_malformed - before.frames_malformed);
  }
  if (ok && client_side) track_client_frame(s, relay.between_frames());
  if (!ok) {
    counters.corrupt_resets[direction].add();
    reset_both(s, SessionEnd::corrupt_frame);
  }
  return ok;
}

void Proxy::record_frame_event(const Session& s, Direction direction, const FrameFault& fault) {
  FrameEvent event;
  event.time_us = tcp_.now_us();
  event.fault = fault;
  if (s.client != nullptr) {
    event.client_address = s.client->tuple().remote_address;
    event.client_port = s.client->tuple().remote_port;
  }
  event.listener = s.listener->index;
  event.pool = s.pool;
  if (s.backend_slot != UINT32_MAX) event.backend_slot = static_cast<uint16_t>(s.backend_slot);
  event.direction = direction;
  if (!frame_events_.try_push(event)) frame_events_dropped_.add();
}

void Proxy::pump(Session& s, bool from_client) {
  tcp::Connection* source = s.from(from_client);
  tcp::Connection* sink = s.to(from_client);
  // A tls session's ciphertext goes to the client before any backend is connected.
  if (sink == nullptr || (!s.backend_established && !(s.tls && !from_client))) return;
  const Direction direction = from_client ? kToBackend : kToClient;
  tcp::MbufQueue& pending = s.pending[direction];
  const uint64_t now = tcp_.now_us();
  uint64_t moved = 0;
  while (rte_mbuf* segment = pending.pop()) {
    const uint32_t length = rte_pktmbuf_pkt_len(segment);
    if (!tcp_.send(*sink, segment, now)) {
      pending.push_front(segment);
      break;  // the sink's on_writable resumes; meanwhile the source's window closes
    }
    moved += length;
  }
  if (moved > 0) {
    touch(s, !from_client);  // the sink took data: it is reading (HAProxy counts writes too)
    s.listener->counters->bytes[direction].add(moved);
    if (s.log) s.log->bytes[direction] += moved;
    // The source's window reopens only for what the sink's send queue has taken: backpressure.
    // (A tls session's source reopens it when the relay takes its bytes: pump_tls.)
    if (source != nullptr && !s.tls) tcp_.consumed(*source, static_cast<uint32_t>(moved), now);
    if (s.tls) pump_tls(s, from_client);  // room for more of what produces this output
  }
  // A FIN follows the data (half-close): the other direction keeps flowing.
  if (pending.empty() && s.eof[direction] && !s.fin_to[direction]) {
    s.fin_to[direction] = true;
    tcp_.shutdown_write(*sink, now);
  }
}

void Proxy::on_writable(Session& s, bool client_side) {
  // This side can take more: pump toward it, from the other side.
  pump(s, !client_side);
  if (s.tls) pump_tls(s, !client_side);
}

void Proxy::on_peer_fin(Session& s, bool client_side) {
  touch(s, client_side);
  if (s.tls) {  // the stream's end goes to the TLS worker, which ends the other side's
    s.tls->fin[client_side ? kToBackend : kToClient] = true;
    pump_tls(s, client_side);
    return;
  }
  s.eof[client_side ? kToBackend : kToClient] = true;
  pump(s, client_side);
}

void Proxy::on_closed(Session& s, bool client_side, tcp::CloseReason reason) {
  ListenerState& l = *s.listener;
  // Every backend connection a session starts ends here exactly once, whatever the reason.
  if (!client_side) pools_[s.pool].counters[s.backend_slot].released.add();
  if (!client_side && s.backend_counted) {
    pools_[s.pool].counters[s.backend_slot].closed.add();
    s.backend_counted = false;
  }
  if (reason == tcp::CloseReason::fin) {
    // A clean close: this side's FIN came (TIME-WAIT may have taken the connection before
    // on_peer_fin could be heard); what it sent still goes on, then a FIN.
    (client_side ? s.client : s.backend) = nullptr;
    if (s.tls) {
      s.tls->fin[client_side ? kToBackend : kToClient] = true;
      pump_tls(s, client_side);
    } else {
      s.eof[client_side ? kToBackend : kToClient] = true;
      pump(s, client_side);
    }
    finish_if_done(s);
    return;
  }
  if (client_side) {
    note_end(s, reason == tcp::CloseReason::timeout ? SessionEnd::client_timeout
                                                    : SessionEnd::client_reset);
    s.client = nullptr;
    close_tls(s);
    s.pending[kToClient].clear();  // nowhere to go now
    if (s.eof[kToBackend] && s.backend != nullptr && s.backend_established) {
      // The client's stream was complete (its FIN came before the RST or timeout), and Weir
      // acknowledged every byte of it: they still go to the backend, then a FIN, as a kernel
      // proxy's close() would send them. What the backend sends from now on is discarded
      // (on_data), and the backend reset once it has everything. (A backend still connecting is
      // reset: its PROXY header and retries need the client connection.)
      pump(s, true);
    } else if (s.backend != nullptr) {
      // A client gone by RST, timeout or abort mid-stream takes the backend with it: a truncated
      // stream must not look complete to the backend.
      tcp_.abort(*s.backend, tcp_.now_us());
    }
  } else {
    s.backend = nullptr;
    const bool was_established = s.backend_established;
    s.backend_established = false;
    if (was_established && (reason == tcp::CloseReason::rst || reason == tcp::CloseReason::timeout))
      pools_[s.pool].counters[s.backend_slot].resets.add();
    if (was_established)
      note_end(s, reason == tcp::CloseReason::timeout ? SessionEnd::backend_timeout
                                                      : SessionEnd::backend_reset);
    if (!was_established && s.client != nullptr &&
        (reason == tcp::CloseReason::refused || reason == tcp::CloseReason::timeout)) {
      // The backend refused or never answered: the next candidate, within pool.retries.
      l.counters->backend_connect_failures.add();
      pools_[s.pool].counters[s.backend_slot].connect_failures.add();
      connect_backend(s);
    } else if (reason != tcp::CloseReason::fin && s.client != nullptr) {
      close_tls(s);
      tcp_.abort(*s.client, tcp_.now_us());
    }
  }
  finish_if_done(s);
}

void Proxy::note_end(Session& s, SessionEnd end) {
  if (!s.log || s.log->ended) return;
  s.log->end = end;
  s.log->ended = true;
}

void Proxy::reset_both(Session& s, SessionEnd end) {
  note_end(s, end);
  reset_both(s);
}

void Proxy::reset_both(Session& s) {
  const uint64_t now = tcp_.now_us();
  if (s.client != nullptr) tcp_.abort(*s.client, now);
  if (s.backend != nullptr) tcp_.abort(*s.backend, now);
}

void Proxy::touch(Session& s, bool client_side) {
  ListenerState& l = *s.listener;
  if (client_side) {
    l.client_quiet.restart(s, tcp_.now_us());
  } else {
    l.server_quiet.restart(s, tcp_.now_us());
  }
}

void Proxy::track_client_frame(Session& s, bool between_frames) {
  ListenerState& l = *s.listener;
  if (between_frames) {
    if (!l.client_frames.running(s)) return;
    l.client_frames.remove(s);
    l.counters->partial_frames_ended.add();
  } else if (!l.client_frames.running(s)) {
    l.client_frames.start(s, tcp_.now_us());
    l.counters->partial_frames_started.add();
  }
}

void Proxy::stop_clocks(Session& s) {
  ListenerState& l = *s.listener;
  l.client_quiet.remove(s);
  l.server_quiet.remove(s);
  track_client_frame(s, true);
}

void Proxy::finish_if_done(Session& s) {
  if (!s.live || s.client != nullptr || s.backend != nullptr) return;
  ListenerState& l = *s.listener;
  stop_clocks(s);
  s.live = false;
  for (tcp::MbufQueue& q : s.pending) q.clear();
  if (s.tls) {
    close_tls(s);
    for (tcp::MbufQueue& q : s.tls->parked) q.clear();
  }
  --l.active;
  --active_;
  l.counters->closed.add();
  if (s.log) {
    s.log->end_us = tcp_.now_us();  // not ended by anything else: both sides closed with FIN
    if (!session_records_.try_push(*s.log)) session_records_dropped_.add();
    s.log.reset();
  }
  // The TCP stack may still be inside a callback of this session: it is recycled, never freed
  // here, and only handed out again by a later accept.
  free_sessions_.push_back(&s);
}

void Proxy::update_pool(size_t index, std::shared_ptr<const PoolPlan>& plan,
                        std::vector<std::shared_ptr<const PoolPlan>>& retired) {
  if (index == pools_.size()) {  // a pool added by a reload
    append_pool(std::move(plan));
    return;
  }
  PoolRuntime& runtime = pools_[index];
  const uint64_t now = tcp_.now_us();
  for (const BackendPlan& b : plan->backends) {
    bool was_draining = false;
    for (const BackendPlan& old : runtime.plan->backends) {
      if (old.slot == b.slot) was_draining = old.draining;
    }
    if (!b.draining) {
      runtime.drain_deadline_us[b.slot] = 0;
    } else if (!was_draining) {
      // Draining starts now: established sessions have drain_timeout_ms to finish (+1 so that
      // a zero timeout still reads as a deadline).
      runtime.drain_deadline_us[b.slot] = now + plan->drain_timeout_us + 1;
      next_drain_us_ = std::min(next_drain_us_, runtime.drain_deadline_us[b.slot]);
    }
  }
  retired.push_back(std::move(runtime.plan));
  runtime.plan = std::move(plan);
}

void Proxy::expire_drains(uint64_t now_us) {
  if (now_us < next_drain_us_) return;
  next_drain_us_ = UINT64_MAX;
  for (size_t p = 0; p < pools_.size(); ++p) {
    PoolRuntime& runtime = pools_[p];
    for (size_t b = 0; b < runtime.drain_deadline_us.size(); ++b) {
      const uint64_t deadline = runtime.drain_deadline_us[b];
      if (deadline == 0) continue;
      if (now_us < deadline) {
        next_drain_us_ = std::min(next_drain_us_, deadline);
        continue;
      }
      runtime.drain_deadline_us[b] = 0;
      for (const auto& session : sessions_) {
        Session& s = *session;
        if (!s.live || s.pool != p || s.backend_slot != b || s.backend == nullptr) continue;
        runtime.counters[b].drain_resets.add();
        reset_both(s, SessionEnd::drain);
      }
    }
  }
}

void Proxy::tick(uint64_t now_us) {
  expire_drains(now_us);
  source_ports_.tick(now_us);
  expire_timeouts(now_us);
}

// Each list's head is the first to expire. A session is taken off every list before it is reset,
// so that it is counted once, even should the resets leave it live. A timeout of 0 (a plan made
// in code, not from a configuration) is none.
void Proxy::expire_timeouts(uint64_t now_us) {
  constexpr uint64_t kNever = UINT64_MAX / 2;
  const auto or_never = [](uint64_t timeout_us) { return timeout_us == 0 ? kNever : timeout_us; };
  for (auto& listener : listeners_) {
    ListenerState& l = *listener;
    ListenerCounters& counters = *l.counters;
    while (Session* s = l.client_quiet.expired(now_us, or_never(l.plan.client_timeout_us))) {
      stop_clocks(*s);
      counters.client_timeouts.add();
      counters.idle_timeouts.add();
      reset_both(*s, SessionEnd::idle_timeout);
    }
    while (Session* s = l.server_quiet.expired(now_us, or_never(l.plan.server_timeout_us))) {
      stop_clocks(*s);
      counters.server_timeouts.add();
      counters.idle_timeouts.add();
      reset_both(*s, SessionEnd::idle_timeout);
    }
    while (Session* s = l.client_frames.expired(now_us, or_never(l.plan.frame_timeout_us))) {
      stop_clocks(*s);
      counters.frame_timeouts.add();
      reset_both(*s, SessionEnd::frame_timeout);
    }
  }
}

}  // namespace weir::proxy
