// A JSON snapshot of every worker's counters, printed on SIGUSR1 and at exit (one line), until the
// control socket serves them. Read from the main lcore: relaxed loads of single-writer counters.
#pragma once

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "config/config.h"
#include "dataplane/worker.h"

namespace weir::dataplane {

void print_stats(FILE* out, const config::Config& config,
                 const std::vector<std::unique_ptr<Worker>>& workers);
// The same object as a string (the control protocol's "counters").
std::string stats_json(const config::Config& config,
                       const std::vector<std::unique_ptr<Worker>>& workers);

}  // namespace weir::dataplane
