// The server side of the control channel: a Unix stream socket served with poll() from its owner's
// loop (the dataplane's main lcore, weir-control's main thread). Lines in, lines out, through a
// handler (the dataplane's control requests, weir-control's admin protocol). Bounded: at most
// kMaxClients connections, kMaxRequestLine bytes per request, kMaxOutput bytes of replies waiting
// per client; a client past a bound is told why (in the envelope) and disconnected. No DPDK.
#pragma once

#include <poll.h>

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
  // Serves whatever `fds` (as returned by poll) says is ready.
  void serve(const std::vector<pollfd>& fds);

 private:
  struct Client {
    int fd = -1;
    std::string input;
    std::string output;
    bool closing = false;  // flush the output, then close
  };
  void accept_clients();
  void read_client(Client& c);
  std::string answer(std::string_view line);
  void write_client(Client& c);

  std::function<std::string(std::string_view)> handle_;
  std::string path_;
  int listen_fd_ = -1;
  std::vector<Client> clients_;
};

}  // namespace weir::channel
