// The records of the TLS channel between a dataplane worker and a weir-tls-worker (docs/tls.md,
// "The channel"), carried by common/shm_ring.h: their kinds and payload layouts. Both sides
// include this; the dataplane treats every record from a worker as untrusted input.
#pragma once

#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace weir::tls_channel {

// One TLS record's payload at most, with its header and AEAD overhead (RFC 8446 5.2: 2^14 + 256).
inline constexpr uint32_t kMaxRecordPayload = 16'384 + 256;
inline constexpr uint64_t kDefaultRingBytes = uint64_t{1} << 20;

enum class Kind : uint16_t {
  // Toward the worker.
  open = 1,  // a new session: OpenPayload
  // Both ways: toward the worker, bytes from the client (ciphertext) or the backend (plaintext);
  // from it, bytes for the client (ciphertext) or the backend (plaintext).
  ciphertext = 2,
  plaintext = 3,
  // Both ways, empty: the end of that stream. Toward the worker: the client's FIN
  // (ciphertext_end) or the backend's (plaintext_end: the worker sends close_notify). From it:
  // shut the client's write side (close_notify sent) or the backend's (the client's close_notify).
  ciphertext_end = 4,
  plaintext_end = 5,
  // Both ways: the session is gone. From the worker the payload is a ResetReason (uint16_t).
  reset = 6,
  // From the worker: the handshake finished: HandshakeDone.
  handshake_done = 7,
};

// Why a worker ended a session; counted by the worker, sent to the dataplane.
enum class ResetReason : uint16_t {
  not_tls = 1,             // the first bytes are not a TLS handshake record (garbage)
  handshake_failed = 2,    // the TLS handshake failed (alert sent)
  record_overflow = 3,     // a record longer than TLS allows
  protocol_error = 4,      // a TLS error after the handshake (bad MAC, unexpected message...)
  truncated = 5,           // the client's stream ended inside a record or before the handshake
  handshake_timeout = 6,   // handshake_timeout_ms passed before the handshake finished
  unknown_listener = 7,    // `open` named a listener the worker does not serve
  bad_record = 8,          // a record the channel's protocol does not allow here
  output_full = 9,         // the ring back to the dataplane could not take the output
  too_many_sessions = 10,  // the worker's session table is full
};
inline constexpr size_t kResetReasons = 11;  // indices 1..10 used
std::string_view name_of(ResetReason reason);

// `open`: the client's address (for logs), and the listener by name (names are stable across
// reloads, indices are not).
struct OpenPayload {
  uint32_t client_address = 0;  // IPv4, host order
  uint16_t client_port = 0;
  std::string listener;
};
std::vector<uint8_t> encode(const OpenPayload& open);
std::optional<OpenPayload> decode_open(std::span<const uint8_t> payload);

inline constexpr uint16_t kNoSniPool = 0xffff;
// `handshake_done`: what the dataplane needs to pick the backend and count the handshake.
struct HandshakeDone {
  uint16_t version = 0;            // 0x0303 TLS 1.2, 0x0304 TLS 1.3
  uint16_t sni_pool = kNoSniPool;  // index into the listener's sni_pools, or kNoSniPool
  bool resumed = false;
  std::string server_name;  // as the client sent it (at most 255 bytes), or empty
};
std::vector<uint8_t> encode(const HandshakeDone& done);
std::optional<HandshakeDone> decode_handshake_done(std::span<const uint8_t> payload);

}  // namespace weir::tls_channel
