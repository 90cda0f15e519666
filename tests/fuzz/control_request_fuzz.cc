// Fuzz target for the control channel (docs/protocol.md, "The control channel"). Input: one line,
// read two ways:
//  - as a request to the dataplane's handler (dataplane/main_lcore/control_requests.h) in front of
//    a fake ControlTarget whose answers carry the request's strings back;
//  - as the dataplane's reply to weir-control: the envelope check its client makes
//    (channel::reply_problem), then the Prometheus families built from it as a counters and a
//    pools reply (control/metrics.h), serialised as a scrape would be.
// Invariants, abort() on violation (an exception escaping is a crash too):
//  - every request gets one line: a JSON object with "v" 1, a boolean "ok", the request's "id"
//    (null when there is none to read), and a non-empty "error" string when "ok" is false;
//  - a request that breaks the envelope (not JSON, not an object, "v" not 1, "op" not a string)
//    is refused and never reaches the target; the handler counts it;
//  - the reply passes the client's own envelope check for a numeric id;
//  - weir-control builds metrics from any reply that passes its envelope check.
#include <prometheus/text_serializer.h>

#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <string>
#include <string_view>

#include "common/channel/envelope.h"
#include "control/metrics.h"
#include "dataplane/main_lcore/control_requests.h"

namespace {

using nlohmann::json;

void check(bool condition) {
  if (!condition) std::abort();
}

class FakeTarget final : public weir::dataplane::ControlTarget {
 public:
  json hello() override { return {{"versions", {1}}, {"pid", 1}, {"workers", 2}}; }
  json counters() override { return {{"workers", json::array()}}; }
  json listeners() override { return json::array({json{{"name", "web"}}}); }
  json pools() override { return json::array({json{{"name", "app"}}}); }
  json events(size_t limit) override { return json::array({json{{"limit", limit}}}); }
  std::string set_backend(const std::string& pool, const std::string& backend,
                          const std::optional<std::string>& state,
                          const std::optional<uint32_t>& weight) override {
    ++calls;
    if (pool != "app") return "no pool named \"" + pool + "\"";
    if (state && *state != "up" && *state != "down" && *state != "draining")
      return "unknown state \"" + *state + "\"";
    return backend == "b1" || weight ? "" : "no backend \"" + backend + "\"";
  }
  json apply_config(const std::string& path) override {
    ++calls;
    if (path.empty() || path[0] != '/')
      return {{"ok", false}, {"error", "cannot read " + path}, {"diagnostics", {path + ":1:1"}}};
    return {{"ok", true}, {"changes", json::array({path})}};
  }
  std::string set_accepting(bool) override {
    ++calls;
    return "";
  }
  json box() override { return {{"accepting", true}, {"applied", true}, {"sessions", 0}}; }
  std::string set_cluster_peers(const std::map<std::string, std::string>& states) override {
    ++calls;
    return states.empty() ? "no state for peer \"a\"" : "";
  }
  size_t calls = 0;
};

// The envelope's rules, from docs/protocol.md: valid JSON, an object, "v" the integer 1, "op" a
// string.
bool envelope_valid(const json& request) {
  if (request.is_discarded() || !request.is_object()) return false;
  const auto v = request.find("v");
  if (v == request.end() || !v->is_number_integer() || *v != 1) return false;
  const auto op = request.find("op");
  return op != request.end() && op->is_string();
}

void dataplane_side(std::string_view line) {
  FakeTarget target;
  weir::dataplane::ControlRequests handler(target);
  const std::string reply_line = handler.handle(line);
  check(handler.requests() == 1);
  check(reply_line.find_first_of("\r\n") == std::string::npos);
  const json reply = json::parse(reply_line, nullptr, /*allow_exceptions=*/false);
  check(reply.is_object());
  check(reply.contains("v") && reply["v"] == 1);
  check(reply.contains("ok") && reply["ok"].is_boolean());
  const bool ok = reply["ok"].get<bool>();
  if (!ok) {
    check(reply.contains("error") && reply["error"].is_string() &&
          !reply["error"].get<std::string>().empty());
    check(handler.errors() == 1);
  } else {
    check(handler.errors() == 0);
  }

  const json request = json::parse(line, nullptr, /*allow_exceptions=*/false);
  const bool has_id = !request.is_discarded() && request.is_object() && request.contains("id");
  check(reply.contains("id") && reply["id"] == (has_id ? request["id"] : json(nullptr)));
  if (!envelope_valid(request)) {
    check(!ok && target.calls == 0);
  }
  if (has_id && request["id"].is_number_unsigned()) {
    check(weir::channel::reply_problem(reply, request["id"].get<uint64_t>(), "the dataplane")
              .empty());
  }
}

void control_side(std::string_view line) {
  const json reply = json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (reply.is_discarded() || !weir::channel::reply_problem(reply, 1, "the dataplane").empty())
    return;
  const json control = {{"health", json::array()}, {"reloads_ok", 1}, {"version", "fuzz"}};
  const json* pools = reply.contains("pools") ? &reply["pools"] : nullptr;
  // Twice, as two scrapes: the same reply must build the same families.
  const auto first = prometheus::TextSerializer().Serialize(
      weir::control::MetricsCollector::build(&reply, pools, control));
  check(!first.empty());
  check(first == prometheus::TextSerializer().Serialize(
                     weir::control::MetricsCollector::build(&reply, pools, control)));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view line(reinterpret_cast<const char*>(data), size);
  dataplane_side(line);
  control_side(line);
  return 0;
}
