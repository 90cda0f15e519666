// A bounded single-producer, single-consumer ring of fixed-size records, for what a worker hands
// to the main lcore off the packet path (dataplane/proxy/frame_events.h). The producer and the
// consumer each own one index and only read the other's: loads and stores with acquire/release
// ordering, never an atomic read-modify-write, so the producer's side costs a copy and a store.
// Full: try_push refuses, and the producer counts the drop.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <type_traits>

namespace weir {

template <class T, size_t Capacity>
class SpscRing {
  static_assert(Capacity > 0 && (Capacity & (Capacity - 1)) == 0, "a power of two");
  static_assert(std::is_trivially_copyable_v<T>);

 public:
  // Producer only.
  bool try_push(const T& record) {
    const uint64_t head = head_.load(std::memory_order_relaxed);
    if (head - tail_.load(std::memory_order_acquire) == Capacity) return false;
    slots_[head & (Capacity - 1)] = record;
    head_.store(head + 1, std::memory_order_release);
    return true;
  }
  // Consumer only.
  bool try_pop(T& record) {
    const uint64_t tail = tail_.load(std::memory_order_relaxed);
    if (tail == head_.load(std::memory_order_acquire)) return false;
    record = slots_[tail & (Capacity - 1)];
    tail_.store(tail + 1, std::memory_order_release);
    return true;
  }
  static constexpr size_t capacity() { return Capacity; }

 private:
  // Apart, so that the producer's stores do not invalidate the consumer's line and back.
  alignas(64) std::atomic<uint64_t> head_{0};  // the producer's: records pushed
  alignas(64) std::atomic<uint64_t> tail_{0};  // the consumer's: records popped
  alignas(64) std::array<T, Capacity> slots_{};
};

}  // namespace weir
