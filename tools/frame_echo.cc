// weir-frame-echo: a verifying echo server for Weir frames (docs/protocol.md, docs/tools.md) on
// plain kernel TCP sockets. One thread, one epoll loop; signals arrive through a signalfd in the
// same loop, so nothing runs in an asynchronous handler.
//
// Every frame is checked with weir::frame::Decoder before a byte of it is answered: a good frame
// is echoed (a PING as a PONG), a corrupt one is counted and dropped while the connection stays,
// a malformed header is counted and ends the connection (the stream cannot be resynchronised).
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/crc32c.h"
#include "common/frame.h"
#include "common/wire/byte_order.h"
#include "tools/command_line.h"
#include "tools/socket_util.h"

namespace {

namespace frame = weir::frame;
using weir::tools::Endpoint;
using weir::tools::Fd;
using weir::tools::format_endpoint;
using weir::tools::parse_endpoint;
using weir::tools::PortZero;
using weir::tools::throw_errno;
using weir::tools::UsageError;

constexpr const char* kProgram = "weir-frame-echo";
// Answers queued for one client before the server stops reading from it. The buffer can exceed
// this by what one read completes (at most one frame of max_frame plus a read chunk), never more.
constexpr size_t kOutputLimit = size_t{4} << 20;
constexpr size_t kReadChunk = size_t{64} << 10;
// Reads per readiness report, so one busy client cannot starve the others.
constexpr int kReadsPerWakeup = 16;
constexpr int kMaxEvents = 64;

struct Options {
  Endpoint listen;
  uint32_t max_frame = frame::kHardMaxPayload;
  std::string stats_file;
};

void print_usage(FILE* out) {
  std::fprintf(
      out,
      "usage: %s --listen ADDR:PORT [--max-frame BYTES] [--stats-file PATH]\n"
      "\n"
      "A verifying echo server for Weir frames: every good frame is echoed (a PING is\n"
      "answered with a PONG), a corrupt frame (CRC mismatch) is counted and not answered,\n"
      "a malformed header is counted and closes the connection.\n"
      "\n"
      "  --listen ADDR:PORT   address to listen on (IPv6 as [ADDR]:PORT); port 0 picks a\n"
      "                       free port, printed as \"listening on ADDR:PORT\" on stderr\n"
      "  --max-frame BYTES    largest payload accepted (default and limit 16777216);\n"
      "                       a longer header is malformed\n"
      "  --stats-file PATH    also write the counters as JSON to PATH (atomically) on\n"
      "                       SIGUSR1 and at exit\n"
      "  --help               this text\n"
      "  --version            the version and source revision\n"
      "\n"
      "SIGUSR1 prints the counters as one JSON line on stdout; SIGTERM and SIGINT print\n"
      "them and exit 0. Bad arguments exit 2.\n",
      kProgram);
}

Options parse_options(int argc, char** argv) {
  Options options;
  bool have_listen = false;
  weir::tools::ArgumentReader arguments(argc, argv, {"--listen", "--max-frame", "--stats-file"});
  std::string_view name, value;
  while (arguments.next(name, value)) {
    if (name == "--listen") {
      if (!parse_endpoint(value, options.listen, PortZero::allowed)) {
        throw UsageError("--listen: expected ADDR:PORT with a numeric address, got '" +
                         std::string(value) + "'");
      }
      have_listen = true;
    } else if (name == "--max-frame") {
      if (!weir::tools::parse_number(value, options.max_frame) ||
          options.max_frame > frame::kHardMaxPayload) {
        throw UsageError("--max-frame: expected a byte count from 0 to " +
                         std::to_string(frame::kHardMaxPayload) + ", got '" + std::string(value) +
                         "'");
      }
    } else if (name == "--stats-file") {
      if (value.empty()) throw UsageError("--stats-file: empty path");
      options.stats_file = value;
    } else {
      throw UsageError("unknown argument '" + arguments.current() + "'");
    }
  }
  if (!have_listen) throw UsageError("--listen: required");
  return options;
}

struct Counters {
  uint64_t connections = 0;  // accepted since start
  uint64_t frames_good = 0;
  uint64_t frames_corrupt = 0;
  uint64_t frames_malformed = 0;
  uint64_t bytes_in = 0;
  uint64_t bytes_out = 0;

