// See tls_relay.h.
#include "dataplane/proxy/tls_relay.h"

#include <algorithm>
#include <cstring>
#include <deque>

namespace weir::proxy {

using tls_channel::Kind;
using tls_channel::kMaxRecordPayload;
using tls_channel::ResetReason;

namespace {

constexpr uint32_t kIndexBits = 32;

uint16_t kind_of(Kind kind) {
  return static_cast<uint16_t>(kind);
}

}  // namespace

struct TlsRelay::Slot {
  uint64_t token = 0;
  uint32_t generation = 0;  // of the current (live) or last occupant; 0: never used
  uint32_t channel = 0;
  bool live = false;
  bool handshake_done = false;
  bool client_ended = false;   // ciphertext_end seen from the worker
  bool backend_ended = false;  // plaintext_end seen from the worker
  bool waiting = false;        // on its channel's waiting list
  uint64_t in_ring = 0;        // payload bytes of its records the worker has not consumed yet
};

namespace {

// A data record in a ring toward a worker, not yet consumed: its session and where it ends.
struct InFlight {
  uint64_t end;  // RingWriter::position() after it
  uint32_t slot;
  uint32_t generation;
  uint32_t bytes;
};

}  // namespace

struct TlsRelay::Channel {
  Channel(shm::ChannelMemory m, int worker_event)
      : memory(std::move(m)),
        out(memory.writer(shm::Side::a, kMaxRecordPayload, worker_event)),
        in(memory.reader(shm::Side::a, kMaxRecordPayload, worker_event)),
        // Room enough for one whole record and the padding before it, in the smallest rings too.
        room_to_resume(std::min<uint64_t>(memory.ring_capacity() / 2,
                                          2 * shm::record_space(kMaxRecordPayload))),
        credit(std::max<uint64_t>(memory.ring_capacity() / kSessionCreditShare,
                                  2 * uint64_t{kMaxRecordPayload})) {}
  shm::ChannelMemory memory;
  shm::RingWriter out;
  shm::RingReader in;
  uint64_t room_to_resume;
  uint64_t credit;                 // a session's bytes in the ring at most
  std::deque<InFlight> in_flight;  // oldest first
  bool live = true;
  size_t sessions = 0;
  std::vector<uint32_t> waiting;  // slots told tls_writable once the ring has room
  std::vector<uint64_t> unsent_resets;
};

TlsRelay::TlsRelay(TlsRelayHandler& handler, uint32_t max_sessions)
    : handler_(handler), slots_(max_sessions) {
  free_slots_.reserve(max_sessions);
  for (uint32_t i = max_sessions; i > 0; --i) free_slots_.push_back(i - 1);
}

TlsRelay::~TlsRelay() = default;

void TlsRelay::attach_channel(size_t index, shm::ChannelMemory memory, int worker_event) {
  if (index >= channels_.size()) channels_.resize(index + 1);
  if (channels_[index] && channels_[index]->live) drop(*channels_[index]);
  channels_[index] = std::make_unique<Channel>(std::move(memory), worker_event);
}

void TlsRelay::detach_channel(size_t index) {
  if (index < channels_.size() && channels_[index] && channels_[index]->live)
    drop(*channels_[index]);
}

size_t TlsRelay::live_channels() const {
  return static_cast<size_t>(std::count_if(channels_.begin(), channels_.end(),
                                           [](const auto& c) { return c && c->live; }));
}

size_t TlsRelay::sessions_on(size_t index) const {
  return index < channels_.size() && channels_[index] && channels_[index]->live
             ? channels_[index]->sessions
             : 0;
}

std::optional<TlsRelay::SessionId> TlsRelay::open(uint64_t token,
                                                  const tls_channel::OpenPayload& request) {
  Channel* chosen = nullptr;
  uint32_t chosen_index = 0;
  for (size_t i = 0; i < channels_.size(); ++i) {
    if (!channels_[i]) continue;
    Channel& c = *channels_[i];
    if (c.live && (chosen == nullptr || c.sessions < chosen->sessions)) {
      chosen = &c;
      chosen_index = static_cast<uint32_t>(i);
    }
  }
  if (chosen == nullptr || free_slots_.empty()) {
    counters_.no_channel.add();
    return std::nullopt;
  }
  const uint32_t index = free_slots_.back();
  Slot& slot = slots_[index];
  const uint32_t generation = slot.generation + 1 == 0 ? 1 : slot.generation + 1;
  const SessionId id = (uint64_t{generation} << kIndexBits) | index;
  if (!chosen->out.try_write(id, kind_of(Kind::open), tls_channel::encode(request))) {
    counters_.ring_full.add();
    counters_.no_channel.add();
    return std::nullopt;
  }
  free_slots_.pop_back();
  slot = Slot{};
  slot.token = token;
  slot.generation = generation;
  slot.channel = chosen_index;
  slot.live = true;
  ++chosen->sessions;
  ++active_;
  counters_.sessions_opened.add();
  return id;
}

TlsRelay::Slot* TlsRelay::find(SessionId id) {
  const uint64_t index = id & ((uint64_t{1} << kIndexBits) - 1);
  if (index >= slots_.size()) return nullptr;
  Slot& slot = slots_[index];
  return slot.live && slot.generation == (id >> kIndexBits) ? &slot : nullptr;
}

size_t TlsRelay::from_client(SessionId id, std::span<const uint8_t> ciphertext) {
  return write_records(id, Kind::ciphertext, ciphertext, counters_.ciphertext_to_worker);
}

size_t TlsRelay::from_backend(SessionId id, std::span<const uint8_t> plaintext) {
  return write_records(id, Kind::plaintext, plaintext, counters_.plaintext_to_worker);
}

size_t TlsRelay::write_records(SessionId id, Kind kind, std::span<const uint8_t> bytes,
                               dataplane::Counter& bytes_counter) {
  Slot* slot = find(id);
  if (slot == nullptr) return 0;
  Channel& channel = *channels_[slot->channel];
  const auto index = static_cast<uint32_t>(id);
  size_t taken = 0;
  while (taken < bytes.size()) {
    const uint64_t credit_left = channel.credit - std::min(channel.credit, slot->in_ring);
    if (credit_left == 0) {
      counters_.credit_waits.add();
      wait_for_room(*slot, index);
      break;
    }
    const auto chunk = bytes.subspan(
        taken, std::min<size_t>({bytes.size() - taken, kMaxRecordPayload, credit_left}));
    if (!channel.out.try_write(id, kind_of(kind), chunk)) {
      counters_.ring_full.add();
      wait_for_room(*slot, index);
      break;
    }
    channel.in_flight.push_back(InFlight{channel.out.position(), index, slot->generation,
                                         static_cast<uint32_t>(chunk.size())});
    slot->in_ring += chunk.size();
    taken += chunk.size();
  }
  bytes_counter.add(taken);
  return taken;
}

bool TlsRelay::client_end(SessionId id) {
  return write_empty(id, Kind::ciphertext_end);
}

bool TlsRelay::backend_end(SessionId id) {
  return write_empty(id, Kind::plaintext_end);
}

bool TlsRelay::write_empty(SessionId id, Kind kind) {
  Slot* slot = find(id);
  // A session with bytes the ring did not take sends its end after them, never before.
  if (slot == nullptr || slot->waiting) return false;
  if (channels_[slot->channel]->out.try_write(id, kind_of(kind), {})) return true;
  counters_.ring_full.add();
  wait_for_room(*slot, static_cast<uint32_t>(id));
  return false;
}

void TlsRelay::wait_for_room(Slot& slot, uint32_t index) {
  if (slot.waiting) return;
  slot.waiting = true;
  channels_[slot.channel]->waiting.push_back(index);
}

void TlsRelay::close(SessionId id) {
  if (Slot* slot = find(id)) release(*slot, static_cast<uint32_t>(id), true);
}

void TlsRelay::release(Slot& slot, uint32_t index, bool tell_worker) {
  Channel& channel = *channels_[slot.channel];
  const SessionId id = (uint64_t{slot.generation} << kIndexBits) | index;
  if (tell_worker && !channel.out.try_write(id, kind_of(Kind::reset), {}))
    channel.unsent_resets.push_back(id);
  slot.live = false;  // the generation stays: later records for it are stale, not foreign
  slot.waiting = false;
  --channel.sessions;
  --active_;
  free_slots_.push_back(index);
}

bool TlsRelay::poll() {
  bool read = false;
  for (auto& owned : channels_) {
    if (!owned || !owned->live) continue;
    Channel& channel = *owned;
    while (!channel.unsent_resets.empty() &&
           channel.out.try_write(channel.unsent_resets.back(), kind_of(Kind::reset), {}))
      channel.unsent_resets.pop_back();
    const size_t index = static_cast<size_t>(&owned - channels_.data());
    // A handler may detach the channel from inside a call: nothing of it is read after that.
    while (channel.live) {
      const auto record = channel.in.peek();
      if (!record) break;
      dispatch(index, *record);
      channel.in.pop();
      read = true;
    }
    if (!channel.live) continue;
    channel.in.release();
    if (channel.in.broken() || channel.out.broken()) {
      drop(channel);
      continue;
    }
    take_back_credit(channel);
    if (channel.out.broken()) {
      drop(channel);
      continue;
    }
    tell_waiting(channel);
    channel.out.publish();
  }
  return read;
}

void TlsRelay::take_back_credit(Channel& channel) {
  if (channel.in_flight.empty()) return;
  const uint64_t consumed = channel.out.consumed();
  while (!channel.in_flight.empty() && channel.in_flight.front().end <= consumed) {
    const InFlight& record = channel.in_flight.front();
    Slot& slot = slots_[record.slot];
    if (slot.live && slot.generation == record.generation) slot.in_ring -= record.bytes;
    channel.in_flight.pop_front();
  }
}

void TlsRelay::tell_waiting(Channel& channel) {
  if (channel.waiting.empty() || !channel.out.has_room(channel.room_to_resume)) return;
  std::vector<uint32_t> waiting;
  waiting.swap(channel.waiting);
  for (const uint32_t i : waiting) {
    Slot& slot = slots_[i];
    if (!slot.live || !slot.waiting) continue;
    if (slot.in_ring > channel.credit / 2) {  // still short of credit: half of it back first
      channel.waiting.push_back(i);
      continue;
    }
    slot.waiting = false;
    handler_.tls_writable(slot.token);  // may write, and wait again
  }
}

void TlsRelay::dispatch(size_t channel, const shm::Record& record) {
  const uint64_t index = record.session & ((uint64_t{1} << kIndexBits) - 1);
  const uint64_t generation = record.session >> kIndexBits;
  if (index >= slots_.size() || generation == 0) {
    counters_.faults[static_cast<size_t>(TlsRecordFault::foreign_session)].add();
    return;
  }
  Slot& slot = slots_[index];
  const bool current = slot.live && slot.generation == generation;
  if (current && slot.channel != channel) {
    counters_.faults[static_cast<size_t>(TlsRecordFault::foreign_session)].add();
    return;
  }
  if (!current) {
    // Issued before (the session ended here while its records were in flight), or never.
    if (generation <= slot.generation) {
      counters_.stale_records.add();
    } else {
      counters_.faults[static_cast<size_t>(TlsRecordFault::foreign_session)].add();
    }
    return;
  }
  const uint32_t slot_index = static_cast<uint32_t>(index);
  const auto payload = record.payload;
  switch (static_cast<Kind>(record.kind)) {
    case Kind::ciphertext:
      if (payload.empty()) return refuse(slot, slot_index, TlsRecordFault::bad_length);
      counters_.ciphertext_from_worker.add(payload.size());
      handler_.tls_to_client(slot.token, payload);
      return;
    case Kind::plaintext:
      if (!slot.handshake_done || slot.backend_ended)
        return refuse(slot, slot_index, TlsRecordFault::out_of_order);
      if (payload.empty()) return refuse(slot, slot_index, TlsRecordFault::bad_length);
      counters_.plaintext_from_worker.add(payload.size());
      handler_.tls_to_backend(slot.token, payload);
      return;
    case Kind::handshake_done: {
      if (slot.handshake_done) return refuse(slot, slot_index, TlsRecordFault::out_of_order);
      const auto done = tls_channel::decode_handshake_done(payload);
      if (!done || (done->version != 0x0303 && done->version != 0x0304))
        return refuse(slot, slot_index, TlsRecordFault::bad_length);
      slot.handshake_done = true;
      (done->version == 0x0304 ? counters_.handshakes_tls13 : counters_.handshakes_tls12).add();
      if (done->resumed) counters_.handshakes_resumed.add();
      handler_.tls_handshake_done(slot.token, *done);
      return;
    }
    case Kind::ciphertext_end:
    case Kind::plaintext_end: {
      const bool client = static_cast<Kind>(record.kind) == Kind::ciphertext_end;
      bool& ended = client ? slot.client_ended : slot.backend_ended;
      if (!payload.empty()) return refuse(slot, slot_index, TlsRecordFault::bad_length);
      if (!slot.handshake_done || ended)
        return refuse(slot, slot_index, TlsRecordFault::out_of_order);
      ended = true;
      client ? handler_.tls_client_end(slot.token) : handler_.tls_backend_end(slot.token);
      return;
    }
    case Kind::reset: {
      uint16_t reason = 0;
      if (payload.size() != sizeof reason)
        return refuse(slot, slot_index, TlsRecordFault::bad_length);
      std::memcpy(&reason, payload.data(), sizeof reason);
      if (reason == 0 || reason >= tls_channel::kResetReasons)
        return refuse(slot, slot_index, TlsRecordFault::bad_length);
      counters_.worker_resets[reason].add();
      const uint64_t token = slot.token;
      release(slot, slot_index, false);  // the worker has forgotten it already
      handler_.tls_reset(token, TlsRelayReset::worker_reset);
      return;
    }
    case Kind::open:
    default:
      return refuse(slot, slot_index, TlsRecordFault::bad_kind);
  }
}

void TlsRelay::refuse(Slot& slot, uint32_t index, TlsRecordFault fault) {
  counters_.faults[static_cast<size_t>(fault)].add();
  const uint64_t token = slot.token;
  release(slot, index, true);
  handler_.tls_reset(token, TlsRelayReset::bad_record);
}

void TlsRelay::drop(Channel& channel) {
  const size_t index =
      static_cast<size_t>(std::find_if(channels_.begin(), channels_.end(),
                                       [&](const auto& c) { return c.get() == &channel; }) -
                          channels_.begin());
  channel.live = false;
  channel.waiting.clear();
  channel.unsent_resets.clear();
  channel.in_flight.clear();
  counters_.channels_dropped.add();
  for (uint32_t i = 0; i < slots_.size(); ++i) {
    Slot& slot = slots_[i];
    if (!slot.live || slot.channel != index) continue;
    const uint64_t token = slot.token;
    release(slot, i, false);
    handler_.tls_reset(token, TlsRelayReset::worker_gone);
  }
  // Its memory is unmapped when a new worker's channel takes the place (attach_channel), so
  // that no pointer into it outlives a call on this relay's stack.
}

}  // namespace weir::proxy
