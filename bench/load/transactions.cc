// weir-bench-load transactions: the seed's load test, closed loop. Each of --clients clients
// repeats connect, send one request frame, receive it back, close, for --seconds (or until
// --count transactions have been started). What makes it fast enough to measure a proxy (the
// earlier bench/transactions.cc managed ~3,100/s): edge-triggered epoll with one registration a
// connection (no MOD, no DEL: close removes it), reads until EAGAIN, and the clock read once per
// batch of events rather than per event.
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "bench/load/load.h"

namespace weir::bench {
namespace {

struct Client {
  int fd = -1;
  uint32_t sent = 0;
  uint32_t received = 0;
  uint32_t request = 0;  // which of the distinct requests it sends
  Clock::time_point started;
};

}  // namespace

int run_transactions(const Options& options) {
  const auto requests = make_requests(options.bytes, 64);
  const size_t size = options.bytes;
  tools::Fd epoll(epoll_create1(EPOLL_CLOEXEC));
  if (epoll.get() < 0) tools::throw_errno("epoll_create1");
  std::vector<Client> clients(static_cast<size_t>(options.clients));
  std::vector<uint8_t> scratch(size_t{64} << 10);
  std::vector<uint32_t> latencies;
  latencies.reserve(1 << 20);
  std::map<std::string, uint64_t> failure_reasons;
  uint64_t started = 0, transactions = 0, failures = 0, mismatches = 0;
  uint64_t bytes_sent = 0, bytes_received = 0;
  const auto start = Clock::now();
  const auto stop_at = start + std::chrono::duration<double>(options.seconds);
  auto now = start;
  bool stopping = false;
  size_t open_clients = 0;

  auto more_to_start = [&] {
    if (stopping) return false;
    if (options.count > 0) return started < options.count;
    return now < stop_at;
  };
  auto open = [&](size_t i) {
    Client& c = clients[i];
    while (more_to_start()) {
      ++started;
      c.sent = c.received = 0;
      c.request = static_cast<uint32_t>(started % requests.size());
      c.started = now;
      c.fd = start_connect(options.endpoint);
      if (c.fd < 0) {
        ++failures;
        ++failure_reasons[std::string("connect ") + strerrorname_np(errno)];
        continue;
      }
      epoll_event ev{};
      ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
      ev.data.u64 = i;
      epoll_ctl(epoll.get(), EPOLL_CTL_ADD, c.fd, &ev);
      ++open_clients;
      return;
    }
    c.fd = -1;
  };
  auto finish = [&](size_t i, const char* failure) {
    Client& c = clients[i];
    if (failure) {
      ++failures;
      ++failure_reasons[socket_error_name(c.fd, failure)];
    } else {
      ++transactions;
      latencies.push_back(static_cast<uint32_t>(
          std::chrono::duration_cast<std::chrono::microseconds>(now - c.started).count()));
    }
    close(c.fd);
    c.fd = -1;
    --open_clients;
    open(i);
  };
  // Advances client i as far as its socket allows; finishes it when done or failed.
  auto step = [&](size_t i, uint32_t events) {
    Client& c = clients[i];
    const std::vector<uint8_t>& request = requests[c.request];
    if (events & EPOLLERR) return finish(i, "error");
    while (c.sent < size) {
      const ssize_t w = send(c.fd, request.data() + c.sent, size - c.sent, MSG_NOSIGNAL);
      if (w < 0) {
        if (errno == EAGAIN || errno == ENOTCONN) break;  // not connected yet, or buffer full
        return finish(i, "send failed");
      }
      c.sent += static_cast<uint32_t>(w);
      bytes_sent += static_cast<uint64_t>(w);
    }
    for (;;) {
      const ssize_t r = recv(c.fd, scratch.data(), scratch.size(), 0);
      if (r < 0) {
        if (errno == EAGAIN) return;
        return finish(i, "recv failed");
      }
      if (r == 0) return finish(i, "closed early");
      bytes_received += static_cast<uint64_t>(r);
      if (c.received + static_cast<size_t>(r) > size ||
          std::memcmp(scratch.data(), request.data() + c.received, static_cast<size_t>(r)) != 0) {
        ++mismatches;
        return finish(i, "answer differs");
      }
      c.received += static_cast<uint32_t>(r);
      if (c.received == size) return finish(i, nullptr);
    }
  };

  for (size_t i = 0; i < clients.size(); ++i) open(i);
  std::vector<epoll_event> events(1024);
  // After the last start, clients still open get this long to finish before they count as stuck.
  constexpr auto kDrain = std::chrono::seconds(10);
  while (open_clients > 0) {
    const int n = epoll_wait(epoll.get(), events.data(), static_cast<int>(events.size()), 100);
    now = Clock::now();
    if (!stopping && !more_to_start()) stopping = true;
    if (stopping && now > stop_at + kDrain && options.count == 0) break;
    for (int e = 0; e < n; ++e) {
      const size_t i = events[e].data.u64;
      if (clients[i].fd >= 0) step(i, events[e].events);
    }
  }
  const double elapsed = std::chrono::duration<double>(now - start).count();
  if (open_clients > 0) {
    failures += open_clients;
    failure_reasons["stuck"] += open_clients;
  }
  std::printf(
      "{\"mode\":\"transactions\",\"clients\":%d,\"bytes\":%zu,\"transactions\":%llu,"
      "\"failures\":%llu,\"mismatches\":%llu,\"failure_reasons\":%s,\"bytes_sent\":%llu,"
      "\"bytes_received\":%llu,\"seconds\":%.3f,\"per_second\":%.1f,\"latency_us\":%s}\n",
      options.clients, size, static_cast<unsigned long long>(transactions),
      static_cast<unsigned long long>(failures), static_cast<unsigned long long>(mismatches),
      reasons_json(failure_reasons).c_str(), static_cast<unsigned long long>(bytes_sent),
      static_cast<unsigned long long>(bytes_received), elapsed,
      static_cast<double>(transactions) / elapsed, latency_json(latencies).c_str());
  return failures == 0 && mismatches == 0 ? 0 : 1;
}

}  // namespace weir::bench
