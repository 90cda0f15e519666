// weir-tls-worker: TLS termination for `tls` listeners (docs/tls.md). One process, no threads:
// loads the configuration's certificates and keys, drops root, then serves the channels whose
// memfds it was given, sleeping on its eventfd when every ring is idle.
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/tls_attach.h"
#include "common/tls_counter_block.h"
#include "common/version.h"
#include "config/certificate_check.h"
#include "config/config.h"
#include "tls/certificate_reload.h"
#include "tls/privileges.h"
#include "tls/tls_worker.h"

namespace {

void print_usage(FILE* out) {
  std::fprintf(
      out,
      "usage: weir-tls-worker --config FILE --event-fd FD [--ticket-keys FD] [--counters FD]\n"
      "                       [--dataplane-link FD] [--channel FD[,PEER_EVENT_FD]]...\n"
      "       weir-tls-worker --check-config FILE\n"
      "       weir-tls-worker --version\n"
      "\n"
      "  --config FILE     the Weir configuration (its tls listeners and tls section)\n"
      "  --event-fd FD     an inherited eventfd this worker sleeps on\n"
      "  --ticket-keys FD  an inherited SOCK_SEQPACKET socket weir-control sends the session\n"
      "                    ticket keys on (common/ticket_key_wire.h); its end means\n"
      "                    weir-control is gone, and the worker stops. Omitted: a key of\n"
      "                    its own, never rotated\n"
      "  --counters FD     an inherited counter block memfd (common/tls_counter_block.h)\n"
      "                    this worker's counters are published to for weir-control\n"
      "  --dataplane-link FD  the inherited connection to the dataplane the channels came\n"
      "                    from (common/tls_attach.h); its end means the dataplane is\n"
      "                    gone, and the worker stops (weir-control starts a new one)\n"
      "  --channel FD,...  an inherited channel memfd (common/shm_channel.h), and the\n"
      "                    eventfd that wakes its dataplane side (omitted: it polls)\n");
}

uint64_t now_ms() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

int parse_fd(const std::string& text) {
  char* end = nullptr;
  const long value = std::strtol(text.c_str(), &end, 10);
  return (end != text.c_str() && *end == '\0' && value >= 0 && value < 65536)
             ? static_cast<int>(value)
             : -1;
}

enum class KeyRead { none, keys, attach, certificates, closed, malformed };

// One message from weir-control's ticket key socket, if there is one (`wait_ms`: how long to wait
// for it; 0 does not block): a set of ticket keys (applied here), or a late attachment to the
// dataplane (common/tls_attach.h), whose fds (the link, then the channels) go to `attach_fds`, or a
// certificate reload, whose message goes to `reload` and fds to `attach_fds`.
KeyRead read_control_message(int fd, int wait_ms, weir::tls::TicketKeys& keys,
                             std::vector<int>& attach_fds, std::vector<uint8_t>& reload) {
  pollfd p{fd, POLLIN, 0};
  if (wait_ms > 0 && poll(&p, 1, wait_ms) <= 0) return KeyRead::none;
  static uint8_t buffer[weir::tls_attach::kMaxCertificateReloadBytes];
  std::vector<int> fds;
  errno = 0;  // a truncated message fails without one
  const ssize_t n = weir::tls_attach::receive_with_fds(fd, buffer, fds);
  auto close_fds = [&fds] {
    for (const int f : fds) close(f);
  };
  if (n == 0) return close_fds(), KeyRead::closed;
  if (n < 0) {
    close_fds();
    if (errno == EAGAIN || errno == EINTR) return KeyRead::none;
    return errno == 0 ? KeyRead::malformed : KeyRead::closed;
  }
  const auto size = static_cast<size_t>(n);
  if (size == sizeof weir::tls_attach::kLateAttach &&
      std::memcmp(buffer, weir::tls_attach::kLateAttach, size) == 0) {
    if (fds.size() < 2) return close_fds(), KeyRead::malformed;
    attach_fds = std::move(fds);
    return KeyRead::attach;
  }
  if (size >= sizeof weir::tls_attach::kCertificateReload &&
      std::memcmp(buffer, weir::tls_attach::kCertificateReload,
                  sizeof weir::tls_attach::kCertificateReload) == 0) {
    reload.assign(buffer, buffer + size);
    attach_fds = std::move(fds);
    return KeyRead::certificates;
  }
  close_fds();  // a key set carries no fd
  const auto decoded = size <= weir::ticket_keys::kMaxMessageBytes
                           ? weir::ticket_keys::decode(buffer, size)
                           : std::nullopt;
  std::memset(buffer, 0, size);
  if (!decoded) return KeyRead::malformed;
  keys.replace(*decoded);
  // The acknowledgement: the newest key's name, once it encrypts this worker's tickets (what
  // weir-control's status and the tests wait for).
  [[maybe_unused]] const ssize_t sent = send(
      fd, decoded->front().name.data(), decoded->front().name.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
  return KeyRead::keys;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace weir;
  if (argc == 2 && std::strcmp(argv[1], "--version") == 0) {
    std::printf("%s\n", version_line("weir-tls-worker").c_str());
    return 0;
  }
  // What weir-control runs before a reload: the certificate check of --check-config
  // (config/certificate_check.h), in a process of its own so that no key is read by weir-control.
  if (argc == 3 && std::strcmp(argv[1], "--check-config") == 0) {
    const config::LoadResult loaded = config::load_file(argv[2]);
    std::vector<config::Diagnostic> problems = loaded.errors;
    if (loaded.ok()) problems = config::check_certificates(*loaded.config, std::time(nullptr));
    for (const auto& p : problems) std::printf("%s\n", p.to_string().c_str());
    return problems.empty() ? 0 : 1;
  }
  std::string config_path;
  int event_fd = -1;
  int keys_fd = -1;
  int link_fd = -1;
  int counters_fd = -1;
  std::vector<std::pair<int, int>> channels;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string option = argv[i], value = argv[i + 1];
    if (option == "--config") {
      config_path = value;
    } else if (option == "--event-fd") {
      event_fd = parse_fd(value);
    } else if (option == "--ticket-keys") {
      keys_fd = parse_fd(value);
      if (keys_fd < 0) {
        std::fprintf(stderr, "weir-tls-worker: bad --ticket-keys \"%s\"\n", value.c_str());
        return 2;
      }
    } else if (option == "--counters") {
      counters_fd = parse_fd(value);
      if (counters_fd < 0) {
        std::fprintf(stderr, "weir-tls-worker: bad --counters \"%s\"\n", value.c_str());
        return 2;
      }
    } else if (option == "--dataplane-link") {
      link_fd = parse_fd(value);
      if (link_fd < 0) {
        std::fprintf(stderr, "weir-tls-worker: bad --dataplane-link \"%s\"\n", value.c_str());
        return 2;
      }
    } else if (option == "--channel") {
      const size_t comma = value.find(',');
      const int fd = parse_fd(value.substr(0, comma));
      const int peer = comma == std::string::npos ? -1 : parse_fd(value.substr(comma + 1));
      if (fd < 0 || (comma != std::string::npos && peer < 0)) {
        std::fprintf(stderr, "weir-tls-worker: bad --channel \"%s\"\n", value.c_str());
        return 2;
      }
      channels.emplace_back(fd, peer);
    } else {
      print_usage(stderr);
      return 2;
    }
  }
  if (argc % 2 == 0 || config_path.empty() || event_fd < 0) {
    print_usage(stderr);
    return 2;
  }

  // The counter block first: a start refused for its certificates is counted in it.
  std::optional<tls_counters::BlockMemory> counter_block;
  if (counters_fd >= 0) {
    std::string error;
    counter_block = tls_counters::BlockMemory::map(counters_fd, error);
    if (!counter_block) {
      std::fprintf(stderr, "weir-tls-worker: counter block fd %d: %s\n", counters_fd,
                   error.c_str());
      return 1;
    }
  }
  const config::LoadResult loaded = config::load_file(config_path);
  for (const auto& error : loaded.errors) std::fprintf(stderr, "%s\n", error.to_string().c_str());
  if (!loaded.ok()) return 1;
  auto contexts = std::make_shared<tls::Contexts>();
  // weir-control wrote the current keys before starting this process: they are there to read, and
  // no ticket is ever issued under a key of this worker's own.
  std::vector<int> received_fds;
  std::vector<uint8_t> reload_message;
  if (keys_fd >= 0 && read_control_message(keys_fd, 10'000, contexts->ticket_keys(), received_fds,
                                           reload_message) != KeyRead::keys) {
    std::fprintf(stderr, "weir-tls-worker: no ticket keys on fd %d\n", keys_fd);
    return 1;
  }
  std::vector<std::string> errors;
  if (!contexts->load(*loaded.config, errors)) {
    for (const auto& error : errors)
      std::fprintf(stderr, "weir-tls-worker: certificate refused: %s\n", error.c_str());
    if (counter_block) {
      tls::WorkerCounters refused;
      refused.certificates_refused_start = 1;
      tls::publish(refused, *counter_block);
    }
    return 1;
  }
  // The keys are in memory: nothing after this point runs as root.
  if (const std::string why = tls::drop_privileges(loaded.config->tls.user.value_or(""));
      !why.empty()) {
    std::fprintf(stderr, "weir-tls-worker: %s\n", why.c_str());
    return 1;
  }

  tls::TlsWorker worker(contexts);  // the contexts: shared with the sessions opened under them
  if (counter_block) worker.publish_to(&*counter_block);
  for (const auto& [fd, peer] : channels) {
    std::string error;
    auto memory = shm::ChannelMemory::map(fd, error);
    if (!memory) {
      std::fprintf(stderr, "weir-tls-worker: channel fd %d: %s\n", fd, error.c_str());
      return 1;
    }
    worker.add_channel(std::move(*memory), peer);
  }

  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  sigprocmask(SIG_BLOCK, &stop, nullptr);
  const int signals = signalfd(-1, &stop, SFD_CLOEXEC | SFD_NONBLOCK);
  // A late attachment (weir-control found the dataplane after this worker started): the link and
  // the channels, served from now on. One already attached keeps what it has.
  auto attach = [&](std::vector<int>& fds) {
    if (link_fd >= 0) {
      std::fprintf(stderr, "weir-tls-worker: a second attachment, ignored\n");
      for (const int f : fds) close(f);
      fds.clear();
      return;
    }
    size_t mapped = 0;
    for (size_t i = 1; i < fds.size(); ++i) {
      std::string error;
      auto memory = shm::ChannelMemory::map(fds[i], error);  // owns the fd, also on failure
      if (!memory) {
        std::fprintf(stderr, "weir-tls-worker: late channel: %s\n", error.c_str());
        continue;
      }
      worker.add_channel(std::move(*memory), -1);
      ++mapped;
    }
    link_fd = fds[0];
    fds.clear();
    std::fprintf(stderr, "weir-tls-worker: attached to the dataplane late: %zu channel(s)\n",
                 mapped);
  };
  // New contexts for new handshakes; open sessions keep theirs. Refused: the old ones stay.
  auto reload_certificates = [&]() {
    const tls::CertificateReload reload =
        tls::load_certificate_reload(reload_message, received_fds, contexts->shared_ticket_keys());
    for (const auto& error : reload.errors)
      std::fprintf(stderr, "weir-tls-worker: certificate reload refused: %s\n", error.c_str());
    if (!reload.contexts) {
      ++worker.counters().certificates_refused_reload;
      worker.publish_counters();
    } else {
      contexts = reload.contexts;
      worker.use_contexts(contexts);
      std::fprintf(stderr, "weir-tls-worker: certificates reloaded (generation %u)\n",
                   reload.generation);
    }
    const std::string ack = tls::certificate_reload_ack(reload);
    [[maybe_unused]] const ssize_t sent =
        send(keys_fd, ack.data(), ack.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
  };
  // The key socket is looked at when the worker sleeps, and once a second while it is busy (a
  // system call a second, not one per pass).
  uint64_t keys_checked_ms = now_ms();
  auto take_keys = [&]() {
    if (keys_fd < 0) return true;
    keys_checked_ms = now_ms();
    for (;;) {
      switch (
          read_control_message(keys_fd, 0, contexts->ticket_keys(), received_fds, reload_message)) {
        case KeyRead::none:
          return true;
        case KeyRead::keys:
          continue;
        case KeyRead::attach:
          attach(received_fds);
          continue;
        case KeyRead::certificates:
          reload_certificates();
          continue;
        case KeyRead::malformed:
          std::fprintf(stderr, "weir-tls-worker: a malformed ticket key message, ignored\n");
          continue;
        case KeyRead::closed:
          std::fprintf(stderr, "weir-tls-worker: weir-control is gone (ticket key socket)\n");
          return false;
      }
    }
  };
  // The dataplane's link carries nothing: readable means ended.
  auto dataplane_gone = [&]() {
    if (link_fd < 0) return false;
    uint8_t byte;
    const ssize_t n = recv(link_fd, &byte, 1, MSG_DONTWAIT);
    if (n > 0 || (n < 0 && (errno == EAGAIN || errno == EINTR))) return false;
    std::fprintf(stderr, "weir-tls-worker: the dataplane is gone (its link ended)\n");
    return true;
  };
  for (;;) {
    if (now_ms() - keys_checked_ms >= 1000) {
      if (keys_fd >= 0 && !take_keys()) break;
      keys_checked_ms = now_ms();
      if (dataplane_gone()) break;
    }
    if (worker.poll_once(now_ms())) continue;
    if (!worker.prepare_sleep()) continue;
    pollfd fds[4] = {{event_fd, POLLIN, 0},
                     {signals, POLLIN, 0},
                     {keys_fd, POLLIN, 0},
                     {link_fd, POLLIN, 0}};  // a negative fd is ignored by poll
    poll(fds, 4, worker.next_deadline_in(now_ms()));
    worker.awake();
    if (fds[0].revents & POLLIN) {
      uint64_t n;
      [[maybe_unused]] const ssize_t r = read(event_fd, &n, sizeof n);
    }
    if (fds[1].revents & POLLIN) break;
    if (fds[2].revents != 0 && !take_keys()) break;
    if (fds[3].revents != 0 && dataplane_gone()) break;
  }
  const tls::WorkerCounters& c = worker.counters();
  std::fprintf(stderr,
               "weir-tls-worker: stopping: %llu sessions opened, %llu TLS 1.3 and %llu TLS 1.2 "
               "handshakes\n",
               static_cast<unsigned long long>(c.sessions_opened),
               static_cast<unsigned long long>(c.handshakes_tls13),
               static_cast<unsigned long long>(c.handshakes_tls12));
  return 0;
}
