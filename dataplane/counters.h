// Per-worker counters. Each counter has exactly one writer (its worker lcore); readers on other
// threads (the main lcore's stats dump, later the control socket) load it relaxed. The increment is
// a load and a store, not an atomic read-modify-write: no lock prefix on the packet path.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>

namespace weir::dataplane {

class Counter {
 public:
  void add(uint64_t n = 1) {
    value_.store(value_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  uint64_t get() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

// Why a packet was dropped. Their names and meanings are common/counter_catalogue.h's kDropReasons,
// in this order (dataplane/counter_bindings.h holds the two together).
enum class DropReason : uint8_t {
  bad_checksum,    // IPv4 header or ICMP/TCP checksum wrong
  truncated,       // frame shorter than the headers it announces
  malformed,       // a header field out of its allowed values (IPv4 version, IHL < 5, ARP lengths)
  fragment,        // IPv4 fragment: no reassembly (docs/architecture.md)
  ip_options,      // IPv4 header with options: not accepted (docs/architecture.md)
  ttl_expired,     // TTL 0 on arrival
  not_ours,        // addressed to another host or an unowned address
  unsupported,     // a protocol or ICMP type the dataplane does not serve
  no_neighbour,    // next hop unresolved after the ARP retries, or its wait queue full
  tx_ring_full,    // the device refused the burst; the unsent mbufs were freed
  mbuf_exhausted,  // no mbuf to build a reply
  // A chain the device cannot send (TxLimits) could not be copied into one it can: no mbuf free,
  // or more bytes than its segment limit holds.
  tx_linearise_failed,
  tx_prepare_refused,  // the device's rte_eth_tx_prepare refused the packet
  count_,
};

struct PortCounters {
  Counter rx_packets;
  Counter rx_bytes;
  Counter tx_packets;
  Counter tx_bytes;
  Counter tx_linearised;  // chains copied into fewer mbufs for a device that cannot send them
  std::array<Counter, static_cast<size_t>(DropReason::count_)> drops;

  void drop(DropReason reason, uint64_t n = 1) { drops[static_cast<size_t>(reason)].add(n); }
  uint64_t dropped(DropReason reason) const { return drops[static_cast<size_t>(reason)].get(); }
};

// Layer 2/3 events that are not drops: what the ARP and ICMP code did.
struct L3Counters {
  Counter arp_requests_answered;
  Counter arp_requests_sent;
  Counter arp_replies_learned;
  Counter gratuitous_arp_sent;
  Counter neighbour_resolution_failures;
  Counter icmp_echo_replies;
  Counter icmp_errors_to_tcp;  // ICMP errors concerning TCP flows, handed to the TCP layer
};

// The worker's TCP (docs/metrics.md).
struct TcpCounters {
  Counter active_opens;
  Counter passive_opens;
  Counter established;
  Counter segments_in;
  Counter segments_out;
  Counter retransmitted_segments;
  Counter rto_expirations;
  Counter fast_retransmits;       // loss recoveries entered (three duplicate ACKs or SACK loss)
  Counter sack_retransmits;       // segments resent because the SACK scoreboard showed them lost
  Counter tail_loss_probes;       // RFC 8985 7: the last segment again after ~2 SRTT of silence
  Counter losses_marked_by_time;  // holes below SACKed data declared lost after a reordering window
  Counter lost_retransmissions;   // repairs lost again, found from later SACKs, not the RTO
  Counter loss_timers_deferred;   // due right after the worker was away: put off to read the ring
  Counter sack_scoreboards_exhausted;  // SACK information ignored: no scoreboard free
  Counter syn_cookies_sent;
  Counter syn_cookies_accepted;
  Counter syn_cookies_rejected;
  Counter challenge_acks;
  Counter challenge_acks_suppressed;
  Counter out_of_window_acks_suppressed;  // the per-connection limit on ACKs to such segments
  Counter out_of_order_drops;
  Counter out_of_order_store_exhausted;  // of those, dropped because the store had no room
  Counter out_of_order_reclaimed;  // held segments freed to make room for a connection holding less
  Counter resets_sent;
  Counter resets_received;
  Counter table_full;
  Counter paws_drops;
  Counter acks_for_unsent_data;
  Counter bad_options;
  Counter icmp_errors;
  Counter pmtu_reductions;
  Counter timeouts;
  Counter keepalive_probes;
  Counter fin_wait2_timeouts;   // FIN-WAIT-2 connections abandoned: the peer's FIN never came
  Counter time_wait_overflows;  // connections closed instead of entering TIME-WAIT (the cap)
  // Memory (docs/operations.md, "Limits and defences"): the shared mbuf pool's pressure levels.
  Counter segments_collapsed;       // small segments copied into the queue's last buffer
  Counter memory_pressure_entered;  // times the worker saw free mbufs fall below the low mark
  Counter syns_refused_memory;      // SYNs answered with RST: below half the critical mark
  // Per source (dataplane/tcp/source_table.h): who is refused and stopped under pressure.
  Counter syns_refused_source_share;     // SYNs refused: their source held its share or more
  Counter syns_admitted_under_pressure;  // SYNs taken under pressure: their source held less
  Counter windows_stopped_source_share;  // connections given a zero window for their source
  Counter sources_table_full;            // connections of sources past the table's bound
  Counter out_of_order_pruned;           // out-of-order segments freed on entering pressure
  Counter receive_memory_drops;          // in-order data dropped below the critical mark
  Counter allocation_failures;           // segments not sent: no mbuf for headers or payload
};

// Software steering between workers (dataplane/steering.h).
struct SteeringCounters {
  Counter handed_out;  // segments received here for another worker, handed over
  Counter taken_in;    // segments another worker handed here
  Counter arp_copies;  // ARP messages copied to the other workers
  Counter ring_full;   // segments dropped: the owner's ring was full (TCP recovers)
};

// Scale-out (docs/scale-out.md): packets of flows this box holds no state for, handed between
// boxes in GUE (dataplane/net/gue.h, dataplane/cluster_forwarder.h).
struct ClusterCounters {
  Counter encapsulated_received;   // GUE packets from a peer, stripped and handled
  Counter forwarded_to_primary;    // packets of unknown flows sent on to their row's primary
  Counter forwarded_to_secondary;  // the second chance: a primary without state sent them on
  Counter hop_limit_drops;         // forwarded twice already and still no state: dropped
  Counter malformed_drops;         // GUE packets refused (net::gue::Malformed)
  Counter unknown_peer_drops;      // GUE packets whose outer source is no cluster peer
  Counter forward_failures;        // not forwarded: no route to the peer, too big, no headroom
  Counter heartbeats_sent;         // one per peer per interval (docs/scale-out.md, "Membership")
  Counter heartbeats_received;     // well-formed, from a peer
  Counter heartbeats_malformed;    // GUE control messages refused (also in malformed_drops)
};

struct WorkerLoopCounters {
  Counter polls;
  Counter busy_polls;    // polls that found work
  Counter busy_cycles;   // TSC cycles spent in polls that found work
  Counter total_cycles;  // TSC cycles since the loop started (updated each poll)
  Counter sleeps;
};

}  // namespace weir::dataplane
