// A pool's active health check: see health_schema.h. docs/configuration.md documents the same
// rules.
#include "config/health_schema.h"

#include <sstream>

#include "config/field_readers.h"

namespace weir::config {

namespace {

void http_request_check(Diagnostics& d, MapReader& http, const std::string& request) {
  // RFC 9112 3: method SP request-target SP HTTP-version; Weir adds CRLF and the Host header.
  const size_t first = request.find(' ');
  const size_t second = first == std::string::npos ? first : request.find(' ', first + 1);
  const bool shape = first != std::string::npos && first > 0 && second != std::string::npos &&
                     second > first + 1 && request.find(' ', second + 1) == std::string::npos &&
                     request.compare(second + 1, 7, "HTTP/1.") == 0 &&
                     request.size() == second + 9 &&
                     request.find_first_of("\r\n") == std::string::npos;
  if (!shape) {
    d.error(http.take("request")->Mark(), http.path_of("request"),
            "\"" + request +
                "\" is not a request line; expected METHOD TARGET HTTP/1.x, e.g. "
                "\"GET /healthz HTTP/1.1\"");
  }
}

void status_range(Diagnostics& d, const YAML::Node& node, const std::string& path,
                  HttpCheck& check) {
  // "200-399" or a single status "204".
  const std::string expected =
      "expected a status or a range of statuses within 100-599, e.g. "
      "200 or 200-399";
  unsigned low = 0, high = 0;
  bool ok = false;
  if (node.IsScalar()) {
    std::istringstream in(node.Scalar());
    char dash = 0;
    if (in >> low) {
      high = low;
      ok = in.eof() || ((in >> dash) && dash == '-' && (in >> high) && in.eof());
    }
  }
  if (!ok || low < 100 || high > 599 || low > high) {
    d.error(node.Mark(), path, expected);
    return;
  }
  check.status_min = static_cast<uint16_t>(low);
  check.status_max = static_cast<uint16_t>(high);
}

}  // namespace

void read_health(Diagnostics& d, const YAML::Node& node, const std::string& path, Health& health) {
  MapReader map(d, node, path);
  if (!map.is_map()) return;
  const bool type_known = read_choice_field(map, "type", health.type,
                                            {{"tcp", HealthType::tcp},
                                             {"http", HealthType::http},
                                             {"framed-ping", HealthType::framed_ping}},
                                            true);
  read_uint_field(map, "interval_ms", health.interval_ms, 10, 3'600'000);
  read_uint_field(map, "timeout_ms", health.timeout_ms, 1, 3'600'000);
  read_uint_field(map, "rise", health.rise, 1, 100);
  read_uint_field(map, "fall", health.fall, 1, 100);
  if (health.timeout_ms > health.interval_ms) {
    d.error(map.key_mark("timeout_ms"), map.path_of("timeout_ms"),
            std::to_string(health.timeout_ms) + " exceeds interval_ms (" +
                std::to_string(health.interval_ms) +
                "); a check must finish before the next one starts");
  }
  if (type_known && health.type == HealthType::http) {
    if (const auto http_node = map.require("http", "a map with request and status")) {
      MapReader http(d, *http_node, map.path_of("http"));
      if (http.is_map()) {
        HttpCheck check;
        if (read_string_field(http, "request", check.request, true)) {
          http_request_check(d, http, check.request);
        }
        if (const auto status = http.take("status"))
          status_range(d, *status, http.path_of("status"), check);
        http.finish();
        health.http = check;
      }
    }
  } else if (type_known) {
    map.forbid("http", "http settings apply only to type http (this check is " +
                           std::string(name_of(health.type)) + ")");
  } else {
    map.take("http");
  }
  map.finish();
}

}  // namespace weir::config
