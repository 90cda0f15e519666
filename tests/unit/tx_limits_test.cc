// Devices that cannot send what TCP builds: a data segment is a chain (a header mbuf, then the
// payload as indirect mbufs over the send queue). The in-memory port here punishes a chain beyond
// its limit as real devices do (MemoryIo::set_tx_limits: net_af_xdp sends the first mbuf's bytes
// only, i40e stops its queue), so TxBuffers must copy such chains into ones the device takes.
#include "dataplane/tx_buffers.h"

#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <random>
#include <vector>

#include "dataplane/net/stack.h"
#include "dataplane/tcp/services.h"
#include "dataplane/tcp/tcp_stack.h"
#include "tests/support/dataplane_harness.h"
#include "tests/support/eal_environment.h"
#include "tests/support/memory_io.h"

namespace weir::dataplane {
namespace {

using test::Frame;

// A chain of `pieces` mbufs holding `bytes` (split as evenly as it goes), each piece after the
// first an indirect mbuf over a buffer of its own, as TCP's payload pieces are.
rte_mbuf* make_chain(rte_mempool* pool, const std::vector<uint8_t>& bytes, uint16_t pieces) {
  const size_t per_piece = bytes.size() / pieces;
  rte_mbuf* head = nullptr;
  size_t offset = 0;
  for (uint16_t i = 0; i < pieces; ++i) {
    const size_t n = i + 1 == pieces ? bytes.size() - offset : per_piece;
    rte_mbuf* direct = rte_pktmbuf_alloc(pool);
    EXPECT_NE(direct, nullptr);
    std::memcpy(rte_pktmbuf_append(direct, static_cast<uint16_t>(n)), bytes.data() + offset, n);
    rte_mbuf* m = direct;
    if (i > 0) {
      m = rte_pktmbuf_alloc(pool);
      rte_pktmbuf_attach(m, direct);
      rte_pktmbuf_free(direct);  // the indirect mbuf holds the only reference now
    }
    if (head == nullptr) {
      head = m;
    } else {
      EXPECT_EQ(rte_pktmbuf_chain(head, m), 0);
    }
    offset += n;
  }
  return head;
}

// A second reference to every mbuf of `chain` (reference counts are per mbuf), as another holder
// of the same chain would have; rte_pktmbuf_free(chain) gives it back.
void hold(rte_mbuf* chain) {
  for (rte_mbuf* m = chain; m != nullptr; m = m->next) rte_mbuf_refcnt_update(m, 1);
}

std::vector<uint8_t> pattern(size_t n, uint32_t seed) {
  std::vector<uint8_t> bytes(n);
  std::mt19937 rng(seed);
  for (auto& b : bytes) b = static_cast<uint8_t>(rng());
  return bytes;
}

struct Port {
  explicit Port(TxLimits limits, rte_mempool* pool = test::test_mbuf_pool()) : io(1, pool) {
    io.set_tx_limits(limits);
  }
  uint64_t dropped(DropReason reason) const { return counters[0].dropped(reason); }
  test::MemoryIo io;
  std::array<PortCounters, kMaxPorts> counters{};
  TxBuffers tx{io, counters};
};

TEST(TxLimits, AChainIsCopiedIntoOneMbufForADeviceThatCannotChain) {
  const test::MbufLeakCheck mbufs(test::test_mbuf_pool());
  const std::vector<uint8_t> bytes = pattern(1514, 1);
  {
    Port port(TxLimits{.max_segments = 1});
    port.tx.send(0, make_chain(test::test_mbuf_pool(), bytes, 4));
    port.tx.flush_all();
    const std::vector<Frame> sent = port.io.drain(0);
    ASSERT_EQ(sent.size(), 1u);
    EXPECT_EQ(sent[0], bytes);
    EXPECT_EQ(port.io.tx_violations(), 0u);
    EXPECT_EQ(port.counters[0].tx_linearised.get(), 1u);
    EXPECT_EQ(port.counters[0].tx_packets.get(), 1u);
    EXPECT_EQ(port.counters[0].tx_bytes.get(), bytes.size());
  }
  EXPECT_EQ(mbufs.leaked(), 0);
}

TEST(TxLimits, AChainWithinTheLimitGoesAsItIs) {
  const std::vector<uint8_t> bytes = pattern(900, 2);
  Port port(TxLimits{.max_segments = 3});
  port.tx.send(0, make_chain(test::test_mbuf_pool(), bytes, 3));
  port.tx.flush_all();
  EXPECT_EQ(port.io.drain(0), std::vector<Frame>{bytes});
  EXPECT_EQ(port.counters[0].tx_linearised.get(), 0u);
}

TEST(TxLimits, WithoutTheCopyTheDevicesPunishTheChain) {
  // The reason for the above: the in-memory devices do what real ones do with a chain beyond
  // their limit when nothing fits it to them.
  const std::vector<uint8_t> bytes = pattern(1000, 3);
  test::MemoryIo af_xdp(1, test::test_mbuf_pool());
  af_xdp.set_tx_limits(TxLimits{.max_segments = 1});
  rte_mbuf* chain = make_chain(test::test_mbuf_pool(), bytes, 3);
  ASSERT_EQ(af_xdp.transmit(0, &chain, 1), 1);
  const std::vector<Frame> garbled = af_xdp.drain(0);
  ASSERT_EQ(garbled.size(), 1u);
  EXPECT_EQ(garbled[0].size(), bytes.size());
  EXPECT_NE(garbled[0], bytes);
  EXPECT_EQ(af_xdp.tx_violations(), 1u);

  test::MemoryIo i40e(1, test::test_mbuf_pool());
  i40e.set_tx_limits(TxLimits{.max_segments = 2});
  std::array<rte_mbuf*, 2> burst = {make_chain(test::test_mbuf_pool(), bytes, 3),
                                    make_chain(test::test_mbuf_pool(), bytes, 1)};
  EXPECT_EQ(i40e.prepare(0, burst.data(), 2), 0);
  EXPECT_EQ(i40e.transmit(0, burst.data(), 2), 0);
  EXPECT_TRUE(i40e.tx_stopped());
  for (rte_mbuf* m : burst) rte_pktmbuf_free(m);
}

TEST(TxLimits, ASharedHeadIsCopiedAndTheOtherHolderKeepsItsChain) {
  // A first mbuf with another reference (or indirect) cannot take the payload in place.
  const std::vector<uint8_t> bytes = pattern(1200, 4);
  Port port(TxLimits{.max_segments = 1});
  rte_mbuf* chain = make_chain(test::test_mbuf_pool(), bytes, 3);
  hold(chain);
  port.tx.send(0, chain);
  port.tx.flush_all();
  EXPECT_EQ(port.io.drain(0), std::vector<Frame>{bytes});
  EXPECT_EQ(port.counters[0].tx_linearised.get(), 1u);
  ASSERT_EQ(chain->nb_segs, 3);
  std::vector<uint8_t> kept(rte_pktmbuf_pkt_len(chain));
  const void* p = rte_pktmbuf_read(chain, 0, static_cast<uint32_t>(kept.size()), kept.data());
  if (p != kept.data()) std::memcpy(kept.data(), p, kept.size());
  EXPECT_EQ(kept, bytes);
  rte_pktmbuf_free(chain);
}

TEST(TxLimits, ALongChainIsCopiedIntoAsFewMbufsAsTheLimitAllows) {
  // More bytes than one mbuf holds (a jumbo frame): two full buffers for a device of two.
  const uint32_t room =
      rte_pktmbuf_data_room_size(test::test_mbuf_pool()) - uint32_t{RTE_PKTMBUF_HEADROOM};
  const std::vector<uint8_t> bytes = pattern(room + room / 2, 5);
  Port port(TxLimits{.max_segments = 2});
  port.tx.send(0, make_chain(test::test_mbuf_pool(), bytes, 6));
  port.tx.flush_all();
  EXPECT_EQ(port.io.drain(0), std::vector<Frame>{bytes});
  EXPECT_EQ(port.counters[0].tx_linearised.get(), 1u);
  EXPECT_EQ(port.io.tx_violations(), 0u);
  EXPECT_FALSE(port.io.tx_stopped());
}

TEST(TxLimits, WhatCannotBeFittedIsDroppedAndCountedNotLeaked) {
  const uint32_t room =
      rte_pktmbuf_data_room_size(test::test_mbuf_pool()) - uint32_t{RTE_PKTMBUF_HEADROOM};
  // Too long for one mbuf, on a device of one.
  {
    const test::MbufLeakCheck mbufs(test::test_mbuf_pool());
    {
      Port port(TxLimits{.max_segments = 1});
      port.tx.send(0, make_chain(test::test_mbuf_pool(), pattern(room + 10, 6), 3));
      port.tx.send(0, make_chain(test::test_mbuf_pool(), pattern(100, 7), 1));
      port.tx.flush_all();
      EXPECT_EQ(port.io.drain(0).size(), 1u) << "the frame after it still goes";
      EXPECT_EQ(port.dropped(DropReason::tx_linearise_failed), 1u);
    }
    EXPECT_EQ(mbufs.leaked(), 0);
  }
  // No mbuf free for the copy (the first mbuf is shared, so it must be copied).
  rte_mempool* small =
      rte_pktmbuf_pool_create("tx_limits_small", 8, 0, 0, RTE_MBUF_DEFAULT_BUF_SIZE, SOCKET_ID_ANY);
  ASSERT_NE(small, nullptr);
  {
    const test::MbufLeakCheck mbufs(small);
    {
      Port port(TxLimits{.max_segments = 1}, small);
      rte_mbuf* chain = make_chain(small, pattern(600, 8), 3);  // 5 mbufs (2 indirect)
      hold(chain);
      std::vector<rte_mbuf*> hog;
      while (rte_mbuf* m = rte_pktmbuf_alloc(small)) hog.push_back(m);
      port.tx.send(0, chain);
      port.tx.flush_all();
      EXPECT_TRUE(port.io.drain(0).empty());
      EXPECT_EQ(port.dropped(DropReason::tx_linearise_failed), 1u);
      for (rte_mbuf* m : hog) rte_pktmbuf_free(m);
      rte_pktmbuf_free(chain);  // the other holder's reference
    }
    EXPECT_EQ(mbufs.leaked(), 0);
  }
  rte_mempool_free(small);
}

// A device whose prepare step refuses frames of one length (as a driver refuses offload requests
// it cannot do): only those are dropped, the rest of the burst goes.
class RefusingIo final : public PacketIo {
 public:
  explicit RefusingIo(uint32_t refused_length) : refused_length_(refused_length) {}
  PortIndex port_count() const override { return 1; }
  uint16_t receive(PortIndex, rte_mbuf**, uint16_t) override { return 0; }
  uint16_t transmit(PortIndex, rte_mbuf** packets, uint16_t count) override {
    for (uint16_t i = 0; i < count; ++i) {
      lengths.push_back(rte_pktmbuf_pkt_len(packets[i]));
      rte_pktmbuf_free(packets[i]);
    }
    return count;
  }
  uint16_t prepare(PortIndex, rte_mbuf** packets, uint16_t count) override {
    for (uint16_t i = 0; i < count; ++i) {
      if (rte_pktmbuf_pkt_len(packets[i]) == refused_length_) return i;
    }
    return count;
  }
  std::vector<uint32_t> lengths;

