// See tls_contexts.h.
#include "tls/tls_contexts.h"

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <ctime>

#include "common/tls_files.h"

namespace weir::tls {

namespace {

constexpr const char* kTls12Ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

// Chooses the certificate (and the SNI pool) from the client's server_name. Runs inside
// SSL_do_handshake, on the listener's default context.
int on_server_name(SSL* ssl, int*, void* arg) {
  const auto* listener = static_cast<const ListenerContexts*>(arg);
  auto* choice = static_cast<SniChoice*>(SSL_get_ex_data(ssl, Contexts::sni_choice_index()));
  const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  if (name == nullptr || choice == nullptr) return SSL_TLSEXT_ERR_OK;
  std::string lower(name);
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (const auto entry = config::match_sni_pool(listener->sni_pools, lower))
    choice->sni_pool = static_cast<int>(*entry);
  for (size_t i = 0; i < listener->leaves.size(); ++i) {
    if (X509_check_host(listener->leaves[i], lower.c_str(), lower.size(), 0, nullptr) == 1) {
      choice->certificate = static_cast<int>(i);
      if (i != 0) SSL_set_SSL_CTX(ssl, listener->contexts[i].get());
      break;
    }
  }
  return SSL_TLSEXT_ERR_OK;
}

SslCtxPtr make_context(const config::ListenerTls& tls, tls_files::CertifiedKey& certified,
                       const std::vector<tls_files::X509Ptr>& client_ca,
                       std::vector<std::string>& errors, const std::string& where) {
  SslCtxPtr ctx(SSL_CTX_new(TLS_server_method()));
  if (!ctx) {
    errors.push_back(where + ": SSL_CTX_new: " + tls_files::last_openssl_error());
    return nullptr;
  }
  SSL_CTX_set_min_proto_version(
      ctx.get(), tls.min_version == config::TlsVersion::v1_3 ? TLS1_3_VERSION : TLS1_2_VERSION);
  // TLS 1.2 suites: forward secrecy and an AEAD only (Mozilla's "intermediate" list without DHE,
  // which would need DH parameters): OpenSSL's default would also offer CBC with SHA-1, CAMELLIA
  // and ARIA, which scanners rate weak or obsolete. TLS 1.3's suites are all AEAD already.
  if (SSL_CTX_set_cipher_list(ctx.get(), kTls12Ciphers) != 1) {
    errors.push_back(where + ": SSL_CTX_set_cipher_list: " + tls_files::last_openssl_error());
    return nullptr;
  }
  // Renegotiation is refused (issue 14: a client-initiated renegotiation is a classic DoS lever).
  SSL_CTX_set_options(ctx.get(), SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  // Memory BIOs: nothing blocks, and the worker hands whole records to the ring.
  SSL_CTX_set_mode(ctx.get(), SSL_MODE_RELEASE_BUFFERS);
  // Resumption with client certificates needs a session id context (OpenSSL refuses to resume
  // without one when peers are verified); the same for every worker, so tickets travel.
  static const unsigned char kSessionContext[] = "weir-tls";
  SSL_CTX_set_session_id_context(ctx.get(), kSessionContext, sizeof kSessionContext - 1);
  if (SSL_CTX_use_certificate(ctx.get(), certified.chain[0].get()) != 1 ||
      SSL_CTX_use_PrivateKey(ctx.get(), certified.key.get()) != 1) {
    errors.push_back(where + ": " + tls_files::last_openssl_error());
    return nullptr;
  }
  for (size_t i = 1; i < certified.chain.size(); ++i)
    SSL_CTX_add1_chain_cert(ctx.get(), certified.chain[i].get());
  if (!client_ca.empty()) {
    X509_STORE* store = SSL_CTX_get_cert_store(ctx.get());
    for (const auto& ca : client_ca) X509_STORE_add_cert(store, ca.get());
    SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  }
  return ctx;
}

}  // namespace

int Contexts::sni_choice_index() {
  static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

bool Contexts::load(const config::Config& config, std::vector<std::string>& errors,
                    const tls_files::FileContents* files) {
  const size_t errors_before = errors.size();
  listeners_.clear();
  listeners_.reserve(config.listeners.size());
  for (const config::Listener& listener : config.listeners) {
    if (!listener.tls) continue;
    ListenerContexts out;
    out.name = listener.name;
    out.sni_pools = listener.tls->sni_pools;
    out.handshake_timeout_ms = listener.tls->handshake_timeout_ms;
    std::vector<tls_files::X509Ptr> client_ca;
    if (listener.tls->client_ca) {
      client_ca = tls_files::load_ca_bundle(*listener.tls->client_ca, errors, files);
    }
    for (const config::TlsCertificate& entry : listener.tls->certificates) {
      tls_files::Loaded loaded =
          tls_files::load_certified_key(entry.cert, entry.key, std::time(nullptr), files);
      const std::string where = "listener \"" + listener.name + "\"";
      if (!loaded.ok()) {
        for (const auto& problem : loaded.problems)
          errors.push_back(where + ": " + problem.message);
        continue;
      }
      SslCtxPtr ctx = make_context(*listener.tls, loaded.certified, client_ca, errors, where);
      if (!ctx) continue;
      out.leaves.push_back(SSL_CTX_get0_certificate(ctx.get()));
      out.contexts.push_back(std::move(ctx));
    }
    listeners_.push_back(std::move(out));
  }
  if (ticket_keys_->size() == 0) ticket_keys_->rotate(TicketKeys::generate());
  // The callback's argument points into listeners_, which no longer moves.
  for (ListenerContexts& listener : listeners_) {
    for (const SslCtxPtr& ctx : listener.contexts) ticket_keys_->install(ctx.get());
    if (listener.contexts.empty()) continue;
    SSL_CTX_set_tlsext_servername_callback(listener.contexts[0].get(), on_server_name);
    SSL_CTX_set_tlsext_servername_arg(listener.contexts[0].get(), &listener);
  }
  return errors.size() == errors_before;
}

const ListenerContexts* Contexts::find(std::string_view listener) const {
  for (const ListenerContexts& l : listeners_) {
    if (l.name == listener && !l.contexts.empty()) return &l;
  }
  return nullptr;
}

}  // namespace weir::tls
