#include "common/channel/line_client.h"

#include <errno.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

namespace weir::channel {
namespace {

// A reply longer than this is refused: no control reply comes near it.
constexpr size_t kMaxReplyLine = size_t{64} << 20;
constexpr size_t kReadChunk = size_t{64} << 10;

std::string errno_text(int error) {
  return std::strerror(error);
}

}  // namespace

LineClient::~LineClient() {
  disconnect();
}

void LineClient::disconnect() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  buffer_.clear();
}

std::string LineClient::timeout_text() const {
  const int64_t ms = timeout_.count();
  return ms % 1000 == 0 ? std::to_string(ms / 1000) + " s" : std::to_string(ms) + " ms";
}

bool LineClient::connect_socket(Clock::time_point deadline, std::string& error) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (path_.size() >= sizeof address.sun_path) {
    error = "socket path " + path_ + " is too long for a Unix socket (at most " +
            std::to_string(sizeof address.sun_path - 1) + " bytes)";
    return false;
  }
  std::memcpy(address.sun_path, path_.data(), path_.size());
  fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) {
    error = "cannot create a Unix socket: " + errno_text(errno);
    return false;
  }
  // connect() and send() on a Unix socket block only while the server's backlog or buffer is
  // full; SO_SNDTIMEO bounds both by what is left of the deadline.
  const auto left =
      std::max(std::chrono::duration_cast<std::chrono::microseconds>(deadline - Clock::now()),
               std::chrono::microseconds(1000));
  timeval send_timeout{};
  send_timeout.tv_sec = static_cast<time_t>(left.count() / 1'000'000);
  send_timeout.tv_usec = static_cast<suseconds_t>(left.count() % 1'000'000);
  ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &send_timeout, sizeof send_timeout);

  if (::connect(fd_, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
    const int why = errno;
    disconnect();
    switch (why) {
      case ENOENT:
        error = peer_ + " is not running (no socket at " + path_ + ")";
        break;
      case ECONNREFUSED:
        error = "connection to " + path_ + " refused: is " + peer_ + " running?";
        break;
      case EACCES:
      case EPERM:
        error = "permission denied connecting to " + path_ +
                " (run as a user allowed to use the socket)";
        break;
      case EAGAIN:
      case EINPROGRESS:
      case ETIMEDOUT:
        error = peer_ + " at " + path_ + " did not accept the connection within " + timeout_text();
        break;
      default:
        error = "cannot connect to " + peer_ + " at " + path_ + ": " + errno_text(why);
    }
    return false;
  }
  ++connects_;
  return true;
}

bool LineClient::send_line(const std::string& line, std::string& error) {
  for (size_t sent = 0; sent < line.size();) {
    const ssize_t n = ::send(fd_, line.data() + sent, line.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      error = errno == EAGAIN || errno == EWOULDBLOCK
                  ? peer_ + " at " + path_ + " did not take the request within " + timeout_text()
                  : "cannot send to " + peer_ + " at " + path_ + ": " + errno_text(errno);
      disconnect();
      return false;
    }
    sent += static_cast<size_t>(n);
  }
  return true;
}

std::optional<std::string> LineClient::read_line(Clock::time_point deadline, std::string& error) {
  size_t scanned = 0;
  for (;;) {
    const size_t newline = buffer_.find('\n', scanned);
    if (newline != std::string::npos) {
      std::string line = buffer_.substr(0, newline);
      buffer_.erase(0, newline + 1);
      return line;
    }
    scanned = buffer_.size();
    if (buffer_.size() > kMaxReplyLine) {
      error = peer_ + "'s reply is longer than " + std::to_string(kMaxReplyLine >> 20) + " MiB";
      disconnect();
      return std::nullopt;
    }
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    pollfd readable{fd_, POLLIN, 0};
    const int ready = left <= 0 ? 0 : ::poll(&readable, 1, static_cast<int>(left));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) {
      error = ready == 0 ? "no reply from " + peer_ + " at " + path_ + " within " + timeout_text()
                         : "poll: " + errno_text(errno);
      disconnect();
      return std::nullopt;
    }
    char chunk[kReadChunk];
    const ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n <= 0) {
      error = n == 0 ? peer_ + " closed the connection without replying"
                     : "cannot read from " + peer_ + " at " + path_ + ": " + errno_text(errno);
      disconnect();
      return std::nullopt;
    }
    buffer_.append(chunk, static_cast<size_t>(n));
  }
}

}  // namespace weir::channel
