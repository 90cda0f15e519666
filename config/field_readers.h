// Small helpers over MapReader shared by the schema's files: "if the key is present, read it into
// `out`", each reporting its own error.
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "common/net/address.h"
#include "config/yaml_reader.h"

namespace weir::config {

template <typename T>
inline bool read_uint_field(MapReader& map, std::string_view key, T& out, uint64_t min,
                            uint64_t max, bool required = false) {
  const auto node = required ? map.require(key, "an integer in [" + std::to_string(min) + ", " +
                                                    std::to_string(max) + "]")
                             : map.take(key);
  if (!node) return false;
  const auto value = read_unsigned(map.diagnostics(), *node, map.path_of(key), min, max);
  if (value) out = static_cast<T>(*value);
  return value.has_value();
}

inline bool read_string_field(MapReader& map, std::string_view key, std::string& out,
                              bool required = false) {
  const auto node = required ? map.require(key, "a string") : map.take(key);
  if (!node) return false;
  const auto value = read_string(map.diagnostics(), *node, map.path_of(key));
  if (value) out = *value;
  return value.has_value();
}

inline bool read_name_field(MapReader& map, std::string& out) {
  const auto node = map.require("name", "a name");
  if (!node) return false;
  const auto value = read_name(map.diagnostics(), *node, map.path_of("name"));
  if (value) out = *value;
  return value.has_value();
}

inline bool read_ipv4_field(MapReader& map, std::string_view key, net::Ipv4Address& out,
                            bool required = false) {
  const auto node = required ? map.require(key, "an IPv4 address") : map.take(key);
  if (!node) return false;
  const auto value = read_ipv4(map.diagnostics(), *node, map.path_of(key));
  if (value) out = *value;
  return value.has_value();
}

template <typename Enum>
inline bool read_choice_field(MapReader& map, std::string_view key, Enum& out,
                              Choices<Enum> choices, bool required = false) {
  std::string allowed;
  for (const auto& [name, value] : choices)
    allowed += (allowed.empty() ? "" : " | ") + std::string(name);
  const auto node = required ? map.require(key, "one of " + allowed) : map.take(key);
  if (!node) return false;
  const auto value = read_choice(map.diagnostics(), *node, map.path_of(key), choices);
  if (value) out = *value;
  return value.has_value();
}

// A list under `key`; calls `each(node, path)` for every element.
template <typename Each>
inline void read_list(MapReader& map, std::string_view key, bool required, Each each) {
  const auto node = required ? map.require(key, "a list") : map.take(key);
  if (!node) return;
  const std::string path = map.path_of(key);
  if (!node->IsSequence()) {
    map.diagnostics().error(node->Mark(), path, "expected a list");
    return;
  }
  if (required && node->size() == 0) {
    map.diagnostics().error(node->Mark(), path, "the list is empty; at least one entry is needed");
  }
  for (size_t i = 0; i < node->size(); ++i) each((*node)[i], index_path(path, i));
}

}  // namespace weir::config
