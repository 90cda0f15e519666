// TLS configuration (config/tls_schema.cc) and the certificate check of --check-config
// (config/certificate_check.cc over common/tls_files.cc), with certificates made at test time.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "common/ticket_key_file.h"
#include "config/certificate_check.h"
#include "config/config.h"
#include "tests/support/test_pki.h"

namespace weir::config {
namespace {

constexpr const char* kHead =
    "dataplane:\n"
    "  eal: [\"--no-pci\", \"--vdev=net_tap0,iface=x\"]\n"
    "  ports:\n"
    "    - { name: p0, device: net_tap0, address: 10.0.0.2/24 }\n"
    "pools:\n"
    "  - { name: kv, backends: [{ name: b1, address: 10.0.0.11, port: 80 }] }\n"
    "  - { name: api, backends: [{ name: b2, address: 10.0.0.12, port: 80 }] }\n";
// Lines 8-9; a case's tls map starts on line 10.
constexpr const char* kListener =
    "listeners:\n"
    "  - { name: secure, address: 10.0.0.100, port: 7443, protocol: tls, pool: kv,\n";

std::vector<std::string> errors_of(const LoadResult& result) {
  std::vector<std::string> lines;
  for (const Diagnostic& d : result.errors) lines.push_back(d.to_string());
  return lines;
}

LoadResult load(const std::string& tail) {
  return load_string(std::string(kHead) + kListener + tail, "t.yaml");
}

TEST(TlsConfig, IssueExampleLoadsWithEveryKey) {
  const LoadResult result =
      load_string(std::string(kHead) +
                      "tls:\n"
                      "  workers: 2\n"
                      "  ticket_key_rotation_s: 43200\n"
                      "  user: weir\n"
                      "listeners:\n"
                      "  - name: secure\n"
                      "    address: 10.0.0.100\n"
                      "    port: 7443\n"
                      "    protocol: tls\n"
                      "    pool: kv\n"
                      "    tls:\n"
                      "      certificates:\n"
                      "        - { cert: /etc/weir/tls/site.pem, key: /etc/weir/tls/site.key }\n"
                      "        - { cert: /etc/weir/tls/api.pem, key: /etc/weir/tls/api.key }\n"
                      "      inner: framed\n"
                      "      sni_pools: { API.example.com: api }\n"
                      "      min_version: \"1.3\"\n"
                      "      client_ca: /etc/weir/tls/clients.pem\n"
                      "      handshake_timeout_ms: 5000\n"
                      "    framed: { max_frame: 4096 }\n",
                  "t.yaml");
  ASSERT_TRUE(result.ok()) << ::testing::PrintToString(errors_of(result));
  const Config& c = *result.config;
  EXPECT_EQ(c.tls.workers, 2u);
  EXPECT_EQ(c.tls.ticket_key_rotation_s, 43200u);
  EXPECT_EQ(c.tls.user, "weir");
  const Listener& l = c.listeners[0];
  EXPECT_EQ(l.protocol, Protocol::tls);
  EXPECT_EQ(l.pool, 0u);
  ASSERT_TRUE(l.tls);
  ASSERT_EQ(l.tls->certificates.size(), 2u);
  EXPECT_EQ(l.tls->certificates[1].key, "/etc/weir/tls/api.key");
  EXPECT_EQ(l.tls->certificates[1].key_at.line, 21);
  EXPECT_EQ(l.tls->certificates[1].key_at.path, "listeners[0].tls.certificates[1].key");
  EXPECT_EQ(l.tls->inner, TlsInner::framed);
  ASSERT_EQ(l.tls->sni_pools.size(), 1u);
  EXPECT_EQ(l.tls->sni_pools[0].server_name, "api.example.com");
  EXPECT_EQ(l.tls->sni_pools[0].pool, 1u);
  EXPECT_EQ(l.tls->min_version, TlsVersion::v1_3);
  EXPECT_EQ(l.tls->client_ca, "/etc/weir/tls/clients.pem");
  EXPECT_EQ(l.tls->handshake_timeout_ms, 5000u);
  ASSERT_TRUE(l.framed);
  EXPECT_EQ(l.framed->max_frame, 4096u);
}

TEST(TlsConfig, DefaultsWhenOnlyCertificatesAreGiven) {
  const LoadResult result =
      load("      tls: { certificates: [{ cert: /c.pem, key: /k.pem }] } }\n");
  ASSERT_TRUE(result.ok()) << ::testing::PrintToString(errors_of(result));
  const Config& c = *result.config;
  EXPECT_EQ(c.tls.workers, kDefaultTlsWorkers);
  EXPECT_EQ(c.tls.ticket_key_rotation_s, kDefaultTicketKeyRotationS);
  EXPECT_FALSE(c.tls.user);
  const ListenerTls& tls = *c.listeners[0].tls;
  EXPECT_EQ(tls.inner, TlsInner::tcp);
  EXPECT_EQ(tls.min_version, TlsVersion::v1_2);
  EXPECT_EQ(tls.handshake_timeout_ms, kDefaultHandshakeTimeoutMs);
  EXPECT_FALSE(c.listeners[0].framed) << "inner tcp carries bytes, not frames";
}

TEST(TlsConfig, ErrorsNameThePlace) {
  EXPECT_EQ(
      errors_of(load("      tls: { certificates: [{ cert: c.pem }], inner: udp, min_version: 1.1,\n"
                     "             sni_pools: { a.example: kv, A.Example: api, -x.example: kv,\n"
                     "                          b.example: nope },\n"
                     "             handshake_timeout_ms: 5, colour: red } }\n"
                     "tls: { workers: 0, ticket_key_rotation_s: 10 }\n")),
      (std::vector<std::string>{
          "t.yaml:10:29: listeners[0].tls.certificates[0].key: missing required key; expected a "
          "string",
          "t.yaml:10:37: listeners[0].tls.certificates[0].cert: \"c.pem\" must be an absolute path",
          "t.yaml:10:54: listeners[0].tls.inner: unknown value \"udp\"; allowed: tcp, framed",
          "t.yaml:10:72: listeners[0].tls.min_version: unknown value \"1.1\"; allowed: 1.2, 1.3",
          "t.yaml:11:42: listeners[0].tls.sni_pools.A.Example: \"A.Example\" is given twice "
          "(server names are compared in lower case)",
          "t.yaml:11:58: listeners[0].tls.sni_pools.-x.example: \"-x.example\" has a label that "
          "starts or ends with '-'",
          "t.yaml:12:38: listeners[0].tls.sni_pools.b.example: no pool named \"nope\"; defined "
          "pools: api, kv",
          "t.yaml:13:36: listeners[0].tls.handshake_timeout_ms: 5 is out of range; allowed: "
          "[100, 600000]",
          "t.yaml:13:39: listeners[0].tls.colour: unknown key; allowed here: certificates, inner, "
          "sni_pools, min_version, client_ca, handshake_timeout_ms",
          "t.yaml:14:17: tls.workers: 0 is out of range; allowed: [1, 64]",
          "t.yaml:14:43: tls.ticket_key_rotation_s: 10 is out of range; allowed: [60, 604800]",
      }));
}

TEST(TlsConfig, ProtocolSpecificKeysFollowInner) {
  // inner tcp: no framed map; inner framed: no PROXY header; other protocols: no tls map.
  EXPECT_EQ(errors_of(load("      tls: { certificates: [{ cert: /c, key: /k }] },\n"
                           "      framed: { max_frame: 10 } }\n")),
            (std::vector<std::string>{
                "t.yaml:11:7: listeners[0].framed: framed settings apply only to protocol "
                "framed, or tls with inner: framed (this listener is tls)"}));
  EXPECT_EQ(errors_of(load("      tls: { certificates: [{ cert: /c, key: /k }], inner: framed },\n"
                           "      proxy_protocol: v2 }\n")),
            (std::vector<std::string>{
                "t.yaml:11:7: listeners[0].proxy_protocol: a PROXY protocol header applies only "
                "to protocol tcp, or tls with inner: tcp (this listener is tls)"}));
  EXPECT_EQ(errors_of(load_string(std::string(kHead) +
                                      "listeners:\n"
                                      "  - { name: e, address: 10.0.0.100, port: 7, protocol: "
                                      "echo, tls: {} }\n",
                                  "t.yaml")),
            (std::vector<std::string>{"t.yaml:9:62: listeners[0].tls: tls settings apply only to "
                                      "protocol tls (this listener is echo)"}));
  EXPECT_EQ(errors_of(load("    }\n")),
            (std::vector<std::string>{
                "t.yaml:9:5: listeners[0].tls: missing required key; expected a map with "
                "certificates"}));
}

// ---- the certificate check -------------------------------------------------------------------

class CertificateCheck : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = test::issue({"Test Root", {}, true}, nullptr);
    intermediate_ = test::issue({"Test Intermediate", {}, true}, &root_);
    leaf_ = test::issue({"site.example", {"site.example"}}, &intermediate_);
    test::write_pem(dir_.path() / "chain.pem", {leaf_.cert.get(), intermediate_.cert.get()});
    test::write_pem(dir_.path() / "site.key", leaf_.key.get());
    test::write_pem(dir_.path() / "root.pem", {root_.cert.get()});
  }

