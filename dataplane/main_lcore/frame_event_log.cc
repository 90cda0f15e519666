#include "dataplane/main_lcore/frame_event_log.h"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <ctime>

#include "common/counter_catalogue.h"
#include "common/frame.h"
#include "common/net/address.h"

namespace weir::dataplane {
namespace {

std::string hex32(uint32_t value) {
  char text[11];
  std::snprintf(text, sizeof text, "0x%08" PRIx32, value);
  return text;
}

std::string client_of(const proxy::FrameEvent& event) {
  return net::Ipv4Address(event.client_address).to_string() + ":" +
         std::to_string(event.client_port);
}

const char* verdict_of(const proxy::FrameEvent& event) {
  return event.fault.malformed ? "malformed" : "corrupt";
}

// What Weir did with the frame: a malformed header, or a corrupt frame in reset mode, reset the
// session before its trailer left; count mode forwarded the corrupt frame.
const char* action_of(const proxy::FrameEvent& event) {
  return event.fault.forwarded ? "forwarded" : "reset";
}

std::string_view direction_of(const proxy::FrameEvent& event) {
  return counters::kDirections[event.direction & 1];
}

}  // namespace

std::string log_value(const std::string& name) {
  if (name.empty()) return "-";
  std::string out = name;
  for (char& c : out) {
    if (c == ' ' || c == '=' || c == '\n') c = '_';
  }
  return out;
}

std::string utc_time(uint64_t unix_us) {
  const time_t seconds = static_cast<time_t>(unix_us / 1'000'000);
  tm utc{};
  gmtime_r(&seconds, &utc);
  char text[96];
  std::snprintf(text, sizeof text, "%04d-%02d-%02dT%02d:%02d:%02d.%06uZ", utc.tm_year + 1900,
                utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec,
                static_cast<unsigned>(unix_us % 1'000'000));
  return text;
}

std::string format_frame_event(const proxy::FrameEvent& event, const FrameEventNames& names,
                               uint64_t unix_us) {
  std::string line =
      "frame event: time=" + utc_time(unix_us) + " listener=" + log_value(names.listener) +
      " direction=" + std::string(direction_of(event)) + " client=" + client_of(event) +
      " pool=" + log_value(names.pool) + " backend=" + log_value(names.backend) +
      " stream=" + std::to_string(event.fault.stream) +
      " length=" + std::to_string(event.fault.length) + " verdict=" + verdict_of(event);
  if (event.fault.malformed) {
    // Quoted (it has spaces); its own double quotes become single ones so that the value ends
    // at the first double quote.
    std::string reason = frame::to_string(event.fault.reason);
    std::replace(reason.begin(), reason.end(), '"', '\'');
    line += " reason=\"" + reason + "\"";
  } else {
    line += " expected_crc=" + hex32(event.fault.expected_crc) +
            " received_crc=" + hex32(event.fault.received_crc);
  }
  line += " action=" + std::string(action_of(event));
  return line;
}

nlohmann::json frame_event_json(const proxy::FrameEvent& event, const FrameEventNames& names,
                                uint64_t unix_us) {
  nlohmann::json out{{"time", utc_time(unix_us)},    {"unix_us", unix_us},
                     {"listener", names.listener},   {"direction", direction_of(event)},
                     {"client", client_of(event)},   {"pool", names.pool},
                     {"backend", names.backend},     {"stream", event.fault.stream},
                     {"length", event.fault.length}, {"verdict", verdict_of(event)},
                     {"action", action_of(event)}};
  if (event.fault.malformed) {
    out["reason"] = frame::to_string(event.fault.reason);
  } else {
    out["expected_crc"] = hex32(event.fault.expected_crc);
    out["received_crc"] = hex32(event.fault.received_crc);
  }
  return out;
}

void FrameEventLog::record(const proxy::FrameEvent& event, const FrameEventNames& names,
                           uint64_t unix_us, uint64_t now_us) {
  ++recorded_;
  nlohmann::json entry = frame_event_json(event, names, unix_us);
  entry["seq"] = recorded_;
  recent_.push_back(std::move(entry));
  if (recent_.size() > kRecent) recent_.pop_front();
  if (!names.backend.empty()) {
    uint64_t& last = last_seen_[{names.pool, names.backend, event.direction}];
    last = std::max(last, unix_us);
  }
  const std::optional<uint64_t> held_back = limits_.admit(names.listener, now_us);
  if (!held_back) return;
  ++logged_;
  sink_(log::Level::warning,
        log::with_suppressed(format_frame_event(event, names, unix_us), *held_back));
}

void FrameEventLog::report_suppressed(uint64_t now_us) {
  limits_.report_held_back(now_us, [&](const std::string& listener, uint64_t count) {
    sink_(log::Level::warning,
          "frame events: listener=" + log_value(listener) + ": " + std::to_string(count) +
              " more not logged (rate limit); `weirctl events` shows the latest");
  });
}

nlohmann::json FrameEventLog::recent(size_t limit) const {
  nlohmann::json out = nlohmann::json::array();
  const size_t first = recent_.size() > limit ? recent_.size() - limit : 0;
  for (size_t i = first; i < recent_.size(); ++i) out.push_back(recent_[i]);
  return out;
}

uint64_t FrameEventLog::last_seen_unix_us(const std::string& pool, const std::string& backend,
                                          uint8_t direction) const {
  const auto it = last_seen_.find({pool, backend, direction});
  return it == last_seen_.end() ? 0 : it->second;
}

}  // namespace weir::dataplane
