// The session log of a listener with `session_log_sample` (docs/configuration.md): one fixed-size
// record per sampled session, filled in as the session runs and pushed, when it ends, into the
// worker's bounded ring (no formatting, no lock on the packet path); the main lcore drains, names
// and logs it (dataplane/main_lcore/session_log.h). A full ring drops the record and counts it
// (Proxy::session_records_dropped).
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

#include "common/spsc_ring.h"

namespace weir::proxy {

// How a session ended: the first thing that ended it (a client's RST that Weir then passes on to
// the backend is `client_reset`, not `backend_reset`).
enum class SessionEnd : uint8_t {
  fin,             // both sides closed cleanly
  client_reset,    // the client sent a RST (or its connection was aborted)
  backend_reset,   // the backend sent a RST after it had accepted the connection
  client_timeout,  // the client's connection timed out (data unacknowledged, keepalive)
  backend_timeout,
  no_backend,     // no backend could be connected (every attempt failed, or none eligible)
  idle_timeout,   // Weir reset it after the listener's idle_timeout_ms
  corrupt_frame,  // Weir reset it for a corrupt or malformed frame
  drain,          // Weir reset it when its backend's drain timeout expired
  shutdown,       // Weir reset it at the end of the dataplane's shutdown grace
  frame_timeout,  // Weir reset it: the client's frame stayed incomplete for frame_timeout_ms
  tls_reset,      // tls listeners: the TLS worker ended it (bad input, timeout), or it went away
};

inline constexpr std::array<std::string_view, 12> kSessionEndNames = {
    "fin",          "client_reset", "backend_reset", "client_timeout", "backend_timeout",
    "no_backend",   "idle_timeout", "corrupt_frame", "drain",          "shutdown",
    "frame_timeout", "tls_reset"};

inline std::string_view name_of(SessionEnd end) {
  return kSessionEndNames[static_cast<size_t>(end)];
}

inline constexpr uint16_t kNoSessionBackend = UINT16_MAX;

struct SessionRecord {
  uint64_t start_us = 0;                   // the worker's clock (CLOCK_MONOTONIC): accepted
  uint64_t end_us = 0;                     // ended (both connections gone)
  std::array<uint64_t, 2> bytes = {0, 0};  // relayed, by proxy::Direction
  uint32_t client_address = 0;             // host order
  uint16_t client_port = 0;
  uint16_t listener = 0;                      // the worker's listener index (Proxy::listener)
  uint16_t pool = 0;                          // the listener's pool index
  uint16_t backend_slot = kNoSessionBackend;  // the last backend tried (PoolStates::slot)
  bool ended = false;                         // `end` set (the first cause wins)
  SessionEnd end = SessionEnd::fin;
};

// Per worker: the main lcore drains every 100 ms at the latest, so 1024 records keep some 10 000
// logged sessions a second per worker; beyond that they are counted, not kept.
using SessionRecordRing = SpscRing<SessionRecord, 1024>;

}  // namespace weir::proxy
