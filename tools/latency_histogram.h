// A fixed-size latency histogram for the load tools (weir-frame-load).
#pragma once

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>

namespace weir::tools {

// Log-linear buckets (as in HdrHistogram): exact below 128 ns, then 64 buckets per power of two,
// so any reported value is within 1/64 of the true one. Fixed size, whatever the run length.
class LatencyHistogram {
 public:
  void record(uint64_t ns) {
    ++counts_[index(ns)];
    ++total_;
    max_ = std::max(max_, ns);
  }

  // The value at quantile q (0..1] in nanoseconds: the top of its bucket, at most the maximum.
  uint64_t quantile(double q) const {
    if (total_ == 0) return 0;
    const auto rank = static_cast<uint64_t>(std::ceil(q * static_cast<double>(total_)));
    uint64_t seen = 0;
    for (size_t i = 0; i < counts_.size(); ++i) {
      seen += counts_[i];
      if (seen >= std::max<uint64_t>(rank, 1)) return std::min(bucket_top(i), max_);
    }
    return max_;
  }

 private:
  static constexpr unsigned kSubBits = 7;
  static constexpr uint64_t kHalf = uint64_t{1} << (kSubBits - 1);

  static size_t index(uint64_t v) {
    const uint64_t bits = static_cast<uint64_t>(std::bit_width(v));
    const uint64_t shift = bits > kSubBits ? bits - kSubBits : 0;
    return static_cast<size_t>(shift * kHalf + (v >> shift));
  }
  static uint64_t bucket_top(size_t i) {
    if (i < 2 * kHalf) return i;
    const uint64_t shift = i / kHalf - 1;
    const uint64_t mantissa = i % kHalf + kHalf;
    return ((mantissa + 1) << shift) - 1;
  }

  std::array<uint64_t, (64 - kSubBits + 2) * kHalf> counts_{};
  uint64_t total_ = 0;
  uint64_t max_ = 0;
};

}  // namespace weir::tools
