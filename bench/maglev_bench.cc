// Maglev table build and lookup (common/maglev.h). The paper (Eisenbud et al., NSDI 2016,
// section 5.3) reports 1.8 ms to build a table of M = 65537 for N = 1000 backends.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "common/maglev.h"

namespace weir::maglev {
namespace {

// n backends at 10.x.y.z:8080; weight i + 1 when distinct_weights (every backend its own weight
// class: the build's slowest schedule), else all weight 1.
std::vector<Backend> pool(int64_t n, bool distinct_weights) {
  std::vector<Backend> out;
  for (int64_t i = 0; i < n; ++i)
    out.push_back(Backend{"backend-" + std::to_string(i), 0x0a000000u + static_cast<uint32_t>(i),
                          8080, distinct_weights ? static_cast<uint32_t>(i + 1) : 1u, true});
  return out;
}

void BM_Build(benchmark::State& state) {
  const std::vector<Backend> backends = pool(state.range(0), state.range(1) != 0);
  for (auto _ : state) {
    Table table = Table::build(backends, kDefaultTableSize);
    benchmark::DoNotOptimize(table.entries().data());
  }
  state.SetLabel(state.range(1) != 0 ? "weights 1..N" : "equal weights");
}
BENCHMARK(BM_Build)
    ->ArgNames({"N", "distinct_weights"})
    ->Args({1000, 0})
    ->Args({1000, 1})
    ->Args({100, 0})
    ->Unit(benchmark::kMillisecond);

// Random flow hashes, precomputed so the loop measures the table, not the generator. 64 Ki
// hashes spread the loads over the whole 256 KiB table.
void BM_Lookup(benchmark::State& state) {
  const std::vector<Backend> backends = pool(1000, false);
  const Table table = Table::build(backends, kDefaultTableSize);
  std::mt19937_64 rng(1);
  std::vector<uint64_t> hashes(1 << 16);
  for (uint64_t& h : hashes) h = rng();
  size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(table.lookup(hashes[i]));
    i = (i + 1) & (hashes.size() - 1);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Lookup);

// The per-flow cost on a new connection: hash the 5-tuple, then look up.
void BM_HashAndLookup(benchmark::State& state) {
  const std::vector<Backend> backends = pool(1000, false);
  const Table table = Table::build(backends, kDefaultTableSize);
  FiveTuple tuple{0xc0a80001, 0x0a000001, 1024, 443, 6};
  for (auto _ : state) {
    ++tuple.src_port;
    benchmark::DoNotOptimize(table.lookup(hash_five_tuple(tuple)));
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_HashAndLookup);

}  // namespace
}  // namespace weir::maglev

BENCHMARK_MAIN();
