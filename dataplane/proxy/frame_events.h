// The frame event of a framed listener: one fixed-size record per corrupt or malformed frame,
// which the worker pushes into its bounded ring (no allocation, no lock, no formatting on the
// packet path) and the main lcore drains, names and logs (dataplane/main_lcore/frame_event_log.h).
// A full ring drops the record and counts it (Proxy::frame_events_dropped).
#pragma once

#include <cstddef>
#include <cstdint>

#include "common/spsc_ring.h"
#include "dataplane/proxy/frame_relay.h"

namespace weir::proxy {

inline constexpr uint16_t kNoBackendSlot = UINT16_MAX;

struct FrameEvent {
  uint64_t time_us = 0;  // the worker's clock (CLOCK_MONOTONIC), when the frame was inspected
  FrameFault fault;
  uint32_t client_address = 0;  // the client's, host order
  uint16_t client_port = 0;
  uint16_t listener = 0;                   // the worker's listener index (Proxy::listener)
  uint16_t pool = 0;                       // the listener's pool index
  uint16_t backend_slot = kNoBackendSlot;  // the session's backend (PoolStates::slot)
  uint8_t direction = 0;                   // proxy::Direction
};

// Per worker: at 1024 records the main lcore, which drains every 100 ms at the latest, keeps
// every event up to some 10 000 a second per worker; beyond that they are counted, not kept.
using FrameEventRing = SpscRing<FrameEvent, 1024>;

}  // namespace weir::proxy
