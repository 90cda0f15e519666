// Sockets and the `control` section: see control_schema.h. docs/configuration.md documents the
// same rules.
#include "config/control_schema.h"

#include <grp.h>

#include <algorithm>
#include <map>
#include <optional>

#include "common/channel/socket_path.h"
#include "config/field_readers.h"

namespace weir::config {

namespace {

void check_path(Diagnostics& d, const YAML::Mark& mark, const std::string& where,
                const std::string& path) {
  if (path.front() != '/') {
    d.error(mark, where, "\"" + path + "\" must be an absolute path");
  } else if (path.size() > channel::kMaxSocketPath) {
    d.error(mark, where,
            "is " + std::to_string(path.size()) +
                " bytes long; a control socket path holds at most " +
                std::to_string(channel::kMaxSocketPath));
  }
}

// "0660", "660" or "0o660": octal permission bits, at most 0777 (no setuid, setgid or sticky bit,
// which mean nothing on a socket).
std::optional<uint32_t> read_mode(Diagnostics& d, const YAML::Node& node, const std::string& path) {
  const std::string expected =
      "expected the socket's permission bits in octal, e.g. \"0660\" (at most 0777)";
  if (!node.IsScalar()) {
    d.error(node.Mark(), path, expected);
    return std::nullopt;
  }
  std::string_view text = node.Scalar();
  if (text.starts_with("0o")) text.remove_prefix(2);
  uint32_t mode = 0;
  bool ok = !text.empty() && text.size() <= 4;
  for (const char c : text) {
    ok = ok && c >= '0' && c <= '7';
    mode = mode * 8 + static_cast<uint32_t>(c - '0');
  }
  if (!ok || mode > 0777) {
    d.error(node.Mark(), path, expected);
    return std::nullopt;
  }
  return mode;
}

// A group that exists on this host, by name or number: the daemon sets it with chown at start,
// and a group that is not there would stop it then.
std::optional<std::string> read_group(Diagnostics& d, const YAML::Node& node,
                                      const std::string& path) {
  const std::optional<std::string> group = read_string(d, node, path);
  if (!group) return std::nullopt;
  const bool numeric =
      std::all_of(group->begin(), group->end(), [](char c) { return c >= '0' && c <= '9'; });
  // A gid may have no name; a name must resolve (getgrnam reads /etc/group or NSS).
  if (!numeric && getgrnam(group->c_str()) == nullptr) {
    d.error(node.Mark(), path, "no group named \"" + *group + "\" on this host");
    return std::nullopt;
  }
  if (numeric && group->size() > 9) {
    d.error(node.Mark(), path, "group id " + *group + " is out of range");
    return std::nullopt;
  }
  return group;
}

}  // namespace

std::string_view name_of(SocketLevel level) {
  return level == SocketLevel::admin ? "admin" : "read-only";
}

void read_socket_field(MapReader& map, std::string_view key, LevelKey level_key, std::string& path,
                       SocketAccess& access, std::vector<SocketGiven>& given) {
  const auto node = map.take(key);
  if (!node) return;
  Diagnostics& d = map.diagnostics();
  const std::string where = map.path_of(key);
  given.push_back(SocketGiven{where, node->Mark()});
  if (!node->IsMap()) {
    if (auto value = read_string(d, *node, where)) {
      path = *value;
      check_path(d, node->Mark(), where, path);
    }
    return;
  }
  MapReader socket(d, *node, where);
  if (const auto path_node = socket.require("path", "the socket's absolute path")) {
    if (auto value = read_string(d, *path_node, socket.path_of("path"))) {
      path = *value;
      check_path(d, path_node->Mark(), socket.path_of("path"), path);
    }
  }
  if (const auto mode = socket.take("mode")) {
    if (auto value = read_mode(d, *mode, socket.path_of("mode"))) access.mode = *value;
  }
  if (const auto group = socket.take("group")) {
    if (auto value = read_group(d, *group, socket.path_of("group"))) access.group = *value;
  }
  if (level_key == LevelKey::accepted) {
    read_choice_field(socket, "level", access.level,
                      {{"admin", SocketLevel::admin}, {"read-only", SocketLevel::read_only}});
  }
  socket.finish();
}

void read_control_section(Diagnostics& d, const YAML::Node& node, Control& control,
                          std::vector<SocketGiven>& given) {
  MapReader map(d, node, "control");
  if (!map.is_map()) return;
  read_socket_field(map, "socket", LevelKey::accepted, control.socket, control.socket_access,
                    given);
  std::string read_only;
  read_socket_field(map, "read_only_socket", LevelKey::refused, read_only,
                    control.read_only_socket_access, given);
  if (!read_only.empty()) control.read_only_socket = read_only;
  if (read_string_field(map, "state_file", control.state_file) &&
      control.state_file.front() != '/') {
    d.error(map.take("state_file")->Mark(), map.path_of("state_file"),
            "\"" + control.state_file + "\" must be an absolute path");
  }
  if (const auto metrics_node = map.take("metrics")) {
    MapReader metrics(d, *metrics_node, map.path_of("metrics"));
    if (metrics.is_map()) {
      if (const auto listen = metrics.take("listen")) {
        if (auto endpoint = read_ipv4_endpoint(d, *listen, metrics.path_of("listen"))) {
          control.metrics.listen = Endpoint{endpoint->first, endpoint->second};
        }
      }
      metrics.finish();
    }
  }
  map.finish();
}

void check_socket_paths(Diagnostics& d, const Config& config,
                        const std::vector<SocketGiven>& given) {
  struct Socket {
    std::string key;
    const std::string* path;
  };
  std::vector<Socket> sockets{{"dataplane.control_socket", &config.dataplane.control_socket},
                              {"control.socket", &config.control.socket}};
  if (config.control.read_only_socket)
    sockets.push_back({"control.read_only_socket", &*config.control.read_only_socket});
  auto given_at = [&](const std::string& key) {
    return std::find_if(given.begin(), given.end(),
                        [&](const SocketGiven& g) { return g.key == key; });
  };
  for (size_t i = 0; i < sockets.size(); ++i) {
    for (size_t j = i + 1; j < sockets.size(); ++j) {
      if (*sockets[i].path != *sockets[j].path) continue;
      // At the later of the two keys given (at least one is: the defaults differ).
      auto first = given_at(sockets[i].key), second = given_at(sockets[j].key);
      const SocketGiven& at = first == given.end() ? *second
                              : second == given.end()
                                  ? *first
                                  : (std::make_pair(first->mark.line, first->mark.column) >
                                             std::make_pair(second->mark.line, second->mark.column)
                                         ? *first
                                         : *second);
      d.error(at.mark, at.key,
              "\"" + *sockets[i].path + "\" is both " + sockets[i].key + " and " + sockets[j].key +
                  "; the dataplane's control socket and weir-control's sockets must each have "
                  "their own path");
    }
  }
}

}  // namespace weir::config
