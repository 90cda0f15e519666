// weir-control's connection to the dataplane's control socket (dataplane.control_socket). The
// controller and the metrics collector each hold one, so a slow scrape never delays a health
// transition. A dataplane that does not answer within the timeout costs one failed call.
#pragma once

#include <chrono>
#include <string>

#include "common/channel/line_client.h"

namespace weir::control {

inline constexpr std::chrono::milliseconds kDataplaneReplyTimeout{2000};

// Guaranteed copy elision: a LineClient is neither copied nor moved.
inline channel::LineClient dataplane_channel(std::string socket_path) {
  return channel::LineClient(std::move(socket_path), "the dataplane", kDataplaneReplyTimeout);
}

}  // namespace weir::control
