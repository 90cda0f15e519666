// Certificates and keys made at test time (ECDSA P-256), never committed: a root CA, an
// intermediate, leaves with DNS names, and the broken files the checks must refuse.
#pragma once

#include <ctime>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "common/tls_files.h"

namespace weir::test {

struct Issued {
  tls_files::X509Ptr cert;
  tls_files::KeyPtr key;
};

struct CertificateSpec {
  std::string common_name;
  std::vector<std::string> dns_names;  // subjectAltName
  bool ca = false;
  long not_before_s = -3600;  // relative to now
  long not_after_s = 86'400;
};

// A new P-256 key and a certificate for it, signed by `issuer` (self-signed when null).
Issued issue(const CertificateSpec& spec, const Issued* issuer);

void write_pem(const std::filesystem::path& path, const std::vector<const X509*>& chain);
void write_pem(const std::filesystem::path& path, const EVP_PKEY* key);

// `bytes` in standard base64 with padding (a tls.ticket_keys_file line).
std::string base64(std::string_view bytes);

// A temporary directory removed with the object.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::filesystem::path& path() const { return path_; }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

}  // namespace weir::test
