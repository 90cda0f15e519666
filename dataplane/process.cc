#include "dataplane/process.h"

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "dataplane/control/control_server.h"
#include "dataplane/control/pool_state.h"
#include "dataplane/port.h"
#include "dataplane/stats.h"
#include "dataplane/worker.h"

namespace weir::dataplane {
namespace {

constexpr unsigned kMbufCache = 256;

uint64_t monotonic_us() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000u + static_cast<uint64_t>(ts.tv_nsec) / 1000u;
}

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

tcp::TcpSettings tcp_settings_for(const config::Config& config, unsigned workers) {
  tcp::TcpSettings tcp;
  tcp.min_rto_us = uint64_t{config.tcp.min_rto_ms} * 1000;
  tcp.max_rto_us = uint64_t{config.tcp.max_rto_ms} * 1000;
  tcp.time_wait_us = uint64_t{config.tcp.time_wait_ms} * 1000;
  tcp.congestion = config.tcp.congestion;
  tcp.min_mss = config.tcp.min_mss;
  tcp.keepalive_idle_us = uint64_t{config.tcp.keepalive_idle_ms} * 1000;
  tcp.keepalive_interval_us = uint64_t{config.tcp.keepalive_interval_ms} * 1000;
  tcp.keepalive_probes = config.tcp.keepalive_probes;
  tcp.receive_buffer = config.tcp.receive_buffer_bytes;
  tcp.send_buffer = config.tcp.send_buffer_bytes;
  // The connection limit is the process's; each worker gets its share (at least one).
  tcp.max_connections = std::max<uint32_t>(config.dataplane.limits.connections / workers, 1);
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
    sp.rx_ipv4_checksum_offload = ports[i].capabilities.rx_ipv4_checksum;
    sp.rx_l4_checksum_offload = ports[i].capabilities.rx_l4_checksum;
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

// The control protocol's view of this process: counters and states read from the main lcore,
// changes built here and posted to every worker's inbox.
class DataplaneControl final : public ControlTarget {
 public:
  DataplaneControl(std::shared_ptr<const config::Config> config, PoolStates& states,
                   const std::vector<std::unique_ptr<Worker>>& workers)
      : config_(std::move(config)), states_(states), workers_(workers) {}

  const config::Config& config() const { return *config_; }

  nlohmann::json hello() override {
    return {{"versions", {kControlProtocolVersion}},
            {"node_id", config_->node_id},
            {"workers", workers_.size()},
            {"config", config_->source},
            {"pid", getpid()}};
  }
  nlohmann::json counters() override {
    return nlohmann::json::parse(stats_json(*config_, workers_));
  }
  nlohmann::json listeners() override {
    nlohmann::json out = nlohmann::json::array();
    const auto stats = counters()["listeners"];
    for (const config::Listener& l : config_->listeners) {
      nlohmann::json entry{{"name", l.name},
                           {"address", l.address.to_string()},
                           {"port", l.port},
                           {"protocol", config::name_of(l.protocol)}};
      if (l.pool) entry["pool"] = config_->pools[*l.pool].name;
      if (stats.contains(l.name)) {
        entry["connections"] = stats[l.name]["connections"];
        entry["active"] = stats[l.name]["active"];
      }
      out.push_back(entry);
    }
    return out;
  }
  nlohmann::json pools() override {
    nlohmann::json out = nlohmann::json::array();
    for (size_t p = 0; p < states_.pool_count(); ++p) {
      const config::Pool& pool = states_.pool(p);
      nlohmann::json backends = nlohmann::json::array();
      for (size_t b = 0; b < pool.backends.size(); ++b) {
        uint64_t opened = 0, closed = 0, failures = 0, drain_resets = 0;
        for (const auto& worker : workers_) {
          if (p >= worker->proxy().pool_count()) continue;  // a new pool not applied yet
          const proxy::BackendCounters& c = worker->proxy().backend_counters(p, states_.slot(p, b));
          opened += c.connections.get();
          closed += c.closed.get();
          failures += c.connect_failures.get();
          drain_resets += c.drain_resets.get();
        }
        backends.push_back({{"name", pool.backends[b].name},
                            {"address", pool.backends[b].address.to_string()},
                            {"port", pool.backends[b].port},
                            {"state", name_of(states_.state(p, b))},
                            {"weight", states_.weight(p, b)},
                            {"connections", opened},
                            {"active", opened - closed},
                            {"connect_failures", failures},
                            {"drain_resets", drain_resets}});
      }
      out.push_back({{"name", pool.name}, {"backends", backends}});
    }
    return out;
  }
  std::string set_backend(const std::string& pool, const std::string& backend,
                          const std::optional<std::string>& state,
                          const std::optional<uint32_t>& weight) override {
    const auto p = states_.find_pool(pool);
    if (!p) return "no pool named \"" + pool + "\"";
    const auto b = states_.find_backend(*p, backend);
    if (!b) return "pool \"" + pool + "\" has no backend named \"" + backend + "\"";
    std::optional<BackendState> new_state;
    if (state) {
      new_state = backend_state_from(*state);
      if (!new_state) return "state \"" + *state + "\" is not one of up, down, draining";
    }
    if (!room_for(1)) return "a worker's inbox is full; try again";
    if (std::string failure = states_.set(*p, *b, new_state, weight); !failure.empty())
      return failure;
    post_pool(*p);
    return "";
  }

  nlohmann::json apply_config(const std::string& path) override {
    const config::LoadResult result = config::load_file(path);
    if (!result.ok()) {
      nlohmann::json diagnostics = nlohmann::json::array();
      for (const auto& d : result.errors) diagnostics.push_back(d.to_string());
      return {{"ok", false},
              {"error", "the configuration is invalid; the running one stays"},
              {"diagnostics", diagnostics}};
    }
    const config::Config& now = *config_;
    const config::Config& next = *result.config;
    if (std::string fixed = fixed_difference(now, next); !fixed.empty())
      return {{"ok", false},
              {"error", fixed + " cannot change while the dataplane runs; restart "
                                "it to apply that (the running configuration stays)"}};
    // What changes, decided before anything is sent, so that a refusal changes nothing.
    std::vector<const config::Listener*> removed, added;
    for (const config::Listener& l : now.listeners) {
      const config::Listener* same = find_listener(next, l.name);
      if (same == nullptr || !same_listener(now, l, next, *same)) removed.push_back(&l);
    }
    for (const config::Listener& l : next.listeners) {
      const config::Listener* same = find_listener(now, l.name);
      if (same == nullptr || !same_listener(now, *same, next, l)) added.push_back(&l);
    }
    size_t new_pools = 0, proxied_added = 0;
    for (const config::Pool& pool : next.pools) new_pools += states_.find_pool(pool.name) ? 0 : 1;
    for (const config::Listener* l : added) proxied_added += l->pool ? 1 : 0;
    if (states_.pool_count() + new_pools > proxy::Proxy::kMaxPools ||
        workers_.front()->proxy().listener_count() + proxied_added > proxy::Proxy::kMaxListeners)
      return {{"ok", false},
              {"error",
               "more pools or listeners than a running dataplane can "
               "take; restart it"}};
    const size_t messages = next.pools.size() + removed.size() + added.size() + 1;
    collect_done();
    if (!room_for(messages))
      return {{"ok", false}, {"error", "a worker's inbox is full; try again"}};
    nlohmann::json changes = nlohmann::json::array();
    for (const config::Pool& pool : next.pools) {
      const auto index = states_.find_pool(pool.name);
      const std::string error = index ? states_.replace(*index, pool) : states_.add(pool);
      if (!error.empty()) return {{"ok", false}, {"error", error}};
      post_pool(index ? *index : states_.pool_count() - 1);
      if (!index) changes.push_back("pool " + pool.name + " added");
    }
    for (const config::Listener* l : removed) {
      auto* m = new WorkerMessage;
      m->kind =
          l->pool ? WorkerMessage::Kind::remove_listener : WorkerMessage::Kind::remove_service;
      m->name = l->name;
      m->service = ServiceListener{l->address, l->port, l->protocol == config::Protocol::echo, 1};
      post_all(m);
      if (find_listener(next, l->name) == nullptr)
        changes.push_back("listener " + l->name + " removed");
    }
    for (const config::Listener* l : added) {
      auto* m = new WorkerMessage;
      if (l->pool) {
        m->kind = WorkerMessage::Kind::add_listener;
        const size_t pool_index = *states_.find_pool(next.pools[*l->pool].name);
        m->listener =
            proxy::plan_listener(next, *l, static_cast<unsigned>(workers_.size()), pool_index);
      } else {
        m->kind = WorkerMessage::Kind::add_service;
        m->service = ServiceListener{l->address, l->port, l->protocol == config::Protocol::echo,
                                     std::min<uint32_t>(l->max_connections, 1024)};
      }
      post_all(m);
      changes.push_back("listener " + l->name +
                        (find_listener(now, l->name) ? " changed" : " added"));
    }
    auto* addresses = new WorkerMessage;
    addresses->kind = WorkerMessage::Kind::listener_addresses;
    for (const config::Listener& l : next.listeners) {
      if (std::find(addresses->addresses.begin(), addresses->addresses.end(), l.address) ==
          addresses->addresses.end())
        addresses->addresses.push_back(l.address);
    }
    post_all(addresses);
    config_ = result.config;
    return {{"ok", true}, {"changes", changes}};
  }

  // Frees what the workers have handed back.
  void collect_done() {
    for (const auto& worker : workers_) {
      while (WorkerMessage* m = worker->take_done()) delete m;
    }
  }

 private:
  static const config::Listener* find_listener(const config::Config& c, const std::string& name) {
    for (const config::Listener& l : c.listeners) {
      if (l.name == name) return &l;
    }
    return nullptr;
  }
  static bool same_listener(const config::Config& a_config, const config::Listener& a,
                            const config::Config& b_config, const config::Listener& b) {
    const auto pool_name = [](const config::Config& c, const config::Listener& l) {
      return l.pool ? c.pools[*l.pool].name : std::string();
    };
    const config::Framed fa = a.framed.value_or(config::Framed{});
    const config::Framed fb = b.framed.value_or(config::Framed{});
    return a.address == b.address && a.port == b.port && a.protocol == b.protocol &&
           pool_name(a_config, a) == pool_name(b_config, b) &&
           a.framed.has_value() == b.framed.has_value() && fa.max_frame == fb.max_frame &&
           fa.on_corrupt == fb.on_corrupt && fa.stamp_hop == fb.stamp_hop &&
           a.proxy_protocol == b.proxy_protocol && a.idle_timeout_ms == b.idle_timeout_ms &&
           a.max_connections == b.max_connections;
  }
  // The parts a running dataplane keeps: EAL, ports, limits, idle policy, TCP, node id.
  static std::string fixed_difference(const config::Config& a, const config::Config& b) {
    if (a.dataplane.eal != b.dataplane.eal) return "dataplane.eal";
    if (a.dataplane.control_socket != b.dataplane.control_socket) return "dataplane.control_socket";
    if (a.dataplane.ports.size() != b.dataplane.ports.size()) return "dataplane.ports";
    for (size_t i = 0; i < a.dataplane.ports.size(); ++i) {
      const config::Port& x = a.dataplane.ports[i];
      const config::Port& y = b.dataplane.ports[i];
      if (x.name != y.name || x.device != y.device || x.address != y.address ||
          x.prefix_length != y.prefix_length || x.gateway != y.gateway || x.mtu != y.mtu)
        return "dataplane.ports";
    }
    if (a.dataplane.limits.connections != b.dataplane.limits.connections) return "dataplane.limits";
    if (a.dataplane.idle.mode != b.dataplane.idle.mode ||
        a.dataplane.idle.max_sleep_us != b.dataplane.idle.max_sleep_us)
      return "dataplane.idle";
    const config::Tcp& s = a.tcp;
    const config::Tcp& t = b.tcp;
    if (s.receive_buffer_bytes != t.receive_buffer_bytes ||
        s.send_buffer_bytes != t.send_buffer_bytes || s.min_rto_ms != t.min_rto_ms ||
        s.max_rto_ms != t.max_rto_ms || s.time_wait_ms != t.time_wait_ms ||
        s.congestion != t.congestion || s.min_mss != t.min_mss ||
        s.keepalive_idle_ms != t.keepalive_idle_ms ||
        s.keepalive_interval_ms != t.keepalive_interval_ms ||
        s.keepalive_probes != t.keepalive_probes)
      return "tcp";
    if (a.node_id != b.node_id) return "node_id";
    return "";
  }
  bool room_for(size_t messages) {
    collect_done();
    for (const auto& worker : workers_) {
      if (worker->inbox_room() < messages) return false;
    }
    return true;
  }
  // Every worker gets its own copy of `message` (checked for room beforehand).
  void post_all(WorkerMessage* message) {
    for (size_t i = 0; i < workers_.size(); ++i) {
      WorkerMessage* copy = i + 1 == workers_.size() ? message : new WorkerMessage(*message);
      if (!workers_[i]->post(copy)) delete copy;
    }
  }
  void post_pool(size_t pool) {
    auto* m = new WorkerMessage;
    m->kind = WorkerMessage::Kind::pool;
    m->pool = pool;
    // The plan is built once, here, and shared read-only by every worker.
    m->plan = states_.plan(pool);
    post_all(m);
  }

  std::shared_ptr<const config::Config> config_;
  PoolStates& states_;
  const std::vector<std::unique_ptr<Worker>>& workers_;
};

}  // namespace

int run(std::shared_ptr<const config::Config> config) {
  // Block the process signals before EAL creates its threads, so that they inherit the mask and
  // only the main lcore receives them, synchronously, through a signalfd.
  sigset_t signals;
  sigemptyset(&signals);
  for (int s : {SIGTERM, SIGINT, SIGUSR1, SIGHUP}) sigaddset(&signals, s);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  const std::vector<std::string>& eal = config->dataplane.eal;
  if (!has_argument(eal, "--no-huge") && reserved_hugepages() == 0) {
    std::fprintf(
        stderr,
        "weir-dataplane: no hugepages are reserved (HugePages_Total is 0 in /proc/meminfo)."
        " Reserve some (echo 512 > /proc/sys/vm/nr_hugepages) or add \"--no-huge\", "
        "\"-m\", \"512\" to dataplane.eal\n");
    return 1;
  }
  std::vector<std::string> arguments{"weir-dataplane"};
  arguments.insert(arguments.end(), eal.begin(), eal.end());
  std::vector<char*> argv;
  for (std::string& a : arguments) argv.push_back(a.data());
  argv.push_back(nullptr);
  if (rte_eal_init(static_cast<int>(argv.size() - 1), argv.data()) < 0) {
    std::fprintf(stderr,
                 "weir-dataplane: EAL initialisation failed: %s. Check dataplane.eal (the EAL "
                 "message above names the argument); without hugepages use \"--no-huge\"\n",
                 rte_strerror(rte_errno));
    return 1;
  }

  int exit_code = 0;
  std::vector<OpenPort> ports;
  std::vector<std::unique_ptr<Worker>> workers;
  std::vector<WorkerLaunch> launches;
  std::atomic<bool> stop{false};
  rte_mempool* pool = nullptr;
  const unsigned worker_count = rte_lcore_count() - 1;
  do {
    if (worker_count == 0) {
      std::fprintf(stderr,
                   "weir-dataplane: dataplane.eal gives one lcore; Weir needs a main lcore and at "
                   "least one worker (e.g. \"-l\", \"0-1\")\n");
      exit_code = 1;
      break;
    }
    const size_t port_count = config->dataplane.ports.size();
    // Every RX and TX descriptor may hold an mbuf, plus per-lcore caches and bursts in flight.
    // Every RX and TX descriptor may hold an mbuf, plus per-lcore caches and bursts in flight,
    // plus what TCP connections hold (send queues and unread data, bounded per connection).
    const unsigned mbufs = static_cast<unsigned>(
        port_count * worker_count * 2 * 1024 + (worker_count + 1) * (kMbufCache + 4 * kBurstSize) +
        kMbufsForConnections);
    pool = rte_pktmbuf_pool_create("weir_mbufs", mbufs, kMbufCache, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
                                   static_cast<int>(rte_socket_id()));
    if (pool == nullptr) {
      std::fprintf(stderr,
                   "weir-dataplane: cannot allocate %u mbufs: %s (raise -m in dataplane.eal)\n",
                   mbufs, rte_strerror(rte_errno));
      exit_code = 1;
      break;
    }
    std::vector<PortRequest> requests;
    const std::map<std::string, std::string> vdevs = config::vdev_arguments(eal);
    for (const config::Port& port : config->dataplane.ports) {
      requests.push_back(
          PortRequest{port.name, port.device, port.mtu,
                      vdevs.contains(port.device) ? vdevs.at(port.device) : std::string()});
    }
    std::string error;
    if (!open_ports(requests, static_cast<uint16_t>(worker_count), pool, ports, error)) {
      std::fprintf(stderr, "weir-dataplane: %s\n", error.c_str());
      exit_code = 1;
      break;
    }
    const net::StackConfig stack = stack_config_for(*config, ports);
    WorkerSettings settings;
    settings.idle_mode = config->dataplane.idle.mode == config::IdleMode::busy_poll
                             ? IdleMode::busy_poll
                             : IdleMode::backoff;
    settings.max_sleep_us = config->dataplane.idle.max_sleep_us;
    settings.tcp = tcp_settings_for(*config, worker_count);
    std::random_device entropy;
    for (uint8_t& byte : settings.secret) byte = static_cast<uint8_t>(entropy());
    for (const config::Listener& listener : config->listeners) {
      if (listener.protocol != config::Protocol::echo &&
          listener.protocol != config::Protocol::discard) {
        continue;  // tcp and framed listeners: the proxy's
      }
      settings.services.push_back(ServiceListener{
          listener.address, listener.port, listener.protocol == config::Protocol::echo,
          std::min<uint32_t>(listener.max_connections, 1024)});
    }
    PoolStates pool_states(*config);
    for (size_t p = 0; p < pool_states.pool_count(); ++p)
      settings.pools.push_back(pool_states.plan(p));
    settings.proxied = proxy::plan_listeners(*config, worker_count);
    // Both halves of a proxied flow must reach the worker that owns them. With RSS on every port
    // the device steers and the proxy predicts it (RETA); otherwise the workers steer in software
    // by the same hash, with no indirection table (dataplane/steering.h).
    bool all_rss = true;
    for (const OpenPort& port : ports) all_rss = all_rss && port.capabilities.rss;
    const bool software_steering = worker_count > 1 && !all_rss;
    if (worker_count > 1) {
      settings.steering.rss = true;
      settings.steering.queues = static_cast<uint16_t>(worker_count);
      settings.steering.reta_size = all_rss ? ports.front().capabilities.reta_size : 0;
    }
    uint16_t queue = 0;
    unsigned lcore = 0;
    RTE_LCORE_FOREACH_WORKER(lcore) {
      settings.id = queue;
      settings.steering.queue = queue;
      workers.push_back(std::make_unique<Worker>(
          settings, std::make_unique<EthdevQueueIo>(ports, queue), stack, pool));
      ++queue;
    }
    if (software_steering) {
      // One single-producer, single-consumer ring per ordered pair of workers.
      const size_t n = workers.size();
      std::vector<std::vector<rte_ring*>> out(n, std::vector<rte_ring*>(n, nullptr)), in(n);
      for (size_t from = 0; from < n && exit_code == 0; ++from) {
        for (size_t to = 0; to < n; ++to) {
          if (from == to) continue;
          const std::string name = "weir_st_" + std::to_string(from) + "_" + std::to_string(to);
          rte_ring* ring =
              rte_ring_create(name.c_str(), 4096, SOCKET_ID_ANY, RING_F_SP_ENQ | RING_F_SC_DEQ);
          if (ring == nullptr) {
            std::fprintf(stderr, "weir-dataplane: cannot create steering ring %s: %s\n",
                         name.c_str(), rte_strerror(rte_errno));
            exit_code = 1;
            break;
          }
          out[from][to] = ring;
          in[to].push_back(ring);
        }
      }
      for (size_t w = 0; w < n; ++w)
        workers[w]->enable_steering(static_cast<uint16_t>(n), out[w], in[w]);
      if (exit_code != 0) break;
      std::printf("weir-dataplane: no RSS on the ports: %zu workers steer TCP in software\n", n);
    }
    const uint64_t now = monotonic_us();
    for (auto& worker : workers) worker->start(now);
    launches.reserve(workers.size());
    size_t index = 0;
    RTE_LCORE_FOREACH_WORKER(lcore) {
      launches.push_back(WorkerLaunch{workers[index].get(), &stop});
      rte_eal_remote_launch(worker_main, &launches.back(), lcore);
      ++index;
    }
    for (const OpenPort& port : ports) {
      std::printf("weir-dataplane: port %s: device %s (driver %s), MAC %s, RSS %s\n",
                  port.request.name.c_str(), port.request.device.c_str(), port.driver.c_str(),
                  net::MacAddress(port.mac).to_string().c_str(),
                  port.capabilities.rss ? "on" : "off");
    }
    std::printf("weir-dataplane: running with %u worker(s)\n", worker_count);
    std::fflush(stdout);

    DataplaneControl control(config, pool_states, workers);
    ControlProtocol protocol(control);
    ControlServer server([&](std::string_view line) { return protocol.handle(line); });
    if (std::string error = server.open(config->dataplane.control_socket); !error.empty()) {
      std::fprintf(stderr, "weir-dataplane: %s\n", error.c_str());
      exit_code = 1;
      stop.store(true, std::memory_order_relaxed);
      rte_eal_mp_wait_lcore();
      break;
    }
    std::printf("weir-dataplane: control socket %s\n", config->dataplane.control_socket.c_str());
    std::fflush(stdout);
    // Housekeeping: signals (through a signalfd) and the control socket, polled together.
    const int signal_fd = signalfd(-1, &signals, SFD_CLOEXEC | SFD_NONBLOCK);
    for (bool running = true; running;) {
      std::vector<pollfd> fds{pollfd{signal_fd, POLLIN, 0}};
      server.add_poll_fds(fds);
      if (poll(fds.data(), fds.size(), 100) > 0) {
        signalfd_siginfo info{};
        while (read(signal_fd, &info, sizeof info) == sizeof info) {
          if (info.ssi_signo == SIGTERM || info.ssi_signo == SIGINT) running = false;
          if (info.ssi_signo == SIGUSR1) print_stats(stdout, control.config(), workers);
        }
        server.serve(fds);
      }
      control.collect_done();
    }
    close(signal_fd);
    stop.store(true, std::memory_order_relaxed);
    rte_eal_mp_wait_lcore();
    print_stats(stdout, control.config(), workers);
    std::printf("weir-dataplane: stopped\n");
  } while (false);

  workers.clear();
  close_ports(ports);
  if (pool != nullptr) rte_mempool_free(pool);
  rte_eal_cleanup();
  std::fflush(stdout);
  return exit_code;
}

}  // namespace weir::dataplane
