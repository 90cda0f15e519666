// The dataplane's side of `tls` listeners (docs/tls.md, "Next: wiring the dataplane", steps 1-5):
// one TlsRelay per dataplane worker, between its sessions and the weir-tls-worker processes it
// has channels to (common/shm_channel.h, side A). It turns a session's bytes from the client
// (ciphertext) and from the backend (plaintext) into records for the session's TLS worker, and
// the records that worker sends back into calls on a TlsRelayHandler (the Proxy; in tests,
// in-memory queues).
//
// No DPDK here, so that it is unit-tested without EAL: bytes cross as spans, and the handler
// copies what it is given into mbufs (the ring's bytes are the worker's memory, valid only during
// the call).
//
// Distrust: a TLS worker may be buggy or compromised. Every record it sends is checked before it
// touches a session: the session id must be one this relay issued to that channel and still holds
// (a stale one, a session the dataplane already ended, is dropped and counted: records cross a
// reset in flight; any other is foreign, refused and counted), the kind must be one a worker may
// send in the session's state, and the payload's length must be the kind's. A bad record resets
// its own session only; a broken ring (an impossible index or header) resets every session of its
// channel, and the channel is dropped.
//
// Credits: a session may have at most a quarter of its channel's ring (kSessionCreditShare) in
// records the worker has not consumed yet, so that one session, however fast its client sends,
// cannot fill the ring and stall every other session of the channel behind it. What a session
// has in the ring is known without a word from the worker: the ring is FIFO, so a record is
// consumed once the reader's tail (reread once per poll while records are in flight) has passed
// its end. A session out of credit keeps its bytes, as with a full ring, and hears tls_writable
// once half its credit is back.
//
// Batching: records are written with plain stores and published once per poll() per channel;
// the dataplane never announces a sleep (it polls), so the worker never writes an eventfd toward
// it, and the dataplane writes one only when the worker sleeps.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "common/shm_channel.h"
#include "common/tls_channel.h"
#include "dataplane/counters.h"

namespace weir::proxy {

// Why the relay reset a session it held (beside a worker's own ResetReason).
enum class TlsRelayReset : uint8_t {
  worker_reset,  // the worker ended it (its reason is counted in TlsRelayCounters::worker_resets)
  bad_record,    // the worker sent a record this session's state does not allow
  worker_gone,   // the channel was dropped: the worker died or its ring broke
};

// Records from a worker the relay refused, by cause.
enum class TlsRecordFault : uint8_t {
  foreign_session,  // a session id this relay never gave that channel
  bad_kind,         // a kind a worker never sends (`open`, or unknown)
  bad_length,       // a payload whose length (or content) the kind does not allow
  out_of_order,     // a kind the session's state does not allow (plaintext before the handshake)
  count_,
};

struct TlsRelayCounters {
  dataplane::Counter sessions_opened;
  dataplane::Counter no_channel;        // a session refused: no live channel, table or ring full
  dataplane::Counter ring_full;         // a write toward a worker that found its ring full
  dataplane::Counter credit_waits;      // a write stopped by its session's credit (ring not full)
  dataplane::Counter stale_records;     // records for a session already ended here (dropped)
  dataplane::Counter channels_dropped;  // detached or broken
  std::array<dataplane::Counter, static_cast<size_t>(TlsRecordFault::count_)> faults;
  std::array<dataplane::Counter, tls_channel::kResetReasons> worker_resets;  // by ResetReason
  dataplane::Counter handshakes_tls12, handshakes_tls13, handshakes_resumed;
  dataplane::Counter ciphertext_to_worker, plaintext_to_worker;  // bytes
  dataplane::Counter ciphertext_from_worker, plaintext_from_worker;
  uint64_t fault(TlsRecordFault f) const { return faults[static_cast<size_t>(f)].get(); }
};

// What the relay delivers for a session; `token` is what the handler gave open(). Every call
// except tls_writable may come from inside poll() only.
class TlsRelayHandler {
 public:
  virtual ~TlsRelayHandler() = default;
  virtual void tls_handshake_done(uint64_t token, const tls_channel::HandshakeDone& done) = 0;
  // Ciphertext for the client, plaintext for the backend: copy it before returning.
  virtual void tls_to_client(uint64_t token, std::span<const uint8_t> ciphertext) = 0;
  virtual void tls_to_backend(uint64_t token, std::span<const uint8_t> plaintext) = 0;
  // The worker ended a stream: shut the client's write side (close_notify sent), or the
  // backend's (the client's close_notify).
  virtual void tls_client_end(uint64_t token) = 0;
  virtual void tls_backend_end(uint64_t token) = 0;
  // The session is gone from the relay (its id is dead): reset both connections.
  virtual void tls_reset(uint64_t token, TlsRelayReset why) = 0;
  // The ring toward the session's worker has room again after a short write: resend what is
  // parked.
  virtual void tls_writable(uint64_t token) = 0;
};

class TlsRelay {
 public:
  // A session's credit: this share of its channel's ring (at least two records' worth).
  static constexpr uint64_t kSessionCreditShare = 4;  // a quarter

