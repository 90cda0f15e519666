#include "common/channel/line_server.h"

#include "common/channel/socket_path.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

namespace weir::channel {

LineServer::~LineServer() {
  for (Client& c : clients_) close(c.fd);
  if (listen_fd_ >= 0) {
    close(listen_fd_);
    unlink(path_.c_str());
  }
}

namespace {

bool to_address(const std::string& path, sockaddr_un& address) {
  address = sockaddr_un{};
  address.sun_family = AF_UNIX;
  if (path.size() >= sizeof(address.sun_path)) return false;
  std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
  return true;
}

// Whether a process accepts connections on the socket at `path`.
bool someone_listens(const sockaddr_un& address) {
  // Non-blocking: a server whose backlog is full answers EAGAIN instead of holding us here.
  const int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (probe < 0) return false;
  const bool listening =
      connect(probe, reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0 ||
      errno == EAGAIN;
  close(probe);
  return listening;
}

// The group id `group` names (a name, or a number), or an error message.
std::optional<gid_t> group_id(const std::string& group, std::string& error) {
  if (!group.empty() && group.find_first_not_of("0123456789") == std::string::npos &&
      group.size() < 10) {
    return static_cast<gid_t>(std::stoul(group));
  }
  if (const struct group* entry = getgrnam(group.c_str())) return entry->gr_gid;
  error = "no group named \"" + group + "\"";
  return std::nullopt;
}

}  // namespace

std::string LineServer::check_path(const std::string& path, const std::string& setting) {
  const std::string temporary = path + "." + std::to_string(getpid()) + ".tmp";
  sockaddr_un address{}, temporary_address{};
  if (!to_address(path, address) || !to_address(temporary, temporary_address)) {
    return "control socket path " + path + " is too long for a Unix socket (" + setting +
           "; at most " + std::to_string(kMaxSocketPath) + " bytes)";
  }
  struct stat st {};
  if (lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode))
      return path + " exists and is not a socket (" + setting + "); it is left alone";
    // A live socket is never unlinked: its process would go on running unreachable. One that
    // nobody answers on was left by a process that did not exit cleanly, and is replaced.
    if (someone_listens(address)) {
      return "another process is serving " + path + " (" + setting +
             "; another dataplane or weir-control with the same socket?)";
    }
  }
  return "";
}

std::string LineServer::open(const std::string& path, const std::string& setting,
                             const SocketPermissions& permissions) {
  // Bound under a temporary name, given its mode and group, then renamed into place: the socket
  // is never reachable with the umask's mode, and a stale file left by a process that did not exit
  // cleanly is replaced in one step.
  if (std::string problem = check_path(path, setting); !problem.empty()) return problem;
  const std::string temporary = path + "." + std::to_string(getpid()) + ".tmp";
  sockaddr_un temporary_address{};
  to_address(temporary, temporary_address);
  std::optional<gid_t> gid;
  if (permissions.group) {
    std::string error;
    gid = group_id(*permissions.group, error);
    if (!gid) return error + " for control socket " + path + " (" + setting + ".group)";
  }
  listen_fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) return std::string("cannot create the control socket: ") + strerror(errno);
  unlink(temporary.c_str());
  // The temporary name is reachable between bind and chmod with the umask's mode; nobody can
  // connect to it before listen, which comes after the mode and group are set.
  std::string hint = "does its directory exist?";
  bool bound = bind(listen_fd_, reinterpret_cast<const sockaddr*>(&temporary_address),
                    sizeof temporary_address) == 0 &&
               chmod(temporary.c_str(), permissions.mode) == 0;
  if (bound && gid && chown(temporary.c_str(), static_cast<uid_t>(-1), *gid) != 0) {
    bound = false;
    hint = "a process that is not root may only give its socket a group it is in";
  }
  bound = bound && listen(listen_fd_, 16) == 0 && rename(temporary.c_str(), path.c_str()) == 0;
  if (!bound) {
    const std::string why = strerror(errno);
    close(listen_fd_);
    listen_fd_ = -1;
    unlink(temporary.c_str());
    return "cannot listen on control socket " + path + ": " + why + " (" + setting + "; " + hint +
           ")";
  }
  path_ = path;
  return "";
}

