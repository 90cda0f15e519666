// weir-control: health checks, Prometheus metrics, the weirctl admin socket and configuration
// reload, beside a running weir-dataplane (docs/operations.md, "The control plane").
//
//   weir-control --config FILE [--tls-worker PATH]
//
// One thread runs the loop below (signals, health checks, the admin socket, the dataplane link);
// prometheus-cpp's exposer serves /metrics on its own threads, reading the dataplane through its
// own connection and weir-control's state under a mutex. The dataplane keeps forwarding with its
// last state while weir-control is stopped; on (re)connection weir-control sends every backend's
// state again, so a restart of either side resynchronises.
#include <poll.h>
#include <prometheus/exposer.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/channel/envelope.h"
#include "common/channel/line_server.h"
#include "common/log.h"
#include "common/service_notify.h"
#include "common/version.h"
#include "config/certificate_check.h"
#include "config/config.h"
#include "control/bird_announcer.h"
#include "control/certificate_expiry.h"
#include "control/cluster_membership.h"
#include "control/controller.h"
#include "control/dataplane_channel.h"
#include "control/health.h"
#include "control/metrics.h"
#include "control/passive_health.h"
#include "control/state_file.h"
#include "control/tls_workers.h"

namespace weir::control {
namespace {

double unix_now() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<double>(ts.tv_sec) + ts.tv_nsec / 1e9;
}

class Daemon {
 public:
  Daemon(std::string path, std::shared_ptr<const config::Config> config, std::string tls_worker)
      : path_(std::move(path)),
        tls_worker_(std::move(tls_worker)),
        controller_(config),
        dataplane_(dataplane_channel(config->dataplane.control_socket)),
        registry_(std::make_shared<prometheus::Registry>()),
        durations_(prometheus::BuildHistogram()
                       .Name("weir_health_check_duration_seconds")
                       .Help("How long health checks took, from connect to verdict")
                       .Register(*registry_)),
        admin_([this](std::string_view line) { return admin(line); }),
        read_only_admin_([this](std::string_view line) { return admin(line); }) {
    last_reload_success_ = unix_now();
    start_health(*config);
    read_certificates(*config);
    restore_state();
    membership_.configure(*config, now_ms());
  }

  int run() {
    const auto& config = controller_.config();
    if (!open_admin_sockets(config.control)) return 1;
    const config::Endpoint& listen = config.control.metrics.listen;
    const std::string metrics_address =
        listen.address.to_string() + ":" + std::to_string(listen.port);
    std::unique_ptr<prometheus::Exposer> exposer;
    try {
      exposer = std::make_unique<prometheus::Exposer>(metrics_address);
    } catch (const std::exception& e) {
      log::printf(log::Level::error, "cannot serve metrics on %s: %s (control.metrics.listen)",
                  metrics_address.c_str(), e.what());
      return 1;
    }
    collector_ = std::make_shared<MetricsCollector>(config.dataplane.control_socket,
                                                    [this] { return state_for_metrics(); });
    exposer->RegisterCollectable(collector_);
    exposer->RegisterCollectable(registry_);
    log::printf(log::Level::notice, "metrics on http://%s/metrics, admin socket %s, dataplane %s",
                metrics_address.c_str(), config.control.socket.c_str(),
                config.dataplane.control_socket.c_str());

    sigset_t signals;
    sigemptyset(&signals);
    for (int s : {SIGTERM, SIGINT, SIGHUP, SIGCHLD}) sigaddset(&signals, s);
    const int signal_fd = signalfd(-1, &signals, SFD_CLOEXEC | SFD_NONBLOCK);
    if (!start_tls(config)) return 1;
    // Ready for systemd once /metrics and the admin socket listen and the dataplane link has been
    // tried once (it is retried every second): a dataplane that is not there yet is not a failure.
    sync();
    uint64_t last_sync_us = HealthChecker::now_us();
    notify_ready(std::string("metrics on ") + metrics_address + ", dataplane " +
                 (dataplane_connected_ ? "connected" : "not reachable yet, retrying"));
    for (bool running = true; running;) {
      std::vector<pollfd> fds{{signal_fd, POLLIN, 0}};
      if (health_) fds.push_back({health_->fd(), POLLIN, 0});
      admin_.add_poll_fds(fds);
      read_only_admin_.add_poll_fds(fds);
      int timeout_ms = 200;
      if (tls_) timeout_ms = std::min(timeout_ms, tls_->next_due_in(now_ms()));
      if (::poll(fds.data(), fds.size(), timeout_ms) > 0) {
        signalfd_siginfo info{};
        while (read(signal_fd, &info, sizeof info) == sizeof info) {
          if (info.ssi_signo == SIGCHLD) {
            if (tls_) {
              std::lock_guard<std::mutex> lock(mutex_);
              tls_->reap(now_ms());
            }
          } else if (info.ssi_signo == SIGHUP) {
            const nlohmann::json result = reload();
            log::printf(result.value("ok", false) ? log::Level::notice : log::Level::error,
                        "SIGHUP: %s", result.dump().c_str());
          } else {
            running = false;
          }
        }
        if (health_ && fds[1].revents != 0) poll_health();
      }
      admin_.serve(fds);
      read_only_admin_.serve(fds);
      {
        std::lock_guard<std::mutex> lock(mutex_);  // for /metrics, read on the exposer's threads
        socket_stats_ = {admin_.stats(), read_only_admin_.stats()};
      }
      if (tls_) {
        std::lock_guard<std::mutex> lock(mutex_);
        tls_->tick(now_ms());
      }
      // The dataplane link: every second, or at once when there is something to send.
      const uint64_t now = HealthChecker::now_us();
      if (now - last_sync_us >= 1'000'000 || dirty_) {
        sync();
        last_sync_us = now;
      }
      if (dataplane_connected_ && membership_.due(now_ms())) follow_membership(false);
      announce(false);
    }
    // Withdrawn before anything else stops, so that routers send no new flows here.
    announce(true);
    notify_stopping();
    if (tls_) {
      std::lock_guard<std::mutex> lock(mutex_);
      tls_->stop(5000);
    }
    close(signal_fd);
    return 0;
  }

