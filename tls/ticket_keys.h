// Session ticket keys (RFC 5077; TLS 1.3 tickets are the same idea): every ticket is encrypted with
// the newest key, and the last kAccepted keys still decrypt (HAProxy's convention: three), a
// ticket under an older one falls back to a full handshake. The keys come from weir-control,
// rotated every tls.ticket_key_rotation_s and shared by every worker, so a ticket from one worker
// resumes on any (common/ticket_key_wire.h; a worker started without --ticket-keys uses one key
// of its own).
#pragma once

#include <openssl/ssl.h>

#include <array>
#include <cstdint>
#include <deque>
#include <vector>

#include "common/ticket_key_wire.h"

namespace weir::tls {

using TicketKey = ticket_keys::Key;

class TicketKeys {
 public:
  static constexpr size_t kAccepted = ticket_keys::kAccepted;

  // A key from the system's CSPRNG (RAND_bytes).
  static TicketKey generate();

  // Makes `key` the newest; the oldest beyond kAccepted is forgotten (and wiped).
  void rotate(const TicketKey& key);
  // Replaces every key with `newest_first` (weir-control's whole set; beyond kAccepted ignored).
  void replace(const std::vector<TicketKey>& newest_first);
  size_t size() const { return keys_.size(); }

  // Encrypts and decrypts `ctx`'s tickets with these keys (which must outlive it).
  void install(SSL_CTX* ctx);

 private:
  static int callback(SSL* ssl, unsigned char* key_name, unsigned char* iv, EVP_CIPHER_CTX* cipher,
                      EVP_MAC_CTX* mac, int encrypt);
  std::deque<TicketKey> keys_;  // newest first
};

}  // namespace weir::tls
