// See ticket_key_file.h.
#include "common/ticket_key_file.h"

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <sstream>

namespace weir::ticket_key_file {
namespace {

// A file of more than this is refused before it is parsed (three keys need 330 bytes).
constexpr size_t kMaxFileBytes = 64 * 1024;

int base64_value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

// Standard base64 with its padding; false on any other character or a bad length.
bool decode_base64(std::string_view text, std::string& out) {
  if (text.size() % 4 != 0) return false;
  size_t padding = 0;
  while (padding < 2 && padding < text.size() && text[text.size() - 1 - padding] == '=') ++padding;
  out.clear();
  uint32_t bits = 0;
  int count = 0;
  for (size_t i = 0; i < text.size() - padding; ++i) {
    const int v = base64_value(text[i]);
    if (v < 0) return false;
    bits = (bits << 6) | static_cast<uint32_t>(v);
    if (++count == 4) {
      out.push_back(static_cast<char>(bits >> 16));
      out.push_back(static_cast<char>(bits >> 8));
      out.push_back(static_cast<char>(bits));
      bits = 0;
      count = 0;
    }
  }
  if (count == 3) {
    out.push_back(static_cast<char>(bits >> 10));
    out.push_back(static_cast<char>(bits >> 2));
  } else if (count == 2) {
    out.push_back(static_cast<char>(bits >> 4));
  } else if (count != 0) {
    return false;
  }
  return true;
}

}  // namespace

Parsed parse(std::string_view text) {
  Parsed parsed;
  std::vector<ticket_keys::Key> in_order;  // as in the file, oldest first
  int line_number = 0;
  std::string decoded;
  while (!text.empty()) {
    ++line_number;
    const size_t end = text.find('\n');
    std::string_view line = text.substr(0, end);
    text = end == std::string_view::npos ? std::string_view() : text.substr(end + 1);
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t'))
      line.remove_suffix(1);
    while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) line.remove_prefix(1);
    if (line.empty() || line.front() == '#') continue;
    if (!decode_base64(line, decoded)) {
      parsed.problems.push_back({line_number, "not a base64 ticket key"});
      continue;
    }
    if (decoded.size() != ticket_keys::kKeyBytes) {
      parsed.problems.push_back(
          {line_number, "a ticket key of " + std::to_string(decoded.size()) + " bytes; " +
                            std::to_string(ticket_keys::kKeyBytes) +
                            " are needed (name 16, AES-256 key 32, HMAC key 32: openssl rand "
                            "80 | base64 -w0)"});
      continue;
    }
    ticket_keys::Key key;
    std::memcpy(key.name.data(), decoded.data(), 16);
    std::memcpy(key.aes.data(), decoded.data() + 16, 32);
    std::memcpy(key.hmac.data(), decoded.data() + 48, 32);
    in_order.push_back(key);
  }
  std::fill(decoded.begin(), decoded.end(), '\0');
  if (parsed.problems.empty() && in_order.size() < ticket_keys::kAccepted) {
    parsed.problems.push_back(
        {0, std::to_string(in_order.size()) + " ticket key(s); at least " +
                std::to_string(ticket_keys::kAccepted) +
                " are needed (the penultimate encrypts, the last is the next one)"});
  }
  if (!parsed.problems.empty()) return parsed;
  const size_t n = in_order.size();
  parsed.keys = {in_order[n - 2], in_order[n - 1], in_order[n - 3]};
  // A ticket names its key: two accepted keys of one name would decrypt with the wrong one.
  if (parsed.keys[0].name == parsed.keys[1].name || parsed.keys[0].name == parsed.keys[2].name ||
      parsed.keys[1].name == parsed.keys[2].name) {
    parsed.problems.push_back({0, "two of the last three ticket keys have the same name"});
    parsed.keys.clear();
  }
  return parsed;
}

Parsed read(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    Parsed failed;
    failed.problems.push_back({0, std::string("cannot read it: ") + std::strerror(errno)});
    return failed;
  }
  std::string text(kMaxFileBytes + 1, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<size_t>(in.gcount()));
  if (text.size() > kMaxFileBytes) {
    Parsed failed;
    failed.problems.push_back({0, "larger than " + std::to_string(kMaxFileBytes) + " bytes"});
    return failed;
  }
  Parsed parsed = parse(text);
  std::fill(text.begin(), text.end(), '\0');
  return parsed;
}

}  // namespace weir::ticket_key_file
