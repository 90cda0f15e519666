// A single-producer single-consumer ring of framed records in shared memory (a memfd mapped by two
// processes: common/shm_channel.h). The TLS channel between dataplane workers and weir-tls-worker
// processes is built on it (docs/tls.md, "The channel").
//
// - Records: a 16-byte header (session, payload length, kind) and the payload, each record padded
//   to 16 bytes. A record never wraps: when it does not fit before the end of the buffer the
//   producer fills the rest with a padding record and starts again at offset 0.
// - Indices: `head` (producer) and `tail` (consumer) are byte counts that never wrap, each on its
//   own cache line, written with store-release and read with load-acquire. No lock and no atomic
//   read-modify-write anywhere. Each side caches the other's index and rereads it only when its
//   copy says full (or empty); records are written with plain stores and published once a batch.
// - Wake-ups: a consumer about to block announces it (an odd `sleep_seq`), issues a full fence and
//   looks at `head` once more; a producer, after publishing, issues a full fence and reads
//   `sleep_seq`: odd and not yet signalled means one eventfd write. So an eventfd is written once
//   per sleep, never while the consumer is busy, and never missed (each side's fence orders its
//   store before its load: one of the two sees the other). The same runs the other way for a
//   producer waiting for space.
// - Distrust: the other side may be buggy or compromised. Capacities are each side's own copy,
//   indices and record headers read from shared memory are checked before use, and a violation
//   makes the ring `broken()` (its owner resets what went over it), never an out-of-bounds access.
#pragma once

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>

namespace weir::shm {

inline constexpr size_t kCacheLine = 64;
inline constexpr size_t kRecordAlign = 16;
inline constexpr uint16_t kPaddingKind = 0;  // filler to the end of the buffer; never delivered

struct RecordHeader {
  uint64_t session;
  uint32_t length;  // payload bytes, without the padding to kRecordAlign
  uint16_t kind;
  uint16_t reserved;
};
static_assert(sizeof(RecordHeader) == kRecordAlign);

// The shared part of one ring, at the start of its region; the data follows it.
struct RingShared {
  alignas(kCacheLine) std::atomic<uint64_t> head;  // written by the producer only
  std::atomic<uint32_t> producer_sleep_seq;        // odd: waiting for space
  alignas(kCacheLine) std::atomic<uint64_t> tail;  // written by the consumer only
  std::atomic<uint32_t> consumer_sleep_seq;        // odd: waiting for records
  alignas(kCacheLine) uint64_t capacity;           // set once, before sharing
};
static_assert(sizeof(RingShared) == 3 * kCacheLine);
static_assert(std::atomic<uint64_t>::is_always_lock_free);

inline constexpr size_t record_space(uint32_t payload) {
  return sizeof(RecordHeader) + ((payload + kRecordAlign - 1) & ~(kRecordAlign - 1));
}

// Writes the empty ring's shared part (before the memory is shared).
inline void init_ring(RingShared* ring, uint64_t capacity) {
  ring->head.store(0, std::memory_order_relaxed);
  ring->tail.store(0, std::memory_order_relaxed);
  ring->producer_sleep_seq.store(0, std::memory_order_relaxed);
  ring->consumer_sleep_seq.store(0, std::memory_order_relaxed);
  ring->capacity = capacity;
}

// Writes `value` to an eventfd (a wake-up); a full counter (never in practice) is ignored, as a
// wake-up is already pending then.
inline void signal_event(int fd) {
  if (fd < 0) return;
  const uint64_t one = 1;
  [[maybe_unused]] const ssize_t n = ::write(fd, &one, sizeof one);
}

// One side's half of the wake-up protocol: after publishing its index (store-release), a full
// fence, then the peer's sleep sequence: odd (asleep) and not yet signalled means one eventfd
// write. The fence pairs with the one in the peer's prepare_sleep().
class Waker {
 public:
  explicit Waker(int event_fd) : event_fd_(event_fd) {}
  void wake_if_asleep(const std::atomic<uint32_t>& peer_sleep_seq) {
    std::atomic_thread_fence(std::memory_order_seq_cst);
    const uint32_t seq = peer_sleep_seq.load(std::memory_order_acquire);
    if ((seq & 1) != 0 && seq != signalled_seq_) {
      signalled_seq_ = seq;
      ++wakeups_;
      signal_event(event_fd_);
    }
  }
  uint64_t wakeups() const { return wakeups_; }

