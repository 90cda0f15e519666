// The control channel (common/channel/): the envelope both servers use, the line server's bounds,
// and the line client against a real server and against servers that answer wrongly.
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "common/channel/envelope.h"
#include "common/channel/line_client.h"
#include "common/channel/line_server.h"

namespace weir::channel {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

// A socket path unique to this process and test.
std::string socket_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() /
          ("weir-channel-" + std::to_string(getpid()) + "-" + name + ".sock"))
      .string();
}

// A LineServer served from its own thread until the fixture ends.
class ServedLineServer {
 public:
  ServedLineServer(const std::string& path, std::function<std::string(std::string_view)> handle)
      : server_(std::move(handle)) {
    error_ = server_.open(path, "test.socket");
    if (error_.empty()) thread_ = std::thread([this] { loop(); });
  }
  ~ServedLineServer() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  const std::string& error() const { return error_; }

 private:
  void loop() {
    while (!stop_) {
      std::vector<pollfd> fds;
      server_.add_poll_fds(fds);
      if (poll(fds.data(), fds.size(), 10) > 0) server_.serve(fds);
    }
  }
  LineServer server_;
  std::string error_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// An answer that makes CannedServer keep the connection open and say nothing.
const std::string kSilent = "<silent>";

// A raw Unix socket server that answers each request line with `answer(request_line)`, verbatim
// ("" hangs up, kSilent answers nothing).
class CannedServer {
 public:
  CannedServer(const std::string& path, std::function<std::string(const std::string&)> answer)
      : path_(path), answer_(std::move(answer)) {
    fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strncpy(address.sun_path, path.c_str(), sizeof address.sun_path - 1);
    unlink(path.c_str());
    if (bind(fd_, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0 ||
        listen(fd_, 4) != 0) {
      ADD_FAILURE() << "cannot listen on " << path << ": " << std::strerror(errno);
      return;
    }
    thread_ = std::thread([this] { serve_one(); });
  }
  ~CannedServer() {
    shutdown(fd_, SHUT_RDWR);
    if (thread_.joinable()) thread_.join();
    close(fd_);
    unlink(path_.c_str());
  }

 private:
  void serve_one() {
    const int client = accept(fd_, nullptr, nullptr);
    if (client < 0) return;
    std::string input;
    char buffer[4096];
    for (;;) {
      const ssize_t n = read(client, buffer, sizeof buffer);
      if (n <= 0) break;
      input.append(buffer, static_cast<size_t>(n));
      const size_t newline = input.find('\n');
      if (newline == std::string::npos) continue;
      const std::string reply = answer_(input.substr(0, newline));
      input.erase(0, newline + 1);
      if (reply.empty()) break;        // hang up without answering
      if (reply == kSilent) continue;  // read on, never answer
      [[maybe_unused]] const ssize_t sent = write(client, reply.data(), reply.size());
    }
    close(client);
  }
  std::string path_;
  std::function<std::string(const std::string&)> answer_;
  int fd_ = -1;
  std::thread thread_;
};

TEST(Envelope, ParsesAGoodRequestAndRefusesEachMalformedOneWithItsReason) {
  const Request good = parse_request(R"({"v":1,"id":7,"op":"hello","x":2})", "dataplane");
  EXPECT_EQ(good.error, "");
  EXPECT_EQ(good.id, 7);
  EXPECT_EQ(good.op, "hello");
  EXPECT_EQ(good.body["x"], 2);

  const struct {
    const char* line;
    const char* error;
  } bad[] = {
      {"{", "the request is not valid JSON"},
      {"[1]", "the request must be a JSON object"},
      {R"({"id":3,"op":"hello"})", "field \"v\" (the protocol version, an integer) is missing"},
      {R"({"v":"1","op":"hello"})", "field \"v\" (the protocol version, an integer) is missing"},
      {R"({"v":2,"id":3,"op":"hello"})",
       "protocol version 2 is not supported (this weir-control speaks 1)"},
      {R"({"v":1,"id":3})", "field \"op\" (the operation, a string) is missing"},
      {R"({"v":1,"id":3,"op":5})", "field \"op\" (the operation, a string) is missing"},
  };
  for (const auto& c : bad) {
    const Request r = parse_request(c.line, "weir-control");
    EXPECT_EQ(r.error, c.error) << c.line;
  }
  // The id is echoed whenever it could be read, so the client can match the refusal.
  EXPECT_EQ(parse_request(R"({"v":2,"id":3,"op":"x"})", "x").id, 3);
  EXPECT_TRUE(parse_request("{", "x").id.is_null());
  EXPECT_EQ(error_reply(3, "why"),
            (json{{"v", kProtocolVersion}, {"id", 3}, {"ok", false}, {"error", "why"}}));
}

TEST(LineClient, CallsARealServerWithFreshIdsOnOneConnection) {
  const std::string path = socket_path("roundtrip");
  ServedLineServer server(path, [](std::string_view line) {
    const Request r = parse_request(line, "test");
    if (!r.error.empty()) return error_line(r.id, r.error);
    json reply = ok_reply(r.id);
    reply["op"] = r.op;
    return reply.dump();
  });
  ASSERT_EQ(server.error(), "");
  LineClient client(path, "the test server", 2s);
  std::string error;
  for (uint64_t id = 1; id <= 3; ++id) {
    const auto reply = client.call({{"op", "ping"}}, error);
    ASSERT_TRUE(reply) << error;
    EXPECT_EQ((*reply)["id"], id);
    EXPECT_EQ((*reply)["op"], "ping");
    EXPECT_EQ((*reply)["ok"], true);
  }
  EXPECT_EQ(client.connects(), 1u) << "calls share one connection";
  // The ordered flavour (weirctl's) goes through the same client.
  const auto ordered = client.call(nlohmann::ordered_json{{"op", "x"}}, error);
  ASSERT_TRUE(ordered) << error;
  EXPECT_EQ((*ordered)["op"], "x");
}

TEST(LineClient, RefusesRepliesThatBreakTheEnvelopeAndNamesThePeer) {
  const struct {
    const char* name;
    std::string reply;
    const char* error;
  } cases[] = {
      {"other_id",
       R"({"v":1,"id":9,"ok":true})"
       "\n",
       "the dataplane answered another request (id 9)"},
      {"other_version",
       R"({"v":2,"id":1,"ok":true})"
       "\n",
       "the dataplane answered in protocol version 2; this side speaks 1"},
      {"no_ok",
       R"({"v":1,"id":1})"
       "\n",
       "the dataplane's reply has no \"ok\""},
      {"not_json", "nonsense\n", "the dataplane's reply is not JSON"},
      {"not_object", "[1]\n", "the dataplane's reply is not a JSON object"},
      {"hang_up", "", "the dataplane closed the connection without replying"},
  };
  for (const auto& c : cases) {
    const std::string path = socket_path(c.name);
    CannedServer server(path, [&](const std::string&) { return c.reply; });
    LineClient client(path, "the dataplane", 2s);
    std::string error;
    EXPECT_FALSE(client.call({{"op", "hello"}}, error)) << c.name;
    EXPECT_EQ(error, c.error) << c.name;
    EXPECT_FALSE(client.connected()) << c.name << ": a failed call drops the connection";
  }
}

TEST(LineClient, SaysWhenNothingListensAndWhenNoReplyComesInTime) {
  const std::string missing = socket_path("missing");
  unlink(missing.c_str());
  LineClient absent(missing, "weir-control", 1s);
  std::string error;
  EXPECT_FALSE(absent.call({{"op", "status"}}, error));
  EXPECT_EQ(error, "weir-control is not running (no socket at " + missing + ")");

  const std::string silent_path = socket_path("silent");
  std::atomic<int> requests{0};
  CannedServer silent(silent_path, [&](const std::string&) {
    ++requests;
    return kSilent;
  });
  LineClient client(silent_path, "weir-control", 300ms);
  EXPECT_FALSE(client.call({{"op", "status"}}, error));
  EXPECT_EQ(requests.load(), 1);
  EXPECT_EQ(error, "no reply from weir-control at " + silent_path + " within 300 ms");
  EXPECT_FALSE(client.connected());
}

TEST(LineServer, TellsClientsPastItsBoundsWhyAndKeepsServingTheOthers) {
  const std::string path = socket_path("bounds");
  ServedLineServer server(path, [](std::string_view) { return ok_reply(nullptr).dump(); });
  ASSERT_EQ(server.error(), "");
  // A request line longer than the limit is refused in the envelope and the client is closed.
  {
    const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strncpy(address.sun_path, path.c_str(), sizeof address.sun_path - 1);
    ASSERT_EQ(connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address), 0);
    const std::string flood(kMaxRequestLine + 4096, 'x');
    for (size_t sent = 0; sent < flood.size();) {
      const ssize_t n = send(fd, flood.data() + sent, flood.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) break;  // the server closed on us: fine
      sent += static_cast<size_t>(n);
    }
    std::string reply;
    char buffer[4096];
    for (ssize_t n; (n = read(fd, buffer, sizeof buffer)) > 0;) reply.append(buffer, n);
    close(fd);
    const json refusal = json::parse(reply.substr(0, reply.find('\n')));
    EXPECT_EQ(refusal["ok"], false);
    EXPECT_EQ(refusal["error"], "request longer than 1 MiB, or replies not read");
  }
  // The server still answers a well-behaved client.
  LineClient client(path, "test", 2s);
  std::string error;
  EXPECT_TRUE(client.call({{"op", "x"}}, error)) << error;
}

TEST(LineServer, AHandlerThatThrowsCostsOneErrorReplyNotTheServer) {
  const std::string path = socket_path("throws");
  ServedLineServer server(path, [](std::string_view line) -> std::string {
    const json request = json::parse(line);  // throws on bad JSON: the bug under test
    if (request.value("op", "") == "boom") throw std::runtime_error("boom");
    return ok_reply(request["id"]).dump();
  });
  ASSERT_EQ(server.error(), "");
  LineClient client(path, "test", 2s);
  std::string error;
  const auto refused = client.call({{"op", "boom"}}, error);
  ASSERT_TRUE(refused) << error;
  EXPECT_EQ((*refused)["ok"], false);
  EXPECT_EQ((*refused)["error"], "the request could not be handled: boom");
  const auto after = client.call({{"op", "fine"}}, error);
  ASSERT_TRUE(after) << error;
  EXPECT_EQ((*after)["ok"], true);
}

TEST(LineServer, ReplacesAStaleSocketButNeverALiveOneOrAnotherFile) {
  const std::string path = socket_path("owned");
  unlink(path.c_str());
  {
    // A socket file nobody serves: what a process that was killed leaves behind.
    const int stale = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strncpy(address.sun_path, path.c_str(), sizeof address.sun_path - 1);
    ASSERT_EQ(bind(stale, reinterpret_cast<const sockaddr*>(&address), sizeof address), 0);
    close(stale);
  }
  ServedLineServer first(path, [](std::string_view) { return ok_reply(nullptr).dump(); });
  ASSERT_EQ(first.error(), "") << "a stale socket is replaced";
  struct stat st {};
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u) << "only the owner may connect";

