// Each entry of the catalogue's kTlsWorkerCounters (common/counter_catalogue_tls.h) paired with the
// WorkerCounters value that holds it, in the same order: the index of an entry is the index of its
// value in the worker's counter block (common/tls_counter_block.h). The static_asserts hold the
// pairing to the catalogue; tests/unit/tls_worker_counters_test.cc checks every value is bound.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

#include "common/counter_catalogue.h"
#include "common/tls_counter_block.h"
#include "tls/tls_worker.h"

namespace weir::tls {

struct WorkerCounterBinding {
  std::string_view name;
  uint64_t (*value)(const WorkerCounters&);
};

template <uint64_t WorkerCounters::*M>
constexpr uint64_t member(const WorkerCounters& c) {
  return c.*M;
}
template <tls_channel::ResetReason R>
constexpr uint64_t reset_of(const WorkerCounters& c) {
  return c.reset(R);
}
template <size_t I>
constexpr uint64_t sent_of(const WorkerCounters& c) {
  return c.alerts_sent[I];
}
template <size_t I>
constexpr uint64_t received_of(const WorkerCounters& c) {
  return c.alerts_received[I];
}

using R = tls_channel::ResetReason;
using W = WorkerCounters;
inline constexpr auto kWorkerCounterBindings = std::to_array<WorkerCounterBinding>({
    {"sessions_opened", &member<&W::sessions_opened>},
    {"handshakes_tls12", &member<&W::handshakes_tls12>},
    {"handshakes_tls13", &member<&W::handshakes_tls13>},
    {"handshakes_resumed", &member<&W::handshakes_resumed>},
    {"reset_not_tls", &reset_of<R::not_tls>},
    {"reset_handshake_failed", &reset_of<R::handshake_failed>},
    {"reset_record_overflow", &reset_of<R::record_overflow>},
    {"reset_protocol_error", &reset_of<R::protocol_error>},
    {"reset_truncated", &reset_of<R::truncated>},
    {"reset_handshake_timeout", &reset_of<R::handshake_timeout>},
    {"reset_unknown_listener", &reset_of<R::unknown_listener>},
    {"reset_bad_record", &reset_of<R::bad_record>},
    {"reset_output_full", &reset_of<R::output_full>},
    {"reset_too_many_sessions", &reset_of<R::too_many_sessions>},
    {"ciphertext_in", &member<&W::ciphertext_in>},
    {"ciphertext_out", &member<&W::ciphertext_out>},
    {"plaintext_in", &member<&W::plaintext_in>},
    {"plaintext_out", &member<&W::plaintext_out>},
    {"input_deferred", &member<&W::input_deferred>},
    {"channels_broken", &member<&W::channels_broken>},
    {"alerts_sent_close_notify", &sent_of<0>},
    {"alerts_sent_unexpected_message", &sent_of<1>},
    {"alerts_sent_bad_record_mac", &sent_of<2>},
    {"alerts_sent_handshake_failure", &sent_of<3>},
    {"alerts_sent_bad_certificate", &sent_of<4>},
    {"alerts_sent_certificate_unknown", &sent_of<5>},
    {"alerts_sent_illegal_parameter", &sent_of<6>},
    {"alerts_sent_unknown_ca", &sent_of<7>},
    {"alerts_sent_decode_error", &sent_of<8>},
    {"alerts_sent_decrypt_error", &sent_of<9>},
    {"alerts_sent_protocol_version", &sent_of<10>},
    {"alerts_sent_internal_error", &sent_of<11>},
    {"alerts_sent_unrecognized_name", &sent_of<12>},
    {"alerts_sent_other", &sent_of<13>},
    {"alerts_received_close_notify", &received_of<0>},
    {"alerts_received_unexpected_message", &received_of<1>},
    {"alerts_received_bad_record_mac", &received_of<2>},
    {"alerts_received_handshake_failure", &received_of<3>},
    {"alerts_received_bad_certificate", &received_of<4>},
    {"alerts_received_certificate_unknown", &received_of<5>},
    {"alerts_received_illegal_parameter", &received_of<6>},
    {"alerts_received_unknown_ca", &received_of<7>},
    {"alerts_received_decode_error", &received_of<8>},
    {"alerts_received_decrypt_error", &received_of<9>},
    {"alerts_received_protocol_version", &received_of<10>},
    {"alerts_received_internal_error", &received_of<11>},
    {"alerts_received_unrecognized_name", &received_of<12>},
    {"alerts_received_other", &received_of<13>},
    {"certificates_refused_start", &member<&W::certificates_refused_start>},
    {"certificates_refused_reload", &member<&W::certificates_refused_reload>},
});

static_assert(counters::names_match(counters::kTlsWorkerCounters, kWorkerCounterBindings),
              "kWorkerCounterBindings must name kTlsWorkerCounters' entries in order");
static_assert(kWorkerCounterBindings.size() <= tls_counters::kMaxValues);
// The alert entries (sent, then received) follow kTlsAlertTypes, then `other` (alert_index's
// last); that each is bound to its own index is checked by the unit test.
constexpr bool alert_entries_match() {
  size_t sent = 0;
  while (counters::kTlsWorkerCounters[sent].name != "alerts_sent_close_notify") ++sent;
  for (size_t i = 0; i < kAlertTypes; ++i) {
    const std::string_view type =
        i < counters::kTlsAlertTypes.size() ? counters::kTlsAlertTypes[i].name : "other";
    if (counters::kTlsWorkerCounters[sent + i].label_value != type ||
        counters::kTlsWorkerCounters[sent + kAlertTypes + i].label_value != type)
      return false;
  }
  return true;
}
static_assert(alert_entries_match());

}  // namespace weir::tls