  // `reads_paused`: clients not read from at the moment, because the answers queued for them
  // reached the output limit (a gauge, counted when the report is made).
  std::string to_json(uint64_t reads_paused) const {
    char line[512];
    std::snprintf(
        line, sizeof line,
        "{\"connections\":%llu,\"frames_good\":%llu,\"frames_corrupt\":%llu,"
        "\"frames_malformed\":%llu,\"bytes_in\":%llu,\"bytes_out\":%llu,\"reads_paused\":%llu}",
        static_cast<unsigned long long>(connections), static_cast<unsigned long long>(frames_good),
        static_cast<unsigned long long>(frames_corrupt),
        static_cast<unsigned long long>(frames_malformed),
        static_cast<unsigned long long>(bytes_in), static_cast<unsigned long long>(bytes_out),
        static_cast<unsigned long long>(reads_paused));
    return line;
  }
};

// Temp file and rename in the same directory, so a reader never sees a half-written file.
void write_atomically(const std::string& path, const std::string& text) {
  const std::string temp = path + ".tmp." + std::to_string(::getpid());
  FILE* file = std::fopen(temp.c_str(), "w");
  if (file == nullptr) throw_errno("cannot create " + temp);
  const bool written = std::fwrite(text.data(), 1, text.size(), file) == text.size();
  if (std::fclose(file) != 0 || !written) {
    const int error = errno;
    std::remove(temp.c_str());
    throw std::system_error(error, std::generic_category(), "cannot write " + temp);
  }
  if (std::rename(temp.c_str(), path.c_str()) != 0) {
    const int error = errno;
    std::remove(temp.c_str());
    throw std::system_error(error, std::generic_category(), "cannot rename " + temp);
  }
}

struct Connection {
  Connection(Fd socket, std::string peer_name, uint32_t max_frame)
      : fd(std::move(socket)), peer(std::move(peer_name)), decoder(max_frame) {}

  Fd fd;
  std::string peer;
  frame::Decoder decoder;
  // out[sent, committed) are answers ready to send. out[committed, end) is the frame still being
  // received: it waits there for its verdict, which decides whether it is answered at all, so no
  // byte of a corrupt frame ever goes back.
  std::vector<uint8_t> out;
  size_t sent = 0;
  size_t committed = 0;
  bool peer_done = false;  // the client shut down its sending side: answer what came, then close
  uint32_t events = 0;     // the epoll interest currently registered

  size_t queued() const { return committed - sent; }
};

// The decoder's visitor: builds each answer in place in the connection's output buffer.
class Answerer {
 public:
  Answerer(Connection& connection, Counters& counters)
      : connection_(connection), counters_(counters) {}

  void on_header(const frame::Header&, std::span<const uint8_t, frame::kHeaderSize> raw) {
    append(raw);
  }
  void on_payload(std::span<const uint8_t> bytes) { append(bytes); }

  void on_verdict(const frame::Header& header, const frame::Verdict& verdict) {
    std::vector<uint8_t>& out = connection_.out;
    if (!verdict.ok) {
      ++counters_.frames_corrupt;
      out.resize(connection_.committed);
      return;
    }
    uint32_t crc = verdict.received_crc;
    if (header.ping()) {
      // The payload was verified against the sender's CRC just now; the PONG is a new frame
      // (new flags), so it gets its own CRC.
      uint8_t* answer = out.data() + connection_.committed;
      answer[frame::kFlagsOffset] = frame::kFlagPong;
      crc = weir::crc32c(answer, frame::kHeaderSize + header.length);
    }
    uint8_t trailer[frame::kTrailerSize];
    weir::wire::store_be32(trailer, crc);
    append(trailer);
    connection_.committed = out.size();
    ++counters_.frames_good;
  }

  void on_malformed(frame::Malformed reason) {
    ++counters_.frames_malformed;
    std::fprintf(stderr, "%s: %s: malformed header: %s; closing the connection\n", kProgram,
                 connection_.peer.c_str(), frame::to_string(reason));
  }

 private:
  void append(std::span<const uint8_t> bytes) {
    connection_.out.insert(connection_.out.end(), bytes.begin(), bytes.end());
  }

