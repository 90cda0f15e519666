// The memory of one channel: two shm rings (common/shm_ring.h) in one sealed memfd, one each way
// between a dataplane worker ("side A") and a TLS worker ("side B"). The creator initialises it
// and passes the fd (SCM_RIGHTS); the other side maps the fd and checks it before use. Sealing
// against shrinking keeps a peer from truncating the file under the other's mapping (SIGBUS).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "common/shm_ring.h"

namespace weir::shm {

inline constexpr uint64_t kMinRingCapacity = 4096;
inline constexpr uint64_t kMaxRingCapacity = uint64_t{1} << 30;

enum class Side { a, b };  // a writes ring 0 and reads ring 1; b the other way

class ChannelMemory {
 public:
  // A new channel with two rings of `ring_capacity` bytes (a power of two in
  // [kMinRingCapacity, kMaxRingCapacity]). On failure, nullopt and `error` says why.
  static std::optional<ChannelMemory> create(uint64_t ring_capacity, std::string& error);
  // Maps a channel another process created; takes ownership of `fd`.
  static std::optional<ChannelMemory> map(int fd, std::string& error);

  ChannelMemory(ChannelMemory&& other) noexcept;
  ChannelMemory& operator=(ChannelMemory&& other) noexcept;
  ChannelMemory(const ChannelMemory&) = delete;
  ChannelMemory& operator=(const ChannelMemory&) = delete;
  ~ChannelMemory();

  int fd() const { return fd_; }
  uint64_t ring_capacity() const { return capacity_; }
  RingShared* ring(int index) const;
  uint8_t* data(int index) const;

  // This side's ends. `peer_event` wakes the peer (it reads what we write, or waits for the space
  // we free); -1 for a peer that never sleeps.
  RingWriter writer(Side side, uint32_t max_payload, int peer_event) const;
  RingReader reader(Side side, uint32_t max_payload, int peer_event) const;

 private:
  ChannelMemory(int fd, uint8_t* base, size_t size, uint64_t capacity)
      : fd_(fd), base_(base), size_(size), capacity_(capacity) {}
  void release();

  int fd_ = -1;
  uint8_t* base_ = nullptr;
  size_t size_ = 0;
  uint64_t capacity_ = 0;
};

}  // namespace weir::shm
