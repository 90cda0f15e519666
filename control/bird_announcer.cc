// See bird_announcer.h.
#include "control/bird_announcer.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <set>

namespace weir::control {

std::vector<net::Ipv4Address> vips_to_announce(
    const config::Config& config, const AnnounceState& state,
    const std::function<bool(size_t pool)>& pool_has_backend_up) {
  if (!state.dataplane_up || state.box_drained || state.stopping) return {};
  std::set<net::Ipv4Address> vips;
  for (const config::Listener& l : config.listeners) {
    if (l.pool && pool_has_backend_up(*l.pool)) vips.insert(l.address);
  }
  return {vips.begin(), vips.end()};
}

std::string bird_routes(const std::vector<net::Ipv4Address>& vips) {
  std::string text =
      "# Written by weir-control (cluster.bird.routes_file): the VIPs this box announces.\n"
      "# Included at the top level of BIRD's configuration; do not edit.\n"
      "protocol static weir_vips {\n"
      "  ipv4;\n";
  for (const net::Ipv4Address& vip : vips)
    text += "  route " + vip.to_string() + "/32 blackhole;\n";
  return text + "}\n";
}

namespace {

// A BIRD reply line: "NNNN-text" (more follows), "NNNN text" (the last), or " text" (more of the
// previous). Codes 0xxx are success, 8xxx and 9xxx errors (BIRD's doc/reply_codes).
struct ReplyLine {
  int code = -1;  // -1: a continuation without a code
  bool last = false;
  std::string text;
};

ReplyLine parse_reply_line(const std::string& line) {
  ReplyLine r;
  if (line.size() >= 5 && std::all_of(line.begin(), line.begin() + 4, ::isdigit) &&
      (line[4] == ' ' || line[4] == '-')) {
    r.code = std::stoi(line.substr(0, 4));
    r.last = line[4] == ' ';
    r.text = line.substr(5);
  } else {
    r.text = line.empty() ? line : line.substr(1);
  }
  return r;
}

class BirdSocket {
 public:
  ~BirdSocket() {
    if (fd_ >= 0) close(fd_);
  }
  std::string connect_to(const std::string& path) {
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    if (path.size() >= sizeof address.sun_path) return path + ": the path is too long";
    std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
    fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0 || connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0)
      return path + ": " + std::strerror(errno);
    return "";
  }
  // The next line, or nullopt with `error` set when none comes within the deadline.
  std::optional<std::string> line(std::chrono::steady_clock::time_point deadline,
                                  std::string& error) {
    for (;;) {
      if (const size_t end = buffer_.find('\n'); end != std::string::npos) {
        std::string line = buffer_.substr(0, end);
        buffer_.erase(0, end + 1);
        return line;
      }
      if (buffer_.size() > 65536) {
        error = "a reply line longer than 64 KiB";
        return std::nullopt;
      }
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      pollfd p{fd_, POLLIN, 0};
      if (left.count() <= 0 || poll(&p, 1, static_cast<int>(left.count())) <= 0) {
        error = "BIRD did not answer in time";
        return std::nullopt;
      }
      char chunk[4096];
      const ssize_t n = read(fd_, chunk, sizeof chunk);
      if (n <= 0) {
        error = n == 0 ? "BIRD closed the connection" : std::strerror(errno);
        return std::nullopt;
      }
      buffer_.append(chunk, static_cast<size_t>(n));
    }
  }
  bool send_line(const std::string& text) {
    const std::string line = text + "\n";
    return send(fd_, line.data(), line.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(line.size());
  }

 private:
  int fd_ = -1;
  std::string buffer_;
};

// Reads one whole reply; returns its last line's code and the text of every line.
std::string read_reply(BirdSocket& bird, std::chrono::steady_clock::time_point deadline,
                       int& code) {
  std::string text, error;
  bool coded = false;
  for (;;) {
    const auto line = bird.line(deadline, error);
    if (!line) {
      code = -1;
      return error;
    }
    const ReplyLine r = parse_reply_line(*line);
    if (r.code < 0 && !coded) {  // a reply starts with a coded line
      code = -1;
      return "not a BIRD reply: " + line->substr(0, 80);
    }
    coded = true;
    if (!text.empty() && !r.text.empty()) text += "; ";
    text += r.text;
    if (r.code >= 0 && r.last) {
      code = r.code;
      return text;
    }
  }
}

}  // namespace

std::string bird_configure(const std::string& socket_path, int timeout_ms) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  BirdSocket bird;
  if (std::string error = bird.connect_to(socket_path); !error.empty()) return error;
  int code = -1;
  std::string text = read_reply(bird, deadline, code);  // the greeting: 0001 BIRD x ready.
  if (code != 1) return code < 0 ? text : "unexpected greeting from BIRD: " + text;
  if (!bird.send_line("configure"))
    return "could not send to BIRD: " + std::string(strerror(errno));
  text = read_reply(bird, deadline, code);
  // 3 reconfigured, 4 in progress, 5 queued after one in progress, 18 confirmed, 19 nothing to do.
  if (code == 3 || code == 4 || code == 5 || code == 18 || code == 19) return "";
  return code < 0 ? text : "BIRD refused the configuration: " + text;
}

std::string BirdAnnouncer::announce(const std::vector<net::Ipv4Address>& vips) {
  if (in_sync_ && vips == announced_) return "";
  in_sync_ = false;
  if (!file_written_ || vips != written_) {
    const std::string temporary = bird_.routes_file + ".tmp";
    {
      std::ofstream out(temporary, std::ios::trunc);
      out << bird_routes(vips);
      if (!out.flush()) {
        ++failures_;
        return temporary + ": " + std::strerror(errno);
      }
    }
    if (std::rename(temporary.c_str(), bird_.routes_file.c_str()) != 0) {
      ++failures_;
      return bird_.routes_file + ": " + std::strerror(errno);
    }
    written_ = vips;
    file_written_ = true;
  }
  if (std::string error = bird_configure(bird_.socket, timeout_ms_); !error.empty()) {
    ++failures_;
    return error;
  }
  ++reconfigurations_;
  announced_ = vips;
  in_sync_ = true;
  return "";
}

}  // namespace weir::control
