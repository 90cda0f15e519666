// The client side of the control channel (docs/protocol.md): one blocking request, one reply line,
// with one deadline over connect, send and receive. weir-control keeps one to the dataplane
// (connected lazily and again after any failure, so a dataplane restart costs a failed call, not
// a stuck process); weirctl makes one call to weir-control and exits.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include "common/channel/envelope.h"

namespace weir::channel {

class LineClient {
 public:
  // `peer` names the server in error messages ("weir-control", "the dataplane").
  LineClient(std::string path, std::string peer, std::chrono::milliseconds timeout)
      : path_(std::move(path)), peer_(std::move(peer)), timeout_(timeout) {}
  ~LineClient();
  LineClient(const LineClient&) = delete;
  LineClient& operator=(const LineClient&) = delete;

  // Sends `request` (its "v" and "id" filled in) and returns the reply, checked against the
  // envelope, or nullopt with `error` set (not reachable, no reply in time, a malformed reply).
  // An {"ok": false} reply is returned as is. Json is nlohmann::json or nlohmann::ordered_json.
  template <class Json = nlohmann::json>
  std::optional<Json> call(Json request, std::string& error);

  bool connected() const { return fd_ >= 0; }
  // Connections made (the first one counts too).
  uint64_t connects() const { return connects_; }
  const std::string& path() const { return path_; }

 private:
  using Clock = std::chrono::steady_clock;
  bool connect_socket(Clock::time_point deadline, std::string& error);
  bool send_line(const std::string& line, std::string& error);
  // The next reply line, without its newline.
  std::optional<std::string> read_line(Clock::time_point deadline, std::string& error);
  void disconnect();
  std::string timeout_text() const;

  std::string path_;
  std::string peer_;
  std::chrono::milliseconds timeout_;
  int fd_ = -1;
  uint64_t next_id_ = 1;
  uint64_t connects_ = 0;
  std::string buffer_;
};

template <class Json>
std::optional<Json> LineClient::call(Json request, std::string& error) {
  const Clock::time_point deadline = Clock::now() + timeout_;
  if (fd_ < 0 && !connect_socket(deadline, error)) return std::nullopt;
  const uint64_t id = next_id_++;
  stamp_request(request, id);
  if (!send_line(request.dump() + "\n", error)) return std::nullopt;
  // A call that fails for any reason drops the connection, so no late reply to it can be read
  // as the answer to the next call.
  const std::optional<std::string> line = read_line(deadline, error);
  if (!line) return std::nullopt;
  Json reply = Json::parse(*line, nullptr, /*allow_exceptions=*/false);
  if (reply.is_discarded()) {
    error = peer_ + "'s reply is not JSON";
    disconnect();
    return std::nullopt;
  }
  error = reply_problem(reply, id, peer_);
  if (!error.empty()) {
    disconnect();
    return std::nullopt;
  }
  return reply;
}

}  // namespace weir::channel
