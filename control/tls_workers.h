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
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

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
  // Due restarts and key rotations.
  void tick(uint64_t now_ms);
  // Milliseconds until tick() has something to do (a poll timeout).
  int next_due_in(uint64_t now_ms) const;
  // SIGTERM to every worker; SIGKILL to those still there after `grace_ms`; all reaped.
  void stop(uint64_t grace_ms);

  size_t running() const { return supervisor_.running(); }
  uint64_t restarts() const { return supervisor_.restarts(); }
  uint64_t key_rotations() const { return keys_.rotations(); }
  // For weirctl status: {"workers", "running", "restarts", "key_rotations", "pids",
  // "with_current_key"} (workers that acknowledged the newest key).
  nlohmann::json describe();

 private:
  pid_t spawn(size_t slot);
  void send_keys(size_t slot);
  void read_acks(size_t slot);

  std::string binary_;
  std::string config_path_;
  std::string dataplane_socket_;  // where the workers' channels come from (common/tls_attach.h)
  TicketKeySchedule keys_;
  TlsSupervisor supervisor_;
  std::vector<int> key_sockets_;  // per slot, weir-control's end; -1 when not running
  std::vector<std::array<uint8_t, 16>> acknowledged_;  // per slot, the newest key it applied
};

}  // namespace weir::control
