// The Proxy's private parts (proxy.h), shared by its two source files: proxy.cc (tcp and framed
// sessions) and proxy_tls.cc (the TLS relay of tls listeners). Included by nothing else.
#pragma once

#include <memory>

#include "dataplane/proxy/deadline_list.h"
#include "dataplane/proxy/proxy.h"
#include "dataplane/tcp/mbuf_queue.h"

namespace weir::proxy {

struct Proxy::Side final : tcp::ConnectionHandler {
  Proxy* proxy = nullptr;
  Session* session = nullptr;
  // Which side this is: the session's client_side or its backend_side (no flag of its own: every
  // session holds two sides).
  bool is_client() const;
  void on_established(tcp::Connection&) override { proxy->on_established(*session, is_client()); }
  void on_data(tcp::Connection&, rte_mbuf* data) override {
    proxy->on_data(*session, is_client(), data);
  }
  void on_writable(tcp::Connection&) override { proxy->on_writable(*session, is_client()); }
  void on_peer_fin(tcp::Connection&) override { proxy->on_peer_fin(*session, is_client()); }
  void on_closed(tcp::Connection& c, tcp::CloseReason reason) override {
    const bool client = is_client();
    if (!client) proxy->release_source_port(c.tuple());
    proxy->on_closed(*session, client, reason);
  }
};

// A tls listener's session at the TLS relay (tls_relay.h): its id there, and the bytes the ring
// toward its TLS worker has not taken yet (their TCP window stays closed meanwhile).
struct Proxy::TlsState {
  TlsRelay::SessionId id = 0;    // 0: not opened, or ended at the relay
  tcp::MbufQueue parked[2];      // by Direction: from the client (ciphertext), from the backend
  bool fin[2] = {false, false};  // by Direction: that side's FIN has arrived
  bool end_sent[2] = {false, false};  // ... and the relay has taken it (after the parked bytes)
  bool handshake_done = false;        // else an end at the relay is a failed handshake (counted)
};

// A framed listener's two frame relays, by Direction: one allocation, out of the session's record.
struct FrameRelayPair {
  explicit FrameRelayPair(const FrameRelaySettings& settings)
      : direction{FrameRelay(settings), FrameRelay(settings)} {}
  FrameRelay direction[2];
};

// One per proxied session, live or on the free list. With its two connections' records it is the
// memory of an idle session (docs/operations.md; at most 1 KiB, the many_connections suite), so
// what only some listeners use is out of line behind a pointer, and the flags are bits.
struct Proxy::Session {
  ListenerState* listener = nullptr;
  Side client_side, backend_side;
  tcp::Connection* client = nullptr;
  tcp::Connection* backend = nullptr;  // null before the first connect and after it closed
  // By Direction: bytes received and not yet taken by the other side's send queue. Held by the
  // session, not the connection, so that a side that has closed cleanly still delivers them.
  tcp::MbufQueue pending[2];
  uint64_t tried = 0;  // backends attempted (by index, the first 64)
  uint64_t flow_hash = 0;
  // Each side's silence, and (framed) how long the client's frame in progress has been open:
  // clocks on the listener's lists (deadline_list.h).
  DeadlineLink<Session> client_quiet, server_quiet, client_frame;
  // Framed listeners only: out of line, so that an idle `tcp` session costs 350 bytes less.
  std::unique_ptr<FrameRelayPair> relays;
  // Sampled sessions of a listener with a session log only (the rest pay a pointer).
  std::unique_ptr<SessionRecord> log;
  // Sessions of tls listeners only (the rest pay a pointer).
  std::unique_ptr<TlsState> tls;
  uint32_t backend_slot = UINT32_MAX;  // the chosen backend's counter slot
  bool fin_to[2] = {false, false};     // by Direction: shutdown_write done toward that side
  bool eof[2] = {false, false};        // by Direction: the sending side's FIN has arrived
  uint8_t attempts = 0;
  // The Proxy's pool its backend comes from: the listener's, or (tls) its SNI route's, chosen
  // when the handshake is done.
  uint16_t pool = 0;
  bool backend_established : 1 = false;
  bool live : 1 = false;             // between accept and release
  bool backend_counted : 1 = false;  // in that backend's connections counter

  void reset() {
    listener = nullptr;
    client = backend = nullptr;
    backend_established = live = false;
    for (int d = 0; d < 2; ++d) {
      fin_to[d] = eof[d] = false;
      pending[d].clear();
    }
    relays.reset();
    log.reset();
    tls.reset();
    attempts = 0;
    pool = 0;
    tried = flow_hash = 0;
    backend_slot = UINT32_MAX;
    backend_counted = false;
    client_quiet = server_quiet = client_frame = {};
  }

  // The direction's frame relay, on framed listeners (else null).
  FrameRelay* relay(int direction) const {
    return relays ? &relays->direction[direction] : nullptr;
  }
  tcp::Connection* from(bool client_side) const { return client_side ? client : backend; }
  tcp::Connection* to(bool client_side) const { return client_side ? backend : client; }
};
// Growth here is growth of every idle session: 100,000 sessions, 100,000 times.
static_assert(sizeof(Proxy::Session) <= 248, "a session's record outgrew its 248 bytes");

inline bool Proxy::Side::is_client() const {
  return this == &session->client_side;
}

// Resets a connection it is given right after the handshake: the listener was at its limit.
class Refuser final : public tcp::ConnectionHandler {
 public:
  explicit Refuser(tcp::TcpStack& tcp) : tcp_(tcp) {}
  void on_established(tcp::Connection& c) override { tcp_.abort(c, tcp_.now_us()); }
  void on_data(tcp::Connection& c, rte_mbuf* data) override {
    rte_pktmbuf_free(data);
    tcp_.abort(c, tcp_.now_us());
  }

 private:
  tcp::TcpStack& tcp_;
};

struct Proxy::ListenerState final : tcp::ListenerHandler {
  Proxy* proxy = nullptr;
  uint16_t index = 0;                // in the Proxy's listeners_ (frame events name it so)
  std::atomic<bool> retired{false};  // removed by a reload; its sessions finish undisturbed
  ListenerPlan plan;
  std::unique_ptr<ListenerCounters> counters = std::make_unique<ListenerCounters>();
  std::unique_ptr<Refuser> refuser;
  uint32_t active = 0;
  uint64_t sessions_seen = 0;  // accepted sessions, for the session log's one in N
  DeadlineList<Session, &Session::client_quiet> client_quiet;
  DeadlineList<Session, &Session::server_quiet> server_quiet;
  DeadlineList<Session, &Session::client_frame> client_frames;

  tcp::ConnectionHandler* accept(tcp::Connection& c) override {
    counters->connections.add();
    if (active >= plan.max_connections || retired.load(std::memory_order_relaxed)) {
      counters->refused_max_connections.add();
      counters->closed.add();
      return refuser.get();
    }
    Session* s = proxy->new_session(*this);
    s->client = &c;
    const tcp::FourTuple& t = c.tuple();
    if (s->log) {
      s->log->client_address = t.remote_address;
      s->log->client_port = t.remote_port;
    }
    proxy->place_in_pool(*s, plan.pool_index);
    return &s->client_side;
  }
};

}  // namespace weir::proxy
