// See certificate_check.h.
#include "config/certificate_check.h"

#include "common/tls_files.h"

namespace weir::config {

std::vector<Diagnostic> check_certificates(const Config& config, time_t now) {
  std::vector<Diagnostic> errors;
  for (const Listener& listener : config.listeners) {
    if (!listener.tls) continue;
    for (const TlsCertificate& entry : listener.tls->certificates) {
      const tls_files::Loaded loaded = tls_files::load_certified_key(entry.cert, entry.key, now);
      for (const tls_files::Problem& problem : loaded.problems) {
        const Place& at = problem.file == tls_files::File::cert ? entry.cert_at : entry.key_at;
        errors.push_back(at.error(config.source, problem.message));
      }
    }
    if (listener.tls->client_ca) {
      std::vector<std::string> problems;
      tls_files::load_ca_bundle(*listener.tls->client_ca, problems);
      for (const std::string& problem : problems)
        errors.push_back(listener.tls->client_ca_at.error(config.source, problem));
    }
  }
  return errors;
}

}  // namespace weir::config