  Connection& connection_;
  Counters& counters_;
};

enum class Received { open, peer_done, malformed, failed };

class EchoServer {
 public:
  explicit EchoServer(Options options) : options_(std::move(options)), chunk_(kReadChunk) {
    open_signals();
    open_listener();
    epoll_ = Fd(::epoll_create1(EPOLL_CLOEXEC));
    if (epoll_.get() < 0) throw_errno("epoll_create1");
    watch(listener_.get(), EPOLLIN);
    watch(signals_.get(), EPOLLIN);
  }

  std::string local_endpoint() const {
    sockaddr_storage address{};
    socklen_t length = sizeof address;
    if (::getsockname(listener_.get(), reinterpret_cast<sockaddr*>(&address), &length) != 0) {
      throw_errno("getsockname");
    }
    return format_endpoint(address);
  }

  // Serves until SIGTERM or SIGINT.
  void run() {
    epoll_event events[kMaxEvents];
    for (;;) {
      const int n = ::epoll_wait(epoll_.get(), events, kMaxEvents, -1);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) throw_errno("epoll_wait");
      for (int i = 0; i < n; ++i) {
        const int fd = events[i].data.fd;
        if (fd == signals_.get()) {
          if (!handle_signals()) return;
        } else if (fd == listener_.get()) {
          accept_pending();
        } else {
          serve(fd, events[i].events);
        }
      }
    }
  }

  // The counters as JSON on stdout and, if asked, in the stats file.
  void report() const {
    uint64_t reads_paused = 0;
    for (const auto& [fd, connection] : connections_) reads_paused += paused(*connection) ? 1 : 0;
    const std::string json = counters_.to_json(reads_paused);
    std::printf("%s\n", json.c_str());
    std::fflush(stdout);
    if (options_.stats_file.empty()) return;
    try {
      write_atomically(options_.stats_file, json + "\n");
    } catch (const std::system_error& e) {
      std::fprintf(stderr, "%s: stats file: %s\n", kProgram, e.what());
    }
  }

