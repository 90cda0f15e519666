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

// How often a worker without channels tries the dataplane again.
constexpr uint64_t kAttachRetryMs = 1000;
// How long the certificate check before a reload may take.
constexpr uint64_t kCertificateCheckTimeoutMs = 10'000;

// The fds a worker gets, at fixed numbers: its channels from kChildFirstChannelFd on.
constexpr int kChildKeysFd = 3;
constexpr int kChildEventFd = 4;
constexpr int kChildCountersFd = 5;
constexpr int kChildLinkFd = 6;
constexpr int kChildFirstChannelFd = 7;

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
      rotation_ms_(uint64_t{config.tls.ticket_key_rotation_s} * 1000),
      keys_(std::make_unique<TicketKeySchedule>(rotation_ms_, now_ms)),
      supervisor_(
          {.workers = config.tls.workers}, [this](size_t slot) { return spawn(slot); },
          [](pid_t pid, int signal) { kill(pid, signal); }),
      key_sockets_(config.tls.workers, -1),
      acknowledged_(config.tls.workers),
      unattached_events_(config.tls.workers, -1),
      attached_(config.tls.workers, false),
      certificates_applied_(config.tls.workers, 0),
      certificates_refused_(config.tls.workers, 0),
      counter_blocks_(config.tls.workers),
      ended_counters_(config.tls.workers) {}

TlsWorkers::~TlsWorkers() {
  for (size_t slot = 0; slot < key_sockets_.size(); ++slot) forget_slot(slot);
}

void TlsWorkers::forget_slot(size_t slot) {
  if (counter_blocks_[slot]) {
    for (size_t i = 0; i < ended_counters_[slot].size(); ++i)
      ended_counters_[slot][i] += counter_blocks_[slot]->load(i);
    counter_blocks_[slot].reset();
  }
  if (key_sockets_[slot] >= 0) close(key_sockets_[slot]);
  if (unattached_events_[slot] >= 0) close(unattached_events_[slot]);
  key_sockets_[slot] = -1;
  unattached_events_[slot] = -1;
  attached_[slot] = false;
  acknowledged_[slot] = {};
}

// fork and exec. Between them only async-signal-safe calls (weir-control has threads): the
// arguments are built before the fork.
pid_t TlsWorkers::spawn(size_t slot) {
  forget_slot(slot);
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
  std::string error;
  counter_blocks_[slot] = tls_counters::BlockMemory::create(error);
  if (!counter_blocks_[slot]) {  // tried again after back-off, as a worker that ended at once
    WEIR_LOG_LIMITED(log::Level::error, "TLS worker %zu: no counter block: %s", slot,
                     error.c_str());
    close(pair[0]);
    close(pair[1]);
    close(event);
    return -1;
  }
  key_sockets_[slot] = pair[0];
  // The current keys are in the socket before the worker starts: it reads them first.
  send_keys(slot);
  const Attachment attachment = attach_to_dataplane(dataplane_socket_, event);
  if (attachment.link < 0)
    WEIR_LOG_LIMITED(log::Level::warning,
                     "TLS worker %zu: no dataplane on %s yet: attached once it answers", slot,
                     dataplane_socket_.c_str());
  // Every argument and fd number is made before the fork.
  std::vector<std::string> args = {binary_,
                                   "--config",
                                   config_path_,
                                   "--event-fd",
                                   std::to_string(kChildEventFd),
                                   "--ticket-keys",
                                   std::to_string(kChildKeysFd)};
  // To kChildKeysFd, kChildEventFd, kChildCountersFd, then on.
  std::vector<int> child_fds = {pair[1], event, counter_blocks_[slot]->fd()};
  args.insert(args.end(), {"--counters", std::to_string(kChildCountersFd)});
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
  // Kept while the worker has no channels: the dataplane gets it with a late attachment.
  if (attachment.link < 0 && pid > 0) {
    unattached_events_[slot] = event;
  } else {
    close(event);
  }
  attached_[slot] = attachment.link >= 0;
  // A worker started now reads the files itself: the current generation.
  certificates_applied_[slot] = certificates_generation_;
  certificates_refused_[slot] = 0;
  // The worker holds the connection now: its end is the worker's end, for the dataplane.
  if (attachment.link >= 0) close(attachment.link);
  for (const int fd : attachment.channels) close(fd);
  if (pid < 0) {
    WEIR_LOG_LIMITED(log::Level::error, "TLS worker %zu: fork: %s", slot, strerror(errno));
    forget_slot(slot);
    return -1;
  }
  log::printf(log::Level::notice, "TLS worker %zu started (pid %d): %s", slot,
              static_cast<int>(pid), binary_.c_str());
  return pid;
}

