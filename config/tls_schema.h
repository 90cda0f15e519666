// The TLS parts of the schema (docs/configuration.md, `tls` and `listeners[].tls`): the top-level
// section read by weir-control and the workers, and a tls listener's own map. Certificate files
// are not opened here (config/certificate_check.h does that for --check-config): the running
// dataplane loads this configuration too, and it never reads a private key.
#pragma once

#include <yaml-cpp/yaml.h>

#include <string>
#include <vector>

#include "config/config.h"
#include "config/yaml_reader.h"

namespace weir::config {

// `tls:` at the top level.
void read_tls_section(Diagnostics& diagnostics, const YAML::Node& node, Tls& tls);

// A pool named in sni_pools, resolved with the listener's own pool once every pool is read.
struct SniPoolReference {
  size_t entry = 0;  // index into ListenerTls::sni_pools
  std::string pool;
  YAML::Mark mark;
  std::string path;
};

// `listeners[i].tls`, at `path`.
void read_listener_tls(Diagnostics& diagnostics, const YAML::Node& node, const std::string& path,
                       ListenerTls& tls, std::vector<SniPoolReference>& pools);

// Why `name` cannot be an SNI server name (RFC 6066 3: a DNS host name, no trailing dot; a
// leading "*." for one label), or "".
std::string server_name_problem(std::string_view name);

}  // namespace weir::config
