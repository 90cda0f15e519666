// The sender's SACK scoreboard (RFC 6675 section 3): which bytes above SND.UNA the peer has
// reported holding, and from that which holes are lost, how much is in the network (pipe) and what
// to retransmit next. Pure logic, no packets: the TcpStack feeds it the SACK blocks of each ACK.
//
// A connection holds a scoreboard only while the peer reports holes (the TcpStack takes one from a
// per-worker pool), so an idle connection carries none. The ranges are kept sorted and disjoint;
// beyond kMaxRanges the lowest ranges are kept (the holes they bound are the ones to repair first)
// and the highest are forgotten, which only makes the sender more conservative.
#pragma once

#include <array>
#include <cstdint>
#include <optional>

#include "dataplane/tcp/seq.h"

namespace weir::tcp {

class SackScoreboard {
 public:
  static constexpr uint8_t kMaxRanges = 8;
  static constexpr uint32_t kDupThresh = 3;  // RFC 6675 section 2 (DupThresh)

  struct Range {
    Seq start, end;  // [start, end)
  };
  struct Hole {
    Seq start;
    uint32_t length;
  };

  void clear() {
    count_ = 0;
    high_rxt_ = Seq();
    high_rxt_valid_ = false;
    lost_below_ = Seq();
    lost_below_valid_ = false;
  }
  bool empty() const { return count_ == 0; }
  uint8_t ranges() const { return count_; }
  const Range& range(uint8_t i) const { return ranges_[i]; }

  // Forgets everything at or below a new SND.UNA (RFC 6675 5: cumulatively acknowledged data
  // leaves the scoreboard).
  void advance(Seq una) {
    uint8_t kept = 0;
    for (uint8_t i = 0; i < count_; ++i) {
      Range r = ranges_[i];
      if (r.end <= una) continue;
      if (r.start < una) r.start = una;
      ranges_[kept++] = r;
    }
    count_ = kept;
    if (high_rxt_valid_ && high_rxt_ < una) high_rxt_ = una;
  }

  // Records a SACK block (RFC 2018 3) for data the sender holds, [una, data_end). Blocks outside
  // it (stale, D-SACK below SND.UNA, or beyond what was sent) are ignored. Returns the number of
  // bytes newly marked SACKed (RFC 6675's duplicate-ACK definition needs to know).
  uint32_t add(Seq start, Seq end, Seq una, Seq data_end) {
    if (start < una) start = una;
    if (end > data_end) end = data_end;
    if (!(start < end)) return 0;
    const uint32_t before = sacked_bytes();
    // Insert in order, then merge overlapping or touching neighbours.
    uint8_t at = 0;
    while (at < count_ && ranges_[at].start < start) ++at;
    if (count_ == kMaxRanges) {
      if (at == kMaxRanges) return 0;  // above every kept range: forget it (see the header)
      --count_;                        // drop the highest range to make room
    }
    for (uint8_t i = count_; i > at; --i) ranges_[i] = ranges_[i - 1];
    ranges_[at] = Range{start, end};
    ++count_;
    uint8_t out = 0;
    for (uint8_t i = 0; i < count_; ++i) {
      if (out > 0 && ranges_[i].start <= ranges_[out - 1].end) {
        ranges_[out - 1].end = seq_max(ranges_[out - 1].end, ranges_[i].end);
      } else {
        ranges_[out++] = ranges_[i];
      }
    }
    count_ = out;
    const uint32_t after = sacked_bytes();
    return after > before ? after - before : 0;
  }

  uint32_t sacked_bytes() const {
    uint32_t total = 0;
    for (uint8_t i = 0; i < count_; ++i)
      total += static_cast<uint32_t>(ranges_[i].end - ranges_[i].start);
    return total;
  }
  Seq highest_sacked() const { return ranges_[count_ - 1].end; }

  // RFC 6675 section 4, IsLost(SeqNum): DupThresh discontiguous SACKed ranges above `seq`, or more
  // than (DupThresh - 1) * SMSS SACKed bytes above it; or below the mark set by mark_lost_below().
  bool is_lost(Seq seq, uint32_t smss) const {
    if (lost_below_valid_ && seq < lost_below_) return true;
    uint32_t above = 0;
    uint32_t ranges_above = 0;
    for (uint8_t i = 0; i < count_; ++i) {
      if (ranges_[i].end <= seq) continue;
      ++ranges_above;
      above += static_cast<uint32_t>(ranges_[i].end - seq_max(ranges_[i].start, seq));
    }
    return ranges_above >= kDupThresh || above > (kDupThresh - 1) * smss;
  }

