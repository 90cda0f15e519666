// weir-bench-load echo: the benchmark's backend. Echoes every byte as it arrives, without looking
// at it (the clients verify), so the backend costs as little as a kernel TCP server can: one
// thread, edge-triggered epoll, one recv and one send per readiness in the common case. On
// SIGTERM or SIGINT (read through a signalfd in the loop) it prints what it accepted and echoed.
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <memory>
#include <vector>

#include "bench/load/load.h"

namespace weir::bench {
namespace {

constexpr size_t kChunk = size_t{64} << 10;

struct Connection {
  int fd = -1;
  std::vector<uint8_t> unsent;  // echoed bytes the socket would not take yet
  size_t unsent_from = 0;
};

struct Totals {
  uint64_t accepted = 0;
  uint64_t bytes = 0;
};

// Sends what is queued; false when the socket still cannot take all of it.
bool flush(Connection& c) {
  while (c.unsent_from < c.unsent.size()) {
    const ssize_t w =
        send(c.fd, c.unsent.data() + c.unsent_from, c.unsent.size() - c.unsent_from, MSG_NOSIGNAL);
    if (w < 0) return false;  // EAGAIN, or an error the next recv reports
    c.unsent_from += static_cast<size_t>(w);
  }
  c.unsent.clear();
  c.unsent_from = 0;
  return true;
}

// Reads and echoes until the socket has nothing more or cannot take the echo. False: close it.
bool service(Connection& c, std::vector<uint8_t>& scratch, Totals& totals) {
  if (!flush(c)) return true;  // EPOLLOUT will bring us back
  for (;;) {
    const ssize_t r = recv(c.fd, scratch.data(), scratch.size(), 0);
    if (r == 0) return false;
    if (r < 0) return errno == EAGAIN || errno == EINTR;
    totals.bytes += static_cast<size_t>(r);
    ssize_t w = send(c.fd, scratch.data(), static_cast<size_t>(r), MSG_NOSIGNAL);
    if (w < 0) {
      if (errno != EAGAIN) return false;
      w = 0;
    }
    if (w < r) {  // keep the rest and stop reading until the socket drains
      c.unsent.assign(scratch.data() + w, scratch.data() + r);
      return true;
    }
  }
}

}  // namespace

int run_echo(const Options& options) {
  tools::Fd listener(
      socket(options.endpoint.address.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (listener.get() < 0) tools::throw_errno("socket");
  const int one = 1;
  setsockopt(listener.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(listener.get(), reinterpret_cast<const sockaddr*>(&options.endpoint.address),
           options.endpoint.length) != 0)
    tools::throw_errno("bind " + tools::format_endpoint(options.endpoint.address));
  if (listen(listener.get(), 65535) != 0) tools::throw_errno("listen");
  sockaddr_storage bound{};
  socklen_t bound_length = sizeof bound;
  getsockname(listener.get(), reinterpret_cast<sockaddr*>(&bound), &bound_length);

  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigprocmask(SIG_BLOCK, &signals, nullptr);
  tools::Fd signal_fd(signalfd(-1, &signals, SFD_NONBLOCK | SFD_CLOEXEC));
  tools::Fd epoll(epoll_create1(EPOLL_CLOEXEC));
  if (signal_fd.get() < 0 || epoll.get() < 0) tools::throw_errno("signalfd/epoll");
  // The listener and the signalfd are told apart from connections by these two tags.
  static int listener_tag, signal_tag;
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLET;
  ev.data.ptr = &listener_tag;
  epoll_ctl(epoll.get(), EPOLL_CTL_ADD, listener.get(), &ev);
  ev.events = EPOLLIN;
  ev.data.ptr = &signal_tag;
  epoll_ctl(epoll.get(), EPOLL_CTL_ADD, signal_fd.get(), &ev);
  std::printf("{\"listening\":\"%s\"}\n", tools::format_endpoint(bound).c_str());
  std::fflush(stdout);

  Totals totals;
  std::vector<uint8_t> scratch(kChunk);
  std::vector<epoll_event> events(256);
  for (;;) {
    const int n = epoll_wait(epoll.get(), events.data(), static_cast<int>(events.size()), -1);
    if (n < 0 && errno != EINTR) tools::throw_errno("epoll_wait");
    for (int e = 0; e < n; ++e) {
      void* tag = events[e].data.ptr;
      if (tag == &signal_tag) {
        std::printf("{\"accepted\":%llu,\"echoed_bytes\":%llu}\n",
                    static_cast<unsigned long long>(totals.accepted),
                    static_cast<unsigned long long>(totals.bytes));
        return 0;
      }
      if (tag == &listener_tag) {
        for (;;) {
          const int fd = accept4(listener.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
          if (fd < 0) break;  // EAGAIN, or a connection reset before accept: nothing to do
          ++totals.accepted;
          setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          auto* c = new Connection{fd, {}, 0};
          epoll_event cev{};
          cev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
          cev.data.ptr = c;
          epoll_ctl(epoll.get(), EPOLL_CTL_ADD, fd, &cev);
        }
        continue;
      }
      std::unique_ptr<Connection> c(static_cast<Connection*>(tag));
      if (!(events[e].events & EPOLLERR) && service(*c, scratch, totals)) {
        c.release();  // still open
        continue;
      }
      close(c->fd);  // also removes it from the epoll set
    }
  }
}

}  // namespace weir::bench
