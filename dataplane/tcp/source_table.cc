#include "dataplane/tcp/source_table.h"

#include <algorithm>

namespace weir::tcp {

SourceTable::SourceTable(uint32_t max_sources, const Secret& secret)
    : index_(std::max<uint32_t>(max_sources, 1), secret),
      entries_(std::max<uint32_t>(max_sources, 1) + 1) {
  free_.reserve(entries_.size() - 1);
  for (Index i = static_cast<Index>(entries_.size() - 1); i > kOverflow; --i) free_.push_back(i);
}

SourceTable::Index SourceTable::attach(uint32_t address, bool* overflowed) {
  *overflowed = false;
  Index index = kOverflow;
  if (const auto found = index_.find(key(address))) {
    index = *found;
  } else if (!free_.empty() && index_.insert(key(address), free_.back())) {
    index = free_.back();
    free_.pop_back();
    entries_[index] = Entry{address, 0, 0};
  } else {
    *overflowed = true;
  }
  if (entries_[index].connections++ == 0) ++active_;
  return index;
}

void SourceTable::detach(Index index) {
  Entry& e = entries_[index];
  if (e.connections == 0 || --e.connections > 0) return;
  --active_;
  if (index == kOverflow) return;
  index_.erase(key(e.address));
  free_.push_back(index);
}

std::optional<SourceTable::Index> SourceTable::lookup(uint32_t address) const {
  if (const auto found = index_.find(key(address))) return *found;
  if (free_.empty()) return kOverflow;
  return std::nullopt;
}

}  // namespace weir::tcp
