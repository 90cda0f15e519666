// The dataplane's counters, described once: one table per counter struct of the dataplane
// (dataplane/counters.h, dataplane/proxy/proxy.h), in the order of the struct's members. Each entry
// is a counter's name in the stats JSON (the control protocol's `counters` reply and the line
// weir-dataplane prints on SIGUSR1), its meaning, and how weir-control exports it to Prometheus.
// Every reader goes through these tables: the dataplane's stats JSON (dataplane/stats.cc, which
// binds each entry to its struct member in dataplane/counter_bindings.h), weir-control's exporter
// (control/metrics.cc) and the tables of docs/metrics.md (tools/metrics_doc.cc writes them and a
// test checks them). No DPDK and no dataplane types here: weir-control includes this header.
//
// Where each table's counters sit in the stats JSON:
//   workers[].loop, .steering, .l3, .tcp         kLoopCounters, kSteeringCounters, kL3Counters,
//                                                kTcpCounters
//   workers[].cluster                            kClusterCounters
//   workers[].tls                                kTlsRelayCounters (the worker's TLS relay)
//   workers[].tcp_connections, .tcp_capacity     kWorkerGauges
//   process                                      kProcessMetrics (the dataplane's process)
//   workers[].ports.PORT                         kPortCounters
//   workers[].ports.PORT.drops                   kDropReasons
//   devices.PORT                                 kDeviceCounters (the device's own, per port)
//   listeners.LISTENER                           kListenerCounters, and kListenerDirectionCounters
//                                                once per direction, named NAME_to_backend and
//                                                NAME_to_client
//   frame_events (the `counters` reply only)     kFrameEventCounters (the main lcore's)
//   session_log (the `counters` reply only)      kSessionLogCounters (the main lcore's)
// and in the `pools` reply: pools[].backends[]   kBackendCounters, beside name, address, port,
//                                                state and weight; kBackendDirectionCounters and
//                                                kBackendDirectionGauges once per direction, named
//                                                like the listener's (a gauge absent: no series)
// and in weir-control's own state: certificates[]  kCertificateGauges
//                                   tls.worker_counters[]  kTlsWorkerCounters (one per worker slot)
//                                   tls                  kTlsCertificateRefusals
#pragma once

#include <array>
#include <cstddef>
#include <string>
#include <string_view>

namespace weir::counters {

enum class Kind { counter, gauge };  // the Prometheus type

struct Entry {
  std::string_view name;  // its key in the stats JSON
  std::string_view help;  // its meaning: docs/metrics.md, and the Prometheus HELP
  // The Prometheus family it is exported as; empty: in the stats JSON only. Besides the labels of
  // its table (`worker`, `port`, `listener`, `direction`), a series may carry one fixed label that
  // tells the entries sharing a family apart (label=label_value); such a family takes its HELP
  // from family_help instead of the entry's own.
  std::string_view family = {};
  Kind kind = Kind::counter;
  std::string_view label = {};
  std::string_view label_value = {};
  std::string_view family_help = {};
  // Non-empty: the family is in other units than the JSON value, which is exported divided by the
  // stats JSON's top-level number of this name (TSC cycles over kTscHz: seconds). Such a family
  // takes its HELP from family_help too; without that number the series is left out.
  std::string_view divided_by = {};

