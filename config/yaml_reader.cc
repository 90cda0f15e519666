#include "config/yaml_reader.h"

#include <yaml-cpp/eventhandler.h>

#include <algorithm>
#include <charconv>
#include <sstream>

namespace weir::config {

namespace {

// yaml-cpp tags a plain scalar "?" and a quoted one "!": `port: "7000"` is a string, not a number.
bool is_quoted(const YAML::Node& node) {
  return node.Tag() == "!";
}

std::string kind_of(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Null:
      return "nothing (null)";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a map";
    case YAML::NodeType::Scalar:
      return (is_quoted(node) ? "the string \"" : "\"") + node.Scalar() + "\"";
    case YAML::NodeType::Undefined:
      break;
  }
  return "nothing";
}

// Records where each document starts and where its root node is, and nothing else.
struct DocumentStarts final : YAML::EventHandler {
  void OnDocumentStart(const YAML::Mark& mark) override {
    starts.push_back(mark);
    roots.push_back(mark);
    root_seen = false;
  }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark& mark, YAML::anchor_t) override { node(mark); }
  void OnAlias(const YAML::Mark& mark, YAML::anchor_t) override { node(mark); }
  void OnScalar(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                const std::string&) override {
    node(mark);
  }
  void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {
    node(mark);
  }
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {
    node(mark);
  }
  void OnMapEnd() override {}

  void node(const YAML::Mark& mark) {
    if (!root_seen && !roots.empty()) roots.back() = mark;
    root_seen = true;
  }
  std::vector<YAML::Mark> starts, roots;
  bool root_seen = false;
};
}  // namespace

void Diagnostics::error(const YAML::Mark& mark, std::string path, std::string message) {
  // yaml-cpp counts from 0 and reports -1 for nodes it made up; editors count from 1.
  const int line = mark.line >= 0 ? mark.line + 1 : 1;
  const int column = mark.column >= 0 ? mark.column + 1 : 1;
  errors_.push_back(Diagnostic{file_, line, column, std::move(path), std::move(message)});
}

void Diagnostics::error_at_file(std::string message) {
  errors_.push_back(Diagnostic{file_, 0, 0, "", std::move(message)});
}

std::vector<Diagnostic> Diagnostics::take_sorted() {
  // Cross-reference checks run after the walk; sorting puts every error in file order.
  std::stable_sort(errors_.begin(), errors_.end(), [](const Diagnostic& a, const Diagnostic& b) {
    return std::pair(a.line, a.column) < std::pair(b.line, b.column);
  });
  return std::move(errors_);
}

YAML::Node load_one_document(const std::string& text, Diagnostics& diagnostics) {
  YAML::Node root = YAML::Load(text);
  // A second document is an error. YAML::LoadAll would find it, but in yaml-cpp 0.7 (Debian
  // bookworm's) it never returns on some malformed text, "," alone for one, growing its list of
  // documents until memory runs out (jbeder/yaml-cpp#1040, fixed upstream by #1319; found by
  // tests/fuzz/yaml_config_fuzz.cc). So the text is read as one document, and a parser that
  // builds nothing is asked, twice and no more, where documents start.
  std::istringstream stream(text);
  YAML::Parser parser(stream);
  DocumentStarts starts;
  if (parser.HandleNextDocument(starts) && parser.HandleNextDocument(starts) &&
      starts.starts.size() == 2) {
    if (starts.starts[1].pos == starts.starts[0].pos) {  // the parser made no progress
      diagnostics.error(starts.roots[1], "", "YAML syntax error: nothing here can be read as YAML");
    } else {
      diagnostics.error(starts.roots[1], "",
                        "a second YAML document; the configuration is one document");
    }
  }
  return root;
}

std::string child_path(const std::string& parent, std::string_view key) {
  return parent.empty() ? std::string(key) : parent + "." + std::string(key);
}

std::string index_path(const std::string& parent, size_t index) {
  return parent + "[" + std::to_string(index) + "]";
}

MapReader::MapReader(Diagnostics& diagnostics, const YAML::Node& node, std::string path)
    : diagnostics_(diagnostics), path_(std::move(path)), mark_(node.Mark()) {
  if (!node.IsMap()) {
    diagnostics_.error(mark_, path_, "expected a map, got " + kind_of(node));
    return;
  }
  is_map_ = true;
  for (auto it = node.begin(); it != node.end(); ++it) {
    if (!it->first.IsScalar()) {
      diagnostics_.error(it->first.Mark(), path_,
                         "a key must be a plain name, got " + kind_of(it->first));
      continue;
    }
    const std::string key = it->first.Scalar();
    const auto first = std::find_if(entries_.begin(), entries_.end(),
                                    [&](const Entry& e) { return e.key == key; });
    if (first != entries_.end()) {
      diagnostics_.error(it->first.Mark(), child_path(path_, key),
                         "duplicate key (first given at line " +
                             std::to_string(first->key_node.Mark().line + 1) +
                             "); each key may appear once");
      continue;
    }
    entries_.push_back(Entry{key, it->first, it->second});
  }
}

