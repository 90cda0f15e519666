#include "dataplane/stats.h"

#include <string>

#include <rte_cycles.h>

#include "common/process_stats.h"
#include "dataplane/counter_bindings.h"

namespace weir::dataplane {
namespace {

using nlohmann::json;

template <class S, size_t N>
json object_of(const S& counters, const std::array<CounterBinding<S>, N>& bindings) {
  json out = json::object();
  for (const auto& binding : bindings) out[binding.name] = value_of(binding, counters);
  return out;
}

json port_json(const PortCounters& counters) {
  json out = object_of(counters, kPortBindings);
  json drops = json::object();
  for (const DropReasonBinding& reason : kDropReasonBindings) {
    drops[reason.name] = counters.dropped(reason.reason);
  }
  out["drops"] = std::move(drops);
  return out;
}

// The worker's TCP table, which is not a counter struct.
struct WorkerGaugeBinding {
  std::string_view name;
  size_t (Worker::*read)() const;
};
constexpr auto kWorkerGaugeBindings = std::to_array<WorkerGaugeBinding>({
    {"tcp_connections", &Worker::tcp_connections},
    {"tcp_capacity", &Worker::tcp_capacity},
});
static_assert(counters::names_match(counters::kWorkerGauges, kWorkerGaugeBindings));

json worker_json(const config::Config& config, const Worker& worker) {
  json out{{"id", worker.id()},
           {"loop", object_of(worker.loop_counters(), kLoopBindings)},
           {"steering", object_of(worker.steering_counters(), kSteeringBindings)},
           {"l3", object_of(worker.l3_counters(), kL3Bindings)},
           {"tcp", object_of(worker.tcp_counters(), kTcpBindings)},
           {"cluster", object_of(worker.cluster_counters(), kClusterBindings)}};
  json tls = json::object();
  for (const TlsRelayBinding& binding : kTlsRelayBindings) {
    tls[binding.name] = binding.counter(worker.proxy().tls_counters()).get();
  }
  out["tls"] = std::move(tls);
  for (const WorkerGaugeBinding& gauge : kWorkerGaugeBindings) {
    out[gauge.name] = (worker.*gauge.read)();
  }
  json ports = json::object();
  for (size_t p = 0; p < config.dataplane.ports.size(); ++p) {
    ports[config.dataplane.ports[p].name] = port_json(worker.port_counters()[p]);
  }
  out["ports"] = std::move(ports);
  return out;
}

// One listener's counters, summed over the workers and over its earlier incarnations (a reload
// that changes a listener retires it and adds its successor), so that they never go backwards.
json listener_json(const std::vector<std::unique_ptr<Worker>>& workers, const std::string& name) {
  const auto sum = [&](auto value) {
    uint64_t total = 0;
    for (const auto& worker : workers) {
      const proxy::Proxy& p = worker->proxy();
      for (size_t i = 0; i < p.listener_count(); ++i) {
        if (p.listener(i).name == name) total += value(p.counters(i));
      }
    }
    return total;
  };
  json out = json::object();
  for (const auto& binding : kListenerBindings) {
    out[binding.name] = sum([&](const ListenerCounters& c) { return value_of(binding, c); });
  }
  for (const auto& binding : kListenerDirectionBindings) {
    for (size_t d = 0; d < counters::kDirections.size(); ++d) {
      out[counters::direction_key(binding.name, d)] =
          sum([&](const ListenerCounters& c) { return (c.*binding.member)[d].get(); });
    }
  }
  return out;
}

}  // namespace

json stats_json(const config::Config& config, const std::vector<OpenPort>& devices,
                const std::vector<std::unique_ptr<Worker>>& workers) {
  json out{{"workers", json::array()}};
  json by_port = json::object();
  for (const OpenPort& device : devices) {
    const DeviceCounters counters = read_device_counters(device);
    json& entry = by_port[device.request.name];
    for (const DeviceCounterBinding& binding : kDeviceBindings)
      entry[std::string(binding.name)] = counters.*binding.member;
  }
  out["devices"] = std::move(by_port);
  for (const auto& worker : workers) out["workers"].push_back(worker_json(config, *worker));
  if (!workers.empty()) {
    rte_mempool* pool = workers.front()->mbuf_pool();
    out["mbufs"] = {{"size", pool->size}, {"available", rte_mempool_avail_count(pool)}};
  }
  out[std::string(counters::kTscHz)] = rte_get_tsc_hz();
  if (nlohmann::json process = process_stats_json(); !process.is_null()) {
    out["process"] = std::move(process);
  }
  // The proxied listeners of the configuration in force, by name: one removed by a reload is left
  // out, one closed by a shutdown (SIGTERM) stays until the process ends.
  json listeners = json::object();
  for (const config::Listener& listener : config.listeners) {
    if (listener.pool) listeners[listener.name] = listener_json(workers, listener.name);
  }
  out["listeners"] = std::move(listeners);
  return out;
}

void print_stats(FILE* out, const config::Config& config, const std::vector<OpenPort>& devices,
                 const std::vector<std::unique_ptr<Worker>>& workers) {
  const std::string line = stats_json(config, devices, workers).dump() + "\n";
  std::fputs(line.c_str(), out);
  std::fflush(out);
}

}  // namespace weir::dataplane
