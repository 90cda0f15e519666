// weir-frame-load: a load generator and verifier for Weir frames (docs/protocol.md,
// docs/tools.md) on plain kernel TCP sockets. N connections in one epoll loop send frames of
// seeded random payload, closed loop (D frames outstanding per connection) or at a fixed total
// rate, and compare every answer byte for byte with the one expected: the same frame from an
// echo, a PONG for a PING. --corrupt-every N damages every Nth frame after its CRC, as a faulty
// hop would; a verifying peer never answers those, so they are not waited for.
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <deque>
#include <random>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "common/frame.h"
#include "common/wire/byte_order.h"
#include "tools/command_line.h"
#include "tools/frame_load_options.h"
#include "tools/latency_histogram.h"
#include "tools/socket_util.h"

namespace {

namespace frame = weir::frame;
using Clock = std::chrono::steady_clock;
using weir::tools::Endpoint;
using weir::tools::Fd;
using weir::tools::LatencyHistogram;
using weir::tools::parse_endpoint;
using weir::tools::parse_number;
using weir::tools::PortZero;
using weir::tools::throw_errno;
using weir::tools::UsageError;
using weir::tools::whole_number;
using weir::tools::frame_load::Options;
using weir::tools::frame_load::parse_options;
using weir::tools::frame_load::print_usage;
using weir::tools::frame_load::SizeWeight;

constexpr const char* kProgram = "weir-frame-load";
// Unsent bytes queued on one connection before the generator waits for the socket to drain.
constexpr size_t kOutputLimit = size_t{4} << 20;
constexpr size_t kReadChunk = size_t{256} << 10;
constexpr int kMaxEvents = 64;
// --reconnect: the pause between attempts to open a replacement connection.
constexpr auto kReconnectBackoff = std::chrono::milliseconds(10);
// --reconnect: resets logged on stderr; later ones are only counted.
constexpr uint64_t kResetsLogged = 10;

// ---- The run ------------------------------------------------------------------------------------

struct Summary {
  uint32_t connections = 0;
  uint64_t frames_sent = 0;
  uint64_t corrupted_sent = 0;
  uint64_t responses_ok = 0;
  uint64_t responses_mismatched = 0;
  uint64_t connection_errors = 0;
  uint64_t connection_resets = 0;  // --reconnect: connections lost and replaced during the run
  uint64_t lost_to_reset = 0;      // --reconnect: answers due on a connection when it was lost
  uint64_t bytes_sent = 0;
  uint64_t bytes_received = 0;
  double duration_s = 0;
  bool reconnect = false;
  LatencyHistogram latency;

  // Expected answers that never came (the run timed out, their connection failed, or the peer
  // skipped them), other than those lost to a reset with --reconnect.
  uint64_t responses_missing() const {
    return frames_sent - corrupted_sent - responses_ok - responses_mismatched - lost_to_reset;
  }
  bool passed() const {
    return responses_mismatched == 0 && connection_errors == 0 && responses_missing() == 0;
  }
  double per_second(uint64_t count) const {
    return duration_s > 0 ? static_cast<double>(count) / duration_s : 0;
  }
};

struct Expected {
  std::vector<uint8_t> bytes;  // the answer, whole
  Clock::time_point sent_at;
};

struct Connection {
  uint32_t index = 0;
  Fd fd;
  bool connected = false;
  bool open = true;
  std::mt19937_64 random;
  std::vector<uint8_t> out;  // out[sent, end) is not on the wire yet
  size_t sent = 0;
  std::deque<Expected> expected;  // answers due, oldest first: a TCP echo answers in order
  frame::Decoder decoder{frame::kHardMaxPayload};
  size_t answer_offset = 0;  // bytes of the current answer compared so far
  bool answer_differs = false;
  // Once the current answer differs from the oldest expected one while later ones are due, it is
  // kept whole, to see whether it answers one of them (the peer skipped the frames before it).
  bool answer_kept = false;
  std::vector<uint8_t> answer;
  uint32_t events = 0;
  // --reconnect, while a replacement is being opened (open, not connected): with no socket, the
  // next attempt is at retry_at; the replacement is given up at give_up_at.
  Clock::time_point retry_at{};
  Clock::time_point give_up_at{};

