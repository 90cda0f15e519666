#include "control/certificate_expiry.h"

#include "common/tls_files.h"

namespace weir::control {

nlohmann::json certificate_expiries(const config::Config& config) {
  nlohmann::json out = nlohmann::json::array();
  for (const config::Listener& listener : config.listeners) {
    if (!listener.tls) continue;
    for (const config::TlsCertificate& certificate : listener.tls->certificates) {
      std::string problem;
      const time_t not_after = tls_files::read_chain_expiry(certificate.cert, problem);
      nlohmann::json entry{
          {"listener", listener.name},
          {"certificate", certificate.cert},
          {"not_after_unix", problem.empty() ? static_cast<int64_t>(not_after) : 0}};
      if (!problem.empty()) entry["error"] = problem;
      out.push_back(std::move(entry));
    }
  }
  return out;
}

}  // namespace weir::control
