// The part of the schema about a pool's active health check (docs/configuration.md,
// `pools[].health`): its type, timing, and for http the request line and accepted statuses.
#pragma once

#include <yaml-cpp/yaml.h>

#include <string>

#include "config/config.h"
#include "config/yaml_reader.h"

namespace weir::config {

// `pools[i].health`, at `path`.
void read_health(Diagnostics& diagnostics, const YAML::Node& node, const std::string& path,
                 Health& health);

}  // namespace weir::config
