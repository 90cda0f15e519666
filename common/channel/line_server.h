// The server side of the control channel: a Unix stream socket served with poll() from its owner's
// loop (the dataplane's main lcore, weir-control's main thread). Lines in, lines out, through a
// handler (the dataplane's control requests, weir-control's admin protocol). Bounded: at most
// kMaxClients connections, kMaxRequestLine bytes per request, kMaxOutput bytes of replies waiting
// per client; a client past a bound is told why (in the envelope) and disconnected, and counted.
// A socket may be read-only (HAProxy's `level`): requests whose operation changes state are refused
// before they reach the handler. No DPDK.
#pragma once

#include <poll.h>

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/channel/envelope.h"

namespace weir::channel {

// Who may connect: the socket file's permission bits and group (HAProxy's `mode` and `group`).
struct SocketPermissions {
  mode_t mode = 0600;
  std::optional<std::string> group;  // a name or a number; unset: the process's own group
};

// What the server counted about its clients (exported as weir_control_socket_*; docs/metrics.md).
struct LineServerStats {
  uint64_t clients_refused = 0;          // connections turned away: kMaxClients were connected
  uint64_t clients_idle_closed = 0;      // closed after kIdleTimeout without a request
  uint64_t clients_overflow_closed = 0;  // closed: a request over kMaxRequestLine, or kMaxOutput
                                         // of replies unread
  uint64_t read_only_refused = 0;        // requests refused because the socket is read-only
};

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

  // Binds `path` with `permissions`, replacing a stale socket file but never a live one (another
  // process answers on it) nor a file that is not a socket. Returns an error message naming
  // `setting`, the configuration key the path came from, or "".
  std::string open(const std::string& path, const std::string& setting,
                   const SocketPermissions& permissions = {});
  // What open() would refuse about `path` before binding (too long, not a socket, served by
  // another process), or "": for a process to check before it spends seconds starting up.
  static std::string check_path(const std::string& path, const std::string& setting);
  // Makes the socket read-only: a request whose "op" is not one of `queries` (the operations that
  // change nothing) is refused with an error naming them, without reaching the handler. A list of
  // what is allowed, so that an operation added later is refused here until it is listed.
  void set_read_only(std::vector<std::string> queries) { queries_ = std::move(queries); }
  bool read_only() const { return queries_.has_value(); }
  bool listening() const { return listen_fd_ >= 0; }
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
  const LineServerStats& stats() const { return stats_; }

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
  std::optional<std::vector<std::string>> queries_;  // set: the socket is read-only
  std::string path_;
  LineServerStats stats_;
  int listen_fd_ = -1;
  std::vector<Client> clients_;
  std::function<std::chrono::steady_clock::time_point()> clock_ = [] {
    return std::chrono::steady_clock::now();
  };
};

}  // namespace weir::channel
