// Plans: immutable snapshots of the configuration's pools and listeners, built off the packet
// path (proxy.h).
#include <algorithm>

#include "dataplane/proxy/proxy.h"

namespace weir::proxy {

// ---- plans --------------------------------------------------------------------------------------

std::shared_ptr<PoolPlan> plan_pool(const config::Pool& pool, std::vector<BackendPlan> backends) {
  std::vector<maglev::Backend> inputs;
  for (const BackendPlan& b : backends)
    inputs.push_back(maglev::Backend{b.name, b.address.value(), b.port, b.weight, b.accepts_new});
  return std::make_shared<PoolPlan>(
      PoolPlan{pool.name, std::move(backends), maglev::Table::build(inputs, pool.hash.table_size),
               pool.hash.key == config::HashKey::source_ip ? maglev::FlowKey::source_ip
                                                           : maglev::FlowKey::five_tuple,
               pool.retries, uint64_t{pool.drain_timeout_ms} * 1000,
               uint64_t{pool.connect_timeout_ms} * 1000});
}

ListenerPlan plan_listener(const config::Config& config, const config::Listener& listener,
                           unsigned workers, std::span<const size_t> proxy_pool_of) {
  ListenerPlan plan;
  plan.name = listener.name;
  plan.address = listener.address;
  plan.port = listener.port;
  plan.tls = listener.protocol == config::Protocol::tls;
  // A tls listener with `inner: framed` verifies the plaintext as a framed listener does its bytes.
  plan.framed = listener.protocol == config::Protocol::framed ||
                (plan.tls && listener.tls && listener.tls->inner == config::TlsInner::framed);
  if (plan.tls && listener.tls) {
    for (const config::SniPool& entry : listener.tls->sni_pools)
      plan.sni_pools.push_back(config::SniPool{entry.server_name, proxy_pool_of[entry.pool]});
  }
  if (plan.framed) {
    const config::Framed framed = listener.framed.value_or(config::Framed{});
    plan.frames =
        FrameRelaySettings{framed.max_frame, framed.on_corrupt == config::OnCorrupt::reset,
                           framed.stamp_hop, config.node_id};
    plan.frame_timeout_us = uint64_t{framed.frame_timeout_ms} * 1000;
  }
  plan.proxy_protocol_v2 = listener.proxy_protocol == config::ProxyProtocol::v2;
  plan.client_timeout_us = uint64_t{listener.client_timeout_ms} * 1000;
  plan.server_timeout_us = uint64_t{listener.server_timeout_ms} * 1000;
  plan.session_log_sample = listener.session_log_sample;
  plan.max_connections = std::max<uint32_t>(1, (listener.max_connections + workers - 1) / workers);
  plan.pool_index = proxy_pool_of[*listener.pool];
  return plan;
}

std::vector<ListenerPlan> plan_listeners(const config::Config& config, unsigned workers) {
  std::vector<size_t> same_order(config.pools.size());  // at start: the Proxy's pools are these
  for (size_t i = 0; i < same_order.size(); ++i) same_order[i] = i;
  std::vector<ListenerPlan> plans;
  for (const config::Listener& listener : config.listeners) {
    if (listener.protocol != config::Protocol::tcp &&
        listener.protocol != config::Protocol::framed && listener.protocol != config::Protocol::tls)
      continue;
    plans.push_back(plan_listener(config, listener, workers, same_order));
  }
  return plans;
}

}  // namespace weir::proxy
