#include "dataplane/process.h"

#include <poll.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_log.h>
#include <rte_mbuf.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "common/channel/line_server.h"
#include "common/log.h"
#include "common/service_notify.h"
#include "common/tls_attach.h"
#include "common/tls_channel.h"
#include "dataplane/main_lcore/control_requests.h"
#include "dataplane/main_lcore/pool_state.h"
#include "dataplane/main_lcore/running_dataplane.h"
#include "dataplane/main_lcore/tls_worker_socket.h"
#include "dataplane/net/gue.h"
#include "dataplane/port.h"
#include "dataplane/stats.h"
#include "dataplane/worker.h"

namespace weir::dataplane {
namespace {

constexpr unsigned kMbufCache = 256;

using log::monotonic_us;

bool has_argument(const std::vector<std::string>& args, const std::string& name) {
  return std::any_of(args.begin(), args.end(), [&](const std::string& a) {
    return a == name || a.rfind(name + "=", 0) == 0;
  });
}

uint64_t reserved_hugepages() {
  std::ifstream meminfo("/proc/meminfo");
  std::string key;
  uint64_t value = 0;
  while (meminfo >> key >> value) {
    if (key == "HugePages_Total:") return value;
    meminfo.ignore(256, '\n');
  }
  return 0;
}

// DPDK's own messages (rte_log) through Weir's log: the same time or journal priority, and the
// level DPDK gave each (its levels are syslog's plus one). DPDK writes and flushes each message;
// the stream's write function receives it whole and logs it line by line.
ssize_t write_dpdk_log(void*, const char* data, size_t size) {
  const unsigned dpdk_level = static_cast<unsigned>(rte_log_cur_msg_loglevel());
  const log::Level level = dpdk_level <= RTE_LOG_ERR       ? log::Level::error
                           : dpdk_level == RTE_LOG_WARNING ? log::Level::warning
                           : dpdk_level == RTE_LOG_NOTICE  ? log::Level::notice
                           : dpdk_level == RTE_LOG_INFO    ? log::Level::info
                                                           : log::Level::debug;
  std::string_view text(data, size);
  while (!text.empty()) {
    const size_t end = text.find('\n');
    const std::string_view line = text.substr(0, end);
    if (!line.empty()) log::write(level, line);
    if (end == std::string_view::npos) break;
    text.remove_prefix(end + 1);
  }
  return static_cast<ssize_t>(size);
}

void route_dpdk_log() {
  cookie_io_functions_t functions{};
  functions.write = write_dpdk_log;
  if (FILE* stream = fopencookie(nullptr, "w", functions)) {
    setvbuf(stream, nullptr, _IOLBF, 0);
    rte_openlog_stream(stream);
  }
}

struct WorkerLaunch {
  Worker* worker;
  const std::atomic<bool>* stop;
};

int worker_main(void* arg) {
  auto* launch = static_cast<WorkerLaunch*>(arg);
  launch->worker->run(*launch->stop);
  return 0;
}

// About 75 MB of 2 KB mbufs: room for some 100 connections with full buffers in both
// directions. (Sizing it from dataplane.limits and the buffers comes with the proxy.)
constexpr unsigned kMbufsForConnections = 32'768;

tcp::CongestionAlgorithm congestion_algorithm(config::Congestion congestion) {
  switch (congestion) {
    case config::Congestion::cubic:
      return tcp::CongestionAlgorithm::cubic;
    case config::Congestion::newreno:
      return tcp::CongestionAlgorithm::newreno;
  }
  return tcp::CongestionAlgorithm::cubic;
}

tcp::TcpSettings tcp_settings_for(const config::Config& config, unsigned workers) {
  tcp::TcpSettings tcp;
  tcp.min_rto_us = uint64_t{config.tcp.min_rto_ms} * 1000;
  tcp.max_rto_us = uint64_t{config.tcp.max_rto_ms} * 1000;
  tcp.time_wait_us = uint64_t{config.tcp.time_wait_ms} * 1000;
  tcp.congestion = congestion_algorithm(config.tcp.congestion);
  tcp.min_mss = config.tcp.min_mss;
  tcp.keepalive_idle_us = uint64_t{config.tcp.keepalive_idle_ms} * 1000;
  tcp.keepalive_interval_us = uint64_t{config.tcp.keepalive_interval_ms} * 1000;
  tcp.keepalive_probes = config.tcp.keepalive_probes;
  tcp.fin_wait2_timeout_us = uint64_t{config.tcp.fin_wait2_timeout_ms} * 1000;
  tcp.out_of_window_ack_interval_us = uint64_t{config.tcp.out_of_window_ack_interval_ms} * 1000;
  tcp.receive_buffer = config.tcp.receive_buffer_bytes;
  tcp.send_buffer = config.tcp.send_buffer_bytes;
  // The connection limit is the process's; each worker gets its share (at least one).
  tcp.max_connections = std::max<uint32_t>(config.dataplane.limits.connections / workers, 1);
  // So is the TIME-WAIT cap, by default a quarter of the table: connections closing faster than
  // TIME-WAIT lets them go can take no more of it than that.
  if (config.tcp.max_time_wait) {
    tcp.max_time_wait = *config.tcp.max_time_wait == 0
                            ? 0
                            : std::max<uint32_t>(*config.tcp.max_time_wait / workers, 1);
  } else {
    tcp.max_time_wait = std::max<uint32_t>(tcp.max_connections / 4, 1);
  }
  return tcp;
}

net::StackConfig stack_config_for(const config::Config& config,
                                  const std::vector<OpenPort>& ports) {
  net::StackConfig stack;
  for (size_t i = 0; i < ports.size(); ++i) {
    const config::Port& port = config.dataplane.ports[i];
    net::StackPort sp;
    sp.mac = net::MacAddress(ports[i].mac);
    sp.address = port.address;
    sp.prefix_length = port.prefix_length;
    if (port.gateway) sp.gateway = *port.gateway;
    sp.mtu = port.mtu;
    sp.source_addresses = port.source_addresses;
    sp.rx_ipv4_checksum_offload = ports[i].capabilities.rx_ipv4_checksum;
    sp.rx_l4_checksum_offload = ports[i].capabilities.rx_l4_checksum;
    sp.tx_checksum_offload = {.ipv4 = ports[i].capabilities.tx_ipv4_checksum,
                              .tcp = ports[i].capabilities.tx_tcp_checksum};
    stack.ports.push_back(sp);
  }
  for (const config::Listener& listener : config.listeners) {
    const net::Ipv4Address address = listener.address;
    if (std::find(stack.listener_addresses.begin(), stack.listener_addresses.end(), address) ==
        stack.listener_addresses.end()) {
      stack.listener_addresses.push_back(address);
    }
  }
  return stack;
}

// SIGTERM (or SIGINT): the listeners stop accepting at once, open sessions get
// dataplane.shutdown_grace_ms to finish, and what remains is reset before the workers stop. A
// second signal during the grace cuts it short. Messages wait for room in a full inbox.
class Shutdown {
 public:
  bool started() const { return phase_ != Phase::running; }

