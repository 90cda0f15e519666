// Fuzz target for a proxied TCP session, in memory on a fake clock: a client stack, the proxy's
// worker (its own TCP stack and a Proxy with one tcp listener and one backend) and a backend stack,
// joined by a switch that hands every TCP segment to the fuzz script first. The client sends its
// data and half-closes; the backend sends its own on every connection it accepts and half-closes;
// both read everything. So both sides of the proxy, as client and as server, get the segment
// sequences the script makes: lost, duplicated, delayed, cut short, or forged (flags flipped,
// sequence and acknowledgment numbers moved, windows rewritten), with the clock jumping between
// them.
//
// Input: byte 0 bit 0: the listener sends a PROXY v2 header; bits 1-7: salt for the data bytes.
//        bytes 1-2, 3-4: the client's and the backend's data lengths (big-endian, mod 4097).
//        then 4-byte operations, one per TCP segment put on the wire, in order (see apply()).
// Invariants, abort() on violation:
//  - every application receives a prefix of what its peer's application sent (the backend: the
//    PROXY header, when configured, then the client's data), each byte once and in order, checked
//    as it arrives; forged segments never carry data at a moved sequence number, nor SYN;
//  - mbufs in use never exceed what the connections may hold by design (per connection: the
//    receive buffer, one mbuf per byte at worst, the send queue's segments, the out-of-order
//    store) and every one is back in the pool after teardown;
//  - when the script forged nothing (only loss, duplication, delay, cutting and silence), once
//    it is spent and the link is clean the session completes: all data both ways, the client
//    and the backend's connection closed by FIN, one backend connection, no connection left.
#include <rte_mbuf.h>
#include <rte_mempool.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "dataplane/net/checksum.h"
#include "dataplane/proxy/proxy.h"
#include "dataplane/proxy/proxy_v2.h"
#include "dataplane/tcp/tcp_stack.h"
#include "tests/support/dataplane_harness.h"
#include "tests/support/eal_environment.h"

