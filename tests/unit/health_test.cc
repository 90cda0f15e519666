// weir-control's health checker (control/health.h) against real loopback servers made here. The
// servers are non-blocking and serviced from the same loop that polls the checker, so nothing is
// synchronised by sleeping: every test polls until a condition holds or a generous deadline (5 s)
// passes, and normally finishes in a few hundred milliseconds.
#include "control/health.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/frame.h"
#include "common/wire/byte_order.h"

namespace weir::control {
namespace {

using config::HealthType;
using Transition = HealthChecker::Transition;

constexpr uint64_t kDeadlineUs = 5'000'000;

// A loopback server answering every connection the same way.
class Server {
 public:
  enum class Mode {
    accept_close,        // tcp checks: accept and close
    http_200,            // read the request, answer 200, close
    http_503,            //   ... 503
    http_alternate,      //   ... 200, 503, 200, ... (one per connection)
    pong,                // answer a PING with the right PONG
    pong_bad_crc,        //   ... with its trailer's last byte flipped
    pong_wrong_stream,   //   ... for stream + 1 (a valid frame otherwise)
    pong_wrong_payload,  //   ... with the payload's first byte flipped
    garbage,             //   ... with an HTTP answer instead of a frame
    silent,              // read and never answer
  };

  explicit Server(Mode mode) : mode_(mode) { listen_on(0); }
  ~Server() {
    close_listener();
    for (Connection& c : connections_) ::close(c.fd);
  }
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  uint16_t port() const { return port_; }
  void close_listener() {
    if (listener_ >= 0) ::close(listener_);
    listener_ = -1;
  }
  void listen_again() { listen_on(port_); }

  // Accepts what is pending, reads what has arrived and answers. Never blocks.
  void service() {
    while (listener_ >= 0) {
      const int fd = ::accept4(listener_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) break;
      ++accepted;
      if (mode_ == Mode::accept_close) {
        ::close(fd);
      } else {
        connections_.push_back({fd, {}, false});
      }
    }
    for (Connection& c : connections_) {
      char buffer[4096];
      for (;;) {
        const ssize_t n = ::recv(c.fd, buffer, sizeof buffer, 0);
        if (n > 0) {
          c.in.append(buffer, static_cast<size_t>(n));
          continue;
        }
        if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) c.closed = true;
        break;
      }
      if (!c.closed) answer(c);
    }
    std::erase_if(connections_, [](const Connection& c) {
      if (c.closed) ::close(c.fd);
      return c.closed;
    });
  }

  int accepted = 0;
  std::vector<std::string> requests;  // http: every request received
  std::vector<uint32_t> streams;      // framed: the stream of every good PING received
  int bad_pings = 0;                  // framed: PINGs that did not check out

 private:
  struct Connection {
    int fd;
    std::string in;
    bool closed;
  };

