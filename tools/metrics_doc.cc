// weir-metrics-doc: the counter tables of docs/metrics.md, written from the counter catalogue
// (common/counter_catalogue.h) so that the document cannot drift from what the dataplane and
// weir-control report. The document marks each generated table with a pair of HTML comments,
//   <!-- counter-catalogue: NAME -->  ...  <!-- /counter-catalogue -->
// and everything outside them is hand-written prose, left alone.
//
//   weir-metrics-doc FILE          checks FILE's tables; exit 1, naming the first difference
//   weir-metrics-doc --write FILE  rewrites FILE's tables
#include <array>
#include <cstdio>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <span>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "common/counter_catalogue.h"

namespace {

using weir::counters::Entry;
using weir::counters::Kind;

constexpr std::string_view kBegin = "<!-- counter-catalogue: ";
constexpr std::string_view kBeginEnd = " -->";
constexpr std::string_view kEnd = "<!-- /counter-catalogue -->";

std::string code(std::string_view text) {
  return "`" + std::string(text) + "`";
}

std::string json_row(std::string_view shown_name, std::string_view meaning) {
  return "| " + code(shown_name) + " | " + std::string(meaning) + " |\n";
}

// A table of stats JSON names and their meanings.
std::string json_table(std::string_view heading, std::span<const Entry> entries) {
  std::string out = "| " + std::string(heading) + " | meaning |\n|---|---|\n";
  for (const Entry& e : entries) out += json_row(e.name, e.help);
  return out;
}

// One row per Prometheus family fed by the tables' exported entries, in order of appearance.
struct Table {
  std::span<const Entry> entries;
  std::span<const std::string_view> labels;
};

std::string prometheus_table(std::initializer_list<Table> tables) {
  struct Family {
    std::string_view name, meaning;
    Kind kind;
    std::vector<std::string_view> labels;
    std::string_view fixed_label;
    std::vector<std::string_view> fixed_values;
  };
  std::vector<Family> families;
  for (const Table& table : tables) {
    for (const Entry& e : table.entries) {
      if (!e.exported()) continue;
      Family* family = nullptr;
      for (Family& f : families) {
        if (f.name == e.family) family = &f;
      }
      if (family == nullptr) {
        families.push_back({e.family,
                            e.family_meaning(),
                            e.kind,
                            {table.labels.begin(), table.labels.end()},
                            e.label,
                            {}});
        family = &families.back();
      }
      if (!e.label.empty()) family->fixed_values.push_back(e.label_value);
    }
  }
  std::string out = "| family | type | labels | meaning |\n|---|---|---|---|\n";
  for (const Family& f : families) {
    std::string labels;
    for (const std::string_view label : f.labels)
      labels += (labels.empty() ? "" : ", ") + code(label);
    if (!f.fixed_label.empty()) {
      labels += (labels.empty() ? "" : ", ") + code(f.fixed_label) + " (";
      for (size_t i = 0; i < f.fixed_values.size(); ++i) {
        labels += (i == 0 ? "" : ", ") + code(f.fixed_values[i]);
      }
      labels += ")";
    }
    out += "| " + code(f.name) + " | " + (f.kind == Kind::counter ? "counter" : "gauge") + " | " +
           labels + " | " + std::string(f.meaning) + " |\n";
  }
  return out;
}

// The generated tables by the name their markers give.
std::map<std::string, std::function<std::string()>, std::less<>> tables() {
  namespace c = weir::counters;
  return {
      {"port", [] { return json_table("counter", c::kPortCounters); }},
      {"drops", [] { return json_table("reason", c::kDropReasons); }},
      {"l3", [] { return json_table("counter", c::kL3Counters); }},
      {"loop", [] { return json_table("counter", c::kLoopCounters); }},
      {"steering", [] { return json_table("counter", c::kSteeringCounters); }},
      {"tcp", [] { return json_table("counter", c::kTcpCounters); }},
      {"cluster", [] { return json_table("counter", c::kClusterCounters); }},
      {"tls-relay", [] { return json_table("counter", c::kTlsRelayCounters); }},
      {"tls-worker", [] { return json_table("counter", c::kTlsWorkerCounters); }},
      {"listener",
       [] {
         std::string out = json_table("counter", c::kListenerCounters);
         // Each twice, NAME_to_backend and NAME_to_client: shown once as NAME_*.
         for (const Entry& e : c::kListenerDirectionCounters) {
           out += json_row(std::string(e.name) + "_*", e.help);
         }
         return out;
       }},
      {"prometheus-port",
       [] {
         return prometheus_table(
             {{c::kPortCounters, c::kPortLabels}, {c::kDropReasons, c::kPortLabels}});
       }},
      {"prometheus-tcp",
       [] {
         return prometheus_table(
             {{c::kTcpCounters, c::kWorkerLabels}, {c::kWorkerGauges, c::kWorkerLabels}});
       }},
      {"prometheus-cluster",
       [] {
         return prometheus_table({{c::kClusterCounters, c::kWorkerLabels}});
       }},
      {"prometheus-tls-relay",
       [] {
         return prometheus_table({{c::kTlsRelayCounters, c::kWorkerLabels}});
       }},
      {"prometheus-tls-worker",
       [] {
         return prometheus_table(
             {{c::kTlsWorkerCounters, c::kTlsWorkerLabels}, {c::kTlsCertificateRefusals, {}}});
       }},
      {"devices", [] { return json_table("counter", c::kDeviceCounters); }},
      {"process", [] { return json_table("value", c::kProcessMetrics); }},
      {"prometheus-worker",
       [] {
         return prometheus_table({{c::kLoopCounters, c::kWorkerLabels}});
       }},
      {"prometheus-process",
       [] {
         return prometheus_table({{c::kProcessMetrics, c::kProcessLabels}});
       }},
      {"prometheus-device",
       [] {
         return prometheus_table({{c::kDeviceCounters, c::kDeviceLabels}});
       }},
      {"prometheus-backend",
       [] {
         return prometheus_table({{c::kBackendCounters, c::kBackendLabels},
                                  {c::kBackendDirectionCounters, c::kBackendDirectionLabels},
                                  {c::kBackendDirectionGauges, c::kBackendDirectionLabels}});
       }},
      {"prometheus-frame-events",
       [] {
         return prometheus_table({{c::kFrameEventCounters, {}}});
       }},
      {"prometheus-session-log",
       [] {
         return prometheus_table({{c::kSessionLogCounters, {}}});
       }},
      {"prometheus-certificates",
       [] {
         return prometheus_table({{c::kCertificateGauges, c::kCertificateLabels}});
       }},
      {"prometheus-listener",
       [] {
         return prometheus_table({{c::kListenerCounters, c::kListenerLabels},
                                  {c::kListenerDirectionCounters, c::kListenerDirectionLabels}});
       }},
  };
}

// `document` with every marked table replaced by its generated text; "" and `error` set when a
// marker is unknown, unclosed, repeated, or a table has no marker.
std::string regenerate(const std::string& document, std::string& error) {
  const auto generators = tables();
  std::set<std::string, std::less<>> seen;
  std::istringstream in(document);
  std::string out, line;
  size_t number = 0;
  while (std::getline(in, line)) {
    ++number;
    out += line + "\n";
    const std::string_view view(line);
    if (!view.starts_with(kBegin) || !view.ends_with(kBeginEnd)) continue;
    const std::string_view name =
        view.substr(kBegin.size(), view.size() - kBegin.size() - kBeginEnd.size());
    const auto generator = generators.find(name);
    if (generator == generators.end() || !seen.insert(std::string(name)).second) {
      error = "line " + std::to_string(number) + ": table \"" + std::string(name) +
              "\" is unknown or marked twice";
      return "";
    }
    out += generator->second();
    bool closed = false;
    while (!closed && std::getline(in, line)) {
      ++number;
      closed = line == kEnd;
    }
    if (!closed) {
      error = "table \"" + std::string(name) + "\" has no " + std::string(kEnd);
      return "";
    }
    out += std::string(kEnd) + "\n";
  }
  for (const auto& [name, generator] : generators) {
    if (!seen.contains(name)) {
      error = "no table \"" + name + "\" (" + std::string(kBegin) + name + std::string(kBeginEnd) +
              " ... " + std::string(kEnd) + ")";
      return "";
    }
  }
  return out;
}

// The first line where a and b differ, 1-based.
size_t first_difference(const std::string& a, const std::string& b) {
  std::istringstream sa(a), sb(b);
  std::string la, lb;
  for (size_t number = 1;; ++number) {
    const bool more_a = static_cast<bool>(std::getline(sa, la));
    const bool more_b = static_cast<bool>(std::getline(sb, lb));
    if (more_a != more_b || la != lb || !more_a) return number;
  }
}

}  // namespace

