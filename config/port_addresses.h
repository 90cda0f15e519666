// The addresses of dataplane ports: the checks every host address gets, and a port's
// source_addresses (more local addresses for backend connections, DPVS's `laddr`), read and
// checked against the port and then across ports and listeners.
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "config/config.h"
#include "config/yaml_reader.h"

namespace weir::config {

uint32_t prefix_mask(uint8_t length);
// Why `address` cannot be a host address Weir owns or talks to, or nullopt if it can.
std::optional<std::string> unusable_host_address(Ipv4Address address);
// unusable_host_address, and the subnet's network and broadcast addresses.
void check_host_address(Diagnostics& d, const YAML::Mark& mark, const std::string& path,
                        Ipv4Address address, uint8_t prefix_length);

// Where a source address was written: its position and its path.
struct WrittenAt {
  YAML::Mark mark;
  std::string path;
};

// Reads `node` (a list) into port.source_addresses, after the port's address and gateway were
// read: each a host address on the port's subnet, not the port's address or its gateway, none
// twice, at most kMaxSourceAddresses. Returns where each one kept was written (for the checks
// across ports).
std::vector<WrittenAt> read_source_addresses(Diagnostics& d, const YAML::Node& node,
                                             const std::string& path, Port& port);

// Across the file: no source address is another port's address or source address, or a
// listener's address. `written[i][j]` is where ports[i].source_addresses[j] was written.
void check_source_addresses_across(Diagnostics& d, const std::vector<Port>& ports,
                                   const std::vector<std::vector<WrittenAt>>& written,
                                   const std::vector<Listener>& listeners);

}  // namespace weir::config
