// See tls_workers.h.
#include "control/tls_workers.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <span>
#include <string>
#include <vector>

#include "common/log.h"
#include "common/tls_attach.h"

namespace weir::control {
namespace {

// The fds a worker gets, at fixed numbers: its channels from kChildFirstChannelFd on.
constexpr int kChildKeysFd = 3;
constexpr int kChildEventFd = 4;
constexpr int kChildLinkFd = 5;
constexpr int kChildFirstChannelFd = 6;

// A new worker's channels from the dataplane (common/tls_attach.h): the connection, which the
// worker keeps, and one memfd per dataplane worker. Nothing when no dataplane answers: the worker
// then serves no session (and is attached when it is next started).
struct Attachment {
  int link = -1;
  std::vector<int> channels;
};

Attachment attach_to_dataplane(const std::string& path, int event_fd) {
  Attachment a;
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (path.size() >= sizeof address.sun_path) return a;
  std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
  const int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (fd < 0) return a;
  const int hello_fds[] = {event_fd};
  const auto* hello = reinterpret_cast<const uint8_t*>(tls_attach::kHello);
  pollfd p{fd, POLLIN, 0};
  uint8_t answer[sizeof tls_attach::kHello + sizeof(uint32_t)];
  std::vector<int> fds;
  uint32_t count = 0;
  // The dataplane answers at once from its main lcore's loop (100 ms at most): 2 s is a failure.
  const bool ok =
      connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0 &&
      tls_attach::send_with_fds(fd, std::span(hello, sizeof tls_attach::kHello), hello_fds) &&
      poll(&p, 1, 2000) == 1 &&
      tls_attach::receive_with_fds(fd, answer, fds) == static_cast<ssize_t>(sizeof answer) &&
      std::memcmp(answer, tls_attach::kHello, sizeof tls_attach::kHello) == 0 &&
      (std::memcpy(&count, answer + sizeof tls_attach::kHello, sizeof count), true) &&
      count == fds.size() && count > 0;
  if (!ok) {
    for (int f : fds) close(f);
    close(fd);
    return a;
  }
  a.link = fd;
  a.channels = std::move(fds);
  return a;
}

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
      dataplane_socket_(tls_attach::socket_path(config.dataplane.control_socket)),
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
  const Attachment attachment = attach_to_dataplane(dataplane_socket_, event);
  if (attachment.link < 0)
    WEIR_LOG_LIMITED(log::Level::warning,
                     "TLS worker %zu: no dataplane on %s: it serves no session until restarted",
                     slot, dataplane_socket_.c_str());
  // Every argument and fd number is made before the fork.
  std::vector<std::string> args = {binary_,
                                   "--config",
                                   config_path_,
                                   "--event-fd",
                                   std::to_string(kChildEventFd),
                                   "--ticket-keys",
                                   std::to_string(kChildKeysFd)};
  std::vector<int> child_fds = {pair[1], event};  // to kChildKeysFd, kChildEventFd, then on
  if (attachment.link >= 0) {
    args.insert(args.end(), {"--dataplane-link", std::to_string(kChildLinkFd)});
    child_fds.push_back(attachment.link);
    for (size_t i = 0; i < attachment.channels.size(); ++i) {
      args.insert(args.end(),
                  {"--channel", std::to_string(kChildFirstChannelFd + static_cast<int>(i))});
      child_fds.push_back(attachment.channels[i]);
    }
  }
  std::vector<const char*> argv;
  for (const std::string& a : args) argv.push_back(a.c_str());
  argv.push_back(nullptr);
  const int high_base = kChildKeysFd + static_cast<int>(child_fds.size()) + 16;
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid == 0) {
    // Until the worker drops root (which clears it), it dies with weir-control; after, the key
    // socket's end tells it.
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent) _exit(1);
    // Every fd first above the numbers they go to, then each to its number.
    int high[3 + tls_attach::kMaxFds];
    const size_t n = std::min(child_fds.size(), sizeof high / sizeof high[0]);
    for (size_t i = 0; i < n; ++i) {
      high[i] = fcntl(child_fds[i], F_DUPFD, high_base);
      if (high[i] < 0) _exit(126);
    }
    for (size_t i = 0; i < n; ++i) {
      if (dup2(high[i], kChildKeysFd + static_cast<int>(i)) < 0) _exit(126);
    }
    // Nothing else of weir-control's (its metrics listener, sockets) goes to the worker.
    syscall(SYS_close_range, kChildKeysFd + static_cast<unsigned>(n), ~0U, 0);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    signal(SIGPIPE, SIG_DFL);
    execv(binary_.c_str(), const_cast<char* const*>(argv.data()));
    _exit(127);
  }
  close(pair[1]);
  close(event);
  // The worker holds the connection now: its end is the worker's end, for the dataplane.
  if (attachment.link >= 0) close(attachment.link);
  for (const int fd : attachment.channels) close(fd);
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
