// The OpenSSL server contexts of one weir-tls-worker: per tls listener, one SSL_CTX per
// certificate (chosen by SNI; the first is the default), with the listener's minimum version and
// optional client-certificate verification. Keys are loaded through common/tls_files, the code
// --check-config checks them with.
#pragma once

#include <openssl/ssl.h>

#include <memory>
#include <string>
#include <vector>

#include "common/tls_files.h"
#include "config/config.h"
#include "tls/ticket_keys.h"

namespace weir::tls {

struct SslCtxFree {
  void operator()(SSL_CTX* ctx) const { SSL_CTX_free(ctx); }
};
using SslCtxPtr = std::unique_ptr<SSL_CTX, SslCtxFree>;

struct ListenerContexts {
  std::string name;
  std::vector<SslCtxPtr> contexts;  // by certificate; [0] is the default
  std::vector<X509*> leaves;        // owned by the contexts; for SNI matching
  std::vector<config::SniPool> sni_pools;
  uint32_t handshake_timeout_ms = config::kDefaultHandshakeTimeoutMs;
};

// The SNI choice for a session, kept on its SSL (ex data) for the handshake_done record.
struct SniChoice {
  int certificate = 0;
  int sni_pool = -1;
};

class Contexts {
 public:
  // With ticket keys of its own; or sharing `keys` with the contexts it replaces on a certificate
  // reload (a ticket issued before the reload resumes after it).
  Contexts() : ticket_keys_(std::make_shared<TicketKeys>()) {}
  explicit Contexts(std::shared_ptr<TicketKeys> keys) : ticket_keys_(std::move(keys)) {}

  // Builds a context per certificate of every tls listener. False, with every problem in
  // `errors`, if any certificate, key or CA file does not load. With `files`, their contents come
  // from there (common/tls_files.h), not from the file system.
  bool load(const config::Config& config, std::vector<std::string>& errors,
            const tls_files::FileContents* files = nullptr);

  const ListenerContexts* find(std::string_view listener) const;
  const std::vector<ListenerContexts>& listeners() const { return listeners_; }

  // The index of the ex-data slot holding a session's SniChoice*.
  static int sni_choice_index();

  // Shared by every context; load() starts them with one key of this process's own. Contexts must
  // not move after load() (the contexts point at it).
  TicketKeys& ticket_keys() { return *ticket_keys_; }
  const std::shared_ptr<TicketKeys>& shared_ticket_keys() const { return ticket_keys_; }

 private:
  std::vector<ListenerContexts> listeners_;
  std::shared_ptr<TicketKeys> ticket_keys_;
};

}  // namespace weir::tls
