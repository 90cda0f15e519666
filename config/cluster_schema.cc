// The `cluster` section: see cluster_schema.h. docs/configuration.md documents the same rules.
#include "config/cluster_schema.h"

#include <algorithm>
#include <map>

#include "config/field_readers.h"
#include "config/port_addresses.h"

namespace weir::config {

namespace {

// Where one peer's keys were written (the entry's own position when a key is missing or bad).
struct PeerAt {
  YAML::Mark entry, name, address;
  std::string path;
  bool valid = false;  // both keys read
};

PeerAt read_peer(Diagnostics& d, const YAML::Node& node, const std::string& path,
                 std::vector<ClusterPeer>& peers) {
  MapReader map(d, node, path);
  PeerAt at{map.mark(), map.mark(), map.mark(), path};
  if (!map.is_map()) return at;
  ClusterPeer peer;
  const bool named = read_name_field(map, peer.name);
  if (named) at.name = map.take("name")->Mark();
  bool addressed = read_ipv4_field(map, "address", peer.address, true);
  if (addressed) {
    at.address = map.take("address")->Mark();
    if (auto why = unusable_host_address(peer.address)) {
      d.error(at.address, map.path_of("address"),
              peer.address.to_string() + " " + *why + "; use the unicast address of the box");
      addressed = false;
    }
  }
  map.finish();
  at.valid = named && addressed;
  if (at.valid) peers.push_back(std::move(peer));
  return at;
}

// A peer's address against this box's ports and listeners: other boxes send forwarded packets to
// it, and only the dataplane strips their encapsulation, so this box's own address must be a
// port's; another box's must not be one of ours; and none may be a VIP, which every box shares.
void check_peer_address(Diagnostics& d, const ClusterPeer& peer, const PeerAt& at, bool is_node,
                        const Config& config) {
  const std::string path = at.path + ".address";
  const std::string address = peer.address.to_string();
  const auto& ports = config.dataplane.ports;
  std::optional<size_t> owning_port;
  for (size_t i = 0; i < ports.size(); ++i) {
    const auto& sources = ports[i].source_addresses;
    if (ports[i].address == peer.address ||
        std::find(sources.begin(), sources.end(), peer.address) != sources.end())
      owning_port = i;
  }
  if (is_node && !owning_port) {
    d.error(at.address, path,
            address + " is this box's (node " + peer.name +
                ") but no dataplane port has it as its address or a source address; other boxes "
                "forward packets to it, and the dataplane must receive them");
  } else if (!is_node && owning_port) {
    d.error(at.address, path,
            address + " is peer " + peer.name + "'s, not this box's (node " + config.cluster->node +
                "), yet dataplane.ports[" + std::to_string(*owning_port) +
                "] has it; each box has its own address");
  }
  for (size_t i = 0; i < config.listeners.size(); ++i) {
    if (config.listeners[i].address == peer.address) {
      d.error(at.address, path,
              address + " is the address of listeners[" + std::to_string(i) +
                  "], a VIP every box shares; a peer needs an address of its own");
      break;
    }
  }
}

// `cluster.bird`: both paths absolute (weir-control runs with / as its working directory).
ClusterBird read_bird(Diagnostics& d, const YAML::Node& node, MapReader& cluster) {
  ClusterBird bird;
  MapReader map(d, node, cluster.path_of("bird"));
  if (!map.is_map()) return bird;
  for (const auto& [key, field] :
       {std::pair{"socket", &bird.socket}, std::pair{"routes_file", &bird.routes_file}}) {
    if (read_string_field(map, key, *field) && field->front() != '/') {
      d.error(map.take(key)->Mark(), map.path_of(key),
              "\"" + *field + "\" must be an absolute path");
    }
  }
  map.finish();
  return bird;
}

// `cluster.heartbeat`: how often, and how many missed make a peer gone. The interval's floor keeps
// the heartbeats' cost negligible beside the traffic; its ceiling and the count's keep a dead box's
// detection within a minute.
ClusterHeartbeat read_heartbeat(Diagnostics& d, const YAML::Node& node, MapReader& cluster) {
  ClusterHeartbeat heartbeat;
  MapReader map(d, node, cluster.path_of("heartbeat"));
  if (!map.is_map()) return heartbeat;
  read_uint_field(map, "interval_ms", heartbeat.interval_ms, 50, 10'000);
  read_uint_field(map, "missed", heartbeat.missed, 2, 20);
  map.finish();
  return heartbeat;
}

}  // namespace

void read_cluster_section(Diagnostics& d, const YAML::Node& node, Config& config) {
  MapReader map(d, node, "cluster");
  if (!map.is_map()) return;
  Cluster cluster;
  YAML::Mark node_at = map.mark();
  if (const auto value = map.require("node", "the name of this box, one of peers")) {
    node_at = value->Mark();
    if (auto name = read_name(d, *value, map.path_of("node"))) cluster.node = *name;
  }
  std::vector<PeerAt> at;
  read_list(map, "peers", true, [&](const YAML::Node& n, const std::string& path) {
    at.push_back(read_peer(d, n, path, cluster.peers));
  });
  if (const auto bird_node = map.take("bird")) cluster.bird = read_bird(d, *bird_node, map);
  if (const auto heartbeat_node = map.take("heartbeat"))
    cluster.heartbeat = read_heartbeat(d, *heartbeat_node, map);
  map.finish();
  const bool all_peers_read =
      std::all_of(at.begin(), at.end(), [](const PeerAt& p) { return p.valid; });
  if (at.size() > kMaxClusterPeers) {
    d.error(at[kMaxClusterPeers].entry, at[kMaxClusterPeers].path,
            std::to_string(at.size()) + " peers; a cluster has at most " +
                std::to_string(kMaxClusterPeers));
  }
  // Each problem is reported already; an empty list also says nothing about the node.
  if (!all_peers_read || cluster.peers.empty() || cluster.node.empty()) return;

  std::map<std::string, size_t> names;
  std::map<Ipv4Address, size_t> addresses;
  bool unique = true;
  for (size_t i = 0; i < cluster.peers.size(); ++i) {
    const ClusterPeer& peer = cluster.peers[i];
    if (const auto [first, fresh] = names.emplace(peer.name, i); !fresh) {
      unique = false;
      d.error(at[i].name, at[i].path + ".name",
              "duplicate peer name \"" + peer.name + "\" (also cluster.peers[" +
                  std::to_string(first->second) + "]); names must be unique");
    }
    if (const auto [first, fresh] = addresses.emplace(peer.address, i); !fresh) {
      unique = false;
      d.error(at[i].address, at[i].path + ".address",
              peer.address.to_string() + " is already the address of cluster.peers[" +
                  std::to_string(first->second) + "]; each box has its own");
    }
  }
  const auto self = names.find(cluster.node);
  if (self == names.end()) {
    std::string known;
    for (const auto& [name, index] : names) known += (known.empty() ? "" : ", ") + name;
    d.error(node_at, "cluster.node",
            "\"" + cluster.node + "\" is not among cluster.peers (" + known +
                "); the list names every box, this one included");
    return;
  }
  if (!unique) return;
  cluster.node_index = self->second;
  config.cluster = std::move(cluster);
  for (size_t i = 0; i < config.cluster->peers.size(); ++i) {
    check_peer_address(d, config.cluster->peers[i], at[i], i == config.cluster->node_index, config);
  }
}

}  // namespace weir::config