  using SessionId = uint64_t;  // generation << 32 | slot; 0 is never issued

  // `max_sessions`: the slot table's size (the worker's TCP capacity bounds it: one per session).
  TlsRelay(TlsRelayHandler& handler, uint32_t max_sessions);
  ~TlsRelay();
  TlsRelay(const TlsRelay&) = delete;
  TlsRelay& operator=(const TlsRelay&) = delete;

  // The channel to TLS worker `index` (the main lcore numbers the workers it hands channels to,
  // the same for every dataplane worker), as side A; `worker_event` wakes the worker when it
  // sleeps (-1: it polls). A live channel of that index is dropped first. Never from inside a
  // handler call.
  void attach_channel(size_t index, shm::ChannelMemory memory, int worker_event);
  // The worker is gone (its socket ended): every session on the channel is reset (tls_reset with
  // worker_gone); its memory is unmapped when the index is attached again.
  void detach_channel(size_t index);
  size_t live_channels() const;
  size_t sessions_on(size_t index) const;

  // A new session on the live channel with the fewest sessions: its `open` record is written.
  // nullopt (counted no_channel): no live channel, the slot table or the ring is full.
  std::optional<SessionId> open(uint64_t token, const tls_channel::OpenPayload& request);
  // Bytes from the client (ciphertext) or the backend (plaintext), split into records of at most
  // kMaxRecordPayload: returns how many the ring took. Fewer than offered: the ring is full; the
  // caller keeps the rest (its receive window stays closed) and hears tls_writable once there is
  // room.
  size_t from_client(SessionId id, std::span<const uint8_t> ciphertext);
  size_t from_backend(SessionId id, std::span<const uint8_t> plaintext);
  // A FIN from the client or the backend; false: the ring is full (tls_writable follows).
  bool client_end(SessionId id);
  bool backend_end(SessionId id);
  // The dataplane ended the session (a connection reset, an idle timeout): the id dies now, and
  // the worker hears `reset` (at once, or once its ring has room).
  void close(SessionId id);

  // Once per poll loop: every channel's records dispatched to the handler, what was written
  // published (one store and at most one wake-up per channel), waiting sessions told of room.
  // True if a record was read.
  bool poll();

  const TlsRelayCounters& counters() const { return counters_; }
  size_t sessions() const { return active_; }

 private:
  struct Slot;
  struct Channel;

  Slot* find(SessionId id);
  size_t write_records(SessionId id, tls_channel::Kind kind, std::span<const uint8_t> bytes,
                       dataplane::Counter& bytes_counter);
  bool write_empty(SessionId id, tls_channel::Kind kind);
  void wait_for_room(Slot& slot, uint32_t index);
  void take_back_credit(Channel& channel);
  void tell_waiting(Channel& channel);
  void dispatch(size_t channel, const shm::Record& record);
  void refuse(Slot& slot, uint32_t index, TlsRecordFault fault);
  // Frees the slot; `tell_worker` queues a `reset` record for it.
  void release(Slot& slot, uint32_t index, bool tell_worker);
  void drop(Channel& channel);

  TlsRelayHandler& handler_;
  std::vector<Slot> slots_;
  std::vector<uint32_t> free_slots_;
  std::vector<std::unique_ptr<Channel>> channels_;
  size_t active_ = 0;
  TlsRelayCounters counters_;
};

}  // namespace weir::proxy