 private:
  void start_health(const config::Config& config) {
    std::lock_guard<std::mutex> lock(mutex_);
    health_.reset();
    auto targets = health_targets(config);
    if (!targets.empty()) health_ = std::make_unique<HealthChecker>(std::move(targets), seed());
    checks_seen_.assign(health_ ? health_->size() : 0, 0);
  }
  static uint64_t now_ms() { return HealthChecker::now_us() / 1000; }

  // The certificates' expiry for /metrics (control/certificate_expiry.h): at start and on reload.
  void read_certificates(const config::Config& config) {
    nlohmann::json certificates = certificate_expiries(config);
    for (const auto& c : certificates) {
      if (c.contains("error"))
        log::printf(log::Level::error, "listener %s: cannot read the certificate: %s",
                    c["listener"].get<std::string>().c_str(),
                    c["error"].get<std::string>().c_str());
    }
    std::lock_guard<std::mutex> lock(mutex_);
    certificates_ = std::move(certificates);
  }

  // The TLS workers (control/tls_workers.h), when the configuration has TLS. The count and the
  // rotation period are read at start; a reload does not change them (docs/tls.md).
  // False (logged) when tls.ticket_keys_file is unusable: weir-control does not start.
  bool start_tls(const config::Config& config) {
    if (!TlsWorkers::wanted(config)) return true;
    std::optional<std::vector<ticket_keys::Key>> file_keys;
    if (const nlohmann::json problems = read_ticket_keys_file(config, file_keys);
        !problems.empty()) {
      for (const auto& p : problems)
        log::printf(log::Level::error, "%s", p.get<std::string>().c_str());
      return false;
    }
    std::lock_guard<std::mutex> lock(mutex_);
    tls_ = std::make_unique<TlsWorkers>(
        tls_worker_.empty() ? TlsWorkers::default_binary() : tls_worker_, path_, config, now_ms());
    tls_->use_file_keys(std::move(file_keys), now_ms());
    tls_->start(now_ms());
    return true;
  }

  // tls.ticket_keys_file's keys into `keys` (nullopt when it is not set), or its problems as
  // FILE:LINE:COL lines (config/certificate_check.h).
  static nlohmann::json read_ticket_keys_file(const config::Config& config,
                                              std::optional<std::vector<ticket_keys::Key>>& keys) {
    keys.reset();
    nlohmann::json problems = nlohmann::json::array();
    if (!config.tls.ticket_keys_file) return problems;
    std::vector<ticket_keys::Key> read;
    for (const auto& d : config::ticket_keys_file_problems(config, &read))
      problems.push_back(d.to_string());
    if (problems.empty()) keys = std::move(read);
    return problems;
  }

