// weir-tls-worker's engine (tls/tls_worker.h) driven through a real channel by a harness playing
// the dataplane's side, with real OpenSSL clients over memory BIOs: TLS 1.3 and 1.2 handshakes,
// 1 MB echoed with equal SHA-256, SNI choosing the certificate and pool, and bad input (garbage,
// a truncated record, an oversize record, a silent client) refused, counted, and not noticed by
// the session beside it. The last test runs the weir-tls-worker binary unprivileged.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <openssl/err.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <deque>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "common/ticket_key_file.h"
#include "common/ticket_key_wire.h"
#include "config/config.h"
#include "control/ticket_key_schedule.h"
#include "tests/support/test_pki.h"
#include "tls/privileges.h"
#include "tls/tls_worker.h"

namespace weir::tls {
namespace {

using tls_channel::Kind;
using tls_channel::ResetReason;

// The dataplane's view of one session, and the client at its far end.
struct Client {
  SSL* ssl = nullptr;
  BIO* rbio = nullptr;
  BIO* wbio = nullptr;
  bool done = false;  // handshake_done seen
  tls_channel::HandshakeDone handshake;
  std::optional<ResetReason> reset;
  std::vector<uint8_t> to_backend;  // plaintext the worker handed over
  bool plaintext_end = false, ciphertext_end = false;
};

class Harness {
 public:
  // The worker in this process (`worker` set) or in another one (records are awaited).
  Harness(TlsWorker* worker, shm::ChannelMemory& memory, int worker_event, int own_event)
      : worker_(worker),
        own_event_(own_event),
        out_(memory.writer(shm::Side::a, tls_channel::kMaxRecordPayload, worker_event)),
        in_(memory.reader(shm::Side::a, tls_channel::kMaxRecordPayload, worker_event)) {}

  ~Harness() {
    for (auto& [id, c] : clients_) SSL_free(c.ssl);
    for (SSL_CTX* ctx : client_contexts_) SSL_CTX_free(ctx);
  }

  // A client that trusts `root` and checks the server's name, capped at `max_version`.
  Client& connect(uint64_t id, const std::string& listener, const X509* root,
                  const std::string& sni = "", int max_version = 0, SSL_SESSION* resume = nullptr) {
    SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
    client_contexts_.push_back(ctx);
    X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx), const_cast<X509*>(root));
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
    if (max_version) SSL_CTX_set_max_proto_version(ctx, max_version);
    Client& c = clients_[id];
    c.ssl = SSL_new(ctx);
    c.rbio = BIO_new(BIO_s_mem());
    c.wbio = BIO_new(BIO_s_mem());
    BIO_set_mem_eof_return(c.rbio, -1);
    SSL_set_bio(c.ssl, c.rbio, c.wbio);
    SSL_set_connect_state(c.ssl);
    if (!sni.empty()) {
      SSL_set_tlsext_host_name(c.ssl, sni.c_str());
      SSL_set1_host(c.ssl, sni.c_str());
    }
    if (resume != nullptr) SSL_set_session(c.ssl, resume);
    send(id, Kind::open,
         tls_channel::encode(tls_channel::OpenPayload{0x0a000001, 40000, listener}));
    SSL_do_handshake(c.ssl);
    forward_client_output(id);
    return c;
  }

  void send(uint64_t id, Kind kind, std::span<const uint8_t> payload) {
    ASSERT_TRUE(out_.try_write(id, static_cast<uint16_t>(kind), payload));
  }
  void send_raw_ciphertext(uint64_t id, const std::vector<uint8_t>& bytes) {
    send(id, Kind::ciphertext, bytes);
  }

  // Moves what a client's TLS wrote into ciphertext records.
  void forward_client_output(uint64_t id) {
    Client& c = clients_.at(id);
    std::vector<uint8_t> buffer(tls_channel::kMaxRecordPayload);
    int n;
    while ((n = BIO_read(c.wbio, buffer.data(), static_cast<int>(buffer.size()))) > 0)
      send(id, Kind::ciphertext, std::span(buffer.data(), static_cast<size_t>(n)));
  }

  // Runs the worker (or waits for it) and delivers what it sent, until nothing moves.
  // Another process's worker: publish, wait until it sends something, deliver it.
  bool exchange() {
    out_.publish();
    const bool woken = wait_for_records();
    return deliver() || woken;
  }

  void pump(uint64_t now_ms = 0) {
    for (int quiet = 0; quiet < 2;) {
      out_.publish();
      bool moved = worker_ ? worker_->poll_once(now_ms) : wait_for_records();
      moved = deliver() || moved;
      quiet = moved ? 0 : quiet + 1;
    }
  }

