// The cluster's owner table: see owner_table.h.
#include "common/owner_table.h"

#include <set>
#include <stdexcept>

namespace weir::cluster {

namespace {

// rank_weight's input with the row left to fill in: 4 bytes of row, then the name's length and
// bytes. Built once a peer, so ranking a row allocates nothing.
std::vector<uint8_t> rank_input(std::string_view name) {
  std::vector<uint8_t> bytes(8 + name.size());
  const auto length = static_cast<uint32_t>(name.size());
  for (int i = 0; i < 4; ++i) bytes[4 + i] = static_cast<uint8_t>(length >> (24 - 8 * i));
  for (size_t i = 0; i < name.size(); ++i) bytes[8 + i] = static_cast<uint8_t>(name[i]);
  return bytes;
}

uint64_t rank_weight_of(std::vector<uint8_t>& input, uint32_t row) {
  for (int i = 0; i < 4; ++i) input[i] = static_cast<uint8_t>(row >> (24 - 8 * i));
  return maglev::siphash24(kRankKey, input);
}

struct Ranked {
  uint64_t weight;
  std::vector<uint8_t> input;  // rank_input(*name)
  const std::string* name;
  uint8_t index;
  bool draining;
};

// Higher weight first; the smaller name on a tie, so the order never depends on the input's.
bool ranks_before(const Ranked& a, const Ranked& b) {
  if (a.weight != b.weight) return a.weight > b.weight;
  return *a.name < *b.name;
}

void check_input(std::span<const Peer> peers, uint32_t rows) {
  if (rows > maglev::kMaxTableSize || !maglev::is_prime(rows))
    throw std::invalid_argument("owner table: " + std::to_string(rows) +
                                " rows is not a prime in [2, " +
                                std::to_string(maglev::kMaxTableSize) + "]");
  if (peers.size() > kMaxPeers)
    throw std::invalid_argument("owner table: " + std::to_string(peers.size()) +
                                " peers; at most " + std::to_string(kMaxPeers));
  std::set<std::string_view> names;
  for (const Peer& peer : peers) {
    if (peer.name.empty()) throw std::invalid_argument("owner table: a peer has an empty name");
    if (!names.insert(peer.name).second)
      throw std::invalid_argument("owner table: peer name \"" + peer.name + "\" appears twice");
  }
}

}  // namespace

uint64_t rank_weight(uint32_t row, std::string_view name) {
  std::vector<uint8_t> input = rank_input(name);
  return rank_weight_of(input, row);
}

OwnerTable OwnerTable::build(std::span<const Peer> peers, uint32_t rows) {
  check_input(peers, rows);
  std::vector<Ranked> eligible;
  bool anyone_live = false;
  for (size_t i = 0; i < peers.size(); ++i) {
    if (peers[i].state == PeerState::gone) continue;
    anyone_live |= peers[i].state == PeerState::live;
    eligible.push_back({0, rank_input(peers[i].name), &peers[i].name, static_cast<uint8_t>(i),
                        peers[i].state == PeerState::draining});
  }
  if (eligible.empty()) return OwnerTable(rows, {});
  if (!anyone_live)
    for (Ranked& peer : eligible) peer.draining = false;

  std::vector<Owners> table(rows);
  for (uint32_t row = 0; row < rows; ++row) {
    // One pass keeps the best non-draining peer (the primary) and the best of the others (the
    // secondary): the best overall if it is draining, else the runner-up.
    const Ranked* primary = nullptr;
    const Ranked* secondary = nullptr;
    for (Ranked& peer : eligible) {
      peer.weight = rank_weight_of(peer.input, row);
      if (!peer.draining && (primary == nullptr || ranks_before(peer, *primary))) {
        if (primary != nullptr && (secondary == nullptr || ranks_before(*primary, *secondary)))
          secondary = primary;
        primary = &peer;
      } else if (secondary == nullptr || ranks_before(peer, *secondary)) {
        secondary = &peer;
      }
    }
    table[row].primary = primary->index;
    if (secondary != nullptr) table[row].secondary = secondary->index;
  }
  return OwnerTable(rows, std::move(table));
}

}  // namespace weir::cluster
