// weir-frame-load's command line: see frame_load_options.h and docs/tools.md.
#include "tools/frame_load_options.h"

#include <cmath>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/frame.h"
#include "tools/command_line.h"

namespace weir::tools::frame_load {
namespace {

constexpr const char* kProgram = "weir-frame-load";

double seconds_or_rate(std::string_view name, std::string_view value, bool zero_allowed) {
  double out = 0;
  if (!parse_number(value, out) || !std::isfinite(out) || out < 0 || (!zero_allowed && out == 0)) {
    throw UsageError(std::string(name) + ": expected a " + (zero_allowed ? "" : "positive ") +
                     "number, got '" + std::string(value) + "'");
  }
  return out;
}

// "64" or "64:0.5,1024:0.4,65536:0.1".
std::vector<SizeWeight> parse_sizes(std::string_view spec) {
  std::vector<SizeWeight> sizes;
  const auto bad = [&](std::string_view item, const std::string& why) {
    return UsageError("--sizes: '" + std::string(item) + "': " + why + " (in '" +
                      std::string(spec) + "')");
  };
  std::string_view rest = spec;
  for (;;) {
    const size_t comma = rest.find(',');
    const std::string_view item = rest.substr(0, comma);
    const size_t colon = item.find(':');
    SizeWeight entry;
    if (!parse_number(item.substr(0, colon), entry.size) || entry.size > frame::kHardMaxPayload) {
      throw bad(item,
                "expected a payload size from 0 to " + std::to_string(frame::kHardMaxPayload));
    }
    if (colon != std::string_view::npos && (!parse_number(item.substr(colon + 1), entry.weight) ||
                                            !std::isfinite(entry.weight) || entry.weight <= 0)) {
      throw bad(item, "expected a positive weight after ':'");
    }
    sizes.push_back(entry);
    if (comma == std::string_view::npos) return sizes;
    rest = rest.substr(comma + 1);
  }
}

}  // namespace

void print_usage(FILE* out) {
  std::fprintf(
      out,
      "usage: %s --connect ADDR:PORT [--connections N] [--rate FRAMES_PER_S] [--depth D]\n"
      "       [--sizes SPEC] [--duration SECONDS | --frames COUNT] [--corrupt-every N]\n"
      "       [--ping] [--reconnect] [--seed S] [--timeout SECONDS] [--json]\n"
      "\n"
      "Sends Weir frames to an echo (weir-frame-echo) and verifies every answer byte for byte.\n"
      "\n"
      "  --connect ADDR:PORT  where to connect (IPv6 as [ADDR]:PORT)\n"
      "  --connections N      TCP connections (default 1); frame stream = connection index\n"
      "  --rate R             frames per second over all connections, spread evenly;\n"
      "                       0 = closed loop (default)\n"
      "  --depth D            closed loop: frames outstanding per connection (default 1)\n"
      "  --sizes SPEC         payload sizes: SIZE or SIZE:WEIGHT,... (default 64),\n"
      "                       e.g. 64:0.5,1024:0.4,65536:0.1\n"
      "  --duration SECONDS   stop sending after SECONDS (default 5)\n"
      "  --frames COUNT       stop after COUNT frames instead\n"
      "  --corrupt-every N    flip one bit of every Nth frame after its CRC is computed (in the\n"
      "                       payload, or the hop field of an empty frame); no answer expected\n"
      "  --ping               send PINGs and expect PONGs\n"
      "  --reconnect          replace a connection that fails during the run (reset, closed by\n"
      "                       the peer...) at once, same stream; its unanswered frames are\n"
      "                       counted as lost_to_reset, and resets do not fail the run\n"
      "  --seed S             seed of the payload generator (default 1)\n"
      "  --timeout SECONDS    give up after SECONDS with nothing sent or received while\n"
      "                       answers are due, on connecting and on reconnecting (default 5)\n"
      "  --json               print the summary as one JSON object\n"
      "  --help               this text\n"
      "  --version            the version and source revision\n"
      "\n"
      "Exit 0 if every expected answer arrived (or, with --reconnect, was lost to a reset) and\n"
      "matched with no connection error, 1 if not, 2 for bad arguments.\n",
      kProgram);
}

Options parse_options(int argc, char** argv) {
  Options options;
  bool have_connect = false, have_duration = false, have_frames = false;
  weir::tools::ArgumentReader arguments(
      argc, argv,
      {"--connect", "--connections", "--rate", "--depth", "--sizes", "--duration", "--frames",
       "--corrupt-every", "--seed", "--timeout"});
  std::string_view name, value;
  while (arguments.next(name, value)) {
    if (name == "--connect") {
      if (!parse_endpoint(value, options.connect, PortZero::refused)) {
        throw UsageError(
            "--connect: expected ADDR:PORT with a numeric address and a port from "
            "1 to 65535, got '" +
            std::string(value) + "'");
      }
      have_connect = true;
    } else if (name == "--connections") {
      options.connections = whole_number<uint32_t>(name, value, 1, 10000);
    } else if (name == "--rate") {
      options.rate = seconds_or_rate(name, value, true);
    } else if (name == "--depth") {
      options.depth = whole_number<uint32_t>(name, value, 1, 1u << 20);
    } else if (name == "--sizes") {
      options.sizes = parse_sizes(value);
    } else if (name == "--duration") {
      options.duration_s = seconds_or_rate(name, value, false);
      have_duration = true;
    } else if (name == "--frames") {
      options.frames = whole_number<uint64_t>(name, value, 1, UINT64_MAX);
      have_frames = true;
    } else if (name == "--corrupt-every") {
      options.corrupt_every = whole_number<uint64_t>(name, value, 1, UINT64_MAX);
    } else if (name == "--seed") {
      options.seed = whole_number<uint64_t>(name, value, 0, UINT64_MAX);
    } else if (name == "--timeout") {
      options.timeout_s = seconds_or_rate(name, value, false);
    } else if (name == "--ping" && value.empty()) {
      options.ping = true;
    } else if (name == "--json" && value.empty()) {
      options.json = true;
    } else if (name == "--reconnect" && value.empty()) {
      options.reconnect = true;
    } else {
      throw UsageError("unknown argument '" + arguments.current() + "'");
    }
  }
  if (!have_connect) throw UsageError("--connect: required");
  if (have_duration && have_frames) throw UsageError("--duration, --frames: give one, not both");
  return options;
}

}  // namespace weir::tools::frame_load