  static uint64_t seed() {
    timespec ts{};
    clock_gettime(CLOCK_REALTIME, &ts);
    return static_cast<uint64_t>(ts.tv_nsec) ^ (static_cast<uint64_t>(getpid()) << 32);
  }

  // The overrides of the last run (control/state_file.h). A file that cannot be used is reported
  // and set aside; weir-control starts without overrides rather than not at all.
  void restore_state() {
    const std::string& path = controller_.config().control.state_file;
    const LoadedState loaded = load_state(path);
    if (!loaded.error.empty()) {
      std::fprintf(stderr,
                   "weir-control: the state file %s is unusable (%s); starting without manual "
                   "overrides%s\n",
                   path.c_str(), loaded.error.c_str(),
                   loaded.kept_as.empty() ? "" : ("; it was kept as " + loaded.kept_as).c_str());
      state_file_error_ = loaded.error;
      return;
    }
    if (!loaded.state) return;
    std::vector<std::string> skipped;
    if (const std::string refused = controller_.restore(*loaded.state, skipped); !refused.empty()) {
      std::fprintf(stderr,
                   "weir-control: the state file %s is unusable (%s); starting without "
                   "manual overrides\n",
                   path.c_str(), refused.c_str());
      state_file_error_ = refused;
      return;
    }
    for (const std::string& s : skipped)
      std::fprintf(stderr, "weir-control: state file %s: %s; that override is dropped\n",
                   path.c_str(), s.c_str());
    const nlohmann::json kept = controller_.overrides();
    std::fprintf(stderr, "weir-control: restored %zu manual override(s)%s from %s\n",
                 kept["backends"].size(), kept["box_drained"] == true ? " and the box's drain" : "",
                 path.c_str());
    if (loaded.state->contains("passive_down")) restore_passive((*loaded.state)["passive_down"]);
  }

  // The backends passive health held down when weir-control stopped (control/passive_health.h).
  void restore_passive(const nlohmann::json& held_down) {
    std::vector<std::string> skipped;
    for (const auto& v : passive_.restore(controller_.config(), held_down, HealthChecker::now_us(),
                                          unix_now_ms(), skipped)) {
      std::fprintf(stderr, "weir-control: %s/%s is %s by passive health: %s\n", v.pool.c_str(),
                   v.backend.c_str(), v.down ? "down" : "no longer down", v.reason.c_str());
      controller_.passive(v.pool, v.backend, v.down);
    }
    for (const std::string& s : skipped)
      std::fprintf(stderr, "weir-control: state file %s: %s; that hold-down is dropped\n",
                   controller_.config().control.state_file.c_str(), s.c_str());
  }

  static uint64_t unix_now_ms() { return static_cast<uint64_t>(unix_now() * 1000); }

  // What the state file keeps (mutex_ held): the overrides, and the passive hold-downs if any.
  nlohmann::json state_document() const {
    nlohmann::json state = controller_.overrides();
    nlohmann::json held_down = passive_.held_down(HealthChecker::now_us(), unix_now_ms());
    if (!held_down.empty()) state["passive_down"] = std::move(held_down);
    return state;
  }

  // After an override or a passive hold-down changed (mutex_ held): the state file, or why it
  // could not be written.
  std::string save_overrides() {
    const std::string& path = controller_.config().control.state_file;
    std::string error = save_state(path, state_document());
    if (!error.empty()) {
      std::fprintf(stderr, "weir-control: the state file was not written: %s\n", error.c_str());
      error =
          "applied, but not saved (" + error + "): it will not survive a restart of weir-control";
    }
    state_file_error_ = error;
    return error;
  }

  void poll_health() {
    std::lock_guard<std::mutex> lock(mutex_);
    health_->poll(0);
    for (size_t i = 0; i < health_->size(); ++i) {
      const HealthChecker::Status& s = health_->status(i);
      if (s.checks == checks_seen_[i]) continue;
      checks_seen_[i] = s.checks;
      const auto& t = health_->target(i);
      durations_
          .Add({{"pool", t.pool}, {"backend", t.backend}},
               prometheus::Histogram::BucketBoundaries{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                                       0.05, 0.1, 0.25, 0.5, 1, 2.5})
          .Observe(static_cast<double>(s.last_duration_us) / 1e6);
    }
    for (const auto& t : health_->take_transitions()) {
      // A flapping backend (or many failing at once) is limited to a few lines and a count.
      WEIR_LOG_LIMITED(t.up ? log::Level::notice : log::Level::warning, "%s/%s is %s: %s",
                       t.pool.c_str(), t.backend.c_str(), t.up ? "up" : "down", t.reason.c_str());
      controller_.health(t.pool, t.backend, t.up);
      dirty_ = true;
    }
  }

