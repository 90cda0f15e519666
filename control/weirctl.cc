// weirctl: the admin CLI (docs/weirctl.md). One request to weir-control over its Unix stream socket
// (the config's control.socket) in the control channel's framing (docs/protocol.md): one JSON
// object per line each way, {"v":1,"id":N,"op":...} out, {"v":1,"id":N,"ok":...} back. The reply
// is printed as an aligned table, or as JSON with --json. check-config runs locally and needs no
// daemon.
//
// Exit codes: 0 ok, 1 the operation failed or weir-control could not be reached, 2 bad usage,
// 3 a --wait timed out with sessions left.

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <exception>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include <yaml-cpp/yaml.h>
#include <nlohmann/json.hpp>

#include "common/channel/line_client.h"
#include "common/version.h"
#include "config/certificate_check.h"
#include "config/config.h"

namespace {

using json = nlohmann::ordered_json;
namespace config = weir::config;
using weir::version_line;

constexpr const char* kProgram = "weirctl";
constexpr int kExitOk = 0;
constexpr int kExitFailed = 1;
constexpr int kExitUsage = 2;
constexpr int kExitTimedOut = 3;
constexpr std::chrono::seconds kTimeout{5};
// How often --wait asks again: a CLI's poll, well under a second and cheap for the dataplane (one
// pools or box request).
constexpr std::chrono::milliseconds kWaitPoll{100};

// Bad command line: exit 2 with the usage.
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// The operation could not be done (daemon unreachable, no reply, malformed reply): exit 1.
struct Failure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

void print_usage(FILE* out) {
  std::fprintf(
      out,
      "usage: weirctl [--socket PATH | --config FILE] [--json] COMMAND [ARGS]\n"
      "\n"
      "The admin CLI of Weir: asks weir-control over its Unix socket.\n"
      "\n"
      "commands:\n"
      "  status                    weir-control, the dataplane, reloads, health checks\n"
      "  listeners                 listeners with their connections\n"
      "  backends [POOL]           backends of every pool, or of POOL\n"
      "  drain [--wait [--timeout S]] POOL/BACKEND\n"
      "                            no new sessions; existing ones end or are reset after the\n"
      "                            pool's drain_timeout_ms. --wait: return once no session is\n"
      "                            left (exit 3 if S seconds pass first)\n"
      "  undrain POOL/BACKEND      clear the manual override: health checks decide again\n"
      "  down POOL/BACKEND         no new sessions (manual override)\n"
      "  up POOL/BACKEND           clear the manual override: health checks decide again\n"
      "  weight POOL/BACKEND N     set the backend's weight (1-65535)\n"
      "  drain-box [--wait [--timeout S]]\n"
      "                            every listener of the box refuses new connections (RST);\n"
      "                            sessions go on. --wait: return once none is left (exit 3 if\n"
      "                            S seconds pass first)\n"
      "  undrain-box               the listeners accept connections again\n"
      "  reload                    reload the configuration file; print what changed\n"
      "  check-config FILE         validate FILE locally (no daemon needed); print every error\n"
      "                            as FILE:LINE:COLUMN: path: message\n"
      "  stats                     the dataplane's counters\n"
      "  events [N]                the latest N (default 20, at most 256) corrupt or malformed\n"
      "                            frames: time, listener, path, stream, CRCs, what Weir did\n"
      "  help                      this text\n"
      "\n"
      "options:\n"
      "  --socket PATH   weir-control's socket (default: /run/weir/control.sock)\n"
      "  --config FILE   take the socket from FILE's control.socket\n"
      "  --json          print the reply as JSON\n"
      "  --version       print the version and source revision\n"
      "\n"
      "exit codes: 0 ok, 1 operation failed or weir-control unreachable, 2 usage error,\n"
      "            3 --wait timed out with sessions left\n");
}

struct Options {
  std::optional<std::string> socket;
  std::optional<std::string> config_file;
  bool json = false;
  bool help = false;
  bool version = false;
  bool wait = false;                // drain, drain-box: until no session is left
  std::optional<double> timeout_s;  // of --wait; none: as long as it takes
  std::vector<std::string> args;    // the command and its arguments
};

double parse_seconds(const std::string& text) {
  double seconds = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), seconds);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || !(seconds > 0) ||
      seconds > 86400 * 7)
    throw UsageError("--timeout must be a number of seconds above 0 (at most a week), got \"" +
                     text + "\"");
  return seconds;
}

