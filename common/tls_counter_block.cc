// See tls_counter_block.h.
#include "common/tls_counter_block.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace weir::tls_counters {
namespace {

std::string errno_text(const char* what) {
  return std::string(what) + ": " + std::strerror(errno);
}

Block* map_block(int fd, std::string& error) {
  void* base = mmap(nullptr, sizeof(Block), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (base != MAP_FAILED) return static_cast<Block*>(base);
  error = errno_text("mmap");
  return nullptr;
}

}  // namespace

std::optional<BlockMemory> BlockMemory::create(std::string& error) {
  const int fd = memfd_create("weir-tls-counters", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) {
    error = errno_text("memfd_create");
    return std::nullopt;
  }
  if (ftruncate(fd, sizeof(Block)) != 0 ||
      fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) {
    error = errno_text("sizing the counter memfd");
    close(fd);
    return std::nullopt;
  }
  Block* block = map_block(fd, error);
  if (block == nullptr) {
    close(fd);
    return std::nullopt;
  }
  block->magic = kMagic;  // the rest is zero: a new file's pages
  return BlockMemory(fd, block);
}

std::optional<BlockMemory> BlockMemory::map(int fd, std::string& error) {
  struct stat st {};
  const int seals = fcntl(fd, F_GET_SEALS);
  if (fstat(fd, &st) != 0 || seals < 0 || (seals & F_SEAL_SHRINK) == 0 ||
      static_cast<uint64_t>(st.st_size) != sizeof(Block)) {
    error = "the counter fd is not a sealed counter memfd of the right size";
    close(fd);
    return std::nullopt;
  }
  Block* block = map_block(fd, error);
  if (block == nullptr) {
    close(fd);
    return std::nullopt;
  }
  BlockMemory memory(fd, block);
  if (block->magic != kMagic) {
    error = "the counter block's magic does not match";
    return std::nullopt;
  }
  return memory;
}

BlockMemory& BlockMemory::operator=(BlockMemory&& other) noexcept {
  if (this != &other) {
    release();
    fd_ = other.fd_;
    block_ = other.block_;
    other.fd_ = -1;
    other.block_ = nullptr;
  }
  return *this;
}

BlockMemory::~BlockMemory() {
  release();
}

void BlockMemory::release() {
  if (block_ != nullptr) munmap(block_, sizeof(Block));
  if (fd_ >= 0) close(fd_);
  block_ = nullptr;
  fd_ = -1;
}

}  // namespace weir::tls_counters