 private:
  int event_fd_;
  uint32_t signalled_seq_ = 0;
  uint64_t wakeups_ = 0;
};

class RingWriter {
 public:
  // `capacity` is the writer's own knowledge (a power of two, a multiple of kRecordAlign);
  // `max_payload` bounds one record. `consumer_event` is written to wake a sleeping consumer.
  RingWriter(RingShared* shared, uint8_t* data, uint64_t capacity, uint32_t max_payload,
             int consumer_event)
      : shared_(shared),
        data_(data),
        capacity_(capacity),
        max_payload_(max_payload),
        waker_(consumer_event),
        head_(shared->head.load(std::memory_order_relaxed)),
        published_(head_),
        tail_cache_(shared->tail.load(std::memory_order_acquire)),
        // Past any value a previous producer of this ring left, and even: awake.
        sleep_seq_((shared->producer_sleep_seq.load(std::memory_order_relaxed) + 2) & ~1u) {}

  // Room for a record of `length` payload bytes: a pointer to write the payload to, then commit().
  // Null when the ring is full (counted) or broken, or `length` exceeds max_payload.
  uint8_t* reserve(uint64_t session, uint16_t kind, uint32_t length) {
    if (broken_ || length > max_payload_ || kind == kPaddingKind) return nullptr;
    const uint64_t space = record_space(length);
    const uint64_t to_end = capacity_ - (head_ & (capacity_ - 1));
    if (!room_for(needed_for(length))) {
      ++full_;
      return nullptr;
    }
    if (space > to_end) {
      write_header(head_ & (capacity_ - 1), 0, kPaddingKind,
                   static_cast<uint32_t>(to_end - sizeof(RecordHeader)));
      head_ += to_end;
    }
    const uint64_t at = head_ & (capacity_ - 1);
    write_header(at, session, kind, length);
    pending_ = space;
    return data_ + at + sizeof(RecordHeader);
  }
  void commit() {
    head_ += pending_;
    pending_ = 0;
  }
  // Commits the reserved record with `length` (at most the reserved length) payload bytes: for a
  // producer that writes straight into the ring and learns the length as it goes.
  void commit(uint32_t length) {
    RecordHeader header;
    const uint64_t at = head_ & (capacity_ - 1);
    std::memcpy(&header, data_ + at, sizeof header);
    header.length = std::min(header.length, length);
    std::memcpy(data_ + at, &header, sizeof header);
    pending_ = record_space(header.length);
    commit();
  }

  bool try_write(uint64_t session, uint16_t kind, std::span<const uint8_t> payload) {
    uint8_t* to = reserve(session, kind, static_cast<uint32_t>(payload.size()));
    if (to == nullptr) return false;
    if (!payload.empty()) std::memcpy(to, payload.data(), payload.size());
    commit();
    return true;
  }

  // Makes every committed record visible, and wakes the consumer if it announced a sleep.
  void publish() {
    if (head_ == published_) return;
    published_ = head_;
    shared_->head.store(head_, std::memory_order_release);
    waker_.wake_if_asleep(shared_->consumer_sleep_seq);
  }

  // The producer waiting for `needed_bytes` of space: announce, fence, look again. True: still
  // short, block on the producer's eventfd; then call awake().
  bool prepare_sleep(uint64_t needed_bytes) {
    sleep_seq_ += 1;  // odd
    shared_->producer_sleep_seq.store(sleep_seq_, std::memory_order_release);
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (!room_for(needed_bytes)) return true;
    awake();
    return false;
  }
  void awake() {
    if ((sleep_seq_ & 1) == 0) return;
    sleep_seq_ += 1;  // even
    shared_->producer_sleep_seq.store(sleep_seq_, std::memory_order_release);
  }

  // Whether `bytes` are free; rereads the consumer's tail only when the cached view says no.
  bool has_room(uint64_t bytes) { return room_for(bytes); }
  // Bytes free, as last seen.
  uint64_t free_bytes() const { return capacity_ - (head_ - tail_cache_); }
  // Where the last committed record ends: a byte count that never wraps, comparable with
  // consumed().
  uint64_t position() const { return head_; }
  // The consumer's tail, reread (and checked) now: every record that ends at or before it has been
  // consumed.
  uint64_t consumed() {
    room_for(capacity_ + 1);  // never true: always rereads the tail
    return tail_cache_;
  }
  uint64_t full_count() const { return full_; }
  uint64_t wakeups() const { return waker_.wakeups(); }
  bool broken() const { return broken_; }

