// weir-control's supervision of the TLS workers (control/tls_supervisor.h) with a fake clock and
// fake processes: the back-off schedule (100 ms doubling to 10 s, per slot), its reset after a
// worker stayed up 60 s, a start that fails, stop; and the ticket key schedule
// (control/ticket_key_schedule.h) and its wire format (common/ticket_key_wire.h), hostile
// messages included.
#include <gtest/gtest.h>
#include <signal.h>

#include <map>
#include <vector>

#include "common/ticket_key_wire.h"
#include "control/ticket_key_schedule.h"
#include "control/tls_supervisor.h"
#include "control/tls_workers.h"

namespace weir::control {
namespace {

// Processes that exist only as pids; a slot's start can be made to fail.
struct FakeProcesses {
  pid_t next = 1000;
  std::map<size_t, bool> failing;
  std::vector<std::pair<size_t, uint64_t>> starts;  // (slot, at)
  std::vector<std::pair<pid_t, int>> signals;
  uint64_t* clock = nullptr;

  TlsSupervisor make(size_t workers) {
    return TlsSupervisor(
        {.workers = workers},
        [this](size_t slot) -> pid_t {
          starts.push_back({slot, *clock});
          return failing[slot] ? -1 : next++;
        },
        [this](pid_t pid, int signal) {
          signals.push_back({pid, signal});
        });
  }
};

TEST(TlsSupervisor, StartsEveryWorkerAndRestartsOneThatEndsWithDoublingBackoff) {
  uint64_t now = 5'000;
  FakeProcesses p;
  p.clock = &now;
  TlsSupervisor s = p.make(3);
  s.start(now);
  EXPECT_EQ(s.running(), 3u);
  EXPECT_EQ(s.next_due_in(now), -1) << "nothing pending";
  const pid_t victim = s.pid(1);
  EXPECT_FALSE(s.exited(4242, now)) << "not a worker";
  // Slot 1 crashes again and again, each time 1 ms after its start: 100, 200, 400 ... 10 s, 10 s.
  std::vector<uint64_t> delays;
  pid_t current = victim;
  for (int crash = 0; crash < 10; ++crash) {
    now += 1;
    ASSERT_TRUE(s.exited(current, now));
    EXPECT_EQ(s.running(), 2u);
    const int due = s.next_due_in(now);
    ASSERT_GT(due, 0);
    s.tick(now + due - 1);
    EXPECT_EQ(s.running(), 2u) << "not before its back-off";
    now += due;
    s.tick(now);
    ASSERT_EQ(s.running(), 3u);
    delays.push_back(static_cast<uint64_t>(due));
    current = s.pid(1);
    EXPECT_NE(current, victim);
  }
  EXPECT_EQ(delays,
            (std::vector<uint64_t>{100, 200, 400, 800, 1600, 3200, 6400, 10'000, 10'000, 10'000}));
  EXPECT_EQ(s.restarts(), 10u);
  for (const auto& [slot, at] : p.starts) EXPECT_TRUE(slot == 1 || at == 5'000) << slot;
  // A worker that stayed up 60 s: its next crash waits the shortest delay again.
  now += 60'000;
  ASSERT_TRUE(s.exited(current, now));
  EXPECT_EQ(s.next_due_in(now), 100);
  // The other slots kept their own schedule: a first crash of slot 2 waits 100 ms too.
  ASSERT_TRUE(s.exited(s.pid(2), now));
  EXPECT_EQ(s.backoff_ms(2), 200u) << "the delay after this one";
}

TEST(TlsSupervisor, AWorkerThatDiesJustBeforeSixtySecondsKeepsItsBackoff) {
  uint64_t now = 0;
  FakeProcesses p;
  p.clock = &now;
  TlsSupervisor s = p.make(1);
  s.start(now);
  ASSERT_TRUE(s.exited(s.pid(0), now));  // 100
  now += 100;
  s.tick(now);
  now += 59'999;
  ASSERT_TRUE(s.exited(s.pid(0), now));
  EXPECT_EQ(s.next_due_in(now), 200) << "59.999 s is not stable";
}

TEST(TlsSupervisor, AStartThatFailsIsRetriedWithBackoff) {
  uint64_t now = 0;
  FakeProcesses p;
  p.clock = &now;
  p.failing[0] = true;
  TlsSupervisor s = p.make(2);
  s.start(now);
  EXPECT_EQ(s.running(), 1u);
  EXPECT_EQ(s.next_due_in(now), 100);
  now += 100;
  s.tick(now);
  EXPECT_EQ(s.running(), 1u);
  EXPECT_EQ(s.next_due_in(now), 200) << "the failed start doubled the delay";
  p.failing[0] = false;
  now += 200;
  s.tick(now);
  EXPECT_EQ(s.running(), 2u);
  EXPECT_EQ(s.restarts(), 2u);
}

TEST(TlsSupervisor, StopSignalsEveryWorkerAndRestartsNothing) {
  uint64_t now = 0;
  FakeProcesses p;
  p.clock = &now;
  TlsSupervisor s = p.make(3);
  s.start(now);
  ASSERT_TRUE(s.exited(s.pid(0), now));  // one is waiting for its restart
  s.stop(SIGTERM);
  const std::vector<pid_t> running = s.pids();
  ASSERT_EQ(running.size(), 2u);
  ASSERT_EQ(p.signals.size(), 2u);
  for (size_t i = 0; i < running.size(); ++i) {
    EXPECT_EQ(p.signals[i].first, running[i]);
    EXPECT_EQ(p.signals[i].second, SIGTERM);
  }
  EXPECT_EQ(s.next_due_in(now), -1);
  now += 60'000;
  s.tick(now);
  for (pid_t pid : running) ASSERT_TRUE(s.exited(pid, now));
  s.tick(now + 60'000);
  EXPECT_EQ(s.running(), 0u) << "nothing started while stopping";
  EXPECT_EQ(p.starts.size(), 3u);
}

ticket_keys::Key numbered_key(uint8_t n) {
  ticket_keys::Key key;
  key.name.fill(n);
  key.aes.fill(static_cast<uint8_t>(n + 100));
  key.hmac.fill(static_cast<uint8_t>(n + 200));
  return key;
}

TEST(TicketKeySchedule, RotatesOnTimeAndKeepsTheNewestThree) {
  uint8_t made = 0;
  TicketKeySchedule schedule(43'200'000, 1'000, [&] { return numbered_key(++made); });
  ASSERT_EQ(schedule.keys().size(), 1u);
  EXPECT_FALSE(schedule.tick(1'000 + 43'199'999));
  EXPECT_EQ(schedule.rotations(), 0u);
  EXPECT_TRUE(schedule.tick(1'000 + 43'200'000));
  EXPECT_EQ(schedule.keys().size(), 2u);
  uint64_t now = 1'000 + 43'200'000;
  for (int i = 0; i < 3; ++i) {
    EXPECT_FALSE(schedule.tick(now + 43'199'999));
    now += 43'200'000;
    EXPECT_TRUE(schedule.tick(now));
  }
  EXPECT_EQ(schedule.rotations(), 4u);
  ASSERT_EQ(schedule.keys().size(), ticket_keys::kAccepted);
  EXPECT_EQ(schedule.keys()[0].name[0], 5) << "newest first";
  EXPECT_EQ(schedule.keys()[1].name[0], 4);
  EXPECT_EQ(schedule.keys()[2].name[0], 3);
  // A clock that jumps a day ahead rotates once, and the period starts again from then.
  now += 86'400'000;
  EXPECT_TRUE(schedule.tick(now));
  EXPECT_FALSE(schedule.tick(now + 43'199'999));
  EXPECT_EQ(schedule.rotations(), 5u);
}

TEST(TicketKeySchedule, RandomKeysDiffer) {
  const ticket_keys::Key a = TicketKeySchedule::random_key(), b = TicketKeySchedule::random_key();
  EXPECT_NE(a.name, b.name);
  EXPECT_NE(a.aes, b.aes);
  EXPECT_NE(a.hmac, b.hmac);
}

TEST(TicketKeyWire, RoundTripsAndRefusesMalformedMessages) {
  const std::vector<ticket_keys::Key> keys{numbered_key(3), numbered_key(2), numbered_key(1)};
  const std::string message = ticket_keys::encode(keys);
  ASSERT_EQ(message.size(), ticket_keys::kMaxMessageBytes);
  const auto bytes = reinterpret_cast<const uint8_t*>(message.data());
  const auto decoded = ticket_keys::decode(bytes, message.size());
  ASSERT_TRUE(decoded);
  ASSERT_EQ(decoded->size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ((*decoded)[i].name, keys[i].name);
    EXPECT_EQ((*decoded)[i].aes, keys[i].aes);
    EXPECT_EQ((*decoded)[i].hmac, keys[i].hmac);
  }
  // Four keys: only the newest three go.
  EXPECT_EQ(
      ticket_keys::encode({numbered_key(4), numbered_key(3), numbered_key(2), numbered_key(1)}),
      ticket_keys::encode({numbered_key(4), numbered_key(3), numbered_key(2)}));
  EXPECT_FALSE(ticket_keys::decode(bytes, message.size() - 1)) << "truncated";
  EXPECT_FALSE(ticket_keys::decode(bytes, 3)) << "shorter than the header";
  std::string bad = message;
  bad[0] = 'X';
  EXPECT_FALSE(ticket_keys::decode(reinterpret_cast<const uint8_t*>(bad.data()), bad.size()));
  bad = message;
  bad[4] = 4;  // a count over kAccepted
  EXPECT_FALSE(ticket_keys::decode(reinterpret_cast<const uint8_t*>(bad.data()), bad.size()));
  bad = message;
  bad[4] = 0;
  EXPECT_FALSE(ticket_keys::decode(reinterpret_cast<const uint8_t*>(bad.data()), 5));
  bad = message;
  bad[4] = 2;  // a count that does not match the length
  EXPECT_FALSE(ticket_keys::decode(reinterpret_cast<const uint8_t*>(bad.data()), bad.size()));
}

// Workers run for a `tls:` section or a `tls` listener, and only then.
TEST(TlsWorkers, WantedForATlsSectionOrATlsListenerOnly) {
  const std::string base =
      "dataplane:\n"
      "  eal: [\"--no-pci\", \"--vdev=net_tap0,iface=x\"]\n"
      "  ports: [{ name: p0, device: net_tap0, address: 10.0.0.2/24 }]\n"
      "pools:\n"
      "  - { name: kv, backends: [{ name: b1, address: 10.0.0.11, port: 80 }] }\n"
      "listeners:\n"
      "  - { name: web, address: 10.0.0.100, port: 80, protocol: tcp, pool: kv }\n";
  const std::string tls_listener =
      "  - name: secure\n"
      "    address: 10.0.0.100\n"
      "    port: 443\n"
      "    protocol: tls\n"
      "    pool: kv\n"
      "    tls: { certificates: [{ cert: /etc/weir/site.pem, key: /etc/weir/site.key }] }\n";
  auto wanted = [](const std::string& text) {
    const config::LoadResult loaded = config::load_string(text, "t.yaml");
    EXPECT_TRUE(loaded.ok()) << (loaded.errors.empty() ? "" : loaded.errors[0].to_string());
    return loaded.ok() && TlsWorkers::wanted(*loaded.config);
  };
  EXPECT_FALSE(wanted(base));
  EXPECT_TRUE(wanted("tls: { workers: 2 }\n" + base));
  EXPECT_TRUE(wanted("tls: {}\n" + base));
  EXPECT_TRUE(wanted(base + tls_listener));
}

}  // namespace
}  // namespace weir::control