  std::vector<std::string> check(const std::string& cert, const std::string& key,
                                 const std::string& client_ca = "") {
    const std::string text = std::string(kHead) + kListener +
                             "      tls: { certificates: [{ cert: " + cert +
                             ",\n                        key: " + key + " }]" +
                             (client_ca.empty() ? "" : ", client_ca: " + client_ca) + " } }\n";
    const LoadResult result = load_string(text, "t.yaml");
    EXPECT_TRUE(result.ok()) << ::testing::PrintToString(errors_of(result));
    if (!result.ok()) return {"not loaded"};
    std::vector<std::string> lines;
    for (const Diagnostic& d : check_certificates(*result.config, std::time(nullptr)))
      lines.push_back(d.to_string());
    return lines;
  }

  test::TempDir dir_;
  test::Issued root_, intermediate_, leaf_;
};

TEST_F(CertificateCheck, AGoodChainPasses) {
  EXPECT_EQ(check(dir_.file("chain.pem"), dir_.file("site.key"), dir_.file("root.pem")),
            std::vector<std::string>{});
}

TEST_F(CertificateCheck, UnreadableFilesAreNamedAtTheirKeys) {
  const auto errors = check(dir_.file("absent.pem"), dir_.file("absent.key"));
  ASSERT_EQ(errors.size(), 2u);
  EXPECT_EQ(errors[0].rfind("t.yaml:10:37: listeners[0].tls.certificates[0].cert: cannot read", 0),
            0u)
      << errors[0];
  EXPECT_NE(errors[0].find("No such file or directory"), std::string::npos) << errors[0];
  EXPECT_EQ(errors[1].rfind("t.yaml:11:30: listeners[0].tls.certificates[0].key: cannot read", 0),
            0u)
      << errors[1];
}

