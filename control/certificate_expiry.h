// When each configured certificate expires (issue 16, "certificate expiry"): for every `tls`
// listener, each of its `tls.certificates` chains read with OpenSSL (common/tls_files.h; the
// certificates only, never a key), the soonest notAfter in the chain. weir-control reads them at
// start and on every reload that succeeds and exports them as
// weir_tls_certificate_expiry_timestamp_seconds{listener,certificate} (common/counter_catalogue.h,
// kCertificateGauges), which the WeirCertificateExpiresSoon alert watches
// (docs/prometheus/weir-rules.yml). A chain that cannot be read is exported as 0 (the Unix epoch:
// long expired), so that the alert fires for it instead of its series going silent.
#pragma once

#include <nlohmann/json.hpp>

#include <ctime>

#include "config/config.h"

namespace weir::control {

// [{"listener", "certificate" (the cert file's path as configured), "not_after_unix", and "error"
// when the file could not be read}], in configuration order.
nlohmann::json certificate_expiries(const config::Config& config);

}  // namespace weir::control
