// Strict reading of a yaml-cpp document: every map is checked for duplicate keys (yaml-cpp keeps
// them silently) and unknown keys, every scalar for its type and range, and every problem becomes
// a Diagnostic with the position yaml-cpp recorded. Nothing here knows Weir's schema.
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/net/address.h"
#include "config/diagnostic.h"

namespace weir::config {

class Diagnostics {
 public:
  explicit Diagnostics(std::string file) : file_(std::move(file)) {}

  void error(const YAML::Mark& mark, std::string path, std::string message);
  void error_at_file(std::string message);

  const std::string& file() const { return file_; }
  bool empty() const { return errors_.empty(); }
  size_t count() const { return errors_.size(); }
  std::vector<Diagnostic> take_sorted();

 private:
  std::string file_;
  std::vector<Diagnostic> errors_;
};

// Reads `text` as one YAML document; throws YAML::Exception on a syntax error. A second document
// (or text the parser cannot get past) is reported in `diagnostics`.
YAML::Node load_one_document(const std::string& text, Diagnostics& diagnostics);

std::string child_path(const std::string& parent, std::string_view key);
std::string index_path(const std::string& parent, size_t index);

// A YAML map being read. Every key the schema asks about (present or not) is known; finish()
// reports the others. Duplicate keys are reported when the reader is made, and the first
// occurrence is the one read.
class MapReader {
 public:
  MapReader(Diagnostics& diagnostics, const YAML::Node& node, std::string path);

  bool is_map() const { return is_map_; }
  const std::string& path() const { return path_; }
  const YAML::Mark& mark() const { return mark_; }
  std::string path_of(std::string_view key) const { return child_path(path_, key); }
  Diagnostics& diagnostics() { return diagnostics_; }

  // The value under `key`, if present. Marks the key as known.
  std::optional<YAML::Node> take(std::string_view key);
  // As take(), but a missing key is an error reported at this map's position.
  std::optional<YAML::Node> require(std::string_view key, std::string_view what_is_expected);
  // A key that exists in the schema but not in this context (e.g. `framed` on a tcp listener).
  void forbid(std::string_view key, std::string_view why);
  // The key's own position (for errors about the key rather than its value).
  YAML::Mark key_mark(std::string_view key) const;

  // Reports every key nobody asked about, naming the allowed ones.
  void finish();

 private:
  struct Entry {
    std::string key;
    YAML::Node key_node;
    YAML::Node value;
  };

  Diagnostics& diagnostics_;
  std::string path_;
  YAML::Mark mark_;
  bool is_map_ = false;
  std::vector<Entry> entries_;  // first occurrence of each key, in file order
  std::vector<std::string> known_;
};

// Scalar readers: each reports its own error (naming what is allowed) and returns nullopt.
std::optional<uint64_t> read_unsigned(Diagnostics&, const YAML::Node&, const std::string& path,
                                      uint64_t min, uint64_t max);
// A non-empty string of valid UTF-8 without control characters.
std::optional<std::string> read_string(Diagnostics&, const YAML::Node&, const std::string& path);
// Why `text` cannot be a configuration string (invalid UTF-8, a control character), or "".
std::string text_problem(std::string_view text);
// The name of a port, listener, pool or backend: [A-Za-z0-9_.:-], at most kMaxNameLength.
inline constexpr size_t kMaxNameLength = 64;
std::optional<std::string> read_name(Diagnostics&, const YAML::Node&, const std::string& path);
std::optional<bool> read_bool(Diagnostics&, const YAML::Node&, const std::string& path);
std::optional<net::Ipv4Address> read_ipv4(Diagnostics&, const YAML::Node&, const std::string& path);
// "a.b.c.d/len"
std::optional<std::pair<net::Ipv4Address, uint8_t>> read_ipv4_prefix(Diagnostics&,
                                                                     const YAML::Node&,
                                                                     const std::string& path);
// "a.b.c.d:port"
std::optional<std::pair<net::Ipv4Address, uint16_t>> read_ipv4_endpoint(Diagnostics&,
                                                                        const YAML::Node&,
                                                                        const std::string& path);

template <typename Enum>
using Choices = std::initializer_list<std::pair<std::string_view, Enum>>;

std::string describe_choices(std::initializer_list<std::string_view> names);

template <typename Enum>
std::optional<Enum> read_choice(Diagnostics& diagnostics, const YAML::Node& node,
                                const std::string& path, Choices<Enum> choices) {
  const std::optional<std::string> text = read_string(diagnostics, node, path);
  if (!text) return std::nullopt;
  std::string allowed;
  for (const auto& [name, value] : choices) {
    if (*text == name) return value;
    allowed += allowed.empty() ? "" : ", ";
    allowed += name;
  }
  diagnostics.error(node.Mark(), path, "unknown value \"" + *text + "\"; allowed: " + allowed);
  return std::nullopt;
}

}  // namespace weir::config
