// The per-worker layer 2/3 stack: Ethernet dispatch, ARP (answering and resolving), IPv4
// validation, ICMP echo. It owns the worker's neighbour table and hands TCP segments and ICMP
// errors that concern TCP to a TransportHandler (the TCP stack, in its own issue).
#pragma once

#include <rte_mbuf.h>
#include <rte_mempool.h>

#include <array>
#include <cstdint>
#include <optional>
#include <vector>

#include "dataplane/counters.h"
#include "dataplane/net/ether.h"
#include "dataplane/net/ipv4.h"
#include "dataplane/net/neighbour_table.h"
#include "dataplane/packet_io.h"
#include "dataplane/tx_buffers.h"

namespace weir::net {

using dataplane::DropReason;
using dataplane::kMaxPorts;
using dataplane::L3Counters;
using dataplane::PortCounters;
using dataplane::PortIndex;
using dataplane::TxBuffers;

// What a port's device computes on transmit (negotiated at port setup, port.cc). A packet asks
// for it with ol_flags (RTE_MBUF_F_TX_IPV4 with RTE_MBUF_F_TX_IP_CKSUM and/or
// RTE_MBUF_F_TX_TCP_CKSUM) and l2_len/l3_len, its IPv4 checksum field zero and its TCP checksum
// field holding the IPv4 pseudo-header's sum (DPDK's rte_ipv4_phdr_cksum). net_af_packet and
// net_af_xdp offer neither: their packets are checksummed in software.
struct TxChecksumOffload {
  bool ipv4 = false;
  bool tcp = false;
};

struct StackPort {
  MacAddress mac{};
  Ipv4Address address{};
  uint8_t prefix_length = 24;
  std::optional<Ipv4Address> gateway;
  uint16_t mtu = 1500;
  // More addresses of this port (config: source_addresses), answered by ARP here and used with the
  // port's own as sources of backend connections (DPVS's local addresses).
  std::vector<Ipv4Address> source_addresses;
  // Read the RX checksum flags (dataplane/net/rx_checksum.h: GOOD, NONE accepted, BAD dropped,
  // UNKNOWN verified in software); without the offload every packet is verified in software.
  bool rx_ipv4_checksum_offload = false;
  bool rx_l4_checksum_offload = false;
  TxChecksumOffload tx_checksum_offload{};
};

struct StackConfig {
  std::vector<StackPort> ports;                 // indexed by PortIndex
  std::vector<Ipv4Address> listener_addresses;  // answered by ARP and ICMP on every port
  NeighbourTimers neighbour_timers{};
  uint32_t neighbour_capacity = 1024;  // power of two
  uint8_t ttl = 64;
};

// Receives what the stack does not handle itself. Owns each mbuf it is given.
class TransportHandler {
 public:
  virtual ~TransportHandler() = default;
  // A TCP segment for an owned address with verified IPv4 and TCP checksums. The mbuf's data
  // starts at the IPv4 header.
  virtual void tcp_segment(PortIndex port, rte_mbuf* packet, uint64_t now_us) = 0;
  // An ICMP error (RFC 792, RFC 5927) quoting a TCP header we sent. `quoted` points into the mbuf.
  virtual void tcp_icmp_error(PortIndex port, uint8_t type, uint8_t code, rte_mbuf* packet,
                              uint64_t now_us) = 0;
};

class Stack final : private NeighbourTable::Sink {
 public:
  Stack(const StackConfig& config, rte_mempool* pool, TxBuffers& tx,
        std::array<PortCounters, kMaxPorts>& port_counters, L3Counters& l3_counters);

  // Without a handler, TCP segments are dropped as `unsupported`.
  void set_transport(TransportHandler* handler) { transport_ = handler; }

  // Consumes one received frame.
  void receive(PortIndex port, rte_mbuf* frame, uint64_t now_us);
  // An ARP message another worker received, copied here so that every worker's neighbour table
  // learns (RSS does not spread ARP): learned from under RFC 826's merge rule, never answered and
  // never counted (the worker that received it did both). Takes the frame.
  void learn_from_shared_arp(PortIndex port, rte_mbuf* frame, uint64_t now_us);
  // Starts the timers and, when `announce`, sends gratuitous ARP for every owned address on every
  // port.
  void start(uint64_t now_us, bool announce);
  // Neighbour retries and expiry.
  void tick(uint64_t now_us);

  // Sends an IPv4 packet whose data starts at the IPv4 header (checksum already set) toward its
  // destination: on-link directly, otherwise through the port's gateway. Owns `packet`.
  void send_ipv4(PortIndex port, rte_mbuf* packet, uint64_t now_us);

  bool owns(Ipv4Address address) const;
  // A port's address or one of its source addresses: this box's own, unlike the listener
  // addresses (VIPs), which every box of a cluster shares.
  bool is_port_address(Ipv4Address address) const;
  const MacAddress& port_mac(PortIndex port) const { return config_.ports[port].mac; }
  // A reload's listener addresses (control message, between bursts).
  void set_listener_addresses(std::vector<Ipv4Address> addresses) {
    config_.listener_addresses = std::move(addresses);
    collect_owned_addresses();
  }
  // The port that reaches `destination`: one whose subnet holds it, else the first with a gateway.
  std::optional<PortIndex> route(Ipv4Address destination) const;
  Ipv4Address port_address(PortIndex port) const { return config_.ports[port].address; }
  // The sources of backend connections through `port`: its address, then its source_addresses.
  const std::vector<Ipv4Address>& backend_sources(PortIndex port) const {
    return backend_sources_[port];
  }
  uint16_t port_mtu(PortIndex port) const { return config_.ports[port].mtu; }
  TxChecksumOffload tx_checksum_offload(PortIndex port) const {
    return config_.ports[port].tx_checksum_offload;
  }
  const NeighbourTable& neighbours() const { return neighbours_; }

 private:
  // `answer`: false for a copy another worker received (learn only).
  void receive_arp(PortIndex port, rte_mbuf* frame, uint64_t now_us, bool answer = true);
  void receive_ipv4(PortIndex port, rte_mbuf* frame, uint64_t now_us);
  void receive_icmp(PortIndex port, rte_mbuf* frame, uint32_t ip_header_length, uint64_t now_us);
  void send_arp(PortIndex port, uint16_t operation, Ipv4Address sender,
                const MacAddress& target_mac, Ipv4Address target,
                const MacAddress& ether_destination);
  void drop(PortIndex port, rte_mbuf* frame, DropReason reason);

  // NeighbourTable::Sink
  void probe(PortIndex port, uint32_t address, const MacAddress* unicast) override;
  void give_up(PortIndex port, rte_mbuf* packet) override;
  void release(PortIndex port, const MacAddress& mac, rte_mbuf* packet) override;

  StackConfig config_;
  rte_mempool* pool_;
  TxBuffers& tx_;
  std::array<PortCounters, kMaxPorts>& port_counters_;
  L3Counters& l3_counters_;
  NeighbourTable neighbours_;
  TransportHandler* transport_ = nullptr;
  uint64_t next_expiry_us_ = 0;
  std::vector<std::vector<Ipv4Address>> backend_sources_;  // by port
  // Every address owns() answers for (ports', their source addresses, listeners'), flat: it is
  // asked for every received packet.
  std::vector<Ipv4Address> owned_addresses_;
  void collect_owned_addresses();
};

}  // namespace weir::net
