// Scripted tests of TCP's memory bounds: tiny segments cost buffers by their bytes (collapse), and
// memory pressure (the pool's free mbufs below the marks) refuses new connections, prunes
// out-of-order data, stops windows from opening and, at the critical mark, stops connections that
// already hold unread data, while a connection whose application keeps up still makes progress.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "dataplane/tcp/out_of_order_store.h"
#include "dataplane/tcp/source_table.h"
#include "dataplane/tcp/tcp_stack.h"
#include "tests/support/tcp_script.h"

namespace weir::tcp {
namespace {

constexpr uint16_t kHolder = 17;

// Keeps every byte it receives and consumes none until told to: unread data, as a session whose
// other side reads slowly has.
class HolderService final : public ListenerHandler, public ConnectionHandler {
 public:
  explicit HolderService(TcpStack& tcp) : tcp_(tcp) {}
  ConnectionHandler* accept(Connection& c) override {
    connection = &c;
    return this;
  }
  void on_data(Connection& c, rte_mbuf* data) override { tcp_.keep_received(c.parked(), data); }
  void on_closed(Connection&, CloseReason) override { connection = nullptr; }
  // The application reads everything it holds.
  void read_all() {
    const uint32_t bytes = connection->parked().bytes();
    connection->parked().clear();
    tcp_.consumed(*connection, bytes, tcp_.now_us());
  }
  Connection* connection = nullptr;

 private:
  TcpStack& tcp_;
};

// The marks sit below the test pool's free mbufs at the start: a test reaches them by taking
// mbufs out of the pool itself.
constexpr unsigned kBelowPressure = 2000;
constexpr unsigned kBelowCritical = 3000;
struct PressureMarks {
  static void adjust(TcpSettings& s) {
    const unsigned free = rte_mempool_avail_count(test::test_mbuf_pool());
    s.pressure_free_mbufs = free - kBelowPressure;
    s.critical_free_mbufs = free - kBelowCritical;
    s.memory_sample_us = 100;
  }
};

class TcpMemory : public TcpScriptWith<0, PressureMarks> {
 protected:
  TcpMemory() { tcp_->listen(kVip, kHolder, &holder_, 8); }
  ~TcpMemory() override { give_back(); }
  unsigned held_since(unsigned free_before) const {
    return free_before - rte_mempool_avail_count(test::test_mbuf_pool());
  }
  // Takes `n` more mbufs out of the pool (or returns some) and lets the stack sample it.
  void hold_pool_mbufs(unsigned n) {
    while (taken_.size() < n) {
      rte_mbuf* m = rte_pktmbuf_alloc(test::test_mbuf_pool());
      ASSERT_NE(m, nullptr);
      taken_.push_back(m);
    }
    while (taken_.size() > n) {
      rte_pktmbuf_free(taken_.back());
      taken_.pop_back();
    }
    sampled_ = advance_to(now_ + 200);
  }
  void give_back() {
    for (rte_mbuf* m : taken_) rte_pktmbuf_free(m);
    taken_.clear();
  }

