#include "dataplane/port.h"

#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_version.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <vector>

namespace weir::dataplane {
namespace {

constexpr uint16_t kRxDescriptors = 1024;
constexpr uint16_t kTxDescriptors = 1024;

std::string available_devices() {
  std::string names;
  uint16_t port_id = 0;
  RTE_ETH_FOREACH_DEV(port_id) {
    char name[RTE_ETH_NAME_MAX_LEN] = {};
    if (rte_eth_dev_get_name_by_port(port_id, name) != 0) continue;
    if (!names.empty()) names += ", ";
    names += name;
  }
  return names.empty() ? "none" : names;
}

std::string port_error(const PortRequest& request, const std::string& what, int code) {
  return "port '" + request.name + "' (device " + request.device + "): " + what + ": " +
         rte_strerror(code < 0 ? -code : code);
}

bool open_port(const PortRequest& request, uint16_t queues, rte_mempool* pool, OpenPort& port,
               std::string& error) {
  port.request = request;
  uint16_t port_id = 0;
  if (rte_eth_dev_get_port_by_name(request.device.c_str(), &port_id) != 0 &&
      !request.vdev_argument.empty()) {
    error = "port '" + request.name + "': device '" + request.device +
            "' was not created: its driver refused \"--vdev=" + request.vdev_argument +
            "\" (the driver's message is above; for net_af_packet, check that the interface "
            "exists in this network namespace)";
    return false;
  }
  if (rte_eth_dev_get_port_by_name(request.device.c_str(), &port_id) != 0) {
    error = "port '" + request.name + "': device '" + request.device +
            "' not found; DPDK sees: " + available_devices() +
            ". A vdev must also appear in dataplane.eal (e.g. \"--vdev=" + request.device +
            ",iface=IFNAME\"); a PCI device must be bound to a DPDK-compatible driver";
    return false;
  }
  port.dpdk_port_id = port_id;

  rte_eth_dev_info info{};
  if (int rc = rte_eth_dev_info_get(port_id, &info); rc != 0) {
    error = port_error(request, "cannot read device info", rc);
    return false;
  }
  port.driver = info.driver_name != nullptr ? info.driver_name : "unknown";
  if (info.max_rx_queues < queues || info.max_tx_queues < queues) {
    error = "port '" + request.name + "' (device " + request.device + ", driver " + port.driver +
            "): " + std::to_string(queues) + " workers need " + std::to_string(queues) +
            " RX/TX queue pairs but the device offers " + std::to_string(info.max_rx_queues) + "/" +
            std::to_string(info.max_tx_queues) +
            " (for net_af_packet add qpairs=N to the --vdev argument, or use fewer lcores)";
    return false;
  }

  rte_eth_conf conf{};
  constexpr uint64_t kWantedRss = RTE_ETH_RSS_IPV4 | RTE_ETH_RSS_NONFRAG_IPV4_TCP;
  const uint64_t rss_hf = info.flow_type_rss_offloads & kWantedRss;
  std::array<uint8_t, 40> rss_key = kRssToeplitzKey;  // ethdev copies it during configure
  if (queues > 1 && rss_hf != 0 && (info.hash_key_size == 0 || info.hash_key_size == 40)) {
    conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
    conf.rx_adv_conf.rss_conf.rss_key = rss_key.data();
    conf.rx_adv_conf.rss_conf.rss_key_len = static_cast<uint8_t>(rss_key.size());
    conf.rx_adv_conf.rss_conf.rss_hf = rss_hf;
    port.capabilities.rss = true;
  }
  constexpr uint64_t kRxChecksum = RTE_ETH_RX_OFFLOAD_IPV4_CKSUM | RTE_ETH_RX_OFFLOAD_TCP_CKSUM;
  conf.rxmode.offloads = info.rx_offload_capa & kRxChecksum;
  port.capabilities.rx_ipv4_checksum = (conf.rxmode.offloads & RTE_ETH_RX_OFFLOAD_IPV4_CKSUM) != 0;
  port.capabilities.rx_l4_checksum = (conf.rxmode.offloads & RTE_ETH_RX_OFFLOAD_TCP_CKSUM) != 0;
  constexpr uint64_t kTxChecksum = RTE_ETH_TX_OFFLOAD_IPV4_CKSUM | RTE_ETH_TX_OFFLOAD_TCP_CKSUM;
  conf.txmode.offloads = info.tx_offload_capa & kTxChecksum;
  port.capabilities.tx_ipv4_checksum = (conf.txmode.offloads & RTE_ETH_TX_OFFLOAD_IPV4_CKSUM) != 0;
  port.capabilities.tx_tcp_checksum = (conf.txmode.offloads & RTE_ETH_TX_OFFLOAD_TCP_CKSUM) != 0;
  // TCP's data segments are chains (a header mbuf, the payload as indirect mbufs): asked for
  // where the device offers it, and bounded by its descriptor limits (ethdev reports UINT16_MAX
  // for a driver that sets none). Without it TxBuffers copies every chain into one mbuf.
  if ((info.tx_offload_capa & RTE_ETH_TX_OFFLOAD_MULTI_SEGS) != 0) {
    conf.txmode.offloads |= RTE_ETH_TX_OFFLOAD_MULTI_SEGS;
    port.capabilities.tx_multi_segs = true;
    uint16_t max_segments = UINT16_MAX;
    for (uint16_t limit : {info.tx_desc_lim.nb_seg_max, info.tx_desc_lim.nb_mtu_seg_max}) {
      if (limit != 0) max_segments = std::min(max_segments, limit);
    }
    port.capabilities.tx_limits.max_segments = max_segments;
  }
  // Received frames are never chained (no scatter is asked for), so one mbuf must hold a frame
  // of the MTU: refused here, with the cause, rather than dropped by the device at run time.
  const uint32_t frame_room = rte_pktmbuf_data_room_size(pool) - RTE_PKTMBUF_HEADROOM;
  const uint32_t largest_frame = uint32_t{request.mtu} + RTE_ETHER_HDR_LEN;
  if (largest_frame > frame_room) {
    error = "port '" + request.name + "' (device " + request.device + "): MTU " +
            std::to_string(request.mtu) + " needs " + std::to_string(largest_frame) +
            "-byte frames but an mbuf holds " + std::to_string(frame_room);
    return false;
  }

  if (int rc = rte_eth_dev_configure(port_id, queues, queues, &conf); rc != 0) {
    error = port_error(request, "configure failed", rc);
    return false;
  }
  if (request.mtu != RTE_ETHER_MTU) {
    if (int rc = rte_eth_dev_set_mtu(port_id, request.mtu); rc != 0) {
      error = port_error(request, "cannot set MTU " + std::to_string(request.mtu), rc);
      return false;
    }
  }
  uint16_t rx_descriptors = kRxDescriptors;
  uint16_t tx_descriptors = kTxDescriptors;
  if (int rc = rte_eth_dev_adjust_nb_rx_tx_desc(port_id, &rx_descriptors, &tx_descriptors);
      rc != 0) {
    error = port_error(request, "cannot size descriptor rings", rc);
    return false;
  }
  const int socket = rte_eth_dev_socket_id(port_id);
  const unsigned numa = socket < 0 ? SOCKET_ID_ANY : static_cast<unsigned>(socket);
  for (uint16_t q = 0; q < queues; ++q) {
    rte_eth_rxconf rxconf = info.default_rxconf;
    rxconf.offloads = conf.rxmode.offloads;
    if (int rc = rte_eth_rx_queue_setup(port_id, q, rx_descriptors, numa, &rxconf, pool); rc != 0) {
      error = port_error(request, "RX queue " + std::to_string(q) + " setup failed", rc);
      return false;
    }
    rte_eth_txconf txconf = info.default_txconf;
    txconf.offloads = conf.txmode.offloads;
    if (int rc = rte_eth_tx_queue_setup(port_id, q, tx_descriptors, numa, &txconf); rc != 0) {
      error = port_error(request, "TX queue " + std::to_string(q) + " setup failed", rc);
      return false;
    }
  }
  rte_ether_addr mac{};
  if (int rc = rte_eth_macaddr_get(port_id, &mac); rc != 0) {
    error = port_error(request, "cannot read MAC address", rc);
    return false;
  }
  std::memcpy(port.mac.data(), mac.addr_bytes, port.mac.size());
  if (int rc = rte_eth_dev_start(port_id); rc != 0) {
    error = port_error(request, "start failed", rc);
    return false;
  }
  if (port.capabilities.rss && info.reta_size > 0) {
    // The proxy predicts which queue a backend's replies land on (flow_owner()), so the
    // indirection table must be the one it assumes: entry i -> queue i mod queues.
    std::vector<rte_eth_rss_reta_entry64> reta((info.reta_size + RTE_ETH_RETA_GROUP_SIZE - 1) /
                                               RTE_ETH_RETA_GROUP_SIZE);
    for (uint16_t i = 0; i < info.reta_size; ++i) {
      reta[i / RTE_ETH_RETA_GROUP_SIZE].mask |= uint64_t{1} << (i % RTE_ETH_RETA_GROUP_SIZE);
      reta[i / RTE_ETH_RETA_GROUP_SIZE].reta[i % RTE_ETH_RETA_GROUP_SIZE] = i % queues;
    }
    if (int rc = rte_eth_dev_rss_reta_update(port_id, reta.data(), info.reta_size); rc != 0) {
      error = port_error(request, "cannot program the RSS indirection table", rc);
      return false;
    }
    port.capabilities.reta_size = info.reta_size;
  }
#if RTE_VERSION < RTE_VERSION_NUM(23, 0, 0, 0)
  // Verified with 22.11, whose driver never reads PACKET_STATISTICS. A driver that did would
  // lose what our reads reset, so a newer DPDK needs checking before this is carried over.
  if (port.driver == "net_af_packet") {
    port.af_packet_ring_drops =
        std::make_shared<AfPacketRingDrops>(AfPacketRingDrops::for_interface(info.if_index));
  }
#endif
  return true;
}

}  // namespace

bool open_ports(const std::vector<PortRequest>& requests, uint16_t queues, rte_mempool* pool,
                std::vector<OpenPort>& ports, std::string& error) {
  if (requests.size() > kMaxPorts) {
    error = "dataplane.ports: " + std::to_string(requests.size()) + " ports configured, at most " +
            std::to_string(kMaxPorts) + " supported";
    return false;
  }
  ports.clear();
  for (const PortRequest& request : requests) {
    OpenPort port;
    if (!open_port(request, queues, pool, port, error)) {
      close_ports(ports);
      return false;
    }
    ports.push_back(port);
  }
  return true;
}

void close_ports(std::vector<OpenPort>& ports) {
  for (const OpenPort& port : ports) {
    rte_eth_dev_stop(port.dpdk_port_id);
    rte_eth_dev_close(port.dpdk_port_id);
  }
  ports.clear();
}

EthdevQueueIo::EthdevQueueIo(const std::vector<OpenPort>& ports, uint16_t queue)
    : port_count_(static_cast<PortIndex>(ports.size())), queue_(queue) {
  for (PortIndex i = 0; i < port_count_; ++i) {
    dpdk_port_ids_[i] = ports[i].dpdk_port_id;
    tx_limits_[i] = ports[i].capabilities.tx_limits;
  }
}

uint16_t EthdevQueueIo::receive(PortIndex port, rte_mbuf** packets, uint16_t max) {
  return rte_eth_rx_burst(dpdk_port_ids_[port], queue_, packets, max);
}

uint16_t EthdevQueueIo::transmit(PortIndex port, rte_mbuf** packets, uint16_t count) {
  return rte_eth_tx_burst(dpdk_port_ids_[port], queue_, packets, count);
}

uint16_t EthdevQueueIo::prepare(PortIndex port, rte_mbuf** packets, uint16_t count) {
  // A no-op returning `count` for a driver without a prepare step; others check segment counts
  // and offload requests (and fix up pseudo-header checksums for the offloads they do).
  return rte_eth_tx_prepare(dpdk_port_ids_[port], queue_, packets, count);
}

DeviceCounters read_device_counters(const OpenPort& port) {
  rte_eth_stats stats{};
  DeviceCounters out;
  if (rte_eth_stats_get(port.dpdk_port_id, &stats) != 0) return out;  // a device without stats
  out.rx_nombuf = stats.rx_nombuf;
  out.rx_missed = stats.imissed;
  if (port.af_packet_ring_drops) out.rx_missed += port.af_packet_ring_drops->drops();
  out.rx_errors = stats.ierrors;
  out.tx_errors = stats.oerrors;
  return out;
}

}  // namespace weir::dataplane
