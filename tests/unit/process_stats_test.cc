// common/process_stats.h: /proc/PID/stat parsed into the process_* values, and this process's
// own values read for real.
#include "common/process_stats.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <time.h>
#include <unistd.h>

#include <string>

namespace weir {
namespace {

// proc(5) fields 1..24 of a process whose command name holds a space and a ')': utime 250,
// stime 150 ticks; starttime 1000 ticks after boot; vsize 8 MiB; rss 300 pages.
constexpr std::string_view kStat =
    "4242 (weir) x) S 1 4242 4242 0 -1 4194560 500 0 0 0 250 150 0 0 20 0 3 0 1000 8388608 300 "
    "18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n";

TEST(ProcessStats, ParsesTheFieldsAfterTheLastParenthesis) {
  std::string error;
  const std::optional<ProcessStats> stats = parse_proc_stat(kStat, 100, 4096, 1.7e9, error);
  ASSERT_TRUE(stats) << error;
  EXPECT_DOUBLE_EQ(stats->cpu_seconds, 4.0);  // (250 + 150) / 100
  EXPECT_DOUBLE_EQ(stats->start_time_seconds, 1.7e9 + 10.0);
  EXPECT_DOUBLE_EQ(stats->virtual_memory_bytes, 8388608.0);
  EXPECT_DOUBLE_EQ(stats->resident_memory_bytes, 300.0 * 4096);
}

TEST(ProcessStats, RefusesBrokenLines) {
  std::string error;
  EXPECT_FALSE(parse_proc_stat("4242 weir S 1 2 3", 100, 4096, 0, error));
  EXPECT_EQ(error, "no ')' closing the command name");
  error.clear();
  EXPECT_FALSE(parse_proc_stat("4242 (weir) S 1 2 3 4 5", 100, 4096, 0, error));
  EXPECT_EQ(error, "fewer than 24 numeric fields");
  error.clear();
  std::string negative(kStat);
  negative.replace(negative.find(" 250 "), 5, " -25 ");
  EXPECT_FALSE(parse_proc_stat(negative, 100, 4096, 0, error));
  EXPECT_FALSE(parse_proc_stat(kStat, 0, 4096, 0, error));  // no clock ticks
}

TEST(ProcessStats, BootTimeFromProcStat) {
  EXPECT_EQ(parse_boot_time("cpu  1 2 3\nintr 5 6\nbtime 1764650000\nprocesses 9\n"), 1764650000.0);
  EXPECT_EQ(parse_boot_time("cpu  1 2 3\nprocesses 9\n"), std::nullopt);
  EXPECT_EQ(parse_boot_time("btime soon\n"), std::nullopt);
}

TEST(ProcessStats, ThisProcess) {
  std::string error;
  const std::optional<ProcessStats> before = read_process_stats(error);
  ASSERT_TRUE(before) << error;
  // A descriptor opened now is counted.
  const int fd = open("/dev/null", O_RDONLY);
  ASSERT_GE(fd, 0);
  const std::optional<ProcessStats> after = read_process_stats(error);
  close(fd);
  ASSERT_TRUE(after) << error;
  EXPECT_EQ(after->open_fds, before->open_fds + 1);
  EXPECT_GE(before->open_fds, 3);  // at least standard input, output and error
  EXPECT_GT(before->max_fds, before->open_fds);
  EXPECT_GT(before->resident_memory_bytes, 0);
  EXPECT_GE(before->virtual_memory_bytes, before->resident_memory_bytes);
  EXPECT_GE(after->cpu_seconds, before->cpu_seconds);
  // Started before now and after the boot.
  const double now = static_cast<double>(::time(nullptr));
  EXPECT_LE(before->start_time_seconds, now + 1);
  timespec boot_clock{};
  clock_gettime(CLOCK_BOOTTIME, &boot_clock);
  EXPECT_GE(before->start_time_seconds, now - static_cast<double>(boot_clock.tv_sec) - 2);
  const nlohmann::json json = process_stats_json();
  ASSERT_TRUE(json.is_object());
  for (const ProcessStatBinding& binding : kProcessStatBindings) {
    EXPECT_TRUE(json.contains(binding.name)) << binding.name;
  }
}

}  // namespace
}  // namespace weir
