// weir-bench-load: the benchmark's load tools and its echo backend, one binary with modes
// (bench/compare runs them; docs/benchmarks.md). Plain kernel sockets, one thread, one epoll loop
// each, so the tool itself is never what a figure measures: on the direct path it must outrun
// every proxy in front of the same backend.
//
// Every request is one Weir frame (docs/protocol.md), so the same bytes pass a `framed` listener
// as a `tcp` one; every answer is compared byte for byte with what was sent, and a wrong byte is
// counted as a mismatch, never as a transaction.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "tools/socket_util.h"

namespace weir::bench {

using Clock = std::chrono::steady_clock;

struct Options {
  tools::Endpoint endpoint;  // --connect for the clients, --listen for the echo
  int clients = 64;          // transactions: concurrent clients
  int connections = 1;       // bulk, latency, hold: connections
  double seconds = 5;        // how long to measure (transactions, bulk, latency)
  uint64_t count = 0;        // transactions: stop after this many (0: after --seconds)
  size_t bytes = 4096;       // size of one request frame (header and trailer included)
  size_t window = 4;         // bulk: frames in flight per connection
  double rate = 2000;        // latency: requests a second, over all connections
  bool resume = false;       // tls-transactions: offer the previous session's ticket
  std::string sni;           // tls-*: server_name to send (none when empty)
  std::string tls_version;   // tls-*: "1.2" or "1.3" only; empty: the library's default
};

// `count` request frames of `bytes` bytes each, all distinct (stream id and payload differ), so
// an answer that belongs to another connection is caught as a mismatch.
std::vector<std::vector<uint8_t>> make_requests(size_t bytes, size_t count);

// Latency samples in microseconds; their percentiles as a JSON object.
std::string latency_json(std::vector<uint32_t>& samples_us);

// Failures by cause ("ECONNRESET": 3, "closed early": 1) as a JSON object.
std::string reasons_json(const std::map<std::string, uint64_t>& reasons);

// The socket's pending error (SO_ERROR) by name, or `otherwise` when there is none.
std::string socket_error_name(int fd, const char* otherwise);

// A non-blocking TCP socket with TCP_NODELAY, connect() started. -1 with errno when the connect
// failed at once.
int start_connect(const tools::Endpoint& target);

double seconds_since(Clock::time_point start);

int run_echo(const Options& options);
int run_transactions(const Options& options);
int run_bulk(const Options& options);
int run_latency(const Options& options);
int run_hold(const Options& options);
// tls_transactions.cc: forked blocking OpenSSL clients.
int run_tls_transactions(const Options& options);
int run_tls_bulk(const Options& options);

}  // namespace weir::bench
