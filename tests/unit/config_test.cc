// The configuration loader (config/). Table-driven: each case is a YAML text and the exact list of
// diagnostics it must produce, positions included, so a message or a position that drifts fails.
#include "config/config.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include "tests/unit/config_cases.h"

namespace weir::config {
namespace {

// Lines 1-4 of most cases: a valid dataplane section. Cases append from line 5.
constexpr const char* kDataplane =
    "dataplane:\n"
    "  eal: [\"--no-pci\", \"--vdev=net_tap0,iface=x\"]\n"
    "  ports:\n"
    "    - { name: p0, device: net_tap0, address: 10.0.0.2/24 }\n";

constexpr const char* kEchoListener =
    "listeners:\n"
    "  - { name: e, address: 10.0.0.100, port: 7, protocol: echo }\n";

std::string source_root() {
  return WEIR_SOURCE_ROOT;
}

using ConfigErrors = ConfigCases;

TEST_P(ConfigErrors, ReportsEveryErrorWithItsPosition) {
  EXPECT_EQ(errors_of(GetParam().text), GetParam().expected);
}

const std::string D = kDataplane;
const std::string E = kEchoListener;

INSTANTIATE_TEST_SUITE_P(
    Table, ConfigErrors,
    ::testing::Values(
        Case{"valid_minimum", D + E, {}},
        Case{"unknown_top_level_key",
             D + E + "colour: blue\n",
             {"t.yaml:7:1: colour: unknown key; allowed here: node_id, dataplane, tcp, listeners, "
              "pools, control, tls, cluster"}},
        Case{"duplicate_top_level_key",
             D + E + "node_id: 1\nnode_id: 2\n",
             {"t.yaml:8:1: node_id: duplicate key (first given at line 7); each key may appear "
              "once"}},
        Case{"duplicate_key_in_flow_map",
             D + "listeners:\n  - { name: e, address: 10.0.0.100, port: 7, port: 8, protocol: "
                 "echo }\n",
             {"t.yaml:6:46: listeners[0].port: duplicate key (first given at line 6); each key "
              "may appear once"}},
        Case{"missing_key_reports_parent_map",
             D + "listeners:\n  - name: e\n    port: 7\n    protocol: echo\n",
             {"t.yaml:6:5: listeners[0].address: missing required key; expected an IPv4 "
              "address"}},
        Case{"missing_dataplane",
             E,
             {"t.yaml:1:1: dataplane: missing required key; expected a map (eal, ports, ...)"}},
        Case{"wrong_types",
             D + "listeners:\n  - { name: [a], address: 10.0.0.100, port: \"7\", protocol: echo, "
                 "idle_timeout_ms: 1.5 }\n",
             {"t.yaml:6:13: listeners[0].name: expected a non-empty string, got a list",
              "t.yaml:6:45: listeners[0].port: expected an integer in [1, 65535], got the string "
              "\"7\"",
              "t.yaml:6:83: listeners[0].idle_timeout_ms: expected an integer in [1, 86400000], "
              "got \"1.5\""}},
        Case{"out_of_range",
             D + "listeners:\n  - { name: e, address: 10.0.0.100, port: 70000, protocol: echo }\n",
             {"t.yaml:6:43: listeners[0].port: 70000 is out of range; allowed: [1, 65535]"}},
        Case{"keepalive_ranges",
             D + E +
                 "tcp: { keepalive_idle_ms: 1000, keepalive_interval_ms: 50, keepalive_probes: 0 "
                 "}\n",
             {"t.yaml:7:56: tcp.keepalive_interval_ms: 50 is out of range; allowed: [100, 3600000]",
              "t.yaml:7:78: tcp.keepalive_probes: 0 is out of range; allowed: [1, 100]"}},
        Case{
            "fin_wait2_timeout_range",
            D + E + "tcp: { fin_wait2_timeout_ms: 99 }\n",
            {"t.yaml:7:30: tcp.fin_wait2_timeout_ms: 99 is out of range; allowed: [100, 3600000]"}},
        Case{"max_time_wait_range",
             D + E + "tcp: { max_time_wait: 16777217 }\n",
             {"t.yaml:7:23: tcp.max_time_wait: 16777217 is out of range; allowed: [0, 16777216]"}},
        Case{"out_of_window_ack_interval_range",
             D + E + "tcp: { out_of_window_ack_interval_ms: 10001 }\n",
             {"t.yaml:7:39: tcp.out_of_window_ack_interval_ms: 10001 is out of range; allowed: [0, "
              "10000]"}},
        Case{"buffer_ranges",
             D + E + "tcp: { receive_buffer_bytes: 1024, send_buffer_bytes: 16777217 }\n",
             {"t.yaml:7:30: tcp.receive_buffer_bytes: 1024 is out of range; allowed: [16384, "
              "16777216]",
              "t.yaml:7:55: tcp.send_buffer_bytes: 16777217 is out of range; allowed: [16384, "
              "16777216]"}},
        Case{"negative_number",
             D + "listeners:\n  - { name: e, address: 10.0.0.100, port: -7, protocol: echo }\n",
             {"t.yaml:6:43: listeners[0].port: expected an integer in [1, 65535], got \"-7\""}},
        Case{"bad_addresses",
             "dataplane:\n"
             "  eal: [\"--vdev=net_tap0\"]\n"
             "  ports:\n"
             "    - { name: p0, device: net_tap0, address: 10.0.0.2/33, gateway: 10.0.0.01 }\n" +
                 std::string("listeners:\n  - { name: e, address: 10.0.0, port: 7, protocol: "
                             "echo }\n"),
             {"t.yaml:4:46: dataplane.ports[0].address: expected ADDRESS/PREFIX with a dotted-quad "
              "IPv4 address and a prefix length 1-32 (e.g. 10.0.0.2/24), got \"10.0.0.2/33\"",
              "t.yaml:4:68: dataplane.ports[0].gateway: expected an IPv4 address in dotted-quad "
              "form (e.g. 10.0.0.1, no leading zeros), got \"10.0.0.01\"",
              "t.yaml:6:25: listeners[0].address: expected an IPv4 address in dotted-quad form "
              "(e.g. 10.0.0.1, no leading zeros), got \"10.0.0\""}},
        Case{"unusable_addresses",
             "dataplane:\n"
             "  eal: [\"--vdev=net_tap0\"]\n"
             "  ports:\n"
             "    - { name: p0, device: net_tap0, address: 10.0.0.255/24, gateway: 10.1.0.1 }\n" +
                 std::string("listeners:\n  - { name: e, address: 224.0.0.1, port: 7, protocol: "
                             "echo }\n"),
             {"t.yaml:4:46: dataplane.ports[0].address: 10.0.0.255/24 is the subnet's broadcast "
              "address; use a host address",
              "t.yaml:4:70: dataplane.ports[0].gateway: 10.1.0.1 is not on the port's subnet "
              "10.0.0.0/24; a gateway must be on-link",
              "t.yaml:6:25: listeners[0].address: 224.0.0.1 is a multicast address (224.0.0.0/4); "
              "use a unicast host address"}},
        Case{"device_not_created_by_eal",
             "dataplane:\n  eal: [\"--no-pci\"]\n  ports:\n"
             "    - { name: p0, device: net_tap0, address: 10.0.0.2/24 }\n" +
                 E,
             {"t.yaml:4:27: dataplane.ports[0].device: \"net_tap0\" is neither a PCI address "
              "(DDDD:BB:DD.F) nor a vdev created by a --vdev argument in dataplane.eal"}},
        Case{"pci_device_and_separate_vdev_argument",
             "dataplane:\n  eal: [\"--vdev\", \"net_ring0\"]\n  ports:\n"
             "    - { name: p0, device: 0000:3b:00.0, address: 10.0.0.2/24 }\n"
             "    - { name: p1, device: net_ring0, address: 10.0.1.2/24 }\n" +
                 E,
             {}},
        Case{"duplicate_ports",
             "dataplane:\n  eal: [\"--vdev=net_tap0\"]\n  ports:\n"
             "    - { name: p0, device: net_tap0, address: 10.0.0.2/24 }\n"
             "    - { name: p0, device: net_tap0, address: 10.0.0.2/24 }\n" +
                 E,
             {"t.yaml:5:7: dataplane.ports[1].name: duplicate port name \"p0\" (also "
              "dataplane.ports[0]); names must be unique",
              "t.yaml:5:27: dataplane.ports[1].device: device net_tap0 is already used by "
              "dataplane.ports[0]; each device is one port",
              "t.yaml:5:46: dataplane.ports[1].address: 10.0.0.2 is already the address of "
              "dataplane.ports[0]"}},
        Case{"dangling_pool_and_duplicate_listener",
             D + "listeners:\n"
                 "  - { name: a, address: 10.0.0.100, port: 80, protocol: tcp, pool: web }\n"
                 "  - { name: a, address: 10.0.0.100, port: 80, protocol: discard }\n",
             {"t.yaml:6:68: listeners[0].pool: no pool named \"web\"; defined pools: none",
              "t.yaml:7:5: listeners[1].name: duplicate listener name \"a\" (also listeners[0]); "
              "names must be unique",
              "t.yaml:7:43: listeners[1].port: 10.0.0.100:80 is already taken by listeners[0]; "
              "one listener per address and port"}},
        Case{"protocol_specific_keys_on_wrong_protocol",
             D + "listeners:\n"
                 "  - { name: a, address: 10.0.0.100, port: 80, protocol: tcp, pool: p,\n"
                 "      framed: { max_frame: 10 } }\n"
                 "  - { name: b, address: 10.0.0.100, port: 81, protocol: framed, pool: p,\n"
                 "      proxy_protocol: v2 }\n"
                 "  - { name: c, address: 10.0.0.100, port: 82, protocol: echo, pool: p }\n"
                 "pools:\n"
                 "  - name: p\n"
                 "    backends: [{ name: b1, address: 10.0.0.11, port: 80 }]\n"
                 "    health: { type: tcp, http: { request: GET / HTTP/1.1 } }\n",
             {"t.yaml:7:7: listeners[0].framed: framed settings apply only to protocol framed, "
              "or tls with inner: framed (this listener is tcp)",
              "t.yaml:9:7: listeners[1].proxy_protocol: a PROXY protocol header applies only to "
              "protocol tcp, or tls with inner: tcp (this listener is framed)",
              "t.yaml:10:63: listeners[2].pool: protocol echo is served by the dataplane itself "
              "and takes no pool; pool is for protocol tcp, framed or tls",
              "t.yaml:14:26: pools[0].health.http: http settings apply only to type http (this "
              "check is tcp)"}},
        Case{"session_log_sample",
             D + "listeners:\n"
                 "  - { name: a, address: 10.0.0.100, port: 80, protocol: tcp,"
                 " pool: p, session_log_sample: 0 }\n"
                 "  - { name: c, address: 10.0.0.100, port: 7, protocol: echo, session_log_sample: "
                 "1 }\n"
                 "pools:\n"
                 "  - name: p\n"
                 "    backends: [{ name: b1, address: 10.0.0.11, port: 80 }]\n",
             {"t.yaml:6:91: listeners[0].session_log_sample: 0 is out of range; allowed: [1, "
              "1000000]",
              "t.yaml:7:62: listeners[1].session_log_sample: the session log is kept for "
              "protocol tcp and framed"}},
        Case{"maglev_table_size",
             D + "listeners:\n"
                 "  - { name: a, address: 10.0.0.100, port: 80, protocol: tcp, pool: p }\n"
                 "pools:\n"
                 "  - name: p\n"
                 "    hash: { table_size: 65536 }\n"
                 "    backends: [{ name: b1, address: 10.0.0.11, port: 80 }]\n"
                 "  - name: q\n"
                 "    hash: { table_size: 101 }\n"
                 "    backends: [{ name: b1, address: 10.0.0.11, port: 80 },\n"
                 "               { name: b2, address: 10.0.0.12, port: 80 }]\n",
             {"t.yaml:9:25: pools[0].hash.table_size: 65536 is not prime; a Maglev table size "
              "must be prime (the next prime is 65537)",
              "t.yaml:12:25: pools[1].hash.table_size: table size 101 is below 100 x 2 backends "
              "= 200; shares drift beyond 1% below that; use a prime >= 200"}},
        Case{"backends",
             D + "listeners:\n"
                 "  - { name: a, address: 10.0.0.100, port: 80, protocol: tcp, pool: p }\n"
                 "pools:\n"
                 "  - name: p\n"
                 "    backends:\n"
                 "      - { name: b1, address: 10.0.0.11, port: 80, weight: 0 }\n"
                 "      - { name: b1, address: 10.0.0.11, port: 80 }\n"
                 "  - name: p\n"
                 "    backends: []\n",
             {"t.yaml:10:59: pools[0].backends[0].weight: 0 is out of range; allowed: [1, 65535]",
              "t.yaml:11:9: pools[0].backends[1]: 10.0.0.11:80 is listed twice in this pool; "
              "give each backend once and use weight",
              "t.yaml:11:17: pools[0].backends[1].name: duplicate backend name \"b1\" in pool; "
              "names must be unique within a pool",
              "t.yaml:12:5: pools[1].name: duplicate pool name \"p\" (also pools[0]); names must "
              "be unique",
              "t.yaml:13:15: pools[1].backends: the list is empty; at least one entry is needed"}},
        Case{"enums_and_booleans",
             "node_id: 3\n" + D +
                 "  idle: { mode: spin }\n"
                 "tcp: { congestion: bbr }\n"
                 "listeners:\n"
                 "  - { name: a, address: 10.0.0.100, port: 80, protocol: framed, pool: p,\n"
                 "      framed: { on_corrupt: drop, stamp_hop: yes } }\n"
                 "  - { name: b, address: 10.0.0.100, port: 443, protocol: tlz }\n"
                 "pools:\n"
                 "  - { name: p, hash: { key: dest-ip }, backends: [{ name: b1, address: "
                 "10.0.0.11, port: 80 }] }\n",
             {"t.yaml:6:17: dataplane.idle.mode: unknown value \"spin\"; allowed: backoff, "
              "busy-poll",
              "t.yaml:7:20: tcp.congestion: unknown value \"bbr\"; allowed: cubic, newreno",
              "t.yaml:10:29: listeners[0].framed.on_corrupt: unknown value \"drop\"; allowed: "
              "reset, count",
              "t.yaml:10:46: listeners[0].framed.stamp_hop: expected true or false, got \"yes\"",
              "t.yaml:11:58: listeners[1].protocol: unknown value \"tlz\"; allowed: tcp, framed, "
              "tls, echo, discard",
              "t.yaml:13:29: pools[0].hash.key: unknown value \"dest-ip\"; allowed: five-tuple, "
              "source-ip"}},
        Case{"stamp_hop_needs_node_id",
             D + "listeners:\n"
                 "  - { name: a, address: 10.0.0.100, port: 80, protocol: framed, pool: p,\n"
                 "      framed: { stamp_hop: true } }\n"
                 "pools:\n"
                 "  - { name: p, backends: [{ name: b1, address: 10.0.0.11, port: 80 }] }\n",
             {"t.yaml:7:28: listeners[0].framed.stamp_hop: stamping writes node_id into each "
              "frame's hop field, and node_id is 0 (the value clients send); set node_id to "
              "1-4294967295"}},
        Case{"health_checks",
             D + "listeners:\n"
                 "  - { name: a, address: 10.0.0.100, port: 80, protocol: tcp, pool: p }\n"
                 "pools:\n"
                 "  - name: p\n"
                 "    backends: [{ name: b1, address: 10.0.0.11, port: 80 }]\n"
                 "    health: { type: http, interval_ms: 100, timeout_ms: 200,\n"
                 "              http: { request: \"GET /\", status: 200-700 } }\n",
             {"t.yaml:10:45: pools[0].health.timeout_ms: 200 exceeds interval_ms (100); a check "
              "must finish before the next one starts",
              "t.yaml:11:32: pools[0].health.http.request: \"GET /\" is not a request line; "
              "expected METHOD TARGET HTTP/1.x, e.g. \"GET /healthz HTTP/1.1\"",
              "t.yaml:11:49: pools[0].health.http.status: expected a status or a range of "
              "statuses within 100-599, e.g. 200 or 200-399"}},
        Case{"http_check_needs_request",
             D + "listeners:\n"
                 "  - { name: a, address: 10.0.0.100, port: 80, protocol: tcp, pool: p }\n"
                 "pools:\n"
                 "  - name: p\n"
                 "    backends: [{ name: b1, address: 10.0.0.11, port: 80 }]\n"
                 "    health: { type: http }\n",
             {"t.yaml:10:13: pools[0].health.http: missing required key; expected a map with "
              "request and status"}},
        Case{"limits_and_max_connections",
             D + "  limits: { connections: 100 }\n" +
                 "listeners:\n"
                 "  - { name: e, address: 10.0.0.100, port: 7, protocol: echo, max_connections: "
                 "101 }\n",
             {"t.yaml:7:79: listeners[0].max_connections: 101 exceeds "
              "dataplane.limits.connections (100); allowed: [1, 100]"}},
        Case{"control_section",
             D + E +
                 "control:\n  socket: run/control.sock\n  metrics: { listen: \"127.0.0.1:0\" }\n",
             {"t.yaml:8:11: control.socket: \"run/control.sock\" must be an absolute path",
              "t.yaml:9:22: control.metrics.listen: expected ADDRESS:PORT with a dotted-quad "
              "IPv4 address and a port 1-65535 (e.g. 127.0.0.1:9464), got the string "
              "\"127.0.0.1:0\""}},
        Case{"wrong_container_types",
             "dataplane:\n  eal: \"-l 0-1\"\n  ports: {}\n" + std::string("listeners: 5\n"),
             {"t.yaml:2:8: dataplane.eal: expected a non-empty list of EAL arguments as strings",
              "t.yaml:3:10: dataplane.ports: expected a list",
              "t.yaml:4:12: listeners: expected a list"}},
        Case{"empty_listener_list",
             D + "listeners: []\n",
             {"t.yaml:5:12: listeners: the list is empty; at least one entry is needed"}},
        Case{"syntax_error",
             D + "listeners: [\n",
             {"t.yaml:6:1: YAML syntax error: end of sequence flow not found"}},
        Case{"two_documents",
             D + E + "---\nnode_id: 1\n",
             {"t.yaml:8:1: a second YAML document; the configuration is one document"}},
        Case{"empty_file",
             "",
             {"t.yaml: the file is empty; expected a map with dataplane and listeners"}},
        // yaml-cpp 0.7's LoadAll never returns on this (found by the yaml_config fuzz target).
        Case{"lone_comma",
             ",",
             {"t.yaml: the file is empty; expected a map with dataplane and listeners",
              "t.yaml:1:1: YAML syntax error: nothing here can be read as YAML"}},
        Case{"top_level_not_a_map", "- a\n", {"t.yaml:1:1: expected a map, got a list"}},
        // Text that would break JSON, metric labels or weirctl's POOL/BACKEND never gets in.
        Case{"names_outside_the_name_alphabet",
             D + "listeners:\n  - { name: \"a\\\"b\", address: 10.0.0.100, port: 7, protocol: "
                 "echo }\n  - { name: a/b, address: 10.0.0.100, port: 9, protocol: discard }\n",
             {"t.yaml:6:13: listeners[0].name: \"a\"b\" is not a name: use letters, digits and _ "
              "- . : (at most 64), since names appear in metric labels, logs and weirctl's "
              "POOL/BACKEND",
              "t.yaml:7:13: listeners[1].name: \"a/b\" is not a name: use letters, digits and _ "
              "- . : (at most 64), since names appear in metric labels, logs and weirctl's "
              "POOL/BACKEND"}},
        Case{"one_path_for_both_sockets",
             D + E + "control:\n  socket: /run/weir/dataplane.sock\n",
             {"t.yaml:8:11: control.socket: \"/run/weir/dataplane.sock\" is both "
              "dataplane.control_socket and control.socket; the dataplane's control socket and "
              "weir-control's sockets must each have their own path"}},
        Case{"control_character_in_a_string",
             D + E + "control:\n  socket: \"/run/weir/x\\ty.sock\"\n",
             {"t.yaml:8:11: control.socket: the string contains a control character (U+0009 at "
              "offset 11)"}},
        Case{"invalid_utf8_in_a_name",
             D + "listeners:\n  - { name: \"x\xff\", address: 10.0.0.100, port: 7, protocol: "
                 "echo }\n",
             {"t.yaml:6:13: listeners[0].name: the string is not valid UTF-8 (byte 0xff at offset "
              "1)"}},
        Case{"overlong_utf8_encoding",
             D + "listeners:\n  - { name: \"\xc0\xaf\", address: 10.0.0.100, port: 7, protocol: "
                 "echo }\n",
             {"t.yaml:6:13: listeners[0].name: the string is not valid UTF-8 (byte 0xc0 at offset "
              "0)"}}),
    [](const ::testing::TestParamInfo<Case>& info) { return std::string(info.param.name); });

TEST(ConfigDataplane, ShutdownGraceIsReadDefaultedAndBounded) {
  const LoadResult defaults = load_string(D + E, "t.yaml");
  ASSERT_TRUE(defaults.ok());
  EXPECT_EQ(defaults.config->dataplane.shutdown_grace_ms, 5'000u);
  const LoadResult none = load_string(D + "  shutdown_grace_ms: 0\n" + E, "t.yaml");
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none.config->dataplane.shutdown_grace_ms, 0u) << "0: reset at once";
  const LoadResult longest = load_string(D + "  shutdown_grace_ms: 60000\n" + E, "t.yaml");
  ASSERT_TRUE(longest.ok());
  EXPECT_EQ(longest.config->dataplane.shutdown_grace_ms, 60'000u);
  EXPECT_EQ(errors_of(D + "  shutdown_grace_ms: 60001\n" + E),
            std::vector<std::string>{"t.yaml:5:22: dataplane.shutdown_grace_ms: 60001 is out of "
                                     "range; allowed: [0, 60000]"});
  EXPECT_EQ(errors_of(D + "  shutdown_grace_ms: -1\n" + E).size(), 1u);
  EXPECT_EQ(errors_of(D + "  shutdown_grace_ms: 5s\n" + E).size(), 1u);
}

// source_addresses: more local addresses for backend connections, each checked against its port,
// and then against the other ports and the listeners.
TEST(ConfigPorts, SourceAddressesAreReadAndEachBadOneNamed) {
  const std::string head =
      "dataplane:\n"
      "  eal: [\"--no-pci\", \"--vdev=net_tap0,iface=x\", \"--vdev=net_tap1,iface=y\"]\n"
      "  ports:\n"
      "    - name: p0\n"
      "      device: net_tap0\n"
      "      address: 10.0.0.2/24\n"
      "      gateway: 10.0.0.1\n"
      "      source_addresses:\n";
  const std::string tail =
      "    - { name: p1, device: net_tap1, address: 10.0.1.2/24, source_addresses: [10.0.0.3] }\n"
      "listeners:\n"
      "  - { name: e, address: 10.0.0.100, port: 7, protocol: echo }\n";
  const LoadResult good =
      load_string(head + "        - 10.0.0.3\n        - 10.0.0.4\n" +
                      "    - { name: p1, device: net_tap1, address: 10.0.1.2/24 }\n" + E,
                  "t.yaml");
  ASSERT_TRUE(good.ok()) << (good.errors.empty() ? "" : good.errors[0].to_string());
  EXPECT_EQ(good.config->dataplane.ports[0].source_addresses,
            (std::vector<Ipv4Address>{Ipv4Address::from_octets(10, 0, 0, 3),
                                      Ipv4Address::from_octets(10, 0, 0, 4)}));
  EXPECT_TRUE(good.config->dataplane.ports[1].source_addresses.empty());

  EXPECT_EQ(errors_of(head +
                      "        - 10.0.0.3\n"    // line 9: fine
                      "        - 10.0.1.3\n"    // 10: another subnet
                      "        - 10.0.0.2\n"    // 11: the port's own
                      "        - 10.0.0.1\n"    // 12: the gateway
                      "        - 10.0.0.3\n"    // 13: twice
                      "        - 10.0.0.255\n"  // 14: broadcast
                      "        - 127.0.0.1\n"   // 15: loopback
                      "        - 10.0.0.100\n"  // 16: a listener's
                      "        - 10.0.0\n" +    // 17: not an address
                      tail),                    // 18: p1 takes p0's 10.0.0.3 (and off-subnet)
            (std::vector<std::string>{
                "t.yaml:10:11: dataplane.ports[0].source_addresses[1]: 10.0.1.3 is not on the "
                "port's subnet 10.0.0.0/24; backends answer a source address through ARP on this "
                "link",
                "t.yaml:11:11: dataplane.ports[0].source_addresses[2]: is the port's own "
                "address, which is a source already; list only the others",
                "t.yaml:12:11: dataplane.ports[0].source_addresses[3]: is the port's gateway; a "
                "source address must be Weir's own",
                "t.yaml:13:11: dataplane.ports[0].source_addresses[4]: 10.0.0.3 is listed twice "
                "(also dataplane.ports[0].source_addresses[0])",
                "t.yaml:14:11: dataplane.ports[0].source_addresses[5]: 10.0.0.255/24 is the "
                "subnet's broadcast address; use a host address",
                "t.yaml:15:11: dataplane.ports[0].source_addresses[6]: 127.0.0.1 is a loopback "
                "address (127.0.0.0/8); use a unicast host address",
                "t.yaml:16:11: dataplane.ports[0].source_addresses[7]: 10.0.0.100 is the address "
                "of listeners[0]; source addresses are for backend connections only",
                "t.yaml:17:11: dataplane.ports[0].source_addresses[8]: expected an IPv4 address "
                "in dotted-quad form (e.g. 10.0.0.1, no leading zeros), got \"10.0.0\"",
                "t.yaml:18:78: dataplane.ports[1].source_addresses[0]: 10.0.0.3 is not on the "
                "port's subnet 10.0.1.0/24; backends answer a source address through ARP on this "
                "link"}));
  // The same address on two ports (both on-link), and more than 32 on one.
  std::string many =
      "    - name: p1\n      device: net_tap1\n      address: 10.0.0.9/24\n"
      "      source_addresses: [10.0.0.3";
  for (int i = 0; i < 32; ++i) many += ", 10.0.0." + std::to_string(150 + i);
  EXPECT_EQ(errors_of(head + "        - 10.0.0.3\n" + many + "]\n" + E),
            (std::vector<std::string>{
                "t.yaml:13:25: dataplane.ports[1].source_addresses: 33 addresses; a port holds "
                "at most 32",
                "t.yaml:13:26: dataplane.ports[1].source_addresses[0]: 10.0.0.3 is already "
                "dataplane.ports[0].source_addresses[0]; each address is one port's"}));
}

TEST(ConfigControl, StateFileIsAnAbsolutePathWithADefault) {
  const LoadResult defaults = load_string(D + E, "t.yaml");
  ASSERT_TRUE(defaults.ok());
  EXPECT_EQ(defaults.config->control.state_file, "/var/lib/weir/control-state.json");
  const LoadResult given =
      load_string(D + E + "control: { state_file: /srv/w/s.json }\n", "t.yaml");
  ASSERT_TRUE(given.ok());
  EXPECT_EQ(given.config->control.state_file, "/srv/w/s.json");
  EXPECT_EQ(errors_of(D + E + "control: { state_file: s.json }\n"),
            std::vector<std::string>{
                "t.yaml:7:24: control.state_file: \"s.json\" must be an absolute path"});
}

TEST(ConfigControl, SocketsTakeAPathOrAMapWithModeGroupAndLevel) {
  const LoadResult defaults = load_string(D + E, "t.yaml");
  ASSERT_TRUE(defaults.ok());
  EXPECT_EQ(defaults.config->control.socket_access, SocketAccess{});
  EXPECT_EQ(defaults.config->control.socket_access.mode, 0600u);
  EXPECT_FALSE(defaults.config->control.read_only_socket);
  const LoadResult given = load_string(
      D + "  control_socket: { path: /run/w/dp.sock, mode: \"0660\", group: root }\n" + E +
          "control:\n  socket: { path: /run/w/c.sock, mode: 640, group: \"0\", level: read-only }\n"
          "  read_only_socket: { path: /run/w/ro.sock, mode: 0o666 }\n",
      "t.yaml");
  ASSERT_TRUE(given.ok());
  const Config& c = *given.config;
  EXPECT_EQ(c.dataplane.control_socket, "/run/w/dp.sock");
  EXPECT_EQ(c.dataplane.control_socket_access, (SocketAccess{0660, "root", SocketLevel::admin}));
  EXPECT_EQ(c.control.socket, "/run/w/c.sock");
  EXPECT_EQ(c.control.socket_access, (SocketAccess{0640, "0", SocketLevel::read_only}));
  EXPECT_EQ(c.control.read_only_socket, "/run/w/ro.sock");
  EXPECT_EQ(c.control.read_only_socket_access,
            (SocketAccess{0666, std::nullopt, SocketLevel::read_only}));
}

TEST(ConfigControl, BadSocketSettingsAreNamedWhereWritten) {
  EXPECT_EQ(errors_of(D + E + "control:\n  socket: { path: /run/w/c.sock, mode: \"0778\" }\n"),
            std::vector<std::string>{"t.yaml:8:40: control.socket.mode: expected the socket's "
                                     "permission bits in octal, e.g. \"0660\" (at most 0777)"});
  EXPECT_EQ(errors_of(D + E + "control:\n  socket: { path: /run/w/c.sock, mode: 4755 }\n"),
            std::vector<std::string>{"t.yaml:8:40: control.socket.mode: expected the socket's "
                                     "permission bits in octal, e.g. \"0660\" (at most 0777)"});
  EXPECT_EQ(
      errors_of(D + E + "control:\n  socket: { path: /run/w/c.sock, group: no-such-group-x }\n"),
      std::vector<std::string>{
          "t.yaml:8:41: control.socket.group: no group named \"no-such-group-x\" on this host"});
  EXPECT_EQ(errors_of(D + E + "control:\n  socket: { mode: \"0600\" }\n"),
            std::vector<std::string>{"t.yaml:8:11: control.socket.path: missing required key; "
                                     "expected the socket's absolute path"});
  EXPECT_EQ(errors_of(D + E + "control:\n  socket: { path: /run/w/c.sock, level: root }\n"),
            std::vector<std::string>{"t.yaml:8:41: control.socket.level: unknown value \"root\"; "
                                     "allowed: admin, read-only"});
  // weir-control steers the dataplane through its socket: no level there, nor on the socket
  // whose name says its level.
  const std::vector<std::string> dataplane_level =
      errors_of(D + "  control_socket: { path: /run/w/d.sock, level: admin }\n" + E);
  ASSERT_EQ(dataplane_level.size(), 1u);
  EXPECT_NE(dataplane_level[0].find("dataplane.control_socket.level: unknown key"),
            std::string::npos)
      << dataplane_level[0];
  EXPECT_EQ(
      errors_of(D + E + "control:\n  read_only_socket: { path: /r.sock, level: admin }\n").size(),
      1u);
  // The read-only socket at the path of another one: reported at the later key.
  EXPECT_EQ(
      errors_of(D + E + "control:\n  socket: /run/w/c.sock\n  read_only_socket: /run/w/c.sock\n"),
      std::vector<std::string>{
          "t.yaml:9:21: control.read_only_socket: \"/run/w/c.sock\" is both control.socket "
          "and control.read_only_socket; the dataplane's control socket and weir-control's "
          "sockets must each have their own path"});
  EXPECT_EQ(errors_of(D + E + "control:\n  read_only_socket: { path: /run/weir/dataplane.sock }\n"),
            std::vector<std::string>{
                "t.yaml:8:21: control.read_only_socket: \"/run/weir/dataplane.sock\" is both "
                "dataplane.control_socket and control.read_only_socket; the dataplane's control "
                "socket and weir-control's sockets must each have their own path"});
}

TEST(ConfigPools, PassiveHealthIsOffUnlessPresentAndBounded) {
  const std::string pool =
      "listeners:\n"
      "  - { name: web, address: 10.0.0.100, port: 80, protocol: tcp, pool: app }\n"
      "pools:\n"
      "  - name: app\n"
      "    backends: [{ name: b1, address: 10.0.1.1, port: 80 }]\n";
  const LoadResult off = load_string(D + pool, "t.yaml");
  ASSERT_TRUE(off.ok());
  EXPECT_FALSE(off.config->pools[0].passive_health.has_value());
  const LoadResult on = load_string(
      D + pool + "    passive_health: { error_limit: 3, hold_down_ms: 500 }\n", "t.yaml");
  ASSERT_TRUE(on.ok());
  EXPECT_EQ(on.config->pools[0].passive_health->error_limit, 3u);
  EXPECT_EQ(on.config->pools[0].passive_health->hold_down_ms, 500u);
  const std::vector<std::string> errors = errors_of(
      D + pool + "    passive_health: { error_limit: 0, hold_down_ms: 99, mark: down }\n");
  ASSERT_EQ(errors.size(), 3u);
  EXPECT_NE(errors[0].find("pools[0].passive_health.error_limit: 0 is out of range"),
            std::string::npos)
      << errors[0];
  EXPECT_NE(errors[1].find("pools[0].passive_health.hold_down_ms: 99 is out of range"),
            std::string::npos)
      << errors[1];
  EXPECT_NE(errors[2].find("pools[0].passive_health.mark: unknown key"), std::string::npos)
      << errors[2];
}

// What a dataplane can hold is checked in the file, at the first element past the limit.
TEST(ConfigTcp, TimeoutsAndCapsAreReadAndDefaulted) {
  const LoadResult defaults = load_string(D + E, "t.yaml");
  ASSERT_TRUE(defaults.ok());
  EXPECT_EQ(defaults.config->tcp.fin_wait2_timeout_ms, 60'000u);
  EXPECT_FALSE(defaults.config->tcp.max_time_wait) << "unset: a quarter of the connection limit";
  EXPECT_EQ(defaults.config->tcp.out_of_window_ack_interval_ms, 500u);
  const LoadResult given = load_string(D + E +
                                           "tcp: { fin_wait2_timeout_ms: 5000, max_time_wait: 0, "
                                           "out_of_window_ack_interval_ms: 0 }\n",
                                       "t.yaml");
  ASSERT_TRUE(given.ok());
  EXPECT_EQ(given.config->tcp.fin_wait2_timeout_ms, 5'000u);
  EXPECT_EQ(given.config->tcp.max_time_wait, 0u);
  EXPECT_EQ(given.config->tcp.out_of_window_ack_interval_ms, 0u);
}

// client_timeout_ms and server_timeout_ms each default to idle_timeout_ms (the one key before
// them), whichever order the keys come in; framed.frame_timeout_ms has its own default.
TEST(ConfigListeners, SideTimeoutsDefaultToTheIdleTimeoutAndFrameTimeoutIsRead) {
  const std::string pool =
      "pools:\n"
      "  - name: app\n"
      "    backends: [{ name: b1, address: 10.0.1.1, port: 80 }]\n";
  const auto listener = [&](const std::string& extra) {
    return D + "listeners:\n  - { name: web, address: 10.0.0.100, port: 80, protocol: framed, " +
           "pool: app" + extra + " }\n" + pool;
  };
  const LoadResult defaults = load_string(listener(""), "t.yaml");
  ASSERT_TRUE(defaults.ok());
  const Listener& d = defaults.config->listeners[0];
  EXPECT_EQ(d.client_timeout_ms, kDefaultIdleTimeoutMs);
  EXPECT_EQ(d.server_timeout_ms, kDefaultIdleTimeoutMs);
  EXPECT_EQ(d.framed->frame_timeout_ms, 60'000u);
  const LoadResult idle =
      load_string(listener(", server_timeout_ms: 9000, idle_timeout_ms: 7000"), "t.yaml");
  ASSERT_TRUE(idle.ok());
  EXPECT_EQ(idle.config->listeners[0].idle_timeout_ms, 7'000u);
  EXPECT_EQ(idle.config->listeners[0].client_timeout_ms, 7'000u) << "idle_timeout_ms's value";
  EXPECT_EQ(idle.config->listeners[0].server_timeout_ms, 9'000u) << "its own, given first";
  const LoadResult given = load_string(
      listener(", client_timeout_ms: 1000, framed: { frame_timeout_ms: 250 }"), "t.yaml");
  ASSERT_TRUE(given.ok());
  EXPECT_EQ(given.config->listeners[0].client_timeout_ms, 1'000u);
  EXPECT_EQ(given.config->listeners[0].server_timeout_ms, kDefaultIdleTimeoutMs);
  EXPECT_EQ(given.config->listeners[0].framed->frame_timeout_ms, 250u);
  const std::vector<std::string> errors = errors_of(listener(
      ", client_timeout_ms: 0, server_timeout_ms: 86400001, framed: { frame_timeout_ms: 0 }"));
  ASSERT_EQ(errors.size(), 3u) << ::testing::PrintToString(errors);
  for (const std::string wanted :
       {"listeners[0].client_timeout_ms: 0 is out of range; allowed: [1, 86400000]",
        "listeners[0].server_timeout_ms: 86400001 is out of range",
        "listeners[0].framed.frame_timeout_ms: 0 is out of range"}) {
    EXPECT_EQ(std::count_if(errors.begin(), errors.end(),
                            [&](const std::string& e) { return e.find(wanted) != e.npos; }),
              1)
        << wanted << " in " << ::testing::PrintToString(errors);
  }
  EXPECT_EQ(errors_of(D +
                      "listeners:\n  - { name: web, address: 10.0.0.100, port: 80, protocol: "
                      "tcp, pool: app, framed: { frame_timeout_ms: 5 } }\n" +
                      pool)
                .size(),
            1u)
      << "framed settings only on framed listeners";
}

TEST(ConfigLimits, PoolsProxiedListenersAndBackendsBeyondWhatADataplaneHolds) {
  const auto pools = [](size_t count, size_t backends) {
    std::string text = "pools:\n";
    for (size_t p = 0; p < count; ++p) {
      text += "  - name: p" + std::to_string(p) + "\n    backends:\n";
      for (size_t b = 0; b < backends; ++b) {
        text += "      - { name: b" + std::to_string(b) +
                ", address: 10.0.1.1, port: " + std::to_string(1000 + b) + " }\n";
      }
    }
    return text;
  };
  const auto proxied = [](size_t count) {
    std::string text = "listeners:\n";
    for (size_t l = 0; l < count; ++l) {
      text += "  - { name: l" + std::to_string(l) +
              ", address: 10.0.0.100, port: " + std::to_string(1000 + l) +
              ", protocol: tcp, pool: p0 }\n";
    }
    return text;
  };
  EXPECT_EQ(errors_of(D + proxied(64) + pools(64, 1)), std::vector<std::string>{});
  EXPECT_EQ(errors_of(D + proxied(1) + pools(1, 256)), std::vector<std::string>{});
  EXPECT_EQ(errors_of(D + proxied(1) + pools(65, 1)),
            std::vector<std::string>{
                "t.yaml:200:5: pools[64]: more than 64 pools; a dataplane holds at most 64"});
  EXPECT_EQ(errors_of(D + proxied(65) + pools(1, 1)),
            std::vector<std::string>{"t.yaml:70:5: listeners[64]: more than 64 tcp, framed "
                                     "and tls listeners; a dataplane holds at most 64"});
  EXPECT_EQ(errors_of(D + proxied(1) + pools(1, 257)),
            std::vector<std::string>{
                "t.yaml:8:5: pools[0].backends: 257 backends; a pool holds at most 256"});
}

TEST(ConfigExamples, EveryExampleValidates) {
  const std::filesystem::path dir = source_root() + "/config/examples";
  size_t examples = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() != ".yaml") continue;
    ++examples;
    const LoadResult result = load_file(entry.path().string());
    std::string errors;
    for (const Diagnostic& d : result.errors) errors += d.to_string() + "\n";
    EXPECT_TRUE(result.ok()) << errors;
  }
  EXPECT_GE(examples, 2u);
}

TEST(ConfigExamples, ContractValuesAreRead) {
  const LoadResult result = load_file(source_root() + "/config/examples/contract.yaml");
  ASSERT_TRUE(result.ok());
  const Config& c = *result.config;
  EXPECT_EQ(c.node_id, 7u);
  EXPECT_EQ(c.dataplane.eal.size(), 10u);
  EXPECT_EQ(c.dataplane.eal.back(), "--vdev=net_af_packet0,iface=weir-dp0");
  EXPECT_EQ(c.dataplane.control_socket, "/run/weir/dataplane.sock");
  EXPECT_EQ(c.dataplane.idle.mode, IdleMode::backoff);
  EXPECT_EQ(c.dataplane.idle.max_sleep_us, 200u);
  ASSERT_EQ(c.dataplane.ports.size(), 1u);
  EXPECT_EQ(c.dataplane.ports[0].address, Ipv4Address::from_octets(10, 77, 0, 2));
  EXPECT_EQ(c.dataplane.ports[0].prefix_length, 24);
  EXPECT_EQ(c.dataplane.ports[0].gateway, Ipv4Address::from_octets(10, 77, 0, 254));
  EXPECT_EQ(c.dataplane.ports[0].mtu, kDefaultMtu);
  EXPECT_EQ(c.dataplane.limits.connections, 262144u);
  EXPECT_EQ(c.tcp.congestion, Congestion::cubic);
  ASSERT_EQ(c.listeners.size(), 3u);
  EXPECT_EQ(c.listeners[0].protocol, Protocol::framed);
  ASSERT_TRUE(c.listeners[0].framed);
  EXPECT_TRUE(c.listeners[0].framed->stamp_hop);
  EXPECT_EQ(c.listeners[0].framed->on_corrupt, OnCorrupt::reset);
  EXPECT_EQ(c.listeners[0].pool, 0u);
  EXPECT_EQ(c.listeners[1].pool, 1u);
  EXPECT_FALSE(c.listeners[1].framed);
  EXPECT_EQ(c.listeners[1].max_connections, 262144u) << "defaults to limits.connections";
  EXPECT_FALSE(c.listeners[2].pool);
  EXPECT_EQ(c.listeners[2].port, 7);
  ASSERT_EQ(c.pools.size(), 2u);
  EXPECT_EQ(c.pools[0].backends[2].weight, 2u);
  EXPECT_EQ(c.pools[1].backends[2].weight, 1u) << "weight defaults to 1";
  EXPECT_EQ(c.pools[1].hash.table_size, kDefaultTableSize);
  EXPECT_EQ(c.pools[1].retries, kDefaultRetries);
  ASSERT_TRUE(c.pools[0].health);
  EXPECT_EQ(c.pools[0].health->type, HealthType::framed_ping);
  EXPECT_EQ(c.control.metrics.listen.port, 9464);
}

TEST(ConfigFiles, MissingFileIsAnError) {
  const LoadResult result = load_file("/nonexistent/weir.yaml");
  ASSERT_FALSE(result.ok());
  ASSERT_EQ(result.errors.size(), 1u);
  EXPECT_EQ(result.errors[0].to_string(),
            "/nonexistent/weir.yaml: cannot open the file: No such file or directory");
}

}  // namespace
}  // namespace weir::config
