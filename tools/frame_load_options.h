// weir-frame-load's command line (tools/frame_load.cc): the options and their parser.
#pragma once

#include <cstdint>
#include <cstdio>
#include <vector>

#include "tools/socket_util.h"

namespace weir::tools::frame_load {

struct SizeWeight {
  uint32_t size = 0;  // payload bytes
  double weight = 1;
};

struct Options {
  Endpoint connect;
  uint32_t connections = 1;
  double rate = 0;  // frames per second over all connections; 0 = closed loop
  uint32_t depth = 1;
  std::vector<SizeWeight> sizes{{64, 1}};
  double duration_s = 5;
  uint64_t frames = 0;  // when set, the run is bounded by frames instead of duration
  uint64_t corrupt_every = 0;
  bool ping = false;
  bool reconnect = false;
  bool json = false;
  uint64_t seed = 1;
  double timeout_s = 5;
};

void print_usage(FILE* out);

// Throws UsageError naming the argument and why.
Options parse_options(int argc, char** argv);

}  // namespace weir::tools::frame_load