  size_t unsent() const { return out.size() - sent; }
};

// The decoder's visitor on the receiving side: compares each answer with the oldest expected one
// as its pieces arrive, and settles it at the trailer. An echo answers in order but never answers
// a frame that reached it corrupt (a faulty hop on the way), so an answer that is not the oldest
// expected one may be a later one: then the frames before it will never be answered, and are left
// to count as missing, rather than shifting every later answer onto the wrong frame.
class AnswerChecker {
 public:
  AnswerChecker(Connection& connection, Summary& summary, Clock::time_point now)
      : connection_(connection), summary_(summary), now_(now) {}

  void on_header(const frame::Header&, std::span<const uint8_t, frame::kHeaderSize> raw) {
    connection_.answer_offset = 0;
    connection_.answer_differs = connection_.expected.empty();
    connection_.answer_kept = false;
    connection_.answer.clear();
    compare(raw);
  }
  void on_payload(std::span<const uint8_t> bytes) { compare(bytes); }

  void on_verdict(const frame::Header&, const frame::Verdict& verdict) {
    uint8_t trailer[frame::kTrailerSize];
    weir::wire::store_be32(trailer, verdict.received_crc);
    compare(trailer);
    if (connection_.expected.empty()) {  // an answer to nothing we are waiting for
      ++summary_.responses_mismatched;
      return;
    }
    std::deque<Expected>& due = connection_.expected;
    if (!connection_.answer_differs && connection_.answer_offset == due.front().bytes.size()) {
      settle_ok(1);
      return;
    }
    if (connection_.answer_kept) {
      const auto later = std::find_if(due.begin() + 1, due.end(), [&](const Expected& e) {
        return e.bytes == connection_.answer;
      });
      if (later != due.end()) {
        settle_ok(static_cast<size_t>(later - due.begin()) + 1);
        return;
      }
    }
    ++summary_.responses_mismatched;
    due.pop_front();
  }

  void on_malformed(frame::Malformed reason) {
    ++summary_.responses_mismatched;
    std::fprintf(stderr, "%s: connection %u: malformed answer header: %s\n", kProgram,
                 connection_.index, frame::to_string(reason));
  }

 private:
  void compare(std::span<const uint8_t> bytes) {
    if (!connection_.answer_differs) {
      const std::vector<uint8_t>& want = connection_.expected.front().bytes;
      connection_.answer_differs =
          connection_.answer_offset + bytes.size() > want.size() ||
          !std::equal(bytes.begin(), bytes.end(), want.begin() + connection_.answer_offset);
      if (connection_.answer_differs && connection_.expected.size() > 1) {
        // What came so far matched `want`: keep it, and the rest of the answer from here on.
        connection_.answer_kept = true;
        connection_.answer.assign(
            want.begin(), want.begin() + static_cast<std::ptrdiff_t>(connection_.answer_offset));
      }
    }
    if (connection_.answer_kept) {
      connection_.answer.insert(connection_.answer.end(), bytes.begin(), bytes.end());
    }
    connection_.answer_offset += bytes.size();
  }

  // The answer is the `count`th expected one: it is verified, and the frames before it will never
  // be answered (they stay uncounted, so they show up as missing).
  void settle_ok(size_t count) {
    std::deque<Expected>& due = connection_.expected;
    const Expected& answered = due[count - 1];
    ++summary_.responses_ok;
    summary_.latency.record(static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(now_ - answered.sent_at).count()));
    due.erase(due.begin(), due.begin() + static_cast<std::ptrdiff_t>(count));
    connection_.answer_kept = false;
    connection_.answer.clear();
  }

  Connection& connection_;
  Summary& summary_;
  Clock::time_point now_;
};

class LoadRun {
 public:
  explicit LoadRun(Options options)
      : options_(std::move(options)),
        chunk_(kReadChunk),
        pick_size_(weights(options_.sizes)),
        connections_(options_.connections) {
    summary_.connections = options_.connections;
    summary_.reconnect = options_.reconnect;
    open_signals();
    epoll_ = Fd(::epoll_create1(EPOLL_CLOEXEC));
    if (epoll_.get() < 0) throw_errno("epoll_create1");
    add(signals_.get(), EPOLLIN);
  }

  Summary run() {
    if (connect_all()) {
      start_ = Clock::now();
      last_progress_ = start_;
      next_due_ = start_;
      sending_ = true;
      running_ = true;
      for (Connection& connection : connections_) fill(connection);
      loop();
      // Until the last answer settled the run, or until the run was given up (timeout, signal).
      summary_.duration_s = std::chrono::duration<double>(Clock::now() - start_).count();
    }
    connections_.clear();
    return std::move(summary_);
  }

