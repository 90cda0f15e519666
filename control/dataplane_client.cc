#include "control/dataplane_client.h"

#include <errno.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cstring>

namespace weir::control {
namespace {

int64_t now_ms() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1000 + ts.tv_nsec / 1'000'000;
}

}  // namespace

DataplaneClient::~DataplaneClient() {
  disconnect();
}

void DataplaneClient::disconnect() {
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
  buffer_.clear();
}

bool DataplaneClient::connect_socket(std::string& error) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (path_.size() >= sizeof(address.sun_path)) {
    error = "socket path too long: " + path_;
    return false;
  }
  std::memcpy(address.sun_path, path_.c_str(), path_.size() + 1);
  fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0 || connect(fd_, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
    error = "cannot reach the dataplane at " + path_ + ": " + strerror(errno);
    disconnect();
    return false;
  }
  ++connects_;
  return true;
}

std::optional<nlohmann::json> DataplaneClient::call(nlohmann::json request, std::string& error) {
  if (fd_ < 0 && !connect_socket(error)) return std::nullopt;
  const uint64_t id = next_id_++;
  request["v"] = 1;
  request["id"] = id;
  const std::string line = request.dump() + "\n";
  const int64_t deadline = now_ms() + timeout_ms_;
  for (size_t sent = 0; sent < line.size();) {
    const ssize_t n = send(fd_, line.data() + sent, line.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) {
      error = std::string("the dataplane connection failed: ") + strerror(errno);
      disconnect();
      return std::nullopt;
    }
    sent += static_cast<size_t>(n);
  }
  for (;;) {
    const size_t newline = buffer_.find('\n');
    if (newline != std::string::npos) {
      const std::string reply_line = buffer_.substr(0, newline);
      buffer_.erase(0, newline + 1);
      nlohmann::json reply = nlohmann::json::parse(reply_line, nullptr, false);
      if (reply.is_discarded() || !reply.is_object()) {
        error = "the dataplane sent a malformed reply";
        disconnect();
        return std::nullopt;
      }
      if (reply.value("id", nlohmann::json()) != nlohmann::json(id)) continue;  // a stale reply
      return reply;
    }
    const int64_t left = deadline - now_ms();
    pollfd p{fd_, POLLIN, 0};
    if (left <= 0 || poll(&p, 1, static_cast<int>(left)) <= 0) {
      error = "the dataplane did not answer within " + std::to_string(timeout_ms_) + " ms";
      disconnect();
      return std::nullopt;
    }
    char chunk[65536];
    const ssize_t n = read(fd_, chunk, sizeof chunk);
    if (n <= 0) {
      error = "the dataplane closed the control connection";
      disconnect();
      return std::nullopt;
    }
    buffer_.append(chunk, static_cast<size_t>(n));
  }
}

}  // namespace weir::control
