// Listeners the configuration accepts and this dataplane cannot serve yet: protocol tls, until the
// TLS workers are wired into the proxy (docs/tls.md, "Status"). Refused aloud at start, at reload
// and by --check-config, never ignored: a tls listener served as plain tcp would hand ciphertext
// to the backend, and one skipped would leave its port answering nothing.
#pragma once

#include <vector>

#include "config/config.h"

namespace weir::dataplane {

inline std::vector<config::Diagnostic> unserved_listeners(const config::Config& config) {
  std::vector<config::Diagnostic> errors;
  for (const config::Listener& listener : config.listeners) {
    if (listener.protocol != config::Protocol::tls) continue;
    errors.push_back(listener.protocol_at.error(
        config.source, "listener \"" + listener.name +
                           "\": protocol tls is not served by this weir-dataplane yet (the TLS "
                           "workers are not wired into the proxy: docs/tls.md); the file is "
                           "otherwise checked, certificates included"));
  }
  return errors;
}

}  // namespace weir::dataplane
