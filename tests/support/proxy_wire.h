// Proxied transactions with no NIC and no kernel, for the bench and the tests that need many of
// them: the seed's transaction (connect, send 4 KiB, receive the 4 KiB echoed, close) through a
// real Worker with a `tcp` listener, between a client and a backend that are Weir's own TCP stacks
// on in-memory ports, on a fake clock. The "wire" copies every frame into a fresh mbuf, as a
// driver fills its ring. Every echoed byte is compared.
#pragma once

#include <rte_mbuf.h>

#include <cstring>
#include <ctime>
#include <deque>
#include <memory>
#include <optional>
#include <unordered_map>
#include <vector>

#include "dataplane/tcp/services.h"
#include "dataplane/tcp/tcp_stack.h"
#include "dataplane/worker.h"
#include "tests/support/dataplane_harness.h"

namespace weir::test {

inline constexpr uint16_t kWireBackendPort = 8000;
inline constexpr uint32_t kRequestBytes = 4096;
inline constexpr uint64_t kTimeWaitUs = 1000;  // fake time: ports come back quickly
inline constexpr uint64_t kRoundUs = 10;       // fake time per round of the wire

inline uint64_t monotonic_us() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000u + static_cast<uint64_t>(ts.tv_nsec) / 1000u;
}

inline uint8_t pattern_byte(uint32_t transaction, uint32_t offset) {
  return static_cast<uint8_t>(transaction * 131 + offset * 7 + (offset >> 8));
}

// The load balancer's port: frames the wire delivers wait in `rx`; what it transmits is kept,
// as the device would send it, until the wire takes it.
class WireIo final : public ::weir::dataplane::PacketIo {
 public:
  ~WireIo() override {
    for (rte_mbuf* m : rx) rte_pktmbuf_free(m);
    for (rte_mbuf* m : tx) rte_pktmbuf_free(m);
  }
  ::weir::dataplane::PortIndex port_count() const override { return 1; }
  uint16_t receive(::weir::dataplane::PortIndex, rte_mbuf** packets, uint16_t max) override {
    uint16_t n = 0;
    while (n < max && !rx.empty()) {
      packets[n++] = rx.front();
      rx.pop_front();
    }
    received += n;
    ++receive_calls;
    return n;
  }
  uint16_t transmit(::weir::dataplane::PortIndex, rte_mbuf** packets, uint16_t count) override {
    for (uint16_t i = 0; i < count; ++i) tx.push_back(packets[i]);
    transmitted += count;
    ++transmit_calls;
    return count;
  }
  std::deque<rte_mbuf*> rx;
  std::vector<rte_mbuf*> tx;
  uint64_t received = 0, transmitted = 0, receive_calls = 0, transmit_calls = 0;
};

// The client: keeps `concurrency` transactions open, each a connection that sends a 4 KiB request
// once established, reads the echo, checks it and closes.
class Clients final : public ::weir::tcp::ConnectionHandler {
 public:
  Clients(::weir::tcp::TcpStack& tcp, rte_mempool* pool, uint32_t concurrency)
      : tcp_(tcp), pool_(pool), concurrency_(concurrency) {}

  void top_up(uint64_t now_us) {
    while (open_.size() < concurrency_) {
      const ::weir::tcp::FourTuple tuple{kClientIp.value(), kVip.value(), next_port_, 80};
      next_port_ = next_port_ == 65535 ? 1024 : static_cast<uint16_t>(next_port_ + 1);
      ::weir::tcp::Connection* c = tcp_.connect(0, tuple, this, now_us);
      if (c == nullptr) return;  // the 4-tuple is still in TIME-WAIT: try the next round
      open_[c] = Transaction{started_++, 0};
    }
  }