  // The client's side: progress its handshake, read what arrived into `received`.
  void client_step(uint64_t id, std::vector<uint8_t>* received = nullptr) {
    Client& c = clients_.at(id);
    if (!SSL_is_init_finished(c.ssl)) SSL_do_handshake(c.ssl);
    if (received != nullptr && SSL_is_init_finished(c.ssl)) {
      uint8_t buffer[16384];
      int n;
      while ((n = SSL_read(c.ssl, buffer, sizeof buffer)) > 0)
        received->insert(received->end(), buffer, buffer + n);
    }
    forward_client_output(id);
  }

  Client& client(uint64_t id) { return clients_.at(id); }
  shm::RingWriter& out() { return out_; }

 private:
  bool deliver() {
    bool any = false;
    while (const auto record = in_.peek()) {
      any = true;
      Client& c = clients_[record->session];  // raw sessions have no TLS client
      switch (static_cast<Kind>(record->kind)) {
        case Kind::ciphertext:
          BIO_write(c.rbio, record->payload.data(), static_cast<int>(record->payload.size()));
          break;
        case Kind::plaintext:
          c.to_backend.insert(c.to_backend.end(), record->payload.begin(), record->payload.end());
          break;
        case Kind::handshake_done:
          c.done = true;
          c.handshake = *tls_channel::decode_handshake_done(record->payload);
          break;
        case Kind::reset: {
          uint16_t reason;
          std::memcpy(&reason, record->payload.data(), sizeof reason);
          c.reset = static_cast<ResetReason>(reason);
          break;
        }
        case Kind::plaintext_end:
          c.plaintext_end = true;
          break;
        case Kind::ciphertext_end:
          c.ciphertext_end = true;
          break;
        default:
          ADD_FAILURE() << "unexpected record kind " << record->kind;
      }
      in_.pop();
    }
    in_.release();
    EXPECT_FALSE(in_.broken());
    return any;
  }

  // Another process's worker: sleep on our eventfd until it sends (5 s: a failure detector).
  bool wait_for_records() {
    if (!in_.prepare_sleep()) return true;
    pollfd p{own_event_, POLLIN, 0};
    const bool woken = poll(&p, 1, 5000) == 1;
    in_.awake();
    if (woken) {
      uint64_t n;
      EXPECT_EQ(read(own_event_, &n, sizeof n), static_cast<ssize_t>(sizeof n));
    }
    return woken;
  }

  TlsWorker* worker_;
  int own_event_;
  shm::RingWriter out_;
  shm::RingReader in_;
  std::map<uint64_t, Client> clients_;
  std::vector<SSL_CTX*> client_contexts_;
};

std::array<uint8_t, 32> sha256(const std::vector<uint8_t>& bytes) {
  std::array<uint8_t, 32> digest;
  SHA256(bytes.data(), bytes.size(), digest.data());
  return digest;
}

std::string peer_common_name(SSL* ssl) {
  X509* peer = SSL_get1_peer_certificate(ssl);
  if (peer == nullptr) return "";
  char name[256] = {};
  X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName, name, sizeof name);
  X509_free(peer);
  return name;
}

class TlsWorkerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = test::issue({"Test Root", {}, true}, nullptr);
    intermediate_ = test::issue({"Test Intermediate", {}, true}, &root_);
    site_ = test::issue({"site.example", {"site.example"}}, &intermediate_);
    api_ = test::issue({"api.example", {"api.example", "*.api.example"}}, &intermediate_);
    test::write_pem(dir_.path() / "site.pem", {site_.cert.get(), intermediate_.cert.get()});
    test::write_pem(dir_.path() / "site.key", site_.key.get());
    test::write_pem(dir_.path() / "api.pem", {api_.cert.get(), intermediate_.cert.get()});
    test::write_pem(dir_.path() / "api.key", api_.key.get());
    config_text_ =
        "dataplane:\n"
        "  eal: [\"--no-pci\", \"--vdev=net_tap0,iface=x\"]\n"
        "  ports: [{ name: p0, device: net_tap0, address: 10.0.0.2/24 }]\n"
        "pools:\n"
        "  - { name: kv, backends: [{ name: b1, address: 10.0.0.11, port: 80 }] }\n"
        "  - { name: api, backends: [{ name: b2, address: 10.0.0.12, port: 80 }] }\n"
        "listeners:\n"
        "  - name: secure\n"
        "    address: 10.0.0.100\n"
        "    port: 7443\n"
        "    protocol: tls\n"
        "    pool: kv\n"
        "    tls:\n"
        "      certificates:\n"
        "        - { cert: " +
        dir_.file("site.pem") + ", key: " + dir_.file("site.key") +
        " }\n"
        "        - { cert: " +
        dir_.file("api.pem") + ", key: " + dir_.file("api.key") +
        " }\n"
        "      sni_pools: { api.example: api }\n"
        "      handshake_timeout_ms: 1000\n"
        "  - name: modern\n"
        "    address: 10.0.0.100\n"
        "    port: 7444\n"
        "    protocol: tls\n"
        "    pool: kv\n"
        "    tls:\n"
        "      certificates: [{ cert: " +
        dir_.file("site.pem") + ", key: " + dir_.file("site.key") +
        " }]\n"
        "      min_version: \"1.3\"\n";
  }

  // A worker (its contexts, a channel, the harness on the channel's other side).
  struct Instance {
    Contexts contexts;
    std::optional<shm::ChannelMemory> memory;
    std::unique_ptr<TlsWorker> worker;
    std::unique_ptr<Harness> harness;
  };

  void start_instance(Instance& in) {
    const config::LoadResult loaded = config::load_string(config_text_, "t.yaml");
    ASSERT_TRUE(loaded.ok()) << (loaded.errors.empty() ? "" : loaded.errors[0].to_string());
    std::vector<std::string> errors;
    ASSERT_TRUE(in.contexts.load(*loaded.config, errors)) << ::testing::PrintToString(errors);
    std::string error;
    auto memory = shm::ChannelMemory::create(tls_channel::kDefaultRingBytes, error);
    ASSERT_TRUE(memory) << error;
    in.memory = std::move(*memory);
    in.worker = std::make_unique<TlsWorker>(in.contexts);
    // The worker maps its own view, as a worker process does with the fd it is given.
    auto view = shm::ChannelMemory::map(dup(in.memory->fd()), error);
    ASSERT_TRUE(view) << error;
    in.worker->add_channel(std::move(*view), -1);
    in.harness = std::make_unique<Harness>(in.worker.get(), *in.memory, -1, -1);
  }

  void start() {
    start_instance(a_);
    worker_ = a_.worker.get();
    harness_ = a_.harness.get();
  }

  // Handshake to completion on `h`, then the client reads (TLS 1.3 tickets arrive after it).
  void handshake_on(Harness& h, uint64_t id) {
    for (int i = 0; i < 10 && !SSL_is_init_finished(h.client(id).ssl); ++i) {
      h.pump();
      h.client_step(id);
    }
    h.pump();
    std::vector<uint8_t> ignored;
    h.client_step(id, &ignored);
  }

  // Handshake to completion, both sides pumped.
  void handshake(uint64_t id) {
    for (int i = 0; i < 10 && !SSL_is_init_finished(harness_->client(id).ssl); ++i) {
      harness_->pump();
      harness_->client_step(id);
    }
    harness_->pump();
  }

  // `bytes` from the client through the worker to the "backend", which echoes them back through
  // the worker to the client; returns what the client received.
  std::vector<uint8_t> echo(uint64_t id, const std::vector<uint8_t>& bytes) {
    Client& c = harness_->client(id);
    std::vector<uint8_t> received;
    size_t sent = 0, echoed = 0;
    for (int rounds = 0; received.size() < bytes.size() && rounds < 10'000; ++rounds) {
      if (sent < bytes.size()) {
        const size_t n = std::min<size_t>(bytes.size() - sent, 60'000);
        EXPECT_EQ(SSL_write(c.ssl, bytes.data() + sent, static_cast<int>(n)), static_cast<int>(n));
        sent += n;
      }
      harness_->client_step(id);
      harness_->pump();
      while (echoed < c.to_backend.size()) {
        const size_t n = std::min<size_t>(c.to_backend.size() - echoed, 16'384);
        harness_->send(id, Kind::plaintext, std::span(c.to_backend.data() + echoed, n));
        echoed += n;
      }
      harness_->pump();
      harness_->client_step(id, &received);
      if (c.reset) break;
    }
    return received;
  }

  // The weir-tls-worker binary on a channel (and a ticket key socket, if `keys_fd` >= 0), run as
  // tls.user nobody when this test is root.
  struct Process {
    std::optional<shm::ChannelMemory> memory;
    int worker_event = -1, own_event = -1;
    pid_t pid = -1;
    std::unique_ptr<Harness> harness;
    ~Process() {
      if (pid > 0) {
        kill(pid, SIGKILL);
        waitpid(pid, nullptr, 0);
      }
      if (worker_event >= 0) close(worker_event);
      if (own_event >= 0) close(own_event);
    }
  };
  void start_process(Process& p, int keys_fd = -1) {
    if (geteuid() == 0 && config_text_.rfind("tls:", 0) != 0)
      config_text_ = "tls: { user: nobody }\n" + config_text_;
    std::ofstream(dir_.file("weir.yaml")) << config_text_;
    std::string error;
    auto memory = shm::ChannelMemory::create(tls_channel::kDefaultRingBytes, error);
    ASSERT_TRUE(memory) << error;
    p.memory = std::move(*memory);
    p.worker_event = eventfd(0, EFD_NONBLOCK);
    p.own_event = eventfd(0, EFD_NONBLOCK);
    p.pid = fork();
    ASSERT_GE(p.pid, 0);
    if (p.pid == 0) {
      // Keep the fds across exec (CLOEXEC cleared on the memfd).
      fcntl(p.memory->fd(), F_SETFD, 0);
      const std::string channel =
          std::to_string(p.memory->fd()) + "," + std::to_string(p.own_event);
      const std::string config = dir_.file("weir.yaml"), event = std::to_string(p.worker_event),
                        keys = std::to_string(keys_fd);
      if (keys_fd >= 0) {
        fcntl(keys_fd, F_SETFD, 0);
        execl(WEIR_TLS_WORKER, WEIR_TLS_WORKER, "--config", config.c_str(), "--event-fd",
              event.c_str(), "--ticket-keys", keys.c_str(), "--channel", channel.c_str(),
              static_cast<char*>(nullptr));
      } else {
        execl(WEIR_TLS_WORKER, WEIR_TLS_WORKER, "--config", config.c_str(), "--event-fd",
              event.c_str(), "--channel", channel.c_str(), static_cast<char*>(nullptr));
      }
      _exit(127);
    }
    p.harness = std::make_unique<Harness>(nullptr, *p.memory, p.worker_event, p.own_event);
  }

  // A handshake through a worker process, then the client reads its tickets.
  static void handshake_with_process(Harness& h, uint64_t id) {
    for (int i = 0; i < 10 && !h.client(id).done && !h.client(id).reset; ++i) {
      ASSERT_TRUE(h.exchange()) << "the worker process answered nothing within 5 s";
      h.client_step(id);
    }
    std::vector<uint8_t> ignored;
    h.client_step(id, &ignored);
    // TLS 1.3's tickets may come after handshake_done.
    for (int i = 0; i < 10 && SSL_version(h.client(id).ssl) == TLS1_3_VERSION &&
                    SSL_SESSION_is_resumable(SSL_get0_session(h.client(id).ssl)) == 0;
         ++i) {
      ASSERT_TRUE(h.exchange()) << "no ticket within 5 s";
      h.client_step(id, &ignored);
    }
  }

  test::TempDir dir_;
  test::Issued root_, intermediate_, site_, api_;
  std::string config_text_;
  Instance a_;
  TlsWorker* worker_ = nullptr;
  Harness* harness_ = nullptr;
};

std::vector<uint8_t> random_bytes(size_t n, uint32_t seed) {
  std::vector<uint8_t> bytes(n);
  for (size_t i = 0; i < n; ++i) {
    seed = seed * 1'664'525u + 1'013'904'223u;
    bytes[i] = static_cast<uint8_t>(seed >> 24);
  }
  return bytes;
}

TEST_F(TlsWorkerTest, Tls13HandshakeAndAMegabyteEchoedIntact) {
  start();
  harness_->connect(1, "secure", root_.cert.get(), "site.example");
  handshake(1);
  Client& c = harness_->client(1);
  ASSERT_TRUE(c.done);
  EXPECT_EQ(c.handshake.version, TLS1_3_VERSION);
  EXPECT_EQ(SSL_get_verify_result(c.ssl), X509_V_OK) << "the chain and name verify";
  const std::vector<uint8_t> sent = random_bytes(1 << 20, 1);
  const std::vector<uint8_t> received = echo(1, sent);
  EXPECT_FALSE(c.reset);
  EXPECT_EQ(c.to_backend.size(), sent.size());
  EXPECT_EQ(sha256(c.to_backend), sha256(sent)) << "the backend saw the client's bytes";
  EXPECT_EQ(sha256(received), sha256(sent)) << "the client got its bytes back";
  EXPECT_EQ(worker_->counters().handshakes_tls13, 1u);
  EXPECT_EQ(worker_->counters().plaintext_out, sent.size());
}

TEST_F(TlsWorkerTest, Tls12HandshakeAndEchoAndMinVersion) {
  start();
  harness_->connect(1, "secure", root_.cert.get(), "site.example", TLS1_2_VERSION);
  handshake(1);
  ASSERT_TRUE(harness_->client(1).done);
  EXPECT_EQ(harness_->client(1).handshake.version, TLS1_2_VERSION);
  const std::vector<uint8_t> sent = random_bytes(100'000, 2);
  EXPECT_EQ(echo(1, sent), sent);
  EXPECT_EQ(worker_->counters().handshakes_tls12, 1u);
  // min_version "1.3": a TLS 1.2 client is refused with an alert, and counted.
  harness_->connect(2, "modern", root_.cert.get(), "site.example", TLS1_2_VERSION);
  handshake(2);
  EXPECT_EQ(harness_->client(2).reset, ResetReason::handshake_failed);
  EXPECT_FALSE(harness_->client(2).done);
  EXPECT_EQ(worker_->counters().reset(ResetReason::handshake_failed), 1u);
  EXPECT_EQ(worker_->sessions(), 1u) << "session 1 lives on";
}

TEST_F(TlsWorkerTest, SniChoosesTheCertificateAndThePool) {
  start();
  harness_->connect(1, "secure", root_.cert.get(), "api.example");
  harness_->connect(2, "secure", root_.cert.get(), "site.example");
  harness_->connect(3, "secure", root_.cert.get());  // no SNI: the first certificate
  harness_->connect(4, "secure", root_.cert.get(), "v2.api.example");  // the wildcard SAN
  for (uint64_t id = 1; id <= 4; ++id) handshake(id);
  const Client& api = harness_->client(1);
  ASSERT_TRUE(api.done);
  EXPECT_EQ(peer_common_name(api.ssl), "api.example");
  EXPECT_EQ(SSL_get_verify_result(api.ssl), X509_V_OK);
  EXPECT_EQ(api.handshake.sni_pool, 0) << "sni_pools[0]: api.example -> api";
  EXPECT_EQ(api.handshake.server_name, "api.example");
  EXPECT_EQ(peer_common_name(harness_->client(2).ssl), "site.example");
  EXPECT_EQ(harness_->client(2).handshake.sni_pool, tls_channel::kNoSniPool);
  EXPECT_EQ(peer_common_name(harness_->client(3).ssl), "site.example");
  EXPECT_EQ(peer_common_name(harness_->client(4).ssl), "api.example");
  EXPECT_EQ(harness_->client(4).handshake.sni_pool, tls_channel::kNoSniPool)
      << "sni_pools names api.example only";
}

TEST_F(TlsWorkerTest, GarbageInsteadOfAClientHelloIsRefusedAndCounted) {
  start();
  harness_->connect(1, "secure", root_.cert.get(), "site.example");
  handshake(1);
  harness_->send(2, Kind::open, tls_channel::encode(tls_channel::OpenPayload{1, 2, "secure"}));
  const std::string http = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  harness_->send_raw_ciphertext(2, std::vector<uint8_t>(http.begin(), http.end()));
  harness_->send(3, Kind::open, tls_channel::encode(tls_channel::OpenPayload{1, 3, "nowhere"}));
  harness_->pump();
  EXPECT_EQ(worker_->counters().reset(ResetReason::not_tls), 1u);
  EXPECT_EQ(worker_->counters().reset(ResetReason::unknown_listener), 1u);
  EXPECT_EQ(worker_->sessions(), 1u);
  const std::vector<uint8_t> sent = random_bytes(50'000, 3);
  EXPECT_EQ(echo(1, sent), sent) << "the session beside it noticed nothing";
}

TEST_F(TlsWorkerTest, TruncatedAndOversizeRecordsEndOnlyTheirSession) {
  start();
  for (uint64_t id = 1; id <= 3; ++id) {
    harness_->connect(id, "secure", root_.cert.get(), "site.example");
    handshake(id);
    ASSERT_TRUE(harness_->client(id).done);
  }
  // Session 2: half of a record, then the client's FIN.
  Client& two = harness_->client(2);
  ASSERT_EQ(SSL_write(two.ssl, "hello, world", 12), 12);
  std::vector<uint8_t> record(4096);
  const int n = BIO_read(two.wbio, record.data(), static_cast<int>(record.size()));
  ASSERT_GT(n, 10);
  record.resize(static_cast<size_t>(n) / 2);
  harness_->send_raw_ciphertext(2, record);
  harness_->send(2, Kind::ciphertext_end, {});
  // Session 3: an application-data record header claiming 65535 bytes (TLS allows 2^14 + 256).
  std::vector<uint8_t> oversize = {0x17, 0x03, 0x03, 0xff, 0xff};
  oversize.resize(5 + 4000, 0x55);
  harness_->send_raw_ciphertext(3, oversize);
  harness_->pump();
  EXPECT_EQ(harness_->client(2).reset, ResetReason::truncated);
  EXPECT_EQ(harness_->client(3).reset, ResetReason::record_overflow);
  EXPECT_EQ(worker_->counters().reset(ResetReason::truncated), 1u);
  EXPECT_EQ(worker_->counters().reset(ResetReason::record_overflow), 1u);
  const std::vector<uint8_t> sent = random_bytes(200'000, 4);
  EXPECT_EQ(echo(1, sent), sent) << "session 1 noticed nothing";
  EXPECT_FALSE(harness_->client(1).reset);
}

TEST_F(TlsWorkerTest, AHandshakeThatNeverFinishesTimesOut) {
  start();
  harness_->send(7, Kind::open, tls_channel::encode(tls_channel::OpenPayload{1, 2, "secure"}));
  harness_->pump(0);
  harness_->pump(999);
  EXPECT_EQ(worker_->sessions(), 1u) << "1 ms before the deadline";
  harness_->pump(1000);
  EXPECT_EQ(worker_->sessions(), 0u);
  EXPECT_EQ(worker_->counters().reset(ResetReason::handshake_timeout), 1u);
}

TEST_F(TlsWorkerTest, CloseNotifyAndFinsEndTheSessionCleanly) {
  start();
  harness_->connect(1, "secure", root_.cert.get(), "site.example");
  handshake(1);
  Client& c = harness_->client(1);
  SSL_shutdown(c.ssl);  // the client's close_notify
  harness_->client_step(1);
  harness_->pump();
  EXPECT_TRUE(c.plaintext_end) << "the backend's write side is shut";
  harness_->send(1, Kind::plaintext_end, {});  // the backend's FIN
  harness_->pump();
  EXPECT_TRUE(c.ciphertext_end);
  EXPECT_EQ(SSL_shutdown(c.ssl), 1) << "the client received the worker's close_notify";
  EXPECT_EQ(worker_->sessions(), 0u);
  EXPECT_FALSE(c.reset);
}

// Tickets issued by one worker resume on another that holds the same keys (as weir-control will
// give every worker), in TLS 1.3 and 1.2, while the key is among the last three; after a third
// rotation the ticket is refused and the client gets a full handshake.
TEST_F(TlsWorkerTest, TicketsResumeOnAnotherWorkerUntilThreeRotationsPass) {
  start();
  Instance b;
  start_instance(b);
  auto rotate_both = [&] {
    const TicketKey key = TicketKeys::generate();
    a_.contexts.ticket_keys().rotate(key);
    b.contexts.ticket_keys().rotate(key);
  };
  rotate_both();
  uint64_t id = 1;
  for (const int version : {TLS1_3_VERSION, TLS1_2_VERSION}) {
    SCOPED_TRACE(version);
    harness_->connect(id, "secure", root_.cert.get(), "site.example", version);
    handshake_on(*harness_, id);
    ASSERT_TRUE(harness_->client(id).done);
    EXPECT_FALSE(harness_->client(id).handshake.resumed);
    SSL_SESSION* session = SSL_get1_session(harness_->client(id).ssl);
    ASSERT_TRUE(session != nullptr && SSL_SESSION_is_resumable(session));
    ++id;
    b.harness->connect(id, "secure", root_.cert.get(), "site.example", version, session);
    handshake_on(*b.harness, id);
    EXPECT_TRUE(b.harness->client(id).handshake.resumed) << "resumed on the other worker";
    EXPECT_EQ(SSL_session_reused(b.harness->client(id).ssl), 1);
    ++id;
    rotate_both();
    rotate_both();  // the ticket's key is now the oldest of three
    b.harness->connect(id, "secure", root_.cert.get(), "site.example", version, session);
    handshake_on(*b.harness, id);
    EXPECT_TRUE(b.harness->client(id).handshake.resumed) << "two rotations later";
    ++id;
    rotate_both();  // and now forgotten
    b.harness->connect(id, "secure", root_.cert.get(), "site.example", version, session);
    handshake_on(*b.harness, id);
    EXPECT_TRUE(b.harness->client(id).done) << "a full handshake instead";
    EXPECT_FALSE(b.harness->client(id).handshake.resumed) << "three rotations later";
    ++id;
    SSL_SESSION_free(session);
  }
  EXPECT_EQ(b.worker->counters().handshakes_resumed, 4u);
}

// tls.ticket_keys_file across boxes (common/ticket_key_file.h): box A still has the file's old
// version, box B has reloaded after a key was appended. Each resumes the other's tickets, in TLS
// 1.3 and 1.2: what appending a key, then reloading the boxes one by one, relies on.
TEST_F(TlsWorkerTest, BoxesOnTwoVersionsOfTheKeyFileResumeEachOthersTickets) {
  start();
  Instance b;
  start_instance(b);
  std::string lines[4];
  for (std::string& line : lines) {
    const TicketKey key = TicketKeys::generate();
    std::string raw(reinterpret_cast<const char*>(&key), sizeof key);
    static_assert(sizeof key == ticket_keys::kKeyBytes);
    line = test::base64(raw);
  }
  const auto before = ticket_key_file::parse(lines[0] + "\n" + lines[1] + "\n" + lines[2] + "\n");
  const auto after =
      ticket_key_file::parse(lines[0] + "\n" + lines[1] + "\n" + lines[2] + "\n" + lines[3] + "\n");
  ASSERT_TRUE(before.ok() && after.ok());
  a_.contexts.ticket_keys().replace(before.keys);
  b.contexts.ticket_keys().replace(after.keys);
  EXPECT_NE(before.keys[0].name, after.keys[0].name) << "the boxes encrypt with different keys";
  uint64_t id = 1;
  for (const int version : {TLS1_3_VERSION, TLS1_2_VERSION}) {
    SCOPED_TRACE(version);
    for (const bool a_issues : {true, false}) {
      SCOPED_TRACE(a_issues ? "A's ticket on B" : "B's ticket on A");
      Harness& issuer = a_issues ? *harness_ : *b.harness;
      Harness& other = a_issues ? *b.harness : *harness_;
      issuer.connect(id, "secure", root_.cert.get(), "site.example", version);
      handshake_on(issuer, id);
      ASSERT_TRUE(issuer.client(id).done);
      SSL_SESSION* session = SSL_get1_session(issuer.client(id).ssl);
      ASSERT_TRUE(session != nullptr && SSL_SESSION_is_resumable(session));
      ++id;
      other.connect(id, "secure", root_.cert.get(), "site.example", version, session);
      handshake_on(other, id);
      EXPECT_TRUE(other.client(id).handshake.resumed);
      EXPECT_EQ(SSL_session_reused(other.client(id).ssl), 1);
      ++id;
      SSL_SESSION_free(session);
    }
  }
  // A key none of A's three is refused: a ticket from a box two appends ahead gets a full
  // handshake (the fallback, not an error).
  const auto far =
      ticket_key_file::parse(lines[2] + "\n" + lines[3] + "\n" +
                             test::base64(std::string(ticket_keys::kKeyBytes, '\x42')) + "\n");
  ASSERT_TRUE(far.ok());
  b.contexts.ticket_keys().replace(far.keys);
  b.harness->connect(id, "secure", root_.cert.get(), "site.example", TLS1_3_VERSION);
  handshake_on(*b.harness, id);
  SSL_SESSION* session = SSL_get1_session(b.harness->client(id).ssl);
  ASSERT_TRUE(session != nullptr);
  ++id;
  harness_->connect(id, "secure", root_.cert.get(), "site.example", TLS1_3_VERSION, session);
  handshake_on(*harness_, id);
  EXPECT_TRUE(harness_->client(id).done);
  EXPECT_FALSE(harness_->client(id).handshake.resumed);
  SSL_SESSION_free(session);
}

// The real binary, run as an unprivileged user: when this test runs as root, the worker is
// started as root and must switch to tls.user itself (checked in /proc) before serving; when
// not, it simply runs as the unprivileged user it is.
TEST_F(TlsWorkerTest, TheWorkerProcessServesUnprivileged) {
  const bool root = geteuid() == 0;
  const passwd* nobody = getpwnam("nobody");
  ASSERT_NE(nobody, nullptr);
  Process worker;
  start_process(worker);
  Harness& harness = *worker.harness;
  const pid_t child = worker.pid;
  harness.connect(1, "secure", root_.cert.get(), "site.example");
  for (int i = 0; i < 10 && !harness.client(1).done && !harness.client(1).reset; ++i) {
    ASSERT_TRUE(harness.exchange()) << "the worker process answered nothing within 5 s";
    harness.client_step(1);
  }
  EXPECT_TRUE(harness.client(1).done) << "a handshake through the worker process";
  EXPECT_FALSE(harness.client(1).reset) << static_cast<int>(*harness.client(1).reset);
  std::ifstream status("/proc/" + std::to_string(child) + "/status");
  std::string line, uid_line;
  while (std::getline(status, line))
    if (line.rfind("Uid:", 0) == 0) uid_line = line;
  const std::string expected_uid = std::to_string(root ? nobody->pw_uid : geteuid());
  EXPECT_EQ(uid_line, "Uid:\t" + expected_uid + "\t" + expected_uid + "\t" + expected_uid + "\t" +
                          expected_uid);
  kill(child, SIGTERM);
  int wait_status = 0;
  ASSERT_EQ(waitpid(child, &wait_status, 0), child);
  worker.pid = -1;
  EXPECT_TRUE(WIFEXITED(wait_status) && WEXITSTATUS(wait_status) == 0) << wait_status;
}

// Two worker processes given weir-control's keys over their --ticket-keys sockets, as
// control/tls_workers.cc sends them (the same schedule and wire format): a ticket from one
// resumes on the other, still after two rotations, not after the third; a malformed message
// changes nothing; the socket's end stops the worker.
TEST_F(TlsWorkerTest, ProcessesResumeEachOthersTicketsWithKeysFromTheirSocket) {
  uint64_t now = 0;
  control::TicketKeySchedule schedule(1000, now);
  int pairs[2][2];
  Process workers[2];
  for (int w = 0; w < 2; ++w) {
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pairs[w]), 0);
    const std::string message = ticket_keys::encode(schedule.keys());
    ASSERT_EQ(send(pairs[w][0], message.data(), message.size(), 0),
              static_cast<ssize_t>(message.size()));
    start_process(workers[w], pairs[w][1]);
    close(pairs[w][1]);
  }
  // Each worker acknowledges a set with its newest key's name once its tickets use it.
  auto acknowledged = [&](int w) {
    pollfd p{pairs[w][0], POLLIN, 0};
    if (poll(&p, 1, 5000) != 1) return std::array<uint8_t, 16>{};
    std::array<uint8_t, 16> name{};
    EXPECT_EQ(recv(pairs[w][0], name.data(), name.size(), 0), 16);
    return name;
  };
  for (int w = 0; w < 2; ++w) ASSERT_EQ(acknowledged(w), schedule.keys().front().name);
  auto rotate = [&] {
    now += 1000;
    ASSERT_TRUE(schedule.tick(now));
    const std::string message = ticket_keys::encode(schedule.keys());
    for (int w = 0; w < 2; ++w) {
      ASSERT_EQ(send(pairs[w][0], message.data(), message.size(), 0),
                static_cast<ssize_t>(message.size()));
      ASSERT_EQ(acknowledged(w), schedule.keys().front().name) << "worker " << w;
    }
  };
  Harness& a = *workers[0].harness;
  Harness& b = *workers[1].harness;
  uint64_t id = 1;
  for (const int version : {TLS1_3_VERSION, TLS1_2_VERSION}) {
    SCOPED_TRACE(version);
    a.connect(id, "secure", root_.cert.get(), "site.example", version);
    handshake_with_process(a, id);
    ASSERT_TRUE(a.client(id).done);
    EXPECT_FALSE(a.client(id).handshake.resumed);
    SSL_SESSION* session = SSL_get1_session(a.client(id).ssl);
    ASSERT_TRUE(session != nullptr && SSL_SESSION_is_resumable(session));
    ++id;
    b.connect(id, "secure", root_.cert.get(), "site.example", version, session);
    handshake_with_process(b, id);
    EXPECT_TRUE(b.client(id).handshake.resumed) << "resumed on the other process";
    ++id;
    // Garbage on the key socket: ignored (no acknowledgement), the keys stay.
    ASSERT_EQ(send(pairs[1][0], "WTK1", 4, 0), 4);
    rotate();
    rotate();  // the ticket's key is now the oldest of three
    b.connect(id, "secure", root_.cert.get(), "site.example", version, session);
    handshake_with_process(b, id);
    EXPECT_TRUE(b.client(id).handshake.resumed) << "two rotations later";
    ++id;
    rotate();  // and now forgotten
    b.connect(id, "secure", root_.cert.get(), "site.example", version, session);
    handshake_with_process(b, id);
    EXPECT_TRUE(b.client(id).done) << "a full handshake instead";
    EXPECT_FALSE(b.client(id).handshake.resumed) << "three rotations later";
    ++id;
    SSL_SESSION_free(session);
  }
  // weir-control gone: the worker stops by itself, cleanly.
  close(pairs[0][0]);
  int status = 0;
  ASSERT_EQ(waitpid(workers[0].pid, &status, 0), workers[0].pid);
  workers[0].pid = -1;
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  close(pairs[1][0]);
}

TEST(TlsWorkerPrivileges, RootWithoutAUserIsRefused) {
  // The rule the binary applies; checked here without being root.
  if (geteuid() == 0) {
    EXPECT_NE(drop_privileges("").find("never serves as root"), std::string::npos);
  } else {
    EXPECT_EQ(drop_privileges(""), "");
    EXPECT_NE(drop_privileges("root").find("not running as root"), std::string::npos);
  }
}

}  // namespace
}  // namespace weir::tls