  LineServer second([](std::string_view) { return std::string(); });
  EXPECT_EQ(second.open(path, "control.socket"),
            "another process is serving " + path +
                " (control.socket; another dataplane or weir-control with the same socket?)");
  LineClient client(path, "test", 2s);
  std::string error;
  EXPECT_TRUE(client.call({{"op", "x"}}, error)) << "the first server still serves: " << error;

  const std::string file = socket_path("plain-file");
  { std::ofstream(file) << "keep me\n"; }
  LineServer third([](std::string_view) { return std::string(); });
  EXPECT_EQ(third.open(file, "control.socket"),
            file + " exists and is not a socket (control.socket); it is left alone");
  std::ifstream kept(file);
  std::string line;
  std::getline(kept, line);
  EXPECT_EQ(line, "keep me");
  unlink(file.c_str());
}

TEST(LineServer, AClientThatSendsNothingForTheIdleTimeoutIsToldAndClosed) {
  const std::string path = socket_path("idle");
  auto now = std::chrono::steady_clock::time_point{};
  LineServer server([](std::string_view) { return ok_reply(nullptr).dump(); });
  server.set_clock([&] { return now; });
  ASSERT_EQ(server.open(path, "control.socket"), "");
  const auto serve_once = [&] {
    std::vector<pollfd> fds;
    server.add_poll_fds(fds);
    poll(fds.data(), fds.size(), 0);
    server.serve(fds);
  };
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::strncpy(address.sun_path, path.c_str(), sizeof address.sun_path - 1);
  ASSERT_EQ(connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address), 0);
  for (int i = 0; i < 100 && server.clients() == 0; ++i) serve_once();  // accept it
  ASSERT_EQ(server.clients(), 1u);
  now += LineServer::kIdleTimeout - std::chrono::milliseconds(1);
  serve_once();
  EXPECT_EQ(server.clients(), 1u) << "not idle yet";
  EXPECT_EQ(server.stats().clients_idle_closed, 0u);
  now += std::chrono::milliseconds(1);
  serve_once();
  EXPECT_EQ(server.clients(), 0u);
  EXPECT_EQ(server.stats().clients_idle_closed, 1u);
  std::string reply;
  char buffer[512];
  for (ssize_t n; (n = read(fd, buffer, sizeof buffer)) > 0;) reply.append(buffer, n);
  close(fd);
  EXPECT_EQ(json::parse(reply.substr(0, reply.find('\n')))["error"],
            "no request for 60 s; closing the connection");
}