  // RFC 6675 section 4, SetPipe(): the bytes the sender believes are in the network, from SND.UNA
  // to HighData (snd_max): every byte neither SACKed nor lost, plus every retransmitted byte.
  // Whether a byte is lost is the same across a hole (no SACKed byte lies inside it), so the walk
  // is per hole, not per segment.
  uint32_t pipe(Seq una, Seq high_data, uint32_t smss) const {
    uint32_t pipe = 0;
    Seq at = una;
    for (uint8_t i = 0; i <= count_; ++i) {
      const Seq hole_end = i < count_ ? ranges_[i].start : high_data;
      if (at < hole_end) {
        const uint32_t length = static_cast<uint32_t>(hole_end - at);
        if (!is_lost(at, smss)) pipe += length;
        if (high_rxt_valid_ && at < high_rxt_)
          pipe += static_cast<uint32_t>(seq_min(high_rxt_, hole_end) - at);
      }
      if (i < count_) at = seq_max(at, ranges_[i].end);
    }
    return pipe;
  }

  // RFC 6675 section 4, NextSeg() rule 1: the first byte above HighRxt (and SND.UNA) that is not
  // SACKed and is lost; the hole from it, up to the next SACKed range.
  std::optional<Hole> next_lost(Seq una, uint32_t smss) const { return next_hole(una, smss, true); }
  // Rule 3: the same without the loss condition, below the highest SACKed byte.
  std::optional<Hole> next_unsacked(Seq una, uint32_t smss) const {
    return next_hole(una, smss, false);
  }

  // Declares every unSACKed byte below `end` lost, however few SACKed bytes lie above it: the
  // time-based rule of RFC 8985 (RACK) in its sequence form. Data sent later than a hole was
  // delivered and a reordering window has passed, or an acknowledged retransmission showed that
  // everything sent before it and still missing is gone. Only ever moves up.
  void mark_lost_below(Seq end) {
    if (!lost_below_valid_ || lost_below_ < end) lost_below_ = end;
    lost_below_valid_ = true;
  }
  // Whether an unSACKed byte below the highest SACKed one is not yet counted lost: what a
  // reordering window waits on.
  bool has_unmarked_hole(Seq una, uint32_t smss) const {
    if (count_ == 0) return false;
    const auto hole = next_hole(una, smss, false);
    return hole && !is_lost(hole->start, smss);
  }

  // The highest sequence retransmitted in this recovery (HighRxt), one past its last byte; and
  // when the retransmissions from SND.UNA up began (the oldest still unacknowledged went then).
  void retransmitted(Seq end, uint64_t now_us) {
    if (!high_rxt_valid_) rxt_start_us_ = now_us;
    if (!high_rxt_valid_ || high_rxt_ < end) high_rxt_ = end;
    high_rxt_valid_ = true;
  }
  // Whether the retransmission at `una` left before `before_us` and is still unacknowledged.
  bool retransmitted_before(Seq una, uint64_t before_us) const {
    return high_rxt_valid_ && una < high_rxt_ && rxt_start_us_ < before_us;
  }
  // The retransmissions were lost themselves: the holes from SND.UNA up go again (still lost, so
  // NextSeg finds them), and leave the pipe.
  void retransmissions_lost() { high_rxt_valid_ = false; }

 private:
  std::optional<Hole> next_hole(Seq una, uint32_t smss, bool lost_only) const {
    Seq at = high_rxt_valid_ ? seq_max(una, high_rxt_) : una;
    for (uint8_t i = 0; i < count_; ++i) {
      if (ranges_[i].end <= at) continue;
      if (at < ranges_[i].start) {
        if (!lost_only || is_lost(at, smss))
          return Hole{at, static_cast<uint32_t>(ranges_[i].start - at)};
        return std::nullopt;  // lost-ness only falls going up: no later hole is lost either
      }
      at = ranges_[i].end;
    }
    return std::nullopt;  // nothing unSACKed below the highest SACKed byte
  }

  std::array<Range, kMaxRanges> ranges_{};
  Seq high_rxt_;
  Seq lost_below_;
  uint64_t rxt_start_us_ = 0;
  bool high_rxt_valid_ = false;
  bool lost_below_valid_ = false;
  uint8_t count_ = 0;
};

}  // namespace weir::tcp