  void on_established(::weir::tcp::Connection& c) override {
    const uint32_t id = open_.at(&c).id;
    rte_mbuf* head = nullptr;
    for (uint32_t offset = 0; offset < kRequestBytes;) {
      rte_mbuf* m = rte_pktmbuf_alloc(pool_);
      const uint32_t n = std::min<uint32_t>(kRequestBytes - offset, rte_pktmbuf_tailroom(m));
      auto* data = reinterpret_cast<uint8_t*>(rte_pktmbuf_append(m, static_cast<uint16_t>(n)));
      for (uint32_t i = 0; i < n; ++i) data[i] = pattern_byte(id, offset + i);
      if (head == nullptr) {
        head = m;
      } else {
        rte_pktmbuf_chain(head, m);
      }
      offset += n;
    }
    if (!tcp_.send(c, head, tcp_.now_us())) {
      rte_pktmbuf_free(head);
      ++failures;
      tcp_.abort(c, tcp_.now_us());
    }
  }
  void on_data(::weir::tcp::Connection& c, rte_mbuf* data) override {
    Transaction& t = open_.at(&c);
    const uint32_t length = rte_pktmbuf_pkt_len(data);
    uint32_t offset = 0;
    for (rte_mbuf* m = data; m != nullptr; m = m->next) {
      const auto* bytes = rte_pktmbuf_mtod(m, const uint8_t*);
      for (uint16_t i = 0; i < m->data_len; ++i, ++offset) {
        if (bytes[i] != pattern_byte(t.id, t.received + offset)) ++mismatched_bytes;
      }
    }
    t.received += length;
    rte_pktmbuf_free(data);
    tcp_.consumed(c, length, tcp_.now_us());
    if (t.received >= kRequestBytes) tcp_.shutdown_write(c, tcp_.now_us());
  }
  void on_closed(::weir::tcp::Connection& c, ::weir::tcp::CloseReason reason) override {
    const auto it = open_.find(&c);
    if (it == open_.end()) return;
    if (reason == ::weir::tcp::CloseReason::fin && it->second.received == kRequestBytes) {
      ++completed;
    } else {
      ++failures;
    }
    open_.erase(it);
  }

  uint64_t completed = 0;
  uint64_t failures = 0;
  uint64_t mismatched_bytes = 0;

 private:
  struct Transaction {
    uint32_t id = 0;
    uint32_t received = 0;
  };
  ::weir::tcp::TcpStack& tcp_;
  rte_mempool* pool_;
  uint32_t concurrency_;
  uint16_t next_port_ = 1024;
  uint32_t started_ = 0;
  std::unordered_map<::weir::tcp::Connection*, Transaction> open_;
};

// A peer host (the client or the backend): Weir's L2/L3 stack and TCP on an in-memory port.
struct PeerHost {
  PeerHost(::weir::net::MacAddress mac, ::weir::net::Ipv4Address address, rte_mempool* pool)
      : port(one_port_config(mac, address), pool) {
    ::weir::tcp::TcpSettings settings;
    settings.max_connections = 1024;
    settings.time_wait_us = kTimeWaitUs;
    settings.max_time_wait = 1024;
    tcp = std::make_unique<::weir::tcp::TcpStack>(settings, *port.stack, pool, counters,
                                                  ::weir::tcp::Secret{7}, monotonic_us());
    port.stack->set_transport(tcp.get());
  }
  StackPortHarness port;
  ::weir::dataplane::TcpCounters counters{};
  std::unique_ptr<::weir::tcp::TcpStack> tcp;
};

inline ::weir::dataplane::WorkerSettings proxy_worker_settings() {
  ::weir::dataplane::WorkerSettings settings;
  settings.tcp.max_connections = 2048;
  settings.tcp.time_wait_us = kTimeWaitUs;
  settings.tcp.max_time_wait = 1024;
  settings.pools.push_back(std::make_shared<::weir::proxy::PoolPlan>(
      ::weir::proxy::PoolPlan{"app",
                              {::weir::proxy::BackendPlan{"b1", kBackendIp, kWireBackendPort, 1}},
                              ::weir::maglev::Table::build(
                                  std::vector<::weir::maglev::Backend>{
                                      {"b1", kBackendIp.value(), kWireBackendPort, 1, true}},
                                  101),
                              ::weir::maglev::FlowKey::five_tuple,
                              2}));
  ::weir::proxy::ListenerPlan listener;
  listener.name = "web";
  listener.address = kVip;
  listener.port = 80;
  listener.max_connections = 1024;
  settings.proxied.push_back(listener);
  return settings;
}