std::optional<YAML::Node> MapReader::take(std::string_view key) {
  known_.emplace_back(key);
  for (const Entry& entry : entries_) {
    if (entry.key == key) return entry.value;
  }
  return std::nullopt;
}

std::optional<YAML::Node> MapReader::require(std::string_view key,
                                             std::string_view what_is_expected) {
  std::optional<YAML::Node> value = take(key);
  if (!value && is_map_) {
    diagnostics_.error(mark_, path_of(key),
                       "missing required key; expected " + std::string(what_is_expected));
  }
  return value;
}

void MapReader::forbid(std::string_view key, std::string_view why) {
  known_.emplace_back(key);
  for (const Entry& entry : entries_) {
    if (entry.key == key) diagnostics_.error(entry.key_node.Mark(), path_of(key), std::string(why));
  }
}

YAML::Mark MapReader::key_mark(std::string_view key) const {
  for (const Entry& entry : entries_) {
    if (entry.key == key) return entry.key_node.Mark();
  }
  return mark_;
}

void MapReader::finish() {
  std::string allowed;
  for (const std::string& key : known_) {
    if (allowed.find(" " + key + ",") != std::string::npos) continue;
    allowed += " " + key + ",";
  }
  if (!allowed.empty()) allowed.pop_back();
  for (const Entry& entry : entries_) {
    if (std::find(known_.begin(), known_.end(), entry.key) != known_.end()) continue;
    diagnostics_.error(entry.key_node.Mark(), path_of(entry.key),
                       "unknown key; allowed here:" + allowed);
  }
}

std::optional<uint64_t> read_unsigned(Diagnostics& diagnostics, const YAML::Node& node,
                                      const std::string& path, uint64_t min, uint64_t max) {
  const std::string range = "[" + std::to_string(min) + ", " + std::to_string(max) + "]";
  if (!node.IsScalar() || is_quoted(node)) {
    diagnostics.error(node.Mark(), path,
                      "expected an integer in " + range + ", got " + kind_of(node));
    return std::nullopt;
  }
  const std::string& text = node.Scalar();
  uint64_t value = 0;
  const auto [end, status] = std::from_chars(text.data(), text.data() + text.size(), value);
  const bool digits_only = !text.empty() && std::all_of(text.begin(), text.end(), [](char c) {
    return c >= '0' && c <= '9';
  });
  if (!digits_only || status == std::errc::invalid_argument || end != text.data() + text.size()) {
    diagnostics.error(node.Mark(), path,
                      "expected an integer in " + range + ", got " + kind_of(node));
    return std::nullopt;
  }
  if (status == std::errc::result_out_of_range || value < min || value > max) {
    diagnostics.error(node.Mark(), path, text + " is out of range; allowed: " + range);
    return std::nullopt;
  }
  return value;
}

std::string text_problem(std::string_view text) {
  char hex[8];
  for (size_t i = 0; i < text.size();) {
    const auto byte = static_cast<unsigned char>(text[i]);
    // The length of the UTF-8 sequence this byte starts, and the smallest code point it may
    // encode (RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF).
    size_t length = 0;
    uint32_t code_point = 0, smallest = 0;
    if (byte < 0x80) {
      length = 1;
      code_point = byte;
    } else if ((byte & 0xe0) == 0xc0) {
      length = 2, code_point = byte & 0x1f, smallest = 0x80;
    } else if ((byte & 0xf0) == 0xe0) {
      length = 3, code_point = byte & 0x0f, smallest = 0x800;
    } else if ((byte & 0xf8) == 0xf0) {
      length = 4, code_point = byte & 0x07, smallest = 0x10000;
    }
    bool valid = length != 0 && i + length <= text.size();
    for (size_t k = 1; valid && k < length; ++k) {
      const auto next = static_cast<unsigned char>(text[i + k]);
      valid = (next & 0xc0) == 0x80;
      code_point = (code_point << 6) | (next & 0x3f);
    }
    valid = valid && code_point >= smallest && code_point <= 0x10ffff &&
            !(code_point >= 0xd800 && code_point <= 0xdfff);
    if (!valid) {
      std::snprintf(hex, sizeof hex, "0x%02x", byte);
      return "is not valid UTF-8 (byte " + std::string(hex) + " at offset " + std::to_string(i) +
             ")";
    }
    if (code_point < 0x20 || code_point == 0x7f) {
      std::snprintf(hex, sizeof hex, "%04X", code_point);
      return "contains a control character (U+" + std::string(hex) + " at offset " +
             std::to_string(i) + ")";
    }
    i += length;
  }
  return "";
}