Options parse_options(int argc, char** argv) {
  Options options;
  bool only_positional = false;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (only_positional || arg.empty() || arg[0] != '-' || arg == "-") {
      options.args.emplace_back(arg);
      continue;
    }
    if (arg == "--") {
      only_positional = true;
      continue;
    }
    if (arg == "--json") {
      options.json = true;
      continue;
    }
    if (arg == "--help" || arg == "-h") {
      options.help = true;
      continue;
    }
    if (arg == "--version") {
      options.version = true;
      continue;
    }
    if (arg == "--wait") {
      options.wait = true;
      continue;
    }
    // Options with a value, as the next argument or after '='.
    std::string_view name = arg;
    std::optional<std::string> value;
    if (const size_t equals = arg.find('='); equals != std::string_view::npos) {
      name = arg.substr(0, equals);
      value = std::string(arg.substr(equals + 1));
    }
    if (name != "--socket" && name != "--config" && name != "--timeout") {
      throw UsageError("unknown option " + std::string(arg));
    }
    if (!value) {
      if (i + 1 >= argc) throw UsageError(std::string(name) + " needs a value");
      value = argv[++i];
    }
    if (value->empty()) throw UsageError(std::string(name) + " needs a non-empty value");
    if (name == "--timeout") {
      if (options.timeout_s) throw UsageError("--timeout given twice");
      options.timeout_s = parse_seconds(*value);
      continue;
    }
    auto& slot = name == "--socket" ? options.socket : options.config_file;
    if (slot) throw UsageError(std::string(name) + " given twice");
    slot = std::move(value);
  }
  if (options.socket && options.config_file) {
    throw UsageError("--socket and --config are alternatives; give one");
  }
  if (options.timeout_s && !options.wait) throw UsageError("--timeout goes with --wait");
  return options;
}

// --- Replies, read leniently: a missing or mistyped field prints as "-" or 0, never throws. ---

const json& field(const json& object, const char* key) {
  static const json kNull;
  if (!object.is_object()) return kNull;
  const auto it = object.find(key);
  return it == object.end() ? kNull : *it;
}

std::string text(const json& value) {
  if (value.is_null()) return "-";
  if (value.is_string()) return value.get<std::string>();
  if (value.is_boolean()) return value.get<bool>() ? "yes" : "no";
  return value.dump(-1, ' ', false, json::error_handler_t::replace);
}

uint64_t count(const json& value) {
  if (value.is_number_unsigned()) return value.get<uint64_t>();
  if (value.is_number_integer() && value.get<int64_t>() > 0) {
    return static_cast<uint64_t>(value.get<int64_t>());
  }
  return 0;
}

uint64_t count(const json& object, const char* key) {
  return count(field(object, key));
}

// The sum of every number in an object (e.g. the drop reasons).
uint64_t sum_of(const json& object) {
  uint64_t total = 0;
  if (object.is_object()) {
    for (const auto& [key, value] : object.items()) total += count(value);
  }
  return total;
}

std::string endpoint(const json& object) {
  const json& port = field(object, "port");
  if (port.is_null()) return text(field(object, "address"));
  return text(field(object, "address")) + ":" + text(port);
}

