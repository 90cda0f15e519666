// Fuzz target for the configuration loader (config::load_string, what --check-config and
// weirctl check-config run on a file's text). Input: the file's text.
// Invariants, abort() on violation (an exception escaping is a crash too):
//  - the result is a Config exactly when there is no diagnostic;
//  - every diagnostic names the file and has a message, and either a position inside the text
//    (line 1..lines+1, column >= 1) or none at all (about the file as a whole);
//  - diagnostics come in file order;
//  - loading the same text again gives the same diagnostics (no hidden state);
//  - a Config keeps the promises of config.h: tcp and framed listeners have a pool that exists,
//    framed ones their frame settings, every listener a non-zero connection limit.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "config/config.h"

namespace {

void check(bool condition) {
  if (!condition) std::abort();
}

std::string transcript(const weir::config::LoadResult& result) {
  std::string text;
  for (const auto& d : result.errors) text += d.to_string() + "\n";
  return text;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace weir::config;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const std::string name = "fuzz.yaml";
  const LoadResult result = load_string(text, name);
  check(result.ok() == result.errors.empty());
  const int lines = static_cast<int>(std::count(text.begin(), text.end(), '\n')) + 1;
  for (size_t i = 0; i < result.errors.size(); ++i) {
    const Diagnostic& d = result.errors[i];
    check(d.file == name && !d.message.empty());
    if (d.line == 0) {
      check(d.column == 0);
    } else {
      check(d.line >= 1 && d.line <= lines + 1 && d.column >= 1);
    }
    if (i > 0) {
      const Diagnostic& before = result.errors[i - 1];
      check(before.line < d.line || (before.line == d.line && before.column <= d.column));
    }
  }
  check(transcript(load_string(text, name)) == transcript(result));
  if (result.ok()) {
    const Config& config = *result.config;
    check(config.source == name);
    for (const Listener& l : config.listeners) {
      const bool proxied = l.protocol == Protocol::tcp || l.protocol == Protocol::framed;
      check(proxied == l.pool.has_value());
      if (l.pool) check(*l.pool < config.pools.size());
      check((l.protocol == Protocol::framed) == l.framed.has_value());
      check(l.max_connections > 0);
    }
  }
  return 0;
}
