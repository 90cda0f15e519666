#include "dataplane/process.h"

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <signal.h>
#include <time.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <fstream>
#include <random>
#include <string>
#include <vector>

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

}  // namespace

int run(std::shared_ptr<const config::Config> config) {
  // Block the process signals before EAL creates its threads, so that they inherit the mask and
  // only the main lcore receives them, synchronously, through sigtimedwait.
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
    settings.proxied = proxy::plan_listeners(*config, worker_count);
    if (!settings.proxied.empty() && worker_count > 1) {
      // Both halves of a proxied flow must reach the worker that owns them: the backend side's
      // source port is chosen by RSS prediction, which needs RSS on every port.
      bool all_rss = true;
      for (const OpenPort& port : ports) all_rss = all_rss && port.capabilities.rss;
      if (!all_rss) {
        std::fprintf(stderr,
                     "weir-dataplane: tcp and framed listeners with %u workers need RSS on every "
                     "port, and a port's device has none (net_af_packet and net_tap do not); run "
                     "one worker (dataplane.eal \"-l\", \"0-1\") on such devices\n",
                     worker_count);
        exit_code = 1;
        break;
      }
      settings.steering.rss = true;
      settings.steering.queues = static_cast<uint16_t>(worker_count);
      settings.steering.reta_size = ports.front().capabilities.reta_size;
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

    const timespec housekeeping_period{.tv_sec = 0, .tv_nsec = 100'000'000};
    for (;;) {
      const int signal_number = sigtimedwait(&signals, nullptr, &housekeeping_period);
      if (signal_number == SIGTERM || signal_number == SIGINT) break;
      if (signal_number == SIGUSR1) print_stats(stdout, *config, workers);
    }
    stop.store(true, std::memory_order_relaxed);
    rte_eal_mp_wait_lcore();
    print_stats(stdout, *config, workers);
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
