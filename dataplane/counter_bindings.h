// Each entry of the counter catalogue (common/counter_catalogue.h) paired with the member of the
// dataplane's counter struct that holds it. The catalogue cannot name dataplane types (weir-control
// reads it too), so the pairing lives here, and the static_asserts below hold it to the catalogue:
// the same names in the same order, and every member of each struct bound exactly once (a member
// added to a struct without an entry, or an entry without a member, fails the build).
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <tuple>

#include "common/counter_catalogue.h"
#include "dataplane/counters.h"
#include "dataplane/port.h"
#include "dataplane/proxy/proxy.h"

namespace weir::dataplane {

// One catalogue entry's member of S. Its value is the member, less `minus` when set (a gauge kept
// as two counters, such as sessions opened and sessions ended).
template <class S, class M = Counter>
struct CounterBinding {
  std::string_view name;
  M S::*member;
  M S::*minus = nullptr;
};

template <class S>
uint64_t value_of(const CounterBinding<S>& binding, const S& counters) {
  if (binding.minus == nullptr) return (counters.*binding.member).get();
  // The subtrahend first: both only grow, so the difference read this way never wraps.
  const uint64_t minus = (counters.*binding.minus).get();
  return (counters.*binding.member).get() - minus;
}

// How many distinct members of S the bindings name, subtrahends included.
template <class Bindings>
constexpr size_t distinct_members(const Bindings& bindings) {
  using Member = decltype(bindings[0].member);
  std::array<Member, 2 * std::tuple_size_v<Bindings>> seen{};
  size_t count = 0;
  for (const auto& binding : bindings) {
    for (const Member member : {binding.member, binding.minus}) {
      if (member != nullptr &&
          std::find(seen.begin(), seen.begin() + count, member) == seen.begin() + count) {
        seen[count++] = member;
      }
    }
  }
  return count;
}

inline constexpr auto kLoopBindings = std::to_array<CounterBinding<WorkerLoopCounters>>({
    {"polls", &WorkerLoopCounters::polls},
    {"busy_polls", &WorkerLoopCounters::busy_polls},
    {"busy_cycles", &WorkerLoopCounters::busy_cycles},
    {"total_cycles", &WorkerLoopCounters::total_cycles},
    {"sleeps", &WorkerLoopCounters::sleeps},
});

inline constexpr auto kSteeringBindings = std::to_array<CounterBinding<SteeringCounters>>({
    {"handed_out", &SteeringCounters::handed_out},
    {"taken_in", &SteeringCounters::taken_in},
    {"arp_copies", &SteeringCounters::arp_copies},
    {"ring_full", &SteeringCounters::ring_full},
});

inline constexpr auto kClusterBindings = std::to_array<CounterBinding<ClusterCounters>>({
    {"encapsulated_received", &ClusterCounters::encapsulated_received},
    {"forwarded_to_primary", &ClusterCounters::forwarded_to_primary},
    {"forwarded_to_secondary", &ClusterCounters::forwarded_to_secondary},
    {"hop_limit_drops", &ClusterCounters::hop_limit_drops},
    {"malformed_drops", &ClusterCounters::malformed_drops},
    {"unknown_peer_drops", &ClusterCounters::unknown_peer_drops},
    {"forward_failures", &ClusterCounters::forward_failures},
    {"heartbeats_sent", &ClusterCounters::heartbeats_sent},
    {"heartbeats_received", &ClusterCounters::heartbeats_received},
    {"heartbeats_malformed", &ClusterCounters::heartbeats_malformed},
});

inline constexpr auto kL3Bindings = std::to_array<CounterBinding<L3Counters>>({
    {"arp_requests_answered", &L3Counters::arp_requests_answered},
    {"arp_requests_sent", &L3Counters::arp_requests_sent},
    {"arp_replies_learned", &L3Counters::arp_replies_learned},
    {"gratuitous_arp_sent", &L3Counters::gratuitous_arp_sent},
    {"neighbour_resolution_failures", &L3Counters::neighbour_resolution_failures},
    {"icmp_echo_replies", &L3Counters::icmp_echo_replies},
    {"icmp_errors_to_tcp", &L3Counters::icmp_errors_to_tcp},
});

inline constexpr auto kTcpBindings = std::to_array<CounterBinding<TcpCounters>>({
    {"active_opens", &TcpCounters::active_opens},
    {"passive_opens", &TcpCounters::passive_opens},
    {"established", &TcpCounters::established},
    {"segments_in", &TcpCounters::segments_in},
    {"segments_out", &TcpCounters::segments_out},
    {"retransmitted_segments", &TcpCounters::retransmitted_segments},
    {"rto_expirations", &TcpCounters::rto_expirations},
    {"fast_retransmits", &TcpCounters::fast_retransmits},
    {"sack_retransmits", &TcpCounters::sack_retransmits},
    {"tail_loss_probes", &TcpCounters::tail_loss_probes},
    {"losses_marked_by_time", &TcpCounters::losses_marked_by_time},
    {"lost_retransmissions", &TcpCounters::lost_retransmissions},
    {"loss_timers_deferred", &TcpCounters::loss_timers_deferred},
    {"sack_scoreboards_exhausted", &TcpCounters::sack_scoreboards_exhausted},
    {"syn_cookies_sent", &TcpCounters::syn_cookies_sent},
    {"syn_cookies_accepted", &TcpCounters::syn_cookies_accepted},
    {"syn_cookies_rejected", &TcpCounters::syn_cookies_rejected},
    {"challenge_acks", &TcpCounters::challenge_acks},
    {"challenge_acks_suppressed", &TcpCounters::challenge_acks_suppressed},
    {"out_of_window_acks_suppressed", &TcpCounters::out_of_window_acks_suppressed},
    {"out_of_order_drops", &TcpCounters::out_of_order_drops},
    {"out_of_order_store_exhausted", &TcpCounters::out_of_order_store_exhausted},
    {"out_of_order_reclaimed", &TcpCounters::out_of_order_reclaimed},
    {"resets_sent", &TcpCounters::resets_sent},
    {"resets_received", &TcpCounters::resets_received},
    {"table_full", &TcpCounters::table_full},
    {"paws_drops", &TcpCounters::paws_drops},
    {"acks_for_unsent_data", &TcpCounters::acks_for_unsent_data},
    {"bad_options", &TcpCounters::bad_options},
    {"icmp_errors", &TcpCounters::icmp_errors},
    {"pmtu_reductions", &TcpCounters::pmtu_reductions},
    {"timeouts", &TcpCounters::timeouts},
    {"keepalive_probes", &TcpCounters::keepalive_probes},
    {"fin_wait2_timeouts", &TcpCounters::fin_wait2_timeouts},
    {"time_wait_overflows", &TcpCounters::time_wait_overflows},
    {"segments_collapsed", &TcpCounters::segments_collapsed},
    {"memory_pressure_entered", &TcpCounters::memory_pressure_entered},
    {"syns_refused_memory", &TcpCounters::syns_refused_memory},
    {"syns_refused_source_share", &TcpCounters::syns_refused_source_share},
    {"syns_admitted_under_pressure", &TcpCounters::syns_admitted_under_pressure},
    {"windows_stopped_source_share", &TcpCounters::windows_stopped_source_share},
    {"sources_table_full", &TcpCounters::sources_table_full},
    {"out_of_order_pruned", &TcpCounters::out_of_order_pruned},
    {"receive_memory_drops", &TcpCounters::receive_memory_drops},
    {"allocation_failures", &TcpCounters::allocation_failures},
});

// The port's scalar counters; its `drops` array is indexed by DropReason (kDropReasonBindings).
inline constexpr auto kPortBindings = std::to_array<CounterBinding<PortCounters>>({
    {"rx_packets", &PortCounters::rx_packets},
    {"rx_bytes", &PortCounters::rx_bytes},
    {"tx_packets", &PortCounters::tx_packets},
    {"tx_bytes", &PortCounters::tx_bytes},
    {"tx_linearised", &PortCounters::tx_linearised},
});

struct DropReasonBinding {
  std::string_view name;
  DropReason reason;
};

inline constexpr auto kDropReasonBindings = std::to_array<DropReasonBinding>({
    {"bad_checksum", DropReason::bad_checksum},
    {"truncated", DropReason::truncated},
    {"malformed", DropReason::malformed},
    {"fragment", DropReason::fragment},
    {"ip_options", DropReason::ip_options},
    {"ttl_expired", DropReason::ttl_expired},
    {"not_ours", DropReason::not_ours},
    {"unsupported", DropReason::unsupported},
    {"no_neighbour", DropReason::no_neighbour},
    {"tx_ring_full", DropReason::tx_ring_full},
    {"mbuf_exhausted", DropReason::mbuf_exhausted},
    {"tx_linearise_failed", DropReason::tx_linearise_failed},
    {"tx_prepare_refused", DropReason::tx_prepare_refused},
});

// True when the reasons are bound in the enum's order (the catalogue's order is the array's).
constexpr bool reasons_in_enum_order() {
  for (size_t i = 0; i < kDropReasonBindings.size(); ++i) {
    if (static_cast<size_t>(kDropReasonBindings[i].reason) != i) return false;
  }
  return kDropReasonBindings.size() == static_cast<size_t>(DropReason::count_);
}

// The listener's counters; `active` is sessions accepted less sessions ended.
using proxy::ListenerCounters;
inline constexpr auto kListenerBindings = std::to_array<CounterBinding<ListenerCounters>>({
    {"connections", &ListenerCounters::connections},
    {"active", &ListenerCounters::connections, &ListenerCounters::closed},
    {"refused_max_connections", &ListenerCounters::refused_max_connections},
    {"no_backend", &ListenerCounters::no_backend},
    {"backend_connect_failures", &ListenerCounters::backend_connect_failures},
    {"idle_timeouts", &ListenerCounters::idle_timeouts},
    {"client_timeouts", &ListenerCounters::client_timeouts},
    {"server_timeouts", &ListenerCounters::server_timeouts},
    {"frame_timeouts", &ListenerCounters::frame_timeouts},
    {"partial_frames", &ListenerCounters::partial_frames_started,
     &ListenerCounters::partial_frames_ended},
    {"tls_no_worker", &ListenerCounters::tls_no_worker},
    {"tls_resets", &ListenerCounters::tls_resets},
    {"tls_handshakes_tls12", &ListenerCounters::tls_handshakes_tls12},
    {"tls_handshakes_tls13", &ListenerCounters::tls_handshakes_tls13},
    {"tls_handshakes_resumed", &ListenerCounters::tls_handshakes_resumed},
    {"tls_handshakes_failed", &ListenerCounters::tls_handshakes_failed},
    {"tls_sni_routed", &ListenerCounters::tls_sni_routed},
    {"tls_ring_full", &ListenerCounters::tls_ring_full},
});

// The TLS relay's counters (kTlsRelayCounters): scalars, and its two arrays by index (the
// refused records by TlsRecordFault, the worker's resets by ResetReason).
using proxy::TlsRelayCounters;
struct TlsRelayBinding {
  std::string_view name;
  const Counter& (*counter)(const TlsRelayCounters&);
};
template <Counter TlsRelayCounters::*member>
const Counter& tls_scalar(const TlsRelayCounters& c) {
  return c.*member;
}
template <proxy::TlsRecordFault fault>
const Counter& tls_fault(const TlsRelayCounters& c) {
  return c.faults[static_cast<size_t>(fault)];
}
template <tls_channel::ResetReason reason>
const Counter& tls_worker_reset(const TlsRelayCounters& c) {
  return c.worker_resets[static_cast<size_t>(reason)];
}

inline constexpr auto kTlsRelayBindings = std::to_array<TlsRelayBinding>({
    {"sessions_opened", &tls_scalar<&TlsRelayCounters::sessions_opened>},
    {"no_channel", &tls_scalar<&TlsRelayCounters::no_channel>},
    {"ring_full", &tls_scalar<&TlsRelayCounters::ring_full>},
    {"credit_waits", &tls_scalar<&TlsRelayCounters::credit_waits>},
    {"stale_records", &tls_scalar<&TlsRelayCounters::stale_records>},
    {"channels_dropped", &tls_scalar<&TlsRelayCounters::channels_dropped>},
    {"refused_foreign_session", &tls_fault<proxy::TlsRecordFault::foreign_session>},
    {"refused_bad_kind", &tls_fault<proxy::TlsRecordFault::bad_kind>},
    {"refused_bad_length", &tls_fault<proxy::TlsRecordFault::bad_length>},
    {"refused_out_of_order", &tls_fault<proxy::TlsRecordFault::out_of_order>},
    {"worker_reset_not_tls", &tls_worker_reset<tls_channel::ResetReason::not_tls>},
    {"worker_reset_handshake_failed",
     &tls_worker_reset<tls_channel::ResetReason::handshake_failed>},
    {"worker_reset_record_overflow", &tls_worker_reset<tls_channel::ResetReason::record_overflow>},
    {"worker_reset_protocol_error", &tls_worker_reset<tls_channel::ResetReason::protocol_error>},
    {"worker_reset_truncated", &tls_worker_reset<tls_channel::ResetReason::truncated>},
    {"worker_reset_handshake_timeout",
     &tls_worker_reset<tls_channel::ResetReason::handshake_timeout>},
    {"worker_reset_unknown_listener",
     &tls_worker_reset<tls_channel::ResetReason::unknown_listener>},
    {"worker_reset_bad_record", &tls_worker_reset<tls_channel::ResetReason::bad_record>},
    {"worker_reset_output_full", &tls_worker_reset<tls_channel::ResetReason::output_full>},
    {"worker_reset_too_many_sessions",
     &tls_worker_reset<tls_channel::ResetReason::too_many_sessions>},
    {"handshakes_tls12", &tls_scalar<&TlsRelayCounters::handshakes_tls12>},
    {"handshakes_tls13", &tls_scalar<&TlsRelayCounters::handshakes_tls13>},
    {"handshakes_resumed", &tls_scalar<&TlsRelayCounters::handshakes_resumed>},
    {"ciphertext_bytes_to_worker", &tls_scalar<&TlsRelayCounters::ciphertext_to_worker>},
    {"plaintext_bytes_to_worker", &tls_scalar<&TlsRelayCounters::plaintext_to_worker>},
    {"ciphertext_bytes_from_worker", &tls_scalar<&TlsRelayCounters::ciphertext_from_worker>},
    {"plaintext_bytes_from_worker", &tls_scalar<&TlsRelayCounters::plaintext_from_worker>},
});

// The counters kept per direction, indexed by proxy::Direction.
using DirectionCounters = std::array<Counter, 2>;

inline constexpr auto kBackendBindings = std::to_array<CounterBinding<proxy::BackendCounters>>({
    {"connections", &proxy::BackendCounters::connections},
    {"active", &proxy::BackendCounters::connections, &proxy::BackendCounters::closed},
    {"connect_failures", &proxy::BackendCounters::connect_failures},
    {"drain_resets", &proxy::BackendCounters::drain_resets},
    {"source_ports_exhausted", &proxy::BackendCounters::source_ports_exhausted},
    {"sessions", &proxy::BackendCounters::assigned, &proxy::BackendCounters::released},
    {"resets", &proxy::BackendCounters::resets},
});

inline constexpr auto kBackendDirectionBindings =
    std::to_array<CounterBinding<proxy::BackendCounters, DirectionCounters>>({
        {"frames_verified", &proxy::BackendCounters::frames_verified},
        {"frames_corrupt", &proxy::BackendCounters::frames_corrupt},
        {"frames_malformed", &proxy::BackendCounters::frames_malformed},
    });

// The device's counters are plain numbers read at the snapshot, not Counters a worker adds to.
struct DeviceCounterBinding {
  std::string_view name;
  uint64_t DeviceCounters::*member;
};
inline constexpr auto kDeviceBindings = std::to_array<DeviceCounterBinding>({
    {"rx_nombuf", &DeviceCounters::rx_nombuf},
    {"rx_missed", &DeviceCounters::rx_missed},
    {"rx_errors", &DeviceCounters::rx_errors},
    {"tx_errors", &DeviceCounters::tx_errors},
});

// The listener's counters kept per direction.
inline constexpr auto kListenerDirectionBindings =
    std::to_array<CounterBinding<ListenerCounters, DirectionCounters>>({
        {"bytes", &ListenerCounters::bytes},
        {"frames_verified", &ListenerCounters::frames_verified},
        {"bytes_verified", &ListenerCounters::bytes_verified},
        {"frames_corrupt", &ListenerCounters::frames_corrupt},
        {"frames_malformed", &ListenerCounters::frames_malformed},
        {"corrupt_resets", &ListenerCounters::corrupt_resets},
        {"tls_records_to_worker", &ListenerCounters::tls_records_to_worker},
        {"tls_records_from_worker", &ListenerCounters::tls_records_from_worker},
    });

// ---- held to the catalogue --------------------------------------------------------------------

static_assert(counters::names_match(counters::kLoopCounters, kLoopBindings));
static_assert(counters::names_match(counters::kSteeringCounters, kSteeringBindings));
static_assert(counters::names_match(counters::kL3Counters, kL3Bindings));
static_assert(counters::names_match(counters::kClusterCounters, kClusterBindings));
static_assert(counters::names_match(counters::kTcpCounters, kTcpBindings));
static_assert(counters::names_match(counters::kPortCounters, kPortBindings));
static_assert(counters::names_match(counters::kDropReasons, kDropReasonBindings));
static_assert(counters::names_match(counters::kListenerCounters, kListenerBindings));
static_assert(counters::names_match(counters::kListenerDirectionCounters,
                                    kListenerDirectionBindings));
static_assert(counters::names_match(counters::kBackendCounters, kBackendBindings));
static_assert(counters::names_match(counters::kBackendDirectionCounters,
                                    kBackendDirectionBindings));
static_assert(counters::names_match(counters::kDeviceCounters, kDeviceBindings));
static_assert(counters::names_match(counters::kTlsRelayCounters, kTlsRelayBindings));
static_assert(sizeof(DeviceCounters) == kDeviceBindings.size() * sizeof(uint64_t));
static_assert(reasons_in_enum_order());
static_assert(counters::kDirections.size() == 2 && proxy::kToBackend == 0 && proxy::kToClient == 1);

// Every member bound: the structs hold nothing but counters, so a struct's size is its number of
// members times a counter's, and the bindings name that many distinct members.
static_assert(sizeof(WorkerLoopCounters) == distinct_members(kLoopBindings) * sizeof(Counter));
static_assert(sizeof(SteeringCounters) == distinct_members(kSteeringBindings) * sizeof(Counter));
static_assert(sizeof(L3Counters) == distinct_members(kL3Bindings) * sizeof(Counter));
static_assert(sizeof(ClusterCounters) == distinct_members(kClusterBindings) * sizeof(Counter));
static_assert(sizeof(TcpCounters) == distinct_members(kTcpBindings) * sizeof(Counter));
static_assert(sizeof(proxy::BackendCounters) ==
              distinct_members(kBackendBindings) * sizeof(Counter) +
                  distinct_members(kBackendDirectionBindings) * sizeof(DirectionCounters));
static_assert(sizeof(PortCounters) ==
              (distinct_members(kPortBindings) + kDropReasonBindings.size()) * sizeof(Counter));
// Every fault bound, every reason but the unused index 0, and each scalar: a member added to the
// relay's counters without an entry fails here (the bindings read distinct counters: a unit test).
static_assert(static_cast<size_t>(proxy::TlsRecordFault::count_) == 4 &&
              tls_channel::kResetReasons == 11);
static_assert(sizeof(TlsRelayCounters) == (kTlsRelayBindings.size() + 1) * sizeof(Counter));
static_assert(sizeof(ListenerCounters) ==
              distinct_members(kListenerBindings) * sizeof(Counter) +
                  distinct_members(kListenerDirectionBindings) * sizeof(DirectionCounters));

}  // namespace weir::dataplane
