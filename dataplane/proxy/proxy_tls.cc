// The Proxy's tls listeners (docs/tls.md): where a framed session runs its bytes through a
// FrameRelay, a tls session hands them to a TLS worker through the worker lcore's TlsRelay, and
// what the worker returns goes into the session's pending queues, to the client (ciphertext) or
// the backend (plaintext), as received bytes do on a tcp session. With `inner: framed` the
// plaintext both ways runs through the session's FrameRelays as on a framed listener: the
// client's after the worker decrypted it, the backend's before the worker encrypts it. The
// backend's pool is chosen when the handshake is done, by the client's server_name (sni_pools).
//
// Backpressure: a side's TCP window reopens (consumed) only for the bytes the relay's ring took;
// and the bytes a side parks are handed to the relay only while the output they make for the far
// side (pending there) is under kTlsPendingLimit, so that a slow reader costs one window of
// Weir's memory per session, not what a fast writer can send.
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "dataplane/proxy/proxy.h"
#include "dataplane/proxy/proxy_session.h"

namespace weir::proxy {

namespace {

constexpr uint32_t kTlsPendingLimit = 256 * 1024;

}  // namespace

void Proxy::attach_tls_channel(size_t index, shm::ChannelMemory memory, int worker_event) {
  tls_relay_.attach_channel(index, std::move(memory), worker_event);
  if (index >= tls_event_fds_.size()) tls_event_fds_.resize(index + 1, -1);
  // The previous channel of this index was just dropped with its memory: its eventfd is unused.
  if (tls_event_fds_[index] >= 0) close(tls_event_fds_[index]);
  tls_event_fds_[index] = worker_event;
}

void Proxy::detach_tls_channel(size_t index) {
  tls_relay_.detach_channel(index);
}

void Proxy::open_tls(Session& s) {
  ListenerState& l = *s.listener;
  const tcp::FourTuple& t = s.client->tuple();
  const uint64_t full_before = tls_relay_.counters().ring_full.get();
  const auto id =
      tls_relay_.open(reinterpret_cast<uint64_t>(&s),
                      tls_channel::OpenPayload{t.remote_address, t.remote_port, l.plan.name});
  l.counters->tls_ring_full.add(tls_relay_.counters().ring_full.get() - full_before);
  if (!id) {
    l.counters->tls_no_worker.add();
    note_end(s, SessionEnd::tls_reset);
    tcp_.abort(*s.client, tcp_.now_us());
    return;
  }
  s.tls->id = *id;
}

void Proxy::close_tls(Session& s) {
  if (!s.tls || s.tls->id == 0) return;
  if (!s.tls->handshake_done) s.listener->counters->tls_handshakes_failed.add();
  tls_relay_.close(s.tls->id);
  s.tls->id = 0;
}

void Proxy::pump_tls(Session& s, bool from_client) {
  TlsState& t = *s.tls;
  if (t.id == 0) return;
  const Direction direction = from_client ? kToBackend : kToClient;
  tcp::MbufQueue& parked = t.parked[direction];
  uint32_t taken = 0;
  uint64_t records = 0;
  const uint64_t full_before = tls_relay_.counters().ring_full.get();
  if (s.pending[direction].bytes() < kTlsPendingLimit) {
    bool short_write = false;
    parked.for_each_piece(0, parked.bytes(), [&](rte_mbuf* segment, uint16_t offset, uint16_t n) {
      if (short_write) return;
      const std::span<const uint8_t> bytes(rte_pktmbuf_mtod_offset(segment, uint8_t*, offset), n);
      const size_t k =
          from_client ? tls_relay_.from_client(t.id, bytes) : tls_relay_.from_backend(t.id, bytes);
      taken += static_cast<uint32_t>(k);
      // The relay cuts a piece into records of at most kMaxRecordPayload from its start.
      records += (k + tls_channel::kMaxRecordPayload - 1) / tls_channel::kMaxRecordPayload;
      short_write = k < n;
    });
  }
  ListenerCounters& counters = *s.listener->counters;
  counters.tls_records_to_worker[direction].add(records);
  if (taken > 0) {
    parked.drop_front(taken);
    if (tcp::Connection* source = s.from(from_client)) tcp_.consumed(*source, taken, tcp_.now_us());
  }
  if (parked.empty() && t.fin[direction] && !t.end_sent[direction])
    t.end_sent[direction] =
        from_client ? tls_relay_.client_end(t.id) : tls_relay_.backend_end(t.id);
  counters.tls_ring_full.add(tls_relay_.counters().ring_full.get() - full_before);
}

bool Proxy::take_from_worker(Session& s, Direction direction, std::span<const uint8_t> bytes,
                             tcp::MbufQueue& queue, bool verify) {
  while (!bytes.empty()) {
    rte_mbuf* m = rte_pktmbuf_alloc(mbuf_pool_);
    if (m == nullptr) {
      reset_both(s, SessionEnd::tls_reset);  // a gap in the stream is never forwarded
      return false;
    }
    const uint16_t n =
        static_cast<uint16_t>(std::min<size_t>(bytes.size(), rte_pktmbuf_tailroom(m)));
    std::memcpy(rte_pktmbuf_append(m, n), bytes.data(), n);
    bytes = bytes.subspan(n);
    if (!verify) {
      tcp_.keep_received(queue, m);
    } else if (!inspect_frames(s, direction == kToBackend, m, queue)) {
      return false;  // reset, and counted, as on a framed listener
    }
  }
  return true;
}

void Proxy::tls_handshake_done(uint64_t token, const tls_channel::HandshakeDone& done) {
  Session& s = *reinterpret_cast<Session*>(token);
  ListenerState& l = *s.listener;
  s.tls->handshake_done = true;
  (done.version == 0x0304 ? l.counters->tls_handshakes_tls13 : l.counters->tls_handshakes_tls12)
      .add();
  if (done.resumed) l.counters->tls_handshakes_resumed.add();
  touch(s, true);             // the client's handshake
  if (s.client == nullptr) {  // the client closed cleanly during the handshake: nothing to serve
    close_tls(s);
    finish_if_done(s);
    return;
  }
  // The pool by the client's server_name, matched here against this dataplane's own plan (the
  // worker's sni_pool index could come from another configuration during a reload): an unknown
  // name, or none, keeps the listener's pool.
  if (const auto route = config::match_sni_pool(l.plan.sni_pools, done.server_name)) {
    place_in_pool(s, l.plan.sni_pools[*route].pool);
    l.counters->tls_sni_routed.add();
  }
  connect_backend(s);
}

void Proxy::tls_to_client(uint64_t token, std::span<const uint8_t> ciphertext) {
  Session& s = *reinterpret_cast<Session*>(token);
  touch(s, false);  // mostly the backend's data (the handshake has its own timeout)
  s.listener->counters->tls_records_from_worker[kToClient].add();
  if (!take_from_worker(s, kToClient, ciphertext, s.pending[kToClient], false)) return;
  pump(s, false);
}

void Proxy::tls_to_backend(uint64_t token, std::span<const uint8_t> plaintext) {
  Session& s = *reinterpret_cast<Session*>(token);
  touch(s, true);  // the client's data
  s.listener->counters->tls_records_from_worker[kToBackend].add();
  // inner: framed: the client's frames are verified (and stamped) as on a framed listener.
  const bool verify = s.relays != nullptr;
  if (!take_from_worker(s, kToBackend, plaintext, s.pending[kToBackend], verify)) return;
  pump(s, true);
}

void Proxy::tls_client_end(uint64_t token) {
  Session& s = *reinterpret_cast<Session*>(token);
  s.eof[kToClient] = true;  // close_notify is on its way: the FIN follows it
  pump(s, false);
}

void Proxy::tls_backend_end(uint64_t token) {
  Session& s = *reinterpret_cast<Session*>(token);
  s.eof[kToBackend] = true;  // the client's close_notify: the backend's FIN after the plaintext
  pump(s, true);
}

void Proxy::tls_reset(uint64_t token, TlsRelayReset) {
  Session& s = *reinterpret_cast<Session*>(token);
  s.tls->id = 0;  // already gone at the relay
  if (!s.tls->handshake_done) s.listener->counters->tls_handshakes_failed.add();
  s.listener->counters->tls_resets.add();
  reset_both(s, SessionEnd::tls_reset);
}

void Proxy::tls_writable(uint64_t token) {
  Session& s = *reinterpret_cast<Session*>(token);
  pump_tls(s, true);
  pump_tls(s, false);
}

}  // namespace weir::proxy
