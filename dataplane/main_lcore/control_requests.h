// The dataplane's operations on the control channel (docs/protocol.md, "The control channel"; the
// envelope is common/channel/envelope.h):
//   {"v": 1, "id": 7, "op": "set_backend", "pool": "app", "backend": "b1", "state": "draining"}
//   {"v": 1, "id": 7, "ok": true}
// Anything malformed is refused in the envelope and counted; it never reaches the workers. No DPDK
// here: the handler talks to the dataplane through ControlTarget.
#pragma once

#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "common/channel/line_server.h"

namespace weir::dataplane {

// What the control protocol can ask of a dataplane.
class ControlTarget {
 public:
  virtual ~ControlTarget() = default;
  virtual nlohmann::json hello() = 0;
  virtual nlohmann::json counters() = 0;
  virtual nlohmann::json listeners() = 0;
  virtual nlohmann::json pools() = 0;
  // The latest `limit` frame events, oldest first (dataplane/main_lcore/frame_event_log.h).
  virtual nlohmann::json events(size_t limit) = 0;
  // Returns an error message, or "" when the change was handed to the workers.
  virtual std::string set_backend(const std::string& pool, const std::string& backend,
                                  const std::optional<std::string>& state,
                                  const std::optional<uint32_t>& weight) = 0;
  // Reads, validates and applies the configuration at `path` as a difference; the reply's fields
  // ("ok", "changes", or "error" and "diagnostics").
  virtual nlohmann::json apply_config(const std::string& path) = 0;
  // The box's drain (weirctl drain-box): false, every listener stops accepting connections (a SYN
  // is answered with RST, as on a closed port) while sessions go on; true, they accept again.
  // Returns an error message, or "" when handed to the workers.
  virtual std::string set_accepting(bool accepting) = 0;
  // {"accepting", "applied" (every worker has the last set_accepting), "sessions" (open)}.
  virtual nlohmann::json box() = 0;
  // The cluster's membership (docs/scale-out.md, "Membership"): each peer's state, "live",
  // "draining" or "gone", for every peer of `cluster.peers` by name. The owner table is rebuilt
  // and handed to every worker. Returns an error message, or "" when handed to the workers.
  virtual std::string set_cluster_peers(const std::map<std::string, std::string>& states) = 0;
};

class ControlRequests {
 public:
  static constexpr size_t kMaxEvents = 256;  // the most `events` returns (and keeps)

  explicit ControlRequests(ControlTarget& target) : target_(target) {}

  // One request line in, one reply line out (without the newline).
  std::string handle(std::string_view line);

  // The socket's own counts (clients refused, closed), added to the `counters` reply.
  void set_socket_stats(const channel::LineServerStats* stats) { socket_stats_ = stats; }

  uint64_t requests() const { return requests_; }
  uint64_t errors() const { return errors_; }

 private:
  std::string error(const nlohmann::json& id, const std::string& message);

  ControlTarget& target_;
  const channel::LineServerStats* socket_stats_ = nullptr;
  uint64_t requests_ = 0;
  uint64_t errors_ = 0;
};

}  // namespace weir::dataplane