std::string utc_time(const json& unix_time) {
  if (!unix_time.is_number() || count(unix_time) == 0) return "never";
  const auto seconds = static_cast<time_t>(count(unix_time));
  tm parts{};
  if (gmtime_r(&seconds, &parts) == nullptr) return text(unix_time);
  char buffer[32];
  std::strftime(buffer, sizeof buffer, "%Y-%m-%d %H:%M:%S UTC", &parts);
  return buffer;
}

// Columns separated by two spaces; numbers right-aligned; no trailing blanks.
class Table {
 public:
  enum Align { left, right };
  struct Column {
    std::string header;
    Align align = left;
  };

  explicit Table(std::vector<Column> columns) : columns_(std::move(columns)) {}

  void add(std::vector<std::string> row) {
    row.resize(columns_.size(), "-");
    rows_.push_back(std::move(row));
  }
  bool empty() const { return rows_.empty(); }

  void print(bool headers = true) const {
    std::vector<size_t> widths(columns_.size(), 0);
    for (size_t c = 0; c < columns_.size(); ++c) {
      if (headers) widths[c] = columns_[c].header.size();
      for (const auto& row : rows_) widths[c] = std::max(widths[c], row[c].size());
    }
    if (headers) {
      std::vector<std::string> header_row;
      for (const auto& column : columns_) header_row.push_back(column.header);
      print_row(header_row, widths);
    }
    for (const auto& row : rows_) print_row(row, widths);
  }

 private:
  void print_row(const std::vector<std::string>& row, const std::vector<size_t>& widths) const {
    std::string line;
    for (size_t c = 0; c < row.size(); ++c) {
      if (c != 0) line += "  ";
      const std::string padding(widths[c] - row[c].size(), ' ');
      const bool last = c + 1 == row.size();
      if (columns_[c].align == right) {
        line += padding + row[c];
      } else {
        line += row[c];
        if (!last) line += padding;
      }
    }
    std::printf("%s\n", line.c_str());
  }

  std::vector<Column> columns_;
  std::vector<std::vector<std::string>> rows_;
};

// --- The socket ---

// Connects, sends `request` as one line and returns the reply, checked against the channel's
// envelope. Throws Failure.
json ask_weir_control(const std::string& path, const json& request) {
  weir::channel::LineClient client(path, "weir-control", kTimeout);
  std::string error;
  std::optional<json> reply = client.call(request, error);
  if (!reply) throw Failure(error);
  return *std::move(reply);
}

// The socket to use: --socket, the control.socket of --config's file, or the default.
std::string socket_path(const Options& options) {
  if (options.socket) return *options.socket;
  if (!options.config_file) return config::Control{}.socket;
  const std::string& file = *options.config_file;
  const config::LoadResult result = config::load_file(file);
  if (result.ok()) return result.config->control.socket;
  // An invalid file (being edited, say) still names the socket of the weir-control that runs on
  // its previous version: read the one key directly, so that `reload` can show what is wrong.
  try {
    const YAML::Node root = YAML::LoadFile(file);
    const YAML::Node control = root.IsMap() ? root["control"] : YAML::Node();
    const YAML::Node socket = control.IsMap() ? control["socket"] : YAML::Node();
    const bool absent = !socket.IsDefined() || socket.IsNull();
    if (absent || (socket.IsScalar() && !socket.Scalar().empty())) {
      const std::string path = absent ? config::Control{}.socket : socket.Scalar();
      std::fprintf(stderr,
                   "%s: warning: %s has errors (weirctl check-config %s lists them); using its "
                   "control socket %s\n",
                   kProgram, file.c_str(), file.c_str(), path.c_str());
      return path;
    }
  } catch (const YAML::Exception&) {
  }
  for (const auto& error : result.errors) std::fprintf(stderr, "%s\n", error.to_string().c_str());
  throw Failure("cannot take the control socket from " + file);
}

// --- Commands ---

struct Target {
  std::string pool;
  std::string backend;
};

Target parse_target(const std::string& text) {
  const size_t slash = text.find('/');
  if (slash == std::string::npos || slash == 0 || slash + 1 == text.size()) {
    throw UsageError("expected POOL/BACKEND, got \"" + text + "\"");
  }
  return {text.substr(0, slash), text.substr(slash + 1)};
}

