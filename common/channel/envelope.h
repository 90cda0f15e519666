// The control channel's envelope (docs/protocol.md, "The control channel"), written once for every
// Weir process that speaks it: the dataplane's control socket, weir-control's admin socket, and
// their clients (weir-control, weirctl). One JSON object per line each way over a Unix stream
// socket; a request carries the protocol version, an id the reply echoes, and an operation:
//   {"v": 1, "id": 7, "op": "set_backend", ...}   ->   {"v": 1, "id": 7, "ok": true, ...}
// and a refusal is {"v": 1, "id": ..., "ok": false, "error": "..."}.
#pragma once

#include <nlohmann/json.hpp>

#include <cstddef>
#include <string>
#include <string_view>

namespace weir::channel {

inline constexpr int kProtocolVersion = 1;
// The longest request line a server reads before it refuses the client.
inline constexpr size_t kMaxRequestLine = size_t{1} << 20;

// A request line taken apart. When `error` is not empty the request is refused with it (and `id`
// is whatever id could be read, or null).
struct Request {
  nlohmann::json id;
  std::string op;
  nlohmann::json body;  // the whole request object
  std::string error;
};

// Parses and checks one request line: valid JSON, an object, "v" == kProtocolVersion, "op" a
// string. `server` names the answering process in the version error ("this dataplane speaks 1").
Request parse_request(std::string_view line, std::string_view server);

// The reply envelopes, as objects (callers add fields) and as lines without the newline.
nlohmann::json ok_reply(const nlohmann::json& id);
nlohmann::json error_reply(const nlohmann::json& id, const std::string& message);
std::string error_line(const nlohmann::json& id, const std::string& message);

// Fills in a request's "v" and "id".
template <class Json>
void stamp_request(Json& request, uint64_t id) {
  request["v"] = kProtocolVersion;
  request["id"] = id;
}

// Why `reply` is not a well-formed answer to request `id` from `peer`, or "" when it is: a foreign
// version, another request's id, no boolean "ok". A missing "v" or "id" is accepted (a server
// that cannot read the request answers with a null id).
template <class Json>
std::string reply_problem(const Json& reply, uint64_t id, std::string_view peer) {
  const std::string who(peer);
  if (!reply.is_object()) return who + "'s reply is not a JSON object";
  if (const auto v = reply.find("v"); v != reply.end() && !v->is_null() && *v != kProtocolVersion) {
    return who + " answered in protocol version " + v->dump() + "; this side speaks " +
           std::to_string(kProtocolVersion);
  }
  if (const auto got = reply.find("id"); got != reply.end() && !got->is_null() && *got != id) {
    return who + " answered another request (id " + got->dump() + ")";
  }
  if (const auto ok = reply.find("ok"); ok == reply.end() || !ok->is_boolean()) {
    return who + "'s reply has no \"ok\"";
  }
  return "";
}

}  // namespace weir::channel
