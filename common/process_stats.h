// The process_* metrics of both daemons (Prometheus's standard process families, which
// prometheus-cpp 1.0 has no collector for): read from /proc/self at scrape time. The families'
// names and meanings are the counter catalogue's kProcessMetrics (common/counter_catalogue.h); the
// dataplane puts these values in its stats JSON under "process", weir-control adds its own.
#pragma once

#include <nlohmann/json.hpp>

#include <array>
#include <optional>
#include <string>
#include <string_view>

#include "common/counter_catalogue.h"

namespace weir {

struct ProcessStats {
  double cpu_seconds = 0;            // user + system
  double resident_memory_bytes = 0;  // rss pages x page size
  double virtual_memory_bytes = 0;   // vsize
  double open_fds = 0;               // entries of /proc/self/fd
  double max_fds = 0;                // RLIMIT_NOFILE's soft limit
  double start_time_seconds = 0;     // Unix time: boot time + starttime
};

struct ProcessStatBinding {
  std::string_view name;
  double ProcessStats::*member;
};
inline constexpr auto kProcessStatBindings = std::to_array<ProcessStatBinding>({
    {"cpu_seconds", &ProcessStats::cpu_seconds},
    {"resident_memory_bytes", &ProcessStats::resident_memory_bytes},
    {"virtual_memory_bytes", &ProcessStats::virtual_memory_bytes},
    {"open_fds", &ProcessStats::open_fds},
    {"max_fds", &ProcessStats::max_fds},
    {"start_time_seconds", &ProcessStats::start_time_seconds},
});
static_assert(counters::names_match(counters::kProcessMetrics, kProcessStatBindings));

// The fields of a /proc/PID/stat line that ProcessStats holds (cpu, memory, start time; not the
// fds), given the clock ticks per second, the page size and the boot time (/proc/stat's btime).
// nullopt, and `error` set, when the line does not parse. The command name may hold spaces and
// parentheses: fields are counted from its last ')'.
std::optional<ProcessStats> parse_proc_stat(std::string_view line, long ticks_per_second,
                                            long page_size, double boot_time, std::string& error);
// /proc/stat's btime; nullopt when absent.
std::optional<double> parse_boot_time(std::string_view proc_stat);

// This process's stats from /proc/self; nullopt, and `error` set, when /proc cannot be read.
std::optional<ProcessStats> read_process_stats(std::string& error);
// read_process_stats() as a JSON object keyed by the catalogue's names; null when unreadable.
nlohmann::json process_stats_json();

}  // namespace weir
