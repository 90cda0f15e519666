// The load balancer on a worker: `tcp` and `framed` listeners. Each accepted client connection
// becomes a Session: a backend chosen from the pool's Maglev table, a connection to it from one of
// the port's source addresses with a source port whose replies return to this worker (taken in
// O(1) from source_ports.h), and a relay of both
// directions through the TCP stack's zero-copy send queues, with backpressure (a side's received
// bytes are consumed only once the other side's send queue has taken them, so a slow reader
// closes the far side's window instead of growing Weir's memory).
//
// Shared-nothing: one Proxy per worker, its sessions and counters its own. The plans (listeners,
// pools, Maglev tables) are immutable snapshots built off the packet path and shared read-only.
#pragma once

#include <rte_mbuf.h>
#include <rte_mempool.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "common/maglev.h"
#include "config/config.h"
#include "dataplane/counters.h"
#include "dataplane/flow_owner.h"
#include "dataplane/net/stack.h"
#include "dataplane/proxy/frame_events.h"
#include "dataplane/proxy/frame_relay.h"
#include "dataplane/proxy/session_records.h"
#include "dataplane/proxy/source_ports.h"
#include "dataplane/proxy/tls_relay.h"
#include "dataplane/tcp/tcp_stack.h"

namespace weir::proxy {

using dataplane::Counter;

// ---- plans: immutable, built from a Config off the packet path --------------------------------

struct BackendPlan {
  std::string name;
  net::Ipv4Address address;
  uint16_t port = 0;
  uint32_t weight = 1;
  uint16_t slot = 0;        // its counters' place, stable across plans (PoolStates assigns it)
  bool accepts_new = true;  // up; false while down or draining (left out of the table)
  bool draining = false;    // existing sessions are reset after the pool's drain timeout
};

struct PoolPlan {
  std::string name;
  std::vector<BackendPlan> backends;
  maglev::Table table;
  maglev::FlowKey key = maglev::FlowKey::five_tuple;
  uint32_t retries = config::kDefaultRetries;
  uint64_t drain_timeout_us = 0;
  uint64_t connect_timeout_us = uint64_t{config::kDefaultConnectTimeoutMs} * 1000;
};

// A pool's plan: its configuration's hash and retry settings over `backends` as they stand.
std::shared_ptr<PoolPlan> plan_pool(const config::Pool& pool, std::vector<BackendPlan> backends);

struct ListenerPlan {
  std::string name;
  net::Ipv4Address address;
  uint16_t port = 0;
  bool framed = false;
  FrameRelaySettings frames;  // for framed listeners, per direction
  // protocol tls: the client's bytes go to a TLS worker through the worker lcore's TlsRelay, and
  // the backend is connected once the handshake is done (docs/tls.md).
  bool tls = false;
  bool proxy_protocol_v2 = false;
  // Each side's silence (nothing received from it, nothing it took of what is relayed to it) for
  // this long resets the session: listeners[].client_timeout_ms, server_timeout_ms. 0: none.
  uint64_t client_timeout_us = 0;
  uint64_t server_timeout_us = 0;
  uint64_t frame_timeout_us = 0;  // framed: a client's frame must be whole this long after it began
                                  // (0: no limit)
  uint32_t max_connections = 0;   // per worker
  uint32_t session_log_sample = 0;  // 0: no session log; N: one session in N is logged
  size_t pool_index = 0;            // the Proxy's pool (its plan is the Proxy's, kept current)
  // tls: a session whose client's server_name matches an entry (config::match_sni_pool) goes to
  // that entry's pool (`pool`: the Proxy's pool index, like pool_index); any other, to pool_index.
  std::vector<config::SniPool> sni_pools;
};

// A proxied listener of `config` (protocol tcp, framed or tls), its connection limit split across
// `workers`; `proxy_pool_of[i]` is the Proxy's index of config.pools[i] (its pool and sni_pools').
ListenerPlan plan_listener(const config::Config& config, const config::Listener& listener,
                           unsigned workers, std::span<const size_t> proxy_pool_of);
// Every proxied listener of `config`, at start: the Proxy's pools are in Config::pools order.
std::vector<ListenerPlan> plan_listeners(const config::Config& config, unsigned workers);

// ---- counters ---------------------------------------------------------------------------------

enum Direction : uint8_t { kToBackend = 0, kToClient = 1 };

// Per backend, per worker; one writer (the worker).
struct BackendCounters {
  Counter connections;  // backend connections established for sessions
  Counter closed;       // of those, ended (active = connections - closed)
  Counter connect_failures;
  Counter drain_resets;  // sessions reset when the backend's drain timeout expired
  // Attempts that found no free source port toward the backend on any source address (every one
  // this worker owns in use or resting in TIME-WAIT): counted, not searched for.
  Counter source_ports_exhausted;
  // The framed verdicts of its sessions, by Direction (where corruption happens).
  std::array<Counter, 2> frames_verified;
  std::array<Counter, 2> frames_corrupt;
  std::array<Counter, 2> frames_malformed;
  // Backend connections started for sessions (connecting ones included) and, of those, ended
  // (sessions = assigned - released): what `weirctl drain --wait` waits to see at zero.
  Counter assigned;
  Counter released;
  // Established backend connections the backend ended with a RST, or that timed out (our data
  // unacknowledged through every retransmission): with connect_failures, passive health's errors.
  Counter resets;
};

// Per listener, per worker; one writer (the worker). docs/metrics.md.
struct ListenerCounters {
  Counter connections;  // client connections accepted
  Counter closed;       // sessions ended (active = connections - closed)
  Counter refused_max_connections;
  Counter no_backend;  // the client was reset: no backend eligible, or every attempt failed
  Counter backend_connect_failures;
  Counter idle_timeouts;    // every inactivity reset: client_timeouts + server_timeouts
  Counter client_timeouts;  // the client was silent for client_timeout_us
  Counter server_timeouts;  // the backend was silent for server_timeout_us
  // Framed: sessions reset because a client's frame stayed incomplete for frame_timeout_us, and
  // client frames begun and not yet whole (partial_frames = started - ended; every held one is
  // a session a slowloris client may be holding).
  Counter frame_timeouts;
  Counter partial_frames_started;
  Counter partial_frames_ended;
  std::array<Counter, 2> bytes;  // by Direction
  std::array<Counter, 2> frames_verified;
  std::array<Counter, 2> bytes_verified;
  std::array<Counter, 2> frames_corrupt;
  std::array<Counter, 2> frames_malformed;
  std::array<Counter, 2> corrupt_resets;  // sessions reset for a corrupt or malformed frame
  // tls listeners: sessions refused for want of a TLS worker (none attached, or its ring full),
  // and sessions the relay reset (the worker's reason, a bad record, or the worker gone).
  Counter tls_no_worker;
  Counter tls_resets;
  // tls listeners: handshakes done, by version, and of those resumed; sessions that ended before
  // their handshake was done (refused or timed out by the worker, the client gone, the worker
  // gone); sessions sent to a pool of sni_pools rather than the listener's.
  Counter tls_handshakes_tls12;
  Counter tls_handshakes_tls13;
  Counter tls_handshakes_resumed;
  Counter tls_handshakes_failed;
  Counter tls_sni_routed;
  // Writes toward a TLS worker that found its ring full (the bytes wait, or a new session is
  // refused).
  Counter tls_ring_full;
  // Records through the TLS worker's rings, by Direction: to_backend is the client's ciphertext
  // to the worker and the plaintext from it; to_client the backend's plaintext to the worker and
  // the ciphertext from it (handshake records included).
  std::array<Counter, 2> tls_records_to_worker;
  std::array<Counter, 2> tls_records_from_worker;
};

// ---- the per-worker proxy ---------------------------------------------------------------------

class Proxy final : private TlsRelayHandler {
 public:
  // Fixed capacities, so that the structures the main lcore reads (counters, names) never move
  // while a worker adds to them; a configuration beyond them is refused.
  static constexpr size_t kMaxPools = config::kMaxPools;
  // Over the process's life, removed ones included.
  static constexpr size_t kMaxListeners = config::kMaxProxiedListeners;
  static constexpr size_t kMaxBackendSlots = config::kMaxBackendsPerPool;

