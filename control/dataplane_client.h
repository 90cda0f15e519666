// weir-control's side of the dataplane's control channel (docs/protocol.md): one request, one
// reply, over `dataplane.control_socket`. Connects lazily and again after any failure, so a
// dataplane restart (or one not yet started) costs a failed call, not a stuck process.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>

namespace weir::control {

class DataplaneClient {
 public:
  explicit DataplaneClient(std::string path, int timeout_ms = 2000)
      : path_(std::move(path)), timeout_ms_(timeout_ms) {}
  ~DataplaneClient();
  DataplaneClient(const DataplaneClient&) = delete;
  DataplaneClient& operator=(const DataplaneClient&) = delete;

  // Sends `request` (v and id are filled in) and returns the reply, or nullopt with `error` set
  // (not connected, timed out, a malformed reply). An {"ok": false} reply is returned as is.
  std::optional<nlohmann::json> call(nlohmann::json request, std::string& error);
  bool connected() const { return fd_ >= 0; }
  // Calls that reconnected after a failure (the first connection counts too).
  uint64_t connects() const { return connects_; }

 private:
  bool connect_socket(std::string& error);
  void disconnect();

  std::string path_;
  int timeout_ms_;
  int fd_ = -1;
  uint64_t next_id_ = 1;
  uint64_t connects_ = 0;
  std::string buffer_;
};

}  // namespace weir::control
