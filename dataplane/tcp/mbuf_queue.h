// The byte queue of mbuf segments the TCP stack sends from (a connection's send queue, its parked
// data) and the proxy forwards through (a session's pending queues).
#pragma once

#include <rte_mbuf.h>

#include <cstdint>

namespace weir::tcp {

// A FIFO of bytes held in mbuf segments, linked through the segments' own `next` pointers: no
// allocation, whatever the number of segments. Segments are taken and freed one at a time, so the
// chain-level fields of a queued first segment (pkt_len, nb_segs) are not kept up to date.
class MbufQueue {
 public:
  MbufQueue() = default;
  MbufQueue(const MbufQueue&) = delete;
  MbufQueue& operator=(const MbufQueue&) = delete;
  ~MbufQueue() { clear(); }

  void push(rte_mbuf* chain) { push(chain, false); }
  // Appends `chain`; a segment that fits in the unused room at the end of the queue's last
  // segment is copied there and freed (Linux's collapse), so that a peer sending tiny segments
  // costs buffers in proportion to its bytes, not to its segments. Returns the segments so merged.
  uint32_t push_collapsing(rte_mbuf* chain) { return push(chain, true); }
  // The bytes of the last segment (0 when empty).
  uint32_t tail_bytes() const { return tail_ == nullptr ? 0 : tail_->data_len; }
  // Removes the first segment and returns it as a one-segment packet (or nullptr).
  rte_mbuf* pop();
  // Puts one segment back at the front (the inverse of pop).
  void push_front(rte_mbuf* segment);
  bool empty() const { return head_ == nullptr; }
  uint32_t bytes() const { return bytes_; }
  uint32_t segments() const { return segments_; }
  void clear();
  // Frees `n` bytes from the front (whole segments, then a prefix of the next).
  void drop_front(uint32_t n);
  // Calls piece(segment, offset_in_segment, bytes) for the segments holding `length` bytes
  // starting `offset` bytes from the front, in order.
  template <typename Piece>
  void for_each_piece(uint32_t offset, uint32_t length, Piece&& piece) const {
    for (rte_mbuf* seg = head_; seg != nullptr && length > 0; seg = seg->next) {
      if (offset >= seg->data_len) {
        offset -= seg->data_len;
        continue;
      }
      const uint32_t n = seg->data_len - offset < length ? seg->data_len - offset : length;
      piece(seg, static_cast<uint16_t>(offset), static_cast<uint16_t>(n));
      length -= n;
      offset = 0;
    }
  }

 private:
  uint32_t push(rte_mbuf* chain, bool collapse);
  rte_mbuf* head_ = nullptr;
  rte_mbuf* tail_ = nullptr;
  uint32_t bytes_ = 0;
  uint32_t segments_ = 0;
};

}  // namespace weir::tcp
