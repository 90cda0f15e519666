// See tls_worker_socket.h.
#include "dataplane/main_lcore/tls_worker_socket.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "common/log.h"
#include "common/shm_channel.h"
#include "common/tls_attach.h"

namespace weir::dataplane {

TlsWorkerSocket::~TlsWorkerSocket() {
  for (const Peer& p : peers_) {
    close(p.fd);
    if (p.event_fd >= 0) close(p.event_fd);
  }
  if (listen_fd_ >= 0) {
    close(listen_fd_);
    // Only our own file: a dataplane started meanwhile (a restart overlapping this one's exit)
    // has bound a new one at the same path.
    struct stat now {};
    if (stat(path_.c_str(), &now) == 0 && now.st_ino == inode_) unlink(path_.c_str());
  }
}

std::string TlsWorkerSocket::open(const std::string& path) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof address.sun_path)
    return "TLS worker socket " + path + ": path empty or too long";
  std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
  const int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return std::string("TLS worker socket: ") + std::strerror(errno);
  unlink(path.c_str());
  const mode_t before = umask(0177);  // 0600 from the start: no moment another user may connect
  const bool bound = bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
  umask(before);
  if (!bound || listen(fd, 16) != 0) {
    const std::string error = "TLS worker socket " + path + ": " + std::strerror(errno);
    close(fd);
    return error;
  }
  struct stat bound_file {};
  if (stat(path.c_str(), &bound_file) == 0) inode_ = bound_file.st_ino;
  listen_fd_ = fd;
  path_ = path;
  return "";
}

void TlsWorkerSocket::add_poll_fds(std::vector<pollfd>& fds) const {
  if (listen_fd_ >= 0) fds.push_back(pollfd{listen_fd_, POLLIN, 0});
  for (const Peer& p : peers_) fds.push_back(pollfd{p.fd, POLLIN, 0});
}

size_t TlsWorkerSocket::attached() const {
  return static_cast<size_t>(
      std::count_if(peers_.begin(), peers_.end(), [](const Peer& p) { return p.hello_done; }));
}

bool TlsWorkerSocket::inboxes_have_room() const {
  return std::all_of(workers_.begin(), workers_.end(),
                     [](const auto& w) { return w->inbox_room() > 0; });
}

void TlsWorkerSocket::serve(const std::vector<pollfd>& fds) {
  while (!gone_pending_.empty() && post_gone(gone_pending_.back())) gone_pending_.pop_back();
  auto ready = [&](int fd) {
    return std::any_of(fds.begin(), fds.end(), [&](const pollfd& p) {
      return p.fd == fd && (p.revents & (POLLIN | POLLHUP | POLLERR)) != 0;
    });
  };
  if (listen_fd_ >= 0 && ready(listen_fd_)) accept_one();
  for (size_t i = 0; i < peers_.size();) {
    Peer& p = peers_[i];
    if (!ready(p.fd)) {
      ++i;
      continue;
    }
    bool keep = true;
    if (!p.hello_done) {
      keep = attach(p);
    } else {
      uint8_t byte;
      const ssize_t n = recv(p.fd, &byte, 1, MSG_DONTWAIT);
      keep = n > 0 || (n < 0 && (errno == EAGAIN || errno == EINTR));  // a worker never writes
    }
    if (keep) {
      ++i;
      continue;
    }
    if (p.hello_done) {
      log::printf(log::Level::warning, "TLS worker %zu detached: its sessions are reset", p.index);
      if (!post_gone(p.index)) gone_pending_.push_back(p.index);
    }
    close(p.fd);
    if (p.event_fd >= 0) close(p.event_fd);
    peers_.erase(peers_.begin() + static_cast<long>(i));
  }
}

void TlsWorkerSocket::accept_one() {
  const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
  if (fd < 0) return;
  peers_.push_back(Peer{fd});
}

bool TlsWorkerSocket::attach(Peer& peer) {
  uint8_t hello[sizeof tls_attach::kHello + 1];
  std::vector<int> fds;
  const ssize_t n = tls_attach::receive_with_fds(peer.fd, hello, fds);
  const bool ok = n == static_cast<ssize_t>(sizeof tls_attach::kHello) && fds.size() == 1 &&
                  std::memcmp(hello, tls_attach::kHello, sizeof tls_attach::kHello) == 0;
  if (!ok) {
    for (int fd : fds) close(fd);
    log::printf(log::Level::warning, "TLS worker socket: a malformed hello, connection closed");
    return false;
  }
  peer.event_fd = fds[0];
  if (!inboxes_have_room()) {
    log::printf(log::Level::warning, "TLS worker socket: a worker's inbox is full; refused");
    return false;
  }
  size_t index = 0;
  while (index < index_used_.size() && index_used_[index]) ++index;
  std::vector<shm::ChannelMemory> channels;
  std::vector<int> memfds;
  for (size_t w = 0; w < workers_.size(); ++w) {
    std::string error;
    auto memory = shm::ChannelMemory::create(ring_bytes_, error);
    if (!memory) {
      log::printf(log::Level::error, "TLS worker channel: %s", error.c_str());
      return false;
    }
    memfds.push_back(memory->fd());
    channels.push_back(std::move(*memory));
  }
  uint8_t answer[sizeof tls_attach::kHello + sizeof(uint32_t)];
  std::memcpy(answer, tls_attach::kHello, sizeof tls_attach::kHello);
  const auto count = static_cast<uint32_t>(memfds.size());
  std::memcpy(answer + sizeof tls_attach::kHello, &count, sizeof count);
  if (!tls_attach::send_with_fds(peer.fd, answer, memfds)) return false;
  for (size_t w = 0; w < workers_.size(); ++w) {
    auto* m = new WorkerMessage;
    m->kind = WorkerMessage::Kind::tls_channel;
    m->tls_index = index;
    m->tls_channel = std::make_shared<shm::ChannelMemory>(std::move(channels[w]));
    m->tls_event_fd = fcntl(peer.event_fd, F_DUPFD_CLOEXEC, 0);
    workers_[w]->post(m);  // room checked above; the main lcore is the only producer
  }
  if (index >= index_used_.size()) index_used_.resize(index + 1, false);
  index_used_[index] = true;
  peer.index = index;
  peer.hello_done = true;
  log::printf(log::Level::notice, "TLS worker %zu attached: %zu channel(s)", index,
              workers_.size());
  return true;
}

bool TlsWorkerSocket::post_gone(size_t index) {
  if (!inboxes_have_room()) return false;
  for (const auto& worker : workers_) {
    auto* m = new WorkerMessage;
    m->kind = WorkerMessage::Kind::tls_channel_gone;
    m->tls_index = index;
    worker->post(m);
  }
  index_used_[index] = false;
  return true;
}

}  // namespace weir::dataplane
