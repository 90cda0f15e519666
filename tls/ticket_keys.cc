// See ticket_keys.h.
#include "tls/ticket_keys.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <cstring>
#include <stdexcept>

namespace weir::tls {

namespace {

int keys_index() {
  static const int index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

// Fetched once: EVP_aes_256_cbc() would make OpenSSL 3 fetch it by name on every ticket (its name
// table lookups and locks showed in the worker's profile, docs/benchmarks.md).
const EVP_CIPHER* ticket_cipher() {
  static EVP_CIPHER* const cipher = EVP_CIPHER_fetch(nullptr, "AES-256-CBC", nullptr);
  return cipher;
}

bool init_mac(EVP_MAC_CTX* mac, const TicketKey& key) {
  char digest[] = "SHA256";
  const OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                               OSSL_PARAM_construct_end()};
  return EVP_MAC_init(mac, key.hmac.data(), key.hmac.size(), params) == 1;
}

}  // namespace

TicketKey TicketKeys::generate() {
  TicketKey key;
  if (RAND_bytes(key.name.data(), key.name.size()) != 1 ||
      RAND_bytes(key.aes.data(), key.aes.size()) != 1 ||
      RAND_bytes(key.hmac.data(), key.hmac.size()) != 1)
    throw std::runtime_error("RAND_bytes failed: no ticket key");
  return key;
}

void TicketKeys::rotate(const TicketKey& key) {
  keys_.push_front(key);
  while (keys_.size() > kAccepted) {
    OPENSSL_cleanse(&keys_.back(), sizeof(TicketKey));
    keys_.pop_back();
  }
}

void TicketKeys::replace(const std::vector<TicketKey>& newest_first) {
  for (TicketKey& key : keys_) OPENSSL_cleanse(&key, sizeof(TicketKey));
  keys_.clear();
  for (size_t i = 0; i < newest_first.size() && i < kAccepted; ++i)
    keys_.push_back(newest_first[i]);
}

void TicketKeys::install(SSL_CTX* ctx) {
  SSL_CTX_set_ex_data(ctx, keys_index(), this);
  SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, callback);
}

// OpenSSL's contract: encrypt: fill key_name and iv, init both contexts, return 1 (0: no ticket).
// Decrypt: find key_name; 0 if unknown (full handshake), 1 if newest, 2 if older (valid, and a
// fresh ticket under the newest key is issued), -1 on error.
int TicketKeys::callback(SSL* ssl, unsigned char* key_name, unsigned char* iv,
                         EVP_CIPHER_CTX* cipher, EVP_MAC_CTX* mac, int encrypt) {
  const auto* self =
      static_cast<const TicketKeys*>(SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), keys_index()));
  if (self == nullptr || self->keys_.empty()) return 0;  // no ticket; no resumption
  if (encrypt) {
    const TicketKey& key = self->keys_.front();
    if (RAND_bytes(iv, EVP_MAX_IV_LENGTH) != 1) return -1;
    std::memcpy(key_name, key.name.data(), key.name.size());
    if (EVP_EncryptInit_ex(cipher, ticket_cipher(), nullptr, key.aes.data(), iv) != 1 ||
        !init_mac(mac, key))
      return -1;
    return 1;
  }
  for (size_t i = 0; i < self->keys_.size(); ++i) {
    const TicketKey& key = self->keys_[i];
    if (std::memcmp(key_name, key.name.data(), key.name.size()) != 0) continue;
    if (!init_mac(mac, key) ||
        EVP_DecryptInit_ex(cipher, ticket_cipher(), nullptr, key.aes.data(), iv) != 1)
      return -1;
    return i == 0 ? 1 : 2;
  }
  return 0;
}

}  // namespace weir::tls
