// Certificate and key files: see tls_files.h.
#include "common/tls_files.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <cerrno>
#include <cstring>

namespace weir::tls_files {

namespace {

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
using BioPtr = std::unique_ptr<BIO, BioFree>;

// A key file with a passphrase cannot be loaded by a daemon without a prompt: refuse it.
int no_passphrase(char*, int, int, void*) {
  return -1;
}

BioPtr open_file(const std::string& path, std::string& problem,
                 const FileContents* files = nullptr) {
  if (files != nullptr) {
    const auto found = files->find(path);
    BioPtr bio(found == files->end()
                   ? nullptr
                   : BIO_new_mem_buf(found->second.data(), static_cast<int>(found->second.size())));
    if (!bio) problem = "cannot read \"" + path + "\": not handed over with the reload";
    return bio;
  }
  errno = 0;
  BioPtr bio(BIO_new_file(path.c_str(), "r"));
  if (!bio) {
    ERR_clear_error();
    problem = "cannot read \"" + path + "\": " + (errno ? std::strerror(errno) : "unknown error");
  }
  return bio;
}

// Every PEM certificate in `bio`, in file order; a parse error after the first is a problem.
std::vector<X509Ptr> read_certificates(BIO* bio, const std::string& path, std::string& problem) {
  std::vector<X509Ptr> certificates;
  while (X509* x = PEM_read_bio_X509(bio, nullptr, no_passphrase, nullptr))
    certificates.emplace_back(x);
  const unsigned long error = ERR_peek_last_error();
  if (ERR_GET_LIB(error) == ERR_LIB_PEM && ERR_GET_REASON(error) == PEM_R_NO_START_LINE) {
    ERR_clear_error();  // the normal end of the file
  } else if (error != 0) {
    problem = "\"" + path + "\": certificate " + std::to_string(certificates.size() + 1) +
              " does not parse: " + last_openssl_error();
    return certificates;
  }
  if (certificates.empty())
    problem = "\"" + path + "\" holds no PEM certificate (-----BEGIN CERTIFICATE-----)";
  return certificates;
}

std::string subject_of(const X509* x) {
  char buffer[256];
  X509_NAME_oneline(X509_get_subject_name(x), buffer, sizeof buffer);
  return buffer;
}

time_t to_time_t(const ASN1_TIME* t) {
  struct tm tm {};
  if (ASN1_TIME_to_tm(t, &tm) != 1) return 0;
  return timegm(&tm);
}

time_t earliest_not_after(const std::vector<X509Ptr>& chain) {
  time_t earliest = 0;
  for (size_t i = 0; i < chain.size(); ++i) {
    const time_t expiry = to_time_t(X509_get0_notAfter(chain[i].get()));
    if (i == 0 || expiry < earliest) earliest = expiry;
  }
  return earliest;
}

void check_validity(const std::vector<X509Ptr>& chain, const std::string& path, time_t now,
                    Loaded& out) {
  for (size_t i = 0; i < chain.size(); ++i) {
    const std::string which = "\"" + path + "\": certificate " + std::to_string(i + 1) + " (" +
                              subject_of(chain[i].get()) + ")";
    time_t moment = now;
    if (X509_cmp_time(X509_get0_notAfter(chain[i].get()), &moment) < 0) {
      out.problems.push_back({File::cert, which + " has expired"});
    } else if (X509_cmp_time(X509_get0_notBefore(chain[i].get()), &moment) > 0) {
      out.problems.push_back(
          {File::cert, which + " is not valid yet (notBefore is in the future)"});
    }
  }
  out.certified.earliest_expiry = earliest_not_after(chain);
}

void check_order(const std::vector<X509Ptr>& chain, const std::string& path, Loaded& out) {
  for (size_t i = 0; i + 1 < chain.size(); ++i) {
    X509* child = chain[i].get();
    X509* issuer = chain[i + 1].get();
    const bool named =
        X509_NAME_cmp(X509_get_issuer_name(child), X509_get_subject_name(issuer)) == 0;
    EVP_PKEY* issuer_key = X509_get0_pubkey(issuer);
    const bool signed_by = named && issuer_key && X509_verify(child, issuer_key) == 1;
    ERR_clear_error();
    if (!signed_by) {
      out.problems.push_back(
          {File::cert, "\"" + path + "\": certificate " + std::to_string(i + 2) + " (" +
                           subject_of(issuer) + ") did not issue certificate " +
                           std::to_string(i + 1) + " (" + subject_of(child) +
                           "); the file must hold the leaf first, each certificate followed by "
                           "its issuer"});
      return;
    }
  }
}

}  // namespace

std::string last_openssl_error() {
  const unsigned long error = ERR_peek_last_error();
  ERR_clear_error();
  if (error == 0) return "unknown error";
  char buffer[256];
  ERR_error_string_n(error, buffer, sizeof buffer);
  return buffer;
}

Loaded load_certified_key(const std::string& cert_path, const std::string& key_path, time_t now,
                          const FileContents* files) {
  Loaded out;
  std::string problem;
  if (BioPtr bio = open_file(cert_path, problem, files)) {
    out.certified.chain = read_certificates(bio.get(), cert_path, problem);
  }
  if (!problem.empty()) out.problems.push_back({File::cert, problem});
  problem.clear();
  if (BioPtr bio = open_file(key_path, problem, files)) {
    out.certified.key.reset(PEM_read_bio_PrivateKey(bio.get(), nullptr, no_passphrase, nullptr));
    if (!out.certified.key) {
      problem = "\"" + key_path +
                "\" holds no usable private key (PEM, unencrypted): " + last_openssl_error();
    }
  }
  if (!problem.empty()) out.problems.push_back({File::key, problem});
  if (out.certified.chain.empty()) return out;
  check_validity(out.certified.chain, cert_path, now, out);
  check_order(out.certified.chain, cert_path, out);
  if (out.certified.key) {
    EVP_PKEY* public_key = X509_get0_pubkey(out.certified.chain[0].get());
    if (!public_key || EVP_PKEY_eq(public_key, out.certified.key.get()) != 1) {
      out.problems.push_back(
          {File::key, "\"" + key_path + "\" is not the key of the certificate in \"" + cert_path +
                          "\" (" + subject_of(out.certified.chain[0].get()) + ")"});
    }
    ERR_clear_error();
  }
  return out;
}

time_t read_chain_expiry(const std::string& cert_path, std::string& problem) {
  problem.clear();
  BioPtr bio = open_file(cert_path, problem);
  if (!bio) return 0;
  const std::vector<X509Ptr> chain = read_certificates(bio.get(), cert_path, problem);
  if (!problem.empty()) return 0;
  return earliest_not_after(chain);
}

std::vector<X509Ptr> load_ca_bundle(const std::string& path, std::vector<std::string>& problems,
                                    const FileContents* files) {
  std::string problem;
  std::vector<X509Ptr> certificates;
  if (BioPtr bio = open_file(path, problem, files))
    certificates = read_certificates(bio.get(), path, problem);
  if (!problem.empty()) problems.push_back(problem);
  for (size_t i = 0; i < certificates.size(); ++i) {
    if (X509_check_ca(certificates[i].get()) == 0) {
      problems.push_back("\"" + path + "\": certificate " + std::to_string(i + 1) + " (" +
                         subject_of(certificates[i].get()) + ") is not a CA certificate");
    }
  }
  return certificates;
}

}  // namespace weir::tls_files
