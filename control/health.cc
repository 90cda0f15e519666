#include "control/health.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <limits>
#include <span>
#include <stdexcept>
#include <system_error>
#include <utility>

#include "common/frame.h"

namespace weir::control {
namespace {

constexpr uint64_t kTimerTag = std::numeric_limits<uint64_t>::max();
constexpr int kMaxEvents = 64;
constexpr size_t kPingPayload = 8;
constexpr uint32_t kMaxPongPayload = 64 * 1024;  // a longer PONG header is malformed
constexpr size_t kMaxStatusLine = 1024;
constexpr size_t kReadChunk = 4096;

[[noreturn]] void throw_errno(const char* what) {
  throw std::system_error(errno, std::generic_category(), what);
}

// Short reasons for the errno values a check meets; anything else as "<what>: <strerror>".
std::string errno_reason(const char* what, int error) {
  switch (error) {
    case ECONNREFUSED:
      return "connect refused";
    case ECONNRESET:
      return "connection reset";
    case ETIMEDOUT:
      return "connect timed out";
    case EHOSTUNREACH:
      return "host unreachable";
    case ENETUNREACH:
      return "network unreachable";
    case EPIPE:
      return "connection closed while sending";
    default:
      return std::string(what) + ": " + std::strerror(error);
  }
}

const char* malformed_reason(frame::Malformed reason) {
  switch (reason) {
    case frame::Malformed::bad_magic:
      return "bad magic";
    case frame::Malformed::bad_version:
      return "bad version";
    case frame::Malformed::reserved_flags:
      return "reserved flags";
    case frame::Malformed::ping_and_pong:
      return "PING and PONG";
    case frame::Malformed::length_over_limit:
      return "length over limit";
  }
  return "malformed header";
}

void close_fd(int& fd) {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

}  // namespace

struct HealthChecker::Probe {
  enum class Phase : uint8_t { idle, connecting, exchanging };

  Status status;
  Phase phase = Phase::idle;
  int fd = -1;
  bool registered = false;  // fd is in the epoll set
  uint32_t generation = 0;  // tags epoll events, so an event of an earlier probe is ignored
  uint64_t started_us = 0;
  uint64_t deadline_us = 0;
  std::vector<uint8_t> out;  // the request (http) or the PING (framed_ping)
  size_t sent = 0;
  std::string in;  // http: the response so far, up to the status line
  // framed_ping: the PING sent and the first frame back.
  uint32_t stream = 0;
  std::array<uint8_t, kPingPayload> payload{};
  std::optional<frame::Decoder> decoder;
  std::vector<uint8_t> pong_payload;
};

namespace {

// Judges the first frame the backend sends back; ignores anything after it.
struct PongVisitor {
  PongVisitor(uint32_t sent_stream, std::span<const uint8_t> sent_payload,
              std::vector<uint8_t>& received_payload)
      : stream(sent_stream), expected(sent_payload), payload(received_payload) {}

  const uint32_t stream;
  const std::span<const uint8_t> expected;
  std::vector<uint8_t>& payload;  // of the frame in progress (the decoder hands out pieces)
  bool done = false;
  bool pass = false;
  std::string reason;

  void on_header(const frame::Header&, std::span<const uint8_t, frame::kHeaderSize>) {
    if (done) return;
    payload.clear();
  }
  void on_payload(std::span<const uint8_t> bytes) {
    if (done) return;
    payload.insert(payload.end(), bytes.begin(), bytes.end());
  }
  void on_verdict(const frame::Header& h, const frame::Verdict& verdict) {
    if (done) return;
    done = true;
    if (!verdict.ok) {
      reason = "bad PONG: CRC mismatch";
    } else if (!h.pong()) {
      reason = "bad PONG: not a PONG";
    } else if (h.stream != stream) {
      reason = "bad PONG: stream mismatch";
    } else if (!std::equal(payload.begin(), payload.end(), expected.begin(), expected.end())) {
      reason = "bad PONG: payload mismatch";
    } else {
      pass = true;
      reason = "PONG ok";
    }
  }
  void on_malformed(frame::Malformed malformed) {
    if (done) return;
    done = true;
    reason = std::string("bad PONG: ") + malformed_reason(malformed);
  }
};

}  // namespace

HealthChecker::HealthChecker(std::vector<Target> targets, uint64_t seed)
    : targets_(std::move(targets)), probes_(targets_.size()), rng_(seed) {
  if (targets_.size() >= std::numeric_limits<uint32_t>::max()) {
    throw std::invalid_argument("health: too many targets");
  }
  for (const Target& t : targets_) {
    const config::Health& h = t.health;
    const std::string name = t.pool + "/" + t.backend;
    if (h.interval_ms == 0 || h.timeout_ms == 0 || h.rise == 0 || h.fall == 0) {
      throw std::invalid_argument("health: " + name +
                                  ": interval, timeout, rise and fall must be "
                                  "at least 1");
    }
    if (h.type == config::HealthType::http && !h.http) {
      throw std::invalid_argument("health: " + name + ": an http check needs its request");
    }
  }
  epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd_ < 0) throw_errno("epoll_create1");
  timer_fd_ = ::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  epoll_event event{};
  event.events = EPOLLIN;
  event.data.u64 = kTimerTag;
  if (timer_fd_ < 0 || ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, timer_fd_, &event) != 0) {
    const int error = errno;
    close_fd(timer_fd_);
    close_fd(epoll_fd_);
    errno = error;
    throw_errno("health timer");
  }
  const uint64_t now = now_us();
  for (size_t i = 0; i < targets_.size(); ++i) {
    const uint64_t interval_us = uint64_t{targets_[i].health.interval_ms} * 1000;
    probes_[i].status.next_check_at_us =
        now + std::uniform_int_distribution<uint64_t>(0, interval_us - 1)(rng_);
  }
  arm_timer();
}

