// The frame event log of the dataplane's main lcore (dataplane/main_lcore/frame_event_log.h): the
// line and the JSON an operator reads, the per-listener rate limit (a storm on one listener
// neither floods the log nor silences another listener), the bounded recent buffer, and the
// last-seen time per path.
#include "dataplane/main_lcore/frame_event_log.h"

#include <gtest/gtest.h>

#include <algorithm>

#include <string>
#include <utility>
#include <vector>

#include "common/net/address.h"
#include "dataplane/main_lcore/session_log.h"

namespace weir::dataplane {
namespace {

// proxy::Direction's values (proxy.h needs DPDK; this suite does not).
constexpr uint8_t kToBackend = 0;
constexpr uint8_t kToClient = 1;
constexpr uint64_t kUnixUs = 1796208319'123456;  // 2026-12-02T10:45:19.123456Z

proxy::FrameEvent corrupt_event(uint8_t direction = kToBackend) {
  proxy::FrameEvent e;
  e.time_us = 1;
  e.fault.stream = 4242;
  e.fault.length = 4000;
  e.fault.expected_crc = 0x1a2b3c4d;
  e.fault.received_crc = 0xdeadbeef;
  e.client_address = net::Ipv4Address::from_octets(10, 99, 0, 2).value();
  e.client_port = 40001;
  e.direction = direction;
  return e;
}

const FrameEventNames kNames{"framed", "frames", "b1"};

TEST(FrameEventFormat, TheLineCarriesEveryField) {
  EXPECT_EQ(format_frame_event(corrupt_event(), kNames, kUnixUs),
            "frame event: time=2026-12-02T10:45:19.123456Z listener=framed direction=to_backend "
            "client=10.99.0.2:40001 pool=frames backend=b1 stream=4242 length=4000 "
            "verdict=corrupt expected_crc=0x1a2b3c4d received_crc=0xdeadbeef action=reset");
}

TEST(FrameEventFormat, CountModeMalformedAndNoBackendAreSaid) {
  proxy::FrameEvent forwarded = corrupt_event(kToClient);
  forwarded.fault.forwarded = true;
  const std::string line = format_frame_event(forwarded, kNames, kUnixUs);
  EXPECT_NE(line.find(" direction=to_client "), std::string::npos) << line;
  EXPECT_TRUE(line.ends_with(" action=forwarded")) << line;

  proxy::FrameEvent malformed = corrupt_event();
  malformed.fault = {};
  malformed.fault.malformed = true;
  malformed.fault.reason = frame::Malformed::bad_magic;
  malformed.fault.stream = 9;
  const std::string bad = format_frame_event(malformed, {"framed", "frames", ""}, kUnixUs);
  EXPECT_NE(bad.find(" backend=- "), std::string::npos) << bad;
  EXPECT_NE(
      bad.find(" verdict=malformed reason=\"bad magic in bytes 0-1 (expected 0x57 0x46, 'WF')\" "
               "action=reset"),
      std::string::npos)
      << bad;
  EXPECT_EQ(bad.find("crc="), std::string::npos) << bad;  // a malformed header has no verdict
  const nlohmann::json j = frame_event_json(malformed, {"framed", "frames", ""}, kUnixUs);
  EXPECT_EQ(j["verdict"], "malformed");
  EXPECT_EQ(j["reason"], frame::to_string(frame::Malformed::bad_magic));
  EXPECT_FALSE(j.contains("expected_crc"));
}

TEST(FrameEventFormat, TheJsonCarriesEveryField) {
  const nlohmann::json j = frame_event_json(corrupt_event(), kNames, kUnixUs);
  EXPECT_EQ(j["time"], "2026-12-02T10:45:19.123456Z");
  EXPECT_EQ(j["unix_us"], kUnixUs);
  EXPECT_EQ(j["listener"], "framed");
  EXPECT_EQ(j["direction"], "to_backend");
  EXPECT_EQ(j["client"], "10.99.0.2:40001");
  EXPECT_EQ(j["pool"], "frames");
  EXPECT_EQ(j["backend"], "b1");
  EXPECT_EQ(j["stream"], 4242);
  EXPECT_EQ(j["length"], 4000);
  EXPECT_EQ(j["verdict"], "corrupt");
  EXPECT_EQ(j["expected_crc"], "0x1a2b3c4d");
  EXPECT_EQ(j["received_crc"], "0xdeadbeef");
  EXPECT_EQ(j["action"], "reset");
}

TEST(FrameEventFormat, NamesCannotBreakTheKeyValueForm) {
  const std::string line = format_frame_event(corrupt_event(), {"a b=c", "frames", "b1"}, kUnixUs);
  EXPECT_NE(line.find(" listener=a_b_c "), std::string::npos) << line;
}

struct Captured {
  std::vector<std::string> lines;
  FrameEventLog::Sink sink() {
    return [this](log::Level level, const std::string& line) {
      EXPECT_EQ(level, log::Level::warning);
      lines.push_back(line);
    };
  }
};

TEST(FrameEventLog, AStormOnOneListenerIsLimitedAndCountedAndDoesNotSilenceAnother) {
  Captured out;
  FrameEventLog log(out.sink());
  uint64_t now = 1'000'000;
  for (int i = 0; i < 5000; ++i) log.record(corrupt_event(), kNames, kUnixUs, now);
  EXPECT_EQ(out.lines.size(), FrameEventLog::kBurst);
  EXPECT_EQ(log.suppressed(), 5000 - FrameEventLog::kBurst);
  // Another listener still gets its lines.
  log.record(corrupt_event(), {"other", "frames", "b2"}, kUnixUs, now);
  ASSERT_EQ(out.lines.size(), FrameEventLog::kBurst + 1);
  EXPECT_NE(out.lines.back().find("listener=other"), std::string::npos);
  // A second later the held-back lines are counted on the next line of that listener...
  now += FrameEventLog::kIntervalUs;
  log.record(corrupt_event(), kNames, kUnixUs, now);
  ASSERT_EQ(out.lines.size(), FrameEventLog::kBurst + 2);
  EXPECT_TRUE(out.lines.back().ends_with("(4990 similar messages suppressed)")) << out.lines.back();
  EXPECT_EQ(log.logged(), out.lines.size());
  EXPECT_EQ(log.recorded(), 5002u);
  EXPECT_EQ(log.logged() + log.suppressed(), log.recorded());
}

TEST(FrameEventLog, HeldBackLinesAreReportedEvenWithoutALaterEvent) {
  Captured out;
  FrameEventLog log(out.sink());
  for (int i = 0; i < 25; ++i) log.record(corrupt_event(), kNames, kUnixUs, 0);
  log.report_suppressed(0);  // no token yet: nothing
  EXPECT_EQ(out.lines.size(), FrameEventLog::kBurst);
  log.report_suppressed(FrameEventLog::kIntervalUs);
  ASSERT_EQ(out.lines.size(), FrameEventLog::kBurst + 1);
  EXPECT_EQ(out.lines.back(),
            "frame events: listener=framed: 15 more not logged (rate limit); `weirctl events` "
            "shows the latest");
  log.report_suppressed(10 * FrameEventLog::kIntervalUs);  // said once
  EXPECT_EQ(out.lines.size(), FrameEventLog::kBurst + 1);
}

TEST(FrameEventLog, KeepsTheLatestEventsInOrderAndNoMore) {
  Captured out;
  FrameEventLog log(out.sink());
  const size_t total = FrameEventLog::kRecent + 40;
  for (size_t i = 0; i < total; ++i) {
    proxy::FrameEvent e = corrupt_event();
    e.fault.stream = static_cast<uint32_t>(i);
    log.record(e, kNames, kUnixUs + i, 0);
  }
  const nlohmann::json all = log.recent(10'000);
  ASSERT_EQ(all.size(), FrameEventLog::kRecent);
  EXPECT_EQ(all.front()["stream"], 40);
  EXPECT_EQ(all.back()["stream"], total - 1);
  EXPECT_EQ(all.back()["seq"], total);
  const nlohmann::json three = log.recent(3);
  ASSERT_EQ(three.size(), 3u);
  EXPECT_EQ(three[2]["stream"], total - 1);
}

TEST(FrameEventLog, RemembersTheLastTimeOfEachPath) {
  Captured out;
  FrameEventLog log(out.sink());
  log.record(corrupt_event(kToClient), kNames, 5'000'000, 0);
  log.record(corrupt_event(kToClient), kNames, 7'000'000, 0);
  log.record(corrupt_event(kToClient), kNames, 6'000'000, 0);           // older, drained later
  log.record(corrupt_event(), {"framed", "frames", ""}, 9'000'000, 0);  // no backend: no path
  EXPECT_EQ(log.last_seen_unix_us("frames", "b1", kToClient), 7'000'000u);
  EXPECT_EQ(log.last_seen_unix_us("frames", "b1", kToBackend), 0u);
  EXPECT_EQ(log.last_seen_unix_us("frames", "b2", kToClient), 0u);
}

}  // namespace
}  // namespace weir::dataplane

namespace weir::dataplane {
namespace {

// The session log's line (dataplane/main_lcore/session_log.h): every field, the duration from the
// worker's two times, and each way a session can end named.
TEST(SessionLogFormat, TheLineCarriesEveryField) {
  proxy::SessionRecord r;
  r.start_us = 5'000'000;
  r.end_us = 5'012'345;  // 12.345 ms later
  r.bytes = {1000, 72};
  r.client_address = net::Ipv4Address::from_octets(10, 99, 0, 2).value();
  r.client_port = 40001;
  r.end = proxy::SessionEnd::client_reset;
  EXPECT_EQ(format_session_record(r, FrameEventNames{"web", "app", "b 1"}, kUnixUs),
            "session: start=2026-12-02T10:45:19.123456Z listener=web client=10.99.0.2:40001 "
            "pool=app backend=b_1 bytes_to_backend=1000 bytes_to_client=72 duration_ms=12.3 "
            "end=client_reset");
}

TEST(SessionLogFormat, NoBackendAndEveryEndHaveNames) {
  proxy::SessionRecord r;
  r.end = proxy::SessionEnd::no_backend;
  EXPECT_NE(format_session_record(r, FrameEventNames{"web", "app", ""}, kUnixUs)
                .find(" backend=- bytes_to_backend=0 bytes_to_client=0 duration_ms=0.0 "
                      "end=no_backend"),
            std::string::npos);
  std::vector<std::string_view> names(proxy::kSessionEndNames.begin(),
                                      proxy::kSessionEndNames.end());
  std::sort(names.begin(), names.end());
  EXPECT_EQ(std::unique(names.begin(), names.end()), names.end()) << "names must differ";
  EXPECT_EQ(proxy::name_of(proxy::SessionEnd::shutdown), "shutdown");
}

// The session log's rate limit: a storm of short sessions on one listener is kBurst lines and a
// count (every record either logged or counted held back), another listener keeps its lines, and
// the held-back ones are said by the next line or by a summary once the limit allows one.
TEST(SessionLog, AStormOfSessionsIsLimitedPerListenerAndEveryRecordIsCounted) {
  std::vector<std::string> lines;
  SessionLog log([&](log::Level level, const std::string& line) {
    EXPECT_EQ(level, log::Level::info);
    lines.push_back(line);
  });
  proxy::SessionRecord r;
  r.end = proxy::SessionEnd::fin;
  uint64_t now = 1'000'000;
  for (int i = 0; i < 1000; ++i) log.record(r, {"web", "app", "b1"}, kUnixUs, now);
  EXPECT_EQ(lines.size(), SessionLog::kBurst);
  EXPECT_EQ(log.suppressed(), 1000 - SessionLog::kBurst);
  log.record(r, {"other", "app", "b2"}, kUnixUs, now);
  ASSERT_EQ(lines.size(), SessionLog::kBurst + 1);
  EXPECT_NE(lines.back().find("listener=other"), std::string::npos);
  log.report_suppressed(now);  // no token yet: nothing said
  EXPECT_EQ(lines.size(), SessionLog::kBurst + 1);
  now += SessionLog::kIntervalUs;
  log.record(r, {"web", "app", "b1"}, kUnixUs, now);
  ASSERT_EQ(lines.size(), SessionLog::kBurst + 2);
  EXPECT_TRUE(lines.back().ends_with("end=fin (900 similar messages suppressed)")) << lines.back();
  for (int i = 0; i < 5; ++i) log.record(r, {"web", "app", "b1"}, kUnixUs, now);
  now += SessionLog::kIntervalUs;
  log.report_suppressed(now);
  ASSERT_EQ(lines.size(), SessionLog::kBurst + 3);
  EXPECT_EQ(lines.back(), "session log: listener=web: 5 more sessions not logged (rate limit)");
  log.report_suppressed(now + 10 * SessionLog::kIntervalUs);  // said once
  EXPECT_EQ(lines.size(), SessionLog::kBurst + 3);
  EXPECT_EQ(log.logged() + log.suppressed(), 1007u);
  EXPECT_EQ(log.logged(), SessionLog::kBurst + 2);
}

}  // namespace
}  // namespace weir::dataplane
