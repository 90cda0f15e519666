// Session ticket keys from a file shared by several boxes (`tls.ticket_keys_file`, docs/tls.md,
// "Ticket keys across boxes"), in HAProxy's tls-ticket-keys format: one key per line, 80 bytes
// (name 16 | AES-256 key 32 | HMAC-SHA256 key 32) in base64; blank lines and lines starting with
// '#' ignored; at least kAccepted keys. The last kAccepted keys decrypt, and the penultimate one
// encrypts: an operator appends a new key on every box, then reloads them one by one, and a box
// not yet reloaded and one already reloaded each decrypt what the other issues (the newest key
// is known everywhere before any box encrypts with it).
//
// Read by weir-control (the keys it sends to its workers) and by --check-config (the same parse:
// a file the check accepts is a file weir-control accepts); never by the dataplane.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/ticket_key_wire.h"

namespace weir::ticket_key_file {

struct Problem {
  int line = 0;  // 1-based; 0: the file as a whole
  std::string message;
};

struct Parsed {
  // As weir-control sends them (common/ticket_key_wire.h): the encrypting key first, then the
  // other accepted ones.
  std::vector<ticket_keys::Key> keys;
  std::vector<Problem> problems;  // empty: usable
  bool ok() const { return problems.empty(); }
};

Parsed parse(std::string_view text);
// parse() of the file at `path` (a problem at line 0 when it cannot be read).
Parsed read(const std::string& path);

}  // namespace weir::ticket_key_file