uint32_t parse_weight(const std::string& text) {
  uint32_t weight = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), weight);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || weight < 1 ||
      weight > config::kMaxWeight) {
    throw UsageError("weight must be an integer from 1 to " + std::to_string(config::kMaxWeight) +
                     ", got \"" + text + "\"");
  }
  return weight;
}

// `events N`: 1 to 256 (the dataplane keeps the latest 256).
uint32_t parse_event_limit(const std::string& text) {
  uint32_t limit = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), limit);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || limit < 1 ||
      limit > 256) {
    throw UsageError("events takes a count from 1 to 256, got \"" + text + "\"");
  }
  return limit;
}

void print_json(const json& value) {
  std::printf("%s\n", value.dump(2, ' ', false, json::error_handler_t::replace).c_str());
}

void print_status(const json& reply) {
  const json& dataplane = field(reply, "dataplane");
  const json& reloads = field(reply, "reloads");
  std::string dataplane_text = "not connected";
  if (field(dataplane, "connected") == true) {
    dataplane_text = "connected (pid " + text(field(dataplane, "pid")) + ", " +
                     text(field(dataplane, "workers")) + " workers, node_id " +
                     text(field(dataplane, "node_id")) + ")";
  }
  Table table({{"", Table::left}, {"", Table::left}});
  table.add({"dataplane", dataplane_text});
  table.add({"config", text(field(reply, "config"))});
  table.add({"reloads", std::to_string(count(reloads, "ok")) + " ok, " +
                            std::to_string(count(reloads, "failed")) + " failed, last success " +
                            utc_time(field(reloads, "last_success_unix"))});
  table.add({"health", std::to_string(count(field(reply, "health"), "checks")) + " checks"});
  std::string passive_down;
  size_t passive_tracked = 0;
  if (const json& passive = field(reply, "passive"); passive.is_array()) {
    for (const auto& p : passive) {
      ++passive_tracked;
      if (field(p, "down") == true)
        passive_down += (passive_down.empty() ? "" : ", ") + text(field(p, "pool")) + "/" +
                        text(field(p, "backend"));
    }
  }
  if (passive_tracked > 0)
    table.add({"passive", std::to_string(passive_tracked) + " backends observed, " +
                              (passive_down.empty() ? "none down" : "down: " + passive_down)});
  if (const json& box = field(reply, "box"); box.is_object())
    table.add({"box", field(box, "drained") == true
                          ? "drained (weirctl drain-box): listeners refuse new connections"
                          : "accepting"});
  if (const json& error = field(field(reply, "state_file"), "error"); error.is_string())
    table.add({"state", text(field(field(reply, "state_file"), "path")) + ": " + text(error)});
  table.print(false);
}

void print_listeners(const json& reply) {
  Table table({{"NAME"},
               {"ADDRESS"},
               {"PROTOCOL"},
               {"POOL"},
               {"CONNECTIONS", Table::right},
               {"ACTIVE", Table::right}});
  const json& listeners = field(reply, "listeners");
  if (listeners.is_array()) {
    for (const auto& l : listeners) {
      table.add({text(field(l, "name")), endpoint(l), text(field(l, "protocol")),
                 text(field(l, "pool")), text(field(l, "connections")), text(field(l, "active"))});
    }
  }
  if (table.empty()) {
    std::printf("no listeners\n");
    return;
  }
  table.print();
}

