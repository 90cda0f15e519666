// Weir's configuration schema: walks the YAML document with the strict readers of yaml_reader.h,
// then checks what only the whole document can tell (names, references, address clashes).
// docs/configuration.md is the user-facing description of the same rules; keep them together.
#include "config/config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "common/maglev.h"
#include "config/cluster_schema.h"
#include "config/control_schema.h"
#include "config/field_readers.h"
#include "config/health_schema.h"
#include "config/port_addresses.h"
#include "config/tls_schema.h"
#include "config/yaml_reader.h"

namespace weir::config {

std::string_view name_of(IdleMode mode) {
  return mode == IdleMode::backoff ? "backoff" : "busy-poll";
}
std::string_view name_of(Congestion congestion) {
  return congestion == Congestion::cubic ? "cubic" : "newreno";
}
std::string_view name_of(Protocol protocol) {
  switch (protocol) {
    case Protocol::tcp:
      return "tcp";
    case Protocol::framed:
      return "framed";
    case Protocol::echo:
      return "echo";
    case Protocol::discard:
      return "discard";
    case Protocol::tls:
      return "tls";
  }
  return "?";
}
std::string_view name_of(TlsInner inner) {
  return inner == TlsInner::tcp ? "tcp" : "framed";
}
std::optional<size_t> match_sni_pool(const std::vector<SniPool>& sni_pools,
                                     std::string_view server_name) {
  if (server_name.empty()) return std::nullopt;
  std::string lower(server_name);
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  for (size_t i = 0; i < sni_pools.size(); ++i) {
    const std::string_view pattern = sni_pools[i].server_name;
    if (!pattern.starts_with("*.")) {
      if (lower == pattern) return i;
      continue;
    }
    // "*.example.com": one label (no dot, not empty), then ".example.com".
    const std::string_view suffix = pattern.substr(1);
    if (lower.size() > suffix.size() && lower.ends_with(suffix) &&
        lower.find('.') == lower.size() - suffix.size())
      return i;
  }
  return std::nullopt;
}
std::string_view name_of(TlsVersion version) {
  return version == TlsVersion::v1_2 ? "1.2" : "1.3";
}
std::string_view name_of(OnCorrupt on_corrupt) {
  return on_corrupt == OnCorrupt::reset ? "reset" : "count";
}
std::string_view name_of(ProxyProtocol proxy) {
  return proxy == ProxyProtocol::none ? "none" : "v2";
}
std::string_view name_of(HashKey key) {
  return key == HashKey::five_tuple ? "five-tuple" : "source-ip";
}
std::string_view name_of(HealthType type) {
  switch (type) {
    case HealthType::tcp:
      return "tcp";
    case HealthType::http:
      return "http";
    case HealthType::framed_ping:
      return "framed-ping";
  }
  return "?";
}

namespace {

constexpr uint64_t kU32Max = 0xffff'ffff;

// ---- addresses ---------------------------------------------------------------------------------

bool is_pci_address(std::string_view text) {
  // DDDD:BB:DD.F or BB:DD.F, hexadecimal (rte_pci_addr_parse accepts both).
  auto hex = [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
  };
  auto matches = [&](std::string_view pattern) {
    if (pattern.size() != text.size()) return false;
    for (size_t i = 0; i < text.size(); ++i) {
      if (pattern[i] == 'h' ? !hex(text[i]) : pattern[i] != text[i]) return false;
    }
    return true;
  };
  return matches("hhhh:hh:hh.h") || matches("hh:hh.h");
}

// ---- the schema --------------------------------------------------------------------------------

// Positions kept while walking, for checks that need the whole document.
struct Positions {
  std::vector<YAML::Mark> ports, port_devices, port_addresses;
  std::vector<std::vector<WrittenAt>> port_sources;  // by port, where each source address is
  std::vector<YAML::Mark> listeners, listener_ports;
  struct PoolReference {
    size_t listener;
    std::optional<size_t> sni_entry;  // unset: the listener's pool; else its tls.sni_pools entry
    std::string name;
    YAML::Mark mark;
    std::string path;
  };
  std::vector<PoolReference> pool_references;
  std::vector<std::string> listener_paths;
  std::vector<std::optional<YAML::Mark>> max_connections, stamp_hop;
  std::vector<YAML::Mark> pools;
  YAML::Mark limits_connections, node_id;
  std::vector<SocketGiven> sockets;  // the socket keys given, in order
  bool limits_connections_given = false;
  bool node_id_given = false;
};

class Schema {
 public:
  Schema(Diagnostics& diagnostics, Config& config) : d_(diagnostics), config_(config) {}

