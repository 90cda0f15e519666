// Cost of one in-order data segment received and acknowledged by the worker's TCP: a connection
// to the discard service is opened, then 1448-byte segments arrive back to back through the
// layer 2/3 stack into TcpStack (the discard service frees them; every second one is ACKed, so
// the ACKs' cost is shared). With and without the device's checksum offloads (its RX verdicts,
// and the ACKs' checksums computed on TX), since NICs have them and af_packet does not. Results and
// commands: docs/benchmarks.md.
#include <benchmark/benchmark.h>
#include <rte_mbuf.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "dataplane/net/checksum.h"
#include "dataplane/net/stack.h"
#include "dataplane/tcp/services.h"
#include "dataplane/tcp/tcp_stack.h"
#include "tests/support/dataplane_harness.h"
#include "tests/support/eal_environment.h"
#include "tests/support/packet_builder.h"

namespace {

using weir::net::MacAddress;
using weir::test::Eth;
using weir::test::kClientIp;
using weir::test::kClientMac;
using weir::test::kPortMac;
using weir::test::kVip;

rte_mempool* g_pool = nullptr;

class SinkIo final : public weir::dataplane::PacketIo {
 public:
  weir::dataplane::PortIndex port_count() const override { return 1; }
  uint16_t receive(weir::dataplane::PortIndex, rte_mbuf**, uint16_t) override { return 0; }
  uint16_t transmit(weir::dataplane::PortIndex, rte_mbuf** packets, uint16_t count) override {
    if (capture != nullptr) {
      for (uint16_t i = 0; i < count; ++i) {
        std::vector<uint8_t> bytes(rte_pktmbuf_pkt_len(packets[i]));
        std::memcpy(bytes.data(), rte_pktmbuf_mtod(packets[i], void*), bytes.size());
        capture->push_back(std::move(bytes));
      }
    }
    rte_pktmbuf_free_bulk(packets, count);
    return count;
  }
  std::vector<std::vector<uint8_t>>* capture = nullptr;
};

void BM_InOrderSegmentReceivedAndAcked(benchmark::State& state) {
  const bool checksum_offload = state.range(0) != 0;
  SinkIo io;
  std::array<weir::dataplane::PortCounters, weir::dataplane::kMaxPorts> ports{};
  weir::dataplane::L3Counters l3{};
  weir::dataplane::TcpCounters counters{};
  weir::dataplane::TxBuffers tx(io, ports);
  weir::net::StackConfig config = weir::test::harness_port_config();
  // A NIC that validates TCP checksums validates IPv4 header checksums too.
  config.ports[0].rx_ipv4_checksum_offload = checksum_offload;
  config.ports[0].rx_l4_checksum_offload = checksum_offload;
  // And computes the ACKs' checksums (RTE_ETH_TX_OFFLOAD_IPV4_CKSUM, _TCP_CKSUM).
  config.ports[0].tx_checksum_offload = {.ipv4 = checksum_offload, .tcp = checksum_offload};
  weir::net::Stack ip(config, g_pool, tx, ports, l3);
  weir::tcp::TcpSettings settings;
  settings.max_connections = 16;
  uint64_t now = 1'000'000;
  weir::tcp::TcpStack tcp(settings, ip, g_pool, counters, weir::tcp::Secret{3}, now);
  ip.set_transport(&tcp);
  weir::tcp::DiscardService discard(tcp);
  tcp.listen(kVip, 9, &discard, 16);

  auto deliver = [&](const std::vector<uint8_t>& frame) {
    rte_mbuf* m = rte_pktmbuf_alloc(g_pool);
    std::memcpy(rte_pktmbuf_append(m, static_cast<uint16_t>(frame.size())), frame.data(),
                frame.size());
    if (checksum_offload) m->ol_flags |= RTE_MBUF_F_RX_L4_CKSUM_GOOD | RTE_MBUF_F_RX_IP_CKSUM_GOOD;
    ip.receive(0, m, now);
    tx.flush_all();
  };
  // Handshake (learn the client's MAC from its ARP request first).
  deliver(Eth(kClientMac, MacAddress::broadcast())
              .ARPRequest(kClientMac, kClientIp, kVip)
              .pad_to(60)
              .build());
  std::vector<std::vector<uint8_t>> sent;
  io.capture = &sent;
  deliver(Eth(kClientMac, kPortMac)
              .IPv4(kClientIp, kVip)
              // As Linux opens (less timestamps): without an MSS option the peer's MSS would be
              // RFC 9293's default 536, and every 1448-byte segment would open the window by more
              // than two of those, each answered by a window update.
              .TCP(40000, 9, weir::net::TcpFlag::syn, 1000, 0,
                   weir::test::TcpOptions().mss(1460).window_scale(7))
              .build());
  io.capture = nullptr;
  const uint32_t iss = (uint32_t{sent.back()[38]} << 24) | (uint32_t{sent.back()[39]} << 16) |
                       (uint32_t{sent.back()[40]} << 8) | sent.back()[41];
  deliver(Eth(kClientMac, kPortMac)
              .IPv4(kClientIp, kVip)
              .TCP(40000, 9, weir::net::TcpFlag::ack, 1001, iss + 1)
              .build());

  const std::string payload(1448, 'w');
  std::vector<uint8_t> frame = Eth(kClientMac, kPortMac)
                                   .IPv4(kClientIp, kVip)
                                   .TCP(40000, 9, weir::net::TcpFlag::ack, 1001, iss + 1)
                                   .payload(payload)
                                   .build();
  uint32_t seq = 1001;
  for (auto _ : state) {
    deliver(frame);
    // The next segment: sequence number + 1448, checksum updated incrementally (RFC 1624).
    const uint32_t next = seq + 1448;
    uint8_t* tcp_header = frame.data() + 34;
    const uint16_t checksum = static_cast<uint16_t>(tcp_header[16] << 8 | tcp_header[17]);
    const uint16_t updated = weir::net::checksum_update32(checksum, seq, next);
    tcp_header[4] = static_cast<uint8_t>(next >> 24);
    tcp_header[5] = static_cast<uint8_t>(next >> 16);
    tcp_header[6] = static_cast<uint8_t>(next >> 8);
    tcp_header[7] = static_cast<uint8_t>(next);
    tcp_header[16] = static_cast<uint8_t>(updated >> 8);
    tcp_header[17] = static_cast<uint8_t>(updated);
    seq = next;
    ++now;
  }
  if (counters.out_of_order_drops.get() != 0 || ports[0].drops[0].get() != 0) {
    state.SkipWithError("segments were not taken in order");
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["acks_per_segment"] =
      static_cast<double>(counters.segments_out.get()) / static_cast<double>(state.iterations());
}
BENCHMARK(BM_InOrderSegmentReceivedAndAcked)->Arg(0)->Arg(1)->ArgName("checksum_offload");

}  // namespace

int main(int argc, char** argv) {
  g_pool = weir::test::start_eal("tcp_segment_bench", 8191);
  if (g_pool == nullptr) return 1;
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  weir::test::stop_eal(g_pool);
  return 0;
}
