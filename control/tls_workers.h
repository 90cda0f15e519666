// The weir-tls-worker processes of a configuration with TLS (docs/tls.md, "Worker crash" and
// "Session tickets"), as weir-control runs them: TlsSupervisor's schedule with real processes
// (fork and exec of the worker binary), and the ticket keys of a TicketKeySchedule delivered to
// each worker over its own SOCK_SEQPACKET socket pair (common/ticket_key_wire.h). Each worker's
// channels to the dataplane are fetched from the dataplane's TLS worker socket just before it is
// forked, and handed to it with the connection (common/tls_attach.h).
//
// Why a socket pair and not a key file: a worker drops root right after loading its certificates,
// so it could not re-read a 0600 file owned by root; the keys never touch a disk; each message is
// the whole set, so a worker started late or a message it missed is made whole by the next; and
// the socket's end tells a worker that weir-control is gone (the parent-death signal set at fork
// is cleared by the worker's own setuid), so no worker outlives it.
#pragma once

#include <sys/types.h>

#include <nlohmann/json.hpp>

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/counter_catalogue.h"
#include "common/tls_counter_block.h"
#include "config/config.h"
#include "control/ticket_key_schedule.h"
#include "control/tls_supervisor.h"

namespace weir::control {

class TlsWorkers {
 public:
  // Whether `config` has TLS to serve: a `tls:` section or a `tls` listener.
  static bool wanted(const config::Config& config);
  // The worker binary next to this process's own executable.
  static std::string default_binary();

  TlsWorkers(std::string binary, std::string config_path, const config::Config& config,
             uint64_t now_ms);
  ~TlsWorkers();
  TlsWorkers(const TlsWorkers&) = delete;
  TlsWorkers& operator=(const TlsWorkers&) = delete;

  void start(uint64_t now_ms) { supervisor_.start(now_ms); }
  // After SIGCHLD: reaps every ended child; the workers among them are restarted after back-off.
  void reap(uint64_t now_ms);
  // Due restarts, key rotations and late attachments (a worker started before the dataplane).
  void tick(uint64_t now_ms);
  // Milliseconds until tick() has something to do (a poll timeout).
  int next_due_in(uint64_t now_ms) const;
  // SIGTERM to every worker; SIGKILL to those still there after `grace_ms`; all reaped.
  void stop(uint64_t grace_ms);

  // The keys of tls.ticket_keys_file (common/ticket_key_file.h), sent to every worker at once
  // (encrypting key first); they replace the generated ones and stop the rotation. nullopt: back
  // to keys made and rotated here (a fresh set).
  void use_file_keys(std::optional<std::vector<ticket_keys::Key>> keys, uint64_t now_ms);

  // Before a reload: the certificate check of --check-config on `config_path` (the same file as
  // this process's), run by the worker binary in a process of its own so that weir-control never
  // reads a key (`weir-tls-worker --check-config`). Its FILE:LINE:COL lines; empty when it passed.
  std::vector<std::string> check_certificates(const config::Config& config);
  // After a reload: every running worker gets the configuration's certificate files (fds opened
  // here, common/tls_attach.h kCertificateReload) and uses them for new handshakes; open sessions
  // keep theirs.
  void reload_certificates(const config::Config& config);

  // Each worker slot's counters (the catalogue's kTlsWorkerCounters,
  // common/counter_catalogue_tls.h) as a JSON object of them plus "tls_worker" (the slot): those of
  // the slot's ended workers (folded in when a worker is reaped) plus the running one's counter
  // block, so that no value ever goes down across a restart.
  nlohmann::json worker_counters() const;
  // Certificate loads refused (kTlsCertificateRefusals): {"certificates_refused_start",
  // "certificates_refused_reload"}.
  nlohmann::json certificate_refusals() const;

  size_t running() const { return supervisor_.running(); }
  uint64_t restarts() const { return supervisor_.restarts(); }
  uint64_t key_rotations() const { return earlier_rotations_ + keys_->rotations(); }
  // For weirctl status: {"workers", "running", "restarts", "key_rotations", "pids",
  // "with_current_key" (workers that acknowledged the encrypting key), "ticket_keys" ("file" or
  // "generated"), "current_key_name" (hex: a ticket carries it in the clear),
  // "certificates_generation" (reloads sent), "with_current_certificates" (workers that applied
  // the last one), "certificates_refused" (workers that refused the last one), "attached" (workers
  // with channels to the dataplane)}.
  nlohmann::json describe();

 private:
  pid_t spawn(size_t slot);
  void send_keys(size_t slot);
  // A running worker that started without a dataplane: its channels, fetched now and sent on its
  // key socket (common/tls_attach.h, kLateAttach). True once it has them.
  bool attach_late(size_t slot);
  // Also folds the slot's counter block into its ended workers' totals, and drops it.
  void forget_slot(size_t slot);
  uint64_t slot_counter(size_t slot, size_t index) const;
  void read_acks(size_t slot);

  std::string binary_;
  std::string config_path_;
  std::string dataplane_socket_;  // where the workers' channels come from (common/tls_attach.h)
  const std::vector<ticket_keys::Key>& current_keys() const {
    return file_keys_ ? *file_keys_ : keys_->keys();
  }

  uint64_t rotation_ms_;
  std::unique_ptr<TicketKeySchedule> keys_;
  uint64_t earlier_rotations_ = 0;  // of schedules replaced (a counter never goes back)
  std::optional<std::vector<ticket_keys::Key>> file_keys_;  // tls.ticket_keys_file's, when set
  TlsSupervisor supervisor_;
  std::vector<int> key_sockets_;  // per slot, weir-control's end; -1 when not running
  std::vector<std::array<uint8_t, 16>> acknowledged_;  // per slot, the newest key it applied
  // Per slot, the eventfd of a running worker not attached to a dataplane yet (the dataplane
  // wakes it with it), else -1; and whether the worker has its channels.
  std::vector<int> unattached_events_;
  std::vector<bool> attached_;
  uint32_t certificates_generation_ = 0;
  std::vector<uint32_t> certificates_applied_;  // per slot, the newest generation it applied
  std::vector<uint32_t> certificates_refused_;  // per slot, the newest generation it refused
  uint64_t attach_tried_ms_ = 0;                // late attachments are tried once a second
  // Per slot, the running worker's counter block (none between its end and the next start), and
  // the totals of the slot's ended workers.
  std::vector<std::optional<tls_counters::BlockMemory>> counter_blocks_;
  std::vector<std::array<uint64_t, counters::kTlsWorkerCounters.size()>> ended_counters_;
  // Reloads refused by check_certificates (called without the daemon's lock).
  std::atomic<uint64_t> certificate_check_refusals_ = 0;
};

}  // namespace weir::control
