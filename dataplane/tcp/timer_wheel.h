// One timer wheel per worker: the hashed wheel of Varghese and Lauck ("Hashed and Hierarchical
// Timing Wheels", SOSP 1987, scheme 6). Timers are intrusive nodes embedded in the objects that
// own them (a connection's retransmission, delayed-ACK, persist, keepalive, TIME_WAIT timers), so
// arming and cancelling are O(1) list operations and nothing is allocated per packet. A timer
// further away than one turn of the wheel waits in its slot and is skipped until its turn comes.
//
// Guarantees: a timer never fires before its deadline, and fires at the first tick at or after
// it (so at most one tick late, plus however late advance() is called). Within one advance() that
// covers less than a turn, timers fire in deadline-tick order; after a longer absence every due
// timer fires, slot by slot. The callback may arm or cancel any timer, the fired one included.
#pragma once

#include <cassert>
#include <cstdint>
#include <vector>

namespace weir::tcp {

class TimerWheel;

class Timer {
 public:
  Timer() = default;
  Timer(const Timer&) = delete;
  Timer& operator=(const Timer&) = delete;
  ~Timer() { assert(!armed() && "destroying an armed timer: cancel it first"); }

  bool armed() const { return prev_ != nullptr; }
  uint64_t deadline_tick() const { return deadline_tick_; }
  // A byte the owner keeps in the timer (which of its timers this is), so that an owner with
  // several needs no pointer or kind of its own beside each (tcp_stack.h's connections).
  uint8_t tag() const { return static_cast<uint8_t>(tag_); }
  void set_tag(uint8_t tag) { tag_ = tag; }

 private:
  friend class TimerWheel;
  Timer* prev_ = nullptr;  // null while not armed
  Timer* next_ = nullptr;
  uint64_t deadline_tick_ : 56 = 0;  // ticks since the clock's epoch: 2^56 ms is millions of years
  uint64_t tag_ : 8 = 0;
};
static_assert(sizeof(Timer) == 24, "a timer is embedded three times in every connection's record");

class TimerWheel {
 public:
  // `slots` must be a power of two; `tick_us` is the resolution. `now_us` is the current time.
  TimerWheel(uint32_t slots, uint64_t tick_us, uint64_t now_us)
      : heads_(slots), mask_(slots - 1), tick_us_(tick_us), current_tick_(now_us / tick_us) {
    assert(slots >= 2 && (slots & mask_) == 0 && tick_us > 0);
    for (Timer& head : heads_) head.prev_ = head.next_ = &head;  // empty circular lists
  }
  ~TimerWheel() {
    for (Timer& head : heads_) {
      while (head.next_ != &head) unlink(*head.next_);
      head.prev_ = nullptr;  // the sentinel is not an armed timer
    }
  }
  TimerWheel(const TimerWheel&) = delete;
  TimerWheel& operator=(const TimerWheel&) = delete;

  uint64_t tick_us() const { return tick_us_; }
  size_t armed_count() const { return armed_; }

  // Arms (or re-arms) `timer` to fire at `deadline_us`. A deadline in the past fires at the next
  // advance(), never synchronously.
  void arm(Timer& timer, uint64_t deadline_us) {
    if (timer.armed()) unlink(timer);
    uint64_t tick = (deadline_us + tick_us_ - 1) / tick_us_;  // the first tick at or after it
    if (tick <= current_tick_) tick = current_tick_ + 1;
    timer.deadline_tick_ = tick;
    link(heads_[tick & mask_], timer);
  }

  void cancel(Timer& timer) {
    if (timer.armed()) unlink(timer);
  }

  // Runs every tick up to `now_us`, calling on_expire(Timer&) for each timer due, already
  // disarmed. Returns how many fired.
  template <typename OnExpire>
  size_t advance(uint64_t now_us, OnExpire&& on_expire) {
    const uint64_t now_tick = now_us / tick_us_;
    size_t fired = 0;
    if (now_tick <= current_tick_) return 0;
    if (now_tick - current_tick_ > mask_) {
      // Away for more than a turn: every slot holds due timers, visit each once in tick order of
      // its earliest possible deadline.
      const uint64_t from = current_tick_ + 1;
      for (uint64_t tick = from; tick <= from + mask_; ++tick) {
        current_tick_ = tick;
        fired += expire_slot(tick & mask_, now_tick, on_expire);
      }
      current_tick_ = now_tick;
      return fired;
    }
    while (current_tick_ < now_tick) {
      ++current_tick_;
      fired += expire_slot(current_tick_ & mask_, current_tick_, on_expire);
    }
    return fired;
  }

 private:
  template <typename OnExpire>
  size_t expire_slot(uint64_t slot, uint64_t due_tick, OnExpire& on_expire) {
    // Detach the slot first: callbacks may arm timers into this very slot (for a later turn).
    Timer& head = heads_[slot];
    if (head.next_ == &head) return 0;
    Timer pending_head;
    pending_head.prev_ = head.prev_;
    pending_head.next_ = head.next_;
    pending_head.next_->prev_ = &pending_head;
    pending_head.prev_->next_ = &pending_head;
    head.prev_ = head.next_ = &head;
    size_t fired = 0;
    while (pending_head.next_ != &pending_head) {
      Timer& timer = *pending_head.next_;
      unlink(timer);
      if (timer.deadline_tick_ <= due_tick) {
        ++fired;
        on_expire(timer);
      } else {
        link(head, timer);  // a later turn of the wheel
      }
    }
    pending_head.prev_ = pending_head.next_ = nullptr;
    return fired;
  }

  void link(Timer& head, Timer& timer) {
    timer.prev_ = head.prev_;
    timer.next_ = &head;
    head.prev_->next_ = &timer;
    head.prev_ = &timer;
    ++armed_;
  }
  void unlink(Timer& timer) {
    timer.prev_->next_ = timer.next_;
    timer.next_->prev_ = timer.prev_;
    timer.prev_ = timer.next_ = nullptr;
    --armed_;
  }

  std::vector<Timer> heads_;  // sentinels of circular doubly linked lists
  uint64_t mask_;
  uint64_t tick_us_;
  uint64_t current_tick_;
  size_t armed_ = 0;
};

}  // namespace weir::tcp
