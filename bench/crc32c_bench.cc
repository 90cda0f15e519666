// CRC-32C throughput beside memcpy of the same buffer (the yardstick: >= 0.6 x memcpy at
// >= 4 KiB). Run: build/bench/crc32c_bench --benchmark_min_time=0.2
#include <benchmark/benchmark.h>

#include <cstring>
#include <vector>

#include "common/crc32c.h"
#include "common/frame.h"

namespace {

void BM_Crc32c(benchmark::State& state) {
  const size_t size = static_cast<size_t>(state.range(0));
  std::vector<uint8_t> buffer(size, 0x5a);
  for (auto _ : state) {
    uint32_t crc = weir::crc32c(buffer.data(), buffer.size());
    benchmark::DoNotOptimize(crc);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * static_cast<int64_t>(size));
}

void BM_Memcpy(benchmark::State& state) {
  const size_t size = static_cast<size_t>(state.range(0));
  std::vector<uint8_t> source(size, 0x5a), destination(size);
  for (auto _ : state) {
    std::memcpy(destination.data(), source.data(), size);
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * static_cast<int64_t>(size));
}

// The cost of stamping a frame's hop field: the trailer update over 4 bytes plus the O(log n)
// shift past the payload. Argument: the payload length. Independent of the payload's bytes.
void BM_HopStampTrailer(benchmark::State& state) {
  const auto payload_length = static_cast<uint32_t>(state.range(0));
  uint32_t crc = 0x12345678;
  const uint32_t node_id = 7;
  for (auto _ : state) {
    crc = weir::frame::stamped_trailer(crc, payload_length, 0, node_id);
    benchmark::DoNotOptimize(crc);
  }
}

constexpr int64_t kSizes[] = {64, 256, 1024, 4096, 16384, 65536};

void sizes(benchmark::internal::Benchmark* b) {
  for (int64_t size : kSizes) b->Arg(size);
}

BENCHMARK(BM_Crc32c)->Apply(sizes);
BENCHMARK(BM_Memcpy)->Apply(sizes);
BENCHMARK(BM_HopStampTrailer)->Arg(0)->Arg(64)->Arg(1024)->Arg(65536)->Arg(16 << 20);

}  // namespace

BENCHMARK_MAIN();