// A worker's answers: a key set's (the newest key's name, 16 bytes) or a certificate reload's
// (common/tls_attach.h).
void TlsWorkers::read_acks(size_t slot) {
  const int fd = key_sockets_[slot];
  uint8_t answer[32];
  for (;;) {
    const ssize_t n = fd < 0 ? -1 : recv(fd, answer, sizeof answer, MSG_DONTWAIT);
    if (n < 0) return;
    if (n == static_cast<ssize_t>(acknowledged_[slot].size())) {
      std::memcpy(acknowledged_[slot].data(), answer, acknowledged_[slot].size());
    } else if (n == static_cast<ssize_t>(tls_attach::kCertificateReloadAckBytes) &&
               std::memcmp(answer, tls_attach::kCertificateReload,
                           sizeof tls_attach::kCertificateReload) == 0) {
      uint32_t generation;
      std::memcpy(&generation, answer + sizeof tls_attach::kCertificateReload, sizeof generation);
      (answer[n - 1] == 1 ? certificates_applied_ : certificates_refused_)[slot] = generation;
    }
  }
}

void TlsWorkers::send_keys(size_t slot) {
  if (key_sockets_[slot] < 0) return;
  read_acks(slot);  // what the worker answered so far, so they never pile up
  std::string message = ticket_keys::encode(current_keys());
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
    forget_slot(slot);
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
  if (!file_keys_ && keys_->tick(now_ms)) {
    for (size_t slot = 0; slot < key_sockets_.size(); ++slot) send_keys(slot);
  }
  if (now_ms - attach_tried_ms_ >= kAttachRetryMs) {
    attach_tried_ms_ = now_ms;
    for (size_t slot = 0; slot < key_sockets_.size(); ++slot) {
      if (unattached_events_[slot] >= 0 && attach_late(slot)) {
        log::printf(log::Level::notice, "TLS worker %zu (pid %d) attached to the dataplane", slot,
                    static_cast<int>(supervisor_.pid(slot)));
      }
    }
  }
}

void TlsWorkers::use_file_keys(std::optional<std::vector<ticket_keys::Key>> keys, uint64_t now_ms) {
  if (!keys && !file_keys_) return;  // generated keys stay as they are
  if (file_keys_) {
    for (auto& key : *file_keys_) key = {};
  }
  file_keys_ = std::move(keys);
  // Leaving the file: a fresh generated set, none of the file's keys kept.
  if (!file_keys_) {
    earlier_rotations_ += keys_->rotations();
    keys_ = std::make_unique<TicketKeySchedule>(rotation_ms_, now_ms);
  }
  for (size_t slot = 0; slot < key_sockets_.size(); ++slot) send_keys(slot);
}

bool TlsWorkers::attach_late(size_t slot) {
  if (supervisor_.pid(slot) < 0 || key_sockets_[slot] < 0) return false;
  const Attachment attachment = attach_to_dataplane(dataplane_socket_, unattached_events_[slot]);
  if (attachment.link < 0) return false;
  std::vector<int> fds = {attachment.link};
  fds.insert(fds.end(), attachment.channels.begin(), attachment.channels.end());
  const auto* magic = reinterpret_cast<const uint8_t*>(tls_attach::kLateAttach);
  const bool sent = tls_attach::send_with_fds(
      key_sockets_[slot], std::span(magic, sizeof tls_attach::kLateAttach), fds, MSG_DONTWAIT);
  // The worker holds them now (or nobody does, and the dataplane sees the link end at once).
  for (const int fd : fds) close(fd);
  if (!sent) {
    WEIR_LOG_LIMITED(log::Level::warning, "TLS worker %zu: attachment not sent: %s", slot,
                     strerror(errno));
    return false;
  }
  close(unattached_events_[slot]);
  unattached_events_[slot] = -1;
  attached_[slot] = true;
  return true;
}

