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
    : slots_(capacity_pow2), mask_(capacity_pow2 - 1), timers_(timers) {
  assert(capacity_pow2 >= 2 && (capacity_pow2 & mask_) == 0);
}

NeighbourTable::~NeighbourTable() {
  for (Entry& entry : slots_) {
    for (uint8_t i = 0; i < entry.queued; ++i) rte_pktmbuf_free(entry.queue[i]);
    entry.queued = 0;
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
    entry->queue[entry->queued++] = packet;
    return Resolve::queued_probe;
  }
  switch (entry->state) {
    case State::incomplete:
      if (entry->queued == kQueuePerNeighbour) return Resolve::queue_full;
      entry->queue[entry->queued++] = packet;
      return Resolve::queued;
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
  const uint8_t queued = entry->queued;
  entry->queued = 0;
  for (uint8_t i = 0; i < queued; ++i) sink.release(port, mac, entry->queue[i]);
}

void NeighbourTable::expire(uint64_t now_us, Sink& sink) {
  for (Entry& entry : slots_) {
    if (entry.deadline_us > now_us) continue;
    switch (entry.state) {
      case State::incomplete:
        if (entry.probes_sent >= timers_.max_probes) {
          for (uint8_t i = 0; i < entry.queued; ++i) sink.give_up(entry.port, entry.queue[i]);
          entry.queued = 0;
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
