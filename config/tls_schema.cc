// The TLS parts of the schema: see tls_schema.h. docs/configuration.md documents the same rules.
#include "config/tls_schema.h"

#include <algorithm>
#include <cctype>
#include <set>

#include "config/field_readers.h"

namespace weir::config {

namespace {

Place place_of(const YAML::Mark& mark, std::string path) {
  return Place{mark.line >= 0 ? mark.line + 1 : 1, mark.column >= 0 ? mark.column + 1 : 1,
               std::move(path)};
}

// An absolute path to a file (the daemons run from /, so a relative path would mean nothing).
bool read_file_path(MapReader& map, std::string_view key, std::string& out, Place& at,
                    bool required) {
  if (!read_string_field(map, key, out, required)) return false;
  const YAML::Mark mark = map.take(key)->Mark();
  at = place_of(mark, map.path_of(key));
  if (out.front() != '/') {
    map.diagnostics().error(mark, map.path_of(key), "\"" + out + "\" must be an absolute path");
    return false;
  }
  return true;
}

void certificate(Diagnostics& d, const YAML::Node& node, const std::string& path,
                 ListenerTls& tls) {
  MapReader map(d, node, path);
  if (!map.is_map()) return;
  TlsCertificate entry;
  read_file_path(map, "cert", entry.cert, entry.cert_at, true);
  read_file_path(map, "key", entry.key, entry.key_at, true);
  map.finish();
  tls.certificates.push_back(std::move(entry));
}

}  // namespace

std::string server_name_problem(std::string_view name) {
  std::string_view rest = name;
  if (rest.starts_with("*.")) rest.remove_prefix(2);
  if (rest.empty() || rest.size() > 253) return "is not 1-253 characters long";
  if (rest.back() == '.') return "ends with a dot; SNI carries names without it (RFC 6066 3)";
  size_t label_start = 0;
  for (size_t i = 0; i <= rest.size(); ++i) {
    if (i == rest.size() || rest[i] == '.') {
      const std::string_view label = rest.substr(label_start, i - label_start);
      if (label.empty() || label.size() > 63) return "has an empty label or one over 63 bytes";
      if (label.front() == '-' || label.back() == '-')
        return "has a label that starts or ends with '-'";
      label_start = i + 1;
      continue;
    }
    const unsigned char c = static_cast<unsigned char>(rest[i]);
    if (!std::isalnum(c) && c != '-')
      return "is not a host name: use letters, digits, '-' and '.' (and a leading \"*.\")";
  }
  return "";
}

void read_tls_section(Diagnostics& d, const YAML::Node& node, Tls& tls) {
  MapReader map(d, node, "tls");
  if (!map.is_map()) return;
  tls.configured = true;
  read_uint_field(map, "workers", tls.workers, 1, kMaxTlsWorkers);
  read_uint_field(map, "ticket_key_rotation_s", tls.ticket_key_rotation_s, 60, 7 * 86'400);
  if (std::string file;
      read_file_path(map, "ticket_keys_file", file, tls.ticket_keys_file_at, false))
    tls.ticket_keys_file = file;
  if (std::string user; read_string_field(map, "user", user)) tls.user = user;
  map.finish();
}

void read_listener_tls(Diagnostics& d, const YAML::Node& node, const std::string& path,
                       ListenerTls& tls, std::vector<SniPoolReference>& pools) {
  MapReader map(d, node, path);
  if (!map.is_map()) return;
  read_list(map, "certificates", true, [&](const YAML::Node& n, const std::string& entry_path) {
    certificate(d, n, entry_path, tls);
  });
  if (tls.certificates.size() > kMaxCertificatesPerListener) {
    d.error(map.take("certificates")->Mark(), map.path_of("certificates"),
            std::to_string(tls.certificates.size()) + " certificates; a listener holds at most " +
                std::to_string(kMaxCertificatesPerListener));
  }
  read_choice_field(map, "inner", tls.inner,
                    {{"tcp", TlsInner::tcp}, {"framed", TlsInner::framed}});
  if (const auto sni = map.take("sni_pools")) {
    const std::string sni_path = map.path_of("sni_pools");
    if (!sni->IsMap()) {
      d.error(sni->Mark(), sni_path, "expected a map of server name -> pool name");
    } else if (sni->size() > kMaxSniPoolsPerListener) {
      d.error(sni->Mark(), sni_path,
              std::to_string(sni->size()) + " server names; a listener routes at most " +
                  std::to_string(kMaxSniPoolsPerListener));
    } else {
      // MapReader reports duplicate keys; the names are compared again in lower case.
      MapReader names(d, *sni, sni_path);
      for (const auto& entry : *sni) {
        if (entry.first.IsScalar()) names.take(entry.first.Scalar());
      }
      names.finish();
      std::set<std::string> seen, seen_raw;
      for (const auto& entry : *sni) {
        const std::string raw = entry.first.IsScalar() ? entry.first.Scalar() : "";
        std::string name = raw;
        std::transform(name.begin(), name.end(), name.begin(),
                       [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
        const std::string entry_path = child_path(sni_path, raw);
        if (!seen_raw.insert(raw).second) {
          continue;  // a duplicate key: MapReader reported it
        } else if (const std::string problem = server_name_problem(name); !problem.empty()) {
          d.error(entry.first.Mark(), entry_path, "\"" + raw + "\" " + problem);
        } else if (!seen.insert(name).second) {
          d.error(entry.first.Mark(), entry_path,
                  "\"" + raw + "\" is given twice (server names are compared in lower case)");
        } else if (const auto pool = read_string(d, entry.second, entry_path)) {
          pools.push_back({tls.sni_pools.size(), *pool, entry.second.Mark(), entry_path});
          tls.sni_pools.push_back(SniPool{name, 0});
        }
      }
    }
  }
  read_choice_field(map, "min_version", tls.min_version,
                    {{"1.2", TlsVersion::v1_2}, {"1.3", TlsVersion::v1_3}});
  if (std::string ca; read_file_path(map, "client_ca", ca, tls.client_ca_at, false))
    tls.client_ca = ca;
  read_uint_field(map, "handshake_timeout_ms", tls.handshake_timeout_ms, 100, 600'000);
  map.finish();
}

}  // namespace weir::config