 private:
  // The signals are blocked and read from a signalfd in the loop, so a report never interrupts
  // the server half-way through updating a counter.
  void open_signals() {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    if (::sigprocmask(SIG_BLOCK, &set, nullptr) != 0) throw_errno("sigprocmask");
    signals_ = Fd(::signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC));
    if (signals_.get() < 0) throw_errno("signalfd");
  }

  void open_listener() {
    const sockaddr_storage& address = options_.listen.address;
    listener_ = Fd(::socket(address.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (listener_.get() < 0) throw_errno("socket");
    const int one = 1;
    ::setsockopt(listener_.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    const std::string where = format_endpoint(address);
    if (::bind(listener_.get(), reinterpret_cast<const sockaddr*>(&address),
               options_.listen.length) != 0) {
      throw_errno("bind " + where);
    }
    if (::listen(listener_.get(), SOMAXCONN) != 0) throw_errno("listen " + where);
  }

  void watch(int fd, uint32_t events) {
    epoll_event event{};
    event.events = events;
    event.data.fd = fd;
    if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &event) != 0) throw_errno("epoll_ctl add");
  }

  // Returns false once it is time to stop.
  bool handle_signals() {
    signalfd_siginfo info;
    while (::read(signals_.get(), &info, sizeof info) == sizeof info) {
      if (info.ssi_signo == SIGUSR1) {
        report();
      } else {
        return false;
      }
    }
    return true;
  }

  void accept_pending() {
    for (;;) {
      sockaddr_storage peer{};
      socklen_t length = sizeof peer;
      Fd socket(::accept4(listener_.get(), reinterpret_cast<sockaddr*>(&peer), &length,
                          SOCK_NONBLOCK | SOCK_CLOEXEC));
      if (socket.get() < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) return;
        if (errno == EINTR || errno == ECONNABORTED) continue;
        // Out of descriptors or memory. The listener is level-triggered and would report the
        // same backlog at once, forever: stop listening until a connection closes.
        std::fprintf(stderr, "%s: accept: %s; pausing until a connection closes\n", kProgram,
                     std::strerror(errno));
        set_listening(false);
        return;
      }
      // Answers are small and latency is what the load generator measures: no Nagle delay.
      const int one = 1;
      ::setsockopt(socket.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      const int fd = socket.get();
      auto connection = std::make_unique<Connection>(std::move(socket), format_endpoint(peer),
                                                     options_.max_frame);
      connection->events = EPOLLIN;
      watch(fd, connection->events);
      connections_.emplace(fd, std::move(connection));
      ++counters_.connections;
    }
  }

  void serve(int fd, uint32_t events) {
    const auto found = connections_.find(fd);
    if (found == connections_.end()) return;
    Connection& connection = *found->second;
    Received received = Received::open;
    if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) received = receive(connection);
    const bool transmitted = transmit(connection);
    if (received == Received::peer_done) connection.peer_done = true;
    // After a malformed header the answers to the frames before it still leave (best effort,
    // whatever the socket takes now); nothing after it is read.
    const bool finished = connection.peer_done && connection.queued() == 0;
    if (received == Received::malformed || received == Received::failed || !transmitted ||
        finished) {
      connections_.erase(found);  // closing the socket also removes it from the epoll set
      set_listening(true);
      return;
    }
    update_interest(connection);
  }

  Received receive(Connection& connection) {
    for (int i = 0; i < kReadsPerWakeup && connection.queued() < kOutputLimit; ++i) {
      const ssize_t n = ::recv(connection.fd.get(), chunk_.data(), chunk_.size(), 0);
      if (n == 0) return Received::peer_done;
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return Received::open;
        return Received::failed;
      }
      counters_.bytes_in += static_cast<uint64_t>(n);
      Answerer answerer(connection, counters_);
      connection.decoder.feed(std::span<const uint8_t>(chunk_.data(), static_cast<size_t>(n)),
                              answerer);
      if (connection.decoder.failed()) return Received::malformed;
    }
    return Received::open;
  }

  // Sends what the socket takes now. False if the connection is broken.
  bool transmit(Connection& connection) {
    while (connection.queued() > 0) {
      const ssize_t n = ::send(connection.fd.get(), connection.out.data() + connection.sent,
                               connection.queued(), MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) break;
        return false;
      }
      connection.sent += static_cast<size_t>(n);
      counters_.bytes_out += static_cast<uint64_t>(n);
    }
    compact(connection);
    return true;
  }

  // Drops the sent prefix of the output buffer once that is worth a move.
  static void compact(Connection& connection) {
    std::vector<uint8_t>& out = connection.out;
    if (connection.sent == 0) return;
    if (connection.sent < connection.committed && connection.sent < out.size() / 2) return;
    out.erase(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(connection.sent));
    connection.committed -= connection.sent;
    connection.sent = 0;
    // A big frame once seen should not pin its buffer for the connection's lifetime.
    if (out.empty() && out.capacity() > kOutputLimit) out = std::vector<uint8_t>();
  }

  void set_listening(bool on) {
    if (on == listening_) return;
    epoll_event event{};
    event.events = on ? uint32_t{EPOLLIN} : 0;
    event.data.fd = listener_.get();
    if (::epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, listener_.get(), &event) != 0) {
      throw_errno("epoll_ctl mod");
    }
    listening_ = on;
  }

  // Not read from until the client reads some of its answers.
  static bool paused(const Connection& connection) {
    return !connection.peer_done && connection.queued() >= kOutputLimit;
  }

  // Reads only while the client reads its answers (bounded output); writes only when waiting.
  void update_interest(Connection& connection) {
    uint32_t events = 0;
    if (!connection.peer_done && !paused(connection)) events |= EPOLLIN;
    if (connection.queued() > 0) events |= EPOLLOUT;
    if (events == connection.events) return;
    epoll_event event{};
    event.events = events;
    event.data.fd = connection.fd.get();
    if (::epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, connection.fd.get(), &event) != 0) {
      throw_errno("epoll_ctl mod");
    }
    connection.events = events;
  }

  Options options_;
  Fd signals_;
  Fd listener_;
  Fd epoll_;
  bool listening_ = true;
  Counters counters_;
  std::unordered_map<int, std::unique_ptr<Connection>> connections_;
  std::vector<uint8_t> chunk_;  // one read buffer for all connections: the decoder copies nothing
};

}  // namespace

int main(int argc, char** argv) {
  return weir::tools::tool_main(kProgram, argc, argv, print_usage, [&] {
    EchoServer server(parse_options(argc, argv));
    std::fprintf(stderr, "listening on %s\n", server.local_endpoint().c_str());
    std::fflush(stderr);
    server.run();
    server.report();
    return 0;
  });
}