TEST_F(CertificateCheck, GarbageIsNotACertificateOrKey) {
  std::FILE* f = std::fopen(dir_.file("garbage").c_str(), "w");
  std::fputs("not a PEM file\n", f);
  std::fclose(f);
  const auto errors = check(dir_.file("garbage"), dir_.file("garbage"));
  ASSERT_EQ(errors.size(), 2u);
  EXPECT_NE(errors[0].find("holds no PEM certificate"), std::string::npos) << errors[0];
  EXPECT_NE(errors[1].find("holds no usable private key"), std::string::npos) << errors[1];
}

TEST_F(CertificateCheck, AKeyOfAnotherCertificateIsRefused) {
  test::write_pem(dir_.path() / "other.key", intermediate_.key.get());
  const auto errors = check(dir_.file("chain.pem"), dir_.file("other.key"));
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].rfind("t.yaml:11:30: listeners[0].tls.certificates[0].key: ", 0), 0u);
  EXPECT_NE(errors[0].find("is not the key of the certificate in"), std::string::npos) << errors[0];
}

TEST_F(CertificateCheck, ExpiredAndNotYetValidAreRefused) {
  const test::Issued expired =
      test::issue({"old.example", {"old.example"}, false, -7200, -3600}, &intermediate_);
  test::write_pem(dir_.path() / "old.pem", {expired.cert.get(), intermediate_.cert.get()});
  test::write_pem(dir_.path() / "old.key", expired.key.get());
  auto errors = check(dir_.file("old.pem"), dir_.file("old.key"));
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_NE(errors[0].find("certificate 1 (/CN=old.example) has expired"), std::string::npos)
      << errors[0];
  const test::Issued future =
      test::issue({"new.example", {"new.example"}, false, 3600, 7200}, &intermediate_);
  test::write_pem(dir_.path() / "new.pem", {future.cert.get()});
  test::write_pem(dir_.path() / "new.key", future.key.get());
  errors = check(dir_.file("new.pem"), dir_.file("new.key"));
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_NE(errors[0].find("is not valid yet"), std::string::npos) << errors[0];
}

