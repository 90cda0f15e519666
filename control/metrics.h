// weir-control's Prometheus exposition (docs/metrics.md, "Prometheus"). The counts live in the
// dataplane, so a weir-control restart never sends a counter backwards: every scrape asks the
// dataplane (counters, pools) over the control channel and adds weir-control's own state (health
// checks, reloads). Names follow the Prometheus conventions: the weir_ prefix, base units,
// _total for counters, labels only from configuration names and small fixed sets.
#pragma once

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

#include <nlohmann/json.hpp>

#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "control/dataplane_channel.h"

namespace weir::control {

class MetricsCollector final : public prometheus::Collectable {
 public:
  // `control_state` returns weir-control's own state as JSON (thread-safe; called at scrape
  // time): {"health": [{"pool","backend","up","checks","failures","transitions"}],
  //         "passive": [{"pool","backend","down","mark_downs",...}], "box_drained",
  //         "reloads_ok", "reloads_failed", "last_reload_success_unix", "version", "revision",
  //         "dataplane_version", "dataplane_revision" (empty before the dataplane's first hello),
  //         "tls": {"workers_running", "restarts", "key_rotations", "certificates_refused_start",
  //                 "certificates_refused_reload", "worker_counters": [{"tls_worker", the
  //                 catalogue's kTlsWorkerCounters}]} or null (no TLS configured),
  //         "certificates": [{"listener", "certificate", "not_after_unix"}]
  //         (control/certificate_expiry.h)}.
  // Collect() adds weir-control's own "process" (common/process_stats.h) to it.
  MetricsCollector(std::string dataplane_socket, std::function<nlohmann::json()> control_state)
      : client_(dataplane_channel(std::move(dataplane_socket))),
        control_state_(std::move(control_state)) {}

  std::vector<prometheus::MetricFamily> Collect() const override;

  // The families built from replies of the dataplane and weir-control's state (pure; tested).
  static std::vector<prometheus::MetricFamily> build(const nlohmann::json* counters,
                                                     const nlohmann::json* pools,
                                                     const nlohmann::json& control);

 private:
  mutable std::mutex mutex_;
  mutable channel::LineClient client_;
  std::function<nlohmann::json()> control_state_;
};

}  // namespace weir::control
