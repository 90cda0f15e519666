// weir-bench-load tls-transactions and tls-bulk: the seed's SSL proxy test (issue 14's
// benchmark), as stunnel's and HAProxy's own comparisons run it: --clients forked processes, each
// a plain blocking OpenSSL client in a loop of connect, handshake, send one request, receive it
// back, close_notify, close. With --resume every handshake after a process's first offers the
// session (ticket) of its previous one, and the JSON says how many the server resumed. Processes,
// not threads: OpenSSL 3's locks would make a threaded client its own bottleneck
// (openssl/openssl#23388). tls-bulk: --connections processes, each one session streaming
// --bytes records echoed back one at a time, for --seconds.
//
// The client verifies nothing (no --ca): verifying the chain costs the client, not the server,
// and the figure this tool serves is the load balancer's CPU per transaction. Every answer is
// compared byte for byte; a wrong one is a mismatch, never a transaction.
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

#include "bench/load/load.h"

namespace weir::bench {
namespace {

// What one process reports to the parent through its pipe, followed by `samples` latencies.
struct ProcessReport {
  uint64_t transactions = 0;
  uint64_t resumed = 0;
  uint64_t failures = 0;
  uint64_t mismatches = 0;
  uint64_t connect_failures = 0;
  uint64_t handshake_failures = 0;
  uint64_t bytes = 0;  // bytes received back (compared)
  uint64_t samples = 0;
};

struct SslCtxFree {
  void operator()(SSL_CTX* c) const { SSL_CTX_free(c); }
};
struct SslFree {
  void operator()(SSL* s) const { SSL_free(s); }
};
struct SessionFree {
  void operator()(SSL_SESSION* s) const { SSL_SESSION_free(s); }
};

int blocking_connect(const tools::Endpoint& target) {
  const int fd = socket(target.address.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  timeval timeout{10, 0};  // a stuck peer fails the transaction instead of hanging the run
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
  if (connect(fd, reinterpret_cast<const sockaddr*>(&target.address), target.length) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

bool write_all(SSL* ssl, const uint8_t* data, size_t size) {
  size_t done = 0;
  while (done < size) {
    size_t written = 0;
    if (SSL_write_ex(ssl, data + done, size - done, &written) != 1) return false;
    done += written;
  }
  return true;
}

// Reads `size` bytes and compares them with `expected`: 1 equal, 0 differing, -1 failed.
int read_compare(SSL* ssl, const uint8_t* expected, size_t size, std::vector<uint8_t>& buffer,
                 uint64_t& bytes) {
  size_t got = 0;
  while (got < size) {
    size_t n = 0;
    if (SSL_read_ex(ssl, buffer.data(), std::min(buffer.size(), size - got), &n) != 1) return -1;
    bytes += n;
    if (std::memcmp(buffer.data(), expected + got, n) != 0) return 0;
    got += n;
  }
  return 1;
}

std::unique_ptr<SSL_CTX, SslCtxFree> client_context(const Options& options) {
  std::unique_ptr<SSL_CTX, SslCtxFree> ctx(SSL_CTX_new(TLS_client_method()));
  if (!ctx) return ctx;
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_NONE, nullptr);
  if (options.tls_version == "1.2") {
    SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
    SSL_CTX_set_max_proto_version(ctx.get(), TLS1_2_VERSION);
  } else if (options.tls_version == "1.3") {
    SSL_CTX_set_min_proto_version(ctx.get(), TLS1_3_VERSION);
  }
  // Sessions are kept by hand (one a process), not in the context's cache.
  SSL_CTX_set_session_cache_mode(ctx.get(), SSL_SESS_CACHE_OFF);
  return ctx;
}

// One process of tls-transactions.
ProcessReport transactions_process(const Options& options, Clock::time_point stop_at,
                                   std::vector<uint32_t>& latencies, int index) {
  ProcessReport report;
  auto ctx = client_context(options);
  if (!ctx) {
    ++report.failures;
    return report;
  }
  const auto requests = make_requests(options.bytes, 8);
  std::vector<uint8_t> buffer(size_t{64} << 10);
  std::unique_ptr<SSL_SESSION, SessionFree> session;
  uint64_t n = 0;
  const uint64_t share = options.count ? (options.count + static_cast<uint64_t>(index)) /
                                             static_cast<uint64_t>(options.clients)
                                       : 0;  // --count split over the processes
  for (;;) {
    const auto started = Clock::now();
    if (options.count ? n >= share : started >= stop_at) break;
    const auto& request = requests[(n + static_cast<uint64_t>(index)) % requests.size()];
    ++n;
    const int fd = blocking_connect(options.endpoint);
    if (fd < 0) {
      ++report.failures;
      ++report.connect_failures;
      continue;
    }
    std::unique_ptr<SSL, SslFree> ssl(SSL_new(ctx.get()));
    SSL_set_fd(ssl.get(), fd);
    if (!options.sni.empty()) SSL_set_tlsext_host_name(ssl.get(), options.sni.c_str());
    if (options.resume && session) SSL_set_session(ssl.get(), session.get());
    bool ok = SSL_connect(ssl.get()) == 1;
    if (!ok) ++report.handshake_failures;
    int compared = -1;
    if (ok && write_all(ssl.get(), request.data(), request.size()))
      compared = read_compare(ssl.get(), request.data(), request.size(), buffer, report.bytes);
    if (compared == 1) {
      ++report.transactions;
      if (SSL_session_reused(ssl.get())) ++report.resumed;
      latencies.push_back(static_cast<uint32_t>(
          std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - started).count()));
      // The newest ticket (TLS 1.3 sends them after the handshake; they were read before the
      // answer): the next handshake offers it.
      if (options.resume) session.reset(SSL_get1_session(ssl.get()));
      SSL_shutdown(ssl.get());  // close_notify; the server's is not waited for (as s_time)
    } else {
      ++report.failures;
      if (compared == 0) ++report.mismatches;
      ERR_clear_error();
    }
    ssl.reset();
    close(fd);
  }
  return report;
}

// One process of tls-bulk: one session, --bytes at a time echoed back, until stop_at.
ProcessReport bulk_process(const Options& options, Clock::time_point stop_at) {
  ProcessReport report;
  auto ctx = client_context(options);
  const auto requests = make_requests(options.bytes, 4);
  std::vector<uint8_t> buffer(size_t{64} << 10);
  const int fd = ctx ? blocking_connect(options.endpoint) : -1;
  if (fd < 0) {
    ++report.failures;
    ++report.connect_failures;
    return report;
  }
  std::unique_ptr<SSL, SslFree> ssl(SSL_new(ctx.get()));
  SSL_set_fd(ssl.get(), fd);
  if (!options.sni.empty()) SSL_set_tlsext_host_name(ssl.get(), options.sni.c_str());
  if (SSL_connect(ssl.get()) != 1) {
    ++report.failures;
    ++report.handshake_failures;
  } else {
    for (uint64_t n = 0; Clock::now() < stop_at; ++n) {
      const auto& request = requests[n % requests.size()];
      int compared = -1;
      if (write_all(ssl.get(), request.data(), request.size()))
        compared = read_compare(ssl.get(), request.data(), request.size(), buffer, report.bytes);
      if (compared != 1) {
        ++report.failures;
        if (compared == 0) ++report.mismatches;
        break;
      }
      ++report.transactions;
    }
    SSL_shutdown(ssl.get());
  }
  ssl.reset();
  close(fd);
  return report;
}

bool write_fully(int fd, const void* data, size_t size) {
  const auto* p = static_cast<const uint8_t*>(data);
  while (size > 0) {
    const ssize_t w = write(fd, p, size);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    size -= static_cast<size_t>(w);
  }
  return true;
}

bool read_fully(int fd, void* data, size_t size) {
  auto* p = static_cast<uint8_t*>(data);
  while (size > 0) {
    const ssize_t r = read(fd, p, size);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    p += r;
    size -= static_cast<size_t>(r);
  }
  return true;
}

int run_forked(const Options& options, bool bulk) {
  const int processes = bulk ? options.connections : options.clients;
  const auto start = Clock::now();
  const Clock::time_point stop_at = start + std::chrono::duration_cast<Clock::duration>(
                                                std::chrono::duration<double>(options.seconds));
  std::vector<std::pair<pid_t, int>> children;  // pid, read end of its pipe
  for (int i = 0; i < processes; ++i) {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) tools::throw_errno("pipe2");
    const pid_t pid = fork();
    if (pid < 0) tools::throw_errno("fork");
    if (pid == 0) {
      close(fds[0]);
      std::vector<uint32_t> latencies;
      const ProcessReport report = bulk ? bulk_process(options, stop_at)
                                        : transactions_process(options, stop_at, latencies, i);
      ProcessReport out = report;
      out.samples = latencies.size();
      const bool written = write_fully(fds[1], &out, sizeof out) &&
                           write_fully(fds[1], latencies.data(), latencies.size() * 4);
      _exit(written ? 0 : 3);
    }
    close(fds[1]);
    children.emplace_back(pid, fds[0]);
  }
  ProcessReport total;
  std::vector<uint32_t> latencies;
  int lost = 0;
  for (const auto& [pid, fd] : children) {
    ProcessReport r;
    bool ok = read_fully(fd, &r, sizeof r);
    if (ok) {
      const size_t at = latencies.size();
      latencies.resize(at + r.samples);
      ok = read_fully(fd, latencies.data() + at, r.samples * 4);
    }
    close(fd);
    int status = 0;
    waitpid(pid, &status, 0);
    if (!ok || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      ++lost;
      continue;
    }
    total.transactions += r.transactions;
    total.resumed += r.resumed;
    total.failures += r.failures;
    total.mismatches += r.mismatches;
    total.connect_failures += r.connect_failures;
    total.handshake_failures += r.handshake_failures;
    total.bytes += r.bytes;
  }
  const double elapsed = seconds_since(start);
  total.failures += static_cast<uint64_t>(lost);
  const auto u = [](uint64_t v) { return static_cast<unsigned long long>(v); };
  if (bulk) {
    std::printf(
        "{\"mode\":\"tls-bulk\",\"connections\":%d,\"bytes\":%zu,\"echoed_bytes\":%llu,"
        "\"failures\":%llu,\"mismatches\":%llu,\"handshake_failures\":%llu,\"seconds\":%.3f,"
        "\"echoed_bytes_per_second\":%.1f}\n",
        processes, options.bytes, u(total.bytes), u(total.failures), u(total.mismatches),
        u(total.handshake_failures), elapsed, static_cast<double>(total.bytes) / elapsed);
  } else {
    std::printf(
        "{\"mode\":\"tls-transactions\",\"clients\":%d,\"bytes\":%zu,\"resume\":%s,"
        "\"transactions\":%llu,\"resumed\":%llu,\"failures\":%llu,\"mismatches\":%llu,"
        "\"connect_failures\":%llu,\"handshake_failures\":%llu,\"lost_processes\":%d,"
        "\"bytes_received\":%llu,\"seconds\":%.3f,\"per_second\":%.1f,\"latency_us\":%s}\n",
        processes, options.bytes, options.resume ? "true" : "false", u(total.transactions),
        u(total.resumed), u(total.failures), u(total.mismatches), u(total.connect_failures),
        u(total.handshake_failures), lost, u(total.bytes), elapsed,
        static_cast<double>(total.transactions) / elapsed, latency_json(latencies).c_str());
  }
  return total.failures == 0 && total.mismatches == 0 ? 0 : 1;
}

}  // namespace

int run_tls_transactions(const Options& options) {
  return run_forked(options, false);
}
int run_tls_bulk(const Options& options) {
  return run_forked(options, true);
}

}  // namespace weir::bench
