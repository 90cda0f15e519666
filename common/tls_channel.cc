// See tls_channel.h. Little-endian fixed fields (both ends run on the same host).
#include "common/tls_channel.h"

namespace weir::tls_channel {

std::string_view name_of(ResetReason reason) {
  switch (reason) {
    case ResetReason::not_tls:
      return "not_tls";
    case ResetReason::handshake_failed:
      return "handshake_failed";
    case ResetReason::record_overflow:
      return "record_overflow";
    case ResetReason::protocol_error:
      return "protocol_error";
    case ResetReason::truncated:
      return "truncated";
    case ResetReason::handshake_timeout:
      return "handshake_timeout";
    case ResetReason::unknown_listener:
      return "unknown_listener";
    case ResetReason::bad_record:
      return "bad_record";
    case ResetReason::output_full:
      return "output_full";
    case ResetReason::too_many_sessions:
      return "too_many_sessions";
  }
  return "unknown";
}

namespace {

template <typename T>
void put(std::vector<uint8_t>& out, T value) {
  const size_t at = out.size();
  out.resize(at + sizeof value);
  std::memcpy(out.data() + at, &value, sizeof value);
}

template <typename T>
bool get(std::span<const uint8_t>& in, T& value) {
  if (in.size() < sizeof value) return false;
  std::memcpy(&value, in.data(), sizeof value);
  in = in.subspan(sizeof value);
  return true;
}

}  // namespace

std::vector<uint8_t> encode(const OpenPayload& open) {
  std::vector<uint8_t> out;
  put(out, open.client_address);
  put(out, open.client_port);
  put(out, static_cast<uint16_t>(open.listener.size()));
  out.insert(out.end(), open.listener.begin(), open.listener.end());
  return out;
}

std::optional<OpenPayload> decode_open(std::span<const uint8_t> in) {
  OpenPayload open;
  uint16_t length = 0;
  if (!get(in, open.client_address) || !get(in, open.client_port) || !get(in, length) ||
      in.size() != length || length == 0)
    return std::nullopt;
  open.listener.assign(in.begin(), in.end());
  return open;
}

std::vector<uint8_t> encode(const HandshakeDone& done) {
  std::vector<uint8_t> out;
  put(out, done.version);
  put(out, done.sni_pool);
  put(out, static_cast<uint8_t>(done.resumed ? 1 : 0));
  const size_t length = std::min<size_t>(done.server_name.size(), 255);
  put(out, static_cast<uint8_t>(length));
  out.insert(out.end(), done.server_name.begin(), done.server_name.begin() + length);
  return out;
}

std::optional<HandshakeDone> decode_handshake_done(std::span<const uint8_t> in) {
  HandshakeDone done;
  uint8_t resumed = 0, length = 0;
  if (!get(in, done.version) || !get(in, done.sni_pool) || !get(in, resumed) || !get(in, length) ||
      in.size() != length || resumed > 1)
    return std::nullopt;
  done.resumed = resumed == 1;
  done.server_name.assign(in.begin(), in.end());
  return done;
}

}  // namespace weir::tls_channel