  // The VIPs this box may attract, announced through BIRD (cluster.bird) when the set changes, and
  // tried again at most once a second while BIRD does not answer (a hung BIRD must not stall this
  // loop: each try waits one second at most).
  void announce(bool stopping) {
    const config::Config& config = controller_.config();
    if (!config.cluster || !config.cluster->bird) {
      bird_.reset();
      return;
    }
    const config::ClusterBird& settings = *config.cluster->bird;
    if (!bird_ || bird_settings_.socket != settings.socket ||
        bird_settings_.routes_file != settings.routes_file) {
      bird_ = std::make_unique<BirdAnnouncer>(settings, 1000);
      bird_settings_ = settings;
    }
    std::vector<net::Ipv4Address> vips;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      vips =
          vips_to_announce(config, {dataplane_connected_, controller_.box_drained(), stopping},
                           [this](size_t pool) { return controller_.pool_has_backend_up(pool); });
    }
    if (bird_->in_sync() && vips == bird_->announced()) return;
    const uint64_t now = now_ms();
    if (!stopping && vips == bird_last_tried_ && now - bird_tried_ms_ < 1000) return;
    bird_last_tried_ = vips;
    bird_tried_ms_ = now;
    if (const std::string error = bird_->announce(vips); !error.empty()) {
      WEIR_LOG_LIMITED(log::Level::error,
                       "BIRD did not take the VIPs to announce: %s (cluster.bird)", error.c_str());
      return;
    }
    std::string list;
    for (const net::Ipv4Address& vip : vips) list += (list.empty() ? "" : " ") + vip.to_string();
    log::printf(log::Level::notice, "announcing %zu VIP(s) through BIRD: %s", vips.size(),
                list.empty() ? "none" : list.c_str());
  }

  // Sends what the dataplane lacks; everything after a (re)connection or a dataplane restart. A
  // reply with a field of the wrong type (nlohmann throws on reading it) is the dataplane's fault,
  // never a reason for weir-control to stop: it is reported and the link is tried again.
  void sync() {
    try {
      sync_once();
    } catch (const nlohmann::json::exception& e) {
      WEIR_LOG_LIMITED(log::Level::error, "a malformed reply from the dataplane: %s", e.what());
      dataplane_connected_ = false;
    }
  }

