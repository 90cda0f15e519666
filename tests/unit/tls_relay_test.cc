// The dataplane's TlsRelay stage (dataplane/proxy/tls_relay.h) with in-memory queues for the two
// connections and real shared-memory channels (common/shm_channel.h): first a scripted worker
// that sends what it likes (hostile records refused and counted, the sessions beside them
// untouched; a full ring; a broken ring; a worker gone), then weir-tls-worker's engine itself
// (tls/tls_worker.h) with OpenSSL clients: 1 MiB each way, TLS 1.3 and 1.2, equal SHA-256.
#include "dataplane/proxy/tls_relay.h"

#include <gtest/gtest.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "config/config.h"
#include "tests/support/test_pki.h"
#include "tls/tls_worker.h"

namespace weir::proxy {
namespace {

using tls_channel::Kind;
using tls_channel::kMaxRecordPayload;
using tls_channel::ResetReason;

// What the relay told one session: the two connections' send queues, in memory.
struct SessionLog {
  std::vector<uint8_t> to_client, to_backend;
  std::optional<tls_channel::HandshakeDone> done;
  std::optional<TlsRelayReset> reset;
  bool client_end = false, backend_end = false;
  int writable = 0;
};

class RecordingHandler : public TlsRelayHandler {
 public:
  void tls_handshake_done(uint64_t token, const tls_channel::HandshakeDone& done) override {
    logs[token].done = done;
  }
  void tls_to_client(uint64_t token, std::span<const uint8_t> bytes) override {
    auto& q = logs[token].to_client;
    q.insert(q.end(), bytes.begin(), bytes.end());
  }
  void tls_to_backend(uint64_t token, std::span<const uint8_t> bytes) override {
    auto& q = logs[token].to_backend;
    q.insert(q.end(), bytes.begin(), bytes.end());
  }
  void tls_client_end(uint64_t token) override { logs[token].client_end = true; }
  void tls_backend_end(uint64_t token) override { logs[token].backend_end = true; }
  void tls_reset(uint64_t token, TlsRelayReset why) override {
    EXPECT_FALSE(logs[token].reset.has_value()) << "session " << token << " reset twice";
    logs[token].reset = why;
  }
  void tls_writable(uint64_t token) override { ++logs[token].writable; }
  std::map<uint64_t, SessionLog> logs;
};

struct SeenRecord {
  uint64_t session;
  uint16_t kind;
  std::vector<uint8_t> payload;
};

// A TLS worker's side of one channel, scripted by the test: it maps its own view of the memfd
// (as a worker process does with the fd it is given) and writes whatever it is told to.
class ScriptedWorker {
 public:
  explicit ScriptedWorker(const shm::ChannelMemory& memory) : view_(map_view(memory)) {
    out_.emplace(view_->writer(shm::Side::b, kMaxRecordPayload, -1));
    in_.emplace(view_->reader(shm::Side::b, kMaxRecordPayload, -1));
  }
  // Every record the relay published since the last call.
  std::vector<SeenRecord> take() {
    std::vector<SeenRecord> seen;
    while (const auto r = in_->peek()) {
      seen.push_back({r->session, r->kind, {r->payload.begin(), r->payload.end()}});
      in_->pop();
    }
    in_->release();
    return seen;
  }
  void send(uint64_t session, uint16_t kind, std::vector<uint8_t> payload = {}) {
    ASSERT_TRUE(out_->try_write(session, kind, payload));
    out_->publish();
  }
  void send(uint64_t session, Kind kind, std::vector<uint8_t> payload = {}) {
    send(session, static_cast<uint16_t>(kind), std::move(payload));
  }
  void handshake_done(uint64_t session, uint16_t version = 0x0304) {
    tls_channel::HandshakeDone done;
    done.version = version;
    send(session, Kind::handshake_done, tls_channel::encode(done));
  }
  shm::ChannelMemory& view() { return *view_; }

