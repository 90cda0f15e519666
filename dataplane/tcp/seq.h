// TCP sequence numbers as a strong type. RFC 9293 3.4: sequence numbers live in a space of 2^32
// and "all arithmetic dealing with sequence numbers must be performed modulo 2^32"; a comparison
// is meaningful only between numbers less than 2^31 apart, and is done on the signed difference
// (the "serial number arithmetic" of RFC 1982 specialised to 32 bits). A plain uint32_t compared
// with < gets this wrong at every wrap, which is why the type has no implicit conversions.
#pragma once

#include <cstdint>

namespace weir::tcp {

class Seq {
 public:
  constexpr Seq() = default;
  constexpr explicit Seq(uint32_t raw) : raw_(raw) {}

  constexpr uint32_t raw() const { return raw_; }

  // Advancing by a byte count wraps modulo 2^32.
  friend constexpr Seq operator+(Seq s, uint32_t n) { return Seq(s.raw_ + n); }
  friend constexpr Seq operator-(Seq s, uint32_t n) { return Seq(s.raw_ - n); }
  constexpr Seq& operator+=(uint32_t n) {
    raw_ += n;
    return *this;
  }
  // The signed distance from b to a (a - b), valid while |a - b| < 2^31.
  friend constexpr int32_t operator-(Seq a, Seq b) { return static_cast<int32_t>(a.raw_ - b.raw_); }

  friend constexpr bool operator==(Seq a, Seq b) { return a.raw_ == b.raw_; }
  friend constexpr bool operator<(Seq a, Seq b) { return (a - b) < 0; }
  friend constexpr bool operator<=(Seq a, Seq b) { return (a - b) <= 0; }
  friend constexpr bool operator>(Seq a, Seq b) { return (a - b) > 0; }
  friend constexpr bool operator>=(Seq a, Seq b) { return (a - b) >= 0; }

 private:
  uint32_t raw_ = 0;
};

constexpr Seq seq_max(Seq a, Seq b) {
  return a < b ? b : a;
}
constexpr Seq seq_min(Seq a, Seq b) {
  return a < b ? a : b;
}

// RFC 9293 3.10.7.4's acceptability tests are written as "left <= s < left + size": true when s
// lies in the half-open window of `size` bytes starting at `left` (never for size 0).
constexpr bool in_window(Seq s, Seq left, uint32_t size) {
  return static_cast<uint32_t>(s.raw() - left.raw()) < size;
}

}  // namespace weir::tcp
