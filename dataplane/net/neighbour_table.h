// Per-worker IPv4 neighbour table (RFC 826 resolution, RFC 1122 2.3.2.1 cache rules).
// Fixed capacity, open addressing, no allocation after construction. Packets waiting for a
// resolution sit in a small bounded queue per entry; when it is full the newest is dropped (and
// counted by the caller), as RFC 1122 2.3.2.2 allows ("SHOULD save at least one").
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
  static constexpr uint8_t kQueuePerNeighbour = 8;

  // RFC 1122 2.3.2.1 leaves the cache validation method open; this follows Linux's shape:
  // reachable for `reachable_us` after a reply, then stale; a stale entry still carries traffic
  // and, when used, is refreshed by unicast probes (state probe) until a reply or give-up.
  enum class State : uint8_t { empty, incomplete, reachable, stale, probe, tombstone };

  struct Entry {
    uint32_t address = 0;  // host order
    State state = State::empty;
    uint8_t probes_sent = 0;
    uint8_t queued = 0;
    PortIndex port = 0;
    MacAddress mac{};
    uint64_t deadline_us = 0;  // incomplete/probe: next probe; reachable: stale; stale: removal
    std::array<rte_mbuf*, kQueuePerNeighbour> queue{};
  };

  // What the caller must do after asking to send toward a neighbour.
  enum class Resolve : uint8_t {
    send_now,      // `mac` holds the neighbour's address; transmit
    queued,        // packet held until the reply arrives
    queued_probe,  // held, and the caller must send an ARP request now (first packet)
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

 private:
  Entry* find_slot(uint32_t address);
  Entry* insert_slot(uint32_t address);
  void erase(Entry& entry);

  std::vector<Entry> slots_;
  uint32_t mask_;
  uint32_t used_ = 0;
  NeighbourTimers timers_;
};

}  // namespace weir::net