  void on_signal(RunningDataplane& running, int signo, uint64_t now_us) {
    const char* name = signo == SIGINT ? "SIGINT" : "SIGTERM";
    if (phase_ == Phase::running) {
      phase_ = Phase::stop_listening;
      started_us_ = now_us;
      deadline_us_ = now_us + uint64_t{running.config().dataplane.shutdown_grace_ms} * 1000;
      log::printf(log::Level::notice, "%s: stopping; no new connections", name);
    } else if (phase_ != Phase::resetting) {
      deadline_us_ = now_us;
      log::printf(log::Level::notice, "%s again: the sessions left are reset now", name);
    }
  }

  // Moves the shutdown on; true once the workers may stop.
  bool over(RunningDataplane& running, uint64_t now_us) {
    switch (phase_) {
      case Phase::running:
        return false;
      case Phase::stop_listening:
        if (running.stop_listening()) phase_ = Phase::closing_listeners;
        return false;
      case Phase::closing_listeners:
        if (!running.listening_stopped() && now_us < deadline_us_) return false;
        phase_ = Phase::draining;
        log::printf(log::Level::info,
                    "listeners closed; %llu session(s) have until %llu ms after "
                    "the signal to finish",
                    static_cast<unsigned long long>(running.open_sessions()),
                    static_cast<unsigned long long>((deadline_us_ - started_us_) / 1000));
        return false;
      case Phase::draining: {
        const uint64_t open = running.open_sessions();
        if (open != 0 && now_us < deadline_us_) return false;
        if (!running.reset_sessions()) return false;
        phase_ = Phase::resetting;
        resetting_since_us_ = now_us;
        if (open == 0) {
          log::printf(log::Level::info, "every session finished within %llu ms",
                      static_cast<unsigned long long>((now_us - started_us_) / 1000));
        }
        return false;
      }
      case Phase::resetting: {
        // The workers hand the message back once they have reset their sessions; a worker that
        // does not within a second is not waited for.
        const std::optional<uint64_t> reset = running.sessions_reset();
        if (!reset && now_us < resetting_since_us_ + 1'000'000) return false;
        if (!reset || *reset != 0) {
          log::printf(log::Level::notice, "grace over after %llu ms: reset %s session(s)",
                      static_cast<unsigned long long>((now_us - started_us_) / 1000),
                      reset ? std::to_string(*reset).c_str() : "some (a worker did not answer)");
        }
        return true;
      }
    }
    return true;
  }