HealthChecker::~HealthChecker() {
  for (Probe& probe : probes_) close_fd(probe.fd);
  close_fd(timer_fd_);
  close_fd(epoll_fd_);
}

const HealthChecker::Status& HealthChecker::status(size_t index) const {
  return probes_[index].status;
}

uint64_t HealthChecker::now_us() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1'000'000 + uint64_t(ts.tv_nsec) / 1000;
}

std::vector<HealthChecker::Transition> HealthChecker::take_transitions() {
  return std::exchange(transitions_, {});
}

void HealthChecker::poll(int timeout_ms) {
  std::array<epoll_event, kMaxEvents> events;
  const int n = ::epoll_wait(epoll_fd_, events.data(), kMaxEvents, timeout_ms);
  if (n < 0 && errno != EINTR) throw_errno("epoll_wait");
  for (int e = 0; e < n; ++e) {
    const uint64_t tag = events[e].data.u64;
    if (tag == kTimerTag) {
      uint64_t expirations = 0;
      while (::read(timer_fd_, &expirations, sizeof expirations) > 0) {
      }
      continue;
    }
    const size_t index = tag & 0xffff'ffffu;
    const uint32_t generation = static_cast<uint32_t>(tag >> 32);
    if (index >= probes_.size()) continue;
    const Probe& probe = probes_[index];
    if (probe.phase == Probe::Phase::idle || probe.generation != generation) continue;
    on_event(index, events[e].events);
  }
  run_due(now_us());
  arm_timer();
}

void HealthChecker::run_due(uint64_t now) {
  for (size_t i = 0; i < probes_.size(); ++i) {
    Probe& probe = probes_[i];
    if (probe.phase != Probe::Phase::idle && now >= probe.deadline_us) {
      std::string reason =
          "timeout after " + std::to_string(targets_[i].health.timeout_ms) + " ms ";
      if (probe.phase == Probe::Phase::connecting) {
        reason += "connecting";
      } else if (targets_[i].health.type == config::HealthType::http) {
        reason += "waiting for the status line";
      } else {
        reason += "waiting for PONG";
      }
      finish(i, false, std::move(reason));
    }
    if (probe.phase == Probe::Phase::idle && now >= probe.status.next_check_at_us) start(i, now);
  }
}

void HealthChecker::arm_timer() {
  uint64_t earliest = std::numeric_limits<uint64_t>::max();
  for (const Probe& probe : probes_) {
    earliest = std::min(earliest, probe.phase == Probe::Phase::idle ? probe.status.next_check_at_us
                                                                    : probe.deadline_us);
  }
  itimerspec spec{};  // all zero: disarmed
  if (earliest != std::numeric_limits<uint64_t>::max()) {
    earliest = std::max<uint64_t>(earliest, 1);  // an absolute time of 0 would disarm
    spec.it_value.tv_sec = static_cast<time_t>(earliest / 1'000'000);
    spec.it_value.tv_nsec = static_cast<long>(earliest % 1'000'000 * 1000);
  }
  if (::timerfd_settime(timer_fd_, TFD_TIMER_ABSTIME, &spec, nullptr) != 0) {
    throw_errno("timerfd_settime");
  }
}

