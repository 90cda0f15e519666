// Cost per packet of the worker's path RX -> classify -> reply for ICMP echo, with no NIC: an
// in-memory PacketIo hands the worker bursts of echo requests and frees what it transmits. Side
// by side, the same loop with the protocol work removed (the requests are freed unread), so the
// difference is Weir's own cost. Results and commands: docs/benchmarks.md.
#include <benchmark/benchmark.h>
#include <rte_mbuf.h>

#include <array>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "dataplane/worker.h"
#include "tests/support/dataplane_harness.h"
#include "tests/support/eal_environment.h"

namespace {

using weir::dataplane::PacketIo;
using weir::dataplane::PortIndex;
using weir::test::kClientIp;
using weir::test::kClientMac;
using weir::test::kPortIp;
using weir::test::kPortMac;

rte_mempool* g_pool = nullptr;  // created in main before any benchmark runs

// A 98-byte echo request (56 bytes of data, as ping sends) from the client to the port.
std::vector<uint8_t> echo_request() {
  std::vector<uint8_t> f(14 + 20 + 8 + 56, 0);
  kPortMac.store(f.data());
  kClientMac.store(f.data() + 6);
  f[12] = 0x08;
  uint8_t* ip = f.data() + 14;
  ip[0] = 0x45;
  ip[2] = 0;
  ip[3] = 84;
  ip[6] = 0x40;
  ip[8] = 64;
  ip[9] = 1;
  kClientIp.store(ip + 12);
  kPortIp.store(ip + 16);
  auto checksum = [](const uint8_t* p, size_t n) {
    uint32_t sum = 0;
    for (size_t i = 0; i + 1 < n; i += 2) sum += uint32_t{p[i]} << 8 | p[i + 1];
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    return static_cast<uint16_t>(~sum);
  };
  const uint16_t ip_sum = checksum(ip, 20);
  ip[10] = static_cast<uint8_t>(ip_sum >> 8);
  ip[11] = static_cast<uint8_t>(ip_sum);
  uint8_t* icmp = ip + 20;
  icmp[0] = 8;
  icmp[5] = 0x77;
  icmp[7] = 1;
  for (size_t i = 0; i < 56; ++i) icmp[8 + i] = static_cast<uint8_t>(i);
  const uint16_t icmp_sum = checksum(icmp, 64);
  icmp[2] = static_cast<uint8_t>(icmp_sum >> 8);
  icmp[3] = static_cast<uint8_t>(icmp_sum);
  return f;
}

// Every receive returns a full burst of fresh copies of the request, as a driver fills mbufs from
// its ring; every transmit frees what it is given, as a driver does once the NIC has sent it.
class LoopbackIo final : public PacketIo {
 public:
  explicit LoopbackIo(std::vector<uint8_t> frame) : frame_(std::move(frame)) {}
  PortIndex port_count() const override { return 1; }
  uint16_t receive(PortIndex, rte_mbuf** packets, uint16_t max) override {
    if (rte_pktmbuf_alloc_bulk(g_pool, packets, max) != 0) return 0;
    for (uint16_t i = 0; i < max; ++i) {
      char* data = rte_pktmbuf_append(packets[i], static_cast<uint16_t>(frame_.size()));
      std::memcpy(data, frame_.data(), frame_.size());
    }
    received += max;
    return max;
  }
  uint16_t transmit(PortIndex, rte_mbuf** packets, uint16_t count) override {
    rte_pktmbuf_free_bulk(packets, count);
    transmitted += count;
    return count;
  }
  uint64_t received = 0;
  uint64_t transmitted = 0;

 private:
  std::vector<uint8_t> frame_;
};

// The worker's whole poll: RX burst, Ethernet/IPv4/ICMP validation (checksums in software, as on
// af_packet and tap), the in-place reply, the TX burst.
void BM_IcmpEchoThroughWorker(benchmark::State& state) {
  auto io = std::make_unique<LoopbackIo>(echo_request());
  LoopbackIo* counters = io.get();
  weir::dataplane::Worker worker({}, std::move(io), weir::test::one_port_config(kPortMac, kPortIp),
                                 g_pool);
  uint64_t now_us = 0;
  for (auto _ : state) worker.poll_once(++now_us);
  if (counters->transmitted != counters->received)
    state.SkipWithError("not every request was answered");
  state.SetItemsProcessed(static_cast<int64_t>(counters->received));
  state.counters["ns_per_packet"] =
      benchmark::Counter(static_cast<double>(counters->received),
                         benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_IcmpEchoThroughWorker);

// The peer: the same I/O (allocation, copy, free) with no protocol work in between.
void BM_IoOnly(benchmark::State& state) {
  LoopbackIo io(echo_request());
  std::array<rte_mbuf*, weir::dataplane::kBurstSize> burst{};
  for (auto _ : state) {
    const uint16_t n = io.receive(0, burst.data(), weir::dataplane::kBurstSize);
    io.transmit(0, burst.data(), n);
  }
  state.SetItemsProcessed(static_cast<int64_t>(io.received));
  state.counters["ns_per_packet"] = benchmark::Counter(
      static_cast<double>(io.received), benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_IoOnly);

}  // namespace

int main(int argc, char** argv) {
  g_pool = weir::test::start_eal("icmp_echo_bench", 4095);
  if (g_pool == nullptr) return 1;
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  weir::test::stop_eal(g_pool);
  return 0;
}
