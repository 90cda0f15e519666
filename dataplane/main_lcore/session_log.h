// The session log, on the main lcore: each sampled session of a listener with
// `session_log_sample` (docs/configuration.md), as a worker reported it when the session ended
// (dataplane/proxy/session_records.h), named and written as one info line in nginx stream's
// access_log spirit: client, backend, bytes each way, duration, how it ended. Off the packet path;
// the sampling and the workers' bounded rings bound the lines (a full ring drops and counts).
// No DPDK here: unit-tested on its own (tests/unit/frame_event_log_test.cc).
#pragma once

#include <cstdint>
#include <string>

#include "dataplane/main_lcore/frame_event_log.h"
#include "dataplane/proxy/session_records.h"

namespace weir::dataplane {

// The line (without the logger's time and level). `start_unix_us`: when the session was accepted.
std::string format_session_record(const proxy::SessionRecord& record, const FrameEventNames& names,
                                  uint64_t start_unix_us);

}  // namespace weir::dataplane