void print_backends(const json& reply) {
  Table table({{"POOL"},
               {"BACKEND"},
               {"ADDRESS"},
               {"STATE"},
               {"WEIGHT", Table::right},
               {"ACTIVE", Table::right},
               {"CONNECTIONS", Table::right},
               {"HEALTH"},
               {"OVERRIDE"},
               {"PASSIVE"}});
  const json& pools = field(reply, "pools");
  if (pools.is_array()) {
    for (const auto& pool : pools) {
      const json& backends = field(pool, "backends");
      if (!backends.is_array()) continue;
      for (const auto& b : backends) {
        table.add({text(field(pool, "name")), text(field(b, "name")), endpoint(b),
                   text(field(b, "state")), text(field(b, "weight")), text(field(b, "active")),
                   text(field(b, "connections")), text(field(b, "health")),
                   text(field(b, "override")), text(field(b, "passive"))});
      }
    }
  }
  if (table.empty()) {
    std::printf("no backends\n");
    return;
  }
  table.print();
}

void print_reload(const json& reply) {
  const json& changes = field(reply, "changes");
  if (!changes.is_array() || changes.empty()) {
    std::printf("reloaded: no changes\n");
    return;
  }
  std::printf("reloaded: %zu change%s\n", changes.size(), changes.size() == 1 ? "" : "s");
  for (const auto& change : changes) std::printf("  %s\n", text(change).c_str());
}

std::string percent(uint64_t part, uint64_t whole) {
  if (whole == 0) return "-";
  char buffer[16];
  std::snprintf(buffer, sizeof buffer, "%.1f%%",
                100.0 * static_cast<double>(part) / static_cast<double>(whole));
  return buffer;
}

void print_stats(const json& reply) {
  // weir-control may pass the dataplane's object through as the reply or under "counters".
  const json& counters = field(reply, "counters").is_object() ? field(reply, "counters") : reply;

  Table workers({{"WORKER", Table::right},
                 {"BUSY", Table::right},
                 {"RX_PACKETS", Table::right},
                 {"TX_PACKETS", Table::right},
                 {"DROPS", Table::right},
                 {"ESTABLISHED", Table::right},
                 {"RETRANSMITS", Table::right},
                 {"RESETS_SENT", Table::right}});
  const json& worker_list = field(counters, "workers");
  if (worker_list.is_array()) {
    for (const auto& w : worker_list) {
      const json& loop = field(w, "loop");
      const json& tcp = field(w, "tcp");
      uint64_t rx = 0, tx = 0, drops = 0;
      if (const json& ports = field(w, "ports"); ports.is_object()) {
        for (const auto& [name, port] : ports.items()) {
          rx += count(port, "rx_packets");
          tx += count(port, "tx_packets");
          drops += sum_of(field(port, "drops"));
        }
      }
      workers.add({text(field(w, "id")),
                   percent(count(loop, "busy_cycles"), count(loop, "total_cycles")),
                   std::to_string(rx), std::to_string(tx), std::to_string(drops),
                   std::to_string(count(tcp, "established")),
                   std::to_string(count(tcp, "retransmitted_segments")),
                   std::to_string(count(tcp, "resets_sent"))});
    }
  }

  Table listeners({{"LISTENER"},
                   {"CONNECTIONS", Table::right},
                   {"ACTIVE", Table::right},
                   {"NO_BACKEND", Table::right},
                   {"CONNECT_FAILURES", Table::right},
                   {"BYTES_TO_BACKEND", Table::right},
                   {"BYTES_TO_CLIENT", Table::right},
                   {"CORRUPT", Table::right}});
  if (const json& by_name = field(counters, "listeners"); by_name.is_object()) {
    for (const auto& [name, l] : by_name.items()) {
      listeners.add({name, std::to_string(count(l, "connections")),
                     std::to_string(count(l, "active")), std::to_string(count(l, "no_backend")),
                     std::to_string(count(l, "backend_connect_failures")),
                     std::to_string(count(l, "bytes_to_backend")),
                     std::to_string(count(l, "bytes_to_client")),
                     std::to_string(count(l, "frames_corrupt_to_backend") +
                                    count(l, "frames_corrupt_to_client"))});
    }
  }

  if (workers.empty()) {
    std::printf("no workers\n");
  } else {
    workers.print();
  }
  if (!listeners.empty()) {
    std::printf("\n");
    listeners.print();
  }
  std::printf("\nevery counter: weirctl --json stats (docs/metrics.md)\n");
}

