// See shm_channel.h. Layout: a 4 KiB header page (magic, version, capacity), then per ring a 4 KiB
// page holding its RingShared and its data.
#include "common/shm_channel.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace weir::shm {

namespace {

constexpr uint64_t kPage = 4096;
constexpr uint64_t kMagic = 0x5745'4952'5348'4d31;  // "WEIRSHM1"
constexpr uint32_t kVersion = 1;

struct ChannelHeader {
  uint64_t magic;
  uint32_t version;
  uint32_t reserved;
  uint64_t capacity;
};

uint64_t size_for(uint64_t capacity) {
  return kPage + 2 * (kPage + capacity);
}

bool valid_capacity(uint64_t c) {
  return c >= kMinRingCapacity && c <= kMaxRingCapacity && (c & (c - 1)) == 0;
}

std::string errno_text(const char* what) {
  return std::string(what) + ": " + std::strerror(errno);
}

// Maps `size` bytes of `fd` shared; on failure closes the fd.
uint8_t* map_shared(int fd, uint64_t size, std::string& error) {
  void* base = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (base != MAP_FAILED) return static_cast<uint8_t*>(base);
  error = errno_text("mmap");
  close(fd);
  return nullptr;
}

}  // namespace

std::optional<ChannelMemory> ChannelMemory::create(uint64_t ring_capacity, std::string& error) {
  if (!valid_capacity(ring_capacity)) {
    error = "ring capacity " + std::to_string(ring_capacity) + " is not a power of two in [" +
            std::to_string(kMinRingCapacity) + ", " + std::to_string(kMaxRingCapacity) + "]";
    return std::nullopt;
  }
  const int fd = memfd_create("weir-channel", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) {
    error = errno_text("memfd_create");
    return std::nullopt;
  }
  const uint64_t size = size_for(ring_capacity);
  if (ftruncate(fd, static_cast<off_t>(size)) != 0 ||
      fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) {
    error = errno_text("sizing the channel memfd");
    close(fd);
    return std::nullopt;
  }
  uint8_t* base = map_shared(fd, size, error);
  if (base == nullptr) return std::nullopt;
  ChannelMemory channel(fd, base, size, ring_capacity);
  const ChannelHeader header{kMagic, kVersion, 0, ring_capacity};
  std::memcpy(channel.base_, &header, sizeof header);
  for (int i = 0; i < 2; ++i) init_ring(channel.ring(i), ring_capacity);
  return channel;
}

std::optional<ChannelMemory> ChannelMemory::map(int fd, std::string& error) {
  struct stat st {};
  if (fstat(fd, &st) != 0) {
    error = errno_text("fstat");
    close(fd);
    return std::nullopt;
  }
  const int seals = fcntl(fd, F_GET_SEALS);
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  const uint64_t capacity = size > 3 * kPage ? (size - kPage) / 2 - kPage : 0;
  if (seals < 0 || (seals & F_SEAL_SHRINK) == 0 || !valid_capacity(capacity) ||
      size_for(capacity) != size) {
    error = "the channel fd is not a sealed channel memfd of a valid size";
    close(fd);
    return std::nullopt;
  }
  uint8_t* base = map_shared(fd, size, error);
  if (base == nullptr) return std::nullopt;
  ChannelMemory channel(fd, base, size, capacity);
  ChannelHeader header;
  std::memcpy(&header, channel.base_, sizeof header);
  if (header.magic != kMagic || header.version != kVersion || header.capacity != capacity) {
    error = "the channel's header does not match (magic, version or capacity)";
    return std::nullopt;
  }
  return channel;
}

ChannelMemory::ChannelMemory(ChannelMemory&& other) noexcept
    : fd_(other.fd_), base_(other.base_), size_(other.size_), capacity_(other.capacity_) {
  other.fd_ = -1;
  other.base_ = nullptr;
}

ChannelMemory& ChannelMemory::operator=(ChannelMemory&& other) noexcept {
  if (this != &other) {
    release();
    fd_ = other.fd_;
    base_ = other.base_;
    size_ = other.size_;
    capacity_ = other.capacity_;
    other.fd_ = -1;
    other.base_ = nullptr;
  }
  return *this;
}

ChannelMemory::~ChannelMemory() {
  release();
}

void ChannelMemory::release() {
  if (base_ != nullptr) munmap(base_, size_);
  if (fd_ >= 0) close(fd_);
  base_ = nullptr;
  fd_ = -1;
}

RingShared* ChannelMemory::ring(int index) const {
  return reinterpret_cast<RingShared*>(base_ + kPage + index * (kPage + capacity_));
}

uint8_t* ChannelMemory::data(int index) const {
  return base_ + kPage + index * (kPage + capacity_) + kPage;
}

RingWriter ChannelMemory::writer(Side side, uint32_t max_payload, int peer_event) const {
  const int index = side == Side::a ? 0 : 1;
  return RingWriter(ring(index), data(index), capacity_, max_payload, peer_event);
}

RingReader ChannelMemory::reader(Side side, uint32_t max_payload, int peer_event) const {
  const int index = side == Side::a ? 1 : 0;
  return RingReader(ring(index), data(index), capacity_, max_payload, peer_event);
}

}  // namespace weir::shm
