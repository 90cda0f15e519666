#include "dataplane/tcp/mbuf_queue.h"

namespace weir::tcp {

void MbufQueue::push(rte_mbuf* chain) {
  if (chain == nullptr) return;
  if (tail_ == nullptr) {
    head_ = chain;
  } else {
    tail_->next = chain;
  }
  for (rte_mbuf* seg = chain; seg != nullptr; seg = seg->next) {
    bytes_ += seg->data_len;
    ++segments_;
    tail_ = seg;
  }
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