 private:
  bool room_for(uint64_t needed) {
    if (capacity_ - (head_ - tail_cache_) >= needed) return true;
    const uint64_t tail = shared_->tail.load(std::memory_order_acquire);
    if (tail < tail_cache_ || tail > published_) {  // the consumer cannot have done that
      broken_ = true;
      return false;
    }
    tail_cache_ = tail;
    return capacity_ - (head_ - tail_cache_) >= needed;
  }
  // The bytes a record of `length` takes from head_: its space, plus the padding to the end of the
  // buffer when it does not fit before it.
  uint64_t needed_for(uint32_t length) const {
    const uint64_t space = record_space(length);
    const uint64_t to_end = capacity_ - (head_ & (capacity_ - 1));
    return space <= to_end ? space : to_end + space;
  }
  void write_header(uint64_t offset, uint64_t session, uint16_t kind, uint32_t length) {
    const RecordHeader header{session, length, kind, 0};
    std::memcpy(data_ + offset, &header, sizeof header);
  }

  RingShared* shared_;
  uint8_t* data_;
  uint64_t capacity_;
  uint32_t max_payload_;
  Waker waker_;         // wakes the consumer
  uint64_t head_;       // committed, not necessarily published
  uint64_t published_;  // the last head stored to shared memory
  uint64_t tail_cache_;
  uint64_t pending_ = 0;
  uint64_t full_ = 0;
  uint32_t sleep_seq_;
  bool broken_ = false;
};

struct Record {
  uint64_t session;
  uint16_t kind;
  std::span<const uint8_t> payload;  // in shared memory: valid until release()
};

class RingReader {
 public:
  RingReader(RingShared* shared, const uint8_t* data, uint64_t capacity, uint32_t max_payload,
             int producer_event)
      : shared_(shared),
        data_(data),
        capacity_(capacity),
        max_payload_(max_payload),
        waker_(producer_event),
        tail_(shared->tail.load(std::memory_order_relaxed)),
        released_(tail_),
        head_cache_(tail_),
        sleep_seq_((shared->consumer_sleep_seq.load(std::memory_order_relaxed) + 2) & ~1u) {}

  // The next record, if one is published (padding skipped). Its payload stays valid until
  // release(); consume it with pop().
  std::optional<Record> peek() {
    while (!broken_) {
      if (tail_ == head_cache_ && !refresh()) return std::nullopt;
      const uint64_t offset = tail_ & (capacity_ - 1);
      RecordHeader header;
      std::memcpy(&header, data_ + offset, sizeof header);
      const uint64_t space = record_space(header.length);
      const uint64_t to_end = capacity_ - offset;
      const bool padding = header.kind == kPaddingKind;
      if ((padding && space != to_end) || (!padding && header.length > max_payload_) ||
          space > to_end || space > head_cache_ - tail_) {
        broken_ = true;  // a header the producer could not have written
        return std::nullopt;
      }
      if (padding) {
        tail_ += space;
        continue;
      }
      current_space_ = space;
      return Record{header.session, header.kind,
                    std::span<const uint8_t>(data_ + offset + sizeof header, header.length)};
    }
    return std::nullopt;
  }
  void pop() {
    tail_ += current_space_;
    current_space_ = 0;
  }

  // Hands the space of every popped record back to the producer (one store a batch), and wakes
  // it if it waits for space.
  void release() {
    if (tail_ == released_) return;
    released_ = tail_;
    shared_->tail.store(tail_, std::memory_order_release);
    waker_.wake_if_asleep(shared_->producer_sleep_seq);
  }

  // The consumer with nothing to do: announce, fence, look again. True: still empty, block on the
  // consumer's eventfd, then call awake(). False: records arrived meanwhile (awake already).
  bool prepare_sleep() {
    release();
    sleep_seq_ += 1;  // odd
    shared_->consumer_sleep_seq.store(sleep_seq_, std::memory_order_release);
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (tail_ == head_cache_ && !refresh()) return !broken_;
    awake();
    return false;
  }
  void awake() {
    if ((sleep_seq_ & 1) == 0) return;
    sleep_seq_ += 1;  // even
    shared_->consumer_sleep_seq.store(sleep_seq_, std::memory_order_release);
  }

  bool empty() { return !peek().has_value(); }
  bool broken() const { return broken_; }
  uint64_t wakeups() const { return waker_.wakeups(); }

 private:
  // Rereads the producer's head; false if nothing new.
  bool refresh() {
    const uint64_t head = shared_->head.load(std::memory_order_acquire);
    if (head < head_cache_ || head - released_ > capacity_) {
      broken_ = true;
      return false;
    }
    head_cache_ = head;
    return head_cache_ != tail_;
  }

  RingShared* shared_;
  const uint8_t* data_;
  uint64_t capacity_;
  uint32_t max_payload_;
  Waker waker_;        // wakes the producer
  uint64_t tail_;      // popped, not necessarily released
  uint64_t released_;  // the last tail stored to shared memory
  uint64_t head_cache_;
  uint64_t current_space_ = 0;
  uint32_t sleep_seq_;
  bool broken_ = false;
};

}  // namespace weir::shm
