// A TLS worker's counters, shared with weir-control (docs/tls.md, "Metrics"): one sealed memfd per
// worker, made by weir-control before it starts the worker (--counters FD), written by the worker
// only, read by weir-control at each scrape. Values are indexed like the counter catalogue's
// kTlsWorkerCounters (common/counter_catalogue.h); each is stored and loaded whole (relaxed
// atomics), so a reader never sees a torn value, and no system call is made to publish them.
//
// Restarts: weir-control keeps its mapping after the worker ends, adds the block's last values to
// the slot's totals of ended workers, and gives the next worker a fresh block; what /metrics shows
// for the slot is those totals plus the live block, so it never goes backwards.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

namespace weir::tls_counters {

inline constexpr uint64_t kMagic = 0x31746e43534c5457;  // "WTLSCnt1"
inline constexpr size_t kMaxValues = 255;

struct Block {
  uint64_t magic;
  uint64_t values[kMaxValues];
};

class BlockMemory {
 public:
  // A new zeroed block in a sealed memfd. On failure nullopt, and `error` says why.
  static std::optional<BlockMemory> create(std::string& error);
  // Maps a block another process created; takes ownership of `fd`.
  static std::optional<BlockMemory> map(int fd, std::string& error);

  BlockMemory(BlockMemory&& other) noexcept : fd_(other.fd_), block_(other.block_) {
    other.fd_ = -1;
    other.block_ = nullptr;
  }
  BlockMemory& operator=(BlockMemory&& other) noexcept;
  BlockMemory(const BlockMemory&) = delete;
  BlockMemory& operator=(const BlockMemory&) = delete;
  ~BlockMemory();

  int fd() const { return fd_; }
  void store(size_t index, uint64_t value) {
    if (index < kMaxValues)
      std::atomic_ref<uint64_t>(block_->values[index]).store(value, std::memory_order_relaxed);
  }
  uint64_t load(size_t index) const {
    return index < kMaxValues
               ? std::atomic_ref<uint64_t>(block_->values[index]).load(std::memory_order_relaxed)
               : 0;
  }

 private:
  BlockMemory(int fd, Block* block) : fd_(fd), block_(block) {}
  void release();
  int fd_ = -1;
  Block* block_ = nullptr;
};

}  // namespace weir::tls_counters
