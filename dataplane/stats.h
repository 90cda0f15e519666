// A JSON snapshot of every worker's counters (docs/metrics.md): the control protocol's `counters`
// reply, and one line on SIGUSR1 and at exit. Read from the main lcore: relaxed loads of
// single-writer counters. Its names come from the counter catalogue (common/counter_catalogue.h).
#pragma once

#include <nlohmann/json.hpp>

#include <cstdio>
#include <memory>
#include <vector>

#include "config/config.h"
#include "dataplane/port.h"
#include "dataplane/worker.h"

namespace weir::dataplane {

// `devices`: the open ports, whose device counters are read now (none in tests without ports).
nlohmann::json stats_json(const config::Config& config, const std::vector<OpenPort>& devices,
                          const std::vector<std::unique_ptr<Worker>>& workers);
// stats_json as one line.
void print_stats(FILE* out, const config::Config& config, const std::vector<OpenPort>& devices,
                 const std::vector<std::unique_ptr<Worker>>& workers);

}  // namespace weir::dataplane