  void sync_once() {
    std::string error;
    const auto hello = dataplane_.call({{"op", "hello"}}, error);
    if (!hello) {
      if (dataplane_connected_)
        log::printf(log::Level::error, "lost the dataplane: %s", error.c_str());
      dataplane_connected_ = false;
      return;
    }
    const int64_t pid = hello->value("pid", int64_t{0});
    const bool everything = !dataplane_connected_ || pid != dataplane_pid_;
    if (everything) {
      log::printf(log::Level::notice, "connected to the dataplane (pid %lld)",
                  static_cast<long long>(pid));
    }
    dataplane_connected_ = true;
    dataplane_pid_ = pid;
    dataplane_workers_ = hello->value("workers", 0);
    {
      std::lock_guard<std::mutex> lock(mutex_);  // read by the metrics threads
      dataplane_version_ = hello->value("version", "");
      dataplane_revision_ = hello->value("revision", "");
    }
    observe_passive();
    std::vector<BackendChange> changes;
    std::optional<bool> box;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      changes = controller_.pending(everything);
      box = controller_.pending_box(everything);
      dirty_ = false;
    }
    for (const BackendChange& c : changes) {
      const auto reply = dataplane_.call({{"op", "set_backend"},
                                          {"pool", c.pool},
                                          {"backend", c.backend},
                                          {"state", c.state},
                                          {"weight", c.weight}},
                                         error);
      if (!reply || !reply->value("ok", false)) {
        WEIR_LOG_LIMITED(log::Level::error, "the dataplane refused %s/%s -> %s: %s", c.pool.c_str(),
                         c.backend.c_str(), c.state.c_str(),
                         reply ? reply->value("error", "").c_str() : error.c_str());
        dataplane_connected_ = false;  // everything again on the next sync
        return;
      }
    }
    if (box) {
      const auto reply = dataplane_.call({{"op", "set_accepting"}, {"accepting", !*box}}, error);
      if (!reply || !reply->value("ok", false)) {
        std::fprintf(stderr, "weir-control: the dataplane refused the box's %s: %s\n",
                     *box ? "drain" : "undrain",
                     reply ? reply->value("error", "").c_str() : error.c_str());
        std::lock_guard<std::mutex> lock(mutex_);
        controller_.box_unsent();
      }
    }
    // A dataplane that (re)starts computes owners over every peer live, and has heard nobody
    // yet: the operator's overrides (weirctl cluster-peers) go to it at once, before the next
    // announcement; the heartbeats' verdicts once it has had time to hear the peers.
    if (everything) {
      membership_.dataplane_restarted(now_ms());
      follow_membership(true);
    }
  }

  // Heartbeats and overrides to the dataplane's owner table (control/cluster_membership.h).
  void follow_membership(bool again) {
    if (const std::string error = membership_.step(dataplane_, box_drained(), again, now_ms());
        !error.empty())
      WEIR_LOG_LIMITED(log::Level::error, "cluster membership: %s", error.c_str());
  }
  bool box_drained() {
    std::lock_guard<std::mutex> lock(mutex_);
    return controller_.box_drained();
  }

  // Passive health (control/passive_health.h): one look at the dataplane's per-backend counters,
  // when a pool asks for it.
  void observe_passive() {
    bool wanted = false;
    for (const config::Pool& pool : controller_.config().pools)
      wanted = wanted || pool.passive_health.has_value();
    if (!wanted) return;
    std::string error;
    const auto pools = dataplane_.call({{"op", "pools"}}, error);
    if (!pools || !pools->contains("pools")) return;  // the next sync looks again
    std::lock_guard<std::mutex> lock(mutex_);
    bool changed = false;
    for (const auto& v :
         passive_.observe(controller_.config(), (*pools)["pools"], HealthChecker::now_us())) {
      std::fprintf(stderr, "weir-control: %s/%s is %s by passive health: %s\n", v.pool.c_str(),
                   v.backend.c_str(), v.down ? "down" : "no longer down", v.reason.c_str());
      controller_.passive(v.pool, v.backend, v.down);
      changed = true;
    }
    if (changed) save_overrides();  // a hold-down survives a restart of weir-control
  }

  nlohmann::json reload() {
    try {
      return reload_once();
    } catch (const nlohmann::json::exception& e) {
      std::lock_guard<std::mutex> lock(mutex_);
      ++reloads_failed_;
      return {{"ok", false},
              {"error", std::string("a malformed reply from the dataplane: ") + e.what()}};
    }
  }

  nlohmann::json reload_once() {
    const config::LoadResult result = config::load_file(path_);
    nlohmann::json reply{{"ok", result.ok()}};
    if (!result.ok()) {
      std::lock_guard<std::mutex> lock(mutex_);
      ++reloads_failed_;
      nlohmann::json diagnostics = nlohmann::json::array();
      for (const auto& d : result.errors) diagnostics.push_back(d.to_string());
      reply["error"] = "the configuration is invalid; the running one stays";
      reply["diagnostics"] = diagnostics;
      return reply;
    }
    // The shared ticket keys are read first: a bad file refuses the reload before anything changed.
    std::optional<std::vector<ticket_keys::Key>> file_keys;
    if (nlohmann::json problems = read_ticket_keys_file(*result.config, file_keys);
        !problems.empty()) {
      std::lock_guard<std::mutex> lock(mutex_);
      ++reloads_failed_;
      return {{"ok", false},
              {"error", "tls.ticket_keys_file is unusable; the running keys stay"},
              {"diagnostics", problems}};
    }
    // New certificates are checked before anything changes (by the worker binary: weir-control
    // never reads a key); a bad one refuses the reload, and the workers keep the old ones.
    if (tls_) {
      const std::vector<std::string> problems = tls_->check_certificates(*result.config);
      if (!problems.empty()) {
        std::lock_guard<std::mutex> lock(mutex_);
        ++reloads_failed_;
        return {{"ok", false},
                {"error", "a certificate does not load; the running ones stay"},
                {"diagnostics", problems}};
      }
    }
    // The dataplane reads the same file and applies its structure first (listeners, pools,
    // backends); it refuses, changing nothing, what it cannot change while running.
    std::string error;
    const auto applied = dataplane_.call({{"op", "apply_config"}, {"path", path_}}, error);
    if (!applied || !applied->value("ok", false)) {
      std::lock_guard<std::mutex> lock(mutex_);
      ++reloads_failed_;
      nlohmann::json refused{{"ok", false}};
      refused["error"] = applied ? applied->value("error", "refused by the dataplane")
                                 : "the dataplane is not reachable: " + error;
      if (applied && applied->contains("diagnostics"))
        refused["diagnostics"] = (*applied)["diagnostics"];
      return refused;
    }
    std::vector<std::string> changes;
    for (const auto& c : applied->value("changes", nlohmann::json::array()))
      changes.push_back(c.get<std::string>());
    std::string refusal;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      refusal = controller_.reload(result.config, changes);
      if (!refusal.empty()) {
        ++reloads_failed_;
      } else {
        ++reloads_ok_;
        last_reload_success_ = unix_now();
        dirty_ = true;
      }
    }
    if (!refusal.empty()) return {{"ok", false}, {"error", refusal}};
    if (tls_) {
      std::lock_guard<std::mutex> lock(mutex_);
      tls_->use_file_keys(std::move(file_keys), now_ms());
      tls_->reload_certificates(*result.config);
    }
    start_health(*result.config);
    read_certificates(*result.config);
    membership_.configure(*result.config, now_ms());
    reply["changes"] = changes;
    return reply;
  }

  // The admin socket (at its configured level) and the read-only one, if configured.
  bool open_admin_sockets(const config::Control& control) {
    auto open = [](channel::LineServer& server, const std::string& path, const std::string& key,
                   const config::SocketAccess& access) {
      if (access.level == config::SocketLevel::read_only)
        server.set_read_only({std::begin(kQueries), std::end(kQueries)});
      const std::string error =
          server.open(path, key, {static_cast<mode_t>(access.mode), access.group});
      if (!error.empty()) log::printf(log::Level::error, "%s", error.c_str());
      return error.empty();
    };
    return open(admin_, control.socket, "control.socket", control.socket_access) &&
           (!control.read_only_socket ||
            open(read_only_admin_, *control.read_only_socket, "control.read_only_socket",
                 control.read_only_socket_access));
  }

  nlohmann::json socket_state() const {
    nlohmann::json sockets = nlohmann::json::array();
    auto add = [&](const std::string& key, const channel::LineServerStats& s) {
      sockets.push_back({{"socket", key},
                         {"clients_refused", s.clients_refused},
                         {"clients_idle_closed", s.clients_idle_closed},
                         {"clients_overflow_closed", s.clients_overflow_closed},
                         {"read_only_refused", s.read_only_refused}});
    };
    add("control.socket", socket_stats_[0]);
    if (read_only_admin_.listening()) add("control.read_only_socket", socket_stats_[1]);
    return sockets;
  }

  nlohmann::json state_for_metrics() {
    std::lock_guard<std::mutex> lock(mutex_);
    nlohmann::json health = nlohmann::json::array();
    for (size_t i = 0; health_ && i < health_->size(); ++i) {
      const auto& t = health_->target(i);
      const auto& s = health_->status(i);
      health.push_back({{"pool", t.pool},
                        {"backend", t.backend},
                        {"up", s.up},
                        {"checks", s.checks},
                        {"failures", s.failures},
                        {"transitions", s.transitions}});
    }
    nlohmann::json tls = nullptr;
    if (tls_) {
      tls = tls_->certificate_refusals();
      tls["workers_running"] = tls_->running();
      tls["restarts"] = tls_->restarts();
      tls["key_rotations"] = tls_->key_rotations();
      tls["worker_counters"] = tls_->worker_counters();
    }
    return {{"health", health},
            {"tls", tls},
            {"certificates", certificates_},
            {"passive", passive_.describe()},
            {"box_drained", controller_.box_drained()},
            {"cluster", membership_.describe()},
            {"reloads_ok", reloads_ok_},
            {"reloads_failed", reloads_failed_},
            {"last_reload_success_unix", last_reload_success_},
            {"version", version()},
            {"revision", revision()},
            {"dataplane_version", dataplane_version_},
            {"dataplane_revision", dataplane_revision_},
            {"sockets", socket_state()}};
  }

  // The admin protocol (docs/weirctl.md): the dataplane's framing, weir-control's operations.
  std::string admin(std::string_view line) {
    const channel::Request parsed = channel::parse_request(line, "weir-control");
    const nlohmann::json& id = parsed.id;
    auto fail = [&](const std::string& message) { return channel::error_line(id, message); };
    if (!parsed.error.empty()) return fail(parsed.error);
    const nlohmann::json& request = parsed.body;
    const std::string& op = parsed.op;
    nlohmann::json reply = channel::ok_reply(id);
    std::string error;
    if (op == "status") {
      std::lock_guard<std::mutex> lock(mutex_);
      reply["dataplane"] = {{"connected", dataplane_connected_},
                            {"pid", dataplane_pid_},
                            {"workers", dataplane_workers_},
                            {"node_id", controller_.config().node_id}};
      reply["config"] = path_;
      reply["reloads"] = {{"ok", reloads_ok_},
                          {"failed", reloads_failed_},
                          {"last_success_unix", last_reload_success_}};
      reply["health"] = {{"checks", health_ ? health_->size() : 0}};
      reply["passive"] = passive_.describe();
      reply["box"] = {{"drained", controller_.box_drained()}};
      reply["cluster"] = membership_.describe();
      reply["tls"] = tls_ ? tls_->describe() : nlohmann::json(nullptr);
      reply["state_file"] = {
          {"path", controller_.config().control.state_file},
          {"error", state_file_error_.empty() ? nlohmann::json(nullptr)
                                              : nlohmann::json(state_file_error_)}};
    } else if (op == "listeners" || op == "stats") {
      const auto answer =
          dataplane_.call({{"op", op == "stats" ? "counters" : "listeners"}}, error);
      if (!answer) return fail("the dataplane is not reachable: " + error);
      reply = *answer;
      reply["id"] = id;
    } else if (op == "events") {
      nlohmann::json ask{{"op", "events"}};
      if (request.contains("limit")) ask["limit"] = request["limit"];
      const auto answer = dataplane_.call(ask, error);
      if (!answer) return fail("the dataplane is not reachable: " + error);
      reply = *answer;
      reply["id"] = id;
    } else if (op == "backends") {
      const auto pools = dataplane_.call({{"op", "pools"}}, error);
      if (!pools) return fail("the dataplane is not reachable: " + error);
      nlohmann::json described;
      {
        std::lock_guard<std::mutex> lock(mutex_);
        described = controller_.describe();
      }
      nlohmann::json out = nlohmann::json::array();
      for (auto pool : (*pools)["pools"]) {
        if (request.contains("pool") && request["pool"] != pool["name"]) continue;
        for (auto& b : pool["backends"]) {
          for (const auto& d : described) {
            if (d["pool"] == pool["name"] && d["backend"] == b["name"]) {
              b["health"] = d["health"];
              b["override"] = d["override"];
              b["passive"] = d["passive"];
            }
          }
        }
        out.push_back(pool);
      }
      if (request.contains("pool") && out.empty())
        return fail("no pool named " + request["pool"].dump());
      reply["pools"] = out;
    } else if (op == "set") {
      if (!request.contains("pool") || !request["pool"].is_string() ||
          !request.contains("backend") || !request["backend"].is_string())
        return fail("set needs \"pool\" and \"backend\"");
      std::optional<std::string> state;
      std::optional<uint32_t> weight;
      if (request.contains("state")) {
        if (!request["state"].is_string()) return fail("\"state\" must be a string");
        state = request["state"].get<std::string>();
      }
      if (request.contains("weight")) {
        if (!request["weight"].is_number_unsigned()) return fail("\"weight\" must be a number");
        weight = static_cast<uint32_t>(
            std::min<uint64_t>(request["weight"].get<uint64_t>(), UINT32_MAX));
      }
      if (!state && !weight) return fail("set needs \"state\" or \"weight\"");
      std::string unsaved;
      {
        std::lock_guard<std::mutex> lock(mutex_);
        error = controller_.set(request["pool"], request["backend"], state, weight);
        if (error.empty()) {
          dirty_ = true;
          unsaved = save_overrides();
        }
      }
      if (!error.empty()) return fail(error);
      sync();  // at once, so that weirctl returns after the dataplane has it
      if (!dataplane_connected_) return fail("recorded, but the dataplane is not reachable");
      if (!unsaved.empty()) return fail(unsaved);
    } else if (op == "drain_box" || op == "undrain_box") {
      std::string unsaved;
      {
        std::lock_guard<std::mutex> lock(mutex_);
        controller_.drain_box(op == "drain_box");
        dirty_ = true;
        unsaved = save_overrides();
      }
      sync();
      if (!dataplane_connected_) return fail("recorded, but the dataplane is not reachable");
      if (!unsaved.empty()) return fail(unsaved);
    } else if (op == "cluster_peers") {
      // Kept, and sent again to a dataplane that restarts.
      error = membership_.override_states(request.value("peers", nlohmann::json()), dataplane_,
                                          box_drained(), now_ms());
      if (!error.empty()) return fail(error);
      reply["cluster"] = membership_.describe();
    } else if (op == "box") {
      const auto box = dataplane_.call({{"op", "box"}}, error);
      if (!box || !box->value("ok", false))
        return fail("the dataplane is not reachable: " +
                    (box ? box->value("error", std::string("refused")) : error));
      reply["dataplane"] = *box;
      reply["dataplane"].erase("v");
      reply["dataplane"].erase("id");
      reply["dataplane"].erase("ok");
      std::lock_guard<std::mutex> lock(mutex_);
      reply["drained"] = controller_.box_drained();
    } else if (op == "reload") {
      nlohmann::json result = reload();
      result["v"] = channel::kProtocolVersion;
      result["id"] = id;
      return result.dump();
    } else {
      return fail("unknown operation \"" + op + "\"");
    }
    return reply.dump();
  }

  std::string path_;
  std::string tls_worker_;  // --tls-worker; "" for the one next to weir-control
  Controller controller_;
  channel::LineClient dataplane_;
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Histogram>& durations_;
  // The operations that change nothing: what a read-only socket answers (docs/weirctl.md).
  static constexpr const char* kQueries[] = {"status", "listeners", "stats",
                                             "events", "backends",  "box"};
  channel::LineServer admin_;
  channel::LineServer read_only_admin_;  // control.read_only_socket, when configured
  std::array<channel::LineServerStats, 2> socket_stats_{};  // copies of both, for /metrics
  std::shared_ptr<MetricsCollector> collector_;
  std::unique_ptr<HealthChecker> health_;
  std::unique_ptr<TlsWorkers> tls_;      // when the configuration has TLS
  std::unique_ptr<BirdAnnouncer> bird_;  // when the configuration has cluster.bird
  config::ClusterBird bird_settings_;
  std::vector<net::Ipv4Address> bird_last_tried_;
  uint64_t bird_tried_ms_ = 0;
  std::vector<uint64_t> checks_seen_;
  PassiveHealth passive_;
  nlohmann::json certificates_ = nlohmann::json::array();  // certificate_expiries(), for /metrics
  std::string state_file_error_;  // the state file's last problem, for status; "" when fine
  std::mutex mutex_;  // health_, controller_, passive_ and the counters below, against /metrics
  bool dirty_ = true;
  bool dataplane_connected_ = false;
  ClusterMembership membership_;  // the heartbeats' verdicts and weirctl cluster-peers
  int64_t dataplane_pid_ = 0;
  int dataplane_workers_ = 0;
  std::string dataplane_version_;  // from its hello; empty until the first
  std::string dataplane_revision_;
  uint64_t reloads_ok_ = 0;
  uint64_t reloads_failed_ = 0;
  double last_reload_success_ = 0;
};

}  // namespace
}  // namespace weir::control

