// weirctl's output: weir-control's replies read leniently (a missing or mistyped field prints as
// "-" or 0, never throws) and printed as aligned tables, one printer per command, or as JSON
// (--json). docs/weirctl.md shows each table.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>

namespace weir::weirctl {

using json = nlohmann::ordered_json;

// A member of `object`, or null (when `object` is not an object or has no `key`).
const json& field(const json& object, const char* key);
// A value as printed: "-" for null, "yes"/"no", strings bare, anything else as JSON.
std::string text(const json& value);
// A non-negative integer, else 0.
uint64_t count(const json& value);
uint64_t count(const json& object, const char* key);

void print_json(const json& value);
void print_status(const json& reply);
void print_listeners(const json& reply);
void print_backends(const json& reply);
void print_reload(const json& reply);
void print_stats(const json& reply);
void print_events(const json& reply);

}  // namespace weir::weirctl