TEST_F(CertificateCheck, ChainOutOfOrderIsRefused) {
  test::write_pem(dir_.path() / "reversed.pem", {intermediate_.cert.get(), leaf_.cert.get()});
  test::write_pem(dir_.path() / "intermediate.key", intermediate_.key.get());
  const auto errors = check(dir_.file("reversed.pem"), dir_.file("intermediate.key"));
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_NE(errors[0].find("certificate 2 (/CN=site.example) did not issue certificate 1 "
                           "(/CN=Test Intermediate); the file must hold the leaf first"),
            std::string::npos)
      << errors[0];
  // The same names in the right order but the wrong issuer's signature: a look-alike.
  const test::Issued impostor = test::issue({"Test Intermediate", {}, true}, nullptr);
  test::write_pem(dir_.path() / "impostor.pem", {leaf_.cert.get(), impostor.cert.get()});
  EXPECT_EQ(check(dir_.file("impostor.pem"), dir_.file("site.key")).size(), 1u);
}

TEST_F(CertificateCheck, ClientCaMustBeACaCertificate) {
  const auto errors = check(dir_.file("chain.pem"), dir_.file("site.key"), dir_.file("chain.pem"));
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_NE(errors[0].find("listeners[0].tls.client_ca: "), std::string::npos) << errors[0];
  EXPECT_NE(errors[0].find("certificate 1 (/CN=site.example) is not a CA certificate"),
            std::string::npos)
      << errors[0];
}

// The one matcher weir-tls-worker and weir-dataplane share: exact names in lower case, a
// wildcard for exactly one label, the first entry that matches, and nothing for no name.
TEST(MatchSniPool, ExactWildcardFirstAndNone) {
  const std::vector<SniPool> routes = {
      {"a.example", 1}, {"*.b.example", 2}, {"x.b.example", 3}, {"*.example", 4}};
  EXPECT_EQ(match_sni_pool(routes, "a.example"), 0u);
  EXPECT_EQ(match_sni_pool(routes, "A.Example"), 0u);
  EXPECT_EQ(match_sni_pool(routes, "x.b.example"), 1u);  // the wildcard comes first
  EXPECT_EQ(match_sni_pool(routes, "c.example"), 3u);
  EXPECT_EQ(match_sni_pool(routes, "b.example"), 3u);                // "*.b.example" needs a label
  EXPECT_EQ(match_sni_pool(routes, "y.x.b.example"), std::nullopt);  // ... exactly one
  EXPECT_EQ(match_sni_pool(routes, ".b.example"), std::nullopt);     // ... not an empty one
  EXPECT_EQ(match_sni_pool(routes, "example"), std::nullopt);
  EXPECT_EQ(match_sni_pool(routes, "a.example.evil"), std::nullopt);
  EXPECT_EQ(match_sni_pool(routes, ""), std::nullopt);
  EXPECT_EQ(match_sni_pool({}, "a.example"), std::nullopt);
}

// ---- tls.ticket_keys_file (common/ticket_key_file.h) -----------------------------------------

// After the tls section: a listener, which a configuration must have.
constexpr const char* kPlainListener =
    "listeners:\n  - { name: plain, address: 10.0.0.100, port: 80, protocol: tcp, pool: kv }\n";

// A key line: 80 bytes whose name starts with `tag` (so tests can tell keys apart), in base64.
std::string key_line(uint8_t tag, size_t bytes = ticket_keys::kKeyBytes) {
  std::string raw(bytes, '\0');
  for (size_t i = 0; i < bytes; ++i) raw[i] = static_cast<char>(tag + i);
  return test::base64(raw);
}

TEST(TicketKeyFile, ThePenultimateOfTheLastThreeEncryptsAndAllThreeDecrypt) {
  const std::string text = "# shared by every box\n\n" + key_line(10) + "\n" + key_line(20) +
                           "\r\n  " + key_line(30) + "  \n" + key_line(40) + "\n";
  const ticket_key_file::Parsed parsed = ticket_key_file::parse(text);
  ASSERT_TRUE(parsed.ok()) << parsed.problems[0].message;
  ASSERT_EQ(parsed.keys.size(), 3u);
  EXPECT_EQ(parsed.keys[0].name[0], 30) << "the penultimate encrypts";
  EXPECT_EQ(parsed.keys[1].name[0], 40);
  EXPECT_EQ(parsed.keys[2].name[0], 20) << "the first line is beyond the last three";
  // The three parts of a line, in HAProxy's order: name, AES key, HMAC key.
  EXPECT_EQ(parsed.keys[0].aes[0], 30 + 16);
  EXPECT_EQ(parsed.keys[0].hmac[31], 30 + 79);
}

