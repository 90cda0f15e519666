#include "dataplane/stats.h"

#include <algorithm>
#include <string>
#include <utility>

namespace weir::dataplane {
namespace {

void append_counter(std::string& out, const char* name, uint64_t value, bool& first) {
  if (!first) out += ',';
  first = false;
  out += '"';
  out += name;
  out += "\":";
  out += std::to_string(value);
}

void append_port(std::string& out, const PortCounters& c) {
  bool first = true;
  out += '{';
  append_counter(out, "rx_packets", c.rx_packets.get(), first);
  append_counter(out, "rx_bytes", c.rx_bytes.get(), first);
  append_counter(out, "tx_packets", c.tx_packets.get(), first);
  append_counter(out, "tx_bytes", c.tx_bytes.get(), first);
  out += ",\"drops\":{";
  bool first_drop = true;
  for (size_t r = 0; r < kDropReasonNames.size(); ++r) {
    append_counter(out, std::string(kDropReasonNames[r]).c_str(), c.drops[r].get(), first_drop);
  }
  out += "}}";
}

}  // namespace

void print_stats(FILE* out, const config::Config& config,
                 const std::vector<std::unique_ptr<Worker>>& workers) {
  const std::string json = stats_json(config, workers) + "\n";
  std::fputs(json.c_str(), out);
  std::fflush(out);
}

std::string stats_json(const config::Config& config,
                       const std::vector<std::unique_ptr<Worker>>& workers) {
  std::string json = "{\"workers\":[";
  for (size_t w = 0; w < workers.size(); ++w) {
    const Worker& worker = *workers[w];
    if (w != 0) json += ',';
    json += "{\"id\":" + std::to_string(worker.id()) + ",\"loop\":{";
    const WorkerLoopCounters& loop = worker.loop_counters();
    bool first = true;
    append_counter(json, "polls", loop.polls.get(), first);
    append_counter(json, "busy_polls", loop.busy_polls.get(), first);
    append_counter(json, "busy_cycles", loop.busy_cycles.get(), first);
    append_counter(json, "total_cycles", loop.total_cycles.get(), first);
    append_counter(json, "sleeps", loop.sleeps.get(), first);
    json += "},\"steering\":{";
    const SteeringCounters& steering = worker.steering_counters();
    first = true;
    append_counter(json, "handed_out", steering.handed_out.get(), first);
    append_counter(json, "taken_in", steering.taken_in.get(), first);
    append_counter(json, "arp_copies", steering.arp_copies.get(), first);
    append_counter(json, "ring_full", steering.ring_full.get(), first);
    json += "},\"l3\":{";
    const L3Counters& l3 = worker.l3_counters();
    first = true;
    append_counter(json, "arp_requests_answered", l3.arp_requests_answered.get(), first);
    append_counter(json, "arp_requests_sent", l3.arp_requests_sent.get(), first);
    append_counter(json, "arp_replies_learned", l3.arp_replies_learned.get(), first);
    append_counter(json, "gratuitous_arp_sent", l3.gratuitous_arp_sent.get(), first);
    append_counter(json, "neighbour_resolution_failures", l3.neighbour_resolution_failures.get(),
                   first);
    append_counter(json, "icmp_echo_replies", l3.icmp_echo_replies.get(), first);
    append_counter(json, "icmp_errors_to_tcp", l3.icmp_errors_to_tcp.get(), first);
    json += "},\"tcp\":{";
    const TcpCounters& tcp = worker.tcp_counters();
    first = true;
    const std::pair<const char*, const Counter*> tcp_counters[] = {
        {"active_opens", &tcp.active_opens},
        {"passive_opens", &tcp.passive_opens},
        {"established", &tcp.established},
        {"segments_in", &tcp.segments_in},
        {"segments_out", &tcp.segments_out},
        {"retransmitted_segments", &tcp.retransmitted_segments},
        {"rto_expirations", &tcp.rto_expirations},
        {"fast_retransmits", &tcp.fast_retransmits},
        {"sack_retransmits", &tcp.sack_retransmits},
        {"sack_scoreboards_exhausted", &tcp.sack_scoreboards_exhausted},
        {"syn_cookies_sent", &tcp.syn_cookies_sent},
        {"syn_cookies_accepted", &tcp.syn_cookies_accepted},
        {"syn_cookies_rejected", &tcp.syn_cookies_rejected},
        {"challenge_acks", &tcp.challenge_acks},
        {"challenge_acks_suppressed", &tcp.challenge_acks_suppressed},
        {"out_of_order_drops", &tcp.out_of_order_drops},
        {"resets_sent", &tcp.resets_sent},
        {"resets_received", &tcp.resets_received},
        {"table_full", &tcp.table_full},
        {"paws_drops", &tcp.paws_drops},
        {"acks_for_unsent_data", &tcp.acks_for_unsent_data},
        {"bad_options", &tcp.bad_options},
        {"icmp_errors", &tcp.icmp_errors},
        {"pmtu_reductions", &tcp.pmtu_reductions},
        {"timeouts", &tcp.timeouts},
        {"keepalive_probes", &tcp.keepalive_probes},
    };
    for (const auto& [name, counter] : tcp_counters)
      append_counter(json, name, counter->get(), first);
    json += "},\"tcp_connections\":" + std::to_string(worker.tcp_connections()) +
            ",\"tcp_capacity\":" + std::to_string(worker.tcp_capacity()) + ",\"ports\":{";
    for (size_t p = 0; p < config.dataplane.ports.size(); ++p) {
      if (p != 0) json += ',';
      json += '"' + config.dataplane.ports[p].name + "\":";
      append_port(json, worker.port_counters()[p]);
    }
    json += "}}";
  }
  json += "]";
  if (!workers.empty()) {
    rte_mempool* pool = workers.front()->mbuf_pool();
    json += ",\"mbufs\":{\"size\":" + std::to_string(pool->size) +
            ",\"available\":" + std::to_string(rte_mempool_avail_count(pool)) + "}";
  }
  json += ",\"listeners\":{";
  // The proxied listeners by name, summed over the workers and over a listener's earlier
  // incarnations (a reload that changes a listener retires it and adds its successor), so that
  // its counters never go backwards. Listeners removed by a reload are left out.
  std::vector<std::string> names;
  if (!workers.empty()) {
    const proxy::Proxy& first_proxy = workers.front()->proxy();
    for (size_t i = 0; i < first_proxy.listener_count(); ++i) {
      const std::string& name = first_proxy.listener(i).name;
      if (!first_proxy.listener_retired(i) &&
          std::find(names.begin(), names.end(), name) == names.end())
        names.push_back(name);
    }
  }
  for (size_t n = 0; n < names.size(); ++n) {
    if (n != 0) json += ',';
    json += '"' + names[n] + "\":{";
    auto sum = [&](auto field) {
      uint64_t total = 0;
      for (const auto& worker : workers) {
        const proxy::Proxy& p = worker->proxy();
        for (size_t i = 0; i < p.listener_count(); ++i) {
          if (p.listener(i).name == names[n]) total += field(p.counters(i)).get();
        }
      }
      return total;
    };
    using C = proxy::ListenerCounters;
    bool first = true;
    const uint64_t connections = sum([](const C& c) -> const Counter& { return c.connections; });
    const uint64_t closed = sum([](const C& c) -> const Counter& { return c.closed; });
    append_counter(json, "connections", connections, first);
    append_counter(json, "active", connections - closed, first);
    append_counter(json, "refused_max_connections",
                   sum([](const C& c) -> const Counter& { return c.refused_max_connections; }),
                   first);
    append_counter(json, "no_backend",
                   sum([](const C& c) -> const Counter& { return c.no_backend; }), first);
    append_counter(json, "backend_connect_failures",
                   sum([](const C& c) -> const Counter& { return c.backend_connect_failures; }),
                   first);
    append_counter(json, "idle_timeouts",
                   sum([](const C& c) -> const Counter& { return c.idle_timeouts; }), first);
    for (int d = 0; d < 2; ++d) {
      const std::string suffix = d == proxy::kToBackend ? "_to_backend" : "_to_client";
      const std::pair<std::string, std::array<Counter, 2> C::*> by_direction[] = {
          {"bytes", &C::bytes},
          {"frames_verified", &C::frames_verified},
          {"bytes_verified", &C::bytes_verified},
          {"frames_corrupt", &C::frames_corrupt},
          {"frames_malformed", &C::frames_malformed},
          {"corrupt_resets", &C::corrupt_resets},
      };
      for (const auto& [name, member] : by_direction) {
        // `member = member`: clang 14 (the sanitizer build) cannot capture a structured binding.
        append_counter(
            json, (name + suffix).c_str(),
            sum([&, member = member](const C& c) -> const Counter& { return (c.*member)[d]; }),
            first);
      }
    }
    json += '}';
  }
  json += "}}";
  return json;
}

}  // namespace weir::dataplane
