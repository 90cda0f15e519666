#include "dataplane/cluster_forwarder.h"

#include <cstring>
#include <stdexcept>

#include "common/maglev.h"
#include "config/config.h"
#include "dataplane/net/ether.h"
#include "dataplane/net/gue.h"
#include "dataplane/net/protocol_numbers.h"

namespace weir::dataplane {

ClusterPlan::ClusterPlan(std::span<const cluster::Peer> peers,
                         std::vector<net::Ipv4Address> peer_addresses, uint8_t self_index,
                         uint32_t rows)
    : addresses(std::move(peer_addresses)),
      self(self_index),
      table(cluster::OwnerTable::build(peers, rows)) {
  if (addresses.size() != peers.size() || self >= peers.size())
    throw std::invalid_argument("cluster plan: one address per peer, and this box among them");
}

std::shared_ptr<const ClusterPlan> cluster_plan_for(const config::Cluster& cluster,
                                                    std::span<const cluster::PeerState> states) {
  std::vector<cluster::Peer> peers;
  std::vector<net::Ipv4Address> addresses;
  for (size_t i = 0; i < cluster.peers.size(); ++i) {
    peers.push_back({cluster.peers[i].name, states.empty() ? cluster::PeerState::live : states[i]});
    addresses.push_back(cluster.peers[i].address);
  }
  auto plan = std::make_shared<ClusterPlan>(peers, std::move(addresses),
                                            static_cast<uint8_t>(cluster.node_index));
  plan->heartbeat_interval_us = uint64_t{cluster.heartbeat.interval_ms} * 1000;
  return plan;
}

std::optional<uint8_t> ClusterPlan::peer_at(net::Ipv4Address address) const {
  // At most 64 peers, and asked once per GUE packet: a scan of 256 bytes.
  for (size_t i = 0; i < addresses.size(); ++i) {
    if (addresses[i] == address) return static_cast<uint8_t>(i);
  }
  return std::nullopt;
}

ClusterForwarder::Arrival ClusterForwarder::strip(PortIndex port, rte_mbuf* frame, uint8_t& hops,
                                                  uint64_t now_us) {
  constexpr size_t kEther = net::EthernetView::kSize;
  if (plan_ == nullptr || rte_pktmbuf_data_len(frame) < kEther + net::gue::kOverhead)
    return Arrival::not_gue;
  const uint8_t* data = rte_pktmbuf_mtod(frame, const uint8_t*);
  const auto ether = net::ConstEthernetView::parse({data, rte_pktmbuf_data_len(frame)});
  // Addressed to this port and to this box's cluster address: anything else is the ordinary
  // path's to judge (and drop).
  if (ether->ether_type() != net::kEtherTypeIpv4 || ether->destination() != stack_.port_mac(port))
    return Arrival::not_gue;
  if (wire::load_be32(data + kEther + 16) != plan_->addresses[plan_->self].value())
    return Arrival::not_gue;
  if (frame->nb_segs > 1 && rte_pktmbuf_linearize(frame) != 0) return Arrival::not_gue;
  data = rte_pktmbuf_mtod(frame, const uint8_t*);
  const std::span<const uint8_t> packet(data + kEther, rte_pktmbuf_data_len(frame) - kEther);
  const net::gue::ParseResult parsed = net::gue::parse(packet);
  switch (parsed.kind) {
    case net::gue::ParseResult::Kind::not_gue:
      return Arrival::not_gue;
    case net::gue::ParseResult::Kind::malformed:
      counters_.malformed_drops.add();
      if (parsed.why == net::gue::Malformed::heartbeat ||
          parsed.why == net::gue::Malformed::gue_control)
        counters_.heartbeats_malformed.add();
      rte_pktmbuf_free(frame);
      return Arrival::dropped;
    case net::gue::ParseResult::Kind::gue:
    case net::gue::ParseResult::Kind::heartbeat:
      break;
  }
  const std::optional<uint8_t> from = plan_->peer_at(parsed.packet.source);
  if (!from || *from == plan_->self) {
    counters_.unknown_peer_drops.add();
    rte_pktmbuf_free(frame);
    return Arrival::dropped;
  }
  if (parsed.kind == net::gue::ParseResult::Kind::heartbeat) {
    HeardHeartbeats::Peer& peer = heard_.peers[*from];
    peer.state.store(static_cast<uint8_t>(parsed.packet.state), std::memory_order_relaxed);
    peer.sequence.store(parsed.packet.sequence, std::memory_order_relaxed);
    peer.at_us.store(now_us, std::memory_order_relaxed);
    counters_.heartbeats_received.add();
    rte_pktmbuf_free(frame);
    return Arrival::dropped;
  }
  // The device's checksum flags describe the outer packet: the inner one's are worked out here,
  // so that a port that trusts the flags trusts the right ones.
  const std::span<const uint8_t> inner = packet.subspan(parsed.packet.inner_offset);
  const auto inner_ip = net::ConstIpv4View::parse(inner);
  const bool ip_good = inner_ip->checksum_valid();
  const bool tcp_good = inner_ip->payload() && net::ipv4_transport_checksum_valid(
                                                   inner_ip->source(), inner_ip->destination(),
                                                   net::kIpProtocolTcp, *inner_ip->payload());
  frame->ol_flags &= ~(RTE_MBUF_F_RX_IP_CKSUM_MASK | RTE_MBUF_F_RX_L4_CKSUM_MASK);
  frame->ol_flags |= (ip_good ? RTE_MBUF_F_RX_IP_CKSUM_GOOD : RTE_MBUF_F_RX_IP_CKSUM_BAD) |
                     (tcp_good ? RTE_MBUF_F_RX_L4_CKSUM_GOOD : RTE_MBUF_F_RX_L4_CKSUM_BAD);
  // The Ethernet header moves up to sit before the inner packet.
  uint8_t* start = rte_pktmbuf_mtod(frame, uint8_t*);
  std::memmove(start + net::gue::kOverhead, start, kEther);
  rte_pktmbuf_adj(frame, static_cast<uint16_t>(net::gue::kOverhead));
  counters_.encapsulated_received.add();
  hops = parsed.packet.hops;
  return Arrival::inner;
}

bool ClusterForwarder::divert(PortIndex, const tcp::FourTuple& tuple, net::TcpFlags flags,
                              bool completes_cookie, rte_mbuf* packet, uint64_t now_us) {
  if (plan_ == nullptr || stack_.is_port_address(net::Ipv4Address(tuple.local_address)))
    return false;
  // The flow's row, from the client's side of it, as every box computes it.
  const uint64_t flow_hash =
      maglev::hash_five_tuple({tuple.remote_address, tuple.local_address, tuple.remote_port,
                               tuple.local_port, net::kIpProtocolTcp});
  const std::optional<cluster::Owners> owners = plan_->table.lookup(flow_hash);
  if (!owners) return false;
  if (owners->primary != plan_->self) {
    forward(packet, owners->primary, flow_hash, false, now_us);
    return true;
  }
  const bool syn = flags.has(net::TcpFlag::syn) && !flags.has(net::TcpFlag::ack);
  if (syn || completes_cookie || owners->secondary == cluster::Owners::kNoPeer) return false;
  forward(packet, owners->secondary, flow_hash, true, now_us);
  return true;
}

void ClusterForwarder::forward(rte_mbuf* packet, uint8_t to, uint64_t flow_hash, bool second_chance,
                               uint64_t now_us) {
  if (arrival_hops_ >= net::gue::kMaxHops) {
    counters_.hop_limit_drops.add();
    rte_pktmbuf_free(packet);
    return;
  }
  const net::Ipv4Address destination = plan_->addresses[to];
  const std::optional<PortIndex> port = stack_.route(destination);
  const uint32_t inner_length = rte_pktmbuf_pkt_len(packet);
  uint8_t* outer = nullptr;
  if (port && inner_length + net::gue::kOverhead <= stack_.port_mtu(*port)) {
    outer = reinterpret_cast<uint8_t*>(
        rte_pktmbuf_prepend(packet, static_cast<uint16_t>(net::gue::kOverhead)));
  }
  if (outer == nullptr) {
    counters_.forward_failures.add();
    rte_pktmbuf_free(packet);
    return;
  }
  net::gue::Header header;
  header.source = plan_->addresses[plan_->self];
  header.destination = destination;
  header.source_port = net::gue::source_port_for(flow_hash);
  header.hops = static_cast<uint8_t>(arrival_hops_ + 1);
  net::gue::write(std::span<uint8_t, net::gue::kOverhead>(outer, net::gue::kOverhead), header,
                  static_cast<uint16_t>(inner_length));
  (second_chance ? counters_.forwarded_to_secondary : counters_.forwarded_to_primary).add();
  stack_.send_ipv4(*port, packet, now_us);
}

void ClusterForwarder::send_heartbeats_if_due(rte_mempool* pool, net::gue::HeartbeatState state,
                                              uint64_t now_us) {
  if (plan_ == nullptr || now_us < next_heartbeat_us_) return;
  next_heartbeat_us_ = now_us + plan_->heartbeat_interval_us;
  const uint32_t sequence = heartbeat_sequence_++;
  for (size_t to = 0; to < plan_->addresses.size(); ++to) {
    if (to == plan_->self) continue;
    const net::Ipv4Address destination = plan_->addresses[to];
    const std::optional<PortIndex> port = stack_.route(destination);
    rte_mbuf* packet = port ? rte_pktmbuf_alloc(pool) : nullptr;
    uint8_t* data = packet != nullptr
                        ? reinterpret_cast<uint8_t*>(rte_pktmbuf_append(
                              packet, static_cast<uint16_t>(net::gue::kHeartbeatSize)))
                        : nullptr;
    if (data == nullptr) {
      if (packet != nullptr) rte_pktmbuf_free(packet);
      counters_.forward_failures.add();
      continue;
    }
    net::gue::Header header;
    header.source = plan_->addresses[plan_->self];
    header.destination = destination;
    // A fixed source port per sender: a peer's heartbeats all reach the same queue.
    header.source_port = net::gue::source_port_for(plan_->self);
    net::gue::write_heartbeat(
        std::span<uint8_t, net::gue::kHeartbeatSize>(data, net::gue::kHeartbeatSize), header, state,
        sequence);
    counters_.heartbeats_sent.add();
    stack_.send_ipv4(*port, packet, now_us);
  }
}

}  // namespace weir::dataplane