  void listen_on(uint16_t port) {
    listener_ = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (listener_ < 0) throw std::runtime_error("socket");
    const int one = 1;
    ::setsockopt(listener_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = htons(port);
    socklen_t length = sizeof address;
    if (::bind(listener_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
        ::listen(listener_, 128) != 0 ||
        ::getsockname(listener_, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
      throw std::runtime_error("cannot listen on 127.0.0.1:" + std::to_string(port) + ": " +
                               std::strerror(errno));
    }
    port_ = ntohs(address.sin_port);
  }

  void send_all(Connection& c, const void* data, size_t size) {
    if (::send(c.fd, data, size, MSG_NOSIGNAL) != static_cast<ssize_t>(size)) c.closed = true;
  }

  void answer(Connection& c) {
    switch (mode_) {
      case Mode::accept_close:
      case Mode::silent:
        return;
      case Mode::http_200:
      case Mode::http_503:
      case Mode::http_alternate: {
        const size_t end = c.in.find("\r\n\r\n");
        if (end == std::string::npos) return;
        requests.push_back(c.in.substr(0, end + 4));
        const bool ok =
            mode_ == Mode::http_200 || (mode_ == Mode::http_alternate && requests.size() % 2 == 1);
        const std::string response =
            ok ? "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
               : "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n";
        send_all(c, response.data(), response.size());
        c.closed = true;
        return;
      }
      default:
        break;
    }
    // A framed mode: wait for one whole PING.
    if (c.in.size() < frame::kHeaderSize) return;
    const auto* bytes = reinterpret_cast<const uint8_t*>(c.in.data());
    const uint32_t length = wire::load_be32(bytes + frame::kLengthOffset);
    if (c.in.size() < frame::encoded_size(length)) return;
    const uint32_t stream = wire::load_be32(bytes + frame::kStreamOffset);
    const std::vector<uint8_t> frame_bytes(bytes, bytes + frame::encoded_size(length));
    c.in.erase(0, frame::encoded_size(length));
    const std::vector<uint8_t> good = frame::encode(
        frame::kFlagPing, stream, 0, std::span(frame_bytes).subspan(frame::kHeaderSize, length));
    if (good != frame_bytes) {
      ++bad_pings;
      c.closed = true;
      return;
    }
    streams.push_back(stream);
    std::vector<uint8_t> payload(frame_bytes.begin() + frame::kHeaderSize,
                                 frame_bytes.begin() + frame::kHeaderSize + length);
    std::vector<uint8_t> reply;
    switch (mode_) {
      case Mode::pong:
        reply = frame::encode(frame::kFlagPong, stream, 0, payload);
        break;
      case Mode::pong_bad_crc:
        reply = frame::encode(frame::kFlagPong, stream, 0, payload);
        reply.back() ^= 0x01;
        break;
      case Mode::pong_wrong_stream:
        reply = frame::encode(frame::kFlagPong, stream + 1, 0, payload);
        break;
      case Mode::pong_wrong_payload:
        payload.at(0) ^= 0x01;
        reply = frame::encode(frame::kFlagPong, stream, 0, payload);
        break;
      default: {
        const std::string http = "HTTP/1.1 400 Bad Request\r\n\r\n";
        reply.assign(http.begin(), http.end());
        break;
      }
    }
    send_all(c, reply.data(), reply.size());
  }

  Mode mode_;
  int listener_ = -1;
  uint16_t port_ = 0;
  std::vector<Connection> connections_;
};

config::Health health(HealthType type, uint32_t interval_ms, uint32_t timeout_ms, uint32_t rise,
                      uint32_t fall) {
  config::Health h;
  h.type = type;
  h.interval_ms = interval_ms;
  h.timeout_ms = timeout_ms;
  h.rise = rise;
  h.fall = fall;
  if (type == HealthType::http) h.http = config::HttpCheck{"GET /healthz HTTP/1.1", 200, 399};
  return h;
}

HealthChecker::Target loopback(const std::string& backend, uint16_t port, config::Health h) {
  return {"pool", backend, net::Ipv4Address::from_octets(127, 0, 0, 1), port, h};
}

// Polls the checker and services the servers until `done` holds or the deadline passes; collects
// the transitions on the way.
struct Loop {
  HealthChecker& checker;
  std::vector<Server*> servers;
  std::vector<Transition> transitions;

  bool until(const std::function<bool()>& done) {
    const uint64_t deadline = HealthChecker::now_us() + kDeadlineUs;
    while (HealthChecker::now_us() < deadline) {
      checker.poll(2);
      for (Server* s : servers) s->service();
      for (Transition& t : checker.take_transitions()) transitions.push_back(std::move(t));
      if (done()) return true;
    }
    return false;
  }
};

TEST(Health, TcpGoesDownAfterFallFailuresAndUpAfterRisePasses) {
  Server server(Server::Mode::accept_close);
  HealthChecker checker({loopback("b1", server.port(), health(HealthType::tcp, 20, 500, 2, 2))}, 1);
  Loop loop{checker, {&server}, {}};
  const HealthChecker::Status& status = checker.status(0);
  EXPECT_TRUE(status.up) << "a backend starts up";
  EXPECT_EQ(status.last_result, HealthChecker::Result::none);

  ASSERT_TRUE(loop.until([&] { return status.checks >= 3; }));
  EXPECT_TRUE(loop.transitions.empty()) << "passes on an up backend change nothing";
  EXPECT_TRUE(status.up);
  EXPECT_EQ(status.last_result, HealthChecker::Result::pass);
  EXPECT_EQ(status.last_reason, "connected");
  EXPECT_GE(status.consecutive_passes, 3u);
  EXPECT_EQ(status.failures, 0u);
  EXPECT_GE(server.accepted, 1);

  const uint64_t closed_at = HealthChecker::now_us();
  server.close_listener();
  ASSERT_TRUE(loop.until([&] { return !loop.transitions.empty(); }));
  ASSERT_EQ(loop.transitions.size(), 1u);
  const Transition down = loop.transitions[0];  // a copy: the vector grows
  EXPECT_EQ(down.pool, "pool");
  EXPECT_EQ(down.backend, "b1");
  EXPECT_FALSE(down.up);
  EXPECT_EQ(down.reason, "connect refused");
  // Stamped by the check that failed: after the listener closed, and not in the future.
  EXPECT_GE(down.at_us, closed_at);
  EXPECT_LE(down.at_us, HealthChecker::now_us());
  EXPECT_FALSE(status.up);
  EXPECT_EQ(status.last_result, HealthChecker::Result::fail);
  EXPECT_GE(status.consecutive_failures, 2u);
  EXPECT_EQ(status.consecutive_passes, 0u);
  EXPECT_GE(status.failures, 2u);
  EXPECT_EQ(status.transitions, 1u);

  // Further failures are no news.
  ASSERT_TRUE(loop.until([&] { return status.consecutive_failures >= 5; }));
  EXPECT_EQ(loop.transitions.size(), 1u);

  const uint64_t reopened_at = HealthChecker::now_us();
  server.listen_again();
  ASSERT_TRUE(loop.until([&] { return loop.transitions.size() >= 2; }));
  ASSERT_EQ(loop.transitions.size(), 2u);
  const Transition& up = loop.transitions[1];
  EXPECT_TRUE(up.up);
  EXPECT_EQ(up.backend, "b1");
  EXPECT_EQ(up.reason, "2 consecutive passes");
  EXPECT_GE(up.at_us, reopened_at);
  EXPECT_LE(up.at_us, HealthChecker::now_us());
  EXPECT_TRUE(status.up);
  EXPECT_EQ(status.transitions, 2u);
}

TEST(Health, HttpStatusInRangePassesOthersFail) {
  Server ok(Server::Mode::http_200);
  Server bad(Server::Mode::http_503);
  HealthChecker checker({loopback("ok", ok.port(), health(HealthType::http, 20, 500, 1, 2)),
                         loopback("bad", bad.port(), health(HealthType::http, 20, 500, 1, 2))},
                        2);
  Loop loop{checker, {&ok, &bad}, {}};
  ASSERT_TRUE(
      loop.until([&] { return !loop.transitions.empty() && checker.status(0).checks >= 3; }));
  ASSERT_EQ(loop.transitions.size(), 1u);
  EXPECT_EQ(loop.transitions[0].backend, "bad");
  EXPECT_FALSE(loop.transitions[0].up);
  EXPECT_EQ(loop.transitions[0].reason, "status 503");
  EXPECT_TRUE(checker.status(0).up);
  EXPECT_EQ(checker.status(0).last_reason, "status 200");
  EXPECT_EQ(checker.status(0).failures, 0u);
  EXPECT_FALSE(checker.status(1).up);
  EXPECT_EQ(checker.status(1).last_reason, "status 503");

  ASSERT_FALSE(ok.requests.empty());
  EXPECT_EQ(ok.requests[0], "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:" +
                                std::to_string(ok.port()) + "\r\nConnection: close\r\n\r\n");
}

TEST(Health, FlappingBackendCrossesNoThreshold) {
  // 200, 503, 200, ...: never two in a row of either, so with rise = fall = 2 nothing changes.
  Server server(Server::Mode::http_alternate);
  HealthChecker checker(
      {loopback("flappy", server.port(), health(HealthType::http, 10, 500, 2, 2))}, 3);
  Loop loop{checker, {&server}, {}};
  ASSERT_TRUE(loop.until([&] { return checker.status(0).checks >= 10; }));
  EXPECT_TRUE(loop.transitions.empty());
  EXPECT_TRUE(checker.status(0).up);
  EXPECT_GE(checker.status(0).failures, 4u);
  EXPECT_LE(checker.status(0).consecutive_failures, 1u);
  EXPECT_LE(checker.status(0).consecutive_passes, 1u);
}

TEST(Health, FramedPingNeedsTheRightPong) {
  Server good(Server::Mode::pong);
  Server bad_crc(Server::Mode::pong_bad_crc);
  Server wrong_stream(Server::Mode::pong_wrong_stream);
  Server wrong_payload(Server::Mode::pong_wrong_payload);
  Server garbage(Server::Mode::garbage);
  Server silent(Server::Mode::silent);
  const config::Health patient = health(HealthType::framed_ping, 20, 500, 1, 2);
  HealthChecker checker(
      {loopback("good", good.port(), patient), loopback("bad_crc", bad_crc.port(), patient),
       loopback("wrong_stream", wrong_stream.port(), patient),
       loopback("wrong_payload", wrong_payload.port(), patient),
       loopback("garbage", garbage.port(), patient),
       loopback("silent", silent.port(), health(HealthType::framed_ping, 20, 50, 1, 2))},
      4);
  Loop loop{checker, {&good, &bad_crc, &wrong_stream, &wrong_payload, &garbage, &silent}, {}};
  ASSERT_TRUE(
      loop.until([&] { return loop.transitions.size() >= 5 && checker.status(0).checks >= 3; }));

  std::map<std::string, std::string> down;
  for (const Transition& t : loop.transitions) {
    EXPECT_FALSE(t.up) << t.backend;
    down[t.backend] = t.reason;
  }
  EXPECT_EQ(down, (std::map<std::string, std::string>{
                      {"bad_crc", "bad PONG: CRC mismatch"},
                      {"wrong_stream", "bad PONG: stream mismatch"},
                      {"wrong_payload", "bad PONG: payload mismatch"},
                      {"garbage", "bad PONG: bad magic"},
                      {"silent", "timeout after 50 ms waiting for PONG"},
                  }));
  EXPECT_TRUE(checker.status(0).up);
  EXPECT_EQ(checker.status(0).last_reason, "PONG ok");
  EXPECT_EQ(checker.status(0).failures, 0u);
  EXPECT_GE(checker.status(5).last_duration_us, 50'000u);

  // Every PING was a well-formed frame, each with its own random stream id.
  for (const Server* s : {&good, &bad_crc, &wrong_stream, &wrong_payload, &garbage, &silent}) {
    EXPECT_EQ(s->bad_pings, 0);
  }
  EXPECT_GE(good.streams.size(), 3u);
  EXPECT_EQ(std::set<uint32_t>(good.streams.begin(), good.streams.end()).size(),
            good.streams.size());
}

std::vector<HealthChecker::Target> many_targets(size_t n, uint32_t interval_ms) {
  std::vector<HealthChecker::Target> targets;
  for (size_t i = 0; i < n; ++i) {
    // Never polled, so never connected to.
    targets.push_back(loopback("b" + std::to_string(i), 9,
                               health(HealthType::tcp, interval_ms, interval_ms, 2, 3)));
  }
  return targets;
}

TEST(Health, FirstChecksAreSpreadOverTheInterval) {
  constexpr uint64_t kIntervalUs = 1'000'000;
  const uint64_t before = HealthChecker::now_us();
  HealthChecker checker(many_targets(50, 1000), 42);
  const uint64_t after = HealthChecker::now_us();
  std::set<uint64_t> starts;
  for (size_t i = 0; i < checker.size(); ++i) {
    const uint64_t at = checker.status(i).next_check_at_us;
    EXPECT_GE(at, before);
    EXPECT_LT(at, after + kIntervalUs);
    starts.insert(at);
  }
  EXPECT_GE(starts.size(), 45u) << "not synchronised";
  EXPECT_GT(*starts.rbegin() - *starts.begin(), kIntervalUs / 2);

  // The same seed gives the same offsets; another seed others.
  HealthChecker same(many_targets(50, 1000), 42);
  HealthChecker other(many_targets(50, 1000), 43);
  int differing = 0;
  for (size_t i = 1; i < checker.size(); ++i) {
    const auto offset = [i](const HealthChecker& c) {
      return int64_t(c.status(i).next_check_at_us) - int64_t(c.status(0).next_check_at_us);
    };
    EXPECT_EQ(offset(same), offset(checker));
    differing += offset(other) != offset(checker);
  }
  EXPECT_GT(differing, 40);
}

TEST(Health, LaterChecksComeEveryIntervalPlusOrMinusTenPercent) {
  constexpr uint64_t kIntervalUs = 50'000;
  Server server(Server::Mode::accept_close);
  HealthChecker checker({loopback("b", server.port(), health(HealthType::tcp, 50, 50, 2, 2))}, 5);
  Loop loop{checker, {&server}, {}};
  std::set<uint64_t> gaps;
  for (uint64_t checks = 1; checks <= 5; ++checks) {
    ASSERT_TRUE(loop.until([&] { return checker.status(0).checks >= checks; }));
    const HealthChecker::Status& s = checker.status(0);
    const uint64_t gap = s.next_check_at_us - s.last_started_us;
    const bool clamped = s.next_check_at_us == s.last_started_us + s.last_duration_us;
    EXPECT_TRUE(clamped || (gap >= kIntervalUs * 9 / 10 && gap <= kIntervalUs * 11 / 10)) << gap;
    gaps.insert(gap);
  }
  EXPECT_GT(gaps.size(), 1u) << "jittered, not a fixed period";
  EXPECT_TRUE(loop.transitions.empty());
}

TEST(Health, ParsesHttpStatusLines) {
  EXPECT_EQ(parse_http_status("HTTP/1.1 200 OK"), 200);
  EXPECT_EQ(parse_http_status("HTTP/1.0 503 Service Unavailable"), 503);
  EXPECT_EQ(parse_http_status("HTTP/1.1 204"), 204);
  EXPECT_EQ(parse_http_status("HTTP/1.1 404 "), 404);
  EXPECT_EQ(parse_http_status("HTTP/2 200 OK"), 200);
  EXPECT_EQ(parse_http_status(""), std::nullopt);
  EXPECT_EQ(parse_http_status("HTTP/1.1"), std::nullopt);
  EXPECT_EQ(parse_http_status("HTTP/1.1 20 OK"), std::nullopt);
  EXPECT_EQ(parse_http_status("HTTP/1.1 2000 OK"), std::nullopt);
  EXPECT_EQ(parse_http_status("HTTP/1.1  200 OK"), std::nullopt);
  EXPECT_EQ(parse_http_status("HTTP/ 200 OK"), std::nullopt);
  EXPECT_EQ(parse_http_status("http/1.1 200 OK"), std::nullopt);
  EXPECT_EQ(parse_http_status("SSH-2.0-OpenSSH_9.6"), std::nullopt);
}

TEST(Health, TargetsComeFromPoolsWithHealth) {
  config::Config config;
  config::Pool checked;
  checked.name = "web";
  checked.health = health(HealthType::http, 1000, 500, 2, 3);
  checked.backends = {{"w1", net::Ipv4Address::from_octets(10, 0, 0, 1), 80, 1},
                      {"w2", net::Ipv4Address::from_octets(10, 0, 0, 2), 8080, 1}};
  config::Pool unchecked;
  unchecked.name = "raw";
  unchecked.backends = {{"r1", net::Ipv4Address::from_octets(10, 0, 0, 3), 7, 1}};
  config.pools = {unchecked, checked};

  const std::vector<HealthChecker::Target> targets = health_targets(config);
  ASSERT_EQ(targets.size(), 2u);
  EXPECT_EQ(targets[0].pool, "web");
  EXPECT_EQ(targets[0].backend, "w1");
  EXPECT_EQ(targets[1].backend, "w2");
  EXPECT_EQ(targets[1].address, net::Ipv4Address::from_octets(10, 0, 0, 2));
  EXPECT_EQ(targets[1].port, 8080);
  EXPECT_EQ(targets[1].health.type, HealthType::http);
}

TEST(Health, RefusesTargetsTheLoaderWouldRefuse) {
  config::Health no_interval = health(HealthType::tcp, 0, 0, 1, 1);
  EXPECT_THROW(HealthChecker({loopback("b", 1, no_interval)}, 1), std::invalid_argument);
  config::Health no_request = health(HealthType::http, 100, 50, 1, 1);
  no_request.http.reset();
  EXPECT_THROW(HealthChecker({loopback("b", 1, no_request)}, 1), std::invalid_argument);
  HealthChecker empty({}, 1);
  EXPECT_GE(empty.fd(), 0);
  empty.poll(0);
  EXPECT_TRUE(empty.take_transitions().empty());
}

}  // namespace
}  // namespace weir::control
