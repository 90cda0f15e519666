// Session ticket keys, created and rotated by weir-control (docs/tls.md, "Session tickets"): a
// new key every tls.ticket_key_rotation_s, the newest kAccepted kept (the newest encrypts, all of
// them decrypt), the whole set sent to every weir-tls-worker (common/ticket_key_wire.h). The
// clock and the key source are the caller's, so the schedule is tested without waiting.
#pragma once

#include <sys/random.h>

#include <cerrno>
#include <cstdint>
#include <functional>
#include <stdexcept>
#include <utility>
#include <vector>

#include "common/ticket_key_wire.h"

namespace weir::control {

class TicketKeySchedule {
 public:
  using Generate = std::function<ticket_keys::Key()>;

  // The first key, made at `now_ms`; the next rotation is due rotation_ms later.
  TicketKeySchedule(uint64_t rotation_ms, uint64_t now_ms, Generate generate = random_key)
      : rotation_ms_(rotation_ms), generate_(std::move(generate)), due_ms_(now_ms + rotation_ms) {
    keys_.push_back(generate_());
  }
  ~TicketKeySchedule() { wipe(keys_); }
  TicketKeySchedule(const TicketKeySchedule&) = delete;
  TicketKeySchedule& operator=(const TicketKeySchedule&) = delete;

  // Rotates if due: true when the set changed (and must be sent to the workers). A clock that
  // jumped past several periods rotates once: the keys skipped would never have issued a ticket.
  bool tick(uint64_t now_ms) {
    if (now_ms < due_ms_) return false;
    keys_.insert(keys_.begin(), generate_());
    while (keys_.size() > ticket_keys::kAccepted) {
      wipe_one(keys_.back());
      keys_.pop_back();
    }
    ++rotations_;
    due_ms_ = now_ms + rotation_ms_;
    return true;
  }

  const std::vector<ticket_keys::Key>& keys() const { return keys_; }  // newest first
  uint64_t rotations() const { return rotations_; }
  uint64_t due_ms() const { return due_ms_; }

  // 80 bytes from the kernel's CSPRNG (getrandom: blocks only before the pool is initialised).
  static ticket_keys::Key random_key() {
    ticket_keys::Key key;
    fill(key.name.data(), key.name.size());
    fill(key.aes.data(), key.aes.size());
    fill(key.hmac.data(), key.hmac.size());
    return key;
  }

 private:
  static void fill(uint8_t* out, size_t size) {
    while (size > 0) {
      const ssize_t n = getrandom(out, size, 0);
      if (n < 0) {
        if (errno == EINTR) continue;
        throw std::runtime_error("getrandom failed: no ticket key");
      }
      out += n;
      size -= static_cast<size_t>(n);
    }
  }
  static void wipe_one(ticket_keys::Key& key) {
    volatile uint8_t* p = reinterpret_cast<volatile uint8_t*>(&key);
    for (size_t i = 0; i < sizeof key; ++i) p[i] = 0;
  }
  static void wipe(std::vector<ticket_keys::Key>& keys) {
    for (auto& key : keys) wipe_one(key);
  }

  uint64_t rotation_ms_;
  Generate generate_;
  uint64_t due_ms_;
  uint64_t rotations_ = 0;
  std::vector<ticket_keys::Key> keys_;  // newest first
};

}  // namespace weir::control