void print_events(const json& reply) {
  Table table({{"TIME"},
               {"LISTENER"},
               {"DIRECTION"},
               {"CLIENT"},
               {"POOL/BACKEND"},
               {"STREAM", Table::right},
               {"LENGTH", Table::right},
               {"VERDICT"},
               {"EXPECTED_CRC"},
               {"RECEIVED_CRC"},
               {"ACTION"}});
  const json& events = field(reply, "events");
  if (events.is_array()) {
    for (const auto& e : events) {
      const std::string backend = text(field(e, "backend"));
      table.add({text(field(e, "time")), text(field(e, "listener")), text(field(e, "direction")),
                 text(field(e, "client")),
                 text(field(e, "pool")) + "/" + (backend.empty() ? "-" : backend),
                 text(field(e, "stream")), text(field(e, "length")),
                 text(field(e, "verdict")) +
                     (field(e, "reason").is_string() ? " (" + text(field(e, "reason")) + ")" : ""),
                 field(e, "expected_crc").is_string() ? text(field(e, "expected_crc")) : "-",
                 field(e, "received_crc").is_string() ? text(field(e, "received_crc")) : "-",
                 text(field(e, "action"))});
    }
  }
  if (table.empty()) {
    std::printf("no corrupt or malformed frames seen\n");
    return;
  }
  table.print();
}

int check_config(const std::string& file, bool as_json) {
  const config::LoadResult result = config::load_file(file);
  std::vector<config::Diagnostic> errors = result.errors;
  // The certificate and key files of tls listeners, as weir-dataplane --check-config reads them.
  if (result.ok()) errors = config::check_certificates(*result.config, std::time(nullptr));
  const bool ok = result.ok() && errors.empty();
  if (as_json) {
    json diagnostics = json::array();
    for (const auto& error : errors) diagnostics.push_back(error.to_string());
    print_json({{"ok", ok}, {"file", file}, {"diagnostics", diagnostics}});
  } else {
    for (const auto& error : errors) std::fprintf(stderr, "%s\n", error.to_string().c_str());
    if (ok) std::printf("%s: configuration is valid\n", file.c_str());
  }
  return ok ? kExitOk : kExitFailed;
}

// --wait: what one poll found. `left` is the sessions still open, none while the dataplane has not
// applied the change on every worker yet (a session could still be placed); `failure` ends the
// wait at once.
struct WaitPoll {
  std::optional<uint64_t> left;
  std::string failure;
  uint64_t resets = 0;  // sessions the dataplane reset for the drain, so far
};