int TlsWorkers::next_due_in(uint64_t now_ms) const {
  const int restart = supervisor_.next_due_in(now_ms);
  const uint64_t rotate = file_keys_                 ? uint64_t{INT_MAX}
                          : keys_->due_ms() > now_ms ? keys_->due_ms() - now_ms
                                                     : 0;
  int due = static_cast<int>(std::min<uint64_t>(rotate, INT_MAX));
  if (restart >= 0) due = std::min(due, restart);
  for (const int event : unattached_events_) {
    if (event < 0) continue;
    const uint64_t at = attach_tried_ms_ + kAttachRetryMs;
    due = std::min(due, static_cast<int>(at > now_ms ? at - now_ms : 0));
  }
  return due;
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

namespace {

// The files a certificate reload hands over: the configuration, then every certificate, key and
// client CA file its tls listeners name, each once.
std::vector<std::string> reload_files(const std::string& config_path,
                                      const config::Config& config) {
  std::vector<std::string> paths = {config_path};
  auto add = [&paths](const std::string& path) {
    if (std::find(paths.begin(), paths.end(), path) == paths.end()) paths.push_back(path);
  };
  for (const config::Listener& listener : config.listeners) {
    if (!listener.tls) continue;
    for (const config::TlsCertificate& entry : listener.tls->certificates) {
      add(entry.cert);
      add(entry.key);
    }
    if (listener.tls->client_ca) add(*listener.tls->client_ca);
  }
  return paths;
}

}  // namespace

std::vector<std::string> TlsWorkers::check_certificates(const config::Config& config) {
  std::vector<std::string> problems;
  if (reload_files(config_path_, config).size() > tls_attach::kMaxFds) {
    problems.push_back(config_path_ + ": the tls listeners name more than " +
                       std::to_string(tls_attach::kMaxFds - 1) +
                       " certificate, key and CA files: a certificate reload hands over at most "
                       "that many");
    return problems;
  }
  int out[2];
  if (pipe2(out, O_CLOEXEC) != 0)
    return {std::string("the certificate check: pipe: ") + strerror(errno)};
  const char* argv[] = {binary_.c_str(), "--check-config", config_path_.c_str(), nullptr};
  const pid_t pid = fork();
  if (pid == 0) {
    // Only async-signal-safe calls between fork and exec (weir-control has threads).
    if (dup2(out[1], 1) < 0 || dup2(out[1], 2) < 0) _exit(126);
    syscall(SYS_close_range, 3U, ~0U, 0);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    execv(binary_.c_str(), const_cast<char* const*>(argv));
    _exit(127);
  }
  close(out[1]);
  if (pid < 0) {
    close(out[0]);
    return {std::string("the certificate check: fork: ") + strerror(errno)};
  }
  // Bounded: a check that hangs (a file on a dead network mount) refuses the reload.
  std::string text;
  const uint64_t deadline = monotonic_ms() + kCertificateCheckTimeoutMs;
  bool timed_out = false;
  for (;;) {
    const uint64_t now = monotonic_ms();
    if (now >= deadline) {
      timed_out = true;
      break;
    }
    pollfd p{out[0], POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(deadline - now)) <= 0) continue;
    char buffer[4096];
    const ssize_t n = read(out[0], buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    if (text.size() < 64 * 1024) text.append(buffer, static_cast<size_t>(n));
  }
  close(out[0]);
  if (timed_out) kill(pid, SIGKILL);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (timed_out) {
    ++certificate_check_refusals_;
    log::printf(log::Level::error, "certificate refused: the check did not finish in 10 s");
    return {"the certificate check did not finish in 10 s: the reload is refused"};
  }
  for (size_t start = 0; start < text.size();) {
    const size_t end = std::min(text.find('\n', start), text.size());
    if (end > start) problems.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0) && problems.empty())
    problems.push_back("the certificate check failed (" + binary_ + " --check-config, status " +
                       std::to_string(status) + ")");
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) problems.clear();
  if (!problems.empty()) ++certificate_check_refusals_;
  for (const std::string& problem : problems)  // each names the file and says why
    log::printf(log::Level::error, "certificate refused: %s", problem.c_str());
  return problems;
}