 private:
  static std::optional<shm::ChannelMemory> map_view(const shm::ChannelMemory& memory) {
    std::string error;
    auto view = shm::ChannelMemory::map(dup(memory.fd()), error);
    EXPECT_TRUE(view) << error;
    return view;
  }
  std::optional<shm::ChannelMemory> view_;
  std::optional<shm::RingWriter> out_;
  std::optional<shm::RingReader> in_;
};

shm::ChannelMemory new_channel(uint64_t ring_bytes = tls_channel::kDefaultRingBytes) {
  std::string error;
  auto memory = shm::ChannelMemory::create(ring_bytes, error);
  EXPECT_TRUE(memory) << error;
  return std::move(*memory);
}

std::vector<uint8_t> bytes_of(size_t n, uint8_t seed) {
  std::vector<uint8_t> out(n);
  for (size_t i = 0; i < n; ++i) out[i] = static_cast<uint8_t>(seed + i * 7 + (i >> 9));
  return out;
}

std::vector<uint8_t> reason_payload(ResetReason reason) {
  const auto value = static_cast<uint16_t>(reason);
  return {static_cast<uint8_t>(value & 0xff), static_cast<uint8_t>(value >> 8)};
}

// `listener` "secure-tls": with its name the open record takes 48 bytes, so that records of 32
// (16 payload bytes) fill a 64 KiB ring exactly after three whole ones (48 + 3 x 16,656 + 485 x
// 32).
tls_channel::OpenPayload open_request(const std::string& listener = "secure") {
  return tls_channel::OpenPayload{0x0a000001, 40000, listener};
}

// One relay with two channels to scripted workers.
class TlsRelayTest : public ::testing::Test {
 protected:
  TlsRelayTest() : relay_(handler_, 64) {
    for (int i = 0; i < 2; ++i) {
      shm::ChannelMemory memory = new_channel();
      workers_.push_back(std::make_unique<ScriptedWorker>(memory));
      relay_.attach_channel(i, std::move(memory), -1);
    }
  }
  // Opens a session for `token`; returns its id and the channel it went to.
  std::pair<uint64_t, size_t> open(uint64_t token) {
    const auto id = relay_.open(token, open_request());
    EXPECT_TRUE(id.has_value());
    relay_.poll();
    for (size_t c = 0; c < workers_.size(); ++c) {
      for (const SeenRecord& r : workers_[c]->take()) {
        EXPECT_EQ(r.kind, static_cast<uint16_t>(Kind::open));
        EXPECT_EQ(r.session, *id);
        const auto decoded = tls_channel::decode_open(r.payload);
        EXPECT_TRUE(decoded && decoded->listener == "secure");
        return {*id, c};
      }
    }
    ADD_FAILURE() << "no open record for token " << token;
    return {0, 0};
  }
  uint64_t fault(TlsRecordFault f) const { return relay_.counters().fault(f); }