 private:
  enum class Phase { running, stop_listening, closing_listeners, draining, resetting };
  Phase phase_ = Phase::running;
  uint64_t started_us_ = 0;
  uint64_t deadline_us_ = 0;
  uint64_t resetting_since_us_ = 0;
};

// The process's resources, acquired by the steps of run() in order and released by the
// destructor in reverse, whichever step failed. Every step prints its own error.
class DataplaneProcess {
 public:
  explicit DataplaneProcess(std::shared_ptr<const config::Config> config)
      : config_(std::move(config)) {}
  ~DataplaneProcess() {
    if (launched_) {
      stop_.store(true, std::memory_order_relaxed);
      rte_eal_mp_wait_lcore();
    }
    workers_.clear();
    close_ports(ports_);
    if (mbuf_pool_ != nullptr) rte_mempool_free(mbuf_pool_);
    if (eal_started_) rte_eal_cleanup();
  }
  DataplaneProcess(const DataplaneProcess&) = delete;
  DataplaneProcess& operator=(const DataplaneProcess&) = delete;

  bool start_eal();
  bool create_mbuf_pool();
  bool open_dataplane_ports();
  void build_workers();
  bool create_steering_rings();
  void launch_workers();
  bool serve_main_lcore(const sigset_t& signals);

 private:
  std::shared_ptr<const config::Config> config_;
  bool eal_started_ = false;
  unsigned worker_count_ = 0;
  rte_mempool* mbuf_pool_ = nullptr;
  unsigned critical_free_mbufs_ = 0;
  unsigned pressure_free_mbufs_ = 0;
  std::vector<OpenPort> ports_;
  std::unique_ptr<PoolStates> pool_states_;
  std::vector<std::unique_ptr<Worker>> workers_;
  bool software_steering_ = false;
  std::vector<WorkerLaunch> launches_;
  std::atomic<bool> stop_{false};
  bool launched_ = false;
};

// Checks that EAL can have its memory, then starts it with dataplane.eal; at least one worker
// lcore besides the main one.
bool DataplaneProcess::start_eal() {
  const std::vector<std::string>& eal = config_->dataplane.eal;
  if (!has_argument(eal, "--no-huge") && reserved_hugepages() == 0) {
    log::printf(log::Level::error,
                "no hugepages are reserved (HugePages_Total is 0 in /proc/meminfo)."
                " Reserve some (echo 512 > /proc/sys/vm/nr_hugepages) or add \"--no-huge\", "
                "\"-m\", \"512\" to dataplane.eal");
    return false;
  }
  route_dpdk_log();
  std::vector<std::string> arguments{"weir-dataplane"};
  arguments.insert(arguments.end(), eal.begin(), eal.end());
  std::vector<char*> argv;
  for (std::string& a : arguments) argv.push_back(a.data());
  argv.push_back(nullptr);
  if (rte_eal_init(static_cast<int>(argv.size() - 1), argv.data()) < 0) {
    log::printf(log::Level::error,
                "EAL initialisation failed: %s. Check dataplane.eal (the EAL "
                "message above names the argument); without hugepages use \"--no-huge\"",
                rte_strerror(rte_errno));
    return false;
  }
  eal_started_ = true;
  worker_count_ = rte_lcore_count() - 1;
  if (worker_count_ == 0) {
    log::printf(log::Level::error,
                "dataplane.eal gives one lcore; Weir needs a main lcore and at "
                "least one worker (e.g. \"-l\", \"0-1\")");
    return false;
  }
  return true;
}

bool DataplaneProcess::create_mbuf_pool() {
  const size_t port_count = config_->dataplane.ports.size();
  // Every RX and TX descriptor may hold an mbuf, plus per-lcore caches and bursts in flight,
  // plus what TCP connections hold (send queues and unread data, bounded per connection).
  const unsigned rx_and_tx = static_cast<unsigned>(port_count * worker_count_ * 2 * 1024);
  const unsigned in_caches = (worker_count_ + 1) * (kMbufCache + 4 * kBurstSize);
  const unsigned mbufs = rx_and_tx + in_caches + kMbufsForConnections;
  // TCP's memory marks (tcp::TcpSettings), in free mbufs. Critical: what the TX rings, the lcore
  // caches (counted free, but not this worker's to take) and bursts in flight may need, so that
  // the RX rings can always refill. Pressure: a quarter of the connections' share above it.
  critical_free_mbufs_ = rx_and_tx / 2 + in_caches;
  pressure_free_mbufs_ = critical_free_mbufs_ + kMbufsForConnections / 4;
  mbuf_pool_ =
      rte_pktmbuf_pool_create("weir_mbufs", mbufs, kMbufCache, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
                              static_cast<int>(rte_socket_id()));
  if (mbuf_pool_ == nullptr) {
    log::printf(log::Level::error, "cannot allocate %u mbufs: %s (raise -m in dataplane.eal)",
                mbufs, rte_strerror(rte_errno));
    return false;
  }
  return true;
}

bool DataplaneProcess::open_dataplane_ports() {
  std::vector<PortRequest> requests;
  const std::map<std::string, std::string> vdevs = config::vdev_arguments(config_->dataplane.eal);
  for (const config::Port& port : config_->dataplane.ports) {
    requests.push_back(
        PortRequest{port.name, port.device, port.mtu,
                    vdevs.contains(port.device) ? vdevs.at(port.device) : std::string()});
  }
  std::string error;
  if (!open_ports(requests, static_cast<uint16_t>(worker_count_), mbuf_pool_, ports_, error)) {
    log::printf(log::Level::error, "%s", error.c_str());
    return false;
  }
  return true;
}

// One worker per worker lcore, each with its own queue on every port, its own TCP secret share
// of the connection limit, the services, and the first plans of every pool and listener.
void DataplaneProcess::build_workers() {
  const config::Config& config = *config_;
  const net::StackConfig stack = stack_config_for(config, ports_);
  WorkerSettings settings;
  settings.idle_mode = config.dataplane.idle.mode == config::IdleMode::busy_poll
                           ? IdleMode::busy_poll
                           : IdleMode::backoff;
  settings.max_sleep_us = config.dataplane.idle.max_sleep_us;
  settings.tcp = tcp_settings_for(config, worker_count_);
  settings.tcp.critical_free_mbufs = critical_free_mbufs_;
  settings.tcp.pressure_free_mbufs = pressure_free_mbufs_;
  // Each worker's connections share the pool's part for connections, at ~1 KiB of data an mbuf
  // (a collapsed queue keeps its buffers at least half full).
  settings.tcp.memory_budget_bytes = uint64_t{kMbufsForConnections} * 1024 / worker_count_;
  if (config.cluster) {
    settings.cluster = cluster_plan_for(*config.cluster);
    settings.tcp.listen_mss_reserve = static_cast<uint16_t>(net::gue::kOverhead);
  }
  std::random_device entropy;
  for (uint8_t& byte : settings.secret) byte = static_cast<uint8_t>(entropy());
  for (const config::Listener& listener : config.listeners) {
    if (listener.protocol != config::Protocol::echo &&
        listener.protocol != config::Protocol::discard) {
      continue;  // tcp and framed listeners: the proxy's
    }
    settings.services.push_back(ServiceListener{
        listener.address, listener.port, listener.protocol == config::Protocol::echo,
        std::min<uint32_t>(listener.max_connections, 1024)});
  }
  pool_states_ = std::make_unique<PoolStates>(config);
  for (size_t p = 0; p < pool_states_->pool_count(); ++p)
    settings.pools.push_back(pool_states_->plan(p));
  settings.proxied = proxy::plan_listeners(config, worker_count_);
  // Both halves of a proxied flow must reach the worker that owns them. With RSS on every port
  // the device steers and the proxy predicts it (RETA); otherwise the workers steer in software
  // by the same hash, with no indirection table (dataplane/steering.h).
  bool all_rss = true;
  for (const OpenPort& port : ports_) all_rss = all_rss && port.capabilities.rss;
  software_steering_ = worker_count_ > 1 && !all_rss;
  settings.flow_ownership.workers = static_cast<uint16_t>(worker_count_);
  settings.flow_ownership.reta_size = all_rss ? ports_.front().capabilities.reta_size : 0;
  uint16_t queue = 0;
  unsigned lcore = 0;
  RTE_LCORE_FOREACH_WORKER(lcore) {
    settings.id = queue;
    settings.flow_ownership.worker = queue;
    workers_.push_back(std::make_unique<Worker>(
        settings, std::make_unique<EthdevQueueIo>(ports_, queue), stack, mbuf_pool_));
    ++queue;
  }
}

// With several workers, one single-producer, single-consumer ring per ordered pair of workers
// carries the ARP messages every worker learns from and, without RSS, the segments a worker
// received for a flow another owns.
bool DataplaneProcess::create_steering_rings() {
  if (workers_.size() < 2) return true;
  const size_t n = workers_.size();
  std::vector<std::vector<rte_ring*>> out(n, std::vector<rte_ring*>(n, nullptr)), in(n);
  for (size_t from = 0; from < n; ++from) {
    for (size_t to = 0; to < n; ++to) {
      if (from == to) continue;
      const std::string name = "weir_st_" + std::to_string(from) + "_" + std::to_string(to);
      rte_ring* ring =
          rte_ring_create(name.c_str(), 4096, SOCKET_ID_ANY, RING_F_SP_ENQ | RING_F_SC_DEQ);
      if (ring == nullptr) {
        log::printf(log::Level::error, "cannot create steering ring %s: %s", name.c_str(),
                    rte_strerror(rte_errno));
        return false;
      }
      out[from][to] = ring;
      in[to].push_back(ring);
    }
  }
  for (size_t w = 0; w < n; ++w) workers_[w]->enable_steering(out[w], in[w], software_steering_);
  if (software_steering_)
    log::printf(log::Level::info, "no RSS on the ports: %zu workers steer TCP in software", n);
  return true;
}

void DataplaneProcess::launch_workers() {
  const uint64_t now = monotonic_us();
  for (auto& worker : workers_) worker->start(now);
  launches_.reserve(workers_.size());
  size_t index = 0;
  unsigned lcore = 0;
  RTE_LCORE_FOREACH_WORKER(lcore) {
    launches_.push_back(WorkerLaunch{workers_[index].get(), &stop_});
    rte_eal_remote_launch(worker_main, &launches_.back(), lcore);
    ++index;
  }
  launched_ = true;
  for (const OpenPort& port : ports_) {
    log::printf(log::Level::info, "port %s: device %s (driver %s), MAC %s, RSS %s",
                port.request.name.c_str(), port.request.device.c_str(), port.driver.c_str(),
                net::MacAddress(port.mac).to_string().c_str(),
                port.capabilities.rss ? "on" : "off");
  }
  log::printf(log::Level::info, "running with %u worker(s)", worker_count_);
}

// The main lcore's loop: the control socket and the signals (through a signalfd), polled
// together, until SIGTERM or SIGINT and the shutdown's grace (Shutdown); then the workers stop
// and the final counters are printed.
bool DataplaneProcess::serve_main_lcore(const sigset_t& signals) {
  RunningDataplane running(config_, *pool_states_, ports_, workers_);
  ControlRequests requests(running);
  channel::LineServer server([&](std::string_view line) { return requests.handle(line); });
  requests.set_socket_stats(&server.stats());
  const std::string& socket_path = config_->dataplane.control_socket;
  const config::SocketAccess& access = config_->dataplane.control_socket_access;
  if (std::string error = server.open(socket_path, "dataplane.control_socket",
                                      {static_cast<mode_t>(access.mode), access.group});
      !error.empty()) {
    log::printf(log::Level::error, "%s", error.c_str());
    return false;
  }
  log::printf(log::Level::info, "control socket %s", socket_path.c_str());
  // The TLS workers weir-control starts attach here for their channels (docs/tls.md).
  TlsWorkerSocket tls_workers(workers_, tls_channel::kDefaultRingBytes);
  const std::string tls_path = tls_attach::socket_path(socket_path);
  if (std::string error = tls_workers.open(tls_path); !error.empty()) {
    log::printf(log::Level::error, "%s", error.c_str());
    return false;
  }
  // Ready for systemd only now: the ports are started, the workers poll them and the control
  // socket listens, so that weir-control, ordered after this unit, finds it serving.
  notify_ready("running with " + std::to_string(worker_count_) + " worker(s), control socket " +
               socket_path);
  const int signal_fd = signalfd(-1, &signals, SFD_CLOEXEC | SFD_NONBLOCK);
  Shutdown shutdown;
  while (!shutdown.over(running, monotonic_us())) {
    std::vector<pollfd> fds{pollfd{signal_fd, POLLIN, 0}};
    server.add_poll_fds(fds);
    tls_workers.add_poll_fds(fds);
    // Draining, the sessions' count is looked at every 10 ms, so that the stop follows the last.
    if (poll(fds.data(), fds.size(), shutdown.started() ? 10 : 100) > 0) {
      signalfd_siginfo info{};
      while (read(signal_fd, &info, sizeof info) == sizeof info) {
        if (info.ssi_signo == SIGTERM || info.ssi_signo == SIGINT) {
          shutdown.on_signal(running, info.ssi_signo, monotonic_us());
        }
        if (info.ssi_signo == SIGUSR1) print_stats(stdout, running.config(), ports_, workers_);
        if (info.ssi_signo == SIGHUP) {
          log::printf(log::Level::warning,
                      "SIGHUP refused: the dataplane does not reload on a "
                      "signal. Reload with `weirctl reload` or SIGHUP to weir-control, which "
                      "applies the file to the dataplane; what a running dataplane keeps "
                      "(ports, EAL, limits, tcp) needs a restart");
        }
      }
    }
    server.serve(fds);
    tls_workers.serve(fds);
    running.collect_done();
    running.drain_frame_events();
  }
  close(signal_fd);
  notify_stopping();
  stop_.store(true, std::memory_order_relaxed);
  rte_eal_mp_wait_lcore();
  launched_ = false;
  print_stats(stdout, running.config(), ports_, workers_);
  log::printf(log::Level::notice, "stopped");
  return true;
}

}  // namespace

int run(std::shared_ptr<const config::Config> config) {
  log::init("weir-dataplane", true);
  // Block the process signals before EAL creates its threads, so that they inherit the mask and
  // only the main lcore receives them, synchronously, through a signalfd.
  sigset_t signals;
  sigemptyset(&signals);
  for (int s : {SIGTERM, SIGINT, SIGUSR1, SIGHUP}) sigaddset(&signals, s);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  // Another dataplane serving the same control socket is refused before EAL and the ports are
  // touched (open() checks again when it binds, after start-up).
  if (std::string problem = channel::LineServer::check_path(config->dataplane.control_socket,
                                                            "dataplane.control_socket");
      !problem.empty()) {
    log::printf(log::Level::error, "%s", problem.c_str());
    return 1;
  }
  DataplaneProcess process(std::move(config));
  if (!process.start_eal() || !process.create_mbuf_pool() || !process.open_dataplane_ports())
    return 1;
  process.build_workers();
  if (!process.create_steering_rings()) return 1;
  process.launch_workers();
  return process.serve_main_lcore(signals) ? 0 : 1;
}

}  // namespace weir::dataplane