// Asks `request` every kWaitPoll until `read` finds no session left (0), `read` fails (1) or
// --timeout passes (3). Prints the outcome; `what` names the target ("app/b1", "the box").
int wait_until_empty(const std::string& socket, const Options& options, const json& request,
                     WaitPoll (*read)(const json&, const json&), const json& target,
                     const std::string& what) {
  using Clock = std::chrono::steady_clock;
  const Clock::time_point start = Clock::now();
  std::optional<uint64_t> first_resets;
  WaitPoll poll;
  for (;;) {
    const json reply = ask_weir_control(socket, request);
    if (field(reply, "ok") != true) {
      poll.failure = text(field(reply, "error"));
    } else {
      poll = read(reply, target);
    }
    if (!first_resets) first_resets = poll.resets;
    const double waited = std::chrono::duration<double>(Clock::now() - start).count();
    const uint64_t reset = poll.resets - std::min(poll.resets, *first_resets);
    char seconds[32];
    std::snprintf(seconds, sizeof seconds, "%.1f", waited);
    if (!poll.failure.empty()) {
      std::fprintf(stderr, "%s: waiting for %s to drain: %s\n", kProgram, what.c_str(),
                   poll.failure.c_str());
      return kExitFailed;
    }
    if (poll.left && *poll.left == 0) {
      if (options.json) {
        print_json({{"ok", true},
                    {"drained", what},
                    {"sessions", 0},
                    {"waited_seconds", waited},
                    {"sessions_reset", reset}});
      } else {
        std::printf("%s: drained, no session left (waited %s s%s)\n", what.c_str(), seconds,
                    reset == 0 ? ""
                               : ("; " + std::to_string(reset) +
                                  " reset when the pool's drain_timeout_ms passed")
                                     .c_str());
      }
      return kExitOk;
    }
    if (options.timeout_s && waited >= *options.timeout_s) {
      const std::string left = poll.left ? std::to_string(*poll.left) : "unknown (not applied)";
      if (options.json) {
        print_json({{"ok", false},
                    {"error", "timed out"},
                    {"drained", what},
                    {"sessions", poll.left ? json(*poll.left) : json(nullptr)},
                    {"waited_seconds", waited}});
      }
      std::fprintf(stderr,
                   "%s: %s still has %s session%s after %s s (--timeout); it stays drained\n",
                   kProgram, what.c_str(), left.c_str(), poll.left == 1u ? "" : "s", seconds);
      return kExitTimedOut;
    }
    std::this_thread::sleep_for(kWaitPoll);
  }
}

// A backends reply: the target backend's sessions once its pool's plan is applied everywhere.
WaitPoll backend_sessions(const json& reply, const json& target) {
  WaitPoll out;
  const json& pools = field(reply, "pools");
  if (pools.is_array()) {
    for (const auto& pool : pools) {
      if (field(pool, "name") != target["pool"]) continue;
      const json& backends = field(pool, "backends");
      if (!backends.is_array()) continue;
      for (const auto& b : backends) {
        if (field(b, "name") != target["backend"]) continue;
        out.resets = count(b, "drain_resets");
        if (field(b, "state") != "draining") {
          out.failure = "it is " + text(field(b, "state")) +
                        " now, no longer draining (the override was changed meanwhile)";
        } else if (field(pool, "plan_applied") != false) {
          out.left = count(b, "sessions");
        }
        return out;
      }
    }
  }
  out.failure = "the backend is gone from weir-control's reply (a reload removed it?)";
  return out;
}

// A box reply: the sessions open on the dataplane once every worker has stopped accepting.
WaitPoll box_sessions(const json& reply, const json&) {
  WaitPoll out;
  const json& dataplane = field(reply, "dataplane");
  if (field(reply, "drained") != true) {
    out.failure = "the box is no longer drained (weirctl undrain-box meanwhile)";
  } else if (field(dataplane, "applied") == true) {
    out.left = count(dataplane, "sessions");
  }
  return out;
}

void expect_arguments(const std::vector<std::string>& args, size_t min, size_t max) {
  const size_t given = args.size() - 1;
  if (given < min || given > max) {
    std::string expected =
        min == max ? std::to_string(min) : std::to_string(min) + " or " + std::to_string(max);
    throw UsageError(args[0] + " takes " + expected + " argument" + (max == 1 ? "" : "s") +
                     ", got " + std::to_string(given));
  }
}

