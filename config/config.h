// The configuration every Weir process reads: one YAML file, parsed into these immutable structs
// and validated before anything starts (docs/configuration.md documents every key).
//
// A Config is a snapshot: it is built once, off the packet path, shared as
// std::shared_ptr<const Config>, and never mutated. A reload builds a new one.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/net/address.h"
#include "common/owner_table.h"
#include "config/diagnostic.h"

namespace weir::config {

using net::Ipv4Address;

// Defaults and limits, named once so that the loader, the docs and the tests agree.
inline constexpr uint32_t kDefaultMaxSleepUs = 300;
inline constexpr uint32_t kMaxMaxSleepUs = 100'000;
// SIGTERM: how long sessions may take to finish before the rest are reset. The upper bound keeps
// a stop well inside systemd's default TimeoutStopSec (90 s).
inline constexpr uint32_t kDefaultShutdownGraceMs = 5'000;
inline constexpr uint32_t kMaxShutdownGraceMs = 60'000;
inline constexpr uint16_t kDefaultMtu = 1500;
inline constexpr uint16_t kMinMtu = 576;   // RFC 791: every host must accept 576-byte datagrams
inline constexpr uint16_t kMaxMtu = 9000;  // jumbo frames; one mbuf segment holds a whole frame
inline constexpr uint32_t kDefaultConnections = 262'144;
// A port's source_addresses beyond its own: each adds 64,512 source ports toward every backend.
inline constexpr size_t kMaxSourceAddresses = 32;
inline constexpr uint32_t kMaxConnections = 16'777'216;
inline constexpr uint32_t kDefaultMinRtoMs = 200;  // Linux's TCP_RTO_MIN (RFC 6298 2.4 says 1 s)
inline constexpr uint32_t kDefaultMaxRtoMs = 120'000;
inline constexpr uint32_t kDefaultTimeWaitMs = 2'000;
inline constexpr uint16_t kDefaultMinMss = 48;  // Linux's net.ipv4.tcp_min_snd_mss
inline constexpr uint32_t kDefaultConnectionBuffer = 131'072;
inline constexpr uint32_t kMinConnectionBuffer = 16'384;
inline constexpr uint32_t kMaxConnectionBuffer = 16'777'216;
inline constexpr uint32_t kDefaultMaxFrame = 1'048'576;
inline constexpr uint32_t kHardMaxFrame = 16'777'216;  // the frame format's hard limit
inline constexpr uint32_t kDefaultIdleTimeoutMs = 300'000;
// HAProxy's `timeout http-request` for Weir frames: a client's frame, begun, must be whole within
// this, so that a client holding a partial frame (slowloris) does not hold a session for ever.
inline constexpr uint32_t kDefaultFrameTimeoutMs = 60'000;
inline constexpr uint32_t kMaxTimeoutMs = 86'400'000;
inline constexpr uint32_t kDefaultRetries = 2;
inline constexpr uint32_t kDefaultDrainTimeoutMs = 30'000;
// HAProxy's `timeout connect` in spirit: without it a blackholed backend would hold each attempt
// for the whole SYN retransmission schedule (about a minute).
inline constexpr uint32_t kDefaultConnectTimeoutMs = 5'000;
inline constexpr uint32_t kDefaultTableSize = 65'537;
// What one dataplane can hold over its life (its per-worker arrays have fixed capacity so the main
// lcore can read counters while workers add to them): checked in the file, and again at reload,
// where removed listeners and backends still count.
inline constexpr size_t kMaxPools = 64;
inline constexpr size_t kMaxProxiedListeners = 64;
inline constexpr size_t kMaxBackendsPerPool = 256;
inline constexpr uint32_t kMinTableSlotsPerBackend = 100;  // Maglev: M > 100 N for ~1% shares
inline constexpr uint32_t kMaxWeight = 65'535;
// TLS (docs/tls.md): weir-tls-worker processes, session ticket key rotation, handshake deadline.
inline constexpr uint32_t kDefaultTlsWorkers = 1;
inline constexpr uint32_t kMaxTlsWorkers = 64;
inline constexpr uint32_t kDefaultTicketKeyRotationS = 43'200;  // 12 h
inline constexpr uint32_t kDefaultHandshakeTimeoutMs = 10'000;
inline constexpr size_t kMaxCertificatesPerListener = 64;
inline constexpr size_t kMaxSniPoolsPerListener = 256;
// cluster.peers: the owner table's bound (one byte a row entry).
inline constexpr size_t kMaxClusterPeers = cluster::kMaxPeers;

enum class IdleMode { backoff, busy_poll };
enum class Congestion { cubic, newreno };
enum class Protocol { tcp, framed, echo, discard, tls };
enum class TlsInner { tcp, framed };
enum class TlsVersion { v1_2, v1_3 };
enum class OnCorrupt { reset, count };
enum class ProxyProtocol { none, v2 };
enum class HashKey { five_tuple, source_ip };
enum class HealthType { tcp, http, framed_ping };
// What a control or admin socket's clients may do (HAProxy's `stats socket ... level`): admin,
// everything; read_only, the queries (status, counters, events) and no request that changes state.
enum class SocketLevel { admin, read_only };

// The spelling used in the YAML file, for messages and exported labels.
std::string_view name_of(IdleMode);
std::string_view name_of(Congestion);
std::string_view name_of(Protocol);
std::string_view name_of(OnCorrupt);
std::string_view name_of(ProxyProtocol);
std::string_view name_of(HashKey);
std::string_view name_of(HealthType);
std::string_view name_of(TlsInner);
std::string_view name_of(TlsVersion);
std::string_view name_of(SocketLevel);

struct Idle {
  IdleMode mode = IdleMode::backoff;
  uint32_t max_sleep_us = kDefaultMaxSleepUs;
};

struct Port {
  std::string name;
  std::string device;  // a DPDK vdev name created by a --vdev EAL argument, or a PCI address
  Ipv4Address address;
  uint8_t prefix_length = 0;
  std::optional<Ipv4Address> gateway;
  // More addresses of the port, answered by ARP and used with `address` as the sources of backend
  // connections (DPVS's local addresses): each allows 64,512 connections to one backend
  // address:port more.
  std::vector<Ipv4Address> source_addresses;
  uint16_t mtu = kDefaultMtu;
};

// Who may open a control or admin socket (HAProxy's `stats socket PATH mode 660 group G level L`):
// the server binds it under a temporary name, sets this mode and group, then renames it into place.
inline constexpr uint32_t kDefaultSocketMode = 0600;  // only the owner (root) may steer Weir
struct SocketAccess {
  uint32_t mode = kDefaultSocketMode;
  std::optional<std::string> group;  // a group name or number; unset: the process's own group
  SocketLevel level = SocketLevel::admin;
  bool operator==(const SocketAccess&) const = default;
};

struct Limits {
  uint32_t connections = kDefaultConnections;
};

struct Dataplane {
  std::vector<std::string> eal;
  std::string control_socket;
  SocketAccess control_socket_access;  // always admin: weir-control steers the dataplane through it
  Idle idle;
  std::vector<Port> ports;
  Limits limits;
  uint32_t shutdown_grace_ms = kDefaultShutdownGraceMs;  // 0: reset every session at once
};

struct Tcp {
  uint32_t min_rto_ms = kDefaultMinRtoMs;
  uint32_t max_rto_ms = kDefaultMaxRtoMs;
  uint32_t time_wait_ms = kDefaultTimeWaitMs;
  // The process's cap on connections in TIME-WAIT (Linux's tcp_max_tw_buckets), split evenly over
  // the workers like dataplane.limits.connections. Unset: a quarter of that limit.
  std::optional<uint32_t> max_time_wait;
  Congestion congestion = Congestion::cubic;
  uint16_t min_mss = kDefaultMinMss;
  uint32_t keepalive_idle_ms = 0;  // 0: no keepalive probes
  uint32_t keepalive_interval_ms = 75'000;
  uint32_t keepalive_probes = 9;
  // Linux's tcp_fin_timeout: a connection whose FIN is acknowledged and whose peer stays silent
  // this long in FIN-WAIT-2 is reset.
  uint32_t fin_wait2_timeout_ms = 60'000;
  // Linux's tcp_invalid_ratelimit: per connection, at most one ACK in this interval answers
  // segments without data outside the window. 0: no limit.
  uint32_t out_of_window_ack_interval_ms = 500;
  // Per connection: the most received data held for the consumer (the advertised window), and
  // the send budget. A proxied session holds at most twice their sum, whatever the peers do.
  uint32_t receive_buffer_bytes = kDefaultConnectionBuffer;
  uint32_t send_buffer_bytes = kDefaultConnectionBuffer;
};

struct Framed {
  uint32_t max_frame = kDefaultMaxFrame;
  OnCorrupt on_corrupt = OnCorrupt::reset;
  bool stamp_hop = false;
  uint32_t frame_timeout_ms = kDefaultFrameTimeoutMs;
};

// One certificate chain and its private key, PEM files. Only weir-tls-worker loads the key;
// check_certificates (config/certificate_check.h) reads both for --check-config.
struct TlsCertificate {
  std::string cert;  // the leaf first, then its intermediates
  std::string key;
  Place cert_at, key_at;
};

struct SniPool {
  std::string server_name;  // lower case; "*.example.com" matches one label
  size_t pool = 0;          // index into Config::pools
};

// The entry of `sni_pools` a client's server_name selects: the first whose name matches it
// (compared in lower case; "*.example.com" matches exactly one label before ".example.com"), or
// nullopt (no name, or none matches: the listener's own pool). weir-tls-worker and
// weir-dataplane both match with it, so that they never disagree.
std::optional<size_t> match_sni_pool(const std::vector<SniPool>& sni_pools,
                                     std::string_view server_name);

struct ListenerTls {
  std::vector<TlsCertificate> certificates;  // chosen by SNI; the first is the default
  TlsInner inner = TlsInner::tcp;            // what the plaintext is: bytes, or Weir frames
  std::vector<SniPool> sni_pools;            // SNI -> pool; other names use the listener's pool
  TlsVersion min_version = TlsVersion::v1_2;
  std::optional<std::string> client_ca;  // set: clients must present a certificate it verifies
  Place client_ca_at;
  uint32_t handshake_timeout_ms = kDefaultHandshakeTimeoutMs;
};

struct Listener {
  std::string name;
  Ipv4Address address;
  uint16_t port = 0;
  Protocol protocol = Protocol::tcp;
  Place protocol_at;
  std::optional<size_t> pool;      // index into Config::pools; set for tcp, framed and tls
  std::optional<Framed> framed;    // set for framed, and tls with inner framed (defaults if absent)
  std::optional<ListenerTls> tls;  // set for tls
  ProxyProtocol proxy_protocol = ProxyProtocol::none;
  uint32_t idle_timeout_ms = kDefaultIdleTimeoutMs;
  // HAProxy's `timeout client` / `timeout server`: how long each side may be silent (sends
  // nothing and takes nothing of what is relayed to it). Each defaults to idle_timeout_ms.
  uint32_t client_timeout_ms = kDefaultIdleTimeoutMs;
  uint32_t server_timeout_ms = kDefaultIdleTimeoutMs;
  uint32_t max_connections = 0;     // 0 in the file is refused; the default is limits.connections
  uint32_t session_log_sample = 0;  // 0: no session log; N: one session in N (tcp, framed)
};

struct HttpCheck {
  std::string request;  // the request line, e.g. "GET /healthz HTTP/1.1"
  uint16_t status_min = 200;
  uint16_t status_max = 399;
};

struct Health {
  HealthType type = HealthType::tcp;
  uint32_t interval_ms = 1000;
  uint32_t timeout_ms = 500;
  uint32_t rise = 2;
  uint32_t fall = 3;
  std::optional<HttpCheck> http;  // set for type http
};

// pools[].passive_health: the dataplane's own failed connects and backend resets mark a backend
// down (HAProxy's `observe layer4` with `on-error mark-down`), judged by weir-control.
struct PassiveHealth {
  uint32_t error_limit = 10;      // errors with no successful connect between them
  uint32_t hold_down_ms = 10000;  // how long a backend so marked stays down at least
};

struct Backend {
  std::string name;
  Ipv4Address address;
  uint16_t port = 0;
  uint32_t weight = 1;
};

struct Hash {
  HashKey key = HashKey::five_tuple;
  uint32_t table_size = kDefaultTableSize;
};

struct Pool {
  std::string name;
  Hash hash;
  std::vector<Backend> backends;
  std::optional<Health> health;  // absent: backends are taken as up until an operator says not
  std::optional<PassiveHealth> passive_health;  // absent: off
  uint32_t retries = kDefaultRetries;
  uint32_t drain_timeout_ms = kDefaultDrainTimeoutMs;
  uint32_t connect_timeout_ms = kDefaultConnectTimeoutMs;
};

struct Endpoint {
  Ipv4Address address;
  uint16_t port = 0;
};

struct Metrics {
  Endpoint listen{Ipv4Address::from_octets(127, 0, 0, 1), 9464};
};

struct Control {
  std::string socket = "/run/weir/control.sock";
  SocketAccess socket_access;
  // A second socket at the read-only level, for monitoring (weirctl status, backends, stats).
  std::optional<std::string> read_only_socket;
  SocketAccess read_only_socket_access{kDefaultSocketMode, std::nullopt, SocketLevel::read_only};
  // weir-control's manual overrides (weirctl drain, down, weight, drain-box), kept across its
  // restarts.
  std::string state_file = "/var/lib/weir/control-state.json";
  Metrics metrics;
};

// The TLS workers as a whole (docs/tls.md). Read by weir-control (supervision, ticket keys) and
// weir-tls-worker.
struct Tls {
  bool configured = false;  // the file has a `tls:` section (weir-control then runs workers)
  uint32_t workers = kDefaultTlsWorkers;
  uint32_t ticket_key_rotation_s = kDefaultTicketKeyRotationS;
  // Ticket keys shared by several boxes (common/ticket_key_file.h), re-read on reload; unset: keys
  // made and rotated by weir-control. Read by weir-control and the checks only.
  std::optional<std::string> ticket_keys_file;
  Place ticket_keys_file_at;
  // The account a worker started as root switches to once its keys are loaded. Unset: a worker
  // started as root refuses to run.
  std::optional<std::string> user;
};

// Scale-out (docs/scale-out.md): the boxes that share the VIPs behind ECMP, the same list on every
// box. Read by weir-dataplane (the owner table, forwarding) and weir-control (announcements).
struct ClusterPeer {
  std::string name;     // the owner table ranks peers by name, so a name never changes
  Ipv4Address address;  // where other boxes send this box's forwarded packets
};

// weir-control's VIP announcements through BIRD 2 (docs/scale-out.md, "BGP: BIRD 2"): the routes
// it writes for BIRD to include, and BIRD's control socket it asks to reconfigure.
struct ClusterBird {
  std::string socket = "/run/bird/bird.ctl";
  std::string routes_file = "/run/weir/bird-routes.conf";
};

// Heartbeats between the boxes (docs/scale-out.md, "Membership"): each dataplane sends one to every
// peer every interval_ms; weir-control counts a peer silent for `missed` intervals gone.
struct ClusterHeartbeat {
  uint32_t interval_ms = 300;
  uint32_t missed = 3;
};

struct Cluster {
  std::string node;  // this box: one of peers
  ClusterHeartbeat heartbeat;
  std::vector<ClusterPeer> peers;
  size_t node_index = 0;            // peers[node_index].name == node
  std::optional<ClusterBird> bird;  // absent: weir-control announces nothing
};

struct Config {
  std::string source;  // the file it was read from, for messages
  uint32_t node_id = 0;
  Dataplane dataplane;
  Tcp tcp;
  Tls tls;
  std::vector<Listener> listeners;
  std::vector<Pool> pools;
  Control control;
  std::optional<Cluster> cluster;  // absent: a single box
};

struct LoadResult {
  std::shared_ptr<const Config> config;  // null unless every check passed
  std::vector<Diagnostic> errors;        // in file order
  bool ok() const { return config != nullptr; }
};

// The vdevs that EAL arguments create: device name -> the --vdev argument ("net_tap0,iface=x"),
// from both "--vdev=ARG" and "--vdev" "ARG".
std::map<std::string, std::string> vdev_arguments(const std::vector<std::string>& eal);

// Reads and validates. Never throws; every problem found is in `errors`.
LoadResult load_file(const std::string& path);
// The same from text in memory; `file_name` is what the diagnostics call it.
LoadResult load_string(std::string_view text, const std::string& file_name);

}  // namespace weir::config
