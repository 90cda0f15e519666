// The parts of `tls` listeners this dataplane does not serve yet (docs/tls.md, "Status"): `inner:
// framed` (the plaintext through a FrameRelay) and `sni_pools` (routing by SNI). Refused aloud at
// start, at reload and by --check-config, never ignored: frames left unverified, or a backend of
// the wrong pool, would be a silent lie.
#pragma once

#include <vector>

#include "config/config.h"

namespace weir::dataplane {

inline std::vector<config::Diagnostic> unserved_listeners(const config::Config& config) {
  std::vector<config::Diagnostic> errors;
  for (const config::Listener& listener : config.listeners) {
    if (listener.protocol != config::Protocol::tls || !listener.tls) continue;
    const char* part = listener.tls->inner == config::TlsInner::framed ? "tls.inner: framed"
                       : !listener.tls->sni_pools.empty()              ? "tls.sni_pools"
                                                                       : nullptr;
    if (part == nullptr) continue;
    errors.push_back(listener.protocol_at.error(
        config.source, "listener \"" + listener.name + "\": " + part +
                           " is not served by this weir-dataplane yet (docs/tls.md, "
                           "\"Status\"); the file is otherwise checked, certificates included"));
  }
  return errors;
}

}  // namespace weir::dataplane
