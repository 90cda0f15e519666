// The counter catalogue's tables for the weir-tls-worker processes (included by
// common/counter_catalogue.h, of which they are part). Each worker's counters reach weir-control
// through its counter block (common/tls_counter_block.h), indexed like kTlsWorkerCounters;
// tls/worker_counter_bindings.h pairs each entry with the worker's WorkerCounters. weir-control
// puts them in its state as tls.worker_counters[] (one object per worker slot, the counts of that
// slot's ended workers included, so that a restart never sends a series backwards) and exports
// them with the label `tls_worker` (the slot, 0 to tls.workers - 1).
#pragma once

#include <array>
#include <string_view>

namespace weir::counters {

inline constexpr std::array<std::string_view, 1> kTlsWorkerLabels = {"tls_worker"};

inline constexpr std::string_view kTlsWorkerHandshakesHelp =
    "TLS handshakes a TLS worker completed, by version";
inline constexpr std::string_view kTlsWorkerResetsHelp =
    "Sessions a TLS worker ended on its own, by reason (the handshake's failures among them: "
    "not_tls, handshake_failed, handshake_timeout, truncated before the handshake)";
inline constexpr std::string_view kTlsWorkerCiphertextHelp =
    "TLS ciphertext bytes a TLS worker took from clients (from_client) and made for them "
    "(to_client)";
inline constexpr std::string_view kTlsWorkerPlaintextHelp =
    "Plaintext bytes a TLS worker decrypted for backends (to_backend) and took from them "
    "(from_backend)";
inline constexpr std::string_view kTlsWorkerAlertsSentHelp =
    "TLS alerts a TLS worker sent, by type (other: any type not listed)";
inline constexpr std::string_view kTlsWorkerAlertsReceivedHelp =
    "TLS alerts a TLS worker received from clients, by type (other: any type not listed)";

constexpr Entry tls_worker_reset(std::string_view name, std::string_view help,
                                 std::string_view reason) {
  return {name,
          help,
          "weir_tls_worker_resets_total",
          Kind::counter,
          "reason",
          reason,
          kTlsWorkerResetsHelp};
}
constexpr Entry tls_alert_sent(std::string_view name, std::string_view type) {
  return {
      name, "alerts of this type sent", "weir_tls_worker_alerts_sent_total", Kind::counter, "type",
      type, kTlsWorkerAlertsSentHelp};
}
constexpr Entry tls_alert_received(std::string_view name, std::string_view type) {
  return {name,
          "alerts of this type received",
          "weir_tls_worker_alerts_received_total",
          Kind::counter,
          "type",
          type,
          kTlsWorkerAlertsReceivedHelp};
}

// The alert types counted by name (RFC 8446 section 6), in the order of their entries below;
// every other type is counted as `other`.
struct TlsAlertType {
  unsigned char code;
  std::string_view name;
};
inline constexpr auto kTlsAlertTypes = std::to_array<TlsAlertType>({
    {0, "close_notify"},
    {10, "unexpected_message"},
    {20, "bad_record_mac"},
    {40, "handshake_failure"},
    {42, "bad_certificate"},
    {46, "certificate_unknown"},
    {47, "illegal_parameter"},
    {48, "unknown_ca"},
    {50, "decode_error"},
    {51, "decrypt_error"},
    {70, "protocol_version"},
    {80, "internal_error"},
    {112, "unrecognized_name"},
});

inline constexpr auto kTlsWorkerCounters = std::to_array<Entry>({
    counter("sessions_opened", "sessions the dataplane opened on the worker (an `open` record)",
            "weir_tls_worker_sessions_total"),
    {"handshakes_tls12", "TLS 1.2 handshakes completed", "weir_tls_worker_handshakes_total",
     Kind::counter, "version", "1.2", kTlsWorkerHandshakesHelp},
    {"handshakes_tls13", "TLS 1.3 handshakes completed", "weir_tls_worker_handshakes_total",
     Kind::counter, "version", "1.3", kTlsWorkerHandshakesHelp},
    counter("handshakes_resumed", "of the handshakes completed, those that resumed a session",
            "weir_tls_worker_resumed_handshakes_total"),
    tls_worker_reset("reset_not_tls", "the client's first bytes were not a TLS handshake record",
                     "not_tls"),
    tls_worker_reset("reset_handshake_failed",
                     "the handshake failed (a version, cipher or certificate refused, an alert "
                     "from the client)",
                     "handshake_failed"),
    tls_worker_reset("reset_record_overflow", "a record longer than TLS allows", "record_overflow"),
    tls_worker_reset("reset_protocol_error", "a TLS error after the handshake", "protocol_error"),
    tls_worker_reset("reset_truncated",
                     "the client's stream ended inside a record or before the handshake",
                     "truncated"),
    tls_worker_reset("reset_handshake_timeout", "`handshake_timeout_ms` passed",
                     "handshake_timeout"),
    tls_worker_reset("reset_unknown_listener", "`open` named a listener the worker does not serve",
                     "unknown_listener"),
    tls_worker_reset("reset_bad_record", "a record the channel's protocol does not allow",
                     "bad_record"),
    tls_worker_reset("reset_output_full",
                     "the ring back to the dataplane could not take the output", "output_full"),
    tls_worker_reset("reset_too_many_sessions", "the channel's session table was full",
                     "too_many_sessions"),
    {"ciphertext_in", "ciphertext bytes from clients", "weir_tls_worker_ciphertext_bytes_total",
     Kind::counter, "way", "from_client", kTlsWorkerCiphertextHelp},
    {"ciphertext_out", "ciphertext bytes for clients (handshakes, records, alerts)",
     "weir_tls_worker_ciphertext_bytes_total", Kind::counter, "way", "to_client",
     kTlsWorkerCiphertextHelp},
    {"plaintext_in", "plaintext bytes from backends, encrypted",
     "weir_tls_worker_plaintext_bytes_total", Kind::counter, "way", "from_backend",
     kTlsWorkerPlaintextHelp},
    {"plaintext_out", "plaintext bytes decrypted for backends",
     "weir_tls_worker_plaintext_bytes_total", Kind::counter, "way", "to_backend",
     kTlsWorkerPlaintextHelp},
    counter("input_deferred",
            "passes that left records waiting for lack of room toward the dataplane",
            "weir_tls_worker_input_deferred_total"),
    counter("channels_broken", "channels to the dataplane dropped (their ring broke)",
            "weir_tls_worker_channels_broken_total"),
    tls_alert_sent("alerts_sent_close_notify", "close_notify"),
    tls_alert_sent("alerts_sent_unexpected_message", "unexpected_message"),
    tls_alert_sent("alerts_sent_bad_record_mac", "bad_record_mac"),
    tls_alert_sent("alerts_sent_handshake_failure", "handshake_failure"),
    tls_alert_sent("alerts_sent_bad_certificate", "bad_certificate"),
    tls_alert_sent("alerts_sent_certificate_unknown", "certificate_unknown"),
    tls_alert_sent("alerts_sent_illegal_parameter", "illegal_parameter"),
    tls_alert_sent("alerts_sent_unknown_ca", "unknown_ca"),
    tls_alert_sent("alerts_sent_decode_error", "decode_error"),
    tls_alert_sent("alerts_sent_decrypt_error", "decrypt_error"),
    tls_alert_sent("alerts_sent_protocol_version", "protocol_version"),
    tls_alert_sent("alerts_sent_internal_error", "internal_error"),
    tls_alert_sent("alerts_sent_unrecognized_name", "unrecognized_name"),
    tls_alert_sent("alerts_sent_other", "other"),
    tls_alert_received("alerts_received_close_notify", "close_notify"),
    tls_alert_received("alerts_received_unexpected_message", "unexpected_message"),
    tls_alert_received("alerts_received_bad_record_mac", "bad_record_mac"),
    tls_alert_received("alerts_received_handshake_failure", "handshake_failure"),
    tls_alert_received("alerts_received_bad_certificate", "bad_certificate"),
    tls_alert_received("alerts_received_certificate_unknown", "certificate_unknown"),
    tls_alert_received("alerts_received_illegal_parameter", "illegal_parameter"),
    tls_alert_received("alerts_received_unknown_ca", "unknown_ca"),
    tls_alert_received("alerts_received_decode_error", "decode_error"),
    tls_alert_received("alerts_received_decrypt_error", "decrypt_error"),
    tls_alert_received("alerts_received_protocol_version", "protocol_version"),
    tls_alert_received("alerts_received_internal_error", "internal_error"),
    tls_alert_received("alerts_received_unrecognized_name", "unrecognized_name"),
    tls_alert_received("alerts_received_other", "other"),
    unexported("certificates_refused_start",
               "starts whose certificates or keys did not load (the worker then exits; "
               "weir-control's `certificates_refused_start`)"),
    unexported("certificates_refused_reload",
               "certificate reloads the worker refused, keeping its certificates "
               "(weir-control's `certificates_refused_reload`)"),
});

// weir-control's count of refused certificate loads (its state's tls object): at a worker's start
// (summed over the workers' counter blocks), and on reload (the check before a reload, run by the
// worker binary, plus a worker refusing the reload it was sent). Each is logged with the file and
// the reason.
inline constexpr std::string_view kCertificatesRefusedHelp =
    "Certificate and key loads refused (a file unreadable, malformed, expired, or not the "
    "certificate's key), by stage: at a TLS worker's start (it exits; weir-control restarts it "
    "after back-off) or on a reload (the running certificates stay)";
inline constexpr auto kTlsCertificateRefusals = std::to_array<Entry>({
    {"certificates_refused_start", "TLS worker starts whose certificates did not load",
     "weir_tls_certificates_refused_total", Kind::counter, "stage", "start",
     kCertificatesRefusedHelp},
    {"certificates_refused_reload", "reloads refused for a certificate or key",
     "weir_tls_certificates_refused_total", Kind::counter, "stage", "reload",
     kCertificatesRefusedHelp},
});

}  // namespace weir::counters