  // `source_port_rest_us`: how long a backend connection's source port rests after it closed
  // before it is chosen again (the TCP stack's TIME-WAIT; the Proxy adds one timer tick to it).
  Proxy(tcp::TcpStack& tcp, net::Stack& net_stack, rte_mempool* pool,
        std::vector<std::shared_ptr<const PoolPlan>> pools, std::vector<ListenerPlan> listeners,
        const dataplane::FlowOwnership& ownership,
        uint64_t source_port_rest_us = tcp::TcpSettings{}.time_wait_us);
  ~Proxy() override;
  Proxy(const Proxy&) = delete;
  Proxy& operator=(const Proxy&) = delete;

  // Registers every listener with the TCP stack.
  void start();
  // Idle timeouts and drain deadlines. Call every poll.
  void tick(uint64_t now_us);

  // A new plan for pool `index` (a control message, applied between bursts). The listeners on
  // that pool place new sessions with it; established sessions keep their backend. The plan it
  // replaces is moved into `retired`, to be freed off the worker.
  void update_pool(size_t index, std::shared_ptr<const PoolPlan>& plan,
                   std::vector<std::shared_ptr<const PoolPlan>>& retired);
  // A listener added or removed by a reload (control messages, like update_pool).
  void add_listener(ListenerPlan plan);
  bool remove_listener(const std::string& name);
  // The box's drain (weirctl drain-box): false unregisters every listener from the TCP stack (a
  // SYN is answered with RST) and keeps the sessions; true registers them again. A listener added
  // meanwhile waits for true.
  void set_accepting(bool accepting);
  bool accepting() const { return accepting_; }
  // Shutdown, once dataplane.shutdown_grace_ms is over: resets both sides of every session still
  // open, and returns how many there were.
  size_t reset_all_sessions();

