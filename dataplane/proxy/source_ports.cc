#include "dataplane/proxy/source_ports.h"

#include <algorithm>
#include <array>
#include <bit>

namespace weir::proxy {

using dataplane::flow_owner;
using dataplane::kRssToeplitzKey;
using dataplane::rss_ipv4_tcp_input;
using dataplane::toeplitz_hash;

PortBuckets::PortBuckets(const dataplane::FlowOwnership& ownership) : ownership_(ownership) {
  const uint32_t table =
      ownership.reta_size != 0 ? uint32_t{ownership.reta_size} : dataplane::kSoftwareTableSize;
  if (ownership.workers > 1) {
    if (std::has_single_bit(table)) {
      mask_ = table - 1;
    } else {
      check_each_ = true;  // one bucket of every port; flow_owner() asked for each
    }
  }
  // A port's contribution is the XOR of its set bits' contributions (the hash is linear).
  std::array<uint32_t, 16> bit_contribution{};
  for (int bit = 0; bit < 16; ++bit) {
    bit_contribution[bit] = toeplitz_hash(
        kRssToeplitzKey, rss_ipv4_tcp_input(0, 0, 0, static_cast<uint16_t>(1u << bit)));
  }
  std::vector<uint32_t> bucket_of(kSourcePorts);
  start_.assign(bucket_count() + 1, 0);
  for (uint32_t i = 0; i < kSourcePorts; ++i) {
    const uint32_t port = kFirstSourcePort + i;
    uint32_t hash = 0;
    for (int bit = 0; bit < 16; ++bit) {
      if ((port >> bit) & 1) hash ^= bit_contribution[bit];
    }
    bucket_of[i] = hash & mask_;
    ++start_[bucket_of[i] + 1];
  }
  for (uint32_t b = 0; b < bucket_count(); ++b) start_[b + 1] += start_[b];
  ports_.resize(kSourcePorts);
  std::vector<uint32_t> fill(start_.begin(), start_.end() - 1);
  for (uint32_t i = 0; i < kSourcePorts; ++i)
    ports_[fill[bucket_of[i]]++] = static_cast<uint16_t>(kFirstSourcePort + i);
}

uint32_t PortBuckets::destination_bits(uint32_t source, uint32_t backend,
                                       uint16_t backend_port) const {
  // The reply's tuple: from the backend (remote) to the source (local).
  return toeplitz_hash(kRssToeplitzKey, rss_ipv4_tcp_input(backend, source, backend_port, 0)) &
         mask_;
}

SourcePorts::SourcePorts(const dataplane::FlowOwnership& ownership, uint64_t reuse_after_us)
    : buckets_(ownership), reuse_after_us_(reuse_after_us) {}

std::optional<uint16_t> SourcePorts::take(uint32_t source, uint32_t backend, uint16_t backend_port,
                                          uint64_t now_us) {
  const Key key{source, backend, backend_port};
  auto [it, added] = destinations_.try_emplace(key);
  Destination& d = it->second;
  if (added) {
    d.selector = buckets_.destination_bits(source, backend, backend_port);
    d.next_entry = buckets_.first_owned_entry();
  }
  std::optional<uint16_t> port;
  // The oldest released port once it has rested; else one never handed out.
  if (d.released_count != 0 && now_us - d.released[d.released_head].at_us >= reuse_after_us_) {
    port = d.released[d.released_head].port;
    d.released_head = (d.released_head + 1) % d.released.size();
    --d.released_count;
  } else {
    port = fresh(key, d);
  }
  if (!port) return std::nullopt;
  ++d.in_use;
  ++in_use_;
  return port;
}

std::optional<uint16_t> SourcePorts::fresh(const Key& key, Destination& d) {
  // Each step either hands out a port or moves past one port or one bucket, each at most once in
  // the destination's life: O(1) amortised, and never more than the owned buckets at once.
  while (d.next_entry <= buckets_.mask()) {
    const uint32_t bucket = d.selector ^ d.next_entry;
    if (d.next_in_bucket < buckets_.bucket_size(bucket)) {
      const uint16_t port = buckets_.port(bucket, d.next_in_bucket++);
      if (!buckets_.checks_each_port() ||
          flow_owner(buckets_.ownership(), key.backend, key.source, key.backend_port, port) ==
              buckets_.ownership().worker) {
        return port;
      }
      continue;
    }
    d.next_entry += buckets_.owned_entry_step();
    d.next_in_bucket = 0;
  }
  return std::nullopt;
}

void SourcePorts::push_released(Destination& d, uint16_t port, uint64_t now_us) {
  if (d.released_count == d.released.size()) {
    // Grow the ring, oldest first from index 0.
    std::vector<Released> grown;
    grown.reserve(std::max<size_t>(16, d.released.size() * 2));
    for (size_t i = 0; i < d.released_count; ++i)
      grown.push_back(d.released[(d.released_head + i) % d.released.size()]);
    grown.resize(grown.capacity());
    d.released = std::move(grown);
    d.released_head = 0;
  }
  d.released[(d.released_head + d.released_count) % d.released.size()] = Released{now_us, port};
  ++d.released_count;
}

void SourcePorts::give_back(uint32_t source, uint32_t backend, uint16_t backend_port, uint16_t port,
                            uint64_t now_us) {
  const Key key{source, backend, backend_port};
  const auto it = destinations_.find(key);
  if (it == destinations_.end() || it->second.in_use == 0) return;  // not ours to take back
  Destination& d = it->second;
  push_released(d, port, now_us);
  d.last_release_us = now_us;
  --d.in_use;
  --in_use_;
  if (d.in_use == 0 && !d.queued_idle) {
    d.queued_idle = true;
    idle_.push_back(key);
  }
}

void SourcePorts::tick(uint64_t now_us) {
  // One destination a call, each queued at most once: the queue is no longer than the map.
  if (idle_.empty()) return;
  const Key key = idle_.front();
  idle_.pop_front();
  Destination& d = destinations_.find(key)->second;
  if (d.in_use != 0) {
    d.queued_idle = false;  // queued again when it next reaches zero
  } else if (now_us - d.last_release_us >= reuse_after_us_) {
    destinations_.erase(key);
  } else {
    idle_.push_back(key);  // not rested yet: looked at again after the others
  }
}

size_t SourcePorts::memory_bytes() const {
  size_t bytes = 0;
  for (const auto& [key, d] : destinations_)
    bytes += sizeof(key) + sizeof(d) + 2 * sizeof(void*) + d.released.capacity() * sizeof(Released);
  return bytes + idle_.size() * sizeof(Key);
}

}  // namespace weir::proxy