void LineServer::add_poll_fds(std::vector<pollfd>& fds) const {
  if (listen_fd_ >= 0) fds.push_back(pollfd{listen_fd_, POLLIN, 0});
  for (const Client& c : clients_) {
    short events = c.closing ? 0 : POLLIN;
    if (!c.output.empty()) events |= POLLOUT;
    fds.push_back(pollfd{c.fd, events, 0});
  }
}

void LineServer::serve(const std::vector<pollfd>& fds) {
  const auto now = clock_();
  for (Client& c : clients_) {
    if (c.fd < 0 || c.closing || now - c.last_request < kIdleTimeout) continue;
    c.output +=
        error_line(nullptr, "no request for " + std::to_string(kIdleTimeout.count() / 1000) +
                                " s; closing the connection") +
        "\n";
    c.closing = true;
    ++stats_.clients_idle_closed;
    write_client(c);
  }
  for (const pollfd& p : fds) {
    if (p.revents == 0) continue;
    if (p.fd == listen_fd_) {
      accept_clients();
      continue;
    }
    auto it = std::find_if(clients_.begin(), clients_.end(),
                           [&](const Client& c) { return c.fd == p.fd; });
    if (it == clients_.end()) continue;
    if (p.revents & (POLLIN | POLLHUP | POLLERR)) read_client(*it);
    if (it->fd >= 0 && (p.revents & POLLOUT)) write_client(*it);
  }
  std::erase_if(clients_, [](const Client& c) { return c.fd < 0; });
}

void LineServer::accept_clients() {
  for (;;) {
    const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;
    if (clients_.size() >= kMaxClients) {
      const std::string busy = error_line(nullptr, "too many control clients") + "\n";
      [[maybe_unused]] const ssize_t ignored = write(fd, busy.data(), busy.size());
      close(fd);
      ++stats_.clients_refused;
      continue;
    }
    clients_.push_back(Client{fd, {}, {}, false, clock_()});
  }
}

// The handler's reply; a handler that throws (a bug, or input nobody foresaw) costs this request an
// error reply, never the process.
std::string LineServer::answer(std::string_view line) {
  try {
    if (queries_) {
      // A malformed request goes on to the handler, which says what is wrong with it.
      const Request request = parse_request(line, "server");
      if (request.error.empty() &&
          std::find(queries_->begin(), queries_->end(), request.op) == queries_->end()) {
        ++stats_.read_only_refused;
        std::string allowed;
        for (const std::string& query : *queries_) allowed += (allowed.empty() ? "" : ", ") + query;
        return error_line(request.id, "\"" + request.op +
                                          "\" refused: this socket is read-only (level "
                                          "read-only) and answers only " +
                                          allowed + "; use the admin socket");
      }
    }
    return handle_(line);
  } catch (const std::exception& e) {
    return error_line(nullptr, std::string("the request could not be handled: ") + e.what());
  }
}

void LineServer::read_client(Client& c) {
  char buffer[65536];
  for (;;) {
    const ssize_t n = read(c.fd, buffer, sizeof buffer);
    if (n == 0) {
      c.closing = true;  // the client has sent everything: answer it, then close
      break;
    }
    if (n < 0 && errno != EAGAIN && errno != EINTR) {
      close(c.fd);
      c.fd = -1;
      return;
    }
    if (n < 0) break;
    c.input.append(buffer, static_cast<size_t>(n));
    size_t newline;
    while ((newline = c.input.find('\n')) != std::string::npos) {
      c.output += answer(std::string_view(c.input).substr(0, newline));
      c.last_request = clock_();
      c.output += '\n';
      c.input.erase(0, newline + 1);
    }
    if (c.input.size() > kMaxRequestLine || c.output.size() > kMaxOutput) {
      c.output += error_line(nullptr, "request longer than 1 MiB, or replies not read") + "\n";
      c.input.clear();
      c.closing = true;
      ++stats_.clients_overflow_closed;
      break;
    }
  }
  write_client(c);
}

void LineServer::write_client(Client& c) {
  while (!c.output.empty()) {
    const ssize_t n = send(c.fd, c.output.data(), c.output.size(), MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) return;
      close(c.fd);
      c.fd = -1;
      return;
    }
    c.output.erase(0, static_cast<size_t>(n));
  }
  if (c.closing) {
    close(c.fd);
    c.fd = -1;
  }
}

}  // namespace weir::channel