// Connects a client to `path`; returns its descriptor.
int connect_to(const std::string& path) {
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::strncpy(address.sun_path, path.c_str(), sizeof address.sun_path - 1);
  EXPECT_EQ(connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address), 0);
  return fd;
}

// Serves `server` from this thread until `done` holds (at most 2 s of polls of 10 ms).
void serve_until(LineServer& server, const std::function<bool()>& done) {
  for (int i = 0; i < 200 && !done(); ++i) {
    std::vector<pollfd> fds;
    server.add_poll_fds(fds);
    poll(fds.data(), fds.size(), 10);
    server.serve(fds);
  }
}

// Everything the server sends `fd` until it closes, served meanwhile.
std::string read_until_closed(LineServer& server, int fd) {
  std::string text;
  bool closed = false;
  serve_until(server, [&] {
    char buffer[4096];
    for (;;) {
      const ssize_t n = recv(fd, buffer, sizeof buffer, MSG_DONTWAIT);
      if (n > 0) {
        text.append(buffer, static_cast<size_t>(n));
        continue;
      }
      closed = n == 0;
      return closed;
    }
  });
  EXPECT_TRUE(closed) << "the server did not close the connection";
  return text;
}

TEST(LineServer, CountsClientsTurnedAwayAndClosedAtItsBounds) {
  const std::string path = socket_path("counted");
  LineServer server([](std::string_view) { return ok_reply(nullptr).dump(); });
  ASSERT_EQ(server.open(path, "control.socket"), "");
  std::vector<int> held;
  for (size_t i = 0; i < LineServer::kMaxClients; ++i) held.push_back(connect_to(path));
  serve_until(server, [&] { return server.clients() == LineServer::kMaxClients; });
  ASSERT_EQ(server.clients(), LineServer::kMaxClients);
  EXPECT_EQ(server.stats().clients_refused, 0u);
  const int one_too_many = connect_to(path);
  const std::string busy = read_until_closed(server, one_too_many);
  close(one_too_many);
  EXPECT_EQ(json::parse(busy.substr(0, busy.find('\n')))["error"], "too many control clients");
  EXPECT_EQ(server.stats().clients_refused, 1u);
  EXPECT_EQ(server.clients(), LineServer::kMaxClients) << "the others are kept";

  // One of them sends a request line over the limit: closed, and counted as an overflow.
  const std::string flood(kMaxRequestLine + 4096, 'x');
  size_t sent = 0;
  serve_until(server, [&] {
    const ssize_t n =
        send(held[0], flood.data() + sent, flood.size() - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) sent += static_cast<size_t>(n);
    return sent == flood.size() || server.stats().clients_overflow_closed > 0;
  });
  const std::string refused = read_until_closed(server, held[0]);
  EXPECT_EQ(json::parse(refused.substr(0, refused.find('\n')))["error"],
            "request longer than 1 MiB, or replies not read");
  EXPECT_EQ(server.stats().clients_overflow_closed, 1u);
  EXPECT_EQ(server.stats().clients_idle_closed, 0u);
  for (const int fd : held) close(fd);
}

