// weir-tls-worker: TLS termination for `tls` listeners (docs/tls.md). One process, no threads:
// loads the configuration's certificates and keys, drops root, then serves the channels whose
// memfds it was given, sleeping on its eventfd when every ring is idle.
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "common/version.h"
#include "config/config.h"
#include "tls/privileges.h"
#include "tls/tls_worker.h"

namespace {

void print_usage(FILE* out) {
  std::fprintf(
      out,
      "usage: weir-tls-worker --config FILE --event-fd FD --channel FD[,PEER_EVENT_FD]...\n"
      "       weir-tls-worker --version\n"
      "\n"
      "  --config FILE     the Weir configuration (its tls listeners and tls section)\n"
      "  --event-fd FD     an inherited eventfd this worker sleeps on\n"
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

}  // namespace

int main(int argc, char** argv) {
  using namespace weir;
  if (argc == 2 && std::strcmp(argv[1], "--version") == 0) {
    std::printf("%s\n", version_line("weir-tls-worker").c_str());
    return 0;
  }
  std::string config_path;
  int event_fd = -1;
  std::vector<std::pair<int, int>> channels;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string option = argv[i], value = argv[i + 1];
    if (option == "--config") {
      config_path = value;
    } else if (option == "--event-fd") {
      event_fd = parse_fd(value);
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

  const config::LoadResult loaded = config::load_file(config_path);
  for (const auto& error : loaded.errors) std::fprintf(stderr, "%s\n", error.to_string().c_str());
  if (!loaded.ok()) return 1;
  tls::Contexts contexts;
  std::vector<std::string> errors;
  if (!contexts.load(*loaded.config, errors)) {
    for (const auto& error : errors) std::fprintf(stderr, "weir-tls-worker: %s\n", error.c_str());
    return 1;
  }
  // The keys are in memory: nothing after this point runs as root.
  if (const std::string why = tls::drop_privileges(loaded.config->tls.user.value_or(""));
      !why.empty()) {
    std::fprintf(stderr, "weir-tls-worker: %s\n", why.c_str());
    return 1;
  }

  tls::TlsWorker worker(contexts);
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
  for (;;) {
    if (worker.poll_once(now_ms())) continue;
    if (!worker.prepare_sleep()) continue;
    pollfd fds[2] = {{event_fd, POLLIN, 0}, {signals, POLLIN, 0}};
    poll(fds, 2, worker.next_deadline_in(now_ms()));
    worker.awake();
    if (fds[0].revents & POLLIN) {
      uint64_t n;
      [[maybe_unused]] const ssize_t r = read(event_fd, &n, sizeof n);
    }
    if (fds[1].revents & POLLIN) break;
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