  RecordingHandler handler_;
  TlsRelay relay_;
  std::vector<std::unique_ptr<ScriptedWorker>> workers_;
};

TEST_F(TlsRelayTest, SessionsGoToTheChannelWithFewestAndBytesArriveWhole) {
  const auto [a, ca] = open(1);
  const auto [b, cb] = open(2);
  EXPECT_NE(ca, cb);  // the second went to the empty channel
  EXPECT_NE(a, b);
  const auto hello = bytes_of(40'000, 3);  // more than one record
  EXPECT_EQ(relay_.from_client(a, hello), hello.size());
  relay_.poll();
  std::vector<uint8_t> got;
  for (const SeenRecord& r : workers_[ca]->take()) {
    EXPECT_EQ(r.session, a);
    EXPECT_EQ(r.kind, static_cast<uint16_t>(Kind::ciphertext));
    EXPECT_LE(r.payload.size(), kMaxRecordPayload);
    got.insert(got.end(), r.payload.begin(), r.payload.end());
  }
  EXPECT_EQ(got, hello);
  // Back: the handshake, ciphertext for the client, plaintext for the backend, the ends.
  workers_[ca]->send(a, Kind::ciphertext, {1, 2, 3});
  workers_[ca]->handshake_done(a, 0x0303);
  workers_[ca]->send(a, Kind::plaintext, {4, 5});
  workers_[ca]->send(a, Kind::plaintext_end);
  workers_[ca]->send(a, Kind::ciphertext_end);
  EXPECT_TRUE(relay_.poll());
  const SessionLog& log = handler_.logs[1];
  EXPECT_EQ(log.to_client, (std::vector<uint8_t>{1, 2, 3}));
  EXPECT_EQ(log.to_backend, (std::vector<uint8_t>{4, 5}));
  ASSERT_TRUE(log.done.has_value());
  EXPECT_EQ(log.done->version, 0x0303);
  EXPECT_TRUE(log.client_end && log.backend_end);
  EXPECT_FALSE(log.reset.has_value());
  EXPECT_EQ(relay_.counters().handshakes_tls12.get(), 1u);
  EXPECT_TRUE(handler_.logs[2].to_client.empty());
}

TEST_F(TlsRelayTest, AForeignSessionIdIsRefusedAndCountedAndTheOthersGoOn) {
  const auto [a, ca] = open(1);
  const auto [b, cb] = open(2);
  workers_[ca]->handshake_done(a);
  // Session b belongs to the other channel; a slot never issued; an id past the table.
  workers_[ca]->send(b, Kind::ciphertext, {9});
  workers_[ca]->send((uint64_t{7} << 32) | 40, Kind::ciphertext, {9});
  workers_[ca]->send((uint64_t{1} << 32) | 5000, Kind::ciphertext, {9});
  workers_[ca]->send(0, Kind::reset, reason_payload(ResetReason::not_tls));
  workers_[ca]->send(a, Kind::plaintext, {7, 7});
  relay_.poll();
  EXPECT_EQ(fault(TlsRecordFault::foreign_session), 4u);
  EXPECT_TRUE(handler_.logs[2].to_client.empty());  // b's channel did not send it
  EXPECT_FALSE(handler_.logs[2].reset.has_value());
  EXPECT_EQ(handler_.logs[1].to_backend, (std::vector<uint8_t>{7, 7}));
  EXPECT_FALSE(handler_.logs[1].reset.has_value());
  EXPECT_EQ(relay_.sessions(), 2u);
  // b still works on its own channel.
  workers_[cb]->send(b, Kind::ciphertext, {8});
  relay_.poll();
  EXPECT_EQ(handler_.logs[2].to_client, (std::vector<uint8_t>{8}));
}

TEST_F(TlsRelayTest, ABadKindResetsItsSessionOnly) {
  const auto [a, ca] = open(1);
  const auto [c, cc] = open(3);
  const auto [e, ce] = open(5);  // a or c's channel: one of them shares it
  ASSERT_TRUE(ce == ca || ce == cc);
  workers_[ca]->send(a, Kind::open, tls_channel::encode(open_request()));  // a worker never opens
  workers_[cc]->send(c, uint16_t{99});
  workers_[ce]->send(e, Kind::ciphertext, {1});
  relay_.poll();
  EXPECT_EQ(fault(TlsRecordFault::bad_kind), 2u);
  EXPECT_EQ(handler_.logs[1].reset, TlsRelayReset::bad_record);
  EXPECT_EQ(handler_.logs[3].reset, TlsRelayReset::bad_record);
  EXPECT_FALSE(handler_.logs[5].reset.has_value());
  EXPECT_EQ(handler_.logs[5].to_client, (std::vector<uint8_t>{1}));
  EXPECT_EQ(relay_.sessions(), 1u);
  // The workers hear `reset` for the sessions the relay ended, nothing for the other.
  relay_.poll();
  std::vector<uint64_t> resets;
  for (auto& w : workers_) {
    for (const SeenRecord& r : w->take()) {
      EXPECT_EQ(r.kind, static_cast<uint16_t>(Kind::reset));
      resets.push_back(r.session);
    }
  }
  std::sort(resets.begin(), resets.end());
  std::vector<uint64_t> expected{a, c};
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(resets, expected);
  // Their ids are dead: from_client takes nothing, a later record for them is stale.
  EXPECT_EQ(relay_.from_client(a, bytes_of(10, 1)), 0u);
  workers_[ca]->send(a, Kind::ciphertext, {1});
  relay_.poll();
  EXPECT_EQ(relay_.counters().stale_records.get(), 1u);
  EXPECT_EQ(fault(TlsRecordFault::foreign_session), 0u);
}

TEST_F(TlsRelayTest, BadLengthsAreRefusedEachCountedAndResetOnlyTheirSession) {
  std::vector<std::pair<uint64_t, size_t>> s;
  for (uint64_t token = 1; token <= 7; ++token) s.push_back(open(token));
  for (size_t i = 0; i < 3; ++i) workers_[s[i + 3].second]->handshake_done(s[i + 3].first);
  relay_.poll();
  auto w = [&](size_t i) -> ScriptedWorker& { return *workers_[s[i].second]; };
  w(0).send(s[0].first, Kind::ciphertext);                              // empty
  w(1).send(s[1].first, Kind::reset, {1, 0, 0});                        // 3 bytes
  w(2).send(s[2].first, Kind::handshake_done, {0x04, 0x03, 9});         // does not decode
  w(3).send(s[3].first, Kind::plaintext_end, {0});                      // an end with a payload
  w(4).send(s[4].first, Kind::reset, reason_payload(ResetReason(42)));  // no such reason
  w(5).send(s[5].first, Kind::plaintext);                               // empty
  w(6).send(s[6].first, Kind::ciphertext, {5});                         // fine
  relay_.poll();
  EXPECT_EQ(fault(TlsRecordFault::bad_length), 6u);
  for (uint64_t token = 1; token <= 6; ++token)
    EXPECT_EQ(handler_.logs[token].reset, TlsRelayReset::bad_record) << token;
  EXPECT_FALSE(handler_.logs[7].reset.has_value());
  EXPECT_EQ(handler_.logs[7].to_client, (std::vector<uint8_t>{5}));
  EXPECT_EQ(relay_.sessions(), 1u);
}

TEST_F(TlsRelayTest, OutOfOrderRecordsAreRefused) {
  const auto [a, ca] = open(1);
  const auto [b, cb] = open(2);
  workers_[ca]->send(a, Kind::plaintext, {1});  // before handshake_done
  workers_[cb]->handshake_done(b);
  workers_[cb]->handshake_done(b);  // twice
  relay_.poll();
  EXPECT_EQ(fault(TlsRecordFault::out_of_order), 2u);
  EXPECT_TRUE(handler_.logs[1].to_backend.empty());
  EXPECT_EQ(handler_.logs[1].reset, TlsRelayReset::bad_record);
  EXPECT_EQ(handler_.logs[2].reset, TlsRelayReset::bad_record);
}

TEST_F(TlsRelayTest, AWorkerResetIsCountedByReason) {
  const auto [a, ca] = open(1);
  workers_[ca]->send(a, Kind::reset, reason_payload(ResetReason::handshake_timeout));
  relay_.poll();
  EXPECT_EQ(handler_.logs[1].reset, TlsRelayReset::worker_reset);
  EXPECT_EQ(
      relay_.counters().worker_resets[static_cast<size_t>(ResetReason::handshake_timeout)].get(),
      1u);
  relay_.poll();
  EXPECT_TRUE(workers_[ca]->take().empty());  // no reset echoed to a worker that ended it
}

TEST(TlsRelayBackpressure, AFullRingTakesPartAndTellsTheSessionWhenThereIsRoom) {
  RecordingHandler handler;
  TlsRelay relay(handler, 8);
  shm::ChannelMemory memory = new_channel(64 * 1024);
  ScriptedWorker worker(memory);
  relay.attach_channel(0, std::move(memory), -1);
  const auto a = relay.open(1, open_request());
  const auto b = relay.open(2, open_request());
  ASSERT_TRUE(a && b);
  // b first takes its credit (about half this small ring), then a what is left.
  EXPECT_GT(relay.from_client(*b, bytes_of(100'000, 8)), 0u);
  const auto big = bytes_of(200'000, 9);
  const size_t first = relay.from_client(*a, big);
  EXPECT_GT(first, 0u);
  EXPECT_LT(first, 32u * 1024);  // the ring took what fits, no more
  EXPECT_GE(relay.counters().ring_full.get(), 1u);
  // A FIN behind the parked bytes waits too.
  EXPECT_FALSE(relay.client_end(*a));
  // Nothing consumed yet: no room, no writable.
  relay.poll();
  EXPECT_EQ(handler.logs[1].writable, 0);
  std::vector<uint8_t> received;
  size_t offered = first;
  auto take_ciphertext = [&]() {
    bool ended = false;
    for (const SeenRecord& r : worker.take()) {
      if (r.session != *a) continue;
      if (r.kind == static_cast<uint16_t>(Kind::ciphertext))
        received.insert(received.end(), r.payload.begin(), r.payload.end());
      ended = r.kind == static_cast<uint16_t>(Kind::ciphertext_end);
    }
    return ended;
  };
  for (int rounds = 0; offered < big.size() && rounds < 100; ++rounds) {
    const int before = handler.logs[1].writable;
    relay.poll();  // publishes what the last round wrote: the ring is full, nobody is told
    EXPECT_EQ(handler.logs[1].writable, before);
    EXPECT_FALSE(take_ciphertext());
    relay.poll();
    ASSERT_EQ(handler.logs[1].writable, before + 1) << "room again, and the session is told";
    offered += relay.from_client(*a, std::span(big).subspan(offered));
  }
  relay.poll();
  EXPECT_FALSE(take_ciphertext());
  EXPECT_TRUE(relay.client_end(*a));
  relay.poll();
  const bool ended = take_ciphertext();
  EXPECT_TRUE(ended);
  EXPECT_EQ(received, big);
  EXPECT_FALSE(handler.logs[1].reset.has_value());
}

TEST(TlsRelayBackpressure, AFullRingRefusesNewSessionsAndKeepsResetsForLater) {
  RecordingHandler handler;
  TlsRelay relay(handler, 8);
  shm::ChannelMemory memory = new_channel(64 * 1024);
  ScriptedWorker worker(memory);
  relay.attach_channel(0, std::move(memory), -1);
  const auto a = relay.open(1, open_request("secure-tls"));
  const auto b = relay.open(3, open_request());
  ASSERT_TRUE(a && b);
  // Each session up to its credit (half this small ring): the two fill it.
  for (const auto id : {*a, *b}) {
    while (relay.from_client(id, bytes_of(kMaxRecordPayload, 1)) > 0) {
    }
    while (relay.from_client(id, bytes_of(16, 1)) > 0) {  // the last scraps of room
    }
  }
  EXPECT_GE(relay.counters().ring_full.get(), 1u);
  EXPECT_FALSE(relay.open(2, open_request()).has_value());
  EXPECT_EQ(relay.counters().no_channel.get(), 1u);
  relay.close(*a);  // no room for its reset now: kept, sent once there is
  relay.poll();
  bool reset_seen = false;
  for (const SeenRecord& r : worker.take())
    reset_seen = r.kind == static_cast<uint16_t>(Kind::reset);
  EXPECT_FALSE(reset_seen);
  relay.poll();
  for (const SeenRecord& r : worker.take())
    reset_seen = reset_seen || (r.kind == static_cast<uint16_t>(Kind::reset) && r.session == *a);
  EXPECT_TRUE(reset_seen);
  EXPECT_EQ(relay.sessions(), 1u);  // b
}

TEST(TlsRelayCredit, OneSessionOutOfCreditLeavesTheRingToAnotherOnTheSameChannel) {
  RecordingHandler handler;
  TlsRelay relay(handler, 8);
  shm::ChannelMemory memory = new_channel(tls_channel::kDefaultRingBytes);
  ScriptedWorker worker(memory);
  relay.attach_channel(0, std::move(memory), -1);
  const auto a = relay.open(1, open_request());
  const auto b = relay.open(2, open_request());
  ASSERT_TRUE(a && b);
  // a's client sends 2 MiB while the worker reads nothing (stalled): a gets its credit, a
  // quarter of the ring, and waits; the ring is not full.
  const auto flood = bytes_of(2 << 20, 5);
  size_t offered = relay.from_client(*a, flood);
  const uint64_t credit = tls_channel::kDefaultRingBytes / TlsRelay::kSessionCreditShare;
  EXPECT_EQ(offered, credit);
  EXPECT_EQ(relay.counters().credit_waits.get(), 1u);
  EXPECT_EQ(relay.counters().ring_full.get(), 0u);
  // b, on the same channel, still moves: all of its 64 KiB and its FIN are taken.
  const auto small = bytes_of(64 << 10, 6);
  EXPECT_EQ(relay.from_client(*b, small), small.size());
  EXPECT_TRUE(relay.client_end(*b));
  relay.poll();
  EXPECT_EQ(handler.logs[1].writable, 0) << "nothing consumed: no credit back";
  std::map<uint64_t, std::vector<uint8_t>> received;
  bool b_ended = false;
  auto take = [&] {
    for (const SeenRecord& r : worker.take()) {
      if (r.kind == static_cast<uint16_t>(Kind::ciphertext))
        received[r.session].insert(received[r.session].end(), r.payload.begin(), r.payload.end());
      b_ended =
          b_ended || (r.session == *b && r.kind == static_cast<uint16_t>(Kind::ciphertext_end));
    }
  };
  // The worker drains; each poll gives a its credit back and tells it.
  for (int rounds = 0; offered < flood.size() && rounds < 100; ++rounds) {
    take();
    const int before = handler.logs[1].writable;
    relay.poll();
    ASSERT_EQ(handler.logs[1].writable, before + 1) << "credit back, and the session is told";
    const size_t more = relay.from_client(*a, std::span(flood).subspan(offered));
    EXPECT_LE(more, credit);
    offered += more;
    relay.poll();
  }
  take();
  EXPECT_EQ(offered, flood.size());
  EXPECT_EQ(received[*a], flood);
  EXPECT_EQ(received[*b], small);
  EXPECT_TRUE(b_ended);
  EXPECT_EQ(relay.counters().ring_full.get(), 0u);
  EXPECT_FALSE(handler.logs[1].reset.has_value());
  EXPECT_FALSE(handler.logs[2].reset.has_value());
}

TEST_F(TlsRelayTest, ABrokenRingDropsItsChannelAndOnlyItsSessions) {
  const auto [a, ca] = open(1);
  const auto [b, cb] = open(2);
  // A head index beyond anything the producer could have written.
  workers_[ca]->view().ring(1)->head.store(uint64_t{1} << 40, std::memory_order_release);
  relay_.poll();
  EXPECT_EQ(handler_.logs[1].reset, TlsRelayReset::worker_gone);
  EXPECT_FALSE(handler_.logs[2].reset.has_value());
  EXPECT_EQ(relay_.counters().channels_dropped.get(), 1u);
  EXPECT_EQ(relay_.live_channels(), 1u);
  // New sessions go to the channel left.
  const auto [c, cc] = open(3);
  EXPECT_EQ(cc, cb);
  workers_[cb]->send(b, Kind::ciphertext, {4});
  relay_.poll();
  EXPECT_EQ(handler_.logs[2].to_client, (std::vector<uint8_t>{4}));
}

TEST_F(TlsRelayTest, ADetachedWorkerResetsItsSessionsAndANewOneTakesItsPlace) {
  std::map<size_t, std::vector<uint64_t>> tokens_on;
  for (uint64_t token = 1; token <= 6; ++token) tokens_on[open(token).second].push_back(token);
  ASSERT_EQ(tokens_on[0].size(), 3u);
  relay_.detach_channel(0);
  for (uint64_t t : tokens_on[0]) EXPECT_EQ(handler_.logs[t].reset, TlsRelayReset::worker_gone);
  for (uint64_t t : tokens_on[1]) EXPECT_FALSE(handler_.logs[t].reset.has_value());
  EXPECT_EQ(relay_.sessions(), 3u);
  EXPECT_EQ(open(7).second, 1u);
  // The restarted worker's channel takes the dropped place and the next sessions.
  shm::ChannelMemory memory = new_channel();
  workers_[0] = std::make_unique<ScriptedWorker>(memory);
  relay_.attach_channel(0, std::move(memory), -1);
  EXPECT_EQ(open(8).second, 0u);
  EXPECT_EQ(relay_.sessions_on(0), 1u);
  EXPECT_EQ(relay_.sessions_on(1), 4u);
}

TEST(TlsRelayTable, AFullTableRefusesAndAFreedSlotServesAgainUnderANewId) {
  RecordingHandler handler;
  TlsRelay relay(handler, 2);
  shm::ChannelMemory memory = new_channel();
  ScriptedWorker worker(memory);
  relay.attach_channel(0, std::move(memory), -1);
  const auto a = relay.open(1, open_request());
  const auto b = relay.open(2, open_request());
  ASSERT_TRUE(a && b);
  EXPECT_FALSE(relay.open(3, open_request()));
  relay.close(*a);
  const auto c = relay.open(3, open_request());
  ASSERT_TRUE(c);
  EXPECT_NE(*c, *a);  // the same slot, another generation
  EXPECT_EQ(*c & 0xffffffff, *a & 0xffffffff);
  relay.poll();
  worker.take();
  worker.send(*a, Kind::ciphertext, {1});  // the old id: stale, not c's
  worker.send(*c, Kind::ciphertext, {2});
  relay.poll();
  EXPECT_EQ(relay.counters().stale_records.get(), 1u);
  EXPECT_EQ(handler.logs[3].to_client, (std::vector<uint8_t>{2}));
  EXPECT_TRUE(handler.logs[1].to_client.empty());
}

// ---- with weir-tls-worker's engine ------------------------------------------------------------

std::array<uint8_t, 32> sha256(const std::vector<uint8_t>& bytes) {
  std::array<uint8_t, 32> digest;
  SHA256(bytes.data(), bytes.size(), digest.data());
  return digest;
}

// A relay whose handler is a TLS client (ciphertext both ways through memory BIOs) and an echo
// backend (the plaintext it gets is sent back).
class EchoThroughWorker : public TlsRelayHandler {
 public:
  EchoThroughWorker() : relay_(*this, 16) {}
  ~EchoThroughWorker() override {
    if (ssl_ != nullptr) SSL_free(ssl_);
    if (ctx_ != nullptr) SSL_CTX_free(ctx_);
  }

  void tls_handshake_done(uint64_t, const tls_channel::HandshakeDone& done) override {
    done_ = done;
  }
  void tls_to_client(uint64_t, std::span<const uint8_t> bytes) override {
    BIO_write(client_rbio_, bytes.data(), static_cast<int>(bytes.size()));
  }
  void tls_to_backend(uint64_t, std::span<const uint8_t> bytes) override {
    backend_received_.insert(backend_received_.end(), bytes.begin(), bytes.end());
  }
  void tls_client_end(uint64_t) override {}
  void tls_backend_end(uint64_t) override {}
  void tls_reset(uint64_t, TlsRelayReset why) override { reset_ = why; }
  void tls_writable(uint64_t) override {}

  void run(const std::string& config_text, const X509* root, int max_version, size_t bytes) {
    const config::LoadResult loaded = config::load_string(config_text, "t.yaml");
    ASSERT_TRUE(loaded.ok()) << (loaded.errors.empty() ? "" : loaded.errors[0].to_string());
    std::vector<std::string> errors;
    ASSERT_TRUE(contexts_.load(*loaded.config, errors)) << ::testing::PrintToString(errors);
    tls::TlsWorker worker(contexts_);
    shm::ChannelMemory memory = new_channel();
    std::string error;
    auto view = shm::ChannelMemory::map(dup(memory.fd()), error);
    ASSERT_TRUE(view) << error;
    worker.add_channel(std::move(*view), -1);
    relay_.attach_channel(0, std::move(memory), -1);

    ctx_ = SSL_CTX_new(TLS_client_method());
    X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx_), const_cast<X509*>(root));
    SSL_CTX_set_verify(ctx_, SSL_VERIFY_PEER, nullptr);
    SSL_CTX_set_max_proto_version(ctx_, max_version);
    ssl_ = SSL_new(ctx_);
    client_rbio_ = BIO_new(BIO_s_mem());
    BIO* wbio = BIO_new(BIO_s_mem());
    BIO_set_mem_eof_return(client_rbio_, -1);
    SSL_set_bio(ssl_, client_rbio_, wbio);
    SSL_set_connect_state(ssl_);
    SSL_set_tlsext_host_name(ssl_, "site.example");
    SSL_set1_host(ssl_, "site.example");
    const auto id = relay_.open(1, open_request());
    ASSERT_TRUE(id);

    const std::vector<uint8_t> sent = bytes_of(bytes, 17);
    std::vector<uint8_t> received, parked;  // parked: client ciphertext the ring did not take
    size_t written = 0, echoed = 0;
    for (int rounds = 0; received.size() < sent.size() && !reset_ && rounds < 20'000; ++rounds) {
      if (!SSL_is_init_finished(ssl_)) {
        SSL_do_handshake(ssl_);
      } else if (written < sent.size()) {
        const size_t n = std::min<size_t>(sent.size() - written, 32'768);
        ASSERT_EQ(SSL_write(ssl_, sent.data() + written, static_cast<int>(n)), static_cast<int>(n));
        written += n;
      }
      uint8_t buffer[16384];
      int n;
      while ((n = BIO_read(wbio, buffer, sizeof buffer)) > 0)
        parked.insert(parked.end(), buffer, buffer + n);
      parked.erase(parked.begin(),
                   parked.begin() + static_cast<long>(relay_.from_client(*id, parked)));
      relay_.poll();
      worker.poll_once(0);
      relay_.poll();
      if (echoed < backend_received_.size())
        echoed += relay_.from_backend(*id, std::span(backend_received_).subspan(echoed));
      if (SSL_is_init_finished(ssl_)) {
        while ((n = SSL_read(ssl_, buffer, sizeof buffer)) > 0)
          received.insert(received.end(), buffer, buffer + n);
      }
    }
    EXPECT_FALSE(reset_.has_value());
    ASSERT_TRUE(done_.has_value());
    EXPECT_EQ(done_->version, max_version);
    EXPECT_EQ(done_->server_name, "site.example");
    EXPECT_EQ(SSL_get_verify_result(ssl_), X509_V_OK);
    EXPECT_EQ(backend_received_.size(), sent.size());
    EXPECT_EQ(sha256(backend_received_), sha256(sent));
    EXPECT_EQ(received.size(), sent.size());
    EXPECT_EQ(sha256(received), sha256(sent));
    EXPECT_EQ(relay_.counters().fault(TlsRecordFault::bad_length) +
                  relay_.counters().fault(TlsRecordFault::bad_kind) +
                  relay_.counters().fault(TlsRecordFault::foreign_session) +
                  relay_.counters().fault(TlsRecordFault::out_of_order),
              0u);
  }

 private:
  TlsRelay relay_;
  tls::Contexts contexts_;
  SSL_CTX* ctx_ = nullptr;
  SSL* ssl_ = nullptr;
  BIO* client_rbio_ = nullptr;
  std::optional<tls_channel::HandshakeDone> done_;
  std::optional<TlsRelayReset> reset_;
  std::vector<uint8_t> backend_received_;
};

class TlsRelayWithWorker : public ::testing::TestWithParam<int> {
 protected:
  void SetUp() override {
    root_ = test::issue({"Test Root", {}, true}, nullptr);
    site_ = test::issue({"site.example", {"site.example"}}, &root_);
    test::write_pem(dir_.path() / "site.pem", {site_.cert.get()});
    test::write_pem(dir_.path() / "site.key", site_.key.get());
    config_text_ =
        "dataplane:\n"
        "  eal: [\"--no-pci\", \"--vdev=net_tap0,iface=x\"]\n"
        "  ports: [{ name: p0, device: net_tap0, address: 10.0.0.2/24 }]\n"
        "pools:\n"
        "  - { name: kv, backends: [{ name: b1, address: 10.0.0.11, port: 80 }] }\n"
        "listeners:\n"
        "  - name: secure\n"
        "    address: 10.0.0.100\n"
        "    port: 7443\n"
        "    protocol: tls\n"
        "    pool: kv\n"
        "    tls:\n"
        "      certificates: [{ cert: " +
        dir_.file("site.pem") + ", key: " + dir_.file("site.key") + " }]\n";
  }
  test::TempDir dir_;
  test::Issued root_, site_;
  std::string config_text_;
};

TEST_P(TlsRelayWithWorker, OneMebibyteEachWayIntact) {
  EchoThroughWorker echo;
  echo.run(config_text_, root_.cert.get(), GetParam(), 1 << 20);
}

INSTANTIATE_TEST_SUITE_P(Versions, TlsRelayWithWorker,
                         ::testing::Values(TLS1_3_VERSION, TLS1_2_VERSION), [](const auto& info) {
                           return info.param == TLS1_3_VERSION ? "tls13" : "tls12";
                         });

}  // namespace
}  // namespace weir::proxy
