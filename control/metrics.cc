#include "control/metrics.h"

#include <array>
#include <string_view>

#include "common/counter_catalogue.h"
#include "common/process_stats.h"

namespace weir::control {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;
using Labels = std::vector<ClientMetric::Label>;

class Families {
 public:
  void counter(const std::string& name, const std::string& help, Labels labels, double value) {
    ClientMetric m;
    m.label = std::move(labels);
    m.counter.value = value;
    family(name, help, MetricType::Counter).metric.push_back(std::move(m));
  }
  void gauge(const std::string& name, const std::string& help, Labels labels, double value) {
    ClientMetric m;
    m.label = std::move(labels);
    m.gauge.value = value;
    family(name, help, MetricType::Gauge).metric.push_back(std::move(m));
  }
  std::vector<MetricFamily> take() { return std::move(families_); }

 private:
  MetricFamily& family(const std::string& name, const std::string& help, MetricType type) {
    for (MetricFamily& f : families_) {
      if (f.name == name) return f;
    }
    families_.push_back(MetricFamily{name, help, type, {}});
    return families_.back();
  }
  std::vector<MetricFamily> families_;
};

// The dataplane's replies are read field by field, and a field of another type than expected (a
// dataplane of another version, a bug) reads as absent: a scrape never throws
// (tests/fuzz/control_request_fuzz.cc feeds it arbitrary replies).
const nlohmann::json& member(const nlohmann::json& object, std::string_view key) {
  static const nlohmann::json absent;
  if (!object.is_object()) return absent;
  const auto it = object.find(key);
  return it == object.end() ? absent : *it;
}

// The member if it is an object (or an array), else an empty one.
const nlohmann::json& object_member(const nlohmann::json& object, std::string_view key) {
  static const nlohmann::json empty = nlohmann::json::object();
  const nlohmann::json& value = member(object, key);
  return value.is_object() ? value : empty;
}
const nlohmann::json& array_member(const nlohmann::json& object, std::string_view key) {
  static const nlohmann::json empty = nlohmann::json::array();
  const nlohmann::json& value = member(object, key);
  return value.is_array() ? value : empty;
}

std::string text(const nlohmann::json& object, std::string_view key) {
  const nlohmann::json& value = member(object, key);
  return value.is_string() ? value.get<std::string>() : "";
}

double number(const nlohmann::json& object, std::string_view key) {
  const nlohmann::json& value = member(object, key);
  return value.is_number() ? value.get<double>() : 0.0;
}

// The exported entries of a catalogue table (common/counter_catalogue.h), read from `object` (a
// stats JSON object of the dataplane's counters reply): each series carries `labels`, then the
// entry's own label. `suffix` is appended to the JSON names (a direction's). `top` is the whole
// reply, whose numbers convert the entries with a `divided_by` (left out without it).
// `only_present`: an entry absent from `object` has no series (a gauge of a time that has not
// come yet), rather than 0.
template <size_t N>
void export_table(Families& out, const std::array<counters::Entry, N>& table,
                  const nlohmann::json& object, const Labels& labels, std::string_view suffix = {},
                  const nlohmann::json* top = nullptr, bool only_present = false) {
  for (const counters::Entry& entry : table) {
    if (!entry.exported()) continue;
    if (only_present && !member(object, std::string(entry.name) + std::string(suffix)).is_number())
      continue;
    Labels series = labels;
    if (!entry.label.empty()) {
      series.push_back({std::string(entry.label), std::string(entry.label_value)});
    }
    double value = number(object, std::string(entry.name) + std::string(suffix));
    if (!entry.divided_by.empty()) {
      const double divisor = top != nullptr ? number(*top, entry.divided_by) : 0.0;
      if (divisor <= 0) continue;
      value /= divisor;
    }
    const std::string family(entry.family), help(entry.family_meaning());
    if (entry.kind == counters::Kind::counter) {
      out.counter(family, help, std::move(series), value);
    } else {
      out.gauge(family, help, std::move(series), value);
    }
  }
}

// A control or admin socket's own counts (common/channel/line_server.h): clients turned away or
// closed at its bounds, and requests refused at its level.
void socket_counters(Families& out, const nlohmann::json& stats, const std::string& daemon,
                     const std::string& socket) {
  const Labels labels{{"daemon", daemon}, {"socket", socket}};
  out.counter("weir_control_socket_clients_refused_total",
              "Clients turned away because the socket had its most clients connected", labels,
              number(stats, "clients_refused"));
  for (const auto& [reason, key] :
       {std::pair<std::string, std::string>{"idle", "clients_idle_closed"},
        {"overflow", "clients_overflow_closed"}}) {
    Labels closed = labels;
    closed.push_back({"reason", reason});
    out.counter("weir_control_socket_clients_closed_total",
                "Clients closed by the socket: idle (no request for 60 s) or overflow (a request "
                "over 1 MiB, or 16 MiB of replies unread)",
                closed, number(stats, key));
  }
  if (stats.contains("read_only_refused")) {
    out.counter("weir_control_socket_read_only_refusals_total",
                "Requests refused because they change state and the socket is read-only", labels,
                number(stats, "read_only_refused"));
  }
}

void dataplane_counters(Families& out, const nlohmann::json& counters) {
  for (const auto& worker : array_member(counters, "workers")) {
    const nlohmann::json& id_field = member(worker, "id");
    const std::string id = id_field.is_number_integer() ? id_field.dump() : "0";
    for (const auto& [port, c] : object_member(worker, "ports").items()) {
      const Labels labels{{"port", port}, {"worker", id}};
      export_table(out, counters::kPortCounters, c, labels);
      export_table(out, counters::kDropReasons, object_member(c, "drops"), labels);
    }
    const Labels worker_labels{{"worker", id}};
    export_table(out, counters::kTcpCounters, object_member(worker, "tcp"), worker_labels);
    export_table(out, counters::kClusterCounters, object_member(worker, "cluster"), worker_labels);
    export_table(out, counters::kTlsRelayCounters, object_member(worker, "tls"), worker_labels);
    export_table(out, counters::kWorkerGauges, worker, worker_labels);
    export_table(out, counters::kLoopCounters, object_member(worker, "loop"), worker_labels, {},
                 &counters);
  }
  if (counters.contains("control")) {
    out.counter("weir_dataplane_control_requests_total",
                "Requests the dataplane's control socket received", {},
                number(member(counters, "control"), "requests"));
    out.counter("weir_dataplane_control_errors_total",
                "Control requests the dataplane refused (malformed, unknown, failed)", {},
                number(member(counters, "control"), "errors"));
    socket_counters(out, member(counters, "control"), "weir-dataplane", "dataplane.control_socket");
  }
  if (counters.contains("mbufs")) {
    out.gauge("weir_mbuf_pool_size", "Mbufs in the dataplane's pool", {},
              number(member(counters, "mbufs"), "size"));
    out.gauge("weir_mbuf_pool_available", "Mbufs free in the dataplane's pool", {},
              number(member(counters, "mbufs"), "available"));
  }
  if (counters.contains("frame_events")) {
    export_table(out, counters::kFrameEventCounters, object_member(counters, "frame_events"), {});
  }
  if (counters.contains("session_log")) {
    export_table(out, counters::kSessionLogCounters, object_member(counters, "session_log"), {});
  }
  for (const auto& [port, c] : object_member(counters, "devices").items())
    export_table(out, counters::kDeviceCounters, c, {{"port", port}});
  for (const auto& [name, l] : object_member(counters, "listeners").items()) {
    export_table(out, counters::kListenerCounters, l, {{"listener", name}});
    for (const std::string_view direction : counters::kDirections) {
      export_table(out, counters::kListenerDirectionCounters, l,
                   {{"listener", name}, {"direction", std::string(direction)}},
                   "_" + std::string(direction));
    }
  }
}

void backends(Families& out, const nlohmann::json& pools) {
  if (!pools.is_array()) return;
  for (const auto& pool : pools) {
    const std::string pool_name = text(pool, "name");
    for (const auto& b : array_member(pool, "backends")) {
      const Labels labels{{"pool", pool_name}, {"backend", text(b, "name")}};
      const std::string state = text(b, "state");
      out.gauge("weir_backend_up", "1 when the backend takes new connections", labels,
                state == "up" ? 1 : 0);
      for (const char* s : {"up", "down", "draining"}) {
        Labels with_state = labels;
        with_state.push_back({"state", s});
        out.gauge("weir_backend_state", "The backend's state (1 for the current one)", with_state,
                  state == s ? 1 : 0);
      }
      out.gauge("weir_backend_weight", "The backend's Maglev weight", labels, number(b, "weight"));
      export_table(out, counters::kBackendCounters, b, labels);
      for (const std::string_view direction : counters::kDirections) {
        Labels with_direction = labels;
        with_direction.push_back({"direction", std::string(direction)});
        export_table(out, counters::kBackendDirectionCounters, b, with_direction,
                     "_" + std::string(direction));
        export_table(out, counters::kBackendDirectionGauges, b, with_direction,
                     "_" + std::string(direction), nullptr, true);
      }
    }
  }
}

}  // namespace

