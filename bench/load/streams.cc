// weir-bench-load bulk, latency and hold: modes on long-lived connections.
//   bulk     each connection streams request frames and reads their echo, --window frames in
//            flight; the figure is the echoed bytes a second (each byte crossed the path twice).
//   latency  open loop: one frame every 1/--rate s (a timerfd), the connections taking turns;
//            each answer's delay is counted from when its request was due, so a stall delays
//            every request queued behind it, as it would a real client's.
//   hold     --connections connections, one echo each (so a proxy has its backend side open
//            too), then idle until stdin closes: memory per idle connection.
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <deque>

#include "bench/load/load.h"

namespace weir::bench {
namespace {

// One connection sending a cyclic stream of frames and checking the echoed stream against it.
struct Stream {
  int fd = -1;
  const std::vector<uint8_t>* frame = nullptr;  // the frame this connection repeats
  uint64_t sent = 0;                            // bytes sent
  uint64_t received = 0;                        // bytes echoed back and checked
  uint64_t allowed = 0;  // bytes it may have sent so far (a window, or the requests due)
  bool connected = false;
  bool failed = false;
  std::deque<Clock::time_point> due;  // latency: when each unanswered request was due
};

struct Tally {
  uint64_t mismatches = 0;
  std::map<std::string, uint64_t> failure_reasons;
};

void fail(Stream& s, Tally& tally, const char* why) {
  if (s.failed) return;
  s.failed = true;
  ++tally.failure_reasons[socket_error_name(s.fd, why)];
}

void send_allowed(Stream& s, Tally& tally) {
  const size_t size = s.frame->size();
  while (!s.failed && s.sent < s.allowed) {
    const size_t at = s.sent % size;
    const size_t length = std::min<uint64_t>(size - at, s.allowed - s.sent);
    const ssize_t w = send(s.fd, s.frame->data() + at, length, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno != EAGAIN && errno != ENOTCONN) fail(s, tally, "send failed");
      return;
    }
    s.sent += static_cast<uint64_t>(w);
  }
}

// Reads what has arrived and checks it; returns the number of whole frames completed.
uint64_t receive(Stream& s, Tally& tally, std::vector<uint8_t>& scratch) {
  const size_t size = s.frame->size();
  const uint64_t frames_before = s.received / size;
  while (!s.failed) {
    const ssize_t r = recv(s.fd, scratch.data(), scratch.size(), 0);
    if (r < 0) {
      if (errno != EAGAIN) fail(s, tally, "recv failed");
      break;
    }
    if (r == 0) {
      fail(s, tally, "closed early");
      break;
    }
    for (size_t done = 0; done < static_cast<size_t>(r);) {
      const size_t at = s.received % size;
      const size_t length = std::min(size - at, static_cast<size_t>(r) - done);
      const uint8_t* got = scratch.data() + done;
      const uint8_t* want = s.frame->data() + at;
      if (s.received + length > s.sent || std::memcmp(got, want, length) != 0) {
        // Counted up to the first wrong byte (or up to what was sent), not past it.
        const size_t good = std::min<uint64_t>(
            static_cast<size_t>(std::mismatch(got, got + length, want).first - got),
            s.sent - s.received);
        s.received += good;
        ++tally.mismatches;
        fail(s, tally, "answer differs");
        return 0;
      }
      s.received += length;
      done += length;
    }
  }
  return s.received / size - frames_before;
}

// Opens `count` streams, at most 256 handshakes at a time, and returns when each is connected
// or failed (or after 30 s). Each stream's descriptor is in `epoll` with data.u64 = its index.
std::vector<Stream> open_streams(const Options& options, int epoll, size_t count,
                                 const std::vector<std::vector<uint8_t>>& frames, Tally& tally) {
  std::vector<Stream> streams(count);
  size_t next = 0, pending = 0;
  const auto give_up = Clock::now() + std::chrono::seconds(30);
  std::vector<epoll_event> events(256);
  while ((next < count || pending > 0) && Clock::now() < give_up) {
    while (next < count && pending < 256) {
      Stream& s = streams[next];
      s.frame = &frames[next % frames.size()];
      s.fd = start_connect(options.endpoint);
      if (s.fd < 0) {
        s.failed = true;
        ++tally.failure_reasons[std::string("connect ") + strerrorname_np(errno)];
      } else {
        epoll_event ev{};
        ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
        ev.data.u64 = next;
        epoll_ctl(epoll, EPOLL_CTL_ADD, s.fd, &ev);
        ++pending;
      }
      ++next;
    }
    const int n = epoll_wait(epoll, events.data(), static_cast<int>(events.size()), 100);
    for (int e = 0; e < n; ++e) {
      Stream& s = streams[events[e].data.u64];
      if (s.connected || s.failed) continue;
      if (events[e].events & (EPOLLERR | EPOLLHUP)) {
        fail(s, tally, "connect failed");
      } else if (events[e].events & EPOLLOUT) {
        s.connected = true;
      } else {
        continue;
      }
      --pending;
    }
  }
  for (Stream& s : streams) {
    if (!s.connected && !s.failed) fail(s, tally, "connect timed out");
  }
  return streams;
}

int report(const char* mode, const Options& options, const std::vector<Stream>& streams,
           const Tally& tally, double seconds, uint64_t measured_bytes, const std::string& extra) {
  size_t failed = 0;
  for (const Stream& s : streams) failed += s.failed ? 1 : 0;
  std::printf(
      "{\"mode\":\"%s\",\"connections\":%zu,\"bytes\":%zu,\"failed_connections\":%zu,"
      "\"mismatches\":%llu,\"failure_reasons\":%s,\"seconds\":%.3f,\"echoed_bytes\":%llu,"
      "\"echoed_bytes_per_second\":%.1f%s}\n",
      mode, streams.size(), options.bytes, failed,
      static_cast<unsigned long long>(tally.mismatches),
      reasons_json(tally.failure_reasons).c_str(), seconds,
      static_cast<unsigned long long>(measured_bytes),
      seconds > 0 ? static_cast<double>(measured_bytes) / seconds : 0.0, extra.c_str());
  std::fflush(stdout);
  return failed == 0 && tally.mismatches == 0 ? 0 : 1;
}

// The connections of one run, opened, and what they share. Not movable: streams point into
// frames.
struct Session {
  std::vector<std::vector<uint8_t>> frames;
  tools::Fd epoll;
  Tally tally;
  std::vector<Stream> streams;

