// weir-bench-load MODE [options]: see load.h and print_usage below.
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string_view>

#include "bench/load/load.h"
#include "common/frame.h"
#include "tools/command_line.h"

namespace weir::bench {

std::vector<std::vector<uint8_t>> make_requests(size_t bytes, size_t count) {
  std::vector<std::vector<uint8_t>> requests;
  std::vector<uint8_t> payload(bytes - frame::encoded_size(0));
  for (size_t r = 0; r < count; ++r) {
    for (size_t i = 0; i < payload.size(); ++i)
      payload[i] = static_cast<uint8_t>(i * 131 + 7 + r * 29 + (i >> 8));
    requests.push_back(frame::encode(0, static_cast<uint32_t>(r + 1), 0, payload));
  }
  return requests;
}

std::string latency_json(std::vector<uint32_t>& samples_us) {
  std::sort(samples_us.begin(), samples_us.end());
  auto at = [&](double p) {
    if (samples_us.empty()) return 0u;
    return samples_us[static_cast<size_t>(p * static_cast<double>(samples_us.size() - 1))];
  };
  char out[160];
  std::snprintf(out, sizeof out, "{\"p50\":%u,\"p90\":%u,\"p99\":%u,\"p999\":%u,\"max\":%u}",
                at(0.5), at(0.9), at(0.99), at(0.999), at(1.0));
  return out;
}

std::string reasons_json(const std::map<std::string, uint64_t>& reasons) {
  std::string out = "{";
  for (const auto& [reason, n] : reasons) {
    if (out.size() > 1) out += ",";
    out += "\"" + reason + "\":" + std::to_string(n);
  }
  return out + "}";
}

std::string socket_error_name(int fd, const char* otherwise) {
  int error = 0;
  socklen_t length = sizeof error;
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length) != 0 || error == 0) return otherwise;
  const char* name = strerrorname_np(error);
  return name ? name : std::to_string(error);
}

int start_connect(const tools::Endpoint& target) {
  const int fd = socket(target.address.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (connect(fd, reinterpret_cast<const sockaddr*>(&target.address), target.length) != 0 &&
      errno != EINPROGRESS) {
    const int saved = errno;
    close(fd);
    errno = saved;
    return -1;
  }
  return fd;
}

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

}  // namespace weir::bench

namespace {

using namespace weir;

void print_usage(FILE* out) {
  std::fputs(
      "usage: weir-bench-load MODE [options]\n"
      "  echo         --listen ADDR:PORT                  echo every byte back (SIGTERM: counts)\n"
      "  transactions --connect ADDR:PORT [--clients 64] [--seconds 5 | --count N] [--bytes 4096]\n"
      "               each client: connect, send one frame, receive it back, close, again\n"
      "  bulk         --connect ADDR:PORT [--connections 1] [--seconds 5] [--bytes 65536]\n"
      "               [--window 4]   frames streamed and echoed, --window in flight a connection\n"
      "  latency      --connect ADDR:PORT [--connections 4] [--rate 2000] [--seconds 5]\n"
      "               [--bytes 64]   one frame each 1/rate s (open loop), time to its echo\n"
      "  hold         --connect ADDR:PORT [--connections 1000] [--bytes 64]\n"
      "               open, one echo each, print a line, hold them until stdin closes\n"
      "  tls-transactions --connect ADDR:PORT [--clients 32] [--seconds 5 | --count N]\n"
      "               [--bytes 4096] [--resume] [--sni NAME] [--tls-version 1.2|1.3]\n"
      "               forked OpenSSL clients: connect, handshake, one frame each way, close\n"
      "  tls-bulk     --connect ADDR:PORT [--connections 1] [--seconds 5] [--bytes 131072]\n"
      "               [--sni NAME] [--tls-version 1.2|1.3]   forked, one session each\n"
      "Prints one JSON object; exit 1 when a transaction failed or an answer differed.\n",
      out);
}

int run(int argc, char** argv) {
  if (argc < 2) throw tools::UsageError("missing MODE");
  const std::string_view mode = argv[1];
  bench::Options options;
  if (mode == "bulk") options.bytes = 65536;
  if (mode == "tls-bulk") options.bytes = 131072;
  if (mode == "tls-transactions") options.clients = 32;
  if (mode == "latency" || mode == "hold") options.bytes = 64;
  if (mode == "latency") options.connections = 4;
  if (mode == "hold") options.connections = 1000;
  bool have_endpoint = false;
  tools::ArgumentReader reader(
      argc - 1, argv + 1,
      {"--listen", "--connect", "--clients", "--connections", "--seconds", "--count", "--bytes",
       "--window", "--rate", "--sni", "--tls-version"});
  std::string_view name, value;
  while (reader.next(name, value)) {
    if (name == "--listen" || name == "--connect") {
      if ((name == "--listen") != (mode == "echo"))
        throw tools::UsageError(std::string(name) + " does not go with " + std::string(mode));
      const auto zero = mode == "echo" ? tools::PortZero::allowed : tools::PortZero::refused;
      if (!tools::parse_endpoint(value, options.endpoint, zero))
        throw tools::UsageError(std::string(name) + ": expected ADDR:PORT, got '" +
                                std::string(value) + "'");
      have_endpoint = true;
    } else if (name == "--clients") {
      options.clients = tools::whole_number<int>(name, value, 1, 60000);
    } else if (name == "--connections") {
      options.connections = tools::whole_number<int>(name, value, 1, 60000);
    } else if (name == "--seconds") {
      options.seconds = tools::whole_number<int>(name, value, 1, 3600);
    } else if (name == "--count") {
      options.count = tools::whole_number<uint64_t>(name, value, 1, uint64_t{1} << 40);
    } else if (name == "--bytes") {
      options.bytes = tools::whole_number<size_t>(name, value, frame::encoded_size(1), 16 << 20);
    } else if (name == "--window") {
      options.window = tools::whole_number<size_t>(name, value, 1, 1024);
    } else if (name == "--rate") {
      options.rate = tools::whole_number<int>(name, value, 1, 1000000);
    } else if (name == "--resume" && value.empty()) {
      options.resume = true;
    } else if (name == "--sni") {
      options.sni = value;
    } else if (name == "--tls-version") {
      if (value != "1.2" && value != "1.3")
        throw tools::UsageError("--tls-version: 1.2 or 1.3, got '" + std::string(value) + "'");
      options.tls_version = value;
    } else {
      throw tools::UsageError("unknown argument '" + reader.current() + "'");
    }
  }
  if (!have_endpoint)
    throw tools::UsageError(mode == "echo" ? "--listen is required" : "--connect is required");
  if (mode == "echo") return bench::run_echo(options);
  if (mode == "transactions") return bench::run_transactions(options);
  if (mode == "bulk") return bench::run_bulk(options);
  if (mode == "latency") return bench::run_latency(options);
  if (mode == "hold") return bench::run_hold(options);
  if (mode == "tls-transactions") return bench::run_tls_transactions(options);
  if (mode == "tls-bulk") return bench::run_tls_bulk(options);
  throw tools::UsageError("unknown mode '" + std::string(mode) + "'");
}

}  // namespace

int main(int argc, char** argv) {
  return tools::tool_main("weir-bench-load", argc, argv, print_usage,
                          [&] { return run(argc, argv); });
}