TEST(TicketKeyFile, BadLinesAreNamedByTheirLineAndNothingIsUsed) {
  const std::string text = key_line(1) + "\nnot base64!\n" + key_line(2, 48) + "\n" + key_line(3) +
                           "\n" + key_line(4) + "\n";
  const ticket_key_file::Parsed parsed = ticket_key_file::parse(text);
  EXPECT_TRUE(parsed.keys.empty());
  ASSERT_EQ(parsed.problems.size(), 2u);
  EXPECT_EQ(parsed.problems[0].line, 2);
  EXPECT_EQ(parsed.problems[0].message, "not a base64 ticket key");
  EXPECT_EQ(parsed.problems[1].line, 3);
  EXPECT_NE(parsed.problems[1].message.find("48 bytes"), std::string::npos);
}

TEST(TicketKeyFile, FewerThanThreeKeysOrTwoOfOneNameAreRefused) {
  const ticket_key_file::Parsed two = ticket_key_file::parse(key_line(1) + "\n" + key_line(2));
  ASSERT_EQ(two.problems.size(), 1u);
  EXPECT_EQ(two.problems[0].line, 0);
  EXPECT_NE(two.problems[0].message.find("at least 3"), std::string::npos);
  EXPECT_TRUE(two.keys.empty());
  const ticket_key_file::Parsed same =
      ticket_key_file::parse(key_line(1) + "\n" + key_line(2) + "\n" + key_line(1) + "\n");
  ASSERT_EQ(same.problems.size(), 1u);
  EXPECT_TRUE(same.keys.empty());
  EXPECT_FALSE(ticket_key_file::parse("").ok());
}

class TicketKeysFileCheck : public ::testing::Test {
 protected:
  std::vector<std::string> check(const std::string& keys_path) {
    const std::string text =
        std::string(kHead) + "tls:\n  ticket_keys_file: " + keys_path + "\n" + kPlainListener;
    const LoadResult result = load_string(text, "t.yaml");
    EXPECT_TRUE(result.ok()) << ::testing::PrintToString(errors_of(result));
    if (!result.ok()) return {"not loaded"};
    EXPECT_EQ(result.config->tls.ticket_keys_file, keys_path);
    std::vector<std::string> lines;
    for (const Diagnostic& d : ticket_keys_file_problems(*result.config))
      lines.push_back(d.to_string());
    return lines;
  }
  void write(const std::string& name, const std::string& text) {
    std::ofstream(dir_.file(name)) << text;
  }
  test::TempDir dir_;
};

TEST_F(TicketKeysFileCheck, AGoodFilePassesAndABadLineIsPointedAtInTheKeysFile) {
  write("good", key_line(1) + "\n" + key_line(2) + "\n" + key_line(3) + "\n");
  EXPECT_EQ(check(dir_.file("good")), std::vector<std::string>{});
  write("bad", key_line(1) + "\n" + key_line(2) + "\n%%%%\n" + key_line(3) + "\n");
  EXPECT_EQ(check(dir_.file("bad")),
            std::vector<std::string>{dir_.file("bad") +
                                     ":3:1: tls.ticket_keys_file: not a base64 ticket key"});
}

TEST_F(TicketKeysFileCheck, AnUnreadableFileIsNamedAtTheConfigurationKey) {
  const auto errors = check(dir_.file("absent"));
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].rfind("t.yaml:9:21: tls.ticket_keys_file: \"" + dir_.file("absent") +
                                "\": cannot read it: No such file or directory",
                            0),
            0u)
      << errors[0];
}

TEST(TicketKeysFileConfig, ARelativePathIsRefused) {
  const LoadResult result = load_string(
      std::string(kHead) + "tls:\n  ticket_keys_file: keys.txt\n" + kPlainListener, "t.yaml");
  EXPECT_EQ(errors_of(result),
            std::vector<std::string>{
                "t.yaml:9:21: tls.ticket_keys_file: \"keys.txt\" must be an absolute path"});
}

}  // namespace
}  // namespace weir::config