void TlsWorkers::reload_certificates(const config::Config& config) {
  const std::vector<std::string> paths = reload_files(config_path_, config);
  std::vector<int> fds;
  std::string message(tls_attach::kCertificateReload, sizeof tls_attach::kCertificateReload);
  const uint32_t generation = certificates_generation_ + 1;
  message.append(reinterpret_cast<const char*>(&generation), sizeof generation);
  for (const std::string& path : paths) {
    // Opened, never read here: the worker reads them (a key stays out of weir-control).
    const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      WEIR_LOG_LIMITED(log::Level::error, "certificate reload: cannot open %s: %s", path.c_str(),
                       strerror(errno));
      for (const int f : fds) close(f);
      return;
    }
    fds.push_back(fd);
    message.append(path);
    message.push_back('\0');
  }
  if (message.size() > tls_attach::kMaxCertificateReloadBytes || fds.size() > tls_attach::kMaxFds) {
    WEIR_LOG_LIMITED(log::Level::error, "certificate reload: %zu files, too many to hand over",
                     fds.size());
    for (const int f : fds) close(f);
    return;
  }
  certificates_generation_ = generation;
  const auto* bytes = reinterpret_cast<const uint8_t*>(message.data());
  for (size_t slot = 0; slot < key_sockets_.size(); ++slot) {
    if (key_sockets_[slot] < 0) continue;
    if (!tls_attach::send_with_fds(key_sockets_[slot], std::span(bytes, message.size()), fds,
                                   MSG_DONTWAIT))
      WEIR_LOG_LIMITED(log::Level::error, "TLS worker %zu: certificate reload not sent: %s", slot,
                       strerror(errno));
  }
  for (const int f : fds) close(f);
  log::printf(log::Level::notice, "certificate reload %u sent to the TLS workers (%zu files)",
              generation, paths.size());
}

uint64_t TlsWorkers::slot_counter(size_t slot, size_t index) const {
  return ended_counters_[slot][index] +
         (counter_blocks_[slot] ? counter_blocks_[slot]->load(index) : 0);
}

nlohmann::json TlsWorkers::worker_counters() const {
  nlohmann::json out = nlohmann::json::array();
  for (size_t slot = 0; slot < counter_blocks_.size(); ++slot) {
    nlohmann::json values = {{"tls_worker", slot}};
    for (size_t i = 0; i < counters::kTlsWorkerCounters.size(); ++i)
      values[std::string(counters::kTlsWorkerCounters[i].name)] = slot_counter(slot, i);
    out.push_back(std::move(values));
  }
  return out;
}

nlohmann::json TlsWorkers::certificate_refusals() const {
  nlohmann::json out = {{"certificates_refused_start", 0},
                        {"certificates_refused_reload", certificate_check_refusals_.load()}};
  for (size_t i = 0; i < counters::kTlsWorkerCounters.size(); ++i) {
    const std::string name(counters::kTlsWorkerCounters[i].name);
    if (!out.contains(name)) continue;
    for (size_t slot = 0; slot < counter_blocks_.size(); ++slot)
      out[name] = out[name].get<uint64_t>() + slot_counter(slot, i);
  }
  return out;
}

nlohmann::json TlsWorkers::describe() {
  nlohmann::json pids = nlohmann::json::array();
  for (pid_t pid : supervisor_.pids()) pids.push_back(pid);
  size_t current = 0, with_current_certificates = 0, refused_certificates = 0;
  for (size_t slot = 0; slot < key_sockets_.size(); ++slot) {
    read_acks(slot);
    if (key_sockets_[slot] < 0) continue;
    if (acknowledged_[slot] == current_keys().front().name) ++current;
    if (certificates_applied_[slot] == certificates_generation_) ++with_current_certificates;
    if (certificates_generation_ > 0 && certificates_refused_[slot] == certificates_generation_)
      ++refused_certificates;
  }
  std::string name;
  for (const uint8_t byte : current_keys().front().name) {
    static constexpr char kHex[] = "0123456789abcdef";
    name += kHex[byte >> 4];
    name += kHex[byte & 15];
  }
  return {{"workers", key_sockets_.size()},
          {"running", supervisor_.running()},
          {"restarts", supervisor_.restarts()},
          {"key_rotations", key_rotations()},
          {"ticket_keys", file_keys_ ? "file" : "generated"},
          {"current_key_name", name},
          {"pids", pids},
          {"with_current_key", current},
          {"attached", std::count(attached_.begin(), attached_.end(), true)},
          {"certificates_generation", certificates_generation_},
          {"with_current_certificates", with_current_certificates},
          {"certificates_refused", refused_certificates}};
}

}  // namespace weir::control