  // tls listeners (control messages, like update_pool): the channel to TLS worker `index` (its
  // memory and the eventfd that wakes it, which the Proxy then owns), attached or gone. Its
  // sessions are reset when it goes.
  void attach_tls_channel(size_t index, shm::ChannelMemory memory, int worker_event);
  void detach_tls_channel(size_t index);
  // Once per poll loop: the TLS workers' records, and what was written to them published.
  bool poll_tls() { return tls_relay_.poll(); }
  const TlsRelayCounters& tls_counters() const { return tls_relay_.counters(); }

  // Read from the main lcore: published with release stores, never shrinking.
  size_t pool_count() const { return pool_count_.load(std::memory_order_acquire); }
  const BackendCounters& backend_counters(size_t pool, size_t slot) const {
    return pools_[pool].counters[slot];
  }
  bool listener_retired(size_t i) const;

  // Main lcore (the ring's single consumer): the next frame event, if any.
  bool take_frame_event(FrameEvent& event) { return frame_events_.try_pop(event); }
  // Frame events lost because the ring was full.
  const Counter& frame_events_dropped() const { return frame_events_dropped_; }
  // The same for the session log's records (session_records.h).
  bool take_session_record(SessionRecord& record) { return session_records_.try_pop(record); }
  const Counter& session_records_dropped() const { return session_records_dropped_; }

  size_t sessions() const { return active_; }
  const SourcePorts& source_ports() const { return source_ports_; }
  size_t listener_count() const;
  const ListenerPlan& listener(size_t i) const;
  const ListenerCounters& counters(size_t i) const;

  struct Session;
  struct TlsState;
  // What one session's record takes (besides its two connections), for the memory figures.
  static size_t session_record_bytes();

 private:
  struct Side;
  struct ListenerState;

  Session* new_session(ListenerState& listener);
  // The session's backend will come from the Proxy's pool `pool`: its flow hash, by that pool's
  // key, and its session log record say so.
  void place_in_pool(Session& s, size_t pool);
  void connect_backend(Session& s);
  enum class ConnectResult { connected, no_source_port, table_full };
  // A connection to `backend` through `port` from the next source address in turn that has a
  // free source port (each source tried once): O(sources), never a search of ports.
  ConnectResult connect_from_sources(Session& s, dataplane::PortIndex port,
                                     const BackendPlan& backend, uint64_t now_us,
                                     uint64_t timeout_us);
  // A backend connection is gone: its source port goes back to the free list.
  void release_source_port(const tcp::FourTuple& tuple);
  void on_established(Session& s, bool client_side);
  void on_data(Session& s, bool client_side, rte_mbuf* data);
  void discard_for_gone_client(Session& s, rte_mbuf* data);
  void on_writable(Session& s, bool client_side);
  void on_peer_fin(Session& s, bool client_side);
  void on_closed(Session& s, bool client_side, tcp::CloseReason reason);
  // Moves what `from` has parked into the other side's send queue, as far as it takes.
  void pump(Session& s, bool from_client);
  // Runs `data` (received from the client, or not) through the session's frame relay of that
  // direction into `out`; false when the session was reset for a bad frame.
  bool inspect_frames(Session& s, bool from_client, rte_mbuf* data, tcp::MbufQueue& out);
  void record_frame_event(const Session& s, Direction direction, const FrameFault& fault);
  void reset_both(Session& s);
  // Weir itself ends the session (resets both sides): `end` is why, for the session log.
  void reset_both(Session& s, SessionEnd end);
  // The session's end cause, unless an earlier one was set.
  static void note_end(Session& s, SessionEnd end);
  // The side has been heard from, or took what was relayed to it: its silence clock restarts.
  void touch(Session& s, bool client_side);
  // A client frame's clock: started when a frame begins, stopped when it is whole or the session
  // ends.
  void track_client_frame(Session& s, bool between_frames);
  void stop_clocks(Session& s);
  void expire_timeouts(uint64_t now_us);
  void finish_if_done(Session& s);
  bool send_proxy_header(Session& s);

