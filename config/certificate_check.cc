// See certificate_check.h.
#include "config/certificate_check.h"

#include "common/ticket_key_file.h"
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
  // The shared ticket keys: a bad line is pointed at in the keys file itself.
  if (config.tls.ticket_keys_file) {
    for (const auto& d : ticket_keys_file_problems(config)) errors.push_back(d);
  }
  return errors;
}

std::vector<Diagnostic> ticket_keys_file_problems(const Config& config,
                                                  std::vector<ticket_keys::Key>* keys) {
  std::vector<Diagnostic> errors;
  if (!config.tls.ticket_keys_file) return errors;
  const std::string& path = *config.tls.ticket_keys_file;
  ticket_key_file::Parsed parsed = ticket_key_file::read(path);
  if (keys != nullptr) *keys = std::move(parsed.keys);
  for (const auto& problem : parsed.problems) {
    if (problem.line == 0) {
      errors.push_back(config.tls.ticket_keys_file_at.error(
          config.source, "\"" + path + "\": " + problem.message));
    } else {
      errors.push_back(Diagnostic{path, problem.line, 1, "tls.ticket_keys_file", problem.message});
    }
  }
  return errors;
}

}  // namespace weir::config