 private:
  static std::discrete_distribution<size_t> weights(const std::vector<SizeWeight>& sizes) {
    std::vector<double> w;
    for (const SizeWeight& entry : sizes) w.push_back(entry.weight);
    return std::discrete_distribution<size_t>(w.begin(), w.end());
  }

  // SIGINT and SIGTERM end the run early, with a summary; through a signalfd in the loop.
  void open_signals() {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    if (::sigprocmask(SIG_BLOCK, &set, nullptr) != 0) throw_errno("sigprocmask");
    signals_ = Fd(::signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC));
    if (signals_.get() < 0) throw_errno("signalfd");
  }

  void add(int fd, uint32_t events, uint64_t tag = kSignalTag) {
    epoll_event event{};
    event.events = events;
    event.data.u64 = tag;
    if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &event) != 0) throw_errno("epoll_ctl add");
  }

  // Always reading (answers must never wait on us); writing only while bytes wait for room. A
  // connection being opened waits for EPOLLOUT alone (start_connect).
  void update_interest(Connection& connection) {
    if (!connection.open || !connection.connected) return;
    const uint32_t events = EPOLLIN | (connection.unsent() > 0 ? uint32_t{EPOLLOUT} : 0);
    if (events == connection.events) return;
    epoll_event event{};
    event.events = events;
    event.data.u64 = connection.index;
    if (::epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, connection.fd.get(), &event) != 0) {
      throw_errno("epoll_ctl mod");
    }
    connection.events = events;
  }

  // Opens every connection at once and waits for them all. False if none could be opened.
  bool connect_all() {
    for (uint32_t i = 0; i < connections_.size(); ++i) {
      Connection& connection = connections_[i];
      connection.index = i;
      // seed_seq keeps 32-bit words: the 64-bit seed goes in as two.
      std::seed_seq seed{static_cast<uint32_t>(options_.seed),
                         static_cast<uint32_t>(options_.seed >> 32), i};
      connection.random.seed(seed);
      if (!start_connect(connection)) fail(connection, "connect", errno);
    }
    const Clock::time_point deadline = Clock::now() + seconds(options_.timeout_s);
    while (pending_connects() > 0 && !stopped_) {
      const Clock::time_point now = Clock::now();
      if (now >= deadline) {
        for (Connection& connection : connections_) {
          if (connection.open && !connection.connected) fail(connection, "connect", ETIMEDOUT);
        }
        break;
      }
      wait(deadline - now);
    }
    return !stopped_ && std::any_of(connections_.begin(), connections_.end(),
                                    [](const Connection& c) { return c.connected; });
  }

  // Opens the connection's socket and starts connecting; finish_connect completes it. False (errno
  // set, no socket left) if connecting failed at once.
  bool start_connect(Connection& connection) {
    const Endpoint& to = options_.connect;
    connection.fd =
        Fd(::socket(to.address.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (connection.fd.get() < 0) throw_errno("socket");
    const int one = 1;
    ::setsockopt(connection.fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    const auto* address = reinterpret_cast<const sockaddr*>(&to.address);
    if (::connect(connection.fd.get(), address, to.length) != 0 && errno != EINPROGRESS) {
      const int error = errno;
      connection.fd.reset();
      errno = error;
      return false;
    }
    connection.events = EPOLLOUT;
    add(connection.fd.get(), connection.events, connection.index);
    return true;
  }

  size_t pending_connects() const {
    return static_cast<size_t>(
        std::count_if(connections_.begin(), connections_.end(),
                      [](const Connection& c) { return c.open && !c.connected; }));
  }

  void loop() {
    while (!stopped_) {
      const Clock::time_point now = Clock::now();
      if (options_.reconnect) reconnect_due(now);
      if (sending_ && !may_send(now)) sending_ = false;
      if (sending_ && options_.rate > 0) pace(now);
      if (!sending_ && settled()) return;
      if (stalled(now)) {
        std::fprintf(stderr,
                     "%s: nothing sent or received for %.3g s; giving up (%zu answers due)\n",
                     kProgram, options_.timeout_s, answers_due());
        return;
      }
      wait(next_wakeup(now) - now);
    }
  }

  size_t answers_due() const {
    size_t due = 0;
    for (const Connection& connection : connections_) due += connection.expected.size();
    return due;
  }

  // Handles the events that arrive within `timeout` (rounded up to whole milliseconds).
  void wait(Clock::duration timeout) {
    const auto ms = std::chrono::ceil<std::chrono::milliseconds>(timeout).count();
    epoll_event events[kMaxEvents];
    const int n = ::epoll_wait(epoll_.get(), events, kMaxEvents,
                               static_cast<int>(std::clamp<int64_t>(ms, 0, 60000)));
    if (n < 0 && errno == EINTR) return;
    if (n < 0) throw_errno("epoll_wait");
    for (int i = 0; i < n; ++i) {
      if (events[i].data.u64 == kSignalTag) {
        stopped_ = true;
        continue;
      }
      Connection& connection = connections_[events[i].data.u64];
      if (connection.open) serve(connection, events[i].events);
    }
  }

  Clock::time_point next_wakeup(Clock::time_point now) const {
    Clock::time_point wakeup = last_progress_ + seconds(options_.timeout_s);
    if (sending_ && options_.frames == 0) wakeup = std::min(wakeup, deadline());
    if (sending_ && options_.rate > 0 && !pace_held_) wakeup = std::min(wakeup, next_due_);
    if (options_.reconnect) {
      for (const Connection& connection : connections_) {
        if (!connection.open || connection.connected) continue;
        wakeup =
            std::min(wakeup, connection.fd.get() < 0 ? connection.retry_at : connection.give_up_at);
      }
    }
    return std::max(wakeup, now);
  }

  Clock::time_point deadline() const { return start_ + seconds(options_.duration_s); }

  static Clock::duration seconds(double s) {
    return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
  }

  bool may_send(Clock::time_point now) const {
    if (stopped_ || open_connections() == 0) return false;
    if (options_.frames > 0) return summary_.frames_sent < options_.frames;
    return now < deadline();
  }

  size_t open_connections() const {
    return static_cast<size_t>(std::count_if(connections_.begin(), connections_.end(),
                                             [](const Connection& c) { return c.open; }));
  }

  // Every frame is on the wire and every answer due has come.
  bool settled() const {
    return std::all_of(connections_.begin(), connections_.end(), [](const Connection& c) {
      return !c.open || (c.unsent() == 0 && c.expected.empty());
    });
  }

  // Bytes are waiting to go or answers are due, and nothing has moved for the timeout. While a
  // fixed-rate run is sending, answers due do not hold it: the schedule goes on, and an answer that
  // never comes (a frame dropped on the way) is reported missing at the end.
  bool stalled(Clock::time_point now) const {
    const bool answers_hold = !(sending_ && options_.rate > 0);
    const bool waiting =
        std::any_of(connections_.begin(), connections_.end(), [&](const Connection& c) {
          return c.open && ((answers_hold && !c.expected.empty()) || c.unsent() > 0);
        });
    return waiting && now - last_progress_ >= seconds(options_.timeout_s);
  }

  // Fixed rate: frame k is due at start + k / rate, on connection k mod N, so the rate is spread
  // evenly and a late loop catches up rather than losing frames.
  void pace(Clock::time_point now) {
    pace_held_ = false;
    while (sending_ && next_due_ <= now) {
      Connection* connection = next_paced_connection();
      // No connection to take the frame (all being replaced), or the socket must drain first: an
      // event (connected, room to write) or a reconnection timer wakes the loop, not next_due_.
      pace_held_ = connection == nullptr || connection->unsent() >= kOutputLimit;
      if (pace_held_) return;
      send_frame(*connection);
      ++paced_;
      next_due_ = start_ + seconds(static_cast<double>(paced_) / options_.rate);
      sending_ = may_send(now);
    }
  }

  // The connection for frame paced_, or the next one up that is connected (one being replaced
  // with --reconnect is passed over; if none is, the schedule waits and then catches up).
  Connection* next_paced_connection() {
    for (size_t tried = 0; tried < connections_.size(); ++tried) {
      Connection& connection = connections_[(paced_ + tried) % connections_.size()];
      if (connection.open && connection.connected) return &connection;
    }
    return nullptr;
  }

  // Closed loop: keep `depth` answers due on the connection. A corrupted frame is not answered,
  // so it does not take a place: the next frame follows at once.
  void fill(Connection& connection) {
    if (options_.rate > 0) return;
    while (connection.open && connection.connected && sending_ &&
           connection.expected.size() < options_.depth && connection.unsent() < kOutputLimit) {
      sending_ = may_send(Clock::now());
      if (sending_) send_frame(connection);
    }
  }

  void send_frame(Connection& connection) {
    const uint64_t number = ++summary_.frames_sent;  // 1-based over all connections
    const uint32_t size = options_.sizes[pick_size_(connection.random)].size;
    payload_.resize(size);
    fill_random(connection.random, payload_);
    const uint32_t stream = connection.index;
    std::vector<uint8_t> bytes =
        frame::encode(options_.ping ? frame::kFlagPing : 0, stream, 0, payload_);
    connection.out.insert(connection.out.end(), bytes.begin(), bytes.end());
    const Clock::time_point now = Clock::now();
    if (options_.corrupt_every > 0 && number % options_.corrupt_every == 0) {
      corrupt(connection.random, std::span<uint8_t>(connection.out).last(bytes.size()), size);
      ++summary_.corrupted_sent;
    } else if (options_.ping) {
      connection.expected.push_back({frame::encode(frame::kFlagPong, stream, 0, payload_), now});
    } else {
      connection.expected.push_back({std::move(bytes), now});
    }
    if (!transmit(connection)) {
      fail(connection, "send", errno);
      return;
    }
    // Sent from the pacing or the filling loop, not only from an event: a frame the socket took
    // only part of must wake us when there is room, or it would wait for an answer that needs it.
    update_interest(connection);
  }

  static void fill_random(std::mt19937_64& random, std::vector<uint8_t>& bytes) {
    size_t i = 0;
    for (; i + 8 <= bytes.size(); i += 8) store64(&bytes[i], random());
    if (i < bytes.size()) {
      uint8_t tail[8];
      store64(tail, random());
      std::copy_n(tail, bytes.size() - i, bytes.begin() + static_cast<std::ptrdiff_t>(i));
    }
  }

  static void store64(uint8_t* p, uint64_t v) { std::memcpy(p, &v, sizeof v); }

  // One bit flipped after the CRC was computed: in the payload, or for an empty frame in the hop
  // field, which keeps the header well formed so the peer sees a corrupt frame, not a malformed
  // one.
  static void corrupt(std::mt19937_64& random, std::span<uint8_t> frame_bytes, uint32_t size) {
    const size_t at =
        size > 0 ? frame::kHeaderSize + random() % size : frame::kHopOffset + random() % 4;
    frame_bytes[at] ^= static_cast<uint8_t>(1u << (random() % 8));
  }

  void serve(Connection& connection, uint32_t events) {
    if (!connection.connected) {
      if (finish_connect(connection)) {
        fill(connection);  // a replacement (--reconnect) during the run takes up the loop
        update_interest(connection);
      }
      return;
    }
    if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
      if (!receive(connection)) return;
    }
    if (!transmit(connection)) {
      fail(connection, "send", errno);
      return;
    }
    fill(connection);
    update_interest(connection);
  }

  // False if connecting failed.
  bool finish_connect(Connection& connection) {
    int error = 0;
    socklen_t length = sizeof error;
    ::getsockopt(connection.fd.get(), SOL_SOCKET, SO_ERROR, &error, &length);
    if (error != 0) {
      fail(connection, "connect", error);
      return false;
    }
    connection.connected = true;
    connection.give_up_at = {};
    update_interest(connection);
    return true;
  }

  // Reads what is there and checks it. False if the connection failed.
  bool receive(Connection& connection) {
    for (;;) {
      const ssize_t n = ::recv(connection.fd.get(), chunk_.data(), chunk_.size(), 0);
      if (n == 0) {
        fail(connection, "peer closed the connection", 0);
        return false;
      }
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return true;
        fail(connection, "recv", errno);
        return false;
      }
      const Clock::time_point now = Clock::now();
      summary_.bytes_received += static_cast<uint64_t>(n);
      last_progress_ = now;
      AnswerChecker checker(connection, summary_, now);
      connection.decoder.feed(std::span<const uint8_t>(chunk_.data(), static_cast<size_t>(n)),
                              checker);
      if (connection.decoder.failed()) {
        fail(connection, "malformed answer", 0);
        return false;
      }
      if (static_cast<size_t>(n) < chunk_.size()) return true;
    }
  }

  // Sends what the socket takes now. False (errno set) if the connection is broken.
  bool transmit(Connection& connection) {
    while (connection.unsent() > 0) {
      const ssize_t n = ::send(connection.fd.get(), connection.out.data() + connection.sent,
                               connection.unsent(), MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) break;
        return false;
      }
      connection.sent += static_cast<size_t>(n);
      summary_.bytes_sent += static_cast<uint64_t>(n);
      last_progress_ = Clock::now();
    }
    if (connection.sent == connection.out.size()) {
      connection.out.clear();
      connection.sent = 0;
    } else if (connection.sent > connection.out.size() / 2) {
      connection.out.erase(connection.out.begin(),
                           connection.out.begin() + static_cast<std::ptrdiff_t>(connection.sent));
      connection.sent = 0;
    }
    return true;
  }

  // Counts a connection error and closes the connection; its due answers become missing. With
  // --reconnect, once the run has started, the connection is replaced instead (lose), and a failed
  // attempt at a replacement is tried again (retry_later).
  void fail(Connection& connection, const char* what, int error) {
    if (!connection.open) return;
    if (options_.reconnect && running_) {
      connection.connected ? lose(connection, what, error) : retry_later(connection, what, error);
      return;
    }
    ++summary_.connection_errors;
    std::fprintf(stderr, "%s: connection %u: %s%s%s\n", kProgram, connection.index, what,
                 error ? ": " : "", error ? std::strerror(error) : "");
    connection.open = false;
    connection.fd.reset();  // also leaves the epoll set
    connection.expected.clear();
    connection.out.clear();
    connection.sent = 0;
  }

  // --reconnect: the connection failed during the run. Counted as a reset; its due answers are
  // lost to it. While frames remain to be sent, a replacement is opened at once, same index and
  // stream, and given --timeout to connect.
  void lose(Connection& connection, const char* what, int error) {
    ++summary_.connection_resets;
    summary_.lost_to_reset += connection.expected.size();
    const bool replace = sending_ && !stopped_;
    if (summary_.connection_resets <= kResetsLogged) {
      std::fprintf(stderr, "%s: connection %u: %s%s%s; %zu answers lost%s%s\n", kProgram,
                   connection.index, what, error ? ": " : "", error ? std::strerror(error) : "",
                   connection.expected.size(), replace ? "; reconnecting" : "",
                   summary_.connection_resets == kResetsLogged ? " (later resets not logged)" : "");
    }
    connection.fd.reset();  // also leaves the epoll set
    connection.connected = false;
    connection.expected.clear();
    connection.out.clear();
    connection.sent = 0;
    connection.decoder = frame::Decoder{frame::kHardMaxPayload};
    connection.answer_offset = 0;
    connection.answer_differs = false;
    connection.answer_kept = false;
    connection.answer.clear();
    if (!replace) {
      connection.open = false;  // nothing left to send on it: done, not failed
      return;
    }
    const Clock::time_point now = Clock::now();
    connection.give_up_at = now + seconds(options_.timeout_s);
    connection.retry_at = now;
    if (!start_connect(connection)) retry_later(connection, "connect", errno);
  }

  // --reconnect: an attempt at a replacement failed. Tried again after a pause, or given up (a
  // connection error) once --timeout has passed since the connection was lost.
  void retry_later(Connection& connection, const char* what, int error) {
    connection.fd.reset();
    const Clock::time_point now = Clock::now();
    if (now < connection.give_up_at) {
      connection.retry_at = now + kReconnectBackoff;
      return;
    }
    ++summary_.connection_errors;
    std::fprintf(stderr, "%s: connection %u: %s%s%s; no replacement after %.3g s, giving up\n",
                 kProgram, connection.index, what, error ? ": " : "",
                 error ? std::strerror(error) : "", options_.timeout_s);
    connection.open = false;
  }

  // --reconnect: makes the attempts that are due, and gives up those that took too long.
  void reconnect_due(Clock::time_point now) {
    for (Connection& connection : connections_) {
      if (!connection.open || connection.connected) continue;
      if (!sending_ || stopped_) {
        connection.fd.reset();  // nothing left to send: no replacement needed
        connection.open = false;
      } else if (connection.fd.get() >= 0) {
        if (now >= connection.give_up_at) retry_later(connection, "connect", ETIMEDOUT);
      } else if (now >= connection.retry_at && !start_connect(connection)) {
        retry_later(connection, "connect", errno);
      }
    }
  }

  static constexpr uint64_t kSignalTag = UINT64_MAX;

  Options options_;
  std::vector<uint8_t> chunk_;    // one read buffer for all connections
  std::vector<uint8_t> payload_;  // the payload being built
  std::discrete_distribution<size_t> pick_size_;
  std::vector<Connection> connections_;
  Fd signals_;
  Fd epoll_;
  Summary summary_;
  bool sending_ = false;  // true from the start of the run until the frame or time bound
  bool stopped_ = false;
  bool running_ = false;  // connect_all is over: failures from here on are replaced (--reconnect)
  uint64_t paced_ = 0;
  bool pace_held_ = false;  // the schedule is behind, waiting for a connection or for room
  Clock::time_point start_{};
  Clock::time_point next_due_{};
  // The last byte sent or received: the stall timeout counts from here.
  Clock::time_point last_progress_{};
};

