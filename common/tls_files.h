// Certificate chains and private keys in PEM files, read and checked the one way Weir has:
// weir-tls-worker loads them through here, and --check-config checks them through here, so a
// file the check accepts is a file the worker accepts (docs/tls.md). OpenSSL 3 (libcrypto).
#pragma once

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <ctime>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace weir::tls_files {

struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
struct KeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using X509Ptr = std::unique_ptr<X509, X509Free>;
using KeyPtr = std::unique_ptr<EVP_PKEY, KeyFree>;

// Which file a problem is about, so a caller can point at the key that named it.
enum class File { cert, key };

struct Problem {
  File file = File::cert;
  std::string message;
};

struct CertifiedKey {
  std::vector<X509Ptr> chain;  // chain[0] is the leaf, each followed by its issuer
  KeyPtr key;                  // null when only the chain was read
  time_t earliest_expiry = 0;  // the soonest notAfter in the chain (the metric's value)
};

struct Loaded {
  CertifiedKey certified;
  std::vector<Problem> problems;  // empty: every check passed
  bool ok() const { return problems.empty(); }
};

// Files already read, by path: what a worker that dropped root is handed on a certificate reload
// (the fds weir-control opened, read by the worker, control/tls_workers.h). A path not in it
// cannot be read.
using FileContents = std::map<std::string, std::string>;

// Reads `cert_path` (PEM: the leaf, then its intermediates) and `key_path` (PEM, unencrypted) and
// checks: both readable and parseable, at least one certificate, the key belongs to the leaf,
// every certificate valid at `now` (not expired, not before its notBefore), and each certificate
// issued (name and signature) by the one after it.
// With `files`, the contents come from there instead of the file system.
Loaded load_certified_key(const std::string& cert_path, const std::string& key_path, time_t now,
                          const FileContents* files = nullptr);

// When the chain in `cert_path` (PEM) stops being valid: the soonest notAfter of its
// certificates (Unix time), or 0 with `problem` set when the file cannot be read or holds no
// certificate. Reads the certificates only, never a key (weir-control's certificate expiry metric,
// docs/tls.md).
time_t read_chain_expiry(const std::string& cert_path, std::string& problem);

// A bundle of CA certificates (client_ca): readable, at least one PEM certificate, each a CA.
std::vector<X509Ptr> load_ca_bundle(const std::string& path, std::vector<std::string>& problems,
                                    const FileContents* files = nullptr);

// The last OpenSSL error of this thread as text (and the queue cleared), or "unknown error".
std::string last_openssl_error();

}  // namespace weir::tls_files
