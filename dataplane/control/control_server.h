// The control socket (`dataplane.control_socket`): a Unix stream socket on the main lcore, served
// with poll() between housekeeping steps. Lines in, lines out (ControlProtocol). Bounded: at most
// kMaxClients connections, kMaxControlLine bytes per request, kMaxOutput bytes of replies waiting
// per client; a client past a bound is told why and disconnected.
#pragma once

#include <poll.h>

#include <string>
#include <vector>

#include "dataplane/control/control_protocol.h"

namespace weir::dataplane {

class ControlServer {
 public:
  static constexpr size_t kMaxClients = 16;
  static constexpr size_t kMaxOutput = 16 << 20;

  explicit ControlServer(ControlProtocol& protocol) : protocol_(protocol) {}
  ~ControlServer();
  ControlServer(const ControlServer&) = delete;
  ControlServer& operator=(const ControlServer&) = delete;

  // Binds `path` (replacing a stale socket file). Returns an error message or "".
  std::string open(const std::string& path);
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
  void write_client(Client& c);

  ControlProtocol& protocol_;
  std::string path_;
  int listen_fd_ = -1;
  std::vector<Client> clients_;
};

}  // namespace weir::dataplane
