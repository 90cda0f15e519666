#include "common/channel/envelope.h"

namespace weir::channel {

using nlohmann::json;

json ok_reply(const json& id) {
  return json{{"v", kProtocolVersion}, {"id", id}, {"ok", true}};
}

json error_reply(const json& id, const std::string& message) {
  return json{{"v", kProtocolVersion}, {"id", id}, {"ok", false}, {"error", message}};
}

std::string error_line(const json& id, const std::string& message) {
  return error_reply(id, message).dump();
}

Request parse_request(std::string_view line, std::string_view server) {
  Request request;
  request.id = nullptr;
  request.body = json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (request.body.is_discarded()) {
    request.error = "the request is not valid JSON";
    return request;
  }
  if (!request.body.is_object()) {
    request.error = "the request must be a JSON object";
    return request;
  }
  if (const auto id = request.body.find("id"); id != request.body.end()) request.id = *id;
  const auto v = request.body.find("v");
  if (v == request.body.end() || !v->is_number_integer()) {
    request.error = "field \"v\" (the protocol version, an integer) is missing";
    return request;
  }
  if (v->get<int64_t>() != kProtocolVersion) {
    request.error = "protocol version " + v->dump() + " is not supported (this " +
                    std::string(server) + " speaks " + std::to_string(kProtocolVersion) + ")";
    return request;
  }
  const auto op = request.body.find("op");
  if (op == request.body.end() || !op->is_string()) {
    request.error = "field \"op\" (the operation, a string) is missing";
    return request;
  }
  request.op = op->get<std::string>();
  return request;
}

}  // namespace weir::channel
