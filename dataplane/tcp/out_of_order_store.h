// A worker's out-of-order store: segments that arrived above a hole, kept (sorted by sequence
// number, data starting at the payload) until the hole fills. One pool of entries per worker bounds
// the whole (the SegmentSmack class of attack); each connection holds at most `per_connection` of
// them, in a Queue that lives in its record.
//
// When the pool is empty the store is shared, as Linux prunes a socket's out-of-order queue under
// memory pressure (tcp_prune_ofo_queue): a connection holding fewer segments than another holds
// less one takes the other's highest-sequence segment (what waits furthest from its hole, the least
// useful: RFC 2018 8 lets a receiver renege on SACKed data, whose sender sends it again). Holdings
// thus level out at an equal share; a connection never loses its last segment to another, so none
// that holds anything is starved either. The queues are kept in buckets by their count, so that
// the largest holder is found in at most per_connection steps, whatever the number of connections.
#pragma once

#include <rte_mbuf.h>

#include <cstdint>
#include <vector>

#include "dataplane/tcp/seq.h"

namespace weir::tcp {

class OutOfOrderStore {
 public:
  static constexpr uint16_t kNone = UINT16_MAX;
  static constexpr uint32_t kMaxSegments = kNone - 1;  // entries are named by 16 bits

  // A connection's holding: its entries, lowest sequence first. The rest of what the store knows
  // of it (its count, its place in its bucket) is kept with its first entry, so that a connection's
  // record grows by no more than this.
  struct Queue {
    uint16_t head = kNone;
    bool empty() const { return head == kNone; }
  };

  enum class Stored : uint8_t {
    kept,
    duplicate,        // a segment starting at the same sequence is held: the caller frees it
    connection_full,  // the connection holds per_connection segments
    store_exhausted,  // the pool is empty and no connection holds more than this one plus one
  };

  OutOfOrderStore(uint32_t segments, uint8_t per_connection);
  ~OutOfOrderStore();
  OutOfOrderStore(const OutOfOrderStore&) = delete;
  OutOfOrderStore& operator=(const OutOfOrderStore&) = delete;

  // Keeps `segment` (its data starting at `seq`) in order; frees nothing the caller passed unless
  // it returns kept (then the store owns it). Room may be taken from another connection: the
  // segments reclaimed so are freed and added to `*reclaimed`.
  Stored insert(Queue& queue, Seq seq, rte_mbuf* segment, uint32_t* reclaimed);

  Seq front_seq(const Queue& queue) const { return seq_[queue.head]; }
  rte_mbuf* front(const Queue& queue) const { return segments_[queue.head]; }
  // Removes the lowest entry; the caller owns its mbuf now.
  rte_mbuf* pop_front(Queue& queue);
  // Frees what a queue holds; returns the number of segments freed.
  uint32_t clear(Queue& queue);
  // Frees what every queue holds (memory pressure); returns the number of segments freed.
  uint32_t clear_all();

  // Calls f(seq, mbuf) for each entry, lowest sequence first.
  template <typename F>
  void for_each(const Queue& queue, F&& f) const {
    for (uint16_t i = queue.head; i != kNone; i = next_[i]) f(seq_[i], segments_[i]);
  }

  uint8_t count(const Queue& queue) const { return queue.empty() ? 0 : count_[queue.head]; }
  // Where the segment kept last starts (RFC 2018 4: the first SACK block reports it). Kept here
  // rather than in the connection's record, which then grows by nothing for out-of-order data.
  // The queue must not be empty; the segment itself may have been taken since.
  Seq latest(const Queue& queue) const { return latest_[queue.head]; }
  uint32_t free_segments() const { return free_count_; }
  uint32_t capacity() const { return static_cast<uint32_t>(segments_.size()); }
  uint8_t per_connection() const { return per_connection_; }

 private:
  uint16_t take_entry();
  void give_entry(uint16_t entry);
  // Takes a queue out of its count's bucket before a change, and puts it back into the bucket of
  // its new count after.
  void unbucket(const Queue& queue);
  void bucket(Queue& queue);
  // The queue's first entry changes to `head` (kNone: it is empty): the queue's state moves along.
  void set_head(Queue& queue, uint16_t head);
  // Frees the queue's highest-sequence entry (the queue holds at least two).
  void drop_highest(Queue& queue);
  Queue* largest_holder();

  std::vector<rte_mbuf*> segments_;
  std::vector<Seq> seq_;
  std::vector<uint16_t> next_;  // the next entry of the queue, or of the free list
  // Valid at a queue's first entry only: how many it holds, where it is in buckets_[count], and
  // latest().
  std::vector<uint8_t> count_;
  std::vector<Seq> latest_;
  std::vector<uint16_t> position_;
  uint16_t free_head_ = kNone;
  uint32_t free_count_ = 0;
  uint8_t per_connection_;
  // buckets_[n]: the queues holding n segments (n >= 1).
  std::vector<std::vector<Queue*>> buckets_;
  uint8_t highest_bucket_ = 0;  // no queue holds more (it may hold fewer once this one empties)
};

}  // namespace weir::tcp
