// The certificate check of --check-config: every tls listener's certificate chains and keys, and
// its client_ca, read through common/tls_files (the code weir-tls-worker loads them with). Kept
// out of load_file on purpose: the running dataplane loads the configuration too and must never
// read a private key (docs/tls.md). Linked by the checking tools only.
#pragma once

#include <ctime>
#include <vector>

#include "config/config.h"

namespace weir::config {

// One Diagnostic per problem, at the place of the `cert`, `key` or `client_ca` value that named
// the file, judged at time `now`.
std::vector<Diagnostic> check_certificates(const Config& config, time_t now);

}  // namespace weir::config