std::optional<std::string> read_string(Diagnostics& diagnostics, const YAML::Node& node,
                                       const std::string& path) {
  if (!node.IsScalar() || node.Scalar().empty()) {
    diagnostics.error(node.Mark(), path, "expected a non-empty string, got " + kind_of(node));
    return std::nullopt;
  }
  if (const std::string problem = text_problem(node.Scalar()); !problem.empty()) {
    diagnostics.error(node.Mark(), path, "the string " + problem);
    return std::nullopt;
  }
  return node.Scalar();
}

std::optional<std::string> read_name(Diagnostics& diagnostics, const YAML::Node& node,
                                     const std::string& path) {
  std::optional<std::string> name = read_string(diagnostics, node, path);
  if (!name) return name;
  const bool allowed =
      name->size() <= kMaxNameLength && std::all_of(name->begin(), name->end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.' ||
               c == ':';
      });
  if (!allowed) {
    diagnostics.error(node.Mark(), path,
                      "\"" + *name + "\" is not a name: use letters, digits and _ - . : (at most " +
                          std::to_string(kMaxNameLength) +
                          "), since names appear in metric labels, logs and weirctl's "
                          "POOL/BACKEND");
    return std::nullopt;
  }
  return name;
}

std::optional<bool> read_bool(Diagnostics& diagnostics, const YAML::Node& node,
                              const std::string& path) {
  // Only the two YAML 1.2 spellings: "yes", "on" and "y" are YAML 1.1 booleans that surprise.
  if (node.IsScalar() && !is_quoted(node)) {
    if (node.Scalar() == "true") return true;
    if (node.Scalar() == "false") return false;
  }
  diagnostics.error(node.Mark(), path, "expected true or false, got " + kind_of(node));
  return std::nullopt;
}

std::optional<net::Ipv4Address> read_ipv4(Diagnostics& diagnostics, const YAML::Node& node,
                                          const std::string& path) {
  if (node.IsScalar()) {
    if (auto address = net::Ipv4Address::parse(node.Scalar())) return address;
  }
  diagnostics.error(node.Mark(), path,
                    "expected an IPv4 address in dotted-quad form (e.g. 10.0.0.1, no leading "
                    "zeros), got " +
                        kind_of(node));
  return std::nullopt;
}

std::optional<std::pair<net::Ipv4Address, uint8_t>> read_ipv4_prefix(Diagnostics& diagnostics,
                                                                     const YAML::Node& node,
                                                                     const std::string& path) {
  const std::string expected =
      "expected ADDRESS/PREFIX with a dotted-quad IPv4 address and a prefix length 1-32 (e.g. "
      "10.0.0.2/24), got ";
  if (!node.IsScalar()) {
    diagnostics.error(node.Mark(), path, expected + kind_of(node));
    return std::nullopt;
  }
  const std::string& text = node.Scalar();
  const size_t slash = text.find('/');
  if (slash == std::string::npos) {
    diagnostics.error(node.Mark(), path, expected + kind_of(node));
    return std::nullopt;
  }
  const auto address = net::Ipv4Address::parse(std::string_view(text).substr(0, slash));
  const std::string length_text = text.substr(slash + 1);
  unsigned length = 0;
  const auto [end, status] =
      std::from_chars(length_text.data(), length_text.data() + length_text.size(), length);
  const bool length_ok = !length_text.empty() && status == std::errc() &&
                         end == length_text.data() + length_text.size() && length >= 1 &&
                         length <= 32 && (length_text.size() == 1 || length_text[0] != '0');
  if (!address || !length_ok) {
    diagnostics.error(node.Mark(), path, expected + kind_of(node));
    return std::nullopt;
  }
  return std::pair(*address, static_cast<uint8_t>(length));
}

std::optional<std::pair<net::Ipv4Address, uint16_t>> read_ipv4_endpoint(Diagnostics& diagnostics,
                                                                        const YAML::Node& node,
                                                                        const std::string& path) {
  const std::string expected =
      "expected ADDRESS:PORT with a dotted-quad IPv4 address and a port 1-65535 (e.g. "
      "127.0.0.1:9464), got ";
  if (node.IsScalar()) {
    const std::string& text = node.Scalar();
    const size_t colon = text.rfind(':');
    if (colon != std::string::npos) {
      const auto address = net::Ipv4Address::parse(std::string_view(text).substr(0, colon));
      unsigned port = 0;
      const char* first = text.data() + colon + 1;
      const char* last = text.data() + text.size();
      const auto [end, status] = std::from_chars(first, last, port);
      if (address && first != last && *first != '0' && status == std::errc() && end == last &&
          port >= 1 && port <= 65535) {
        return std::pair(*address, static_cast<uint16_t>(port));
      }
    }
  }
  diagnostics.error(node.Mark(), path, expected + kind_of(node));
  return std::nullopt;
}

}  // namespace weir::config
