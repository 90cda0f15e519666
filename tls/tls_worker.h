// The TLS worker: one process, no threads. It serves every channel a dataplane worker opened to it
// (common/shm_channel.h): reads session records from each inbound ring, drives OpenSSL over
// memory BIOs (SSL_do_handshake, SSL_read, SSL_write), and writes ciphertext for the client and
// plaintext for the backend back (docs/tls.md). Bad input ends only its own session, counted by
// reason; a channel whose ring breaks loses its own sessions only.
#pragma once

#include <openssl/ssl.h>

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <unordered_map>
#include <vector>

#include "common/counter_catalogue.h"
#include "common/shm_channel.h"
#include "common/tls_channel.h"
#include "common/tls_counter_block.h"
#include "tls/tls_contexts.h"

namespace weir::tls {

// Alerts by type: the catalogue's kTlsAlertTypes, then every other type.
inline constexpr size_t kAlertTypes = counters::kTlsAlertTypes.size() + 1;
size_t alert_index(uint8_t code);

// What one worker counts; published to its counter block (common/tls_counter_block.h) through
// tls/worker_counter_bindings.h, in the catalogue's kTlsWorkerCounters.
struct WorkerCounters {
  uint64_t sessions_opened = 0;
  uint64_t handshakes_tls12 = 0;
  uint64_t handshakes_tls13 = 0;
  uint64_t handshakes_resumed = 0;
  std::array<uint64_t, tls_channel::kResetReasons> resets{};  // by ResetReason
  uint64_t ciphertext_in = 0, ciphertext_out = 0;             // bytes
  uint64_t plaintext_in = 0, plaintext_out = 0;
  uint64_t input_deferred = 0;  // passes that left inbound records for lack of outbound room
  uint64_t channels_broken = 0;
  std::array<uint64_t, kAlertTypes> alerts_sent{};  // by alert_index
  std::array<uint64_t, kAlertTypes> alerts_received{};
  uint64_t certificates_refused_start = 0;  // counted by main.cc
  uint64_t certificates_refused_reload = 0;
  uint64_t reset(tls_channel::ResetReason r) const { return resets[static_cast<size_t>(r)]; }
};

// Stores `counters` in `block` (its values in the catalogue's order).
void publish(const WorkerCounters& counters, tls_counters::BlockMemory& block);

class TlsWorker {
 public:
  // Sessions per channel beyond which `open` is refused (too_many_sessions).
  static constexpr size_t kMaxSessionsPerChannel = 65'536;

  // `contexts` must outlive the worker.
  explicit TlsWorker(const Contexts& contexts);
  explicit TlsWorker(std::shared_ptr<const Contexts> contexts);
  ~TlsWorker();
  TlsWorker(const TlsWorker&) = delete;
  TlsWorker& operator=(const TlsWorker&) = delete;

  // Serves `memory` as side B. `wake_event` is written to wake the dataplane side (-1: it polls).
  void add_channel(shm::ChannelMemory memory, int wake_event);

  // Sessions opened from now on use `contexts` (a certificate reload); each open session keeps
  // the contexts it started with until it ends.
  void use_contexts(std::shared_ptr<const Contexts> contexts) { contexts_ = std::move(contexts); }

  // One pass over every channel and the handshake deadlines; true if anything was done.
  bool poll_once(uint64_t now_ms);
  // Announces sleep on every channel; true if all are still idle (block, then call awake()).
  bool prepare_sleep();
  void awake();
  // Milliseconds until the next handshake deadline (-1: none).
  int next_deadline_in(uint64_t now_ms) const;

  const WorkerCounters& counters() const { return counters_; }
  WorkerCounters& counters() { return counters_; }
  // From now on the counters are published to `block` (weir-control's; must outlive the worker)
  // before each pass hands its records to the dataplane, so that they are there to read once the
  // dataplane (and the client) sees the outcome.
  void publish_to(tls_counters::BlockMemory* block) {
    block_ = block;
    publish_counters();
  }
  void publish_counters();
  size_t sessions() const;

 private:
  struct Session;
  struct Channel;
  using Deadlines = std::multimap<uint64_t, std::pair<Channel*, uint64_t>>;

  void handle(Channel& ch, const shm::Record& record, uint64_t now_ms);
  void open(Channel& ch, uint64_t id, std::span<const uint8_t> payload, uint64_t now_ms);
  void on_ciphertext(Channel& ch, Session& s, std::span<const uint8_t> bytes);
  void on_plaintext(Channel& ch, Session& s, std::span<const uint8_t> bytes);
  void on_client_end(Channel& ch, Session& s);
  void on_backend_end(Channel& ch, Session& s);
  // Runs the handshake or reads plaintext, then sends what OpenSSL wrote. False: the session ended.
  bool drive(Channel& ch, Session& s);
  bool flush_ciphertext(Channel& ch, Session& s);
  void fail(Channel& ch, Session& s, tls_channel::ResetReason reason, bool send_alert);
  void finish(Channel& ch, Session& s);
  void reset_unknown(Channel& ch, uint64_t id, tls_channel::ResetReason reason);
  void drop_channel(Channel& ch);

  std::shared_ptr<const Contexts> contexts_;
  std::vector<std::unique_ptr<Channel>> channels_;
  Deadlines deadlines_;
  WorkerCounters counters_;
  tls_counters::BlockMemory* block_ = nullptr;
};

}  // namespace weir::tls