 private:
  uint32_t refused_length_;
};

TEST(TxLimits, AFrameThePrepareStepRefusesIsDroppedAlone) {
  const test::MbufLeakCheck mbufs(test::test_mbuf_pool());
  {
    RefusingIo io(99);
    std::array<PortCounters, kMaxPorts> counters{};
    TxBuffers tx(io, counters);
    for (uint32_t length : {60u, 99u, 70u, 99u, 80u})
      tx.send(0, make_chain(test::test_mbuf_pool(), pattern(length, length), 1));
    tx.flush_all();
    EXPECT_EQ(io.lengths, (std::vector<uint32_t>{60, 70, 80}));
    EXPECT_EQ(counters[0].dropped(DropReason::tx_prepare_refused), 2u);
    EXPECT_EQ(counters[0].tx_packets.get(), 3u);
  }
  EXPECT_EQ(mbufs.leaked(), 0);
}

// ---- through TCP: two stacks joined by ports with a segment limit ------------------------------

constexpr uint64_t kStepUs = 1000;
const net::MacAddress kMacA({0x02, 0, 0, 0, 0, 0x0a});
const net::MacAddress kMacB({0x02, 0, 0, 0, 0, 0x0b});
const net::Ipv4Address kIpA = net::Ipv4Address::from_octets(10, 0, 0, 1);
const net::Ipv4Address kIpB = net::Ipv4Address::from_octets(10, 0, 0, 2);

struct TcpEnd {
  TcpEnd(net::MacAddress mac, net::Ipv4Address address, TxLimits limits, uint8_t secret)
      : port(test::one_port_config(mac, address), test::test_mbuf_pool()),
        tcp(settings(), *port.stack, test::test_mbuf_pool(), counters, tcp::Secret{secret},
            kStepUs) {
    port.io.set_tx_limits(limits);
    port.stack->set_transport(&tcp);
  }
  static tcp::TcpSettings settings() {
    tcp::TcpSettings s;
    s.time_wait_us = 30'000;
    s.max_connections = 4;
    return s;
  }
  test::StackPortHarness port;
  TcpCounters counters{};
  tcp::TcpStack tcp;
};

// Sends `data` in `chunk`-byte writes (odd sizes make payloads span several queued mbufs, so
// chains of three and more), half-closes, and keeps what comes back.
class BulkClient final : public tcp::ConnectionHandler {
 public:
  BulkClient(tcp::TcpStack& tcp, std::vector<uint8_t> data, size_t chunk)
      : tcp_(tcp), data_(std::move(data)), chunk_(chunk) {}
  void on_established(tcp::Connection& c) override { pump(c); }
  void on_writable(tcp::Connection& c) override { pump(c); }
  void on_data(tcp::Connection& c, rte_mbuf* m) override {
    for (rte_mbuf* seg = m; seg != nullptr; seg = seg->next) {
      const auto* p = rte_pktmbuf_mtod(seg, const uint8_t*);
      received.insert(received.end(), p, p + seg->data_len);
    }
    tcp_.consumed(c, rte_pktmbuf_pkt_len(m), tcp_.now_us());
    rte_pktmbuf_free(m);
  }
  void on_closed(tcp::Connection&, tcp::CloseReason) override { closed = true; }
  std::vector<uint8_t> received;
  bool closed = false;