int run(const Options& options) {
  if (options.help) {
    print_usage(stdout);
    return kExitOk;
  }
  if (options.version) {
    std::printf("%s\n", version_line(kProgram).c_str());
    return kExitOk;
  }
  if (options.args.empty()) throw UsageError("no command given");
  const std::vector<std::string>& args = options.args;
  const std::string& command = args[0];
  if (options.wait && command != "drain" && command != "drain-box")
    throw UsageError("--wait goes with drain and drain-box, not " + command);

  if (command == "help") {
    print_usage(stdout);
    return kExitOk;
  }
  if (command == "check-config") {
    expect_arguments(args, 1, 1);
    return check_config(args[1], options.json);
  }

  json request = json::object();
  void (*print)(const json&) = nullptr;
  std::string done;  // what a successful set prints
  if (command == "status" || command == "listeners" || command == "reload" || command == "stats") {
    expect_arguments(args, 0, 0);
    request["op"] = command;
    print = command == "status"      ? print_status
            : command == "listeners" ? print_listeners
            : command == "reload"    ? print_reload
                                     : print_stats;
  } else if (command == "events") {
    expect_arguments(args, 0, 1);
    request["op"] = "events";
    request["limit"] = args.size() == 2 ? parse_event_limit(args[1]) : 20;
    print = print_events;
  } else if (command == "backends") {
    expect_arguments(args, 0, 1);
    request["op"] = "backends";
    if (args.size() == 2) request["pool"] = args[1];
    print = print_backends;
  } else if (command == "drain" || command == "undrain" || command == "down" || command == "up") {
    expect_arguments(args, 1, 1);
    const Target target = parse_target(args[1]);
    request["op"] = "set";
    request["pool"] = target.pool;
    request["backend"] = target.backend;
    if (command == "drain") {
      request["state"] = "draining";
      done = args[1] + ": draining (manual override)";
    } else if (command == "down") {
      request["state"] = "down";
      done = args[1] + ": down (manual override)";
    } else {
      request["state"] = "auto";
      done = args[1] + ": manual override cleared; health checks decide";
    }
  } else if (command == "drain-box" || command == "undrain-box") {
    expect_arguments(args, 0, 0);
    request["op"] = command == "drain-box" ? "drain_box" : "undrain_box";
    done = command == "drain-box" ? "box drained: every listener refuses new connections"
                                  : "box undrained: the listeners accept connections";
  } else if (command == "weight") {
    expect_arguments(args, 2, 2);
    const Target target = parse_target(args[1]);
    const uint32_t weight = parse_weight(args[2]);
    request["op"] = "set";
    request["pool"] = target.pool;
    request["backend"] = target.backend;
    request["weight"] = weight;
    done = args[1] + ": weight " + std::to_string(weight);
  } else {
    throw UsageError("unknown command \"" + command + "\"");
  }

  const std::string socket = socket_path(options);
  const json reply = ask_weir_control(socket, request);
  const bool ok = field(reply, "ok").get<bool>();
  if (ok && options.wait) {
    if (!options.json) std::printf("%s\n", done.c_str());
    std::fflush(stdout);  // the drain is in effect now, whoever reads this while it waits
    if (command == "drain-box")
      return wait_until_empty(socket, options, {{"op", "box"}}, box_sessions, request, "the box");
    return wait_until_empty(socket, options, {{"op", "backends"}, {"pool", request["pool"]}},
                            backend_sessions, request, args[1]);
  }
  if (options.json) {
    print_json(reply);
    return ok ? kExitOk : kExitFailed;
  }
  if (!ok) {
    std::string what = command;
    if (args.size() > 1) what += " " + args[1];
    const json& error = field(reply, "error");
    std::fprintf(stderr, "%s: %s failed: %s\n", kProgram, what.c_str(),
                 error.is_null() ? "weir-control gave no reason" : text(error).c_str());
    if (const json& diagnostics = field(reply, "diagnostics"); diagnostics.is_array()) {
      for (const auto& line : diagnostics) std::fprintf(stderr, "%s\n", text(line).c_str());
    }
    return kExitFailed;
  }
  if (print != nullptr) {
    print(reply);
  } else {
    std::printf("%s\n", done.c_str());
  }
  return kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(parse_options(argc, argv));
  } catch (const UsageError& e) {
    std::fprintf(stderr, "%s: %s\n\n", kProgram, e.what());
    print_usage(stderr);
    return kExitUsage;
  } catch (const Failure& e) {
    std::fprintf(stderr, "%s: %s\n", kProgram, e.what());
    return kExitFailed;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", kProgram, e.what());
    return kExitFailed;
  }
}
