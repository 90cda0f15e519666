#include "dataplane/main_lcore/control_requests.h"

#include <algorithm>

#include "common/channel/envelope.h"
#include "common/log.h"

namespace weir::dataplane {

using nlohmann::json;

std::string ControlRequests::error(const json& id, const std::string& message) {
  ++errors_;
  // Whoever can reach the socket can send a storm of bad requests: a few lines and a count.
  WEIR_LOG_LIMITED(log::Level::warning, "control request refused: %s", message.c_str());
  return channel::error_line(id, message);
}

std::string ControlRequests::handle(std::string_view line) {
  ++requests_;
  const channel::Request parsed = channel::parse_request(line, "dataplane");
  const json& id = parsed.id;
  if (!parsed.error.empty()) return error(id, parsed.error);
  const json& request = parsed.body;
  const std::string& op = parsed.op;
  json reply = channel::ok_reply(id);
  if (op == "hello") {
    reply.update(target_.hello());
  } else if (op == "counters") {
    reply.update(target_.counters());
    // This channel's own: requests served and refused (malformed, unknown, failed).
    reply["control"] = {{"requests", requests_}, {"errors", errors_}};
    if (socket_stats_) {
      reply["control"].update(
          {{"clients_refused", socket_stats_->clients_refused},
           {"clients_idle_closed", socket_stats_->clients_idle_closed},
           {"clients_overflow_closed", socket_stats_->clients_overflow_closed}});
    }
  } else if (op == "listeners") {
    reply["listeners"] = target_.listeners();
  } else if (op == "pools") {
    reply["pools"] = target_.pools();
  } else if (op == "events") {
    size_t limit = kMaxEvents;
    if (request.contains("limit")) {
      if (!request["limit"].is_number_unsigned() || request["limit"].get<uint64_t>() == 0)
        return error(id, "\"limit\" must be a positive integer");
      limit = static_cast<size_t>(std::min<uint64_t>(request["limit"].get<uint64_t>(), kMaxEvents));
    }
    reply["events"] = target_.events(limit);
  } else if (op == "set_backend") {
    for (const char* field : {"pool", "backend"}) {
      if (!request.contains(field) || !request[field].is_string())
        return error(id, std::string("set_backend needs \"") + field + "\" (a string)");
    }
    std::optional<std::string> state;
    std::optional<uint32_t> weight;
    if (request.contains("state")) {
      if (!request["state"].is_string())
        return error(id, "\"state\" must be one of \"up\", \"down\", \"draining\"");
      state = request["state"].get<std::string>();
    }
    if (request.contains("weight")) {
      if (!request["weight"].is_number_unsigned() || request["weight"].get<uint64_t>() > UINT32_MAX)
        return error(id, "\"weight\" must be a positive integer");
      weight = request["weight"].get<uint32_t>();
    }
    if (!state && !weight) return error(id, "set_backend needs \"state\" or \"weight\"");
    const std::string failure = target_.set_backend(
        request["pool"].get<std::string>(), request["backend"].get<std::string>(), state, weight);
    if (!failure.empty()) return error(id, failure);
  } else if (op == "apply_config") {
    if (!request.contains("path") || !request["path"].is_string())
      return error(id, "apply_config needs \"path\" (the configuration file, a string)");
    const json result = target_.apply_config(request["path"].get<std::string>());
    if (!result.value("ok", false)) {
      json failure = channel::ok_reply(id);
      failure.update(result);
      failure["ok"] = false;
      ++errors_;
      return failure.dump();
    }
    reply.update(result);
  } else if (op == "set_accepting") {
    if (!request.contains("accepting") || !request["accepting"].is_boolean())
      return error(id, "set_accepting needs \"accepting\" (true or false)");
    const std::string failure = target_.set_accepting(request["accepting"].get<bool>());
    if (!failure.empty()) return error(id, failure);
  } else if (op == "box") {
    reply.update(target_.box());
  } else if (op == "cluster_peers") {
    if (!request.contains("peers") || !request["peers"].is_object())
      return error(id, "cluster_peers needs \"peers\" (a map of peer name to state)");
    std::map<std::string, std::string> states;
    for (const auto& [name, state] : request["peers"].items()) {
      if (!state.is_string())
        return error(id, "the state of peer \"" + name + "\" must be a string");
      states[name] = state.get<std::string>();
    }
    const std::string failure = target_.set_cluster_peers(states);
    if (!failure.empty()) return error(id, failure);
  } else {
    return error(id, "unknown operation \"" + op +
                         "\" (known: hello, counters, listeners, pools, events, set_backend, "
                         "apply_config, set_accepting, box, cluster_peers)");
  }
  return reply.dump();
}

}  // namespace weir::dataplane
