// An in-memory PacketIo: tests push frames into a port's RX queue and read what the code under
// test transmitted, with no DPDK port. Bounded like a real ring: transmit takes at most
// `tx_capacity` packets per port until the test drains them. set_tx_limits() makes it a device
// with a segment limit that punishes a chain beyond it as real ones do (packet_io.h, TxLimits);
// set_tx_checksum_offload() one that computes IPv4 and TCP checksums (net/stack.h,
// TxChecksumOffload).
#pragma once

#include <rte_ip.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>

#include <cstdint>
#include <cstring>
#include <deque>
#include <stdexcept>
#include <vector>

#include "dataplane/packet_io.h"

namespace weir::test {

class MemoryIo final : public dataplane::PacketIo {
 public:
  MemoryIo(dataplane::PortIndex ports, rte_mempool* pool, size_t tx_capacity = 4096)
      : pool_(pool), rx_(ports), tx_(ports), tx_capacity_(tx_capacity) {}
  ~MemoryIo() override {
    for (auto& queue : rx_)
      for (rte_mbuf* m : queue) rte_pktmbuf_free(m);
    for (auto& queue : tx_)
      for (rte_mbuf* m : queue) rte_pktmbuf_free(m);
  }

  dataplane::PortIndex port_count() const override {
    return static_cast<dataplane::PortIndex>(rx_.size());
  }

  uint16_t receive(dataplane::PortIndex port, rte_mbuf** packets, uint16_t max) override {
    uint16_t n = 0;
    while (n < max && !rx_[port].empty()) {
      packets[n++] = rx_[port].front();
      rx_[port].pop_front();
    }
    return n;
  }

  uint16_t transmit(dataplane::PortIndex port, rte_mbuf** packets, uint16_t count) override {
    uint16_t taken = 0;
    while (taken < count && tx_[port].size() < tx_capacity_ && !tx_stopped_) {
      rte_mbuf* m = packets[taken];
      if (m->nb_segs > limits_.max_segments) {
        ++tx_violations_;
        if (limits_.max_segments > 1) {
          // A device that chains, given a longer chain: i40e stops the queue.
          tx_stopped_ = true;
          break;
        }
        m = first_segment_only(m);  // one that does not chain: net_af_xdp
      }
      if ((m->ol_flags & (RTE_MBUF_F_TX_IP_CKSUM | RTE_MBUF_F_TX_L4_MASK)) != 0) {
        if (tx_checksum_offload_) {
          complete_checksums(m);
        } else {
          ++tx_violations_;  // a device without the offload sends the fields as they are
        }
      }
      tx_[port].push_back(m);
      ++taken;
    }
    return taken;
  }

  dataplane::TxLimits tx_limits(dataplane::PortIndex) const override { return limits_; }

  // As a chaining device's rte_eth_tx_prepare: a chain beyond its limit is refused.
  uint16_t prepare(dataplane::PortIndex, rte_mbuf** packets, uint16_t count) override {
    for (uint16_t i = 0; i < count; ++i) {
      if (limits_.max_segments > 1 && packets[i]->nb_segs > limits_.max_segments) return i;
    }
    return count;
  }

  // The device takes chains of at most `limits.max_segments` mbufs. Beyond it, a device that does
  // not chain (1) sends the frame's length from its first mbuf, the rest garbage; one that
  // chains refuses it in prepare() and, if transmitted anyway, stops its queue for good.
  void set_tx_limits(dataplane::TxLimits limits) { limits_ = limits; }
  // Chains offered to transmit() beyond the limit: 0 unless the code under test ignored it.
  uint64_t tx_violations() const { return tx_violations_; }
  bool tx_stopped() const { return tx_stopped_; }

  // The device computes the checksums a packet asks for (RTE_MBUF_F_TX_IP_CKSUM,
  // RTE_MBUF_F_TX_TCP_CKSUM), as a NIC does; without it such a request is a violation.
  void set_tx_checksum_offload(bool on) { tx_checksum_offload_ = on; }
  // Packets whose checksums it computed, and those among them whose fields were not what a NIC
  // expects (the IPv4 field zero, the TCP field the pseudo-header's sum, l2_len/l3_len right).
  uint64_t tx_checksums_completed() const { return tx_checksums_completed_; }
  uint64_t tx_checksum_errors() const { return tx_checksum_errors_; }

  // How many packets a port's TX holds until drained: 0 makes the next transmit refuse everything
  // (a full ring).
  void set_tx_capacity(size_t packets) { tx_capacity_ = packets; }

