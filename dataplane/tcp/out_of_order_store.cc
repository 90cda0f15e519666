// OutOfOrderStore: see the header for the sharing rule.
#include "dataplane/tcp/out_of_order_store.h"

#include <algorithm>

namespace weir::tcp {

OutOfOrderStore::OutOfOrderStore(uint32_t segments, uint8_t per_connection)
    : segments_(std::min(segments, kMaxSegments), nullptr),
      seq_(segments_.size()),
      next_(segments_.size(), kNone),
      count_(segments_.size(), 0),
      latest_(segments_.size()),
      position_(segments_.size(), 0),
      per_connection_(std::max<uint8_t>(per_connection, 1)),
      buckets_(per_connection_ + 1u) {
  for (size_t i = segments_.size(); i > 0; --i) give_entry(static_cast<uint16_t>(i - 1));
  // No bucket ever outgrows what the pool can fill, so none allocates on the packet path.
  for (size_t n = 1; n < buckets_.size(); ++n) buckets_[n].reserve(segments_.size() / n + 1);
}

OutOfOrderStore::~OutOfOrderStore() {
  clear_all();
}

uint16_t OutOfOrderStore::take_entry() {
  const uint16_t entry = free_head_;
  free_head_ = next_[entry];
  next_[entry] = kNone;
  --free_count_;
  return entry;
}

void OutOfOrderStore::give_entry(uint16_t entry) {
  segments_[entry] = nullptr;
  next_[entry] = free_head_;
  free_head_ = entry;
  ++free_count_;
}

void OutOfOrderStore::unbucket(const Queue& queue) {
  if (queue.empty()) return;
  std::vector<Queue*>& from = buckets_[count_[queue.head]];
  const uint16_t position = position_[queue.head];
  Queue* moved = from.back();
  from[position] = moved;
  position_[moved->head] = position;
  from.pop_back();
}

void OutOfOrderStore::bucket(Queue& queue) {
  if (queue.empty()) return;
  const uint8_t count = count_[queue.head];
  std::vector<Queue*>& to = buckets_[count];
  position_[queue.head] = static_cast<uint16_t>(to.size());
  to.push_back(&queue);
  highest_bucket_ = std::max(highest_bucket_, count);
}

void OutOfOrderStore::set_head(Queue& queue, uint16_t head) {
  if (head != kNone && !queue.empty()) {
    count_[head] = count_[queue.head];
    position_[head] = position_[queue.head];
    latest_[head] = latest_[queue.head];
  }
  queue.head = head;
}

OutOfOrderStore::Queue* OutOfOrderStore::largest_holder() {
  while (highest_bucket_ > 0 && buckets_[highest_bucket_].empty()) --highest_bucket_;
  return highest_bucket_ > 0 ? buckets_[highest_bucket_].back() : nullptr;
}

void OutOfOrderStore::drop_highest(Queue& queue) {
  unbucket(queue);
  uint16_t* link = &next_[queue.head];  // the first entry stays: the queue holds two or more
  while (next_[*link] != kNone) link = &next_[*link];
  const uint16_t last = *link;
  *link = kNone;
  rte_pktmbuf_free(segments_[last]);
  give_entry(last);
  --count_[queue.head];
  bucket(queue);
}

OutOfOrderStore::Stored OutOfOrderStore::insert(Queue& queue, Seq seq, rte_mbuf* segment,
                                                uint32_t* reclaimed) {
  if (count(queue) >= per_connection_) return Stored::connection_full;
  // Where it goes: after every entry below it; one starting at the same sequence is a duplicate.
  uint16_t* link = &queue.head;
  while (*link != kNone && seq_[*link] < seq) link = &next_[*link];
  if (*link != kNone && seq_[*link] == seq) return Stored::duplicate;
  if (free_head_ == kNone) {
    Queue* victim = largest_holder();
    if (victim == nullptr || victim == &queue || count(*victim) <= count(queue) + 1)
      return Stored::store_exhausted;
    // The victim's first entry stays, so `link` (into this queue) stays valid.
    drop_highest(*victim);
    ++*reclaimed;
  }
  const uint8_t held = count(queue);
  unbucket(queue);
  const uint16_t entry = take_entry();
  segments_[entry] = segment;
  seq_[entry] = seq;
  next_[entry] = *link;
  if (link == &queue.head) {
    set_head(queue, entry);  // moves the queue's state to its new first entry
  } else {
    *link = entry;
  }
  count_[queue.head] = static_cast<uint8_t>(held + 1);
  latest_[queue.head] = seq;
  bucket(queue);
  return Stored::kept;
}

rte_mbuf* OutOfOrderStore::pop_front(Queue& queue) {
  const uint8_t held = count(queue);
  unbucket(queue);
  const uint16_t entry = queue.head;
  rte_mbuf* segment = segments_[entry];
  set_head(queue, next_[entry]);
  give_entry(entry);
  if (!queue.empty()) count_[queue.head] = static_cast<uint8_t>(held - 1);
  bucket(queue);
  return segment;
}

uint32_t OutOfOrderStore::clear(Queue& queue) {
  const uint32_t freed = count(queue);
  unbucket(queue);
  for (uint16_t i = queue.head; i != kNone;) {
    const uint16_t next = next_[i];
    rte_pktmbuf_free(segments_[i]);
    give_entry(i);
    i = next;
  }
  queue.head = kNone;
  return freed;
}

uint32_t OutOfOrderStore::clear_all() {
  uint32_t freed = 0;
  for (size_t n = 1; n < buckets_.size(); ++n) {
    while (!buckets_[n].empty()) freed += clear(*buckets_[n].back());
  }
  highest_bucket_ = 0;
  return freed;
}

}  // namespace weir::tcp
