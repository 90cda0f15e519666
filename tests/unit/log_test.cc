// The daemons' log (common/log.h): the line format on a terminal and for the journal, the
// JOURNAL_STREAM check, and the rate limit (common/rate_limit.h) that keeps a storm of messages a
// few lines and a count; and the SPSC ring (common/spsc_ring.h) the frame events travel in.
#include "common/log.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <string>
#include <thread>

#include "common/rate_limit.h"
#include "common/spsc_ring.h"

namespace weir {
namespace {

TEST(LogRateLimit, LetsTheBurstThroughThenOnePerInterval) {
  LogRateLimit limit(3, 1000);
  uint64_t now = 5'000'000;
  int allowed = 0;
  for (int i = 0; i < 100; ++i) allowed += limit.allow(now) ? 1 : 0;
  EXPECT_EQ(allowed, 3);
  EXPECT_EQ(limit.take_suppressed(), 97u);
  EXPECT_EQ(limit.take_suppressed(), 0u);  // taken
  EXPECT_FALSE(limit.allow(now + 999));
  EXPECT_TRUE(limit.allow(now + 1000));
  EXPECT_FALSE(limit.allow(now + 1000));
  // Ten intervals of quiet earn the burst back, never more.
  now += 1000 + 10 * 1000;
  allowed = 0;
  for (int i = 0; i < 10; ++i) allowed += limit.allow(now) ? 1 : 0;
  EXPECT_EQ(allowed, 3);
  EXPECT_EQ(limit.suppressed_total(), 97u + 1 + 1 + 7);
}

TEST(LogRateLimit, AStormAtAnyRateGivesAtMostBurstPlusOnePerInterval) {
  LogRateLimit limit(10, 1'000'000);
  uint64_t allowed = 0, refused = 0;
  // 100 000 messages a second for 5 seconds.
  for (uint64_t t = 0; t < 5'000'000; t += 10) (limit.allow(t) ? allowed : refused)++;
  EXPECT_EQ(allowed, 10u + 4u);
  EXPECT_EQ(allowed + refused, 500'000u);
  EXPECT_EQ(limit.suppressed_total(), refused);
}

TEST(LogRateLimit, TimeGoingBackwardsEarnsNothing) {
  LogRateLimit limit(1, 100);
  EXPECT_TRUE(limit.allow(1000));
  EXPECT_FALSE(limit.allow(500));
  EXPECT_FALSE(limit.allow(1099));
  EXPECT_TRUE(limit.allow(1100));
}

timespec at(time_t seconds, long nanoseconds) {
  timespec ts{};
  ts.tv_sec = seconds;
  ts.tv_nsec = nanoseconds;
  return ts;
}

TEST(LogFormat, ATerminalLineHasTheUtcTimeAndTheLevel) {
  // 2026-12-02 10:45:19.123 UTC
  EXPECT_EQ(log::format_line(log::Level::warning, "weir-dataplane", "port dp0: link down", false,
                             at(1796208319, 123'456'789)),
            "2026-12-02T10:45:19.123Z warning weir-dataplane: port dp0: link down\n");
  EXPECT_EQ(log::format_line(log::Level::info, "weir-control", "ready", false, at(0, 0)),
            "1970-01-01T00:00:00.000Z info weir-control: ready\n");
}

TEST(LogFormat, AJournalLineStartsWithTheSyslogPriorityAndNoTime) {
  EXPECT_EQ(log::format_line(log::Level::error, "weir-control", "boom", true, at(1, 0)),
            "<3>weir-control: boom\n");
  EXPECT_EQ(log::format_line(log::Level::warning, "w", "m", true, at(1, 0)), "<4>w: m\n");
  EXPECT_EQ(log::format_line(log::Level::notice, "w", "m", true, at(1, 0)), "<5>w: m\n");
  EXPECT_EQ(log::format_line(log::Level::info, "w", "m", true, at(1, 0)), "<6>w: m\n");
  EXPECT_EQ(log::format_line(log::Level::debug, "w", "m", true, at(1, 0)), "<7>w: m\n");
}

TEST(LogFormat, ANewlineInAMessageCannotForgeASecondLine) {
  EXPECT_EQ(
      log::format_line(log::Level::warning, "w", "bad request \"x\n<3>w: forged\"", true, at(1, 0)),
      "<4>w: bad request \"x <3>w: forged\"\n");
}

TEST(LogFormat, SuppressedCountsAreSaid) {
  EXPECT_EQ(log::with_suppressed("m", 0), "m");
  EXPECT_EQ(log::with_suppressed("m", 1), "m (1 similar message suppressed)");
  EXPECT_EQ(log::with_suppressed("m", 42), "m (42 similar messages suppressed)");
}

TEST(JournalStream, MatchesOnlyTheDeviceAndInodeOfTheDescriptor) {
  FILE* file = std::tmpfile();
  ASSERT_NE(file, nullptr);
  struct stat st {};
  ASSERT_EQ(fstat(fileno(file), &st), 0);
  const std::string mine = std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino);
  const std::string other = std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino + 1);
  EXPECT_TRUE(log::is_journal_stream(mine.c_str(), fileno(file)));
  EXPECT_FALSE(log::is_journal_stream(other.c_str(), fileno(file)));
  EXPECT_FALSE(log::is_journal_stream(nullptr, fileno(file)));
  EXPECT_FALSE(log::is_journal_stream("garbage", fileno(file)));
  std::fclose(file);
}

TEST(LogSite, AStormBecomesTheBurstAndOneLineThatCountsTheRest) {
  // The site's lines go to stdout (info): captured through a pipe.
  int pipe_fds[2];
  ASSERT_EQ(pipe(pipe_fds), 0);
  std::fflush(stdout);
  const int saved = dup(STDOUT_FILENO);
  dup2(pipe_fds[1], STDOUT_FILENO);
  log::init("weir-test", true);
  log::LogSite site(5, 1'000'000);
  int written = 0;
  for (int i = 0; i < 1000; ++i) written += site.write(log::Level::info, "bad request", 10) ? 1 : 0;
  written += site.write(log::Level::info, "bad request", 1'000'010) ? 1 : 0;
  std::fflush(stdout);
  dup2(saved, STDOUT_FILENO);
  close(saved);
  close(pipe_fds[1]);
  std::string out;
  char buffer[4096];
  for (ssize_t n; (n = read(pipe_fds[0], buffer, sizeof buffer)) > 0;) out.append(buffer, n);
  close(pipe_fds[0]);
  EXPECT_EQ(written, 6);
  size_t lines = 0;
  for (const char c : out) lines += c == '\n' ? 1 : 0;
  EXPECT_EQ(lines, 6u) << out;
  EXPECT_NE(out.find("info weir-test: bad request (995 similar messages suppressed)\n"),
            std::string::npos)
      << out;
  EXPECT_EQ(site.suppressed_total(), 995u);
}

TEST(SpscRing, KeepsOrderRefusesWhenFullAndCrossesThreads) {
  SpscRing<uint64_t, 8> ring;
  for (uint64_t i = 0; i < 8; ++i) EXPECT_TRUE(ring.try_push(i));
  EXPECT_FALSE(ring.try_push(99));
  uint64_t v = 0;
  for (uint64_t i = 0; i < 8; ++i) {
    ASSERT_TRUE(ring.try_pop(v));
    EXPECT_EQ(v, i);
  }
  EXPECT_FALSE(ring.try_pop(v));

  SpscRing<uint64_t, 64> shared;
  constexpr uint64_t kCount = 200'000;
  uint64_t refused = 0;
  std::thread producer([&] {
    for (uint64_t i = 0; i < kCount; ++i) {
      while (!shared.try_push(i)) ++refused;
    }
  });
  uint64_t expected = 0;
  while (expected < kCount) {
    if (shared.try_pop(v)) {
      ASSERT_EQ(v, expected);
      ++expected;
    }
  }
  producer.join();
  EXPECT_EQ(expected, kCount);
}

}  // namespace
}  // namespace weir