  explicit Session(const Options& options)
      : frames(make_requests(options.bytes, 16)), epoll(epoll_create1(EPOLL_CLOEXEC)) {
    if (epoll.get() < 0) tools::throw_errno("epoll_create1");
    streams =
        open_streams(options, epoll.get(), static_cast<size_t>(options.connections), frames, tally);
  }
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  uint64_t echoed() const {
    uint64_t total = 0;
    for (const Stream& s : streams) total += s.received;
    return total;
  }
};

}  // namespace

int run_bulk(const Options& options) {
  Session session(options);
  auto& [frames, epoll, tally, streams] = session;
  std::vector<uint8_t> scratch(size_t{256} << 10);
  const uint64_t window = options.window * options.bytes;
  for (Stream& s : streams) {
    s.allowed = window;
    send_allowed(s, tally);
  }
  const auto start = Clock::now();
  const auto stop_at = start + std::chrono::duration<double>(options.seconds);
  std::vector<epoll_event> events(256);
  while (Clock::now() < stop_at) {
    const int n = epoll_wait(epoll.get(), events.data(), static_cast<int>(events.size()), 50);
    for (int e = 0; e < n; ++e) {
      Stream& s = streams[events[e].data.u64];
      if (s.failed) continue;
      if (events[e].events & EPOLLERR) fail(s, tally, "error");
      receive(s, tally, scratch);
      s.allowed = s.received + window;
      send_allowed(s, tally);
    }
  }
  const double seconds = seconds_since(start);
  return report("bulk", options, streams, tally, seconds, session.echoed(), "");
}