void HealthChecker::watch(size_t index, uint32_t events) {
  Probe& probe = probes_[index];
  epoll_event event{};
  event.events = events;
  event.data.u64 = uint64_t{probe.generation} << 32 | index;
  const int op = probe.registered ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
  if (::epoll_ctl(epoll_fd_, op, probe.fd, &event) != 0) throw_errno("epoll_ctl");
  probe.registered = true;
}

void HealthChecker::start(size_t index, uint64_t now) {
  const Target& target = targets_[index];
  Probe& probe = probes_[index];
  ++probe.generation;
  probe.status.in_flight = true;
  probe.status.next_check_at_us = 0;
  probe.started_us = now;
  probe.deadline_us = now + uint64_t{target.health.timeout_ms} * 1000;
  probe.phase = Probe::Phase::connecting;
  probe.registered = false;
  probe.out.clear();
  probe.sent = 0;
  probe.in.clear();
  probe.decoder.reset();
  probe.pong_payload.clear();

  switch (target.health.type) {
    case config::HealthType::tcp:
      break;
    case config::HealthType::http: {
      std::string request = target.health.http->request + "\r\nHost: " + target.address.to_string();
      if (target.port != 80) request += ":" + std::to_string(target.port);
      request += "\r\nConnection: close\r\n\r\n";
      probe.out.assign(request.begin(), request.end());
      break;
    }
    case config::HealthType::framed_ping: {
      probe.stream = static_cast<uint32_t>(rng_());
      const uint64_t bits = rng_();
      for (size_t b = 0; b < kPingPayload; ++b)
        probe.payload[b] = static_cast<uint8_t>(bits >> 8 * b);
      probe.out = frame::encode(frame::kFlagPing, probe.stream, 0, probe.payload);
      probe.decoder.emplace(kMaxPongPayload);
      break;
    }
  }

  probe.fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (probe.fd < 0) {
    finish(index, false, errno_reason("local: socket", errno));
    return;
  }
  const int one = 1;
  ::setsockopt(probe.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(target.port);
  address.sin_addr.s_addr = htonl(target.address.value());
  if (::connect(probe.fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0) {
    on_connected(index);
  } else if (errno == EINPROGRESS) {
    watch(index, EPOLLOUT);
  } else {
    finish(index, false, errno_reason("connect", errno));
  }
}

void HealthChecker::on_event(size_t index, uint32_t events) {
  Probe& probe = probes_[index];
  if (probe.phase == Probe::Phase::connecting) {
    int error = 0;
    socklen_t length = sizeof error;
    if (::getsockopt(probe.fd, SOL_SOCKET, SO_ERROR, &error, &length) != 0) error = errno;
    if (error != 0) {
      finish(index, false, errno_reason("connect", error));
    } else if (events & EPOLLOUT) {
      on_connected(index);
    } else if (events & (EPOLLERR | EPOLLHUP)) {
      finish(index, false, "connect failed");
    }
    return;
  }
  if ((events & EPOLLOUT) && probe.sent < probe.out.size()) {
    if (!flush_output(index)) return;
    if (probe.sent == probe.out.size()) watch(index, EPOLLIN);
  }
  if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) on_readable(index);
}

void HealthChecker::on_connected(size_t index) {
  Probe& probe = probes_[index];
  if (targets_[index].health.type == config::HealthType::tcp) {
    finish(index, true, "connected");
    return;
  }
  probe.phase = Probe::Phase::exchanging;
  if (!flush_output(index)) return;
  const uint32_t more = probe.sent < probe.out.size() ? uint32_t{EPOLLOUT} : 0u;
  watch(index, EPOLLIN | more);
}

bool HealthChecker::flush_output(size_t index) {
  Probe& probe = probes_[index];
  while (probe.sent < probe.out.size()) {
    const ssize_t n = ::send(probe.fd, probe.out.data() + probe.sent, probe.out.size() - probe.sent,
                             MSG_NOSIGNAL);
    if (n >= 0) {
      probe.sent += static_cast<size_t>(n);
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      return true;
    } else if (errno != EINTR) {
      finish(index, false, errno_reason("send", errno));
      return false;
    }
  }
  return true;
}

void HealthChecker::on_readable(size_t index) {
  Probe& probe = probes_[index];
  const bool http = targets_[index].health.type == config::HealthType::http;
  std::array<uint8_t, kReadChunk> buffer;
  for (;;) {
    const ssize_t n = ::recv(probe.fd, buffer.data(), buffer.size(), 0);
    if (n == 0) {
      finish(index, false,
             http ? "connection closed before the status line" : "connection closed before PONG");
      return;
    }
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      if (errno == EINTR) continue;
      finish(index, false, errno_reason("recv", errno));
      return;
    }
    const std::span<const uint8_t> chunk(buffer.data(), static_cast<size_t>(n));
    if (http) {
      probe.in.append(chunk.begin(), chunk.end());
      const size_t eol = probe.in.find('\n');
      if (eol == std::string::npos) {
        if (probe.in.size() > kMaxStatusLine) {
          finish(index, false, "status line too long");
          return;
        }
        continue;
      }
      std::string_view line(probe.in.data(), eol);
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      const std::optional<int> status = parse_http_status(line);
      if (!status) {
        finish(index, false, "bad status line");
        return;
      }
      const config::HttpCheck& check = *targets_[index].health.http;
      const bool pass = *status >= check.status_min && *status <= check.status_max;
      finish(index, pass, "status " + std::to_string(*status));
      return;
    }
    PongVisitor visitor(probe.stream, probe.payload, probe.pong_payload);
    probe.decoder->feed(chunk, visitor);
    if (visitor.done) {
      finish(index, visitor.pass, std::move(visitor.reason));
      return;
    }
  }
}

