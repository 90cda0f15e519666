// The counter catalogue (common/counter_catalogue.h) is sound: no name twice in one JSON object,
// every entry explained, and the Prometheus families well formed and consistent. That every
// member of the dataplane's counter structs has an entry is checked where the structs are visible
// (dataplane/counter_bindings.h, and dataplane_logic_test.cc).
#include "common/counter_catalogue.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <map>
#include <span>
#include <string>
#include <vector>

namespace weir::counters {
namespace {

struct Table {
  std::string where;
  std::span<const Entry> entries;
  std::span<const std::string_view> labels;  // the table's Prometheus labels
};

// Keys that sit in the same JSON object, which must be distinct.
struct JsonObject {
  std::string where;
  std::vector<std::string> keys;
};

std::vector<Table> real_tables() {
  return {
      {"loop", kLoopCounters, kWorkerLabels},
      {"steering", kSteeringCounters, kWorkerLabels},
      {"l3", kL3Counters, kWorkerLabels},
      {"tcp", kTcpCounters, kWorkerLabels},
      {"cluster", kClusterCounters, kWorkerLabels},
      {"tls relay", kTlsRelayCounters, kWorkerLabels},
      {"tls worker", kTlsWorkerCounters, kTlsWorkerLabels},
      {"tls certificate refusals", kTlsCertificateRefusals, {}},
      {"worker gauges", kWorkerGauges, kWorkerLabels},
      {"port", kPortCounters, kPortLabels},
      {"drops", kDropReasons, kPortLabels},
      {"listener", kListenerCounters, kListenerLabels},
      {"listener direction", kListenerDirectionCounters, kListenerDirectionLabels},
      {"backend", kBackendCounters, kBackendLabels},
      {"backend direction", kBackendDirectionCounters, kBackendDirectionLabels},
      {"backend direction gauges", kBackendDirectionGauges, kBackendDirectionLabels},
      {"frame events", kFrameEventCounters, {}},
      {"session log", kSessionLogCounters, {}},
      {"device", kDeviceCounters, kDeviceLabels},
      {"process", kProcessMetrics, kProcessLabels},
  };
}

std::vector<std::string> names(std::span<const Entry> entries, std::string_view suffix = {}) {
  std::vector<std::string> out;
  for (const Entry& e : entries) out.push_back(std::string(e.name) + std::string(suffix));
  return out;
}

std::vector<JsonObject> real_objects() {
  JsonObject worker{"workers[]", names(kWorkerGauges)};
  for (const char* key : {"id", "loop", "steering", "l3", "tcp", "cluster", "tls", "ports"}) {
    worker.keys.push_back(key);
  }
  JsonObject port{"workers[].ports.PORT", names(kPortCounters)};
  port.keys.push_back("drops");
  JsonObject listener{"listeners.LISTENER", names(kListenerCounters)};
  for (const std::string_view direction : kDirections) {
    for (std::string& name : names(kListenerDirectionCounters, "_" + std::string(direction))) {
      listener.keys.push_back(std::move(name));
    }
  }
  return {
      {"loop", names(kLoopCounters)},
      {"steering", names(kSteeringCounters)},
      {"l3", names(kL3Counters)},
      {"tcp", names(kTcpCounters)},
      {"cluster", names(kClusterCounters)},
      {"tls", names(kTlsRelayCounters)},
      {"tls.worker_counters[]",
       [] {
         std::vector<std::string> keys = names(kTlsWorkerCounters);
         keys.push_back("tls_worker");
         return keys;
       }()},
      {"drops", names(kDropReasons)},
      {"devices.PORT", names(kDeviceCounters)},
      {"process", names(kProcessMetrics)},
      {"frame_events", names(kFrameEventCounters)},
      {"session_log", names(kSessionLogCounters)},
      worker,
      port,
      listener,
      {"pools[].backends[]",
       [] {
         std::vector<std::string> keys = names(kBackendCounters);
         for (const std::string_view direction : kDirections) {
           for (std::string& name : names(kBackendDirectionCounters, "_" + std::string(direction)))
             keys.push_back(std::move(name));
           for (std::string& name : names(kBackendDirectionGauges, "_" + std::string(direction)))
             keys.push_back(std::move(name));
         }
         for (const char* key : {"name", "address", "port", "state", "weight"}) keys.push_back(key);
         return keys;
       }()},
  };
}

bool is_identifier(std::string_view text) {
  if (text.empty()) return false;
  for (const char c : text) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return false;
  }
  return true;
}

// Everything wrong with the tables and objects, as messages; empty when sound.
std::vector<std::string> problems(const std::vector<Table>& tables,
                                  const std::vector<JsonObject>& objects) {
  std::vector<std::string> out;
  for (const JsonObject& object : objects) {
    std::map<std::string, int> count;
    for (const std::string& key : object.keys) {
      if (++count[key] == 2) out.push_back(object.where + ": " + key + " twice");
    }
  }
  struct Family {
    const Table* table;
    const Entry* first;
    std::vector<std::string_view> label_values;
  };
  std::map<std::string_view, Family> families;
  for (const Table& table : tables) {
    for (const Entry& e : table.entries) {
      const std::string where = table.where + "." + std::string(e.name);
      if (!is_identifier(e.name)) out.push_back(where + ": not a lower-case identifier");
      if (e.help.empty()) out.push_back(where + ": no help");
      if (!e.exported()) continue;
      // Prometheus's standard process families keep their own names.
      const std::string_view prefix = table.where == "process" ? "process_" : "weir_";
      if (!is_identifier(e.family) || !e.family.starts_with(prefix)) {
        out.push_back(where + ": family " + std::string(e.family) + " is not " +
                      std::string(prefix) + "[a-z0-9_]+");
      }
      if ((e.kind == Kind::counter) != e.family.ends_with("_total")) {
        out.push_back(where + ": counters, and only they, end in _total");
      }
      if (e.label.empty() != e.label_value.empty()) {
        out.push_back(where + ": a fixed label needs its value");
      }
      // A family's own help when its meaning differs from the entry's: one of several entries
      // (a fixed label), or other units (a conversion).
      if (e.family_help.empty() != (e.label.empty() && e.divided_by.empty())) {
        out.push_back(where +
                      ": the family's help is needed with, and only with, a fixed label "
                      "or a conversion");
      }
      if (!e.divided_by.empty() && e.divided_by != kTscHz) {
        out.push_back(where + ": a conversion divides by tsc_hz");
      }
      auto [it, added] = families.try_emplace(e.family, Family{&table, &e, {}});
      Family& family = it->second;
      if (!added) {
        if (family.table != &table) out.push_back(where + ": family fed from two tables");
        if (family.first->kind != e.kind || family.first->family_meaning() != e.family_meaning() ||
            family.first->label != e.label) {
          out.push_back(where + ": differs in type, help or label from " +
                        std::string(family.first->name) + " of the same family");
        }
        if (e.label.empty()) out.push_back(where + ": shares a family without a fixed label");
      }
      for (const std::string_view value : family.label_values) {
        if (value == e.label_value) out.push_back(where + ": label value taken twice");
      }
      family.label_values.push_back(e.label_value);
    }
  }
  return out;
}

TEST(CounterCatalogue, IsSound) {
  EXPECT_EQ(problems(real_tables(), real_objects()), std::vector<std::string>{});
}

TEST(CounterCatalogue, DropReasonsAreTheirReasonLabels) {
  for (const Entry& e : kDropReasons) {
    EXPECT_EQ(e.family, "weir_port_drops_total");
    EXPECT_EQ(e.label, "reason");
    EXPECT_EQ(e.label_value, e.name);
  }
}

TEST(CounterCatalogue, ExportedNamesAreTheOnesDashboardsUse) {
  // A few families as they were before the catalogue: renaming one breaks saved queries.
  std::vector<std::string_view> families;
  for (const Table& table : real_tables()) {
    for (const Entry& e : table.entries) families.push_back(e.family);
  }
  for (const std::string_view expected :
       {"weir_port_rx_packets_total", "weir_tcp_retransmitted_segments_total",
        "weir_tcp_connection_capacity", "weir_listener_refused_total",
        "weir_frames_verified_bytes_total"}) {
    EXPECT_NE(std::find(families.begin(), families.end(), expected), families.end()) << expected;
  }
}

// The checker itself: each kind of fault in a synthetic table is reported.
TEST(CounterCatalogue, CheckerFindsFaults) {
  static constexpr std::array<Entry, 10> broken = {{
      unexported("twice", "h"),
      unexported("twice", "h"),
      unexported("no_help", ""),
      counter("counter_without_total", "h", "weir_a"),
      gauge("gauge_with_total", "h", "weir_b_total"),
      counter("shared_without_label", "h", "weir_c_total"),
      counter("shared_again", "h", "weir_c_total"),
      {"converted_without_help", "h", "weir_d_seconds_total", Kind::counter, {}, {}, {}, kTscHz},
      {"help_without_reason", "h", "weir_e_total", Kind::counter, {}, {}, "family help"},
      {"converted_by_other", "h", "weir_f_seconds_total", Kind::counter, {}, {}, "f", "hz"},
  }};
  static constexpr std::array<Entry, 1> process_broken = {{gauge("g", "h", "weir_g")}};
  const std::vector<Table> tables = {{"broken", broken, kWorkerLabels},
                                     {"process", process_broken, kProcessLabels}};
  const std::vector<JsonObject> objects = {{"broken", names(broken)}};
  const std::vector<std::string> found = problems(tables, objects);
  for (const std::string expected :
       {"broken: twice twice", "broken.no_help: no help",
        "broken.counter_without_total: counters, and only they, end in _total",
        "broken.gauge_with_total: counters, and only they, end in _total",
        "broken.shared_again: shares a family without a fixed label",
        "broken.converted_without_help: the family's help is needed with, and only with, a fixed "
        "label or a conversion",
        "broken.help_without_reason: the family's help is needed with, and only with, a fixed "
        "label or a conversion",
        "broken.converted_by_other: a conversion divides by tsc_hz",
        "process.g: family weir_g is not process_[a-z0-9_]+"}) {
    EXPECT_NE(std::find(found.begin(), found.end(), expected), found.end()) << expected;
  }
}

}  // namespace
}  // namespace weir::counters
