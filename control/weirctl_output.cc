// weirctl's output (weirctl_output.h): replies read leniently and printed as aligned tables.
#include "control/weirctl_output.h"

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <string>
#include <utility>
#include <vector>

namespace weir::weirctl {

const json& field(const json& object, const char* key) {
  static const json kNull;
  if (!object.is_object()) return kNull;
  const auto it = object.find(key);
  return it == object.end() ? kNull : *it;
}

std::string text(const json& value) {
  if (value.is_null()) return "-";
  if (value.is_string()) return value.get<std::string>();
  if (value.is_boolean()) return value.get<bool>() ? "yes" : "no";
  return value.dump(-1, ' ', false, json::error_handler_t::replace);
}

uint64_t count(const json& value) {
  if (value.is_number_unsigned()) return value.get<uint64_t>();
  if (value.is_number_integer() && value.get<int64_t>() > 0) {
    return static_cast<uint64_t>(value.get<int64_t>());
  }
  return 0;
}

uint64_t count(const json& object, const char* key) {
  return count(field(object, key));
}

namespace {

// The sum of every number in an object (e.g. the drop reasons).
uint64_t sum_of(const json& object) {
  uint64_t total = 0;
  if (object.is_object()) {
    for (const auto& [key, value] : object.items()) total += count(value);
  }
  return total;
}

std::string endpoint(const json& object) {
  const json& port = field(object, "port");
  if (port.is_null()) return text(field(object, "address"));
  return text(field(object, "address")) + ":" + text(port);
}

std::string utc_time(const json& unix_time) {
  if (!unix_time.is_number() || count(unix_time) == 0) return "never";
  const auto seconds = static_cast<time_t>(count(unix_time));
  tm parts{};
  if (gmtime_r(&seconds, &parts) == nullptr) return text(unix_time);
  char buffer[32];
  std::strftime(buffer, sizeof buffer, "%Y-%m-%d %H:%M:%S UTC", &parts);
  return buffer;
}

// Columns separated by two spaces; numbers right-aligned; no trailing blanks.
class Table {
 public:
  enum Align { left, right };
  struct Column {
    std::string header;
    Align align = left;
  };

  explicit Table(std::vector<Column> columns) : columns_(std::move(columns)) {}

  void add(std::vector<std::string> row) {
    row.resize(columns_.size(), "-");
    rows_.push_back(std::move(row));
  }
  bool empty() const { return rows_.empty(); }

  void print(bool headers = true) const {
    std::vector<size_t> widths(columns_.size(), 0);
    for (size_t c = 0; c < columns_.size(); ++c) {
      if (headers) widths[c] = columns_[c].header.size();
      for (const auto& row : rows_) widths[c] = std::max(widths[c], row[c].size());
    }
    if (headers) {
      std::vector<std::string> header_row;
      for (const auto& column : columns_) header_row.push_back(column.header);
      print_row(header_row, widths);
    }
    for (const auto& row : rows_) print_row(row, widths);
  }

 private:
  void print_row(const std::vector<std::string>& row, const std::vector<size_t>& widths) const {
    std::string line;
    for (size_t c = 0; c < row.size(); ++c) {
      if (c != 0) line += "  ";
      const std::string padding(widths[c] - row[c].size(), ' ');
      const bool last = c + 1 == row.size();
      if (columns_[c].align == right) {
        line += padding + row[c];
      } else {
        line += row[c];
        if (!last) line += padding;
      }
    }
    std::printf("%s\n", line.c_str());
  }