int main(int argc, char** argv) {
  constexpr const char* kUsage =
      "usage: weir-control --config FILE [--tls-worker PATH]\n       weir-control --version\n"
      "\n  --tls-worker PATH  the weir-tls-worker binary (default: the one beside weir-control,\n"
      "                     else " WEIR_INSTALLED_TLS_WORKER ")\n";
  if (argc == 2 && (std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0)) {
    std::printf("%s", kUsage);
    return 0;
  }
  if (argc == 2 && std::strcmp(argv[1], "--version") == 0) {
    std::printf("%s\n", weir::version_line("weir-control").c_str());
    return 0;
  }
  if ((argc != 3 && argc != 5) || std::strcmp(argv[1], "--config") != 0 ||
      (argc == 5 && std::strcmp(argv[3], "--tls-worker") != 0)) {
    std::fprintf(stderr, "%s", kUsage);
    return 2;
  }
  // Signals are read through a signalfd; block them before any thread (the exposer's) starts.
  sigset_t signals;
  sigemptyset(&signals);
  for (int s : {SIGTERM, SIGINT, SIGHUP, SIGCHLD}) sigaddset(&signals, s);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);
  weir::log::init("weir-control");
  const weir::config::LoadResult result = weir::config::load_file(argv[2]);
  for (const auto& error : result.errors)
    weir::log::write(weir::log::Level::error, error.to_string());
  if (!result.ok()) return 1;
  weir::control::Daemon daemon(argv[2], result.config, argc == 5 ? argv[4] : "");
  return daemon.run();
}
