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
#include "control/weirctl_output.h"

namespace {

using namespace weir::weirctl;  // json, the lenient readers and the printers
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
      "  cluster-peers NAME=STATE...\n"
      "                            peers of cluster.peers set live, draining or gone over\n"
      "                            what the heartbeats say, or auto (the heartbeats decide again):\n"
      "                            kept, and sent again after the dataplane's restart\n"
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
    const YAML::Node given = control.IsMap() ? control["socket"] : YAML::Node();
    const YAML::Node socket = given.IsMap() ? given["path"] : given;  // {path, mode, group, level}
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
  } else if (command == "cluster-peers") {
    if (args.size() < 2) throw UsageError("cluster-peers needs NAME=STATE for at least one peer");
    request["op"] = "cluster_peers";
    request["peers"] = json::object();
    for (size_t i = 1; i < args.size(); ++i) {
      const size_t eq = args[i].find('=');
      if (eq == std::string::npos || eq == 0)
        throw UsageError("cluster-peers takes NAME=STATE, not \"" + args[i] + "\"");
      request["peers"][args[i].substr(0, eq)] = args[i].substr(eq + 1);
    }
    done = "cluster peers' states sent to the dataplane";
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
