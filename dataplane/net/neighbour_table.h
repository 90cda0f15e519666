// Per-worker IPv4 neighbour table (RFC 826 resolution, RFC 1122 2.3.2.1 cache rules).
// Fixed capacity, open addressing, no allocation after construction. Packets waiting for a
// resolution sit in a FIFO per entry, linked through one per-worker store of kWaitingPackets
// places, and at most kQueuePerNeighbour per neighbour (Linux holds about 100, `unres_qlen`).
// Past either bound the newest is dropped (and counted by the caller), as RFC 1122 2.3.2.2 allows
// ("SHOULD save at least one"). A handful per neighbour was too few: a proxy opening a thousand
// backend connections at once sends that many SYNs before the first ARP reply, and each SYN
// dropped costs its connection a 1 s retransmission.
#pragma once

#include <rte_mbuf.h>

#include <array>
#include <cstdint>
#include <optional>
#include <vector>

#include "dataplane/net/ether.h"
#include "dataplane/net/ipv4.h"
#include "dataplane/packet_io.h"

namespace weir::net {

using dataplane::PortIndex;

struct NeighbourTimers {
  uint64_t retry_us = 1'000'000;       // between ARP requests for an unresolved neighbour
  uint32_t max_probes = 3;             // requests before giving up (queued packets dropped)
  uint64_t reachable_us = 30'000'000;  // a reply keeps an entry fresh this long (Linux default)
  uint64_t stale_us = 60'000'000;      // unused stale entries are removed after this
};

class NeighbourTable {
 public:
  static constexpr uint16_t kQueuePerNeighbour = 128;
  static constexpr uint16_t kWaitingPackets = 1024;  // per table (per worker): mbufs held at most

  // RFC 1122 2.3.2.1 leaves the cache validation method open; this follows Linux's shape:
  // reachable for `reachable_us` after a reply, then stale; a stale entry still carries traffic
  // and, when used, is refreshed by unicast probes (state probe) until a reply or give-up.
  enum class State : uint8_t { empty, incomplete, reachable, stale, probe, tombstone };

  struct Entry {
    uint32_t address = 0;  // host order
    State state = State::empty;
    uint8_t probes_sent = 0;
    uint16_t queued = 0;
    uint16_t head = kNone;  // the waiting packets: a FIFO through waiting_
    uint16_t tail = kNone;
    PortIndex port = 0;
    MacAddress mac{};
    uint64_t deadline_us = 0;  // incomplete/probe: next probe; reachable: stale; stale: removal
  };

  // What the caller must do after asking to send toward a neighbour.
  enum class Resolve : uint8_t {
    send_now,      // `mac` holds the neighbour's address; transmit
    queued,        // packet held until the reply arrives
    queued_probe,  // held, and the caller must send an ARP request now (first packet)
    probe_only,    // not held (no room): drop and count no_neighbour, but send the ARP request
    queue_full,    // not held: drop and count no_neighbour
    table_full,    // no free entry: drop and count no_neighbour
  };

  // Actions produced by `expire`: probes to send and packets to drop.
  struct Sink {
    virtual ~Sink() = default;
    virtual void probe(PortIndex port, uint32_t address, const MacAddress* unicast) = 0;
    virtual void give_up(PortIndex port, rte_mbuf* packet) = 0;
    // A resolution completed: send the packets that were waiting.
    virtual void release(PortIndex port, const MacAddress& mac, rte_mbuf* packet) = 0;
  };

  NeighbourTable(uint32_t capacity_pow2, const NeighbourTimers& timers);
  ~NeighbourTable();
  NeighbourTable(const NeighbourTable&) = delete;
  NeighbourTable& operator=(const NeighbourTable&) = delete;

  // Resolves `address` for a packet leaving on `port`. On send_now, `mac` is set and the caller
  // still owns `packet`; on queued/queued_probe the table owns it; otherwise the caller does.
  Resolve resolve(PortIndex port, uint32_t address, rte_mbuf* packet, uint64_t now_us,
                  MacAddress& mac);

  // Records a mapping learned from ARP. `create` is false for the RFC 826 merge rule (update only
  // an existing entry). Releases queued packets through `sink` when an entry becomes resolved.
  void learn(PortIndex port, uint32_t address, const MacAddress& mac, bool create, uint64_t now_us,
             Sink& sink);

  // Runs retries, refreshes and expiry. Cheap enough to call at every housekeeping tick.
  void expire(uint64_t now_us, Sink& sink);

  const Entry* find(uint32_t address) const;
  uint32_t size() const { return used_; }
  uint32_t waiting() const { return kWaitingPackets - free_count_; }

 private:
  static constexpr uint16_t kNone = UINT16_MAX;
  struct Waiting {
    rte_mbuf* packet = nullptr;
    uint16_t next = kNone;
  };
  // Appends `packet` to the entry's FIFO; false when the entry or the store is full.
  bool enqueue(Entry& entry, rte_mbuf* packet);
  // Hands every waiting packet of the entry, oldest first, to `each`, and frees their places.
  template <typename Each>
  void drain(Entry& entry, Each each);

  Entry* find_slot(uint32_t address);
  Entry* insert_slot(uint32_t address);
  void erase(Entry& entry);

  std::vector<Entry> slots_;
  std::vector<Waiting> waiting_;  // kWaitingPackets places; the free ones linked from free_
  uint16_t free_ = kNone;
  uint16_t free_count_ = 0;
  uint32_t mask_;
  uint32_t used_ = 0;
  NeighbourTimers timers_;
};

}  // namespace weir::net
