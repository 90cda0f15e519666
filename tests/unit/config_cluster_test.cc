// The `cluster` section (config/cluster_schema.h, docs/scale-out.md), table-driven
// (tests/unit/config_cases.h).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "config/config.h"
#include "tests/unit/config_cases.h"

namespace weir::config {
namespace {

// Lines 1-6: a dataplane whose port is box a's address, and a VIP. Cases append from line 7.
const std::string kHead =
    "dataplane:\n"
    "  eal: [\"--no-pci\", \"--vdev=net_tap0,iface=x\"]\n"
    "  ports:\n"
    "    - { name: p0, device: net_tap0, address: 10.77.1.2/24, source_addresses: [10.77.1.9] }\n"
    "listeners:\n"
    "  - { name: e, address: 10.77.0.100, port: 7, protocol: echo }\n";

// The issue's example, from line 7.
const std::string kCluster =
    "cluster:\n"
    "  node: a\n"
    "  peers:\n"
    "    - { name: a, address: 10.77.1.2 }\n"
    "    - { name: b, address: 10.77.1.3 }\n"
    "    - { name: c, address: 10.77.1.4 }\n";

// `peers` lines after "cluster:\n  node: NODE\n  peers:\n" (lines 7-9; peers from line 10).
std::string cluster(const std::string& node, const std::string& peers) {
  return kHead + "cluster:\n  node: " + node + "\n  peers:\n" + peers;
}

TEST(ConfigCluster, AbsentIsASingleBox) {
  const LoadResult result = load_string(kHead, "t.yaml");
  ASSERT_TRUE(result.ok());
  EXPECT_FALSE(result.config->cluster.has_value());
}

TEST(ConfigCluster, TheIssuesExampleIsRead) {
  const LoadResult result = load_string(kHead + kCluster, "t.yaml");
  ASSERT_TRUE(result.ok()) << (result.errors.empty() ? "" : result.errors[0].to_string());
  ASSERT_TRUE(result.config->cluster.has_value());
  const Cluster& c = *result.config->cluster;
  EXPECT_EQ(c.node, "a");
  EXPECT_EQ(c.node_index, 0u);
  ASSERT_EQ(c.peers.size(), 3u);
  EXPECT_EQ(c.peers[1].name, "b");
  EXPECT_EQ(c.peers[2].address, Ipv4Address::from_octets(10, 77, 1, 4));
}

TEST(ConfigCluster, BirdIsOptionalWithDefaultPaths) {
  LoadResult result = load_string(kHead + kCluster, "t.yaml");
  ASSERT_TRUE(result.ok());
  EXPECT_FALSE(result.config->cluster->bird.has_value()) << "no announcements unless asked";
  result = load_string(kHead + kCluster + "  bird: {}\n", "t.yaml");
  ASSERT_TRUE(result.ok()) << (result.errors.empty() ? "" : result.errors[0].to_string());
  ASSERT_TRUE(result.config->cluster->bird.has_value());
  EXPECT_EQ(result.config->cluster->bird->socket, "/run/bird/bird.ctl");
  EXPECT_EQ(result.config->cluster->bird->routes_file, "/run/weir/bird-routes.conf");
  result = load_string(kHead + kCluster + "  bird: { socket: /run/b.ctl }\n", "t.yaml");
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(result.config->cluster->bird->socket, "/run/b.ctl");
}

TEST(ConfigCluster, HeartbeatsHaveDefaultsAndMayBeTuned) {
  LoadResult result = load_string(kHead + kCluster, "t.yaml");
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(result.config->cluster->heartbeat.interval_ms, 300u);
  EXPECT_EQ(result.config->cluster->heartbeat.missed, 3u);
  result =
      load_string(kHead + kCluster + "  heartbeat: { interval_ms: 100, missed: 5 }\n", "t.yaml");
  ASSERT_TRUE(result.ok()) << (result.errors.empty() ? "" : result.errors[0].to_string());
  EXPECT_EQ(result.config->cluster->heartbeat.interval_ms, 100u);
  EXPECT_EQ(result.config->cluster->heartbeat.missed, 5u);
}

TEST(ConfigCluster, TheNodeMayBeAnyPeerAndItsAddressASourceAddress) {
  const LoadResult result = load_string(cluster("b",
                                                "    - { name: a, address: 10.77.1.3 }\n"
                                                "    - { name: b, address: 10.77.1.9 }\n"),
                                        "t.yaml");
  ASSERT_TRUE(result.ok()) << (result.errors.empty() ? "" : result.errors[0].to_string());
  EXPECT_EQ(result.config->cluster->node_index, 1u);
}

using ConfigClusterErrors = ConfigCases;

TEST_P(ConfigClusterErrors, ReportsEveryErrorWithItsPosition) {
  EXPECT_EQ(errors_of(GetParam().text), GetParam().expected);
}

// p0 (this box, at the port's address), then p1... at 10.77.2.1...
std::string many_peers(size_t n) {
  std::string peers = "    - { name: p0, address: 10.77.1.2 }\n";
  for (size_t i = 1; i < n; ++i) {
    peers +=
        "    - { name: p" + std::to_string(i) + ", address: 10.77.2." + std::to_string(i) + " }\n";
  }
  return peers;
}

INSTANTIATE_TEST_SUITE_P(
    Table, ConfigClusterErrors,
    ::testing::Values(
        Case{"not_a_map",
             kHead + "cluster: yes\n",
             {"t.yaml:7:10: cluster: expected a map, got \"yes\""}},
        Case{"missing_node_and_peers",
             kHead + "cluster: {}\n",
             {"t.yaml:7:10: cluster.node: missing required key; expected the name of this box, one "
              "of peers",
              "t.yaml:7:10: cluster.peers: missing required key; expected a list"}},
        Case{"empty_peers",
             kHead + "cluster:\n  node: a\n  peers: []\n",
             {"t.yaml:9:10: cluster.peers: the list is empty; at least one entry is needed"}},
        Case{"unknown_keys",
             kHead + kCluster + "  colour: blue\n",
             {"t.yaml:13:3: cluster.colour: unknown key; allowed here: node, peers, bird, "
              "heartbeat"}},
        Case{"bird_paths_relative",
             kHead + kCluster + "  bird: { socket: bird.ctl, routes_file: r.conf }\n",
             {"t.yaml:13:19: cluster.bird.socket: \"bird.ctl\" must be an absolute path",
              "t.yaml:13:42: cluster.bird.routes_file: \"r.conf\" must be an absolute path"}},
        Case{"heartbeat_out_of_range",
             kHead + kCluster + "  heartbeat: { interval_ms: 10, missed: 1 }\n",
             {"t.yaml:13:29: cluster.heartbeat.interval_ms: 10 is out of range; allowed: [50, "
              "10000]",
              "t.yaml:13:41: cluster.heartbeat.missed: 1 is out of range; allowed: [2, 20]"}},
        Case{"heartbeat_unknown_key",
             kHead + kCluster + "  heartbeat: { timeout_ms: 900 }\n",
             {"t.yaml:13:16: cluster.heartbeat.timeout_ms: unknown key; allowed here: "
              "interval_ms, missed"}},
        Case{"bird_unknown_key",
             kHead + kCluster + "  bird: { asn: 65001 }\n",
             {"t.yaml:13:11: cluster.bird.asn: unknown key; allowed here: socket, routes_file"}},
        Case{"unknown_peer_key",
             cluster("a", "    - { name: a, address: 10.77.1.2, port: 7 }\n"),
             {"t.yaml:10:38: cluster.peers[0].port: unknown key; allowed here: name, address"}},
        Case{"node_not_among_peers",
             cluster("d",
                     "    - { name: a, address: 10.77.1.2 }\n"
                     "    - { name: b, address: 10.77.1.3 }\n"),
             {"t.yaml:8:9: cluster.node: \"d\" is not among cluster.peers (a, b); the list names "
              "every box, this one included"}},
        Case{
            "bad_node_name",
            cluster("\"a b\"", "    - { name: a, address: 10.77.1.2 }\n"),
            {"t.yaml:8:9: cluster.node: \"a b\" is not a name: use letters, digits and _ - . : (at "
             "most 64), since names appear in metric labels, logs and weirctl's POOL/BACKEND"}},
        Case{"peer_without_name_or_address",
             cluster("a", "    - { name: a }\n    - {}\n"),
             {"t.yaml:10:7: cluster.peers[0].address: missing required key; expected an IPv4 "
              "address",
              "t.yaml:11:7: cluster.peers[1].name: missing required key; expected a name",
              "t.yaml:11:7: cluster.peers[1].address: missing required key; expected an IPv4 "
              "address"}},
        Case{"bad_addresses",
             cluster("a",
                     "    - { name: a, address: 10.77.1.2 }\n"
                     "    - { name: b, address: 10.77.1 }\n"
                     "    - { name: c, address: 127.0.0.1 }\n"
                     "    - { name: d, address: 224.0.0.5 }\n"
                     "    - { name: e, address: 0.1.2.3 }\n"),
             {"t.yaml:11:27: cluster.peers[1].address: expected an IPv4 address in dotted-quad "
              "form (e.g. 10.0.0.1, no leading zeros), got \"10.77.1\"",
              "t.yaml:12:27: cluster.peers[2].address: 127.0.0.1 is a loopback address "
              "(127.0.0.0/8); use the unicast address of the box",
              "t.yaml:13:27: cluster.peers[3].address: 224.0.0.5 is a multicast address "
              "(224.0.0.0/4); use the unicast address of the box",
              "t.yaml:14:27: cluster.peers[4].address: 0.1.2.3 is in 0.0.0.0/8 (\"this network\", "
              "RFC 1122 3.2.1.3); use the unicast address of the box"}},
        Case{"duplicate_names_and_addresses",
             cluster("a",
                     "    - { name: a, address: 10.77.1.2 }\n"
                     "    - { name: b, address: 10.77.1.3 }\n"
                     "    - { name: a, address: 10.77.1.4 }\n"
                     "    - { name: c, address: 10.77.1.3 }\n"),
             {"t.yaml:12:15: cluster.peers[2].name: duplicate peer name \"a\" (also "
              "cluster.peers[0]); names must be unique",
              "t.yaml:13:27: cluster.peers[3].address: 10.77.1.3 is already the address of "
              "cluster.peers[1]; each box has its own"}},
        Case{"own_address_not_on_a_port",
             cluster("a",
                     "    - { name: a, address: 10.77.1.5 }\n"
                     "    - { name: b, address: 10.77.1.3 }\n"),
             {"t.yaml:10:27: cluster.peers[0].address: 10.77.1.5 is this box's (node a) but no "
              "dataplane port has it as its address or a source address; other boxes forward "
              "packets to it, and the dataplane must receive them"}},
        Case{"another_box_has_our_address",
             cluster("a",
                     "    - { name: a, address: 10.77.1.2 }\n"
                     "    - { name: b, address: 10.77.1.9 }\n"),
             {"t.yaml:11:27: cluster.peers[1].address: 10.77.1.9 is peer b's, not this box's (node "
              "a), yet dataplane.ports[0] has it; each box has its own address"}},
        Case{"peer_address_is_a_vip",
             cluster("a",
                     "    - { name: a, address: 10.77.1.2 }\n"
                     "    - { name: b, address: 10.77.0.100 }\n"),
             {"t.yaml:11:27: cluster.peers[1].address: 10.77.0.100 is the address of listeners[0], "
              "a VIP every box shares; a peer needs an address of its own"}},
        Case{"sixty_four_peers_fit", cluster("p0", many_peers(64)), {}},
        Case{"sixty_five_do_not",
             cluster("p0", many_peers(65)),
             {"t.yaml:74:7: cluster.peers[64]: 65 peers; a cluster has at most 64"}}),
    [](const ::testing::TestParamInfo<Case>& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace weir::config