// ---- Output -------------------------------------------------------------------------------------

double microseconds(uint64_t ns) {
  return static_cast<double>(ns) / 1000.0;
}

void print_json(const Summary& s) {
  std::printf(
      "{\"connections\":%u,\"frames_sent\":%llu,\"corrupted_sent\":%llu,\"responses_ok\":%llu,"
      "\"responses_mismatched\":%llu,\"responses_missing\":%llu,\"connection_errors\":%llu,"
      "\"connection_resets\":%llu,\"lost_to_reset\":%llu,\"bytes_sent\":%llu,"
      "\"bytes_received\":%llu,\"duration_s\":%.6f,\"frames_per_s\":%.1f,"
      "\"throughput_bytes_per_s\":%.1f,\"latency_us\":{\"p50\":%.1f,\"p99\":%.1f,\"p999\":%.1f}}\n",
      s.connections, static_cast<unsigned long long>(s.frames_sent),
      static_cast<unsigned long long>(s.corrupted_sent),
      static_cast<unsigned long long>(s.responses_ok),
      static_cast<unsigned long long>(s.responses_mismatched),
      static_cast<unsigned long long>(s.responses_missing()),
      static_cast<unsigned long long>(s.connection_errors),
      static_cast<unsigned long long>(s.connection_resets),
      static_cast<unsigned long long>(s.lost_to_reset),
      static_cast<unsigned long long>(s.bytes_sent),
      static_cast<unsigned long long>(s.bytes_received), s.duration_s, s.per_second(s.frames_sent),
      s.per_second(s.bytes_sent), microseconds(s.latency.quantile(0.50)),
      microseconds(s.latency.quantile(0.99)), microseconds(s.latency.quantile(0.999)));
}