  void document(const YAML::Node& root) {
    MapReader top(d_, root, "");
    if (!top.is_map()) return;
    if (read_uint_field(top, "node_id", config_.node_id, 0, kU32Max)) {
      at_.node_id = top.take("node_id")->Mark();
      at_.node_id_given = true;
    }
    if (const auto node = top.require("dataplane", "a map (eal, ports, ...)")) dataplane(*node);
    if (const auto node = top.take("tcp")) tcp(*node);
    read_list(top, "listeners", true,
              [&](const YAML::Node& node, const std::string& path) { listener(node, path); });
    read_list(top, "pools", false,
              [&](const YAML::Node& node, const std::string& path) { pool(node, path); });
    if (const auto node = top.take("control"))
      read_control_section(d_, *node, config_.control, at_.sockets);
    if (const auto node = top.take("tls")) read_tls_section(d_, *node, config_.tls);
    if (const auto node = top.take("cluster")) read_cluster_section(d_, *node, config_);
    top.finish();
    cross_checks();
  }

 private:
  void dataplane(const YAML::Node& node) {
    MapReader map(d_, node, "dataplane");
    if (!map.is_map()) return;
    Dataplane& dp = config_.dataplane;
    if (const auto eal = map.require("eal", "a list of EAL arguments")) {
      const std::string path = map.path_of("eal");
      if (!eal->IsSequence() || eal->size() == 0) {
        d_.error(eal->Mark(), path, "expected a non-empty list of EAL arguments as strings");
      } else {
        for (size_t i = 0; i < eal->size(); ++i) {
          if (auto arg = read_string(d_, (*eal)[i], index_path(path, i))) dp.eal.push_back(*arg);
        }
      }
    }
    dp.control_socket = "/run/weir/dataplane.sock";
    read_socket_field(map, "control_socket", LevelKey::refused, dp.control_socket,
                      dp.control_socket_access, at_.sockets);
    if (const auto idle_node = map.take("idle")) {
      MapReader idle(d_, *idle_node, map.path_of("idle"));
      if (idle.is_map()) {
        read_choice_field(idle, "mode", dp.idle.mode,
                          {{"backoff", IdleMode::backoff}, {"busy-poll", IdleMode::busy_poll}});
        read_uint_field(idle, "max_sleep_us", dp.idle.max_sleep_us, 1, kMaxMaxSleepUs);
        idle.finish();
      }
    }
    read_list(map, "ports", true,
              [&](const YAML::Node& n, const std::string& path) { port(n, path); });
    if (const auto limits_node = map.take("limits")) {
      MapReader limits(d_, *limits_node, map.path_of("limits"));
      if (limits.is_map()) {
        if (read_uint_field(limits, "connections", dp.limits.connections, 1, kMaxConnections)) {
          at_.limits_connections = limits.take("connections")->Mark();
          at_.limits_connections_given = true;
        }
        limits.finish();
      }
    }
    read_uint_field(map, "shutdown_grace_ms", dp.shutdown_grace_ms, 0, kMaxShutdownGraceMs);
    map.finish();
  }

  void port(const YAML::Node& node, const std::string& path) {
    MapReader map(d_, node, path);
    Port port;
    at_.ports.push_back(map.mark());
    at_.port_devices.push_back(map.mark());
    at_.port_addresses.push_back(map.mark());
    at_.port_sources.emplace_back();
    if (!map.is_map()) {
      config_.dataplane.ports.push_back(port);
      return;
    }
    read_name_field(map, port.name);
    if (read_string_field(map, "device", port.device, true)) {
      at_.port_devices.back() = map.take("device")->Mark();
    }
    if (const auto address = map.require("address", "ADDRESS/PREFIX, e.g. 10.0.0.2/24")) {
      at_.port_addresses.back() = address->Mark();
      if (const auto value = read_ipv4_prefix(d_, *address, map.path_of("address"))) {
        port.address = value->first;
        port.prefix_length = value->second;
        check_host_address(d_, address->Mark(), map.path_of("address"), port.address,
                           port.prefix_length);
      }
    }
    if (const auto gateway = map.take("gateway")) {
      if (const auto value = read_ipv4(d_, *gateway, map.path_of("gateway"))) {
        port.gateway = *value;
        const uint32_t mask = prefix_mask(port.prefix_length);
        if (port.prefix_length > 0 && (value->value() & mask) != (port.address.value() & mask)) {
          d_.error(gateway->Mark(), map.path_of("gateway"),
                   value->to_string() + " is not on the port's subnet " +
                       Ipv4Address(port.address.value() & mask).to_string() + "/" +
                       std::to_string(port.prefix_length) + "; a gateway must be on-link");
        } else if (*value == port.address) {
          d_.error(gateway->Mark(), map.path_of("gateway"),
                   "is the port's own address; name the next-hop router");
        }
      }
    }
    if (const auto sources = map.take("source_addresses")) {
      at_.port_sources.back() =
          read_source_addresses(d_, *sources, map.path_of("source_addresses"), port);
    }
    read_uint_field(map, "mtu", port.mtu, kMinMtu, kMaxMtu);
    map.finish();
    config_.dataplane.ports.push_back(port);
  }

