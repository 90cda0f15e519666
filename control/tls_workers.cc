// See tls_workers.h.
#include "control/tls_workers.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>

#include "common/log.h"

namespace weir::control {
namespace {

// The fds a worker gets, at fixed numbers.
constexpr int kChildKeysFd = 3;
constexpr int kChildEventFd = 4;

uint64_t monotonic_ms() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000 + static_cast<uint64_t>(ts.tv_nsec) / 1'000'000;
}

}  // namespace

bool TlsWorkers::wanted(const config::Config& config) {
  if (config.tls.configured) return true;
  for (const config::Listener& l : config.listeners) {
    if (l.protocol == config::Protocol::tls) return true;
  }
  return false;
}

// The one beside weir-control (the build tree), else the installed one: `meson install` puts the
// worker in libexec/weir, not on PATH, as nothing but weir-control starts it.
std::string TlsWorkers::default_binary() {
  char path[PATH_MAX];
  const ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
  if (n > 0) {
    const std::string self(path, static_cast<size_t>(n));
    std::string beside = self.substr(0, self.rfind('/') + 1) + "weir-tls-worker";
    if (access(beside.c_str(), X_OK) == 0) return beside;
  }
  return WEIR_INSTALLED_TLS_WORKER;
}

TlsWorkers::TlsWorkers(std::string binary, std::string config_path, const config::Config& config,
                       uint64_t now_ms)
    : binary_(std::move(binary)),
      config_path_(std::move(config_path)),
      keys_(uint64_t{config.tls.ticket_key_rotation_s} * 1000, now_ms),
      supervisor_(
          {.workers = config.tls.workers}, [this](size_t slot) { return spawn(slot); },
          [](pid_t pid, int signal) { kill(pid, signal); }),
      key_sockets_(config.tls.workers, -1),
      acknowledged_(config.tls.workers) {}

TlsWorkers::~TlsWorkers() {
  for (int fd : key_sockets_) {
    if (fd >= 0) close(fd);
  }
}

// fork and exec. Between them only async-signal-safe calls (weir-control has threads): the
// arguments are built before the fork.
pid_t TlsWorkers::spawn(size_t slot) {
  if (key_sockets_[slot] >= 0) close(key_sockets_[slot]);
  key_sockets_[slot] = -1;
  int pair[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) != 0) {
    WEIR_LOG_LIMITED(log::Level::error, "TLS worker %zu: socketpair: %s", slot, strerror(errno));
    return -1;
  }
  // The dataplane's wake-ups come with the channels (docs/tls.md, "Next"); until then the worker
  // sleeps on an eventfd nobody writes, and on its key socket.
  const int event = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (event < 0) {
    close(pair[0]);
    close(pair[1]);
    return -1;
  }
  key_sockets_[slot] = pair[0];
  // The current keys are in the socket before the worker starts: it reads them first.
  send_keys(slot);
  const std::string keys_fd = std::to_string(kChildKeysFd),
                    event_fd = std::to_string(kChildEventFd);
  const char* argv[] = {binary_.c_str(),  "--config",      config_path_.c_str(), "--event-fd",
                        event_fd.c_str(), "--ticket-keys", keys_fd.c_str(),      nullptr};
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid == 0) {
    // Until the worker drops root (which clears it), it dies with weir-control; after, the key
    // socket's end tells it.
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent) _exit(1);
    const int keys_high = fcntl(pair[1], F_DUPFD, 10), event_high = fcntl(event, F_DUPFD, 10);
    if (keys_high < 0 || event_high < 0 || dup2(keys_high, kChildKeysFd) < 0 ||
        dup2(event_high, kChildEventFd) < 0)
      _exit(126);
    // Nothing else of weir-control's (its metrics listener, sockets) goes to the worker.
    syscall(SYS_close_range, kChildEventFd + 1, ~0U, 0);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    signal(SIGPIPE, SIG_DFL);
    execv(binary_.c_str(), const_cast<char* const*>(argv));
    _exit(127);
  }
  close(pair[1]);
  close(event);
  if (pid < 0) {
    WEIR_LOG_LIMITED(log::Level::error, "TLS worker %zu: fork: %s", slot, strerror(errno));
    close(key_sockets_[slot]);
    key_sockets_[slot] = -1;
    return -1;
  }
  log::printf(log::Level::notice, "TLS worker %zu started (pid %d): %s", slot,
              static_cast<int>(pid), binary_.c_str());
  return pid;
}

