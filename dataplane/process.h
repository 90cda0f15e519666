// The weir-dataplane process on its main lcore: EAL, mempool, ports, workers, signals, stats.
#pragma once

#include <memory>

#include "config/config.h"

namespace weir::dataplane {

// Runs until SIGTERM or SIGINT. Returns the process exit code: 0 on a clean stop, 1 when the
// dataplane could not start (the reason has been printed).
int run(std::shared_ptr<const config::Config> config);

}  // namespace weir::dataplane