  // tls listeners (proxy_tls.cc). The client's connection is up: a session at the relay.
  void open_tls(Session& s);
  // Hands what `from_client`'s side has parked to the relay, as far as the ring and the far
  // side's pending output allow; its FIN after it.
  void pump_tls(Session& s, bool from_client);
  void close_tls(Session& s);
  // Copies `bytes` from the TLS worker into mbufs at the end of `queue`, through the session's
  // frame relay of `direction` first when `verify` (the plaintext of `inner: framed`). False: the
  // session was reset (a bad frame, or no mbuf left).
  bool take_from_worker(Session& s, Direction direction, std::span<const uint8_t> bytes,
                        tcp::MbufQueue& queue, bool verify);
  // TlsRelayHandler: `token` is the Session.
  void tls_handshake_done(uint64_t token, const tls_channel::HandshakeDone& done) override;
  void tls_to_client(uint64_t token, std::span<const uint8_t> ciphertext) override;
  void tls_to_backend(uint64_t token, std::span<const uint8_t> plaintext) override;
  void tls_client_end(uint64_t token) override;
  void tls_backend_end(uint64_t token) override;
  void tls_reset(uint64_t token, TlsRelayReset why) override;
  void tls_writable(uint64_t token) override;

  struct PoolRuntime {
    std::shared_ptr<const PoolPlan> plan;
    std::unique_ptr<BackendCounters[]> counters;  // kMaxBackendSlots, by slot
    std::vector<uint64_t> drain_deadline_us;      // by slot; 0: none
  };
  void append_pool(std::shared_ptr<const PoolPlan> plan);
  void expire_drains(uint64_t now_us);

  tcp::TcpStack& tcp_;
  net::Stack& net_stack_;
  rte_mempool* mbuf_pool_;
  dataplane::FlowOwnership ownership_;
  std::vector<PoolRuntime> pools_;  // reserved to kMaxPools
  std::atomic<size_t> pool_count_{0};
  std::vector<std::unique_ptr<ListenerState>> listeners_;  // reserved to kMaxListeners
  std::atomic<size_t> listener_count_{0};
  // Source ports for backend connections, 1024-65535 on every source address (the range Linux
  // uses by default is not assumed: the addresses belong to Weir alone).
  SourcePorts source_ports_;
  uint32_t next_source_ = 0;  // the source address the next backend connection starts from
  std::vector<std::unique_ptr<Session>> sessions_;  // every session ever made, live or free
  std::vector<Session*> free_sessions_;
  size_t active_ = 0;
  uint64_t next_drain_us_ = UINT64_MAX;  // the earliest drain deadline, if any
  bool started_ = false;                 // listeners registered with the TCP stack
  FrameEventRing frame_events_;          // this worker produces, the main lcore consumes
  Counter frame_events_dropped_;
  SessionRecordRing session_records_;  // the same, for the session log
  Counter session_records_dropped_;
  bool accepting_ = true;  // set_accepting
  TlsRelay tls_relay_;     // this worker's channels to the TLS workers
  // By channel index: the eventfd that wakes that TLS worker, this worker's own dup (-1: none).
  // Closed when the index is attached again, never while its channel could still write it.
  std::vector<int> tls_event_fds_;
};

}  // namespace weir::proxy
