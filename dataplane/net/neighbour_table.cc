#include "dataplane/net/neighbour_table.h"

#include <cassert>

namespace weir::net {
namespace {

uint32_t slot_hash(uint32_t address) {
  // Fibonacci hashing: neighbours are usually consecutive addresses of one subnet.
  return (address * 2654435761u) >> 7;
}

}  // namespace

NeighbourTable::NeighbourTable(uint32_t capacity_pow2, const NeighbourTimers& timers)
    : slots_(capacity_pow2), waiting_(kWaitingPackets), mask_(capacity_pow2 - 1), timers_(timers) {
  assert(capacity_pow2 >= 2 && (capacity_pow2 & mask_) == 0);
  for (uint16_t i = 0; i < kWaitingPackets; ++i) {
    waiting_[i].next = free_;
    free_ = i;
  }
  free_count_ = kWaitingPackets;
}

NeighbourTable::~NeighbourTable() {
  for (Entry& entry : slots_) drain(entry, [](rte_mbuf* packet) { rte_pktmbuf_free(packet); });
}

bool NeighbourTable::enqueue(Entry& entry, rte_mbuf* packet) {
  if (entry.queued == kQueuePerNeighbour || free_ == kNone) return false;
  const uint16_t place = free_;
  free_ = waiting_[place].next;
  --free_count_;
  waiting_[place] = Waiting{packet, kNone};
  if (entry.tail == kNone) {
    entry.head = place;
  } else {
    waiting_[entry.tail].next = place;
  }
  entry.tail = place;
  ++entry.queued;
  return true;
}

template <typename Each>
void NeighbourTable::drain(Entry& entry, Each each) {
  uint16_t place = entry.head;
  entry.head = entry.tail = kNone;
  entry.queued = 0;
  while (place != kNone) {
    const uint16_t next = waiting_[place].next;
    rte_mbuf* packet = waiting_[place].packet;
    waiting_[place] = Waiting{nullptr, free_};
    free_ = place;
    ++free_count_;
    each(packet);  // after the place is free: `each` may queue again
    place = next;
  }
}

NeighbourTable::Entry* NeighbourTable::find_slot(uint32_t address) {
  for (uint32_t i = 0, slot = slot_hash(address) & mask_; i <= mask_;
       ++i, slot = (slot + 1) & mask_) {
    Entry& entry = slots_[slot];
    if (entry.state == State::empty) return nullptr;
    if (entry.state != State::tombstone && entry.address == address) return &entry;
  }
  return nullptr;
}

const NeighbourTable::Entry* NeighbourTable::find(uint32_t address) const {
  return const_cast<NeighbourTable*>(this)->find_slot(address);
}

NeighbourTable::Entry* NeighbourTable::insert_slot(uint32_t address) {
  // Keep a quarter of the slots free so probe sequences stay short.
  if (used_ + 1 > (mask_ + 1) - (mask_ + 1) / 4) return nullptr;
  for (uint32_t i = 0, slot = slot_hash(address) & mask_; i <= mask_;
       ++i, slot = (slot + 1) & mask_) {
    Entry& entry = slots_[slot];
    if (entry.state == State::empty || entry.state == State::tombstone) {
      entry = Entry{};
      entry.address = address;
      ++used_;
      return &entry;
    }
  }
  return nullptr;
}

void NeighbourTable::erase(Entry& entry) {
  assert(entry.queued == 0);
  entry = Entry{};
  entry.state = State::tombstone;
  --used_;
}

NeighbourTable::Resolve NeighbourTable::resolve(PortIndex port, uint32_t address, rte_mbuf* packet,
                                                uint64_t now_us, MacAddress& mac) {
  Entry* entry = find_slot(address);
  if (entry == nullptr) {
    entry = insert_slot(address);
    if (entry == nullptr) return Resolve::table_full;
    entry->state = State::incomplete;
    entry->port = port;
    entry->probes_sent = 1;
    entry->deadline_us = now_us + timers_.retry_us;
    return enqueue(*entry, packet) ? Resolve::queued_probe : Resolve::probe_only;
  }
  switch (entry->state) {
    case State::incomplete:
      return enqueue(*entry, packet) ? Resolve::queued : Resolve::queue_full;
    case State::stale:
      // In use again: refresh with unicast probes while traffic continues (RFC 1122 2.3.2.1).
      entry->state = State::probe;
      entry->probes_sent = 0;
      entry->deadline_us = now_us;
      [[fallthrough]];
    case State::reachable:
    case State::probe:
      mac = entry->mac;
      return Resolve::send_now;
    case State::empty:
    case State::tombstone:
      break;
  }
  return Resolve::table_full;
}

void NeighbourTable::learn(PortIndex port, uint32_t address, const MacAddress& mac, bool create,
                           uint64_t now_us, Sink& sink) {
  Entry* entry = find_slot(address);
  if (entry == nullptr) {
    if (!create) return;
    entry = insert_slot(address);
    if (entry == nullptr) return;
  }
  entry->port = port;
  entry->mac = mac;
  entry->state = State::reachable;
  entry->probes_sent = 0;
  entry->deadline_us = now_us + timers_.reachable_us;
  drain(*entry, [&](rte_mbuf* packet) { sink.release(port, mac, packet); });
}

void NeighbourTable::expire(uint64_t now_us, Sink& sink) {
  for (Entry& entry : slots_) {
    if (entry.deadline_us > now_us) continue;
    switch (entry.state) {
      case State::incomplete:
        if (entry.probes_sent >= timers_.max_probes) {
          const PortIndex port = entry.port;
          drain(entry, [&](rte_mbuf* packet) { sink.give_up(port, packet); });
          erase(entry);
          break;
        }
        ++entry.probes_sent;
        entry.deadline_us = now_us + timers_.retry_us;
        sink.probe(entry.port, entry.address, nullptr);
        break;
      case State::reachable:
        entry.state = State::stale;
        entry.deadline_us = now_us + timers_.stale_us;
        break;
      case State::stale:
        erase(entry);
        break;
      case State::probe:
        if (entry.probes_sent >= timers_.max_probes) {
          erase(entry);
          break;
        }
        ++entry.probes_sent;
        entry.deadline_us = now_us + timers_.retry_us;
        sink.probe(entry.port, entry.address, &entry.mac);
        break;
      case State::empty:
      case State::tombstone:
        break;
    }
  }
}

}  // namespace weir::net