  std::vector<Column> columns_;
  std::vector<std::vector<std::string>> rows_;
};

std::string percent(uint64_t part, uint64_t whole) {
  if (whole == 0) return "-";
  char buffer[16];
  std::snprintf(buffer, sizeof buffer, "%.1f%%",
                100.0 * static_cast<double>(part) / static_cast<double>(whole));
  return buffer;
}

}  // namespace

void print_json(const json& value) {
  std::printf("%s\n", value.dump(2, ' ', false, json::error_handler_t::replace).c_str());
}

void print_status(const json& reply) {
  const json& dataplane = field(reply, "dataplane");
  const json& reloads = field(reply, "reloads");
  std::string dataplane_text = "not connected";
  if (field(dataplane, "connected") == true) {
    dataplane_text = "connected (pid " + text(field(dataplane, "pid")) + ", " +
                     text(field(dataplane, "workers")) + " workers, node_id " +
                     text(field(dataplane, "node_id")) + ")";
  }
  Table table({{"", Table::left}, {"", Table::left}});
  table.add({"dataplane", dataplane_text});
  table.add({"config", text(field(reply, "config"))});
  table.add({"reloads", std::to_string(count(reloads, "ok")) + " ok, " +
                            std::to_string(count(reloads, "failed")) + " failed, last success " +
                            utc_time(field(reloads, "last_success_unix"))});
  table.add({"health", std::to_string(count(field(reply, "health"), "checks")) + " checks"});
  std::string passive_down;
  size_t passive_tracked = 0;
  if (const json& passive = field(reply, "passive"); passive.is_array()) {
    for (const auto& p : passive) {
      ++passive_tracked;
      if (field(p, "down") == true)
        passive_down += (passive_down.empty() ? "" : ", ") + text(field(p, "pool")) + "/" +
                        text(field(p, "backend"));
    }
  }
  if (passive_tracked > 0)
    table.add({"passive", std::to_string(passive_tracked) + " backends observed, " +
                              (passive_down.empty() ? "none down" : "down: " + passive_down)});
  if (const json& box = field(reply, "box"); box.is_object())
    table.add({"box", field(box, "drained") == true
                          ? "drained (weirctl drain-box): listeners refuse new connections"
                          : "accepting"});
  // The peers' states this box computes its owner table over (docs/scale-out.md, "Membership"),
  // an operator's override marked with *.
  if (const json& cluster = field(reply, "cluster"); cluster.is_object()) {
    std::string peers;
    const json& overrides = field(cluster, "overrides");
    for (const auto& [name, state] : field(cluster, "states").items()) {
      peers += (peers.empty() ? "" : " ") + name + "=" + text(state) +
               (overrides.is_object() && overrides.contains(name) ? "*" : "");
    }
    table.add({"cluster", peers + ", " + std::to_string(count(cluster, "peers_lost")) +
                              " peers lost" +
                              (overrides.empty() ? "" : " (* weirctl cluster-peers)")});
  }
  if (const json& error = field(field(reply, "state_file"), "error"); error.is_string())
    table.add({"state", text(field(field(reply, "state_file"), "path")) + ": " + text(error)});
  table.print(false);
}

void print_listeners(const json& reply) {
  Table table({{"NAME"},
               {"ADDRESS"},
               {"PROTOCOL"},
               {"POOL"},
               {"CONNECTIONS", Table::right},
               {"ACTIVE", Table::right}});
  const json& listeners = field(reply, "listeners");
  if (listeners.is_array()) {
    for (const auto& l : listeners) {
      table.add({text(field(l, "name")), endpoint(l), text(field(l, "protocol")),
                 text(field(l, "pool")), text(field(l, "connections")), text(field(l, "active"))});
    }
  }
  if (table.empty()) {
    std::printf("no listeners\n");
    return;
  }
  table.print();
}

void print_backends(const json& reply) {
  Table table({{"POOL"},
               {"BACKEND"},
               {"ADDRESS"},
               {"STATE"},
               {"WEIGHT", Table::right},
               {"ACTIVE", Table::right},
               {"CONNECTIONS", Table::right},
               {"HEALTH"},
               {"OVERRIDE"},
               {"PASSIVE"}});
  const json& pools = field(reply, "pools");
  if (pools.is_array()) {
    for (const auto& pool : pools) {
      const json& backends = field(pool, "backends");
      if (!backends.is_array()) continue;
      for (const auto& b : backends) {
        table.add({text(field(pool, "name")), text(field(b, "name")), endpoint(b),
                   text(field(b, "state")), text(field(b, "weight")), text(field(b, "active")),
                   text(field(b, "connections")), text(field(b, "health")),
                   text(field(b, "override")), text(field(b, "passive"))});
      }
    }
  }
  if (table.empty()) {
    std::printf("no backends\n");
    return;
  }
  table.print();
}

void print_reload(const json& reply) {
  const json& changes = field(reply, "changes");
  if (!changes.is_array() || changes.empty()) {
    std::printf("reloaded: no changes\n");
    return;
  }
  std::printf("reloaded: %zu change%s\n", changes.size(), changes.size() == 1 ? "" : "s");
  for (const auto& change : changes) std::printf("  %s\n", text(change).c_str());
}

void print_stats(const json& reply) {
  // weir-control may pass the dataplane's object through as the reply or under "counters".
  const json& counters = field(reply, "counters").is_object() ? field(reply, "counters") : reply;

  Table workers({{"WORKER", Table::right},
                 {"BUSY", Table::right},
                 {"RX_PACKETS", Table::right},
                 {"TX_PACKETS", Table::right},
                 {"DROPS", Table::right},
                 {"ESTABLISHED", Table::right},
                 {"RETRANSMITS", Table::right},
                 {"RESETS_SENT", Table::right}});
  const json& worker_list = field(counters, "workers");
  if (worker_list.is_array()) {
    for (const auto& w : worker_list) {
      const json& loop = field(w, "loop");
      const json& tcp = field(w, "tcp");
      uint64_t rx = 0, tx = 0, drops = 0;
      if (const json& ports = field(w, "ports"); ports.is_object()) {
        for (const auto& [name, port] : ports.items()) {
          rx += count(port, "rx_packets");
          tx += count(port, "tx_packets");
          drops += sum_of(field(port, "drops"));
        }
      }
      workers.add({text(field(w, "id")),
                   percent(count(loop, "busy_cycles"), count(loop, "total_cycles")),
                   std::to_string(rx), std::to_string(tx), std::to_string(drops),
                   std::to_string(count(tcp, "established")),
                   std::to_string(count(tcp, "retransmitted_segments")),
                   std::to_string(count(tcp, "resets_sent"))});
    }
  }

  Table listeners({{"LISTENER"},
                   {"CONNECTIONS", Table::right},
                   {"ACTIVE", Table::right},
                   {"NO_BACKEND", Table::right},
                   {"CONNECT_FAILURES", Table::right},
                   {"BYTES_TO_BACKEND", Table::right},
                   {"BYTES_TO_CLIENT", Table::right},
                   {"CORRUPT", Table::right}});
  if (const json& by_name = field(counters, "listeners"); by_name.is_object()) {
    for (const auto& [name, l] : by_name.items()) {
      listeners.add({name, std::to_string(count(l, "connections")),
                     std::to_string(count(l, "active")), std::to_string(count(l, "no_backend")),
                     std::to_string(count(l, "backend_connect_failures")),
                     std::to_string(count(l, "bytes_to_backend")),
                     std::to_string(count(l, "bytes_to_client")),
                     std::to_string(count(l, "frames_corrupt_to_backend") +
                                    count(l, "frames_corrupt_to_client"))});
    }
  }

  if (workers.empty()) {
    std::printf("no workers\n");
  } else {
    workers.print();
  }
  if (!listeners.empty()) {
    std::printf("\n");
    listeners.print();
  }
  std::printf("\nevery counter: weirctl --json stats (docs/metrics.md)\n");
}

void print_events(const json& reply) {
  Table table({{"TIME"},
               {"LISTENER"},
               {"DIRECTION"},
               {"CLIENT"},
               {"POOL/BACKEND"},
               {"STREAM", Table::right},
               {"LENGTH", Table::right},
               {"VERDICT"},
               {"EXPECTED_CRC"},
               {"RECEIVED_CRC"},
               {"ACTION"}});
  const json& events = field(reply, "events");
  if (events.is_array()) {
    for (const auto& e : events) {
      const std::string backend = text(field(e, "backend"));
      table.add({text(field(e, "time")), text(field(e, "listener")), text(field(e, "direction")),
                 text(field(e, "client")),
                 text(field(e, "pool")) + "/" + (backend.empty() ? "-" : backend),
                 text(field(e, "stream")), text(field(e, "length")),
                 text(field(e, "verdict")) +
                     (field(e, "reason").is_string() ? " (" + text(field(e, "reason")) + ")" : ""),
                 field(e, "expected_crc").is_string() ? text(field(e, "expected_crc")) : "-",
                 field(e, "received_crc").is_string() ? text(field(e, "received_crc")) : "-",
                 text(field(e, "action"))});
    }
  }
  if (table.empty()) {
    std::printf("no corrupt or malformed frames seen\n");
    return;
  }
  table.print();
}

}  // namespace weir::weirctl