void TlsWorkers::read_acks(size_t slot) {
  const int fd = key_sockets_[slot];
  std::array<uint8_t, 16> name;
  while (fd >= 0 && recv(fd, name.data(), name.size(), MSG_DONTWAIT) == ssize_t(name.size()))
    acknowledged_[slot] = name;
}

void TlsWorkers::send_keys(size_t slot) {
  if (key_sockets_[slot] < 0) return;
  read_acks(slot);  // what the worker answered so far, so they never pile up
  std::string message = ticket_keys::encode(keys_.keys());
  // A full socket (a worker that stopped reading) loses this set only: the next one is whole.
  if (send(key_sockets_[slot], message.data(), message.size(), MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
    WEIR_LOG_LIMITED(log::Level::warning, "TLS worker %zu: ticket keys not sent: %s", slot,
                     strerror(errno));
  std::fill(message.begin(), message.end(), '\0');
}

void TlsWorkers::reap(uint64_t now_ms) {
  for (;;) {
    int status = 0;
    const pid_t pid = waitpid(-1, &status, WNOHANG);
    if (pid <= 0) return;
    size_t slot = 0;
    while (slot < key_sockets_.size() && supervisor_.pid(slot) != pid) ++slot;
    if (!supervisor_.exited(pid, now_ms)) continue;  // not a worker (no other child exists)
    close(key_sockets_[slot]);
    key_sockets_[slot] = -1;
    acknowledged_[slot] = {};
    if (WIFSIGNALED(status)) {
      WEIR_LOG_LIMITED(log::Level::error, "TLS worker pid %d killed by signal %d; restarting",
                       static_cast<int>(pid), WTERMSIG(status));
    } else {
      WEIR_LOG_LIMITED(log::Level::error, "TLS worker pid %d exited with status %d; restarting",
                       static_cast<int>(pid), WEXITSTATUS(status));
    }
  }
}

void TlsWorkers::tick(uint64_t now_ms) {
  supervisor_.tick(now_ms);
  if (keys_.tick(now_ms)) {
    for (size_t slot = 0; slot < key_sockets_.size(); ++slot) send_keys(slot);
  }
}

int TlsWorkers::next_due_in(uint64_t now_ms) const {
  const int restart = supervisor_.next_due_in(now_ms);
  const uint64_t rotate = keys_.due_ms() > now_ms ? keys_.due_ms() - now_ms : 0;
  const int rotate_ms = static_cast<int>(std::min<uint64_t>(rotate, INT_MAX));
  return restart < 0 ? rotate_ms : std::min(restart, rotate_ms);
}

void TlsWorkers::stop(uint64_t grace_ms) {
  supervisor_.stop(SIGTERM);
  const uint64_t deadline = monotonic_ms() + grace_ms;
  bool killed = false;
  while (supervisor_.running() > 0) {
    int status = 0;
    const pid_t pid = waitpid(-1, &status, WNOHANG);
    if (pid > 0) {
      supervisor_.exited(pid, monotonic_ms());
      continue;
    }
    if (!killed && monotonic_ms() >= deadline) {
      log::printf(log::Level::warning, "%zu TLS worker(s) still there after %llu ms: SIGKILL",
                  supervisor_.running(), static_cast<unsigned long long>(grace_ms));
      supervisor_.stop(SIGKILL);
      killed = true;
    }
    if (pid < 0 && errno == ECHILD) break;
    usleep(10'000);  // the children's exit, polled: no SIGCHLD handler runs while stopping
  }
}

nlohmann::json TlsWorkers::describe() {
  nlohmann::json pids = nlohmann::json::array();
  for (pid_t pid : supervisor_.pids()) pids.push_back(pid);
  size_t current = 0;
  for (size_t slot = 0; slot < key_sockets_.size(); ++slot) {
    read_acks(slot);
    if (key_sockets_[slot] >= 0 && acknowledged_[slot] == keys_.keys().front().name) ++current;
  }
  return {{"workers", key_sockets_.size()},
          {"running", supervisor_.running()},
          {"restarts", supervisor_.restarts()},
          {"key_rotations", keys_.rotations()},
          {"pids", pids},
          {"with_current_key", current}};
}

}  // namespace weir::control
