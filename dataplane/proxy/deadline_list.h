// An intrusive list of items ordered by when a clock of theirs started: an item is appended with
// the time it is (re)started, and a worker's time only grows, so the head is always the first to
// expire. Starting, stopping and finding what expired are O(1) whatever the number of items, so
// a timeout costs a worker nothing per idle session (the proxy's inactivity and frame timeouts).
#pragma once

#include <cstdint>

namespace weir::proxy {

// In every proxied session three times, so no flag of its own: an item is on its list when it has a
// predecessor or is the list's head.
template <class T>
struct DeadlineLink {
  T* prev = nullptr;  // null for the head, and off the list
  T* next = nullptr;
  uint64_t since_us = 0;  // when the clock started
};

template <class T, DeadlineLink<T> T::*Link>
class DeadlineList {
 public:
  // Starts the item's clock again at `now_us`: it moves to the tail.
  void restart(T& item, uint64_t now_us) {
    DeadlineLink<T>& link = item.*Link;
    if (tail_ == &item) {
      link.since_us = now_us;
      return;
    }
    remove(item);
    link.since_us = now_us;
    link.prev = tail_;
    link.next = nullptr;
    (tail_ != nullptr ? (tail_->*Link).next : head_) = &item;
    tail_ = &item;
  }

  // Starts the clock unless it runs already.
  void start(T& item, uint64_t now_us) {
    if (!running(item)) restart(item, now_us);
  }

  // Stops the item's clock (nothing if it was not running).
  void remove(T& item) {
    DeadlineLink<T>& link = item.*Link;
    if (!running(item)) return;
    (link.prev != nullptr ? (link.prev->*Link).next : head_) = link.next;
    (link.next != nullptr ? (link.next->*Link).prev : tail_) = link.prev;
    link.prev = link.next = nullptr;
  }

  // The item whose clock has run longest, if it has run for `timeout_us` by `now_us`.
  T* expired(uint64_t now_us, uint64_t timeout_us) const {
    if (head_ == nullptr || (head_->*Link).since_us + timeout_us > now_us) return nullptr;
    return head_;
  }

  bool running(const T& item) const { return (item.*Link).prev != nullptr || head_ == &item; }

 private:
  T* head_ = nullptr;
  T* tail_ = nullptr;
};

}  // namespace weir::proxy