int run_latency(const Options& options) {
  Session session(options);
  auto& [frames, epoll, tally, streams] = session;
  const auto interval = std::chrono::nanoseconds(static_cast<int64_t>(1e9 / options.rate));
  tools::Fd timer(timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC));
  itimerspec spec{};
  spec.it_interval.tv_sec = interval.count() / 1'000'000'000;
  spec.it_interval.tv_nsec = interval.count() % 1'000'000'000;
  spec.it_value = spec.it_interval;
  epoll_event tev{};
  tev.events = EPOLLIN;
  tev.data.u64 = ~uint64_t{0};
  epoll_ctl(epoll.get(), EPOLL_CTL_ADD, timer.get(), &tev);
  const auto start = Clock::now();
  timerfd_settime(timer.get(), 0, &spec, nullptr);
  const auto stop_at = start + std::chrono::duration<double>(options.seconds);
  std::vector<uint8_t> scratch(size_t{64} << 10);
  std::vector<uint32_t> latencies;
  uint64_t due_total = 0, answered = 0;
  size_t turn = 0;
  std::vector<epoll_event> events(256);
  // After the last request is due, the answers get this long to arrive.
  const auto answers_until = stop_at + std::chrono::seconds(5);
  for (;;) {
    const auto now = Clock::now();
    if (now >= answers_until || (now >= stop_at && answered == due_total)) break;
    const int n = epoll_wait(epoll.get(), events.data(), static_cast<int>(events.size()), 10);
    for (int e = 0; e < n; ++e) {
      if (events[e].data.u64 == ~uint64_t{0}) {
        uint64_t expirations = 0;
        if (read(timer.get(), &expirations, sizeof expirations) != sizeof expirations) continue;
        for (uint64_t x = 0; x < expirations && Clock::now() < stop_at; ++x) {
          Stream& s = streams[turn++ % streams.size()];
          if (s.failed) continue;
          ++due_total;
          s.due.push_back(start + interval * static_cast<int64_t>(due_total));
          s.allowed += s.frame->size();
          send_allowed(s, tally);
        }
        continue;
      }
      Stream& s = streams[events[e].data.u64];
      if (s.failed) continue;
      if (events[e].events & EPOLLERR) fail(s, tally, "error");
      const uint64_t frames_done = receive(s, tally, scratch);
      const auto arrived = Clock::now();
      for (uint64_t f = 0; f < frames_done && !s.due.empty(); ++f) {
        latencies.push_back(static_cast<uint32_t>(
            std::chrono::duration_cast<std::chrono::microseconds>(arrived - s.due.front())
                .count()));
        s.due.pop_front();
        ++answered;
      }
      send_allowed(s, tally);
    }
  }
  const double seconds = seconds_since(start);
  const std::string extra =
      ",\"rate\":" + std::to_string(options.rate) + ",\"requests\":" + std::to_string(due_total) +
      ",\"answered\":" + std::to_string(answered) + ",\"latency_us\":" + latency_json(latencies);
  const int status = report("latency", options, streams, tally, seconds, session.echoed(), extra);
  return answered == due_total ? status : 1;
}

int run_hold(const Options& options) {
  Session session(options);
  auto& [frames, epoll, tally, streams] = session;
  const auto start = Clock::now();
  size_t waiting = 0;
  for (Stream& s : streams) {
    if (s.failed) continue;
    s.allowed = s.frame->size();
    send_allowed(s, tally);
    ++waiting;
  }
  std::vector<uint8_t> scratch(size_t{64} << 10);
  std::vector<epoll_event> events(256);
  const auto give_up = start + std::chrono::seconds(30);
  while (waiting > 0 && Clock::now() < give_up) {
    const int n = epoll_wait(epoll.get(), events.data(), static_cast<int>(events.size()), 100);
    for (int e = 0; e < n; ++e) {
      Stream& s = streams[events[e].data.u64];
      if (s.failed || s.received == s.frame->size()) continue;
      if (events[e].events & EPOLLERR) fail(s, tally, "error");
      receive(s, tally, scratch);
      send_allowed(s, tally);
      if (s.failed || s.received == s.frame->size()) --waiting;
    }
  }
  for (Stream& s : streams) {
    if (!s.failed && s.received != s.frame->size()) fail(s, tally, "no echo");
  }
  const int status =
      report("hold", options, streams, tally, seconds_since(start), session.echoed(), "");
  // Held until whoever started us closes our stdin (or ends us).
  char byte;
  while (read(STDIN_FILENO, &byte, 1) > 0) {
  }
  return status;
}

}  // namespace weir::bench
