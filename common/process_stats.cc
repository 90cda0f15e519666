#include "common/process_stats.h"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <charconv>
#include <fstream>
#include <sstream>
#include <vector>

namespace weir {
namespace {

std::optional<std::string> read_file(const char* path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

bool parse_number(std::string_view text, double& out) {
  unsigned long long value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) return false;
  out = static_cast<double>(value);
  return true;
}

}  // namespace

std::optional<ProcessStats> parse_proc_stat(std::string_view line, long ticks_per_second,
                                            long page_size, double boot_time, std::string& error) {
  const size_t close = line.rfind(')');
  if (close == std::string_view::npos || ticks_per_second <= 0 || page_size <= 0) {
    error = "no ')' closing the command name";
    return std::nullopt;
  }
  // Fields from the state (field 3 of proc(5)) on.
  std::vector<std::string_view> fields;
  std::string_view rest = line.substr(close + 1);
  while (!rest.empty()) {
    const size_t start = rest.find_first_not_of(" \n");
    if (start == std::string_view::npos) break;
    rest.remove_prefix(start);
    const size_t end = std::min(rest.find_first_of(" \n"), rest.size());
    fields.push_back(rest.substr(0, end));
    rest.remove_prefix(end);
  }
  // proc(5) numbering: utime 14, stime 15, starttime 22, vsize 23, rss 24.
  const auto field = [&](size_t number, double& out) {
    return number - 3 < fields.size() && parse_number(fields[number - 3], out);
  };
  double utime = 0, stime = 0, start = 0, vsize = 0, rss = 0;
  if (!field(14, utime) || !field(15, stime) || !field(22, start) || !field(23, vsize) ||
      !field(24, rss)) {
    error = "fewer than 24 numeric fields";
    return std::nullopt;
  }
  ProcessStats stats;
  const auto ticks = static_cast<double>(ticks_per_second);
  stats.cpu_seconds = (utime + stime) / ticks;
  stats.start_time_seconds = boot_time + start / ticks;
  stats.virtual_memory_bytes = vsize;
  stats.resident_memory_bytes = rss * static_cast<double>(page_size);
  return stats;
}

std::optional<double> parse_boot_time(std::string_view proc_stat) {
  std::istringstream in{std::string(proc_stat)};
  std::string key, value;
  while (in >> key) {
    if (!(in >> value)) break;
    double boot_time = 0;
    if (key == "btime" && parse_number(value, boot_time)) return boot_time;
    std::getline(in, value);  // the rest of the line
  }
  return std::nullopt;
}

std::optional<ProcessStats> read_process_stats(std::string& error) {
  const std::optional<std::string> stat = read_file("/proc/self/stat");
  const std::optional<std::string> system = read_file("/proc/stat");
  if (!stat || !system) {
    error = "cannot read /proc/self/stat or /proc/stat";
    return std::nullopt;
  }
  const std::optional<double> boot_time = parse_boot_time(*system);
  if (!boot_time) {
    error = "/proc/stat has no btime";
    return std::nullopt;
  }
  std::optional<ProcessStats> stats =
      parse_proc_stat(*stat, sysconf(_SC_CLK_TCK), sysconf(_SC_PAGESIZE), *boot_time, error);
  if (!stats) return std::nullopt;
  if (DIR* fds = opendir("/proc/self/fd")) {
    double count = 0;
    while (const dirent* entry = readdir(fds)) {
      if (entry->d_name[0] != '.') ++count;
    }
    closedir(fds);
    stats->open_fds = count - 1;  // less the directory's own descriptor, open while counting
  }
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0) {
    stats->max_fds = static_cast<double>(limit.rlim_cur);
  }
  return stats;
}

nlohmann::json process_stats_json() {
  std::string error;
  const std::optional<ProcessStats> stats = read_process_stats(error);
  if (!stats) return nullptr;
  nlohmann::json out = nlohmann::json::object();
  for (const ProcessStatBinding& binding : kProcessStatBindings) {
    out[std::string(binding.name)] = (*stats).*binding.member;
  }
  return out;
}

}  // namespace weir