  // Copies `frame` into a fresh mbuf and queues it for reception on `port`.
  void inject(dataplane::PortIndex port, const std::vector<uint8_t>& frame) {
    rte_mbuf* m = rte_pktmbuf_alloc(pool_);
    if (m == nullptr) throw std::runtime_error("MemoryIo: mbuf pool exhausted");
    char* data = rte_pktmbuf_append(m, static_cast<uint16_t>(frame.size()));
    if (data == nullptr) throw std::runtime_error("MemoryIo: frame larger than an mbuf");
    std::memcpy(data, frame.data(), frame.size());
    rx_[port].push_back(m);
  }

  // Removes and returns the frames transmitted on `port`, as bytes.
  std::vector<std::vector<uint8_t>> drain(dataplane::PortIndex port) {
    std::vector<std::vector<uint8_t>> frames;
    for (rte_mbuf* m : tx_[port]) {
      std::vector<uint8_t> bytes(rte_pktmbuf_pkt_len(m));
      const void* p = rte_pktmbuf_read(m, 0, static_cast<uint32_t>(bytes.size()), bytes.data());
      if (p != bytes.data()) std::memcpy(bytes.data(), p, bytes.size());
      frames.push_back(std::move(bytes));
      rte_pktmbuf_free(m);
    }
    tx_[port].clear();
    return frames;
  }

 private:
  // What net_af_xdp puts on the wire for a chain: pkt_len bytes from the first mbuf's data,
  // which hold the headers and then whatever the buffer held before (here a fixed pattern).
  rte_mbuf* first_segment_only(rte_mbuf* chain) {
    rte_mbuf* m = rte_pktmbuf_alloc(pool_);
    if (m == nullptr) throw std::runtime_error("MemoryIo: mbuf pool exhausted");
    const uint32_t length = rte_pktmbuf_pkt_len(chain);
    auto* data = reinterpret_cast<uint8_t*>(rte_pktmbuf_append(m, static_cast<uint16_t>(length)));
    if (data == nullptr) throw std::runtime_error("MemoryIo: frame larger than an mbuf");
    std::memset(data, 0xee, length);
    std::memcpy(data, rte_pktmbuf_mtod(chain, const uint8_t*), rte_pktmbuf_data_len(chain));
    rte_pktmbuf_free(chain);
    return m;
  }

  // What the NIC does: the IPv4 header checksum, and the TCP checksum over the segment starting
  // from the pseudo-header sum the packet carries in the field.
  void complete_checksums(rte_mbuf* m) {
    ++tx_checksums_completed_;
    auto* ip = rte_pktmbuf_mtod_offset(m, rte_ipv4_hdr*, m->l2_len);
    if (m->l2_len != 14 || m->l3_len != rte_ipv4_hdr_len(ip) ||
        (m->ol_flags & RTE_MBUF_F_TX_IPV4) == 0) {
      ++tx_checksum_errors_;
      return;
    }
    if ((m->ol_flags & RTE_MBUF_F_TX_IP_CKSUM) != 0) {
      if (ip->hdr_checksum != 0) ++tx_checksum_errors_;
      ip->hdr_checksum = 0;
      ip->hdr_checksum = rte_ipv4_cksum(ip);
    }
    if ((m->ol_flags & RTE_MBUF_F_TX_L4_MASK) == RTE_MBUF_F_TX_TCP_CKSUM) {
      const uint32_t l4_offset = m->l2_len + m->l3_len;
      auto* field = rte_pktmbuf_mtod_offset(m, uint16_t*, l4_offset + 16);
      if (*field != rte_ipv4_phdr_cksum(ip, m->ol_flags)) ++tx_checksum_errors_;
      uint16_t sum = 0;
      const uint32_t l4_length = rte_be_to_cpu_16(ip->total_length) - m->l3_len;
      if (rte_raw_cksum_mbuf(m, l4_offset, l4_length, &sum) != 0) ++tx_checksum_errors_;
      *field = static_cast<uint16_t>(~sum);
    }
  }

  rte_mempool* pool_;
  bool tx_checksum_offload_ = false;
  uint64_t tx_checksums_completed_ = 0;
  uint64_t tx_checksum_errors_ = 0;
  dataplane::TxLimits limits_{};
  uint64_t tx_violations_ = 0;
  bool tx_stopped_ = false;
  std::vector<std::deque<rte_mbuf*>> rx_;
  std::vector<std::deque<rte_mbuf*>> tx_;
  size_t tx_capacity_;
};

}  // namespace weir::test