TEST(LineServer, SetsTheSocketsModeAndGroupBeforeItIsReachable) {
  const std::string path = socket_path("permissions");
  LineServer server([](std::string_view) { return ok_reply(nullptr).dump(); });
  const std::string own_group = std::to_string(getgid());
  ASSERT_EQ(server.open(path, "control.socket", {0640, own_group}), "");
  struct stat st {};
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0640u);
  EXPECT_EQ(st.st_gid, getgid());
  // No temporary name is left beside it.
  const std::filesystem::path directory = std::filesystem::path(path).parent_path();
  for (const auto& entry : std::filesystem::directory_iterator(directory)) {
    EXPECT_FALSE(entry.path().string().starts_with(path + ".")) << entry.path();
  }
  LineServer other([](std::string_view) { return std::string(); });
  const std::string unknown = socket_path("unknown-group");
  EXPECT_EQ(other.open(unknown, "control.socket", {0660, "no-such-group-x"}),
            "no group named \"no-such-group-x\" for control socket " + unknown +
                " (control.socket.group)");
  EXPECT_NE(access(unknown.c_str(), F_OK), 0) << "nothing is created when the group is wrong";
}

TEST(LineServer, AReadOnlySocketAnswersQueriesAndRefusesEverythingElse) {
  const std::string path = socket_path("read-only");
  std::vector<std::string> handled;
  LineServer server([&](std::string_view line) {
    handled.emplace_back(line);
    const Request request = parse_request(line, "test");
    if (!request.error.empty()) return error_line(request.id, request.error);
    return ok_reply(request.id).dump();
  });
  server.set_read_only({"status", "backends"});
  ASSERT_EQ(server.open(path, "control.read_only_socket"), "");
  const int fd = connect_to(path);
  const std::string requests =
      "{\"v\":1,\"id\":1,\"op\":\"status\"}\n"
      "{\"v\":1,\"id\":2,\"op\":\"set\",\"pool\":\"app\",\"backend\":\"b1\",\"state\":\"down\"}\n"
      "{\"v\":1,\"id\":3,\"op\":\"no-such-op\"}\n"
      "{\"v\":\"1\",\"id\":4,\"op\":\"set\"}\n"
      "{\"v\":1,\"id\":5,\"op\":\"backends\"}\n";
  ASSERT_EQ(send(fd, requests.data(), requests.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(requests.size()));
  shutdown(fd, SHUT_WR);
  const std::string replies = read_until_closed(server, fd);
  close(fd);
  std::vector<json> answers;
  for (size_t start = 0, end; (end = replies.find('\n', start)) != std::string::npos;
       start = end + 1) {
    answers.push_back(json::parse(replies.substr(start, end - start)));
  }
  ASSERT_EQ(answers.size(), 5u) << replies;
  EXPECT_EQ(answers[0]["ok"], true);
  EXPECT_EQ(answers[1]["ok"], false);
  EXPECT_EQ(answers[1]["id"], 2);
  EXPECT_EQ(answers[1]["error"],
            "\"set\" refused: this socket is read-only (level read-only) and answers only "
            "status, backends; use the admin socket");
  EXPECT_EQ(answers[2]["ok"], false);
  EXPECT_NE(answers[2]["error"].get<std::string>().find("\"no-such-op\" refused"),
            std::string::npos);
  // A malformed request reaches the handler, which says what is wrong with it.
  EXPECT_EQ(answers[3]["ok"], false);
  EXPECT_NE(answers[3]["error"].get<std::string>().find("field \"v\""), std::string::npos);
  EXPECT_EQ(answers[4]["ok"], true);
  EXPECT_EQ(server.stats().read_only_refused, 2u);
  ASSERT_EQ(handled.size(), 3u) << "the refused requests never reach the handler";
  EXPECT_NE(handled[1].find("\"v\":\"1\""), std::string::npos);
}

TEST(LineServer, OpenNamesTheSettingWhenItCannotListen) {
  LineServer server([](std::string_view) { return std::string(); });
  const std::string error =
      server.open("/nonexistent-dir-for-weir/x.sock", "dataplane.control_socket");
  EXPECT_NE(error.find("dataplane.control_socket; does its directory exist?"), std::string::npos)
      << error;
}

}  // namespace
}  // namespace weir::channel