// Moves frames between the hosts: everything the peers sent goes into the worker's RX queue (a
// fresh mbuf each, as a driver copies from its ring); everything the worker sent goes to the peer
// its destination MAC names (both for a broadcast).
class Wire {
 public:
  Wire(WireIo& lb, PeerHost& client, PeerHost& backend, rte_mempool* pool)
      : lb_(lb), client_(client), backend_(backend), pool_(pool) {}

  void from_peers() {
    for (PeerHost* host : {&client_, &backend_}) {
      for (const Frame& frame : host->port.take_sent()) {
        rte_mbuf* m = rte_pktmbuf_alloc(pool_);
        std::memcpy(rte_pktmbuf_append(m, static_cast<uint16_t>(frame.size())), frame.data(),
                    frame.size());
        lb_.rx.push_back(m);
      }
    }
  }
  void to_peers(uint64_t now_us) {
    for (rte_mbuf* m : lb_.tx) {
      Frame frame(rte_pktmbuf_pkt_len(m));
      const void* p = rte_pktmbuf_read(m, 0, static_cast<uint32_t>(frame.size()), frame.data());
      if (p != frame.data()) std::memcpy(frame.data(), p, frame.size());
      rte_pktmbuf_free(m);
      const auto destination = ::weir::net::MacAddress::load(frame.data());
      if (destination == kClientMac || destination.is_broadcast())
        client_.port.deliver(frame, now_us);
      if (destination == kBackendMac || destination.is_broadcast())
        backend_.port.deliver(frame, now_us);
    }
    lb_.tx.clear();
  }

 private:
  WireIo& lb_;
  PeerHost& client_;
  PeerHost& backend_;
  rte_mempool* pool_;
};

// The three hosts and the wire. round() is one turn: the client opens what it may, both peers run
// their timers and send, the worker polls once, and what it sent is delivered.
class ProxyWireBed {
 public:
  ProxyWireBed(rte_mempool* pool, uint32_t concurrency,
               std::optional<uint64_t> start_phase_us = std::nullopt)
      : client(kClientMac, kClientIp, pool),
        backend(kBackendMac, kBackendIp, pool),
        echo(*backend.tcp),
        clients(*client.tcp, pool, concurrency) {
    backend.tcp->listen(kBackendIp, kWireBackendPort, &echo, 1024);
    auto io = std::make_unique<WireIo>();
    lb_io = io.get();
    worker = std::make_unique<::weir::dataplane::Worker>(proxy_worker_settings(), std::move(io),
                                                         harness_port_config(), pool);
    wire = std::make_unique<Wire>(*lb_io, client, backend, pool);
    // Not before the worker's TCP read the clock: a time earlier than its start would make
    // its timer wheel fire deadlines at once (under valgrind the worker takes a while to build).
    now_us = monotonic_us();
    // A phase pins where the fake clock starts within the worker's 1 ms timer tick: which
    // deadlines share a tick with which packets depends on it (tests try several).
    if (start_phase_us) now_us = (now_us / 1000 + 1) * 1000 + *start_phase_us;
  }
  // The worker first: its sessions hold none of the peers' mbufs.
  ~ProxyWireBed() {
    wire.reset();
    worker.reset();
  }

  void round() {
    clients.top_up(now_us);
    client.tcp->tick(now_us);
    backend.tcp->tick(now_us);
    wire->from_peers();
    worker->poll_once(now_us);
    wire->to_peers(now_us);
    now_us += kRoundUs;
    ++rounds;
  }
  // Rounds until `completed` transactions have, a failure or `max_rounds`; whether it got there.
  bool run_until(uint64_t completed, uint64_t max_rounds) {
    const uint64_t limit = rounds + max_rounds;
    while (clients.completed < completed && clients.failures == 0 && rounds < limit) round();
    return clients.completed >= completed;
  }

  PeerHost client;
  PeerHost backend;
  ::weir::tcp::EchoService echo;
  Clients clients;
  WireIo* lb_io = nullptr;  // the worker's
  std::unique_ptr<::weir::dataplane::Worker> worker;
  std::unique_ptr<Wire> wire;
  // The worker's TCP starts its clock from CLOCK_MONOTONIC; the fake one carries on from there.
  uint64_t now_us = 0;
  uint64_t rounds = 0;
};

}  // namespace weir::test