std::vector<MetricFamily> MetricsCollector::build(const nlohmann::json* counters,
                                                  const nlohmann::json* pools,
                                                  const nlohmann::json& control) {
  Families out;
  // One series per daemon, so that a box running two builds (one daemon not restarted after an
  // upgrade) shows it; the dataplane's once it has answered a hello.
  const std::string build_help = "Always 1; the labels say which build of each daemon runs";
  out.gauge("weir_build_info", build_help,
            {{"daemon", "weir-control"},
             {"version", control.value("version", "")},
             {"revision", control.value("revision", "")}},
            1);
  if (const std::string dataplane_version = control.value("dataplane_version", "");
      !dataplane_version.empty()) {
    out.gauge("weir_build_info", build_help,
              {{"daemon", "weir-dataplane"},
               {"version", dataplane_version},
               {"revision", control.value("dataplane_revision", "")}},
              1);
  }
  out.gauge("weir_dataplane_up", "1 when weir-control reached the dataplane for this scrape", {},
            counters != nullptr ? 1 : 0);
  if (counters != nullptr) dataplane_counters(out, *counters);
  // process_*: weir-control's own, and the dataplane's from its reply.
  if (control.contains("process") && control["process"].is_object()) {
    export_table(out, counters::kProcessMetrics, control["process"], {{"daemon", "weir-control"}});
  }
  if (counters != nullptr && counters->contains("process") && (*counters)["process"].is_object()) {
    export_table(out, counters::kProcessMetrics, (*counters)["process"],
                 {{"daemon", "weir-dataplane"}});
  }
  if (pools != nullptr) backends(out, *pools);
  const nlohmann::json health = control.value("health", nlohmann::json::array());
  for (const auto& h : health) {
    const Labels labels{{"pool", h.value("pool", "")}, {"backend", h.value("backend", "")}};
    const double checks = number(h, "checks"), failures = number(h, "failures");
    Labels pass = labels, fail = labels;
    pass.push_back({"result", "pass"});
    fail.push_back({"result", "fail"});
    out.counter("weir_health_checks_total", "Health checks finished, by result", pass,
                checks - failures);
    out.counter("weir_health_checks_total", "Health checks finished, by result", fail, failures);
    out.gauge("weir_health_up", "1 when the backend's health checks say up", labels,
              h.value("up", true) ? 1 : 0);
  }
  for (const auto& p : control.value("passive", nlohmann::json::array())) {
    if (!p.is_object()) continue;
    const Labels labels{{"pool", p.value("pool", "")}, {"backend", p.value("backend", "")}};
    out.gauge("weir_backend_passive_down",
              "1 while passive health holds the backend down (its data-path errors reached "
              "error_limit)",
              labels, p.value("down", false) ? 1 : 0);
    out.counter("weir_backend_passive_mark_downs_total",
                "Times passive health marked the backend down", labels, number(p, "mark_downs"));
  }
  for (const auto& c : array_member(control, "certificates")) {
    export_table(out, counters::kCertificateGauges, c,
                 {{"listener", text(c, "listener")}, {"certificate", text(c, "certificate")}});
  }
  // The TLS workers weir-control supervises (control/tls_workers.h): only with TLS configured.
  if (const nlohmann::json& tls = member(control, "tls"); tls.is_object()) {
    out.gauge("weir_tls_workers_running", "weir-tls-worker processes running", {},
              number(tls, "workers_running"));
    out.counter("weir_tls_worker_restarts_total",
                "weir-tls-worker processes started again after one ended", {},
                number(tls, "restarts"));
    out.counter("weir_tls_ticket_key_rotations_total",
                "Session ticket keys rotated (a new key made and sent to every worker)", {},
                number(tls, "key_rotations"));
    export_table(out, counters::kTlsCertificateRefusals, tls, {});
    for (const auto& worker : array_member(tls, "worker_counters")) {
      const nlohmann::json& slot = member(worker, "tls_worker");
      export_table(out, counters::kTlsWorkerCounters, worker,
                   {{"tls_worker", slot.is_number_unsigned() ? slot.dump() : "0"}});
    }
  }
  for (const auto& socket : control.value("sockets", nlohmann::json::array())) {
    if (socket.is_object())
      socket_counters(out, socket, "weir-control", socket.value("socket", ""));
  }
  out.gauge("weir_box_drained",
            "1 while the box is drained (weirctl drain-box): its listeners refuse new connections",
            {}, control.value("box_drained", false) ? 1 : 0);
  // The cluster's membership as weir-control sets it (control/cluster_membership.h).
  if (const nlohmann::json& cluster = member(control, "cluster"); cluster.is_object()) {
    out.counter("weir_cluster_peers_lost_total",
                "Peers whose heartbeats stopped (silent for cluster.heartbeat.missed intervals)",
                {}, number(cluster, "peers_lost"));
    for (const auto& [peer, state] : member(cluster, "states").items()) {
      for (const char* s : {"live", "draining", "gone"}) {
        out.gauge("weir_cluster_peer_state",
                  "1 for the state weir-control gives the peer in this box's owner table",
                  {{"peer", peer}, {"state", s}}, state == s ? 1 : 0);
      }
    }
  }
  out.counter("weir_config_reloads_total", "Configuration reloads, by result",
              {{"result", "success"}}, number(control, "reloads_ok"));
  out.counter("weir_config_reloads_total", "Configuration reloads, by result",
              {{"result", "failure"}}, number(control, "reloads_failed"));
  out.gauge("weir_config_last_reload_success_timestamp_seconds",
            "When the configuration was last loaded successfully (Unix time)", {},
            number(control, "last_reload_success_unix"));
  return out.take();
}

std::vector<MetricFamily> MetricsCollector::Collect() const {
  nlohmann::json control = control_state_();
  control["process"] = process_stats_json();
  std::lock_guard<std::mutex> lock(mutex_);
  std::string error;
  std::optional<nlohmann::json> counters = client_.call({{"op", "counters"}}, error);
  std::optional<nlohmann::json> pools;
  if (counters && counters->value("ok", false)) {
    pools = client_.call({{"op", "pools"}}, error);
  } else {
    counters.reset();
  }
  const nlohmann::json* pools_list =
      pools && pools->value("ok", false) && pools->contains("pools") ? &(*pools)["pools"] : nullptr;
  return build(counters ? &*counters : nullptr, pools_list, control);
}

}  // namespace weir::control
