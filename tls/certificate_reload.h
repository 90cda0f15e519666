// A certificate reload in weir-tls-worker (docs/tls.md, "Certificate reload"): the message
// weir-control sends on the ticket key socket (common/tls_attach.h, kCertificateReload) with the
// fds of the configuration and of every certificate, key and CA file it names. The worker, which
// runs without root by then, reads the files through the fds and builds new contexts; sessions
// already open keep theirs (TlsWorker::use_contexts).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "tls/tls_contexts.h"

namespace weir::tls {

struct CertificateReload {
  uint32_t generation = 0;
  std::shared_ptr<Contexts> contexts;  // null when refused; `errors` say why
  std::vector<std::string> errors;
};

// Builds the contexts of the reload `message` (its magic included), whose files are `fds` (closed
// here, whatever happens). The new contexts share `keys` with the old ones.
CertificateReload load_certificate_reload(std::span<const uint8_t> message, std::vector<int>& fds,
                                          const std::shared_ptr<TicketKeys>& keys);

// The worker's answer to weir-control for `reload`.
std::string certificate_reload_ack(const CertificateReload& reload);

}  // namespace weir::tls
