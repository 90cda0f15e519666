#include "dataplane/main_lcore/session_log.h"

#include "common/net/address.h"

namespace weir::dataplane {

std::string format_session_record(const proxy::SessionRecord& record, const FrameEventNames& names,
                                  uint64_t start_unix_us) {
  const uint64_t duration_us =
      record.end_us > record.start_us ? record.end_us - record.start_us : 0;
  const std::string ms =
      std::to_string(duration_us / 1000) + "." + std::to_string(duration_us % 1000 / 100);
  return "session: start=" + utc_time(start_unix_us) + " listener=" + log_value(names.listener) +
         " client=" + net::Ipv4Address(record.client_address).to_string() + ":" +
         std::to_string(record.client_port) + " pool=" + log_value(names.pool) +
         " backend=" + log_value(names.backend) +
         " bytes_to_backend=" + std::to_string(record.bytes[0]) +
         " bytes_to_client=" + std::to_string(record.bytes[1]) + " duration_ms=" + ms +
         " end=" + std::string(proxy::name_of(record.end));
}

void SessionLog::record(const proxy::SessionRecord& record, const FrameEventNames& names,
                        uint64_t start_unix_us, uint64_t now_us) {
  const std::optional<uint64_t> held_back = limits_.admit(names.listener, now_us);
  if (!held_back) return;
  ++logged_;
  sink_(log::Level::info,
        log::with_suppressed(format_session_record(record, names, start_unix_us), *held_back));
}

void SessionLog::report_suppressed(uint64_t now_us) {
  limits_.report_held_back(now_us, [&](const std::string& listener, uint64_t count) {
    sink_(log::Level::info, "session log: listener=" + log_value(listener) + ": " +
                                std::to_string(count) + " more sessions not logged (rate limit)");
  });
}

}  // namespace weir::dataplane