namespace {

using namespace weir;
using test::Frame;

// Names the broken invariant before aborting, so that a crash report says which one.
#define check(condition)                                                               \
  do {                                                                                 \
    if (!(condition)) {                                                                \
      std::fprintf(stderr, "tcp_session_fuzz.cc:%d: invariant broken: %s\n", __LINE__, \
                   #condition);                                                        \
      std::abort();                                                                    \
    }                                                                                  \
  } while (false)

constexpr uint64_t kStepUs = 2000;
constexpr uint16_t kClientPort = 40000;
constexpr uint16_t kListenerPort = 80;
constexpr uint16_t kBackendPort = 8000;
constexpr uint8_t kFin = 0x01, kSyn = 0x02;
// Steps while the script runs, then with a clean link: enough, with the 200 ms RTO cap below,
// for any session the script did not break to finish.
constexpr uint64_t kScriptSteps = 3000, kCleanSteps = 5000, kSettleSteps = 500;
// The script's reach: at most this many operations, and clock jumps of this many steps in all.
// With the 200 ms RTO cap the longest silence a connection can see is then under 50 s (every
// operation a loss, every jump spent, the longest delay), shorter than TIME-WAIT below: a FIN
// sent again always finds its peer's TIME-WAIT, and no RST ends a session the script did not
// forge.
constexpr size_t kMaxOps = 128;
constexpr uint64_t kJumpBudgetSteps = 10'000;
constexpr uint64_t kTimeWaitUs = 60'000'000;
// SYN-RECEIVED and FIN-WAIT-2 last this long at most, beyond any silence too. An old duplicate
// SYN that finds its connection closed on the passive side makes a half-open connection there
// (the active side, in TIME-WAIT, answers its SYN-ACK with an ACK, not a RST), which only this
// timeout ends.
constexpr uint64_t kLongestTimerUs = 120'000'000;

// Small windows and send budgets: zero windows, persist probes, silly-window avoidance.
constexpr uint32_t kBufferBytes = 2048;
constexpr uint32_t kSendSegments = 16;

tcp::TcpSettings settings() {
  tcp::TcpSettings s;
  s.min_rto_us = 10'000;
  s.max_rto_us = 200'000;
  s.time_wait_us = kTimeWaitUs;
  s.delayed_ack_us = 4'000;
  s.max_connections = 8;
  s.receive_buffer = kBufferBytes;
  s.send_buffer = kBufferBytes;
  s.max_send_segments = kSendSegments;
  s.out_of_order_segments = 256;
  // Loss alone must not end a connection: liveness is checked.
  s.max_retransmissions = 100'000;
  s.syn_ack_retries = 100'000;
  s.syn_received_timeout_us = kLongestTimerUs;
  s.fin_wait2_timeout_us = kLongestTimerUs;
  return s;
}

// The most mbufs one connection may hold: in-order data up to the receive buffer (one byte per
// mbuf at worst), the send queue's segments, the out-of-order store, and a few in flight.
constexpr size_t kMbufsPerConnection =
    kBufferBytes + kSendSegments + tcp::TcpStack::kOutOfOrderPerConnection + 8;

std::vector<uint8_t> stream_bytes(size_t n, uint8_t salt) {
  std::vector<uint8_t> bytes(n);
  for (size_t i = 0; i < n; ++i) bytes[i] = static_cast<uint8_t>((i * 2654435761u) >> 24) ^ salt;
  return bytes;
}

// One node: a port in memory, the layer 2/3 stack on it, and TCP above that.
struct Node {
  Node(const net::StackConfig& config, rte_mempool* pool, uint8_t secret, uint64_t now)
      : port(config, pool), tcp(settings(), *port.stack, pool, counters, tcp::Secret{secret}, now) {
    port.stack->set_transport(&tcp);
  }
  test::StackPortHarness port;
  dataplane::TcpCounters counters{};
  tcp::TcpStack tcp;
};

// Sends `data` through the send budget, then half-closes; checks what arrives against `expected`.
class Peer : public tcp::ConnectionHandler {
 public:
  Peer(tcp::TcpStack& tcp, rte_mempool* pool, const std::vector<uint8_t>& data,
       const std::vector<uint8_t>& expected)
      : tcp_(tcp), pool_(pool), data_(data), expected_(expected) {}
  void on_established(tcp::Connection& c) override { pump(c); }
  void on_writable(tcp::Connection& c) override { pump(c); }
  void on_data(tcp::Connection& c, rte_mbuf* m) override {
    for (rte_mbuf* seg = m; seg != nullptr; seg = seg->next) {
      const auto* p = rte_pktmbuf_mtod(seg, const uint8_t*);
      check(received + seg->data_len <= expected_.size());
      check(std::memcmp(p, expected_.data() + received, seg->data_len) == 0);
      received += seg->data_len;
    }
    tcp_.consumed(c, rte_pktmbuf_pkt_len(m), tcp_.now_us());
    rte_pktmbuf_free(m);
  }
  void on_closed(tcp::Connection&, tcp::CloseReason r) override {
    closed = true;
    reason = r;
  }

  size_t received = 0;
  bool closed = false;
  tcp::CloseReason reason = tcp::CloseReason::aborted;

 private:
  void pump(tcp::Connection& c) {
    while (sent_ < data_.size()) {
      const size_t n = std::min<size_t>(700, data_.size() - sent_);
      rte_mbuf* m = rte_pktmbuf_alloc(pool_);
      check(m != nullptr);
      std::memcpy(rte_pktmbuf_append(m, static_cast<uint16_t>(n)), data_.data() + sent_, n);
      if (!tcp_.send(c, m, tcp_.now_us())) {
        rte_pktmbuf_free(m);
        return;  // on_writable resumes
      }
      sent_ += n;
    }
    if (!shut_) {
      shut_ = true;
      tcp_.shutdown_write(c, tcp_.now_us());
    }
  }

  tcp::TcpStack& tcp_;
  rte_mempool* pool_;
  const std::vector<uint8_t>& data_;
  const std::vector<uint8_t>& expected_;
  size_t sent_ = 0;
  bool shut_ = false;
};

// The backend: a Peer per accepted connection.
class Backend final : public tcp::ListenerHandler {
 public:
  Backend(tcp::TcpStack& tcp, rte_mempool* pool, const std::vector<uint8_t>& data,
          const std::vector<uint8_t>& expected)
      : tcp_(tcp), pool_(pool), data_(data), expected_(expected) {}
  tcp::ConnectionHandler* accept(tcp::Connection&) override {
    peers.push_back(std::make_unique<Peer>(tcp_, pool_, data_, expected_));
    return peers.back().get();
  }
  std::vector<std::unique_ptr<Peer>> peers;

 private:
  tcp::TcpStack& tcp_;
  rte_mempool* pool_;
  const std::vector<uint8_t>& data_;
  const std::vector<uint8_t>& expected_;
};

struct InFlight {
  uint64_t due_step;
  int to;
  Frame frame;
};

// Where a TCP segment's parts are in a frame: Ethernet, IPv4, TCP, the header lengths read from
// the frame.
struct SegmentAt {
  size_t ip = 14, tcp = 0, payload = 0, end = 0;
};

bool tcp_segment(const Frame& f, SegmentAt& at) {
  if (f.size() < 34 || f[12] != 0x08 || f[13] != 0x00 || f[23] != 6) return false;
  at.tcp = at.ip + (f[14] & 0x0F) * 4u;
  at.end = at.ip + (size_t{f[16]} << 8 | f[17]);
  if (at.tcp + 20 > at.end || at.end > f.size()) return false;
  at.payload = at.tcp + (f[at.tcp + 12] >> 4) * 4u;
  return at.payload <= at.end;
}

uint32_t load32(const Frame& f, size_t at) {
  return uint32_t{f[at]} << 24 | uint32_t{f[at + 1]} << 16 | uint32_t{f[at + 2]} << 8 | f[at + 3];
}
void store32(Frame& f, size_t at, uint32_t v) {
  for (int i = 0; i < 4; ++i) f[at + i] = static_cast<uint8_t>(v >> (24 - 8 * i));
}

// WEIR_FUZZ_TRACE=1 prints every TCP segment as it is delivered, to read a failing input by.
void trace(uint64_t step, int to, const Frame& f) {
  static const bool on = std::getenv("WEIR_FUZZ_TRACE") != nullptr;
  SegmentAt seg;
  if (!on || !tcp_segment(f, seg)) return;
  static const char* const kNames[3] = {"client", "middle", "backend"};
  std::fprintf(stderr, "%lu -> %s %u>%u flags=%02x seq=%u ack=%u win=%u len=%zu\n",
               static_cast<unsigned long>(step), kNames[to], f[seg.tcp] << 8 | f[seg.tcp + 1],
               f[seg.tcp + 2] << 8 | f[seg.tcp + 3], f[seg.tcp + 13], load32(f, seg.tcp + 4),
               load32(f, seg.tcp + 8), f[seg.tcp + 14] << 8 | f[seg.tcp + 15],
               seg.end - seg.payload);
}

// Cuts the payload to `keep` bytes and puts the checksums right.
void reshape(Frame& f, const SegmentAt& at, size_t keep) {
  const size_t end = at.payload + keep;
  f.resize(end);
  const size_t total = end - at.ip;
  f[16] = static_cast<uint8_t>(total >> 8);
  f[17] = static_cast<uint8_t>(total);
  f[24] = f[25] = 0;
  const uint16_t ip_sum =
      net::internet_checksum(std::span<const uint8_t>(f).subspan(at.ip, at.tcp - at.ip));
  f[24] = static_cast<uint8_t>(ip_sum >> 8);
  f[25] = static_cast<uint8_t>(ip_sum);
  f[at.tcp + 16] = f[at.tcp + 17] = 0;
  const uint16_t sum =
      net::ipv4_transport_checksum(net::Ipv4Address(load32(f, 26)), net::Ipv4Address(load32(f, 30)),
                                   6, std::span<const uint8_t>(f).subspan(at.tcp, end - at.tcp));
  f[at.tcp + 16] = static_cast<uint8_t>(sum >> 8);
  f[at.tcp + 17] = static_cast<uint8_t>(sum);
}

class Script {
 public:
  explicit Script(std::span<const uint8_t> ops)
      : ops_(ops.first(std::min(ops.size(), 4 * kMaxOps))) {}
  bool spent() const { return at_ + 4 > ops_.size(); }
  bool forged() const { return forged_; }

  // What happens to one TCP segment on its way to node `to`: it joins `wire` (or not, or twice,
  // or altered), and the clock may jump.
  void apply(Frame frame, int to, uint64_t& step, std::vector<InFlight>& wire) {
    if (spent()) {
      wire.push_back({step + 1, to, std::move(frame)});
      return;
    }
    const uint8_t kind = ops_[at_], a = ops_[at_ + 1], b = ops_[at_ + 2], c = ops_[at_ + 3];
    at_ += 4;
    SegmentAt seg;
    tcp_segment(frame, seg);
    const size_t payload = seg.end - seg.payload;
    switch (kind % 8) {
      case 0:  // on time, or a little late
        wire.push_back({step + 1 + a % 4, to, std::move(frame)});
        break;
      case 1:  // lost
        break;
      case 2:  // duplicated
        wire.push_back({step + 1 + a, to, frame});
        wire.push_back({step + 1, to, std::move(frame)});
        break;
      case 3:  // overtaken by later segments
        wire.push_back({step + 1 + (size_t{a} << (b % 3)), to, std::move(frame)});
        break;
      case 4: {  // cut short, as a smaller segment of the same bytes (so without the FIN)
        const size_t keep = payload == 0 ? 0 : a % payload;
        if (keep < payload) {
          frame[seg.tcp + 13] &= static_cast<uint8_t>(~kFin);
          reshape(frame, seg, keep);
        }
        wire.push_back({step + 1, to, std::move(frame)});
        break;
      }
      case 5: {  // a forged copy: flags flipped, numbers moved; the original too unless bit 7
        forged_ = true;
        Frame forged = frame;
        const int32_t seq_move = static_cast<int8_t>(b) * (1 << (c % 12));
        const int32_t ack_move = static_cast<int8_t>(c) * (1 << (b % 12));
        forged[seg.tcp + 13] = static_cast<uint8_t>((forged[seg.tcp + 13] ^ a) & 0x3F & ~kSyn);
        store32(forged, seg.tcp + 4, load32(forged, seg.tcp + 4) + static_cast<uint32_t>(seq_move));
        store32(forged, seg.tcp + 8, load32(forged, seg.tcp + 8) + static_cast<uint32_t>(ack_move));
        // Bytes only ever travel at their own sequence numbers.
        reshape(forged, seg, seq_move == 0 ? payload : 0);
        wire.push_back({step + 1, to, std::move(forged)});
        if (!(kind & 0x80)) wire.push_back({step + 1, to, std::move(frame)});
        break;
      }
      case 6: {  // a rewritten window
        forged_ = true;
        frame[seg.tcp + 14] = a;
        frame[seg.tcp + 15] = b;
        reshape(frame, seg, payload);
        wire.push_back({step + 1 + c % 4, to, std::move(frame)});
        break;
      }
      case 7: {  // silence: the clock jumps, then the segment arrives
        const uint64_t jump = std::min<uint64_t>(1 + (size_t{a} << (b % 4)), jump_budget_);
        jump_budget_ -= jump;
        step += jump;
        wire.push_back({step + 1, to, std::move(frame)});
        break;
      }
    }
  }

 private:
  std::span<const uint8_t> ops_;
  size_t at_ = 0;
  bool forged_ = false;
  uint64_t jump_budget_ = kJumpBudgetSteps;
};

rte_mempool* mbuf_pool() {
  static rte_mempool* pool = [] {
    rte_mempool* p = test::start_eal("weir-fuzz-tcp", 16383);
    check(p != nullptr);
    return p;
  }();
  return pool;
}

void run(std::span<const uint8_t> input) {
  rte_mempool* pool = mbuf_pool();
  const bool proxy_v2 = input[0] & 1;
  const auto salt = static_cast<uint8_t>(input[0] >> 1);
  const std::vector<uint8_t> client_data =
      stream_bytes((size_t{input[1]} << 8 | input[2]) % 4097, salt);
  const std::vector<uint8_t> backend_data =
      stream_bytes((size_t{input[3]} << 8 | input[4]) % 4097, static_cast<uint8_t>(~salt));
  // What the backend should read: the PROXY header, if configured, then the client's data.
  const size_t header_size = proxy_v2 ? proxy::kProxyV2Ipv4HeaderSize : 0;
  std::vector<uint8_t> to_backend(header_size + client_data.size());
  if (proxy_v2) {
    const auto header = proxy::proxy_v2_header(
        {test::kClientIp.value(), test::kVip.value(), kClientPort, kListenerPort});
    std::copy(header.begin(), header.end(), to_backend.begin());
  }
  std::copy(client_data.begin(), client_data.end(), to_backend.begin() + header_size);
  Script script(input.subspan(5));

  const test::MbufLeakCheck mbufs(pool);
  uint64_t step = 1000;
  {
    Node client(test::one_port_config(test::kClientMac, test::kClientIp), pool, 1, step * kStepUs);
    Node middle(test::harness_port_config(), pool, 2, step * kStepUs);
    Node backend(test::one_port_config(test::kBackendMac, test::kBackendIp), pool, 3,
                 step * kStepUs);
    Peer client_app(client.tcp, pool, client_data, backend_data);
    Backend backend_app(backend.tcp, pool, backend_data, to_backend);
    check(backend.tcp.listen(test::kBackendIp, kBackendPort, &backend_app, 4));

    auto plan = std::make_shared<proxy::PoolPlan>(proxy::PoolPlan{
        "app",
        {proxy::BackendPlan{"b1", test::kBackendIp, kBackendPort, 1}},
        maglev::Table::build(
            std::vector<maglev::Backend>{{"b1", test::kBackendIp.value(), kBackendPort, 1, true}},
            101),
        maglev::FlowKey::five_tuple,
        2,
        0,
        600'000'000});
    proxy::ListenerPlan listener;
    listener.name = "web";
    listener.address = test::kVip;
    listener.port = kListenerPort;
    listener.proxy_protocol_v2 = proxy_v2;
    listener.max_connections = 4;
    auto proxy = std::make_unique<proxy::Proxy>(
        middle.tcp, *middle.port.stack, pool,
        std::vector<std::shared_ptr<const proxy::PoolPlan>>{plan},
        std::vector<proxy::ListenerPlan>{listener}, dataplane::FlowOwnership{});
    proxy->start();

    const tcp::FourTuple tuple{test::kClientIp.value(), test::kVip.value(), kClientPort,
                               kListenerPort};
    check(client.tcp.connect(0, tuple, &client_app, step * kStepUs) != nullptr);

    Node* nodes[3] = {&client, &middle, &backend};
    const net::MacAddress macs[3] = {test::kClientMac, test::kPortMac, test::kBackendMac};
    std::vector<InFlight> wire;
    // Every application has seen its connection close; TIME-WAIT may hold the connections.
    auto done = [&] {
      bool closed = client_app.closed && wire.empty() && proxy->sessions() == 0;
      for (const auto& peer : backend_app.peers) closed = closed && peer->closed;
      return closed;
    };
    auto connections = [&] {
      return client.tcp.connections() + middle.tcp.connections() + backend.tcp.connections();
    };
    uint64_t script_end = 0;
    for (uint64_t n = 0;; ++n, ++step) {
      if (script_end == 0 && (script.spent() || n >= kScriptSteps)) script_end = n;
      // What the nodes sent in the last step goes on the wire first, so that "nothing on the
      // wire" below includes it.
      for (int from = 0; from < 3; ++from) {
        for (Frame& frame : nodes[from]->port.take_sent()) {
          const net::MacAddress dst = net::MacAddress::load(frame.data());
          for (int to = 0; to < 3; ++to) {
            if (to == from || (dst != macs[to] && !dst.is_broadcast())) continue;
            SegmentAt seg;
            if (tcp_segment(frame, seg) && script_end == 0) {
              script.apply(frame, to, step, wire);
            } else {
              wire.push_back({step + 1, to, frame});
            }
          }
        }
      }
      if (script_end != 0 &&
          (done() || n - script_end >= (script.forged() ? kSettleSteps : kCleanSteps)))
        break;
      const uint64_t now = step * kStepUs;
      for (size_t i = 0; i < wire.size();) {
        if (wire[i].due_step > step) {
          ++i;
          continue;
        }
        trace(step, wire[i].to, wire[i].frame);
        nodes[wire[i].to]->port.deliver(wire[i].frame, now);
        wire[i] = std::move(wire.back());
        wire.pop_back();
      }
      for (Node* node : nodes) {
        node->port.stack->tick(now);
        node->tcp.tick(now);
      }
      proxy->tick(now);
      check(mbufs.leaked() <= static_cast<int64_t>((connections() + 1) * kMbufsPerConnection));
    }
    // TIME-WAIT and every other timer run out, with nothing on the wire.
    const bool finished = done();
    step += kLongestTimerUs / kStepUs + 1;
    for (Node* node : nodes) {
      node->port.stack->tick(step * kStepUs);
      node->tcp.tick(step * kStepUs);
    }
    proxy->tick(step * kStepUs);
    if (std::getenv("WEIR_FUZZ_TRACE") != nullptr) {
      std::fprintf(stderr,
                   "end at step %lu: client received %zu of %zu, closed %d; backend "
                   "connections %zu; connections %zu %zu %zu; sessions %zu\n",
                   static_cast<unsigned long>(step), client_app.received, backend_data.size(),
                   client_app.closed, backend_app.peers.size(), client.tcp.connections(),
                   middle.tcp.connections(), backend.tcp.connections(), proxy->sessions());
      std::fprintf(stderr, "  client closed by %s\n", tcp::name_of(client_app.reason));
      for (const auto& peer : backend_app.peers)
        std::fprintf(stderr, "  backend peer received %zu of %zu, closed %d by %s\n",
                     peer->received, to_backend.size(), peer->closed, tcp::name_of(peer->reason));
    }
    if (!script.forged()) {
      check(finished);
      check(connections() == 0);
      check(client_app.reason == tcp::CloseReason::fin);
      check(client_app.received == backend_data.size());
      check(backend_app.peers.size() == 1);
      check(backend_app.peers[0]->received == to_backend.size());
      // Closed by FIN: the client's FIN reached the backend (on_closed(fin) stands for
      // on_peer_fin when the FIN takes the connection to TIME-WAIT, as proxy.cc notes).
      check(backend_app.peers[0]->closed);
      check(backend_app.peers[0]->reason == tcp::CloseReason::fin);
    }
    proxy.reset();
  }
  check(mbufs.leaked() == 0);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 5) return 0;
  run(std::span<const uint8_t>(data, size));
  return 0;
}
