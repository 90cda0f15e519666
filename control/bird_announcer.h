// weir-control's VIP announcements through BIRD 2 (docs/scale-out.md, "BGP: BIRD 2"). weir-control
// decides which VIPs this box may attract (vips_to_announce, a pure function), writes them as
// static routes into the file BIRD's configuration includes, and asks BIRD over its control socket
// to reconfigure: a static protocol gains or loses routes while the BGP sessions stay up, and BIRD
// announces or withdraws them. BIRD owns BGP, BFD and hold timers; weir-control owns the decision.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "common/net/address.h"
#include "config/config.h"

namespace weir::control {

// What decides whether the box may attract a VIP's traffic, besides its pools' backends.
struct AnnounceState {
  bool dataplane_up = false;  // weir-control's last request to the dataplane was answered
  bool box_drained = false;   // weirctl drain-box
  bool stopping = false;      // weir-control is stopping: withdraw everything
};

// The listener addresses to announce, ascending, each once: those with at least one listener
// whose pool has a backend up (`pool_has_backend_up(pool index)`), none at all unless the
// dataplane is up, the box is not drained and weir-control is not stopping.
std::vector<net::Ipv4Address> vips_to_announce(
    const config::Config& config, const AnnounceState& state,
    const std::function<bool(size_t pool)>& pool_has_backend_up);

// The routes file's text: BIRD's `protocol static weir_vips` with one `route A.B.C.D/32
// blackhole;` per VIP (BIRD includes it at the top level; its BGP export takes the routes of
// `weir_vips` and sets this box as the next hop).
std::string bird_routes(const std::vector<net::Ipv4Address>& vips);

// Asks BIRD, over its control socket at `socket_path`, to read its configuration again
// (`configure`), waiting at most `timeout_ms` for the answer. Returns "" once BIRD says it
// reconfigured (or had nothing to do), else why not (BIRD's own message when it refused).
std::string bird_configure(const std::string& socket_path, int timeout_ms);

// Keeps BIRD's routes equal to the VIPs weir-control last decided on: writes the routes file when
// the set changes (a temporary file renamed into place: BIRD never reads half of it) and asks
// BIRD to reconfigure, again on every call until BIRD has said yes.
class BirdAnnouncer {
 public:
  explicit BirdAnnouncer(config::ClusterBird bird, int timeout_ms = 2000)
      : bird_(std::move(bird)), timeout_ms_(timeout_ms) {}

  // Returns "" when BIRD has `vips`, else why not (tried again at the next call).
  std::string announce(const std::vector<net::Ipv4Address>& vips);

  const std::vector<net::Ipv4Address>& announced() const { return announced_; }
  bool in_sync() const { return in_sync_; }
  uint64_t reconfigurations() const { return reconfigurations_; }
  uint64_t failures() const { return failures_; }

 private:
  config::ClusterBird bird_;
  int timeout_ms_;
  std::vector<net::Ipv4Address> announced_;  // what BIRD was last told (when in_sync_)
  std::vector<net::Ipv4Address> written_;    // what the file holds
  bool file_written_ = false;
  bool in_sync_ = false;
  uint64_t reconfigurations_ = 0;
  uint64_t failures_ = 0;
};

}  // namespace weir::control
