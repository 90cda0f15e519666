#include "dataplane/tcp/mbuf_queue.h"

#include <cstring>

namespace weir::tcp {

namespace {

// Whether `segment`'s bytes can be copied into the room after `tail`'s data. Only a buffer of the
// queue's own (direct, not external) is written, and only past its data: indirect mbufs that share
// it (pieces of segments in flight, which raise its reference count) each read just their own
// range, which the copy leaves as it is.
bool fits_after(const rte_mbuf* tail, const rte_mbuf* segment) {
  return tail != nullptr && RTE_MBUF_DIRECT(tail) && segment->data_len > 0 &&
         segment->data_len <= rte_pktmbuf_tailroom(tail);
}

}  // namespace

uint32_t MbufQueue::push(rte_mbuf* chain, bool collapse) {
  uint32_t merged = 0;
  while (chain != nullptr) {
    rte_mbuf* seg = chain;
    chain = seg->next;
    seg->next = nullptr;
    bytes_ += seg->data_len;
    if (collapse && fits_after(tail_, seg)) {
      std::memcpy(rte_pktmbuf_mtod_offset(tail_, uint8_t*, tail_->data_len),
                  rte_pktmbuf_mtod(seg, const uint8_t*), seg->data_len);
      tail_->data_len = static_cast<uint16_t>(tail_->data_len + seg->data_len);
      tail_->pkt_len = tail_->data_len;
      seg->nb_segs = 1;
      rte_pktmbuf_free_seg(seg);
      ++merged;
      continue;
    }
    if (tail_ == nullptr) {
      head_ = seg;
    } else {
      tail_->next = seg;
    }
    tail_ = seg;
    ++segments_;
  }
  return merged;
}

rte_mbuf* MbufQueue::pop() {
  rte_mbuf* seg = head_;
  if (seg == nullptr) return nullptr;
  head_ = seg->next;
  if (head_ == nullptr) tail_ = nullptr;
  seg->next = nullptr;
  seg->nb_segs = 1;
  seg->pkt_len = seg->data_len;
  bytes_ -= seg->data_len;
  --segments_;
  return seg;
}

void MbufQueue::push_front(rte_mbuf* segment) {
  segment->next = head_;
  head_ = segment;
  if (tail_ == nullptr) tail_ = segment;
  bytes_ += segment->data_len;
  ++segments_;
}

void MbufQueue::clear() {
  while (rte_mbuf* seg = pop()) rte_pktmbuf_free_seg(seg);
}

void MbufQueue::drop_front(uint32_t n) {
  while (n > 0 && head_ != nullptr) {
    if (head_->data_len <= n) {
      n -= head_->data_len;
      rte_pktmbuf_free_seg(pop());
    } else {
      head_->data_off = static_cast<uint16_t>(head_->data_off + n);
      head_->data_len = static_cast<uint16_t>(head_->data_len - n);
      bytes_ -= n;
      n = 0;
    }
  }
}

}  // namespace weir::tcp
