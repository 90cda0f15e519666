// The dataplane's socket for TLS workers (common/tls_attach.h, docs/tls.md "Attaching a worker"),
// served on the main lcore: each connection is one weir-tls-worker. On its hello the main lcore
// creates one channel per dataplane worker lcore, posts each lcore its channel (a tls_channel
// message with a dup of the TLS worker's eventfd) and answers with the memfds; the connection then
// stays silent until it ends, when every lcore is told tls_channel_gone and resets that TLS
// worker's sessions. A TLS worker's index (its channel's place in every lcore's TlsRelay) is
// free again only once its gone message is posted, so that a late one never hits a successor.
#pragma once

#include <poll.h>
#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "dataplane/worker.h"

namespace weir::dataplane {

class TlsWorkerSocket {
 public:
  TlsWorkerSocket(const std::vector<std::unique_ptr<Worker>>& workers, uint64_t ring_bytes)
      : workers_(workers), ring_bytes_(ring_bytes) {}
  ~TlsWorkerSocket();
  TlsWorkerSocket(const TlsWorkerSocket&) = delete;
  TlsWorkerSocket& operator=(const TlsWorkerSocket&) = delete;

  // Listens on `path` (a stale socket file replaced), mode 0600: only root (weir-control)
  // attaches workers. Returns an error, or "".
  std::string open(const std::string& path);
  void add_poll_fds(std::vector<pollfd>& fds) const;
  // New connections answered, ended ones detached; gone messages that found an inbox full are
  // posted again. Call every main lcore loop.
  void serve(const std::vector<pollfd>& fds);
  size_t attached() const;

 private:
  struct Peer {
    int fd = -1;
    size_t index = 0;
    bool hello_done = false;
    int event_fd = -1;
  };
  void accept_one();
  // The hello arrived on `peer`: channels created, posted, answered. False: drop the connection.
  bool attach(Peer& peer);
  bool post_gone(size_t index);
  bool inboxes_have_room() const;

  const std::vector<std::unique_ptr<Worker>>& workers_;
  uint64_t ring_bytes_;
  std::string path_;
  ino_t inode_ = 0;  // of the socket file bound at path_
  int listen_fd_ = -1;
  std::vector<Peer> peers_;
  std::vector<bool> index_used_;      // by TLS worker index
  std::vector<size_t> gone_pending_;  // indices whose tls_channel_gone waits for inbox room
};

}  // namespace weir::dataplane
