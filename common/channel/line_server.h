// The server side of the control channel: a Unix stream socket served with poll() from its owner's
// loop (the dataplane's main lcore, weir-control's main thread). Lines in, lines out, through a
// handler (the dataplane's control requests, weir-control's admin protocol). Bounded: at most
// kMaxClients connections, kMaxRequestLine bytes per request, kMaxOutput bytes of replies waiting
// per client; a client past a bound is told why (in the envelope) and disconnected. No DPDK.
#pragma once

#include <poll.h>

#include <chrono>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "common/channel/envelope.h"

namespace weir::channel {

class LineServer {
 public:
  static constexpr size_t kMaxClients = 16;
  static constexpr size_t kMaxOutput = 16 << 20;
  // A client that sends no complete request for this long is told so and closed, so that stuck or
  // forgotten clients cannot keep every slot.
  static constexpr std::chrono::milliseconds kIdleTimeout{60'000};

  // `handle` turns one request line into one reply line (neither with its newline).
  explicit LineServer(std::function<std::string(std::string_view)> handle)
      : handle_(std::move(handle)) {}
  ~LineServer();
  LineServer(const LineServer&) = delete;
  LineServer& operator=(const LineServer&) = delete;

  // Binds `path` (replacing a stale socket file). Returns an error message naming `setting`, the
  // configuration key the path came from, or "".
  std::string open(const std::string& path, const std::string& setting);
  // The descriptors to poll, appended to `fds`.
  void add_poll_fds(std::vector<pollfd>& fds) const;
  // Serves whatever `fds` (as returned by poll) says is ready, and closes idle clients: call it
  // after every poll, whether or not anything was ready.
  void serve(const std::vector<pollfd>& fds);
  // For tests: the clock serve() reads (steady_clock by default).
  void set_clock(std::function<std::chrono::steady_clock::time_point()> clock) {
    clock_ = std::move(clock);
  }
  size_t clients() const { return clients_.size(); }

 private:
  struct Client {
    int fd = -1;
    std::string input;
    std::string output;
    bool closing = false;  // flush the output, then close
    std::chrono::steady_clock::time_point last_request;
  };
  void accept_clients();
  void read_client(Client& c);
  std::string answer(std::string_view line);
  void write_client(Client& c);

  std::function<std::string(std::string_view)> handle_;
  std::string path_;
  int listen_fd_ = -1;
  std::vector<Client> clients_;
  std::function<std::chrono::steady_clock::time_point()> clock_ = [] {
    return std::chrono::steady_clock::now();
  };
};

}  // namespace weir::channel
