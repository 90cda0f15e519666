#include "config/port_addresses.h"

#include <map>

namespace weir::config {

uint32_t prefix_mask(uint8_t length) {
  return length == 0 ? 0 : ~uint32_t{0} << (32 - length);
}

std::optional<std::string> unusable_host_address(Ipv4Address address) {
  const uint32_t value = address.value();
  if (value >> 24 == 0) return "is in 0.0.0.0/8 (\"this network\", RFC 1122 3.2.1.3)";
  if (value >> 24 == 127) return "is a loopback address (127.0.0.0/8)";
  if (value >> 28 == 0xe) return "is a multicast address (224.0.0.0/4)";
  if (value >> 28 == 0xf) return "is reserved or broadcast (240.0.0.0/4)";
  return std::nullopt;
}

void check_host_address(Diagnostics& d, const YAML::Mark& mark, const std::string& path,
                        Ipv4Address address, uint8_t prefix_length) {
  if (auto why = unusable_host_address(address)) {
    d.error(mark, path, address.to_string() + " " + *why + "; use a unicast host address");
    return;
  }
  // RFC 3021 makes both addresses of a /31 usable; shorter prefixes reserve the first and last.
  if (prefix_length <= 30) {
    const uint32_t host = address.value() & ~prefix_mask(prefix_length);
    if (host == 0 || host == ~prefix_mask(prefix_length)) {
      d.error(mark, path,
              address.to_string() + "/" + std::to_string(prefix_length) + " is the subnet's " +
                  (host == 0 ? "network" : "broadcast") + " address; use a host address");
    }
  }
}

std::vector<WrittenAt> read_source_addresses(Diagnostics& d, const YAML::Node& node,
                                             const std::string& path, Port& port) {
  std::vector<WrittenAt> marks;
  if (!node.IsSequence()) {
    d.error(node.Mark(), path, "expected a list of IPv4 addresses");
    return marks;
  }
  if (node.size() > kMaxSourceAddresses) {
    d.error(node.Mark(), path,
            std::to_string(node.size()) + " addresses; a port holds at most " +
                std::to_string(kMaxSourceAddresses));
  }
  const uint32_t mask = prefix_mask(port.prefix_length);
  const std::string subnet = Ipv4Address(port.address.value() & mask).to_string() + "/" +
                             std::to_string(port.prefix_length);
  std::map<Ipv4Address, size_t> seen;
  for (size_t i = 0; i < node.size(); ++i) {
    const std::string entry_path = index_path(path, i);
    const YAML::Mark mark = node[i].Mark();
    const auto address = read_ipv4(d, node[i], entry_path);
    if (!address) continue;
    const size_t errors = d.count();
    check_host_address(d, mark, entry_path, *address, port.prefix_length);
    if (d.count() != errors) continue;
    if (port.prefix_length > 0 && (address->value() & mask) != (port.address.value() & mask)) {
      d.error(mark, entry_path,
              address->to_string() + " is not on the port's subnet " + subnet +
                  "; backends answer a source address through ARP on this link");
    } else if (*address == port.address) {
      d.error(mark, entry_path,
              "is the port's own address, which is a source already; list only the others");
    } else if (port.gateway && *address == *port.gateway) {
      d.error(mark, entry_path, "is the port's gateway; a source address must be Weir's own");
    } else if (!seen.emplace(*address, i).second) {
      d.error(mark, entry_path,
              address->to_string() + " is listed twice (also " + index_path(path, seen[*address]) +
                  ")");
    } else {
      port.source_addresses.push_back(*address);
      marks.push_back(WrittenAt{mark, entry_path});
    }
  }
  return marks;
}

void check_source_addresses_across(Diagnostics& d, const std::vector<Port>& ports,
                                   const std::vector<std::vector<WrittenAt>>& written,
                                   const std::vector<Listener>& listeners) {
  // Every address a port owns, with the path that names it.
  std::map<Ipv4Address, std::string> owner;
  for (size_t i = 0; i < ports.size(); ++i) {
    if (ports[i].prefix_length > 0) {
      owner.emplace(ports[i].address, index_path("dataplane.ports", i) + ".address");
    }
  }
  std::map<Ipv4Address, size_t> listener_of;
  for (size_t i = 0; i < listeners.size(); ++i) listener_of.emplace(listeners[i].address, i);
  for (size_t i = 0; i < ports.size(); ++i) {
    for (size_t j = 0; j < ports[i].source_addresses.size() && j < written[i].size(); ++j) {
      const Ipv4Address address = ports[i].source_addresses[j];
      const std::string& entry_path = written[i][j].path;
      if (const auto found = listener_of.find(address); found != listener_of.end()) {
        d.error(written[i][j].mark, entry_path,
                address.to_string() + " is the address of listeners[" +
                    std::to_string(found->second) +
                    "]; source addresses are for backend connections only");
      } else if (const auto [it, added] = owner.emplace(address, entry_path); !added) {
        d.error(written[i][j].mark, entry_path,
                address.to_string() + " is already " + it->second + "; each address is one port's");
      }
    }
  }
}

}  // namespace weir::config
