// How a weir-tls-worker gets its channels to the dataplane (docs/tls.md, "Attaching a worker"):
// weir-control, which starts the worker, connects to the dataplane's TLS worker socket
// (SOCK_SEQPACKET, beside its control socket), sends kHello with the worker's eventfd
// (SCM_RIGHTS), and receives kHello, the number of channels and that many channel memfds (one
// per dataplane worker lcore, common/shm_channel.h). It hands the memfds and the connection to
// the worker it forks, and closes its own copies: the connection then ends exactly when the
// worker process does (the dataplane resets that worker's sessions), or the dataplane does (the
// worker exits, and weir-control starts a new one, which attaches to the new dataplane).
//
// Why weir-control brokers it: it is root and knows the dataplane's socket, while a worker drops
// to tls.user before it could connect to a root-only socket; and the keys stay out of the
// dataplane, which only ever sees records.
#pragma once

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <vector>

namespace weir::tls_attach {

inline constexpr char kHello[8] = {'W', 'E', 'I', 'R', 'T', 'L', 'S', '1'};
inline constexpr size_t kMaxFds = 64;  // channels in one answer: one per dataplane worker

// A worker started while no dataplane answered serves nothing; weir-control keeps trying to
// attach it and, once the dataplane answers, sends the worker this message on its ticket key
// socket (common/ticket_key_wire.h) with the connection and the channel memfds attached, in that
// order: the worker maps them and serves them from then on, without a restart.
inline constexpr char kLateAttach[4] = {'W', 'T', 'A', '1'};

// A certificate reload, also on the ticket key socket (docs/tls.md, "Certificate reload"): a
// worker has dropped root and could not open a root-only key file, so weir-control opens the
// files (it never reads a key) and sends their fds; the worker reads them and builds new contexts
// for new handshakes. The message: kCertificateReload | generation (u32) | the paths, each ended
// by a NUL, the configuration file first; one fd per path, in that order (so at most kMaxFds
// files, the configuration included). The worker answers kCertificateReload | generation | 1
// (applied) or 0 (refused: the old certificates stay).
inline constexpr char kCertificateReload[4] = {'W', 'T', 'C', '1'};
inline constexpr size_t kMaxCertificateReloadBytes = 16 * 1024;
inline constexpr size_t kCertificateReloadAckBytes = sizeof kCertificateReload + 4 + 1;
// A file larger than this is not read (a certificate chain, a key or a configuration).
inline constexpr size_t kMaxReloadFileBytes = 1024 * 1024;

// The dataplane's socket for TLS workers: beside its control socket.
inline std::string socket_path(const std::string& control_socket) {
  const size_t slash = control_socket.rfind('/');
  return (slash == std::string::npos ? std::string() : control_socket.substr(0, slash + 1)) +
         "tls-workers.sock";
}

// One message of `bytes` with `fds` attached. False on any failure. `flags`: MSG_DONTWAIT where a
// full socket must not block the sender.
inline bool send_with_fds(int socket, std::span<const uint8_t> bytes, std::span<const int> fds,
                          int flags = 0) {
  if (fds.size() > kMaxFds) return false;
  iovec iov{const_cast<uint8_t*>(bytes.data()), bytes.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFds)];
  if (!fds.empty()) {
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
  }
  return sendmsg(socket, &msg, MSG_NOSIGNAL | flags) == static_cast<ssize_t>(bytes.size());
}

// One message into `bytes` (its length returned, -1 on failure or truncation), the fds that came
// with it appended to `fds` (close-on-exec; the caller owns them, also on failure).
inline ssize_t receive_with_fds(int socket, std::span<uint8_t> bytes, std::vector<int>& fds) {
  iovec iov{bytes.data(), bytes.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFds)];
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  const ssize_t n = recvmsg(socket, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
  if (n < 0) return -1;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    const size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
      fds.push_back(fd);
    }
  }
  if ((msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0) return -1;
  return n;
}

}  // namespace weir::tls_attach
