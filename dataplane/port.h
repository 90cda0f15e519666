// DPDK ethdev setup: one RX and one TX queue per worker per port, RSS with a known Toeplitz key,
// checksum offloads where the device offers them. The only file that configures ethdev.
#pragma once

#include <rte_mempool.h>

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "dataplane/af_packet_ring_drops.h"
#include "dataplane/flow_owner.h"
#include "dataplane/packet_io.h"
#include "dataplane/tx_buffers.h"

namespace weir::dataplane {

struct PortRequest {
  std::string name;    // the config's port name, for messages
  std::string device;  // a vdev name (net_af_packet0) or a PCI address
  uint16_t mtu = 1500;
  std::string vdev_argument;  // the --vdev argument that should create `device`, if any
};

struct PortCapabilities {
  bool rss = false;               // RSS configured with kRssToeplitzKey across the workers' queues
  uint16_t reta_size = 0;         // RSS indirection entries, programmed i -> queue i mod queues
  bool rx_ipv4_checksum = false;  // the device validates IPv4 header checksums (ol_flags)
  bool rx_l4_checksum = false;    // the device validates TCP checksums
  bool tx_ipv4_checksum = false;  // the device can compute IPv4 header checksums
  bool tx_tcp_checksum = false;   // the device can compute TCP checksums
  // RTE_ETH_TX_OFFLOAD_MULTI_SEGS negotiated: the device sends chains of up to
  // tx_desc_lim.nb_mtu_seg_max (and nb_seg_max) mbufs; without it, one mbuf a packet.
  bool tx_multi_segs = false;
  TxLimits tx_limits{.max_segments = 1};
};

struct OpenPort {
  PortRequest request;
  uint16_t dpdk_port_id = 0;
  std::array<uint8_t, 6> mac{};
  PortCapabilities capabilities;
  std::string driver;
  // net_af_packet: the kernel's ring drops, which its driver leaves out of imissed. Shared by
  // the copies of this OpenPort; read on the main lcore only.
  std::shared_ptr<AfPacketRingDrops> af_packet_ring_drops;
};

// What the device itself counts (rte_eth_stats): packets it could not hand to Weir. Read on the
// main lcore when counters are asked for; names and meanings in common/counter_catalogue.h
// (kDeviceCounters).
struct DeviceCounters {
  uint64_t rx_nombuf = 0;  // no mbuf to receive into: the RX ring could not be refilled
  uint64_t rx_missed = 0;  // imissed (+ af_packet ring drops): the RX ring was full
  uint64_t rx_errors = 0;  // ierrors: bad frames the device dropped
  uint64_t tx_errors = 0;  // oerrors: frames the device failed to send
};
DeviceCounters read_device_counters(const OpenPort& port);

// Opens and starts every port with `queues` RX/TX queue pairs fed from `pool`.
// Returns false and fills `error` with a message naming the port and the cause.
bool open_ports(const std::vector<PortRequest>& requests, uint16_t queues, rte_mempool* pool,
                std::vector<OpenPort>& ports, std::string& error);

void close_ports(std::vector<OpenPort>& ports);

// A worker's view of the ports: its own queue on each.
class EthdevQueueIo final : public PacketIo {
 public:
  EthdevQueueIo(const std::vector<OpenPort>& ports, uint16_t queue);
  PortIndex port_count() const override { return port_count_; }
  uint16_t receive(PortIndex port, rte_mbuf** packets, uint16_t max) override;
  uint16_t transmit(PortIndex port, rte_mbuf** packets, uint16_t count) override;
  TxLimits tx_limits(PortIndex port) const override { return tx_limits_[port]; }
  uint16_t prepare(PortIndex port, rte_mbuf** packets, uint16_t count) override;

 private:
  std::array<uint16_t, kMaxPorts> dpdk_port_ids_{};
  std::array<TxLimits, kMaxPorts> tx_limits_{};
  PortIndex port_count_ = 0;
  uint16_t queue_;
};

}  // namespace weir::dataplane