int main(int argc, char** argv) {
  const bool write = argc == 3 && std::string_view(argv[1]) == "--write";
  if (argc != 2 && !write) {
    std::fprintf(stderr, "usage: weir-metrics-doc [--write] docs/metrics.md\n");
    return 2;
  }
  const std::string path = argv[argc - 1];
  std::ifstream file(path);
  if (!file) {
    std::fprintf(stderr, "%s: cannot read\n", path.c_str());
    return 2;
  }
  const std::string document{std::istreambuf_iterator<char>(file), {}};
  std::string error;
  const std::string generated = regenerate(document, error);
  if (!error.empty()) {
    std::fprintf(stderr, "%s: %s\n", path.c_str(), error.c_str());
    return 1;
  }
  if (write) {
    std::ofstream out(path);
    out << generated;
    if (!out.flush()) {
      std::fprintf(stderr, "%s: cannot write\n", path.c_str());
      return 2;
    }
    return 0;
  }
  if (generated != document) {
    std::fprintf(stderr,
                 "%s:%zu: the counter tables differ from common/counter_catalogue.h; "
                 "regenerate them with weir-metrics-doc --write %s (in the build's tools/)\n",
                 path.c_str(), first_difference(document, generated), path.c_str());
    return 1;
  }
  return 0;
}
