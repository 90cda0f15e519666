// The daemons' log (weir-dataplane, weir-control): one line per message with a level, on stderr
// (weir-dataplane: warnings and errors on stderr, the rest on stdout, beside its stats lines). On a
// terminal or a file each line starts with the UTC time and the level; under systemd, when the
// stream is the journal's (JOURNAL_STREAM names its device and inode, systemd.exec(5)), each starts
// with the syslog priority as "<N>" instead (sd-daemon(3)), so that journald keeps the level and
// adds the time itself.
//
// Messages that outsiders can cause (bad packets, bad requests, failing backends) go through a
// LogSite: a token bucket per call site or category, so that a storm of them becomes a few lines
// and a count of the ones left out, never a storm of lines.
#pragma once

#include <cstdarg>
#include <cstdint>
#include <ctime>
#include <mutex>
#include <string>
#include <string_view>

#include "common/rate_limit.h"

namespace weir::log {

// The syslog priorities (sd-daemon(3), syslog(3)).
enum class Level : int { error = 3, warning = 4, notice = 5, info = 6, debug = 7 };
std::string_view name_of(Level level);

// Called once at start, before any thread logs: the program's name for every line, where lines
// below warning go, and whether stdout and stderr are the journal.
void init(std::string_view program, bool info_to_stdout = false);
// Messages below `level` (debug is below info) are not written. Default: info.
void set_min_level(Level level);
bool enabled(Level level);

// One line as written: "<N>PROGRAM: MESSAGE" for the journal, else
// "YYYY-MM-DDTHH:MM:SS.mmmZ LEVEL PROGRAM: MESSAGE". Pure, for tests.
std::string format_line(Level level, std::string_view program, std::string_view message,
                        bool journal, const timespec& realtime);

// Whether a JOURNAL_STREAM value ("DEVICE:INODE") names the file open on `fd`.
bool is_journal_stream(const char* journal_stream, int fd);

void write(Level level, std::string_view message);
void printf(Level level, const char* format, ...) __attribute__((format(printf, 2, 3)));
void vprintf(Level level, const char* format, va_list args);

inline uint64_t monotonic_us() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000u + static_cast<uint64_t>(ts.tv_nsec) / 1000u;
}

// A rate-limited log site: `burst` lines, then one per `interval_us`; the first line after some
// were left out ends with "(N similar messages suppressed)". Thread-safe (weir-control's threads
// share its sites; nothing on the dataplane's packet path logs).
class LogSite {
 public:
  LogSite(uint32_t burst, uint64_t interval_us) : limit_(burst, interval_us) {}
  // Writes the line unless the limit says no; returns whether it was written.
  bool printf(Level level, const char* format, ...) __attribute__((format(printf, 3, 4)));
  bool write(Level level, std::string_view message, uint64_t now_us);
  uint64_t suppressed_total() const;

 private:
  mutable std::mutex mutex_;
  LogRateLimit limit_;
};

// The message of a line let through after `suppressed` were left out.
std::string with_suppressed(std::string_view message, uint64_t suppressed);

}  // namespace weir::log

// A LogSite of its own for this call site: 10 lines, then one a second.
#define WEIR_LOG_LIMITED(level, ...)                           \
  do {                                                         \
    static ::weir::log::LogSite weir_log_site_(10, 1'000'000); \
    weir_log_site_.printf(level, __VA_ARGS__);                 \
  } while (0)