 private:
  void pump(tcp::Connection& c) {
    while (sent_ < data_.size()) {
      const size_t n = std::min(chunk_, data_.size() - sent_);
      rte_mbuf* m = rte_pktmbuf_alloc(test::test_mbuf_pool());
      ASSERT_NE(m, nullptr);
      std::memcpy(rte_pktmbuf_append(m, static_cast<uint16_t>(n)), data_.data() + sent_, n);
      if (!tcp_.send(c, m, tcp_.now_us())) {
        rte_pktmbuf_free(m);
        return;
      }
      sent_ += n;
    }
    if (!shut_) {
      shut_ = true;
      tcp_.shutdown_write(c, tcp_.now_us());
    }
  }
  tcp::TcpStack& tcp_;
  std::vector<uint8_t> data_;
  size_t chunk_;
  size_t sent_ = 0;
  bool shut_ = false;
};

// 1 MB to B's echo service and back, both ports limited to `limits`.
void echo_a_megabyte(TxLimits limits) {
  const test::MbufLeakCheck mbufs(test::test_mbuf_pool());
  const std::vector<uint8_t> data = pattern(1 << 20, 9);
  {
    TcpEnd a(kMacA, kIpA, limits, 1);
    TcpEnd b(kMacB, kIpB, limits, 2);
    tcp::EchoService echo(b.tcp);
    b.tcp.listen(kIpB, 7, &echo, 4);
    BulkClient client(a.tcp, data, 701);
    const tcp::FourTuple tuple{kIpA.value(), kIpB.value(), 40000, 7};
    ASSERT_NE(a.tcp.connect(0, tuple, &client, kStepUs), nullptr);
    TcpEnd* ends[2] = {&a, &b};
    for (uint64_t step = 2; step < 200'000 && !client.closed; ++step) {
      const uint64_t now = step * kStepUs;
      for (int side = 0; side < 2; ++side) {
        for (const Frame& frame : ends[side]->port.take_sent())
          ends[1 - side]->port.deliver(frame, now);
      }
      for (TcpEnd* e : ends) {
        e->port.stack->tick(now);
        e->tcp.tick(now);
      }
    }
    EXPECT_TRUE(client.closed);
    EXPECT_EQ(client.received.size(), data.size());
    EXPECT_TRUE(client.received == data) << "the echo differs from what was sent";
    // The client's 701-byte writes make chains of three and more; the echo's, of whole
    // received segments, at least two (so only a device of one must have them copied).
    EXPECT_GT(a.port.port_counters[0].tx_linearised.get(), 0u);
    if (limits.max_segments == 1) {
      EXPECT_GT(b.port.port_counters[0].tx_linearised.get(), 0u);
    }
    for (TcpEnd* e : ends) {
      EXPECT_EQ(e->port.io.tx_violations(), 0u);
      EXPECT_FALSE(e->port.io.tx_stopped());
      EXPECT_EQ(e->port.port_counters[0].dropped(DropReason::bad_checksum), 0u);
      EXPECT_EQ(e->counters.rto_expirations.get(), 0u) << "no segment was lost";
    }
  }
  EXPECT_EQ(mbufs.leaked(), 0);
}

TEST(TxLimitsThroughTcp, AMegabyteEchoedOverADeviceThatCannotChain) {
  echo_a_megabyte(TxLimits{.max_segments = 1});
}

TEST(TxLimitsThroughTcp, AMegabyteEchoedOverADeviceOfTwoSegments) {
  echo_a_megabyte(TxLimits{.max_segments = 2});
}

}  // namespace
}  // namespace weir::dataplane
