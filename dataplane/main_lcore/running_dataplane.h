// The running dataplane as the control channel sees it (the ControlTarget behind
// main_lcore/control_requests.h): counters and backend states read on the main lcore, changes
// built here and posted to every worker's inbox as messages (docs/architecture.md, "Reload").
// Everything here runs on the main lcore; the workers only ever see immutable plans.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config/config.h"
#include "dataplane/main_lcore/control_requests.h"
#include "dataplane/main_lcore/frame_event_log.h"
#include "dataplane/main_lcore/pool_state.h"
#include "dataplane/main_lcore/session_log.h"
#include "dataplane/port.h"
#include "dataplane/worker.h"

namespace weir::dataplane {

class RunningDataplane final : public ControlTarget {
 public:
  RunningDataplane(std::shared_ptr<const config::Config> config, PoolStates& states,
                   const std::vector<OpenPort>& devices,
                   const std::vector<std::unique_ptr<Worker>>& workers)
      : config_(std::move(config)), states_(states), devices_(devices), workers_(workers) {}

  // The configuration in force: the one started with, or the last reload applied.
  const config::Config& config() const { return *config_; }

  nlohmann::json hello() override;
  nlohmann::json counters() override;
  nlohmann::json listeners() override;
  nlohmann::json pools() override;
  nlohmann::json events(size_t limit) override;
  std::string set_backend(const std::string& pool, const std::string& backend,
                          const std::optional<std::string>& state,
                          const std::optional<uint32_t>& weight) override;
  nlohmann::json apply_config(const std::string& path) override;
  std::string set_accepting(bool accepting) override;
  nlohmann::json box() override;
  std::string set_cluster_peers(const std::map<std::string, std::string>& states) override;

  // Frees the messages the workers have handed back.
  void collect_done();
  // Takes every frame event the workers have queued, names and logs them (frame_event_log.h),
  // and every session record of the session log (session_log.h).
  void drain_frame_events();

  // Shutdown (SIGTERM, docs/operations.md "Stopping"). stop_listening: every worker stops
  // accepting connections; from then on apply_config is refused. reset_sessions: every worker
  // resets the sessions left. Each posts one message per worker and returns false, posting
  // nothing, while an inbox is full (call again).
  bool stop_listening();
  bool reset_sessions();
  // After stop_listening: true once every worker has applied it (no SYN is accepted from then on).
  bool listening_stopped();
  // Sessions open, summed over the workers and every listener (removed ones included).
  uint64_t open_sessions() const;
  // After reset_sessions: how many sessions the workers reset, once every worker has handed its
  // message back (the resets are then sent before the worker polls again); nullopt before.
  std::optional<uint64_t> sessions_reset();

 private:
  bool room_for(size_t messages);
  // Every worker gets its own copy of `message` (room checked beforehand); returns how many
  // workers took one.
  size_t post_all(WorkerMessage* message);
  void post_pool(size_t pool);

  std::shared_ptr<const config::Config> config_;
  bool shutting_down_ = false;
  size_t stops_returned_ = 0;   // stop_listening messages handed back
  size_t resets_returned_ = 0;  // reset_sessions messages handed back
  uint64_t sessions_reset_ = 0;
  // By pool: plan messages posted to the workers and handed back applied. Equal: every worker
  // places new sessions by the pool's latest plan (a drained backend takes no more).
  std::vector<uint64_t> plans_posted_, plans_returned_;
  nlohmann::json heard_heartbeats() const;
  bool accepting_ = true;  // the box is not drained
  uint64_t accepting_posted_ = 0, accepting_returned_ = 0;
  // The peers' states of the last cluster_peers (empty: every peer live, as at start), and its
  // owner-table messages posted and handed back: equal, every worker forwards by it.
  std::map<std::string, std::string> cluster_states_;
  uint64_t cluster_posted_ = 0, cluster_returned_ = 0;
  // The echo and discard listeners of the configuration in force (drain-box, stop_listening).
  std::vector<ServiceListener> services() const;
  PoolStates& states_;
  FrameEventLog frame_events_;
  SessionLog session_log_;
  // The names of a record's indices, as the main lcore knows them now.
  FrameEventNames names_of(const proxy::Proxy& proxy, uint16_t listener, uint16_t pool,
                           uint16_t backend_slot) const;
  const std::vector<OpenPort>& devices_;
  const std::vector<std::unique_ptr<Worker>>& workers_;
};

}  // namespace weir::dataplane
