// The seed's load test as a benchmark client: each of C concurrent clients repeats connect, send
// 4 KiB, receive 4 KiB, close, for a bounded time, against anything that echoes (a weir-frame-echo
// backend directly, or through a load balancer). The 4 KiB are one Weir frame, so the echo
// verifies it, and the answer is checked byte for byte.
//
//   transactions --connect ADDR:PORT [--clients 64] [--seconds 5] [--bytes 4096]
//
// Prints one JSON object: transactions, failures, seconds, per_second, latency_us {p50, p99}.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "common/frame.h"

namespace {

using Clock = std::chrono::steady_clock;

struct Client {
  int fd = -1;
  size_t sent = 0;
  size_t received = 0;
  Clock::time_point started;
};

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr,
               "transactions: %s\nusage: transactions --connect ADDR:PORT [--clients N] "
               "[--seconds S] [--bytes B]\n",
               why);
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  std::string target;
  int clients = 64;
  double seconds = 5;
  size_t bytes = 4096;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (i + 1 >= argc) usage(("missing value for " + arg).c_str());
    const char* value = argv[++i];
    if (arg == "--connect") {
      target = value;
    } else if (arg == "--clients") {
      clients = std::atoi(value);
    } else if (arg == "--seconds") {
      seconds = std::atof(value);
    } else if (arg == "--bytes") {
      bytes = static_cast<size_t>(std::atol(value));
    } else {
      usage(("unknown option " + arg).c_str());
    }
  }
  const size_t colon = target.rfind(':');
  sockaddr_in address{};
  address.sin_family = AF_INET;
  if (colon == std::string::npos ||
      inet_pton(AF_INET, target.substr(0, colon).c_str(), &address.sin_addr) != 1)
    usage("--connect needs IPV4:PORT");
  address.sin_port = htons(static_cast<uint16_t>(std::atoi(target.c_str() + colon + 1)));
  if (clients < 1 || seconds <= 0 || seconds > 600 || bytes < weir::frame::encoded_size(0))
    usage("--clients >= 1, 0 < --seconds <= 600, --bytes >= 20");

  std::vector<uint8_t> payload(bytes - weir::frame::encoded_size(0));
  for (size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<uint8_t>(i * 131 + 7);
  const std::vector<uint8_t> request = weir::frame::encode(0, 1, 0, payload);
  std::vector<uint8_t> buffer(request.size());

  const int epoll = epoll_create1(0);
  std::vector<Client> state(static_cast<size_t>(clients));
  std::vector<uint32_t> latencies;
  uint64_t transactions = 0, failures = 0;
  const auto start = Clock::now();
  const auto stop_at = start + std::chrono::duration<double>(seconds);

  auto open = [&](size_t i) {
    Client& c = state[i];
    c = Client{};
    c.fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    const int one = 1;
    setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c.started = Clock::now();
    if (connect(c.fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0 &&
        errno != EINPROGRESS) {
      ++failures;
    }
    epoll_event ev{};
    ev.events = EPOLLOUT | EPOLLIN;
    ev.data.u64 = i;
    epoll_ctl(epoll, EPOLL_CTL_ADD, c.fd, &ev);
  };
  auto finish = [&](size_t i, bool ok) {
    Client& c = state[i];
    epoll_ctl(epoll, EPOLL_CTL_DEL, c.fd, nullptr);
    close(c.fd);
    if (ok) {
      ++transactions;
      latencies.push_back(static_cast<uint32_t>(
          std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - c.started).count()));
    } else {
      ++failures;
    }
    if (Clock::now() < stop_at)
      open(i);
    else
      c.fd = -1;
  };
  for (size_t i = 0; i < state.size(); ++i) open(i);

  size_t open_clients = state.size();
  std::vector<epoll_event> events(256);
  while (open_clients > 0) {
    const int n = epoll_wait(epoll, events.data(), static_cast<int>(events.size()), 100);
    if (Clock::now() > stop_at + std::chrono::seconds(10)) break;  // a stuck peer
    for (int e = 0; e < n; ++e) {
      const size_t i = events[e].data.u64;
      Client& c = state[i];
      if (c.fd < 0) continue;
      if (events[e].events & (EPOLLERR | EPOLLHUP) && c.sent < request.size()) {
        finish(i, false);
        if (c.fd < 0) --open_clients;
        continue;
      }
      if (c.sent < request.size() && (events[e].events & EPOLLOUT)) {
        const ssize_t w =
            send(c.fd, request.data() + c.sent, request.size() - c.sent, MSG_NOSIGNAL);
        if (w > 0) c.sent += static_cast<size_t>(w);
        if (c.sent == request.size()) {
          epoll_event ev{};
          ev.events = EPOLLIN;
          ev.data.u64 = i;
          epoll_ctl(epoll, EPOLL_CTL_MOD, c.fd, &ev);
        }
      }
      if (events[e].events & EPOLLIN) {
        const ssize_t r = recv(c.fd, buffer.data() + c.received, buffer.size() - c.received, 0);
        if (r <= 0) {
          if (r < 0 && errno == EAGAIN) continue;
          finish(i, false);
        } else {
          c.received += static_cast<size_t>(r);
          if (c.received < buffer.size()) continue;
          finish(i, buffer == request);
        }
        if (c.fd < 0) --open_clients;
      }
    }
  }
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  std::sort(latencies.begin(), latencies.end());
  auto percentile = [&](double p) {
    return latencies.empty() ? 0u : latencies[static_cast<size_t>(p * (latencies.size() - 1))];
  };
  std::printf(
      "{\"transactions\":%llu,\"failures\":%llu,\"seconds\":%.3f,\"per_second\":%.1f,"
      "\"latency_us\":{\"p50\":%u,\"p99\":%u}}\n",
      static_cast<unsigned long long>(transactions), static_cast<unsigned long long>(failures),
      elapsed, transactions / elapsed, percentile(0.5), percentile(0.99));
  return failures == 0 ? 0 : 1;
}
