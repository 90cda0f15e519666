// The certificate check of --check-config: every tls listener's certificate chains and keys, and
// its client_ca, read through common/tls_files (the code weir-tls-worker loads them with). Kept
// out of load_file on purpose: the running dataplane loads the configuration too and must never
// read a private key (docs/tls.md). Linked by the checking tools only.
#pragma once

#include <ctime>
#include <vector>

#include "common/ticket_key_wire.h"
#include "config/config.h"

namespace weir::config {

// One Diagnostic per problem, at the place of the `cert`, `key` or `client_ca` value that named
// the file, judged at time `now`.
// Also checks tls.ticket_keys_file (below).
std::vector<Diagnostic> check_certificates(const Config& config, time_t now);

// The problems of tls.ticket_keys_file (common/ticket_key_file.h), if set: a bad line as
// KEYS_FILE:LINE:1, an unreadable or short file at the configuration's `ticket_keys_file`. With
// `keys`, the file's keys go there when there is no problem (encrypting key first).
std::vector<Diagnostic> ticket_keys_file_problems(const Config& config,
                                                  std::vector<ticket_keys::Key>* keys = nullptr);

}  // namespace weir::config