  constexpr bool exported() const { return !family.empty(); }
  constexpr std::string_view family_meaning() const {
    return family_help.empty() ? help : family_help;
  }
};

// In the stats JSON only.
constexpr Entry unexported(std::string_view name, std::string_view help) {
  return {name, help};
}
constexpr Entry counter(std::string_view name, std::string_view help, std::string_view family) {
  return {name, help, family, Kind::counter};
}
constexpr Entry gauge(std::string_view name, std::string_view help, std::string_view family) {
  return {name, help, family, Kind::gauge};
}

// The labels every exported series of a table carries, in this order, before an entry's own.
inline constexpr std::array<std::string_view, 1> kWorkerLabels = {"worker"};
inline constexpr std::array<std::string_view, 2> kPortLabels = {"port", "worker"};
inline constexpr std::array<std::string_view, 1> kListenerLabels = {"listener"};
inline constexpr std::array<std::string_view, 2> kListenerDirectionLabels = {"listener",
                                                                             "direction"};

// The value of the `direction` label and the JSON suffix, by the proxy's direction index.
inline constexpr std::array<std::string_view, 2> kDirections = {"to_backend", "to_client"};

// The JSON key of a per-direction entry for direction index `d`: NAME_to_backend, NAME_to_client.
inline std::string direction_key(std::string_view name, size_t d) {
  return std::string(name) + "_" + std::string(kDirections[d]);
}

// The stats JSON's top-level TSC frequency (cycles per second), which turns cycles into seconds.
inline constexpr std::string_view kTscHz = "tsc_hz";

// ---- per worker -------------------------------------------------------------------------------

inline constexpr auto kLoopCounters = std::to_array<Entry>({
    unexported("polls", "passes of the worker's poll loop"),
    unexported("busy_polls", "polls that found work"),
    {"busy_cycles",
     "TSC cycles spent in polls that found work",
     "weir_worker_busy_seconds_total",
     Kind::counter,
     {},
     {},
     "seconds the worker spent in polls that found work (`busy_cycles` over `tsc_hz`); its "
     "rate() is the share of the worker's time spent busy",
     kTscHz},
    unexported("total_cycles",
               "TSC cycles since the loop started; `busy_cycles` over this is the busy ratio"),
    unexported("sleeps", "idle backoff sleeps"),
});

inline constexpr auto kSteeringCounters = std::to_array<Entry>({
    unexported("handed_out",
               "segments received on this worker's queue for another worker, and ARP copies, "
               "handed over"),
    unexported("taken_in", "segments and ARP copies other workers handed to this one"),
    unexported("arp_copies",
               "ARP messages copied to the other workers (each learns its neighbours)"),
    unexported("ring_full",
               "segments dropped because the owner's ring was full (TCP retransmits them)"),
});

// Scale-out between boxes (docs/scale-out.md). One family for the forwards, told apart by `to`,
// and one for the drops, told apart by `reason`.
inline constexpr std::string_view kClusterForwardedHelp =
    "Packets of flows this box holds no state for, encapsulated (GUE) and sent to another box";
inline constexpr std::string_view kClusterDroppedHelp =
    "Packets the cluster forwarding dropped, by reason";
inline constexpr auto kClusterCounters = std::to_array<Entry>({
    counter("encapsulated_received",
            "GUE packets from a cluster peer, stripped and handled as if received directly",
            "weir_cluster_encapsulated_received_total"),
    {"forwarded_to_primary",
     "packets of flows this box holds no state for (a SYN when it is not the primary), sent to "
     "the flow's primary",
     "weir_cluster_forwarded_total", Kind::counter, "to", "primary", kClusterForwardedHelp},
    {"forwarded_to_secondary",
     "second chances: packets this box, the flow's primary, holds no state for, sent to the "
     "flow's secondary",
     "weir_cluster_forwarded_total", Kind::counter, "to", "secondary", kClusterForwardedHelp},
    {"hop_limit_drops",
     "packets that arrived forwarded twice already, match no connection here and would go "
     "to a third box: dropped, never answered with a RST (the flow may live on a box whose "
     "owner table differs)",
     "weir_cluster_dropped_total", Kind::counter, "reason", "hop_limit", kClusterDroppedHelp},
    {"malformed_drops",
     "packets to the GUE port that are not a well-formed Weir hop (outer header, GUE version, "
     "control bit, length, private data, inner packet): dropped",
     "weir_cluster_dropped_total", Kind::counter, "reason", "malformed", kClusterDroppedHelp},
    {"unknown_peer_drops",
     "GUE packets whose outer source address is not in cluster.peers: dropped",
     "weir_cluster_dropped_total", Kind::counter, "reason", "unknown_peer", kClusterDroppedHelp},
    {"forward_failures",
     "packets that could not be forwarded: no port reaches the peer, the encapsulated packet "
     "exceeds the port's MTU, or no headroom for the outer headers",
     "weir_cluster_dropped_total", Kind::counter, "reason", "forward_failed", kClusterDroppedHelp},
    counter("heartbeats_sent",
            "heartbeats sent to the other peers, one each per cluster.heartbeat.interval_ms",
            "weir_cluster_heartbeats_sent_total"),
    counter("heartbeats_received", "well-formed heartbeats received from a cluster peer",
            "weir_cluster_heartbeats_received_total"),
    counter("heartbeats_malformed",
            "GUE control messages that are not a well-formed heartbeat: dropped (also counted "
            "in weir_cluster_dropped_total{reason=\"malformed\"})",
            "weir_cluster_heartbeats_malformed_total"),
});

// The TLS relay of each dataplane worker (dataplane/proxy/tls_relay.h): the sessions it holds on
// the TLS workers' channels. What a listener also counts (handshakes, a full ring, no worker) is
// exported per listener; the rest per worker here. Worker resets by the worker's ResetReason
// (common/tls_channel.h), refused records by cause.
inline constexpr std::string_view kTlsRelayRefusedHelp =
    "Records from a TLS worker the dataplane's relay refused (the session is reset), by cause";
inline constexpr std::string_view kTlsRelayWorkerResetsHelp =
    "Sessions a TLS worker ended, by the worker's reason (the relay resets both connections)";
inline constexpr std::string_view kTlsRelayCiphertextHelp =
    "TLS ciphertext bytes through the relay's channels: to_worker from clients, from_worker for "
    "clients";
inline constexpr std::string_view kTlsRelayPlaintextHelp =
    "Plaintext bytes through the TLS relay's channels: to_worker from backends, from_worker for "
    "backends";
constexpr Entry tls_refused(std::string_view name, std::string_view help, std::string_view cause) {
  return {name,
          help,
          "weir_tls_relay_refused_records_total",
          Kind::counter,
          "cause",
          cause,
          kTlsRelayRefusedHelp};
}
constexpr Entry tls_reset(std::string_view name, std::string_view help, std::string_view reason) {
  return {name,
          help,
          "weir_tls_relay_worker_resets_total",
          Kind::counter,
          "reason",
          reason,
          kTlsRelayWorkerResetsHelp};
}
inline constexpr auto kTlsRelayCounters = std::to_array<Entry>({
    counter("sessions_opened", "sessions opened on a TLS worker's channel (an `open` record)",
            "weir_tls_relay_sessions_total"),
    unexported("no_channel",
               "sessions refused: no live channel, the slot table or the ring full (the "
               "listener's `tls_no_worker`)"),
    unexported("ring_full",
               "writes toward a TLS worker that found its ring full (the listener's "
               "`tls_ring_full`)"),
    counter("credit_waits",
            "writes stopped by their session's credit (a quarter of the ring unconsumed) while "
            "the ring had room; the session waits, the channel's others move",
            "weir_tls_relay_credit_waits_total"),
    counter("stale_records",
            "records from a TLS worker for a session already ended here (crossed a `reset`): "
            "dropped",
            "weir_tls_relay_stale_records_total"),
    counter("channels_dropped",
            "channels to a TLS worker dropped (the worker gone or its ring broken); their "
            "sessions are reset",
            "weir_tls_relay_channels_dropped_total"),
    tls_refused("refused_foreign_session",
                "records for a session id the relay never gave that "
                "channel",
                "foreign_session"),
    tls_refused("refused_bad_kind", "records of a kind a worker never sends", "bad_kind"),
    tls_refused("refused_bad_length",
                "records whose payload length or content its kind does "
                "not allow",
                "bad_length"),
    tls_refused("refused_out_of_order",
                "records the session's state does not allow (plaintext "
                "before the handshake)",
                "out_of_order"),
    tls_reset("worker_reset_not_tls", "the client's first bytes were not a TLS handshake",
              "not_tls"),
    tls_reset("worker_reset_handshake_failed", "the handshake failed (alert sent)",
              "handshake_failed"),
    tls_reset("worker_reset_record_overflow", "a record longer than TLS allows", "record_overflow"),
    tls_reset("worker_reset_protocol_error", "a TLS error after the handshake", "protocol_error"),
    tls_reset("worker_reset_truncated",
              "the client's stream ended inside a record or before the handshake", "truncated"),
    tls_reset("worker_reset_handshake_timeout", "`handshake_timeout_ms` passed",
              "handshake_timeout"),
    tls_reset("worker_reset_unknown_listener", "`open` named a listener the worker does not serve",
              "unknown_listener"),
    tls_reset("worker_reset_bad_record", "a record the channel's protocol does not allow",
              "bad_record"),
    tls_reset("worker_reset_output_full",
              "the ring back to the dataplane could not take the "
              "output",
              "output_full"),
    tls_reset("worker_reset_too_many_sessions", "the worker's session table was full",
              "too_many_sessions"),
    unexported("handshakes_tls12", "TLS 1.2 handshakes done (the listener's)"),
    unexported("handshakes_tls13", "TLS 1.3 handshakes done (the listener's)"),
    unexported("handshakes_resumed", "resumed handshakes (the listener's)"),
    {"ciphertext_bytes_to_worker", "ciphertext bytes from clients written toward the TLS workers",
     "weir_tls_relay_ciphertext_bytes_total", Kind::counter, "way", "to_worker",
     kTlsRelayCiphertextHelp},
    {"plaintext_bytes_to_worker", "plaintext bytes from backends written toward the TLS workers",
     "weir_tls_relay_plaintext_bytes_total", Kind::counter, "way", "to_worker",
     kTlsRelayPlaintextHelp},
    {"ciphertext_bytes_from_worker", "ciphertext bytes from the TLS workers for clients",
     "weir_tls_relay_ciphertext_bytes_total", Kind::counter, "way", "from_worker",
     kTlsRelayCiphertextHelp},
    {"plaintext_bytes_from_worker", "plaintext bytes from the TLS workers for backends",
     "weir_tls_relay_plaintext_bytes_total", Kind::counter, "way", "from_worker",
     kTlsRelayPlaintextHelp},
});

inline constexpr auto kL3Counters = std::to_array<Entry>({
    unexported("arp_requests_answered", "ARP requests for an address Weir owns, answered"),
    unexported("arp_requests_sent", "ARP requests sent to resolve a next hop (retries included)"),
    unexported("arp_replies_learned",
               "ARP replies addressed to Weir, learned into the neighbour table"),
    unexported("gratuitous_arp_sent", "gratuitous ARP announcements of the addresses Weir owns"),
    unexported("neighbour_resolution_failures",
               "packets dropped because their next hop did not resolve after the ARP retries"),
    unexported("icmp_echo_replies", "ICMP echo requests answered"),
    unexported("icmp_errors_to_tcp", "ICMP errors concerning TCP flows, handed to the TCP layer"),
});

inline constexpr auto kTcpCounters = std::to_array<Entry>({
    counter("active_opens", "connections opened by Weir (to backends)",
            "weir_tcp_active_opens_total"),
    counter("passive_opens", "SYNs accepted on a listener, including cookie completions",
            "weir_tcp_passive_opens_total"),
    counter("established", "connections that reached ESTABLISHED", "weir_tcp_established_total"),
    counter("segments_in", "TCP segments received (checksum verified)",
            "weir_tcp_segments_in_total"),
    counter("segments_out", "TCP segments sent", "weir_tcp_segments_out_total"),
    counter("retransmitted_segments", "segments sent again (timeout, fast retransmit, partial ACK)",
            "weir_tcp_retransmitted_segments_total"),
    counter("rto_expirations", "retransmission timeouts", "weir_tcp_rto_expirations_total"),
    counter("fast_retransmits",
            "loss recoveries entered (three duplicate ACKs, or the SACK scoreboard showing the "
            "first unacknowledged segment lost)",
            "weir_tcp_fast_retransmits_total"),
    counter("sack_retransmits",
            "segments resent during recovery because the SACK scoreboard showed them lost "
            "(RFC 6675 NextSeg)",
            "weir_tcp_sack_retransmits_total"),
    counter("tail_loss_probes",
            "probes sent when ACKs stopped with data outstanding (RFC 8985 7: the last segment "
            "again after about two round trips, long before the retransmission timeout)",
            "weir_tcp_tail_loss_probes_total"),
    counter("losses_marked_by_time",
            "times unacknowledged data below SACKed data was declared lost because a reordering "
            "window passed (RFC 8985's time-based rule), not because three segments above it "
            "were SACKed",
            "weir_tcp_losses_marked_by_time_total"),
    counter("lost_retransmissions",
            "retransmissions found lost themselves during recovery: data SACKed more than a "
            "round trip and a reordering window after the oldest retransmission left, which was "
            "still missing (RFC 8985's rule in time form); those holes go again",
            "weir_tcp_lost_retransmissions_total"),
    counter("loss_timers_deferred",
            "retransmission, probe or reordering timers that came due just after the worker was "
            "away (not scheduled on a busy machine) and were put off once until it had read its "
            "receive ring for a millisecond, where the ACKs that stop them may wait",
            "weir_tcp_loss_timers_deferred_total"),
    unexported("sack_scoreboards_exhausted",
               "ACKs whose SACK blocks were ignored because the worker had no scoreboard free "
               "(that connection recovers by NewReno)"),
    counter("syn_cookies_sent", "SYN-ACKs answered statelessly", "weir_tcp_syn_cookies_sent_total"),
    counter("syn_cookies_accepted", "cookies that came back valid",
            "weir_tcp_syn_cookies_accepted_total"),
    counter("syn_cookies_rejected",
            "bare ACKs that were not valid cookies, to a listener that sent cookies in the last "
            "128 s (its SYN queue or the table overflowed)",
            "weir_tcp_syn_cookies_rejected_total"),
    counter("challenge_acks", "RFC 5961 challenge ACKs sent (in-window RST or SYN)",
            "weir_tcp_challenge_acks_total"),
    unexported("challenge_acks_suppressed",
               "challenge ACKs not sent: the connection's limit (10 a second, RFC 5961 7) was "
               "reached"),
    unexported("out_of_window_acks_suppressed",
               "ACKs not sent in answer to segments without data outside the window or failing "
               "PAWS: the connection's limit (one per tcp.out_of_window_ack_interval_ms) was "
               "reached"),
    counter("out_of_order_drops",
            "segments beyond RCV.NXT not kept: the connection's or the worker's out-of-order "
            "bound was reached, the segment lay beyond the window, or it duplicated one already "
            "kept",
            "weir_tcp_out_of_order_drops_total"),
    counter("out_of_order_store_exhausted",
            "out-of-order segments not kept because the worker's out-of-order store was full and "
            "no connection held more than this one plus one (counted in out_of_order_drops too): "
            "that connection accepts in-order data only until room frees",
            "weir_tcp_out_of_order_store_exhausted_total"),
    counter("out_of_order_reclaimed",
            "out-of-order segments freed, highest sequence first, from a connection holding more "
            "of the full store than another that needed room (the senders retransmit them)",
            "weir_tcp_out_of_order_reclaimed_total"),
    counter("resets_sent", "RST segments sent", "weir_tcp_resets_sent_total"),
    counter("resets_received", "RST segments received", "weir_tcp_resets_received_total"),
    counter("table_full", "connections refused because the worker's table was full",
            "weir_tcp_table_full_total"),
    counter("paws_drops", "segments dropped by PAWS (RFC 7323 5.3)", "weir_tcp_paws_drops_total"),
    unexported("acks_for_unsent_data", "ACKs beyond SND.MAX, dropped and answered"),
    counter("bad_options", "segments with a malformed header or option list",
            "weir_tcp_bad_options_total"),
    unexported("icmp_errors", "ICMP errors about TCP flows handed to TCP"),
    unexported("pmtu_reductions", "MSS reductions on fragmentation-needed (RFC 1191)"),
    counter("timeouts",
            "connections abandoned: retransmissions or keepalive probes exhausted, or too long "
            "in SYN-RECEIVED",
            "weir_tcp_timeouts_total"),
    counter("keepalive_probes", "keepalive probes sent", "weir_tcp_keepalive_probes_total"),
    counter("fin_wait2_timeouts",
            "connections reset in FIN-WAIT-2: our FIN acknowledged, the peer silent for "
            "tcp.fin_wait2_timeout_ms",
            "weir_tcp_fin_wait2_timeouts_total"),
    counter("time_wait_overflows",
            "connections closed at once instead of entering TIME-WAIT: the worker's share of "
            "tcp.max_time_wait was reached",
            "weir_tcp_time_wait_overflows_total"),
    counter("segments_collapsed",
            "received or queued segments copied into the spare room of the buffer before them "
            "(Linux's collapse): tiny segments cost buffers by their bytes, not their number",
            "weir_tcp_segments_collapsed_total"),
    counter("memory_pressure_entered",
            "times a worker found the free mbufs below the pressure mark: new SYNs of the "
            "heaviest sources refused, windows no longer opened, out-of-order data pruned until "
            "they recover",
            "weir_tcp_memory_pressure_entered_total"),
    counter("syns_refused_memory",
            "SYNs answered with RST because free mbufs were below half the critical mark, "
            "whatever their source",
            "weir_tcp_syns_refused_memory_total"),
    counter("syns_refused_source_share",
            "SYNs answered with RST under memory pressure because their source (client address) "
            "held at least an equal share of what the worker's connections hold",
            "weir_tcp_syns_refused_source_share_total"),
    counter("syns_admitted_under_pressure",
            "SYNs taken under memory pressure because their source held less than an equal share",
            "weir_tcp_syns_admitted_under_pressure_total"),
    counter("windows_stopped_source_share",
            "connections given a zero window under memory pressure because their source held at "
            "least an equal share (once per connection and episode)",
            "weir_tcp_windows_stopped_source_share_total"),
    counter("sources_table_full",
            "connections whose client address found the worker's source table full: they share "
            "one entry, judged as one source",
            "weir_tcp_sources_table_full_total"),
    counter("out_of_order_pruned",
            "out-of-order segments freed when a worker entered memory pressure (the senders "
            "retransmit them)",
            "weir_tcp_out_of_order_pruned_total"),
    counter("receive_memory_drops",
            "in-order segments dropped unacknowledged under memory pressure: their connection's "
            "window was stopped (its source over its share, or below half the critical mark) "
            "(the sender retransmits)",
            "weir_tcp_receive_memory_drops_total"),
    counter("allocation_failures", "segments not sent because no mbuf was free for them",
            "weir_tcp_allocation_failures_total"),
});

// Not counters: the worker's TCP table, read when the stats are taken.
inline constexpr auto kWorkerGauges = std::to_array<Entry>({
    gauge("tcp_connections", "connections in the worker's TCP table", "weir_tcp_connections"),
    gauge("tcp_capacity", "size of the worker's TCP table", "weir_tcp_connection_capacity"),
});

// ---- per worker and port ----------------------------------------------------------------------

inline constexpr auto kPortCounters = std::to_array<Entry>({
    counter("rx_packets", "frames received on the worker's queue of the port",
            "weir_port_rx_packets_total"),
    counter("rx_bytes", "bytes received on the worker's queue of the port",
            "weir_port_rx_bytes_total"),
    counter("tx_packets", "frames the device accepted", "weir_port_tx_packets_total"),
    counter("tx_bytes", "bytes of the frames the device accepted", "weir_port_tx_bytes_total"),
    counter("tx_linearised",
            "frames built as a chain of mbufs and copied into fewer before transmit, because "
            "the device cannot send chains (no RTE_ETH_TX_OFFLOAD_MULTI_SEGS, e.g. net_af_xdp) "
            "or not one that long (nb_mtu_seg_max)",
            "weir_port_tx_linearised_total"),
});

// Why a frame was dropped, in the order of dataplane::DropReason: one series of
// weir_port_drops_total each, the name its `reason`.
constexpr Entry drop_reason(std::string_view name, std::string_view help) {
  return {name,
          help,
          "weir_port_drops_total",
          Kind::counter,
          "reason",
          name,
          "frames dropped, by reason (the reasons under \"Per worker and port\"; every reason is "
          "always present)"};
}

inline constexpr auto kDropReasons = std::to_array<Entry>({
    drop_reason("bad_checksum", "IPv4 header, ICMP or TCP checksum wrong"),
    drop_reason("truncated", "the frame is shorter than the headers or lengths it announces"),
    drop_reason("malformed",
                "a header field outside its allowed values (IPv4 version or IHL, ARP lengths or "
                "operation)"),
    drop_reason("fragment", "an IPv4 fragment (Weir does not reassemble)"),
    drop_reason("ip_options",
                "an IPv4 header with options (docs/architecture.md, \"Layer 2 and 3 rules\")"),
    drop_reason("ttl_expired", "TTL 0 on arrival"),
    drop_reason("not_ours", "addressed to another MAC or to an address Weir does not own"),
    drop_reason("unsupported", "a protocol or ICMP type Weir does not serve"),
    drop_reason("no_neighbour", "the next hop did not resolve, or its wait queue was full"),
    drop_reason("tx_ring_full", "the device refused a burst; the unsent packets were freed"),
    drop_reason("mbuf_exhausted", "no mbuf for a reply"),
    drop_reason("tx_linearise_failed",
                "a chained frame the device cannot send could not be copied into one it can (no "
                "mbuf free, or longer than the device's segment limit holds)"),
    drop_reason("tx_prepare_refused",
                "the device's transmit check (rte_eth_tx_prepare) refused the frame"),
});

// ---- per port, as the device counts (rte_eth_stats), read at the snapshot
// -------------------------

inline constexpr auto kDeviceCounters = std::to_array<Entry>({
    counter("rx_nombuf",
            "packets the device could not receive: no free mbuf to refill the RX ring (the mbuf "
            "pool was exhausted)",
            "weir_device_rx_nombuf_total"),
    counter("rx_missed",
            "packets the device dropped because the RX ring was full (imissed; on net_af_packet, "
            "the kernel's drops at the socket's ring)",
            "weir_device_rx_missed_total"),
    counter("rx_errors", "bad frames the device dropped (ierrors)", "weir_device_rx_errors_total"),
    counter("tx_errors", "frames the device failed to send (oerrors)",
            "weir_device_tx_errors_total"),
});
inline constexpr std::array<std::string_view, 1> kDeviceLabels = {"port"};

// ---- per listener (the proxy), summed over the workers ----------------------------------------

inline constexpr std::string_view kRefusedHelp =
    "connections reset at once: the listener was at `max_connections`, or no backend was "
    "eligible or every attempt failed";

inline constexpr std::string_view kTlsHandshakesHelp =
    "tls listeners: handshakes done (the TLS worker's handshake_done), by version";
inline constexpr std::string_view kTlsRecordsHelp =
    "tls listeners: records through the TLS workers' rings (to_backend: the client's ciphertext "
    "to the worker, the plaintext from it; to_client: the backend's plaintext to the worker, the "
    "ciphertext from it)";

inline constexpr auto kListenerCounters = std::to_array<Entry>({
    counter("connections", "client connections accepted (after the handshake)",
            "weir_listener_connections_total"),
    gauge("active", "client sessions not yet ended (`connections` less those ended)",
          "weir_listener_active_connections"),
    {"refused_max_connections", "connections reset at once: the listener was at `max_connections`",
     "weir_listener_refused_total", Kind::counter, "reason", "max_connections", kRefusedHelp},
    {"no_backend",
     "clients reset because no backend was eligible or every attempt failed (`retries`)",
     "weir_listener_refused_total", Kind::counter, "reason", "no_backend", kRefusedHelp},
    unexported("backend_connect_failures",
               "backend connections refused (RST), unanswered or unroutable; each is followed by "
               "the next candidate while retries remain"),
    counter("idle_timeouts",
            "sessions reset for a silent side: `client_timeouts` + `server_timeouts` (both "
            "default to `idle_timeout_ms`)",
            "weir_listener_idle_timeouts_total"),
    counter("client_timeouts",
            "sessions reset because the client sent nothing and took nothing for "
            "`client_timeout_ms`; the backend is reset too",
            "weir_listener_client_timeouts_total"),
    counter("server_timeouts",
            "sessions reset because the backend sent nothing and took nothing for "
            "`server_timeout_ms`; the client is reset too",
            "weir_listener_server_timeouts_total"),
    counter("frame_timeouts",
            "framed: sessions reset because a client's frame stayed incomplete for "
            "`framed.frame_timeout_ms` (slowloris)",
            "weir_listener_frame_timeouts_total"),
    gauge("partial_frames",
          "framed: sessions whose client has begun a frame and not finished it (each one's "
          "clock is `framed.frame_timeout_ms`)",
          "weir_listener_partial_frames"),
    {"tls_no_worker",
     "tls listeners: clients reset because no TLS worker was attached or its ring was full",
     "weir_listener_refused_total", Kind::counter, "reason", "tls_no_worker", kRefusedHelp},
    counter("tls_resets",
            "tls listeners: sessions reset by the TLS relay (the worker's reason, a record the "
            "worker may not send, or the worker gone)",
            "weir_listener_tls_resets_total"),
    {"tls_handshakes_tls12", "tls listeners: TLS 1.2 handshakes done",
     "weir_listener_tls_handshakes_total", Kind::counter, "version", "1.2", kTlsHandshakesHelp},
    {"tls_handshakes_tls13", "tls listeners: TLS 1.3 handshakes done",
     "weir_listener_tls_handshakes_total", Kind::counter, "version", "1.3", kTlsHandshakesHelp},
    counter("tls_handshakes_resumed",
            "tls listeners: of the handshakes done, those that resumed a session (a ticket)",
            "weir_listener_tls_resumed_handshakes_total"),
    counter("tls_handshakes_failed",
            "tls listeners: sessions that ended before their handshake was done (the worker "
            "refused it or it timed out, the client left, or the worker was gone)",
            "weir_listener_tls_handshake_failures_total"),
    counter("tls_sni_routed",
            "tls listeners: sessions sent to a pool of `sni_pools` (their server_name matched) "
            "rather than the listener's `pool`",
            "weir_listener_tls_sni_routed_total"),
    counter("tls_ring_full",
            "tls listeners: writes toward a TLS worker that found its ring full (the bytes wait "
            "with their TCP window closed, or a new session is refused)",
            "weir_listener_tls_ring_full_total"),
});

inline constexpr auto kListenerDirectionCounters = std::to_array<Entry>({
    counter("bytes", "payload bytes relayed (handed to the far connection's send queue)",
            "weir_listener_bytes_total"),
    counter("frames_verified", "framed: frames whose CRC-32C trailer matched",
            "weir_frames_verified_total"),
    counter("bytes_verified", "framed: bytes of verified frames (header, payload, trailer)",
            "weir_frames_verified_bytes_total"),
    counter("frames_corrupt",
            "framed: frames whose trailer did not match (reset mode: the session was reset "
            "before the trailer left; count mode: forwarded)",
            "weir_frames_corrupt_total"),
    counter("frames_malformed", "framed: headers that broke the format; the session is reset",
            "weir_frames_malformed_total"),
    counter("corrupt_resets", "framed: sessions reset for a corrupt or malformed frame",
            "weir_frames_corrupt_resets_total"),
    {"tls_records_to_worker",
     "tls listeners: records written toward the TLS worker (to_backend: the client's ciphertext; "
     "to_client: the backend's plaintext)",
     "weir_listener_tls_records_total", Kind::counter, "way", "to_worker", kTlsRecordsHelp},
    {"tls_records_from_worker",
     "tls listeners: records read from the TLS worker (to_backend: plaintext for the backend; "
     "to_client: ciphertext for the client)",
     "weir_listener_tls_records_total", Kind::counter, "way", "from_worker", kTlsRecordsHelp},
});

// ---- per backend (the control channel's `pools` reply), summed over the workers ----------------

inline constexpr std::array<std::string_view, 2> kBackendLabels = {"pool", "backend"};

inline constexpr auto kBackendCounters = std::to_array<Entry>({
    counter("connections", "backend connections established for sessions",
            "weir_backend_connections_total"),
    gauge("active", "sessions open to the backend (`connections` less those ended)",
          "weir_backend_active_connections"),
    counter("connect_failures", "backend connections refused (RST), unanswered or unroutable",
            "weir_backend_connect_failures_total"),
    counter("drain_resets", "sessions reset when the backend's drain timeout expired",
            "weir_backend_drain_resets_total"),
    counter("source_ports_exhausted",
            "connection attempts that found no free source port toward the backend on any of the "
            "port's source addresses (each is also a `connect_failures`); add `source_addresses`",
            "weir_backend_source_ports_exhausted_total"),
    unexported("sessions",
               "sessions holding a connection to the backend, those still connecting included "
               "(`active` counts established ones only); what `weirctl drain --wait` waits to see "
               "at 0"),
    counter("resets",
            "established backend connections the backend reset (RST) or that timed out "
            "unacknowledged: with `connect_failures`, the errors passive health counts",
            "weir_backend_resets_total"),
});

// The framed listeners' verdicts again, by the backend of the session the frame belonged to, so
// that corruption can be located to a path (client to that backend, or back). A frame that
// arrives before the session has a backend (its connect still failing over) counts on the
// listener only.
inline constexpr std::array<std::string_view, 3> kBackendDirectionLabels = {"pool", "backend",
                                                                            "direction"};
inline constexpr auto kBackendDirectionCounters = std::to_array<Entry>({
    counter("frames_verified", "framed: frames on the backend's sessions whose trailer matched",
            "weir_backend_frames_verified_total"),
    counter("frames_corrupt",
            "framed: frames on the backend's sessions whose trailer did not match",
            "weir_backend_frames_corrupt_total"),
    counter("frames_malformed",
            "framed: headers on the backend's sessions that broke the format (the session is "
            "reset)",
            "weir_backend_frames_malformed_total"),
});

// Not counters: when the path last saw a corrupt or malformed frame, from the frame event log
// (dataplane/main_lcore/frame_event_log.h). Absent from the JSON, and no series, until it has.
inline constexpr auto kBackendDirectionGauges = std::to_array<Entry>({
    gauge("last_corrupt_frame_unix",
          "framed: when a corrupt or malformed frame was last seen on the path (Unix time, in "
          "seconds; a frame event the worker's ring had no room for is not seen)",
          "weir_backend_last_corrupt_frame_timestamp_seconds"),
});

// ---- the frame event log (the main lcore's), in the `counters` reply ---------------------------

inline constexpr auto kFrameEventCounters = std::to_array<Entry>({
    counter("recorded",
            "frame events (corrupt or malformed frames) the main lcore took from the workers",
            "weir_frame_events_total"),
    counter("dropped",
            "frame events lost because a worker's event ring was full (the frames are still "
            "counted in the frames families)",
            "weir_frame_events_dropped_total"),
    counter("logged", "frame event lines written to the log", "weir_frame_event_log_lines_total"),
    counter("suppressed",
            "frame event lines held back by the per-listener rate limit (10 at once, then one a "
            "second); `weirctl events` still shows the events",
            "weir_frame_event_log_suppressed_total"),
});

// ---- the session log (the main lcore's), in the `counters` reply -------------------------------

inline constexpr auto kSessionLogCounters = std::to_array<Entry>({
    counter("logged", "session log lines written (listeners with `session_log_sample`)",
            "weir_session_log_lines_total"),
    counter("dropped",
            "sampled sessions not logged because a worker's session record ring was full",
            "weir_session_log_dropped_total"),
    counter("suppressed",
            "session log lines held back by the per-listener rate limit (100 at once, then 10 a "
            "second); the next line let through says how many",
            "weir_session_log_suppressed_total"),
});

// ---- weir-control's own: the configured certificates (control/certificate_expiry.h) -------------

// Each entry of the `certificates` list weir-control reads at start and on reload, one series per
// tls listener and certificate file (its path as configured).
inline constexpr std::array<std::string_view, 2> kCertificateLabels = {"listener", "certificate"};

inline constexpr auto kCertificateGauges = std::to_array<Entry>({
    gauge("not_after_unix",
          "when the certificate chain stops being valid: the soonest notAfter of its certificates "
          "(Unix time, in seconds; read at weir-control's start and on each reload; 0 when the "
          "file cannot be read, so that the expiry alert fires)",
          "weir_tls_certificate_expiry_timestamp_seconds"),
});

// ---- per process: Prometheus's standard process_* families, both daemons ------------------------

// The stats JSON's `process` object is the dataplane's; weir-control exports its own beside it.
// Read from /proc/self (common/process_stats.h). These families keep Prometheus's standard names,
// without the weir_ prefix, so that dashboards made for any process work on them.
inline constexpr std::array<std::string_view, 1> kProcessLabels = {"daemon"};

inline constexpr auto kProcessMetrics = std::to_array<Entry>({
    counter("cpu_seconds", "user and system CPU time the process has used, in seconds",
            "process_cpu_seconds_total"),
    gauge("resident_memory_bytes",
          "resident memory, in bytes (hugetlbfs pages, the dataplane's DPDK memory unless "
          "--no-huge, are not counted)",
          "process_resident_memory_bytes"),
    gauge("virtual_memory_bytes", "virtual memory, in bytes", "process_virtual_memory_bytes"),
    gauge("open_fds", "open file descriptors", "process_open_fds"),
    gauge("max_fds", "the soft limit on open file descriptors (RLIMIT_NOFILE)", "process_max_fds"),
    gauge("start_time_seconds", "when the process started (Unix time, in seconds)",
          "process_start_time_seconds"),
});

}  // namespace weir::counters

// ---- the TLS workers' (their counter blocks), and weir-control's certificate refusals -----------

#include "common/counter_catalogue_tls.h"  // IWYU pragma: export

namespace weir::counters {

// ---- compile-time checks for the dataplane's bindings -----------------------------------------

// True when `bindings` (anything with a `name`) names the entries of `table` in the same order:
// each binding pairs the entry at its index with a struct member.
template <size_t N, class Bindings>
constexpr bool names_match(const std::array<Entry, N>& table, const Bindings& bindings) {
  if (bindings.size() != N) return false;
  for (size_t i = 0; i < N; ++i) {
    if (bindings[i].name != table[i].name) return false;
  }
  return true;
}

}  // namespace weir::counters
