// The cluster's owner table (common/owner_table.h). The reference is independent of the code under
// test: a slow sort of every row's peers by rank_weight, whose first live entry is the primary.
// The rest are the properties scale-out relies on (docs/scale-out.md), asserted row by row and
// counted, over tables of several sizes and peer counts.
#include "common/owner_table.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

namespace weir::cluster {
namespace {

constexpr uint8_t kNone = Owners::kNoPeer;

std::vector<Peer> peers(size_t n, std::string prefix = "box-") {
  std::vector<Peer> out;
  for (size_t i = 0; i < n; ++i) out.push_back({prefix + std::to_string(i), PeerState::live});
  return out;
}

// A row's owners by name ("" for none), so tables built from differently ordered inputs compare.
struct NamedOwners {
  std::string primary, secondary;
  bool operator==(const NamedOwners&) const = default;
};

std::vector<NamedOwners> by_name(const OwnerTable& table, const std::vector<Peer>& input) {
  std::vector<NamedOwners> out;
  for (const Owners& row : table.rows()) {
    out.push_back({row.primary == kNone ? "" : input[row.primary].name,
                   row.secondary == kNone ? "" : input[row.secondary].name});
  }
  return out;
}

// The reference: every row's non-gone peers sorted by weight (ties: smaller name); the primary is
// the first that is not draining, the secondary the first of the rest.
std::vector<NamedOwners> reference(const std::vector<Peer>& input, uint32_t rows) {
  std::vector<NamedOwners> out(rows);
  for (uint32_t row = 0; row < rows; ++row) {
    std::vector<std::pair<uint64_t, const Peer*>> ranked;
    for (const Peer& peer : input)
      if (peer.state != PeerState::gone) ranked.emplace_back(rank_weight(row, peer.name), &peer);
    if (ranked.empty()) return {};
    std::sort(ranked.begin(), ranked.end(), [](const auto& a, const auto& b) {
      return a.first != b.first ? a.first > b.first : a.second->name < b.second->name;
    });
    const bool anyone_live = std::any_of(ranked.begin(), ranked.end(), [](const auto& r) {
      return r.second->state == PeerState::live;
    });
    auto primary = std::find_if(ranked.begin(), ranked.end(), [&](const auto& r) {
      return !anyone_live || r.second->state == PeerState::live;
    });
    out[row].primary = primary->second->name;
    ranked.erase(primary);
    if (!ranked.empty()) out[row].secondary = ranked.front().second->name;
  }
  return out;
}

struct Shape {
  size_t peers;
  uint32_t rows;
};

// Peer counts from one box to the configuration's bound; row counts from small primes (every
// property must hold exactly on any table) to the default.
const Shape kShapes[] = {{1, 101},   {2, 4099},  {3, 4099},   {4, 10007},
                         {5, 10007}, {8, 65537}, {16, 65537}, {64, 65537}};

// Expected count within ±20 %, the brief's tolerance for shares.
void expect_share(size_t count, double expected, const std::string& what) {
  EXPECT_GE(count, expected * 0.8) << what << ": expected about " << expected;
  EXPECT_LE(count, expected * 1.2) << what << ": expected about " << expected;
}

TEST(OwnerTable, RankWeightHashesRowLengthAndName) {
  // Encoding: row u32 BE, name length u32 BE, name bytes (no terminator).
  const std::vector<uint8_t> bytes = {0, 0, 1, 2, 0, 0, 0, 3, 'a', 'b', 'c'};
  EXPECT_EQ(rank_weight(0x0102, "abc"), maglev::siphash24(kRankKey, bytes));
  EXPECT_NE(rank_weight(0x0102, "abc"), rank_weight(0x0103, "abc"));
  EXPECT_NE(rank_weight(0x0102, "abc"), rank_weight(0x0102, "abd"));
}

TEST(OwnerTable, MatchesTheSortingReference) {
  for (const auto& [n, rows] : kShapes) {
    if (n > 16) continue;  // the reference sorts every row: keep it to the smaller shapes
    std::vector<Peer> input = peers(n);
    if (n >= 3) input[1].state = PeerState::draining;
    if (n >= 4) input[2].state = PeerState::gone;
    EXPECT_EQ(by_name(OwnerTable::build(input, rows), input), reference(input, rows))
        << n << " peers, " << rows << " rows";
  }
}

TEST(OwnerTable, IndependentOfInputOrderAndDeterministic) {
  std::mt19937 rng(17);
  for (const auto& [n, rows] : kShapes) {
    std::vector<Peer> input = peers(n);
    const auto expected = by_name(OwnerTable::build(input, rows), input);
    EXPECT_EQ(by_name(OwnerTable::build(input, rows), input), expected);
    for (int round = 0; round < 3; ++round) {
      std::shuffle(input.begin(), input.end(), rng);
      EXPECT_EQ(by_name(OwnerTable::build(input, rows), input), expected)
          << n << " peers, " << rows << " rows, shuffle " << round;
    }
  }
}

TEST(OwnerTable, PrimaryAndSecondaryDifferAndSharesAreEven) {
  for (const auto& [n, rows] : kShapes) {
    const std::vector<Peer> input = peers(n);
    const OwnerTable table = OwnerTable::build(input, rows);
    ASSERT_EQ(table.rows().size(), rows);
    std::vector<size_t> primaries(n), secondaries(n);
    std::map<std::pair<uint8_t, uint8_t>, size_t> pairs;
    for (const Owners& row : table.rows()) {
      ASSERT_LT(row.primary, n);
      if (n == 1) {
        EXPECT_EQ(row.secondary, kNone);
        continue;
      }
      ASSERT_LT(row.secondary, n);
      ASSERT_NE(row.primary, row.secondary);
      ++primaries[row.primary];
      ++secondaries[row.secondary];
      ++pairs[{row.primary, row.secondary}];
    }
    if (n == 1 || rows / (n * (n - 1)) < 100) continue;  // too few rows a pair for a share test
    for (size_t i = 0; i < n; ++i) {
      expect_share(primaries[i], double(rows) / n, "primary rows of peer " + std::to_string(i));
      expect_share(secondaries[i], double(rows) / n, "secondary rows of peer " + std::to_string(i));
    }
    // GLB's point: a primary's rows are spread over every other peer as secondary, so a drained
    // or failed box's load does not fall on one neighbour.
    EXPECT_EQ(pairs.size(), n * (n - 1));
    for (const auto& [pair, count] : pairs)
      expect_share(
          count, double(rows) / (n * (n - 1)),
          "rows of pair " + std::to_string(pair.first) + "/" + std::to_string(pair.second));
  }
}

TEST(OwnerTable, RemovingAPeerChangesOnlyItsRows) {
  for (const auto& [n, rows] : kShapes) {
    if (n < 2) continue;
    const std::vector<Peer> before_input = peers(n);
    const OwnerTable before = OwnerTable::build(before_input, rows);
    for (size_t gone : {size_t{0}, n / 2, n - 1}) {
      std::vector<Peer> after_input = before_input;
      after_input[gone].state = PeerState::gone;
      const OwnerTable after = OwnerTable::build(after_input, rows);
      size_t its_rows = 0, changed = 0;
      for (uint32_t row = 0; row < rows; ++row) {
        const Owners& b = before.rows()[row];
        const Owners& a = after.rows()[row];
        changed += !(a == b);
        EXPECT_NE(a.primary, gone);
        EXPECT_NE(a.secondary, gone);
        if (b.primary == gone) {
          ++its_rows;
          EXPECT_EQ(a.primary, b.secondary) << "row " << row << ": the secondary takes over";
        } else if (b.secondary == gone) {
          ++its_rows;
          EXPECT_EQ(a.primary, b.primary) << "row " << row;
        } else {
          EXPECT_EQ(a, b) << "row " << row << " changed though peer " << gone << " was not in it";
        }
      }
      // With two peers the survivor's rows lose their secondary; otherwise every row it was in
      // gets a new owner and no other row changes.
      EXPECT_EQ(changed, its_rows) << n << " peers, " << rows << " rows, peer " << gone << " gone";
      if (n > 2) expect_share(its_rows, 2.0 * rows / n, "rows that held the gone peer");
    }
  }
}

TEST(OwnerTable, AJoiningPeerTakesAboutOneNthOfPrimariesAndMovesNothingElse) {
  for (const auto& [n, rows] : kShapes) {
    if (n == kMaxPeers) continue;
    const std::vector<Peer> before_input = peers(n);
    std::vector<Peer> after_input = before_input;
    after_input.push_back({"newcomer", PeerState::live});
    const OwnerTable before = OwnerTable::build(before_input, rows);
    const OwnerTable after = OwnerTable::build(after_input, rows);
    const uint8_t newcomer = static_cast<uint8_t>(n);
    size_t taken = 0;
    for (uint32_t row = 0; row < rows; ++row) {
      const Owners& b = before.rows()[row];
      const Owners& a = after.rows()[row];
      if (a.primary == newcomer) {
        ++taken;
        // The old primary holds the row's connections: it is their second chance.
        EXPECT_EQ(a.secondary, b.primary) << "row " << row;
      } else if (a.secondary == newcomer) {
        EXPECT_EQ(a.primary, b.primary) << "row " << row;
      } else {
        EXPECT_EQ(a, b) << "row " << row << " changed without the newcomer in it";
      }
    }
    if (rows / (n + 1) >= 100)
      expect_share(taken, double(rows) / (n + 1), std::to_string(n) + " peers + 1: primaries");
    else
      EXPECT_GT(taken, 0u);
  }
}

TEST(OwnerTable, ADrainingPeerIsNeverPrimaryButStaysSecondaryOfItsRows) {
  for (const auto& [n, rows] : kShapes) {
    if (n < 2) continue;
    const std::vector<Peer> live_input = peers(n);
    const OwnerTable live = OwnerTable::build(live_input, rows);
    const uint8_t leaving = static_cast<uint8_t>(n / 2);
    std::vector<Peer> draining_input = live_input;
    draining_input[leaving].state = PeerState::draining;
    const OwnerTable draining = OwnerTable::build(draining_input, rows);
    std::vector<Peer> removed_input = draining_input;
    removed_input[leaving].state = PeerState::gone;
    const OwnerTable removed = OwnerTable::build(removed_input, rows);
    size_t swapped = 0;
    for (uint32_t row = 0; row < rows; ++row) {
      const Owners& l = live.rows()[row];
      const Owners& d = draining.rows()[row];
      EXPECT_NE(d.primary, leaving) << "row " << row;
      if (l.primary == leaving) {
        // GLB's swap: the next peer takes the SYNs, the leaving one keeps its sessions.
        ++swapped;
        EXPECT_EQ(d.primary, l.secondary) << "row " << row;
        EXPECT_EQ(d.secondary, leaving) << "row " << row;
      } else {
        EXPECT_EQ(d, l) << "row " << row;
      }
      // Once drained, removing the peer moves no primary.
      EXPECT_EQ(removed.rows()[row].primary, d.primary) << "row " << row;
    }
    EXPECT_GT(swapped, 0u);
    if (rows / n >= 100) expect_share(swapped, double(rows) / n, "rows the leaving peer had");
  }
}

TEST(OwnerTable, EveryPeerDrainingIsTheSameAsNoneDraining) {
  std::vector<Peer> input = peers(3);
  const auto live = by_name(OwnerTable::build(input, 4099), input);
  for (Peer& peer : input) peer.state = PeerState::draining;
  EXPECT_EQ(by_name(OwnerTable::build(input, 4099), input), live);
}

TEST(OwnerTable, GonePeersKeepTheirIndicesAndNoPeerMeansNoRows) {
  std::vector<Peer> input = peers(4);
  input[0].state = PeerState::gone;
  input[2].state = PeerState::gone;
  const OwnerTable two = OwnerTable::build(input, 101);
  for (const Owners& row : two.rows()) {
    EXPECT_TRUE((row.primary == 1 && row.secondary == 3) ||
                (row.primary == 3 && row.secondary == 1));
  }
  for (Peer& peer : input) peer.state = PeerState::gone;
  const OwnerTable none = OwnerTable::build(input, 101);
  EXPECT_TRUE(none.rows().empty());
  EXPECT_EQ(none.lookup(12345), std::nullopt);
  EXPECT_TRUE(OwnerTable::build({}, 101).rows().empty());
}

TEST(OwnerTable, FlowHashSelectsARowAndFlowsSpreadOverPrimaries) {
  const std::vector<Peer> input = peers(4);
  const OwnerTable table = OwnerTable::build(input, kDefaultRows);
  EXPECT_EQ(table.row_for(0), 0u);
  EXPECT_EQ(table.row_for(~uint64_t{0}), 0u);  // the halves fold to 0
  EXPECT_EQ(table.row_for(0xffffffffull), kDefaultRows - 1);
  std::vector<size_t> flows_per_primary(input.size());
  constexpr uint32_t kFlows = 100'000;
  for (uint32_t i = 0; i < kFlows; ++i) {
    const maglev::FiveTuple tuple{0xc6336400u + (i >> 16), 0x0a4d0164u,
                                  static_cast<uint16_t>(1024 + (i & 0xffff)), 443, 6};
    const uint64_t hash = maglev::hash_five_tuple(tuple);
    const uint32_t row = table.row_for(hash);
    ASSERT_LT(row, table.size());
    const auto owners = table.lookup(hash);
    ASSERT_TRUE(owners.has_value());
    EXPECT_EQ(*owners, table.rows()[row]);
    ++flows_per_primary[owners->primary];
  }
  for (size_t i = 0; i < input.size(); ++i)
    expect_share(flows_per_primary[i], double(kFlows) / input.size(),
                 "flows owned by peer " + std::to_string(i));
}

TEST(OwnerTable, RefusesBadInput) {
  const std::vector<Peer> three = peers(3);
  for (uint32_t rows : {0u, 1u, 100u, 65536u, maglev::kMaxTableSize + 1})
    EXPECT_THROW(OwnerTable::build(three, rows), std::invalid_argument) << rows;
  EXPECT_NO_THROW(OwnerTable::build(peers(kMaxPeers), 101));
  EXPECT_THROW(OwnerTable::build(peers(kMaxPeers + 1), 101), std::invalid_argument);
  std::vector<Peer> duplicate = three;
  duplicate[2].name = duplicate[0].name;
  EXPECT_THROW(OwnerTable::build(duplicate, 101), std::invalid_argument);
  std::vector<Peer> unnamed = three;
  unnamed[1].name.clear();
  EXPECT_THROW(OwnerTable::build(unnamed, 101), std::invalid_argument);
}

}  // namespace
}  // namespace weir::cluster
