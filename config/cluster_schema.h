// The `cluster` section of the schema (docs/configuration.md, docs/scale-out.md): this box's name
// and every box of the cluster, checked on their own and against this box's ports and listeners.
#pragma once

#include <yaml-cpp/yaml.h>

#include "config/config.h"
#include "config/yaml_reader.h"

namespace weir::config {

// Reads `cluster:` into config.cluster. Call after dataplane.ports and listeners are read: the
// peers' addresses are checked against them.
void read_cluster_section(Diagnostics& diagnostics, const YAML::Node& node, Config& config);

}  // namespace weir::config
