// Cost of one proxied transaction in the worker, with no NIC and no kernel: the seed's transaction
// (connect, send 4 KiB, receive the 4 KiB echoed, close) through a real Worker with a `tcp`
// listener, between a client and a backend that are Weir's own TCP stacks on in-memory ports
// (tests/support/proxy_wire.h). Only the worker's poll (Worker::poll_once) is the load
// balancer's work; the peers' is the harness's, and callgrind counts only the former
// (docs/benchmarks.md has the command). Every echoed byte is compared.
#include <benchmark/benchmark.h>

#include "tests/support/eal_environment.h"
#include "tests/support/proxy_wire.h"

namespace {

rte_mempool* g_pool = nullptr;

// One iteration = one transaction completed. The argument is the number open at once.
void BM_ProxiedTransaction(benchmark::State& state) {
  weir::test::ProxyWireBed bed(g_pool, static_cast<uint32_t>(state.range(0)));
  // Warm up: neighbours resolved and the tables in use before anything is measured.
  bed.run_until(2 * static_cast<uint64_t>(state.range(0)), 1'000'000);
  const weir::test::WireIo& io = *bed.lb_io;
  const uint64_t start_completed = bed.clients.completed, start_rounds = bed.rounds;
  const uint64_t start_in = io.received, start_out = io.transmitted;
  const uint64_t start_tx_calls = io.transmit_calls;
  uint64_t target = start_completed;
  for (auto _ : state) bed.run_until(++target, 100'000'000);
  const auto done = static_cast<double>(bed.clients.completed - start_completed);
  if (bed.clients.failures != 0 || bed.clients.mismatched_bytes != 0 || done < 1) {
    state.SkipWithError("a transaction failed or a byte came back wrong");
    return;
  }
  state.SetItemsProcessed(static_cast<int64_t>(done));
  state.counters["packets_in"] = static_cast<double>(io.received - start_in) / done;
  state.counters["packets_out"] = static_cast<double>(io.transmitted - start_out) / done;
  state.counters["tx_bursts"] = static_cast<double>(io.transmit_calls - start_tx_calls) / done;
  state.counters["polls"] = static_cast<double>(bed.rounds - start_rounds) / done;
  // What callgrind's total over Worker::poll_once divides by (warm-up included).
  state.counters["all_transactions"] = static_cast<double>(bed.clients.completed);
}
BENCHMARK(BM_ProxiedTransaction)->Arg(1)->Arg(16)->Iterations(4000);

}  // namespace

int main(int argc, char** argv) {
  g_pool = weir::test::start_eal("proxy_transaction_bench", 8191);
  if (g_pool == nullptr) return 1;
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  weir::test::stop_eal(g_pool);
  return 0;
}