  void tcp(const YAML::Node& node) {
    MapReader map(d_, node, "tcp");
    if (!map.is_map()) return;
    Tcp& tcp = config_.tcp;
    read_uint_field(map, "min_rto_ms", tcp.min_rto_ms, 1, 60'000);
    read_uint_field(map, "max_rto_ms", tcp.max_rto_ms, 1, 600'000);
    read_uint_field(map, "time_wait_ms", tcp.time_wait_ms, 0, 240'000);
    if (uint32_t cap = 0; read_uint_field(map, "max_time_wait", cap, 0, kMaxConnections))
      tcp.max_time_wait = cap;
    read_choice_field(map, "congestion", tcp.congestion,
                      {{"cubic", Congestion::cubic}, {"newreno", Congestion::newreno}});
    read_uint_field(map, "min_mss", tcp.min_mss, 48, 1460);
    read_uint_field(map, "keepalive_idle_ms", tcp.keepalive_idle_ms, 0, 86'400'000);
    read_uint_field(map, "keepalive_interval_ms", tcp.keepalive_interval_ms, 100, 3'600'000);
    read_uint_field(map, "keepalive_probes", tcp.keepalive_probes, 1, 100);
    read_uint_field(map, "fin_wait2_timeout_ms", tcp.fin_wait2_timeout_ms, 100, 3'600'000);
    read_uint_field(map, "out_of_window_ack_interval_ms", tcp.out_of_window_ack_interval_ms, 0,
                    10'000);
    read_uint_field(map, "receive_buffer_bytes", tcp.receive_buffer_bytes, kMinConnectionBuffer,
                    kMaxConnectionBuffer);
    read_uint_field(map, "send_buffer_bytes", tcp.send_buffer_bytes, kMinConnectionBuffer,
                    kMaxConnectionBuffer);
    if (tcp.max_rto_ms < tcp.min_rto_ms) {
      d_.error(map.key_mark("max_rto_ms"), map.path_of("max_rto_ms"),
               std::to_string(tcp.max_rto_ms) + " is below min_rto_ms (" +
                   std::to_string(tcp.min_rto_ms) + "); max_rto_ms must be >= min_rto_ms");
    }
    map.finish();
  }

  void listener(const YAML::Node& node, const std::string& path) {
    MapReader map(d_, node, path);
    Listener listener;
    const size_t index = config_.listeners.size();
    at_.listeners.push_back(map.mark());
    at_.listener_ports.push_back(map.mark());
    at_.listener_paths.push_back(path);
    at_.max_connections.emplace_back();
    at_.stamp_hop.emplace_back();
    if (!map.is_map()) {
      config_.listeners.push_back(listener);
      return;
    }
    read_name_field(map, listener.name);
    if (read_ipv4_field(map, "address", listener.address, true)) {
      if (auto why = unusable_host_address(listener.address)) {
        d_.error(map.take("address")->Mark(), map.path_of("address"),
                 listener.address.to_string() + " " + *why + "; use a unicast host address");
      }
    }
    if (read_uint_field(map, "port", listener.port, 1, 65535, true)) {
      at_.listener_ports.back() = map.take("port")->Mark();
    }
    bool protocol_known = false;
    if (const auto protocol = map.require("protocol", "tcp | framed | tls | echo | discard")) {
      listener.protocol_at =
          Place{protocol->Mark().line + 1, protocol->Mark().column + 1, map.path_of("protocol")};
      if (auto value = read_choice<Protocol>(d_, *protocol, map.path_of("protocol"),
                                             {{"tcp", Protocol::tcp},
                                              {"framed", Protocol::framed},
                                              {"tls", Protocol::tls},
                                              {"echo", Protocol::echo},
                                              {"discard", Protocol::discard}})) {
        listener.protocol = *value;
        protocol_known = true;
      }
    }
    const std::string protocol_name(name_of(listener.protocol));
    const bool proxied = listener.protocol == Protocol::tcp ||
                         listener.protocol == Protocol::framed ||
                         listener.protocol == Protocol::tls;
    if (!protocol_known) {
      // Without a protocol nothing protocol-specific can be judged; accept the keys as known.
      map.take("pool");
      map.take("framed");
      map.take("proxy_protocol");
      map.take("tls");
    } else if (proxied) {
      if (const auto pool = map.require("pool", "the name of a pool under `pools`")) {
        if (auto name = read_string(d_, *pool, map.path_of("pool"))) {
          at_.pool_references.push_back(
              {index, std::nullopt, *name, pool->Mark(), map.path_of("pool")});
        }
      }
    } else {
      map.forbid("pool", "protocol " + protocol_name +
                             " is served by the dataplane itself and takes no pool; pool is for "
                             "protocol tcp, framed or tls");
    }
    if (protocol_known && listener.protocol == Protocol::tls) {
      listener.tls = ListenerTls{};
      if (const auto tls_node = map.require("tls", "a map with certificates")) {
        std::vector<SniPoolReference> sni;
        read_listener_tls(d_, *tls_node, map.path_of("tls"), *listener.tls, sni);
        for (auto& r : sni)
          at_.pool_references.push_back({index, r.entry, std::move(r.pool), r.mark, r.path});
      }
    } else if (protocol_known) {
      map.forbid("tls", "tls settings apply only to protocol tls (this listener is " +
                            protocol_name + ")");
    }
    // The plaintext of a tls listener is frames with inner: framed, verified as on a framed one.
    const bool frames = listener.protocol == Protocol::framed ||
                        (listener.tls && listener.tls->inner == TlsInner::framed);
    const bool bytes = listener.protocol == Protocol::tcp ||
                       (listener.tls && listener.tls->inner == TlsInner::tcp);
    if (protocol_known && frames) {
      listener.framed = Framed{};
      if (const auto framed_node = map.take("framed"))
        framed(*framed_node, map.path_of("framed"), *listener.framed, index);
    } else if (protocol_known) {
      map.forbid("framed",
                 "framed settings apply only to protocol framed, or tls with inner: "
                 "framed (this listener is " +
                     protocol_name + ")");
    }
    if (protocol_known && bytes) {
      read_choice_field(map, "proxy_protocol", listener.proxy_protocol,
                        {{"none", ProxyProtocol::none}, {"v2", ProxyProtocol::v2}});
    } else if (protocol_known) {
      map.forbid("proxy_protocol",
                 "a PROXY protocol header applies only to protocol tcp, or tls with inner: tcp "
                 "(this listener is " +
                     protocol_name + ")");
    }
    read_uint_field(map, "idle_timeout_ms", listener.idle_timeout_ms, 1, kMaxTimeoutMs);
    listener.client_timeout_ms = listener.server_timeout_ms = listener.idle_timeout_ms;
    read_uint_field(map, "client_timeout_ms", listener.client_timeout_ms, 1, kMaxTimeoutMs);
    read_uint_field(map, "server_timeout_ms", listener.server_timeout_ms, 1, kMaxTimeoutMs);
    if (!protocol_known || (proxied && !listener.tls))  // tcp and framed
      read_uint_field(map, "session_log_sample", listener.session_log_sample, 1, 1'000'000);
    else
      map.forbid("session_log_sample", "the session log is kept for protocol tcp and framed");
    if (read_uint_field(map, "max_connections", listener.max_connections, 1, kMaxConnections)) {
      at_.max_connections.back() = map.take("max_connections")->Mark();
    }
    map.finish();
    config_.listeners.push_back(listener);
  }

  void framed(const YAML::Node& node, const std::string& path, Framed& framed, size_t listener) {
    MapReader map(d_, node, path);
    if (!map.is_map()) return;
    read_uint_field(map, "max_frame", framed.max_frame, 1, kHardMaxFrame);
    read_choice_field(map, "on_corrupt", framed.on_corrupt,
                      {{"reset", OnCorrupt::reset}, {"count", OnCorrupt::count}});
    if (const auto stamp = map.take("stamp_hop")) {
      if (auto value = read_bool(d_, *stamp, map.path_of("stamp_hop"))) {
        framed.stamp_hop = *value;
        if (*value) at_.stamp_hop[listener] = stamp->Mark();
      }
    }
    read_uint_field(map, "frame_timeout_ms", framed.frame_timeout_ms, 1, kMaxTimeoutMs);
    map.finish();
  }

  void pool(const YAML::Node& node, const std::string& path) {
    MapReader map(d_, node, path);
    Pool pool;
    at_.pools.push_back(map.mark());
    if (!map.is_map()) {
      config_.pools.push_back(pool);
      return;
    }
    read_name_field(map, pool.name);
    std::optional<YAML::Mark> table_size_mark;
    std::string table_size_path;
    if (const auto hash_node = map.take("hash")) {
      MapReader hash(d_, *hash_node, map.path_of("hash"));
      if (hash.is_map()) {
        read_choice_field(hash, "key", pool.hash.key,
                          {{"five-tuple", HashKey::five_tuple}, {"source-ip", HashKey::source_ip}});
        if (read_uint_field(hash, "table_size", pool.hash.table_size, 2, maglev::kMaxTableSize)) {
          table_size_mark = hash.take("table_size")->Mark();
          table_size_path = hash.path_of("table_size");
        }
        hash.finish();
      }
    }
    std::set<std::string> backend_names;
    std::set<std::pair<Ipv4Address, uint16_t>> backend_endpoints;
    read_list(map, "backends", true, [&](const YAML::Node& n, const std::string& backend_path) {
      MapReader b(d_, n, backend_path);
      if (!b.is_map()) return;
      Backend backend;
      if (read_name_field(b, backend.name) && !backend_names.insert(backend.name).second) {
        d_.error(b.take("name")->Mark(), b.path_of("name"),
                 "duplicate backend name \"" + backend.name +
                     "\" in pool; names must be unique "
                     "within a pool");
      }
      const bool have_address = read_ipv4_field(b, "address", backend.address, true);
      if (have_address) {
        if (auto why = unusable_host_address(backend.address)) {
          d_.error(b.take("address")->Mark(), b.path_of("address"),
                   backend.address.to_string() + " " + *why + "; use a unicast host address");
        }
      }
      const bool have_port = read_uint_field(b, "port", backend.port, 1, 65535, true);
      if (have_address && have_port &&
          !backend_endpoints.insert({backend.address, backend.port}).second) {
        d_.error(b.mark(), backend_path,
                 backend.address.to_string() + ":" + std::to_string(backend.port) +
                     " is listed twice in this pool; give each backend once and use weight");
      }
      read_uint_field(b, "weight", backend.weight, 1, kMaxWeight);
      b.finish();
      pool.backends.push_back(backend);
    });
    read_uint_field(map, "retries", pool.retries, 0, 10);
    read_uint_field(map, "drain_timeout_ms", pool.drain_timeout_ms, 0, 86'400'000);
    read_uint_field(map, "connect_timeout_ms", pool.connect_timeout_ms, 100, 600'000);
    if (const auto health_node = map.take("health")) {
      pool.health = Health{};
      read_health(d_, *health_node, map.path_of("health"), *pool.health);
    }
    if (const auto passive_node = map.take("passive_health")) {
      pool.passive_health = PassiveHealth{};
      MapReader passive(d_, *passive_node, map.path_of("passive_health"));
      if (passive.is_map()) {
        read_uint_field(passive, "error_limit", pool.passive_health->error_limit, 1, 1'000'000);
        read_uint_field(passive, "hold_down_ms", pool.passive_health->hold_down_ms, 100,
                        86'400'000);
        passive.finish();
      }
    }
    map.finish();

    const uint32_t size = pool.hash.table_size;
    const YAML::Mark size_mark = table_size_mark.value_or(map.mark());
    const std::string size_path =
        table_size_mark ? table_size_path : map.path_of("hash.table_size");
    const uint64_t minimum = uint64_t{kMinTableSlotsPerBackend} * pool.backends.size();
    if (!maglev::is_prime(size)) {
      uint32_t next = size;
      while (next < maglev::kMaxTableSize && !maglev::is_prime(next)) ++next;
      d_.error(size_mark, size_path,
               std::to_string(size) +
                   " is not prime; a Maglev table size must be prime (the next "
                   "prime is " +
                   std::to_string(next) + ")");
    } else if (size < minimum) {
      d_.error(
          size_mark, size_path,
          "table size " + std::to_string(size) + " is below 100 x " +
              std::to_string(pool.backends.size()) + " backends = " + std::to_string(minimum) +
              "; shares drift beyond 1% below that; use a prime >= " + std::to_string(minimum));
    }
    config_.pools.push_back(pool);
  }

  // Checks across entries, after the walk.
  void cross_checks() {
    const auto& ports = config_.dataplane.ports;
    const std::map<std::string, std::string> vdevs = vdev_arguments(config_.dataplane.eal);
    std::map<std::string, size_t> port_names, devices;
    std::map<Ipv4Address, size_t> port_addresses;
    for (size_t i = 0; i < ports.size(); ++i) {
      const std::string path = index_path("dataplane.ports", i);
      const Port& port = ports[i];
      if (!port.name.empty() && !port_names.emplace(port.name, i).second) {
        d_.error(at_.ports[i], path + ".name",
                 "duplicate port name \"" + port.name + "\" (also dataplane.ports[" +
                     std::to_string(port_names[port.name]) + "]); names must be unique");
      }
      if (port.device.empty()) continue;
      if (!devices.emplace(port.device, i).second) {
        d_.error(at_.port_devices[i], path + ".device",
                 "device " + port.device + " is already used by dataplane.ports[" +
                     std::to_string(devices[port.device]) + "]; each device is one port");
      } else if (!is_pci_address(port.device) && !vdevs.contains(port.device)) {
        d_.error(at_.port_devices[i], path + ".device",
                 "\"" + port.device +
                     "\" is neither a PCI address (DDDD:BB:DD.F) nor a vdev "
                     "created by a --vdev argument in dataplane.eal");
      }
      if (port.prefix_length > 0 && !port_addresses.emplace(port.address, i).second) {
        d_.error(at_.port_addresses[i], path + ".address",
                 port.address.to_string() + " is already the address of dataplane.ports[" +
                     std::to_string(port_addresses[port.address]) + "]");
      }
    }

    check_source_addresses_across(d_, ports, at_.port_sources, config_.listeners);

    if (config_.pools.size() > kMaxPools) {
      d_.error(at_.pools[kMaxPools], index_path("pools", kMaxPools),
               "more than " + std::to_string(kMaxPools) + " pools; a dataplane holds at most " +
                   std::to_string(kMaxPools));
    }
    for (size_t i = 0; i < config_.pools.size(); ++i) {
      if (config_.pools[i].backends.size() > kMaxBackendsPerPool) {
        d_.error(at_.pools[i], index_path("pools", i) + ".backends",
                 std::to_string(config_.pools[i].backends.size()) +
                     " backends; a pool holds at most " + std::to_string(kMaxBackendsPerPool));
      }
    }
    check_socket_paths(d_, config_, at_.sockets);
    std::map<std::string, size_t> pool_names;
    for (size_t i = 0; i < config_.pools.size(); ++i) {
      const std::string& name = config_.pools[i].name;
      if (!name.empty() && !pool_names.emplace(name, i).second) {
        d_.error(at_.pools[i], index_path("pools", i) + ".name",
                 "duplicate pool name \"" + name + "\" (also pools[" +
                     std::to_string(pool_names[name]) + "]); names must be unique");
      }
    }
    for (const auto& reference : at_.pool_references) {
      const auto found = pool_names.find(reference.name);
      if (found == pool_names.end()) {
        std::string known;
        for (const auto& [name, index] : pool_names) known += (known.empty() ? "" : ", ") + name;
        d_.error(reference.mark, reference.path,
                 "no pool named \"" + reference.name +
                     "\"; defined pools: " + (known.empty() ? "none" : known));
      } else if (reference.sni_entry) {
        config_.listeners[reference.listener].tls->sni_pools[*reference.sni_entry].pool =
            found->second;
      } else {
        config_.listeners[reference.listener].pool = found->second;
      }
    }

    size_t proxied = 0;
    for (size_t i = 0; i < config_.listeners.size(); ++i) {
      const Protocol protocol = config_.listeners[i].protocol;
      if (protocol != Protocol::tcp && protocol != Protocol::framed && protocol != Protocol::tls)
        continue;
      if (++proxied == kMaxProxiedListeners + 1) {
        d_.error(at_.listeners[i], at_.listener_paths[i],
                 "more than " + std::to_string(kMaxProxiedListeners) +
                     " tcp, framed and tls listeners; a dataplane holds at most " +
                     std::to_string(kMaxProxiedListeners));
      }
    }
    std::map<std::string, size_t> listener_names;
    std::map<std::pair<Ipv4Address, uint16_t>, size_t> listener_endpoints;
    for (size_t i = 0; i < config_.listeners.size(); ++i) {
      Listener& listener = config_.listeners[i];
      const std::string& path = at_.listener_paths[i];
      if (!listener.name.empty() && !listener_names.emplace(listener.name, i).second) {
        d_.error(at_.listeners[i], path + ".name",
                 "duplicate listener name \"" + listener.name + "\" (also listeners[" +
                     std::to_string(listener_names[listener.name]) + "]); names must be unique");
      }
      if (listener.port != 0) {
        const auto endpoint = std::pair(listener.address, listener.port);
        if (!listener_endpoints.emplace(endpoint, i).second) {
          d_.error(at_.listener_ports[i], path + ".port",
                   listener.address.to_string() + ":" + std::to_string(listener.port) +
                       " is already taken by listeners[" +
                       std::to_string(listener_endpoints[endpoint]) +
                       "]; one listener per address and port");
        }
      }
      const uint32_t limit = config_.dataplane.limits.connections;
      if (listener.max_connections == 0) {
        listener.max_connections = limit;
      } else if (listener.max_connections > limit) {
        d_.error(*at_.max_connections[i], path + ".max_connections",
                 std::to_string(listener.max_connections) +
                     " exceeds dataplane.limits.connections (" + std::to_string(limit) +
                     "); allowed: [1, " + std::to_string(limit) + "]");
      }
      if (at_.stamp_hop[i] && config_.node_id == 0) {
        d_.error(*at_.stamp_hop[i], path + ".framed.stamp_hop",
                 "stamping writes node_id into each frame's hop field, and node_id is 0 (the "
                 "value clients send); set node_id to 1-4294967295");
      }
    }
  }

  Diagnostics& d_;
  Config& config_;
  Positions at_;
};

LoadResult load_document(const YAML::Node& root, Diagnostics& diagnostics) {
  auto config = std::make_shared<Config>();
  config->source = diagnostics.file();
  if (root.IsNull()) {
    diagnostics.error_at_file("the file is empty; expected a map with dataplane and listeners");
  } else {
    Schema(diagnostics, *config).document(root);
  }
  LoadResult result;
  if (diagnostics.empty()) result.config = std::move(config);
  result.errors = diagnostics.take_sorted();
  return result;
}

}  // namespace

std::map<std::string, std::string> vdev_arguments(const std::vector<std::string>& eal) {
  std::map<std::string, std::string> devices;
  for (size_t i = 0; i < eal.size(); ++i) {
    std::string spec;
    if (eal[i].rfind("--vdev=", 0) == 0) {
      spec = eal[i].substr(7);
    } else if (eal[i] == "--vdev" && i + 1 < eal.size()) {
      spec = eal[i + 1];
    } else {
      continue;
    }
    devices.emplace(spec.substr(0, spec.find(',')), spec);
  }
  return devices;
}

LoadResult load_string(std::string_view text, const std::string& file_name) {
  Diagnostics diagnostics(file_name);
  const std::string source(text);
  YAML::Node root;
  try {
    root = load_one_document(source, diagnostics);
  } catch (const YAML::Exception& e) {
    diagnostics.error(e.mark, "", "YAML syntax error: " + e.msg);
    LoadResult result;
    result.errors = diagnostics.take_sorted();
    return result;
  }
  return load_document(root, diagnostics);
}

LoadResult load_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    Diagnostics diagnostics(path);
    diagnostics.error_at_file("cannot open the file: " + std::string(std::strerror(errno)));
    LoadResult result;
    result.errors = diagnostics.take_sorted();
    return result;
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) {
    Diagnostics diagnostics(path);
    diagnostics.error_at_file("cannot read the file: " + std::string(std::strerror(errno)));
    LoadResult result;
    result.errors = diagnostics.take_sorted();
    return result;
  }
  return load_string(text.str(), path);
}

}  // namespace weir::config
