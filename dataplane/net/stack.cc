#include "dataplane/net/stack.h"

#include <cstring>

#include "dataplane/net/arp.h"
#include "dataplane/net/checksum.h"
#include "dataplane/net/icmp.h"
#include "dataplane/net/rx_checksum.h"
#include "dataplane/net/tcp.h"

namespace weir::net {
namespace {

bool in_subnet(Ipv4Address address, Ipv4Address network, uint8_t prefix_length) {
  const uint32_t mask = prefix_length == 0 ? 0 : ~uint32_t{0} << (32 - prefix_length);
  return (address.value() & mask) == (network.value() & mask);
}

std::span<uint8_t> frame_bytes(rte_mbuf* frame) {
  return {rte_pktmbuf_mtod(frame, uint8_t*), rte_pktmbuf_data_len(frame)};
}

}  // namespace

Stack::Stack(const StackConfig& config, rte_mempool* pool, TxBuffers& tx,
             std::array<PortCounters, kMaxPorts>& port_counters, L3Counters& l3_counters)
    : config_(config),
      pool_(pool),
      tx_(tx),
      port_counters_(port_counters),
      l3_counters_(l3_counters),
      neighbours_(config.neighbour_capacity, config.neighbour_timers) {
  for (const StackPort& port : config_.ports) {
    backend_sources_.emplace_back(1, port.address);
    backend_sources_.back().insert(backend_sources_.back().end(), port.source_addresses.begin(),
                                   port.source_addresses.end());
  }
  collect_owned_addresses();
}

void Stack::collect_owned_addresses() {
  owned_addresses_.clear();
  for (const std::vector<Ipv4Address>& sources : backend_sources_)
    owned_addresses_.insert(owned_addresses_.end(), sources.begin(), sources.end());
  owned_addresses_.insert(owned_addresses_.end(), config_.listener_addresses.begin(),
                          config_.listener_addresses.end());
}

std::optional<PortIndex> Stack::route(Ipv4Address destination) const {
  for (PortIndex i = 0; i < config_.ports.size(); ++i) {
    const StackPort& port = config_.ports[i];
    if (in_subnet(destination, port.address, port.prefix_length)) return i;
  }
  for (PortIndex i = 0; i < config_.ports.size(); ++i) {
    if (config_.ports[i].gateway) return i;
  }
  return std::nullopt;
}

bool Stack::is_port_address(Ipv4Address address) const {
  for (const StackPort& port : config_.ports) {
    if (port.address == address) return true;
    for (const Ipv4Address& source : port.source_addresses) {
      if (source == address) return true;
    }
  }
  return false;
}

bool Stack::owns(Ipv4Address address) const {
  for (const Ipv4Address& owned : owned_addresses_) {
    if (owned == address) return true;
  }
  return false;
}

void Stack::drop(PortIndex port, rte_mbuf* frame, DropReason reason) {
  port_counters_[port].drop(reason);
  rte_pktmbuf_free(frame);
}

void Stack::receive(PortIndex port, rte_mbuf* frame, uint64_t now_us) {
  // Protocol code reads headers from the first segment; a chained frame whose first segment is
  // not the whole frame is made contiguous (af_packet and tap deliver single segments).
  if (frame->nb_segs > 1 && rte_pktmbuf_linearize(frame) != 0) {
    drop(port, frame, DropReason::mbuf_exhausted);
    return;
  }
  const auto ether = EthernetView::parse(frame_bytes(frame));
  if (!ether) {
    drop(port, frame, DropReason::truncated);
    return;
  }
  const MacAddress destination = ether->destination();
  if (destination != config_.ports[port].mac && !destination.is_broadcast()) {
    drop(port, frame, DropReason::not_ours);
    return;
  }
  switch (ether->ether_type()) {
    case kEtherTypeArp:
      receive_arp(port, frame, now_us);
      return;
    case kEtherTypeIpv4:
      receive_ipv4(port, frame, now_us);
      return;
    default:
      drop(port, frame, DropReason::unsupported);
      return;
  }
}

void Stack::learn_from_shared_arp(PortIndex port, rte_mbuf* frame, uint64_t now_us) {
  const auto ether = EthernetView::parse(frame_bytes(frame));
  if (!ether || ether->ether_type() != kEtherTypeArp) {
    rte_pktmbuf_free(frame);
    return;
  }
  receive_arp(port, frame, now_us, /*answer=*/false);
}

void Stack::receive_arp(PortIndex port, rte_mbuf* frame, uint64_t now_us, bool answer) {
  // A copy is only learned from: whatever is wrong with it was counted where it arrived.
  const auto reject = [&](DropReason reason) {
    if (answer) {
      drop(port, frame, reason);
    } else {
      rte_pktmbuf_free(frame);
    }
  };
  const std::span<uint8_t> bytes = frame_bytes(frame).subspan(EthernetView::kSize);
  const auto arp = ArpView::parse(bytes);
  if (!arp) {
    reject(DropReason::truncated);
    return;
  }
  // RFC 826 packet reception: only Ethernet/IPv4 with 6- and 4-byte addresses is ours to answer.
  if (!arp->is_ethernet_ipv4()) {
    reject(DropReason::malformed);
    return;
  }
  const uint16_t operation = arp->operation();
  if (operation != kArpRequest && operation != kArpReply) {
    reject(DropReason::malformed);
    return;
  }
  const Ipv4Address sender = arp->sender_ip();
  const MacAddress sender_mac = arp->sender_mac();
  const Ipv4Address target = arp->target_ip();
  const bool for_us = owns(target);
  // RFC 826 merge rule: update an existing entry from any ARP; create one only when we are the
  // target (or the sender answers one of our probes).
  if (sender.value() != 0 && !sender_mac.is_broadcast()) {
    neighbours_.learn(port, sender.value(), sender_mac, for_us, now_us, *this);
    if (answer && operation == kArpReply && for_us) l3_counters_.arp_replies_learned.add();
  }
  if (!for_us) {
    reject(DropReason::not_ours);
    return;
  }
  if (operation != kArpRequest || !answer) {
    rte_pktmbuf_free(frame);
    return;
  }
  // Answer in place: the request becomes the reply.
  const MacAddress our_mac = config_.ports[port].mac;
  auto ether = EthernetView::parse(frame_bytes(frame));
  ether->set_destination(sender_mac);
  ether->set_source(our_mac);
  auto reply = ArpView::parse(frame_bytes(frame).subspan(EthernetView::kSize));
  reply->set_operation(kArpReply);
  reply->set_target_mac(sender_mac);
  reply->set_target_ip(sender);
  reply->set_sender_mac(our_mac);
  reply->set_sender_ip(target);
  l3_counters_.arp_requests_answered.add();
  tx_.send(port, frame);
}

void Stack::receive_ipv4(PortIndex port, rte_mbuf* frame, uint64_t now_us) {
  const std::span<uint8_t> l3 = frame_bytes(frame).subspan(EthernetView::kSize);
  const auto ip = Ipv4View::parse(l3);
  if (!ip) {
    drop(port, frame, DropReason::truncated);
    return;
  }
  // RFC 791 3.1 and RFC 1122 3.2.1: version 4, IHL >= 5, lengths consistent with the frame.
  if (ip->version() != 4 || ip->header_length() < Ipv4View::kMinSize) {
    drop(port, frame, DropReason::malformed);
    return;
  }
  if (ip->header_length() > l3.size()) {
    drop(port, frame, DropReason::truncated);
    return;
  }
  const uint16_t total_length = ip->total_length();
  if (total_length < ip->header_length()) {
    drop(port, frame, DropReason::malformed);
    return;
  }
  if (total_length > l3.size()) {
    drop(port, frame, DropReason::truncated);
    return;
  }
  const StackPort& port_config = config_.ports[port];
  // Without the offload the flags mean nothing; with it, UNKNOWN still needs the software check.
  const RxChecksum ip_state = port_config.rx_ipv4_checksum_offload
                                  ? rx_ipv4_checksum(frame->ol_flags)
                                  : RxChecksum::unknown;
  const bool checksum_good =
      ip_state == RxChecksum::good || (ip_state == RxChecksum::unknown && ip->checksum_valid());
  if (!checksum_good) {
    drop(port, frame, DropReason::bad_checksum);
    return;
  }
  if (!owns(ip->destination())) {
    drop(port, frame, DropReason::not_ours);
    return;
  }
  if (ip->ttl() == 0) {
    drop(port, frame, DropReason::ttl_expired);
    return;
  }
  if (ip->is_fragment()) {
    drop(port, frame, DropReason::fragment);
    return;
  }
  // The rule for options: a packet that carries any is dropped and counted. Nothing a load
  // balancer's clients send needs them, and source routes (RFC 791 3.1, RFC 7126 4.3, 4.4) and
  // record-route are the classic misuses; Katran and GLB drop them the same way.
  if (ip->header_length() > Ipv4View::kMinSize) {
    drop(port, frame, DropReason::ip_options);
    return;
  }
  // Ethernet pads short frames to 60 bytes; the IPv4 total length is the truth.
  rte_pktmbuf_trim(frame, static_cast<uint16_t>(l3.size() - total_length));

  const uint32_t header_length = ip->header_length();
  switch (ip->protocol()) {
    case kIpProtocolIcmp:
      receive_icmp(port, frame, header_length, now_us);
      return;
    case kIpProtocolTcp: {
      const std::span<uint8_t> segment =
          frame_bytes(frame).subspan(EthernetView::kSize + header_length);
      if (!TcpView::parse(segment)) {
        drop(port, frame, DropReason::truncated);
        return;
      }
      const RxChecksum tcp_state = port_config.rx_l4_checksum_offload
                                       ? rx_l4_checksum(frame->ol_flags)
                                       : RxChecksum::unknown;
      const bool tcp_good = tcp_state == RxChecksum::good ||
                            (tcp_state == RxChecksum::unknown &&
                             tcp_checksum_valid(ip->source(), ip->destination(), segment));
      if (!tcp_good) {
        drop(port, frame, DropReason::bad_checksum);
        return;
      }
      if (transport_ == nullptr) {
        drop(port, frame, DropReason::unsupported);
        return;
      }
      rte_pktmbuf_adj(frame, EthernetView::kSize);
      transport_->tcp_segment(port, frame, now_us);
      return;
    }
    default:
      drop(port, frame, DropReason::unsupported);
      return;
  }
}

void Stack::receive_icmp(PortIndex port, rte_mbuf* frame, uint32_t ip_header_length,
                         uint64_t now_us) {
  const std::span<uint8_t> message =
      frame_bytes(frame).subspan(EthernetView::kSize + ip_header_length);
  const auto icmp = IcmpView::parse(message);
  if (!icmp) {
    drop(port, frame, DropReason::truncated);
    return;
  }
  if (internet_checksum(message) != 0) {
    drop(port, frame, DropReason::bad_checksum);
    return;
  }
  switch (icmp->type()) {
    case IcmpView::kEchoRequest: {
      if (icmp->code() != 0) break;
      // RFC 792 echo: same identifier, sequence and data; swap addresses. The checksum changes
      // only by the type field (RFC 1624 incremental update).
      auto reply = IcmpView::parse(message);
      const uint16_t old_word = static_cast<uint16_t>(IcmpView::kEchoRequest << 8 | icmp->code());
      const uint16_t new_word = static_cast<uint16_t>(IcmpView::kEchoReply << 8 | icmp->code());
      reply->set_type(IcmpView::kEchoReply);
      reply->set_checksum(checksum_update16(reply->checksum(), old_word, new_word));

      auto ip = Ipv4View::parse(frame_bytes(frame).subspan(EthernetView::kSize));
      const Ipv4Address requester = ip->source();
      ip->set_source(ip->destination());
      ip->set_destination(requester);
      ip->set_ttl(config_.ttl);
      ip->update_checksum();

      auto ether = EthernetView::parse(frame_bytes(frame));
      ether->set_destination(ether->source());
      ether->set_source(config_.ports[port].mac);
      l3_counters_.icmp_echo_replies.add();
      tx_.send(port, frame);
      return;
    }
    case IcmpView::kDestinationUnreachable:
    case IcmpView::kTimeExceeded:
    case IcmpView::kParameterProblem: {
      // RFC 792: the message quotes the original IPv4 header and at least 8 bytes of its payload,
      // enough for the TCP ports and sequence number (RFC 5927 checks them).
      const auto quoted = Ipv4View::parse(message.subspan(IcmpView::kSize));
      if (!quoted || quoted->protocol() != kIpProtocolTcp ||
          message.size() < IcmpView::kSize + quoted->header_length() + 8) {
        break;
      }
      if (transport_ == nullptr) break;
      l3_counters_.icmp_errors_to_tcp.add();
      rte_pktmbuf_adj(frame, static_cast<uint16_t>(EthernetView::kSize + ip_header_length));
      transport_->tcp_icmp_error(port, icmp->type(), icmp->code(), frame, now_us);
      return;
    }
    default:
      break;
  }
  drop(port, frame, DropReason::unsupported);
}

void Stack::send_ipv4(PortIndex port, rte_mbuf* packet, uint64_t now_us) {
  const StackPort& port_config = config_.ports[port];
  const auto ip =
      Ipv4View::parse({rte_pktmbuf_mtod(packet, uint8_t*), rte_pktmbuf_data_len(packet)});
  Ipv4Address next_hop = ip->destination();
  if (!in_subnet(next_hop, port_config.address, port_config.prefix_length)) {
    if (!port_config.gateway) {
      drop(port, packet, DropReason::no_neighbour);
      return;
    }
    next_hop = *port_config.gateway;
  }
  if (rte_pktmbuf_prepend(packet, EthernetView::kSize) == nullptr) {
    drop(port, packet, DropReason::mbuf_exhausted);
    return;
  }
  MacAddress mac{};
  switch (neighbours_.resolve(port, next_hop.value(), packet, now_us, mac)) {
    case NeighbourTable::Resolve::send_now:
      release(port, mac, packet);
      return;
    case NeighbourTable::Resolve::queued:
      return;
    case NeighbourTable::Resolve::queued_probe:
      probe(port, next_hop.value(), nullptr);
      return;
    case NeighbourTable::Resolve::probe_only:
      probe(port, next_hop.value(), nullptr);
      drop(port, packet, DropReason::no_neighbour);
      return;
    case NeighbourTable::Resolve::queue_full:
    case NeighbourTable::Resolve::table_full:
      drop(port, packet, DropReason::no_neighbour);
      return;
  }
}

void Stack::release(PortIndex port, const MacAddress& mac, rte_mbuf* packet) {
  auto ether = EthernetView::parse(frame_bytes(packet));
  ether->set_destination(mac);
  ether->set_source(config_.ports[port].mac);
  ether->set_ether_type(kEtherTypeIpv4);
  tx_.send(port, packet);
}

void Stack::give_up(PortIndex port, rte_mbuf* packet) {
  l3_counters_.neighbour_resolution_failures.add();
  drop(port, packet, DropReason::no_neighbour);
}

void Stack::probe(PortIndex port, uint32_t address, const MacAddress* unicast) {
  l3_counters_.arp_requests_sent.add();
  send_arp(port, kArpRequest, config_.ports[port].address, MacAddress{}, Ipv4Address(address),
           unicast != nullptr ? *unicast : MacAddress::broadcast());
}

void Stack::send_arp(PortIndex port, uint16_t operation, Ipv4Address sender,
                     const MacAddress& target_mac, Ipv4Address target,
                     const MacAddress& ether_destination) {
  rte_mbuf* frame = rte_pktmbuf_alloc(pool_);
  if (frame == nullptr) {
    port_counters_[port].drop(DropReason::mbuf_exhausted);
    return;
  }
  constexpr uint16_t kFrameSize = EthernetView::kSize + ArpView::kSize;
  uint8_t* data = reinterpret_cast<uint8_t*>(rte_pktmbuf_append(frame, kFrameSize));
  std::memset(data, 0, kFrameSize);
  const std::span<uint8_t> bytes(data, kFrameSize);
  auto ether = EthernetView::parse(bytes);
  ether->set_destination(ether_destination);
  ether->set_source(config_.ports[port].mac);
  ether->set_ether_type(kEtherTypeArp);
  auto arp = ArpView::parse(bytes.subspan(EthernetView::kSize));
  arp->set_ethernet_ipv4();
  arp->set_operation(operation);
  arp->set_sender_mac(config_.ports[port].mac);
  arp->set_sender_ip(sender);
  arp->set_target_mac(target_mac);
  arp->set_target_ip(target);
  tx_.send(port, frame);
}

void Stack::start(uint64_t now_us, bool announce) {
  next_expiry_us_ = now_us;
  if (!announce) return;
  // Gratuitous ARP (RFC 5227 2.4 announcement form: a request with sender == target) for every
  // owned address, so switches and neighbours learn where the VIPs live.
  for (PortIndex port = 0; port < config_.ports.size(); ++port) {
    const auto announce = [&](Ipv4Address address) {
      l3_counters_.gratuitous_arp_sent.add();
      send_arp(port, kArpRequest, address, MacAddress{}, address, MacAddress::broadcast());
    };
    announce(config_.ports[port].address);
    for (const Ipv4Address& source : config_.ports[port].source_addresses) announce(source);
    for (const Ipv4Address& listener : config_.listener_addresses) {
      if (listener != config_.ports[port].address) announce(listener);
    }
  }
}

void Stack::tick(uint64_t now_us) {
  // The neighbour table's timers are seconds long; a 10 ms scan granularity is plenty.
  if (now_us < next_expiry_us_) return;
  next_expiry_us_ = now_us + 10'000;
  neighbours_.expire(now_us, *this);
}

}  // namespace weir::net
