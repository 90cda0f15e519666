#include "common/log.h"

#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <vector>

namespace weir::log {
namespace {

std::string program_name = "weir";  // set once by init(), before any thread logs
bool info_to_stdout = false;
bool stdout_journal = false;  // stdout, stderr: the journal's stream (each may be)
bool stderr_journal = false;
std::atomic<int> min_level{static_cast<int>(Level::info)};

std::string vformat(const char* format, va_list args) {
  va_list copy;
  va_copy(copy, args);
  const int size = std::vsnprintf(nullptr, 0, format, copy);
  va_end(copy);
  if (size <= 0) return {};
  std::vector<char> buffer(static_cast<size_t>(size) + 1);
  std::vsnprintf(buffer.data(), buffer.size(), format, args);
  return std::string(buffer.data(), static_cast<size_t>(size));
}

}  // namespace

std::string_view name_of(Level level) {
  switch (level) {
    case Level::error:
      return "error";
    case Level::warning:
      return "warning";
    case Level::notice:
      return "notice";
    case Level::info:
      return "info";
    case Level::debug:
      return "debug";
  }
  return "info";
}

bool is_journal_stream(const char* journal_stream, int fd) {
  if (journal_stream == nullptr) return false;
  unsigned long long device = 0, inode = 0;
  if (std::sscanf(journal_stream, "%llu:%llu", &device, &inode) != 2) return false;
  struct stat st {};
  if (fstat(fd, &st) != 0) return false;
  return st.st_dev == device && st.st_ino == inode;
}

void init(std::string_view program, bool info_on_stdout) {
  program_name = std::string(program);
  info_to_stdout = info_on_stdout;
  const char* stream = std::getenv("JOURNAL_STREAM");
  stdout_journal = is_journal_stream(stream, STDOUT_FILENO);
  stderr_journal = is_journal_stream(stream, STDERR_FILENO);
}

void set_min_level(Level level) {
  min_level.store(static_cast<int>(level), std::memory_order_relaxed);
}

bool enabled(Level level) {
  return static_cast<int>(level) <= min_level.load(std::memory_order_relaxed);
}

std::string format_line(Level level, std::string_view program, std::string_view message,
                        bool journal, const timespec& realtime) {
  std::string line;
  if (journal) {
    line = "<" + std::to_string(static_cast<int>(level)) + ">";
  } else {
    tm utc{};
    gmtime_r(&realtime.tv_sec, &utc);
    char stamp[96];
    std::snprintf(stamp, sizeof stamp, "%04d-%02d-%02dT%02d:%02d:%02d.%03uZ ", utc.tm_year + 1900,
                  utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec,
                  static_cast<unsigned>(realtime.tv_nsec / 1'000'000 % 1000));
    line = stamp;
    line += name_of(level);
    line += ' ';
  }
  line += program;
  line += ": ";
  // One message, one line: a newline inside it (from a peer's text) would forge another.
  for (const char c : message) line += (c == '\n' || c == '\r') ? ' ' : c;
  line += '\n';
  return line;
}

void write(Level level, std::string_view message) {
  if (!enabled(level)) return;
  timespec now{};
  clock_gettime(CLOCK_REALTIME, &now);
  const bool problem = static_cast<int>(level) <= static_cast<int>(Level::warning);
  const int fd = problem || !info_to_stdout ? STDERR_FILENO : STDOUT_FILENO;
  const std::string line = format_line(level, program_name, message,
                                       fd == STDERR_FILENO ? stderr_journal : stdout_journal, now);
  // One write(2) per line: lines from several threads never interleave, and stdio's buffers
  // (the stats line on stdout) are flushed first so that the order holds.
  std::fflush(fd == STDOUT_FILENO ? stdout : stderr);
  ssize_t ignored = ::write(fd, line.data(), line.size());
  (void)ignored;
}

void vprintf(Level level, const char* format, va_list args) {
  if (!enabled(level)) return;
  write(level, vformat(format, args));
}

void printf(Level level, const char* format, ...) {
  va_list args;
  va_start(args, format);
  vprintf(level, format, args);
  va_end(args);
}

std::string with_suppressed(std::string_view message, uint64_t suppressed) {
  std::string out(message);
  if (suppressed > 0) {
    out += " (" + std::to_string(suppressed) + " similar message" + (suppressed == 1 ? "" : "s") +
           " suppressed)";
  }
  return out;
}

bool LogSite::write(Level level, std::string_view message, uint64_t now_us) {
  uint64_t suppressed = 0;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!limit_.allow(now_us)) return false;
    suppressed = limit_.take_suppressed();
  }
  log::write(level, with_suppressed(message, suppressed));
  return true;
}

bool LogSite::printf(Level level, const char* format, ...) {
  va_list args;
  va_start(args, format);
  const std::string message = vformat(format, args);
  va_end(args);
  return write(level, message, monotonic_us());
}

uint64_t LogSite::suppressed_total() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return limit_.suppressed_total();
}

}  // namespace weir::log