  HolderService holder_{*tcp_};
  // The critical mark PressureMarks set, as near as the pool tells now.
  const unsigned critical_mark_ = rte_mempool_avail_count(test::test_mbuf_pool()) - kBelowCritical;
  std::vector<rte_mbuf*> taken_;
  std::vector<Out> sampled_;  // what the stack sent when it sampled the pool
};

// 200,000 one-byte segments into the echo, sent as fast as its window allows, while the client
// acknowledges the echo only now and then: without collapse each byte the echo holds would hold
// an mbuf (the test pool has 8,191). With it, the echo's unread bytes cost buffers by their bytes,
// and its send queue at most its segment bound; every byte comes back, in order.
TEST_F(TcpScript, OneByteSegmentsHoldBuffersByTheirBytes) {
  const uint32_t iss = handshake(kEcho);
  const unsigned free_before = rte_mempool_avail_count(port_.pool);
  constexpr uint32_t kSegments = 200'000;
  constexpr uint32_t kOurScale = 2;  // the window scale of a 128 KiB receive buffer
  std::string sent, echoed;
  uint32_t right_edge = kClientIsn + 1 + 65535;  // of the echo's window: its SYN-ACK, then ACKs
  unsigned most_held = 0;
  uint32_t acked = 0;  // of the echo's bytes: only once a round
  uint32_t taken = 0;  // of ours, as the echo's ACKs tell
  const auto take = [&](const std::vector<Out>& out) {
    for (const Out& o : out) {
      right_edge = std::max(right_edge, o.ack + (uint32_t{o.window} << kOurScale));
      taken = std::max(taken, o.ack - (kClientIsn + 1));
      if (!o.payload.empty() && o.seq == iss + 1 + echoed.size())
        echoed.append(o.payload.begin(), o.payload.end());
    }
    most_held = std::max(most_held, free_before - rte_mempool_avail_count(port_.pool));
  };
  take(last_);
  for (int round = 0; round < 1000 && echoed.size() < kSegments; ++round) {
    // As many one-byte segments as the window takes...
    while (sent.size() < kSegments && kClientIsn + 1 + sent.size() < right_edge) {
      const std::string byte(1, static_cast<char>('a' + sent.size() % 26));
      take(send(kEcho, A, kClientIsn + 1 + static_cast<uint32_t>(sent.size()), iss + 1 + acked,
                byte, ts(101)));
      sent += byte;
    }
    // ... then an ACK of what came back, which lets the echo send more. What the echo did not
    // take (beyond its window once it had shrunk) goes again.
    sent.resize(taken);
    acked = static_cast<uint32_t>(echoed.size());
    take(send(kEcho, A, kClientIsn + 1 + taken, iss + 1 + static_cast<uint32_t>(echoed.size()), "",
              ts(101)));
  }
  ASSERT_EQ(sent.size(), kSegments);
  ASSERT_EQ(echoed.size(), sent.size());
  EXPECT_EQ(echoed, sent);
  // The send queue's bound (512 segments) and the unread bytes in buffers at least half full.
  const TcpSettings defaults;
  EXPECT_LE(most_held, defaults.max_send_segments + defaults.receive_buffer / 1024 + 64)
      << "mbufs held for one-byte segments";
  EXPECT_GT(counters_.segments_collapsed.get(), kSegments / 2);
}

// Under pressure a client that holds data (here all there is) is refused new connections; below
// half the critical mark everyone is, even a client holding nothing; after pressure all are taken.
TEST_F(TcpMemory, SynsAreRefusedUnderPressureAndAcceptedAfterIt) {
  const uint32_t holder_iss = handshake(kHolder, 41001);
  send(kHolder, A, kClientIsn + 1, holder_iss + 1, std::string(1000, 'h'), ts(102), 65535, 41001);
  ASSERT_EQ(holder_.connection->unread(), 1000u);
  hold_pool_mbufs(kBelowPressure + 100);
  EXPECT_EQ(tcp_->memory_level(), MemoryLevel::pressure);
  EXPECT_EQ(counters_.memory_pressure_entered.get(), 1u);
  const auto refused = send(kEcho, S, kClientIsn, 0, "", TcpOptions().mss(1460));
  ASSERT_EQ(refused.size(), 1u);
  EXPECT_EQ(refused[0].flags, R | A);
  EXPECT_EQ(refused[0].ack, kClientIsn + 1);
  EXPECT_EQ(counters_.syns_refused_source_share.get(), 1u);
  EXPECT_EQ(tcp_->connections(), 1u);

  const Peer other{MacAddress({0x02, 0x77, 0, 0, 0, 0x03}), Ipv4Address::from_octets(10, 77, 0, 3)};
  learn(other);
  // (a margin of 20: the mark was set from the pool a few mbufs earlier)
  const unsigned target_free = critical_mark_ / 2 - 20;
  hold_pool_mbufs(static_cast<unsigned>(taken_.size()) +
                  rte_mempool_avail_count(test::test_mbuf_pool()) - target_free);
  ASSERT_EQ(tcp_->memory_level(), MemoryLevel::critical);
  const auto starved = send_from(other, kEcho, S, kClientIsn, 0, "", TcpOptions().mss(1460));
  ASSERT_EQ(starved.size(), 1u);
  EXPECT_EQ(starved[0].flags, R | A) << "below half the critical mark nobody is taken";
  EXPECT_EQ(counters_.syns_refused_memory.get(), 1u);
  EXPECT_EQ(counters_.syns_admitted_under_pressure.get(), 0u);

  // Just above the pressure mark is not yet enough (hysteresis); well above it is.
  hold_pool_mbufs(kBelowPressure - 10);
  EXPECT_EQ(tcp_->memory_level(), MemoryLevel::pressure);
  hold_pool_mbufs(0);
  EXPECT_EQ(tcp_->memory_level(), MemoryLevel::normal);
  const auto accepted = send(kEcho, S, kClientIsn, 0, "", TcpOptions().mss(1460));
  ASSERT_EQ(accepted.size(), 1u);
  EXPECT_EQ(accepted[0].flags, S | A);
  EXPECT_EQ(counters_.syns_refused_source_share.get(), 1u);
  EXPECT_EQ(counters_.syns_refused_memory.get(), 1u);
  EXPECT_EQ(counters_.memory_pressure_entered.get(), 1u);
}

TEST_F(TcpMemory, OutOfOrderDataIsPrunedWhenPressureBeginsAndNotKeptDuringIt) {
  const uint32_t iss = handshake(kDiscard);
  const auto sacked =
      send(kDiscard, A, kClientIsn + 1 + 1000, iss + 1, std::string(500, 'x'), ts(102));
  ASSERT_EQ(sacked.size(), 1u);
  EXPECT_EQ(sacked[0].sack.size(), 1u) << "kept, and reported";
  hold_pool_mbufs(kBelowPressure + 100);
  EXPECT_EQ(counters_.out_of_order_pruned.get(), 1u);
  const auto after =
      send(kDiscard, A, kClientIsn + 1 + 2000, iss + 1, std::string(500, 'y'), ts(103));
  ASSERT_EQ(after.size(), 1u);
  EXPECT_TRUE(after[0].sack.empty()) << "nothing kept out of order under pressure";
  EXPECT_EQ(after[0].ack, kClientIsn + 1);
  EXPECT_EQ(counters_.out_of_order_drops.get(), 1u);
  // In-order data still goes through: the discard service keeps up, so it has its floor.
  send(kDiscard, A, kClientIsn + 1, iss + 1, std::string(500, 'z'), ts(104));
  const auto in_order =
      send(kDiscard, A, kClientIsn + 501, iss + 1, std::string(500, 'z'), ts(104));
  ASSERT_EQ(in_order.size(), 1u);
  EXPECT_EQ(in_order[0].ack, kClientIsn + 1 + 1000);
}

// At the critical mark a connection of the client holding unread data gets nothing more (window 0,
// data dropped and counted); another client's, whose application keeps up, still does. A stopped
// connection whose application then reads (its client now holds nothing) gets its floor of four
// segments; when memory recovers it is told at once that its whole window is open again.
TEST_F(TcpMemory, CriticalMarkStopsOnlyConnectionsHoldingUnreadData) {
  const Peer other{MacAddress({0x02, 0x77, 0, 0, 0, 0x03}), Ipv4Address::from_octets(10, 77, 0, 3)};
  learn(other);
  const uint32_t holder_iss = handshake(kHolder, 41001);
  const uint32_t discard_iss = handshake(kDiscard, 41002, other);
  ASSERT_NE(holder_.connection, nullptr);
  send(kHolder, A, kClientIsn + 1, holder_iss + 1, std::string(1000, 'h'), ts(102), 65535, 41001);
  EXPECT_EQ(holder_.connection->unread(), 1000u);
  hold_pool_mbufs(kBelowCritical + 100);
  ASSERT_EQ(tcp_->memory_level(), MemoryLevel::critical);

  const auto stopped = send(kHolder, A, kClientIsn + 1001, holder_iss + 1, std::string(1000, 'i'),
                            ts(103), 65535, 41001);
  ASSERT_EQ(stopped.size(), 1u);
  EXPECT_EQ(stopped[0].ack, kClientIsn + 1001) << "not acknowledged";
  EXPECT_EQ(stopped[0].window, 0u);
  EXPECT_EQ(counters_.receive_memory_drops.get(), 1u);
  EXPECT_EQ(holder_.connection->unread(), 1000u);

  send_from(other, kDiscard, A, kClientIsn + 1, discard_iss + 1, std::string(500, 'd'), ts(103),
            65535, 41002);
  const auto flowing = send_from(other, kDiscard, A, kClientIsn + 501, discard_iss + 1,
                                 std::string(500, 'd'), ts(103), 65535, 41002);
  ASSERT_EQ(flowing.size(), 1u);
  EXPECT_EQ(flowing[0].ack, kClientIsn + 1001) << "the connection that keeps up is not stopped";
  EXPECT_GT(flowing[0].window, 0u);
  EXPECT_EQ(counters_.receive_memory_drops.get(), 1u);

  holder_.read_all();
  const auto floor = collect();
  ASSERT_EQ(floor.size(), 1u) << "a window update: the connection holds nothing now";
  EXPECT_GT(floor[0].window, 0u);
  EXPECT_LE(uint32_t{floor[0].window} << 2, 4u * 1460) << "its floor only (our scale is 2)";

  hold_pool_mbufs(0);
  EXPECT_EQ(tcp_->memory_level(), MemoryLevel::normal);
  ASSERT_EQ(sampled_.size(), 1u) << "a window update when pressure ends, to the stopped one only";
  EXPECT_EQ(sampled_[0].dst_port, 41001);
  EXPECT_EQ(sampled_[0].ack, kClientIsn + 1001);
  EXPECT_GT(uint32_t{sampled_[0].window} << 2, 100'000u);
  send(kHolder, A, kClientIsn + 1001, holder_iss + 1, std::string(1000, 'i'), ts(104), 65535,
       41001);
  EXPECT_EQ(holder_.connection->unread(), 1000u) << "the data sent again is taken";
}

// Under pressure, reading does not open a window past the edge already offered, and the window
// shrinks as data arrives; when pressure ends it opens again at once. (This client holds less
// than another: the heaviest holder's windows are stopped instead, as the flood test shows.)
TEST_F(TcpMemory, WindowsDoNotOpenUnderPressure) {
  const Peer heavier{MacAddress({0x02, 0x77, 0, 0, 0, 0x03}),
                     Ipv4Address::from_octets(10, 77, 0, 3)};
  learn(heavier);
  const uint32_t heavier_iss = handshake(kHolder, 41009, heavier);
  for (uint32_t k = 0; k < 30; ++k)
    send_from(heavier, kHolder, A, kClientIsn + 1 + 1400 * k, heavier_iss + 1,
              std::string(1400, 'x'), ts(102), 65535, 41009);
  const uint32_t iss = handshake(kHolder);
  uint32_t seq = kClientIsn + 1;
  std::vector<Out> acks;
  for (int i = 0; i < 10; ++i, seq += 1400) {
    for (const Out& o : send(kHolder, A, seq, iss + 1, std::string(1400, 'h'), ts(102)))
      acks.push_back(o);
  }
  ASSERT_FALSE(acks.empty());
  const uint16_t window_before = acks.back().window;
  hold_pool_mbufs(kBelowPressure + 100);
  ASSERT_EQ(tcp_->memory_level(), MemoryLevel::pressure);
  holder_.read_all();
  EXPECT_TRUE(collect().empty()) << "14,000 bytes read, but no window update under pressure";
  send(kHolder, A, seq, iss + 1, std::string(1400, 'h'), ts(103));
  const auto ack = send(kHolder, A, seq + 1400, iss + 1, std::string(1400, 'h'), ts(103));
  ASSERT_EQ(ack.size(), 1u);
  EXPECT_EQ(ack[0].ack, seq + 2800);
  EXPECT_EQ(window_before - ack[0].window, 2800 >> 2) << "the window shrank by what arrived";
  hold_pool_mbufs(0);
  ASSERT_EQ(sampled_.size(), 1u);
  EXPECT_EQ(sampled_[0].ack, seq + 2800);
  EXPECT_GT(sampled_[0].window, window_before);
}

// One client floods: it holds connections whose application never reads, until the pool falls
// below the pressure mark. Its new connections are then refused, and its connections stop taking
// data; another client (another address) still connects, 20 times, and is served on each.
TEST_F(TcpMemory, OneSourceFloodingIntoPressureDoesNotStopAnother) {
  constexpr int kFloodConnections = 24;
  constexpr int kSegments = 90;  // 1,400 bytes each: within a 128 KiB window, an mbuf each
  std::vector<uint32_t> flood_iss;
  for (int i = 0; i < kFloodConnections; ++i) {
    const uint16_t port = static_cast<uint16_t>(42000 + i);
    flood_iss.push_back(handshake(kHolder, port));
    for (int k = 0; k < kSegments; ++k)
      send(kHolder, A, kClientIsn + 1 + 1400 * k, flood_iss.back() + 1, std::string(1400, 'f'),
           ts(102), 65535, port);
  }
  sampled_ = advance_to(now_ + 200);
  ASSERT_EQ(tcp_->memory_level(), MemoryLevel::pressure) << "the flood alone made the pressure";
  EXPECT_EQ(tcp_->sources().active(), 1u);
  EXPECT_EQ(tcp_->sources().held_bytes(), uint64_t{kFloodConnections} * kSegments * 1400);

  const auto refused = send(kHolder, S, kClientIsn, 0, "", TcpOptions().mss(1460), 65535, 43000);
  ASSERT_EQ(refused.size(), 1u);
  EXPECT_EQ(refused[0].flags, R | A) << "the flooder's new connection";
  EXPECT_EQ(counters_.syns_refused_source_share.get(), 1u);

  const Peer other{MacAddress({0x02, 0x77, 0, 0, 0, 0x03}), Ipv4Address::from_octets(10, 77, 0, 3)};
  learn(other);
  constexpr int kTransactions = 20;
  int served = 0;
  for (int i = 0; i < kTransactions; ++i) {
    const uint16_t port = static_cast<uint16_t>(44000 + i);
    const uint32_t iss = handshake(kEcho, port, other);
    ASSERT_NE(iss, 0u) << "transaction " << i << ": no SYN-ACK";
    const std::string request = "request " + std::to_string(i);
    const auto answer =
        send_from(other, kEcho, A | P, kClientIsn + 1, iss + 1, request, ts(102), 65535, port);
    std::string echoed;
    for (const Out& o : answer) echoed.append(o.payload.begin(), o.payload.end());
    EXPECT_EQ(echoed, request) << "transaction " << i;
    served += echoed == request;
  }
  EXPECT_EQ(served, kTransactions);
  EXPECT_EQ(counters_.syns_admitted_under_pressure.get(), uint64_t{kTransactions});
  EXPECT_EQ(counters_.syns_refused_source_share.get(), 1u);
  EXPECT_EQ(counters_.syns_refused_memory.get(), 0u);
  EXPECT_EQ(tcp_->sources().active(), 2u);

  // The flooder's connections take no more: a window of 0, its data dropped and counted.
  const uint32_t next = kClientIsn + 1 + 1400 * kSegments;
  const auto stopped =
      send(kHolder, A, next, flood_iss[0] + 1, std::string(1400, 'f'), ts(103), 65535, 42000);
  ASSERT_EQ(stopped.size(), 1u);
  EXPECT_EQ(stopped[0].ack, next) << "not acknowledged";
  EXPECT_EQ(stopped[0].window, 0u);
  EXPECT_EQ(counters_.receive_memory_drops.get(), 1u);
  EXPECT_GE(counters_.windows_stopped_source_share.get(), 1u);
  EXPECT_EQ(tcp_->memory_level(), MemoryLevel::pressure);
}

// The source table: connections and bytes by address, the equal-share rule, entries freed with
// their last connection, and the overflow entry past the bound.
TEST(SourceTable, AccountsBySourceAndSharesOneEntryPastItsBound) {
  SourceTable table(2, Secret{9});
  bool overflowed = true;
  const auto a = table.attach(1, &overflowed);
  EXPECT_FALSE(overflowed);
  const auto a2 = table.attach(1, &overflowed);
  EXPECT_EQ(a, a2) << "one entry per address";
  const auto b = table.attach(2, &overflowed);
  EXPECT_NE(a, b);
  EXPECT_EQ(table.active(), 2u);
  EXPECT_FALSE(table.over_share(a)) << "nothing held: nobody is heavy";
  table.charge(a, 0, 900);
  table.charge(b, 0, 100);
  EXPECT_TRUE(table.over_share(a));
  EXPECT_FALSE(table.over_share(b));
  table.charge(b, 100, 900);
  EXPECT_TRUE(table.over_share(a)) << "equal holders are both at their share";
  EXPECT_TRUE(table.over_share(b));
  EXPECT_EQ(table.held_bytes(), 1800u);
  EXPECT_EQ(table.lookup(3), SourceTable::kOverflow) << "the table is full";
  const auto c = table.attach(3, &overflowed);
  EXPECT_TRUE(overflowed);
  EXPECT_EQ(c, SourceTable::kOverflow);
  EXPECT_EQ(table.active(), 3u);
  EXPECT_FALSE(table.over_share(c)) << "the overflow entry is judged by what it holds";
  table.charge(b, 900, 0);
  table.detach(b);
  EXPECT_EQ(table.active(), 2u);
  EXPECT_EQ(table.lookup(2), std::nullopt) << "freed with its last connection";
  EXPECT_EQ(table.lookup(1), a);
  table.detach(a);
  EXPECT_EQ(table.lookup(1), a) << "one connection left";
  EXPECT_EQ(table.entry(a).connections, 1u);
  table.detach(c);
  EXPECT_EQ(table.active(), 1u);
  const auto d = table.attach(4, &overflowed);
  EXPECT_FALSE(overflowed) << "room again";
  EXPECT_EQ(table.entry(d).address, 4u);
}

// The out-of-order store shared when full: each row stores segments (one byte each, at the given
// sequence numbers) for queues 0..2 in turn, with what each insertion must answer and reclaim,
// then what each queue holds. The pool and the per-connection bound are small so that rows reach
// them.
TEST(OutOfOrderStore, AFullStoreIsSharedHighestSequenceFirst) {
  using Stored = OutOfOrderStore::Stored;
  struct Insert {
    int queue;
    uint32_t seq;
    Stored answer;
    uint32_t reclaimed;  // from another queue
  };
  struct Case {
    const char* name;
    uint32_t pool;
    uint8_t per_connection;
    std::vector<Insert> inserts;
    std::vector<std::vector<uint32_t>> held;  // per queue, lowest first
  };
  const Stored kept = Stored::kept, exhausted = Stored::store_exhausted;
  const Case cases[] = {
      {"room: nothing is taken",
       4,
       8,
       {{0, 30, kept, 0}, {0, 10, kept, 0}, {1, 50, kept, 0}, {0, 20, kept, 0}},
       {{10, 20, 30}, {50}, {}}},
      {"a newcomer takes the largest holder's highest sequence",
       4,
       8,
       {{0, 10, kept, 0}, {0, 40, kept, 0}, {0, 20, kept, 0}, {0, 30, kept, 0}, {1, 99, kept, 1}},
       {{10, 20, 30}, {99}, {}}},
      {"holdings level out, then the store is exhausted",
       6,
       8,
       {{0, 1, kept, 0},
        {0, 2, kept, 0},
        {0, 3, kept, 0},
        {0, 4, kept, 0},
        {0, 5, kept, 0},
        {0, 6, kept, 0},
        {1, 7, kept, 1},
        {1, 8, kept, 1},
        {1, 9, kept, 1},
        {1, 10, exhausted, 0},
        {2, 11, kept, 1},
        {2, 12, kept, 1},
        {2, 13, exhausted, 0}},
       {{1, 2}, {7, 8}, {11, 12}}},
      {"the largest of several gives first",
       6,
       8,
       {{0, 1, kept, 0},
        {1, 2, kept, 0},
        {1, 3, kept, 0},
        {1, 4, kept, 0},
        {0, 5, kept, 0},
        {0, 6, kept, 0},
        {2, 7, kept, 1},
        {2, 8, kept, 1},
        {2, 9, exhausted, 0}},
       {{1, 5}, {2, 3}, {7, 8}}},
      {"no connection loses its last segment, nor takes from itself",
       2,
       8,
       {{0, 1, kept, 0}, {1, 2, kept, 0}, {2, 3, exhausted, 0}, {0, 4, exhausted, 0}},
       {{1}, {2}, {}}},
      {"the per-connection bound, and duplicates, are refused",
       8,
       2,
       {{0, 1, kept, 0},
        {0, 1, Stored::duplicate, 0},
        {0, 2, kept, 0},
        {0, 3, Stored::connection_full, 0}},
       {{1, 2}, {}, {}}},
  };
  rte_mempool* pool = test::test_mbuf_pool();
  for (const Case& row : cases) {
    SCOPED_TRACE(row.name);
    const test::MbufLeakCheck mbufs(pool);
    {
      std::array<OutOfOrderStore::Queue, 3> queues{};  // outlive the store, as connections do
      OutOfOrderStore store(row.pool, row.per_connection);
      for (const Insert& in : row.inserts) {
        rte_mbuf* m = rte_pktmbuf_alloc(pool);
        ASSERT_NE(m, nullptr);
        rte_pktmbuf_append(m, 1);
        uint32_t reclaimed = 0;
        const Stored answer = store.insert(queues[in.queue], Seq(in.seq), m, &reclaimed);
        EXPECT_EQ(answer, in.answer) << "queue " << in.queue << ", seq " << in.seq;
        EXPECT_EQ(reclaimed, in.reclaimed) << "queue " << in.queue << ", seq " << in.seq;
        if (answer != Stored::kept) rte_pktmbuf_free(m);
      }
      uint32_t held = 0;
      for (size_t q = 0; q < queues.size(); ++q) {
        std::vector<uint32_t> seqs;
        store.for_each(queues[q], [&](Seq seq, const rte_mbuf*) { seqs.push_back(seq.raw()); });
        EXPECT_EQ(seqs, row.held[q]) << "queue " << q;
        EXPECT_EQ(store.count(queues[q]), seqs.size()) << "queue " << q;
        held += store.count(queues[q]);
      }
      EXPECT_EQ(store.free_segments(), row.pool - held);
      // Delivery takes from the lowest; clearing frees the rest.
      if (!queues[0].empty()) {
        const Seq lowest = store.front_seq(queues[0]);
        EXPECT_EQ(lowest.raw(), row.held[0].front());
        rte_pktmbuf_free(store.pop_front(queues[0]));
      }
      EXPECT_EQ(store.clear(queues[1]), row.held[1].size());
      EXPECT_TRUE(queues[1].empty());
    }  // the store's destructor frees what the other queues hold
    EXPECT_EQ(mbufs.leaked(), 0) << row.name;
  }
}

}  // namespace
}  // namespace weir::tcp