void HealthChecker::finish(size_t index, bool pass, std::string reason) {
  const uint64_t now = now_us();
  const Target& target = targets_[index];
  Probe& probe = probes_[index];
  Status& status = probe.status;
  if (probe.fd >= 0) {
    const linger reset{1, 0};  // close with an RST: no TIME_WAIT left on this host
    ::setsockopt(probe.fd, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
  }
  close_fd(probe.fd);  // also leaves the epoll set
  probe.registered = false;
  probe.phase = Probe::Phase::idle;
  probe.decoder.reset();

  status.in_flight = false;
  ++status.checks;
  status.last_started_us = probe.started_us;
  status.last_duration_us = now - probe.started_us;
  status.last_result = pass ? Result::pass : Result::fail;
  if (pass) {
    ++status.consecutive_passes;
    status.consecutive_failures = 0;
    if (!status.up && status.consecutive_passes >= target.health.rise) {
      status.up = true;
      ++status.transitions;
      transitions_.push_back({target.pool, target.backend, true,
                              std::to_string(status.consecutive_passes) + " consecutive passes",
                              now});
    }
  } else {
    ++status.failures;
    ++status.consecutive_failures;
    status.consecutive_passes = 0;
    if (status.up && status.consecutive_failures >= target.health.fall) {
      status.up = false;
      ++status.transitions;
      transitions_.push_back({target.pool, target.backend, false, reason, now});
    }
  }
  status.last_reason = std::move(reason);

  // The next start: interval +-10% after this one's start, and not before this one has finished.
  const uint64_t interval_us = uint64_t{target.health.interval_ms} * 1000;
  const uint64_t spread = interval_us / 10;
  const uint64_t next = probe.started_us + interval_us - spread +
                        std::uniform_int_distribution<uint64_t>(0, 2 * spread)(rng_);
  status.next_check_at_us = std::max(next, now);
}

std::vector<HealthChecker::Target> health_targets(const config::Config& config) {
  std::vector<HealthChecker::Target> targets;
  for (const config::Pool& pool : config.pools) {
    if (!pool.health) continue;
    for (const config::Backend& backend : pool.backends) {
      targets.push_back({pool.name, backend.name, backend.address, backend.port, *pool.health});
    }
  }
  return targets;
}

std::optional<int> parse_http_status(std::string_view line) {
  constexpr std::string_view kPrefix = "HTTP/";
  if (!line.starts_with(kPrefix)) return std::nullopt;
  size_t i = kPrefix.size();
  const auto digits = [&] {
    const size_t begin = i;
    while (i < line.size() && line[i] >= '0' && line[i] <= '9') ++i;
    return i > begin;
  };
  if (!digits()) return std::nullopt;  // HTTP-version = "HTTP/" DIGIT "." DIGIT (RFC 9112 2.3)
  if (i < line.size() && line[i] == '.') {
    ++i;
    if (!digits()) return std::nullopt;
  }
  if (i >= line.size() || line[i] != ' ') return std::nullopt;
  ++i;
  if (line.size() - i < 3) return std::nullopt;
  int status = 0;
  for (size_t end = i + 3; i < end; ++i) {
    if (line[i] < '0' || line[i] > '9') return std::nullopt;
    status = status * 10 + (line[i] - '0');
  }
  if (i != line.size() && line[i] != ' ') return std::nullopt;
  return status;
}

}  // namespace weir::control
