// The parts of the schema about the daemons' Unix sockets and weir-control's own section
// (docs/configuration.md, `dataplane.control_socket` and `control`): a socket is a path, or a map
// with its path, mode, group and (weir-control's admin socket) level, HAProxy's
// `stats socket PATH mode 660 group G level L`.
#pragma once

#include <yaml-cpp/yaml.h>

#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "config/yaml_reader.h"

namespace weir::config {

// A socket key the file gives, for the check that no two sockets share a path.
struct SocketGiven {
  std::string key;  // "dataplane.control_socket", "control.socket", "control.read_only_socket"
  YAML::Mark mark;
};

enum class LevelKey { refused, accepted };

// `key` of `map`, if present: a path, or {path, mode, group[, level]}. Fills `path` and `access`
// and records the key in `given`.
void read_socket_field(MapReader& map, std::string_view key, LevelKey level_key, std::string& path,
                       SocketAccess& access, std::vector<SocketGiven>& given);

// `control:` at the top level.
void read_control_section(Diagnostics& diagnostics, const YAML::Node& node, Control& control,
                          std::vector<SocketGiven>& given);

// No two sockets at one path: the dataplane's, weir-control's admin socket and its read-only one
// (one of them would take the other's place, or neither would start). Reported at the later key.
void check_socket_paths(Diagnostics& diagnostics, const Config& config,
                        const std::vector<SocketGiven>& given);

}  // namespace weir::config