void print_text(const Summary& s) {
  const auto u = [](uint64_t v) { return static_cast<unsigned long long>(v); };
  if (s.reconnect) {
    std::printf("connections         %u (%llu errors, %llu resets with %llu answers lost)\n",
                s.connections, u(s.connection_errors), u(s.connection_resets), u(s.lost_to_reset));
  } else {
    std::printf("connections         %u (%llu errors)\n", s.connections, u(s.connection_errors));
  }
  std::printf("frames sent         %llu (%llu corrupted on purpose)\n", u(s.frames_sent),
              u(s.corrupted_sent));
  std::printf("responses           %llu ok, %llu mismatched, %llu missing\n", u(s.responses_ok),
              u(s.responses_mismatched), u(s.responses_missing()));
  std::printf("bytes               %llu sent, %llu received\n", u(s.bytes_sent),
              u(s.bytes_received));
  std::printf("duration            %.3f s\n", s.duration_s);
  std::printf("rate                %.1f frames/s, %.1f MB/s sent\n", s.per_second(s.frames_sent),
              s.per_second(s.bytes_sent) / 1e6);
  std::printf("latency             p50 %.1f us, p99 %.1f us, p99.9 %.1f us\n",
              microseconds(s.latency.quantile(0.50)), microseconds(s.latency.quantile(0.99)),
              microseconds(s.latency.quantile(0.999)));
  std::printf("result              %s\n", s.passed() ? "PASS" : "FAIL");
}

}  // namespace

int main(int argc, char** argv) {
  return weir::tools::tool_main(kProgram, argc, argv, print_usage, [&] {
    Options options = parse_options(argc, argv);
    const bool json = options.json;
    LoadRun run(std::move(options));
    const Summary summary = run.run();
    json ? print_json(summary) : print_text(summary);
    return summary.passed() ? 0 : 1;
  });
}
