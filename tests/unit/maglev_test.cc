// Weighted Maglev (common/maglev.h). References used here are independent of the code under test:
// SipHash-2-4 published vectors, a sieve for primality, and slow literal implementations of the
// paper's Pseudocode 1 (Eisenbud et al., NSDI 2016, section 3.4) and of the documented weighted
// turn order. Everything else is a structural property that any correct build must have.
#include "common/maglev.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <random>
#include <stdexcept>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

namespace weir::maglev {
namespace {

constexpr uint32_t kM = kDefaultTableSize;

Backend backend(std::string name, uint32_t address, uint16_t port, uint32_t weight,
                bool accepts_new_flows = true) {
  return Backend{std::move(name), address, port, weight, accepts_new_flows};
}

// n backends b0..b{n-1} at 10.0.x.y:8080, weights taken cyclically from `weights`.
std::vector<Backend> pool(size_t n, std::vector<uint32_t> weights = {1}) {
  std::vector<Backend> out;
  for (size_t i = 0; i < n; ++i)
    out.push_back(backend("b" + std::to_string(i), 0x0a000000u + static_cast<uint32_t>(i), 8080,
                          weights[i % weights.size()]));
  return out;
}

auto identity_of(const Backend& b) {
  return std::tie(b.name, b.address, b.port);
}

// Number of slots whose owners differ by identity between two tables (built from possibly
// different input orders or sets).
size_t slots_differing(const Table& a, std::span<const Backend> a_in, const Table& b,
                       std::span<const Backend> b_in) {
  EXPECT_EQ(a.size(), b.size());
  size_t differing = 0;
  for (uint32_t j = 0; j < a.size(); ++j)
    if (identity_of(a_in[a.entries()[j]]) != identity_of(b_in[b.entries()[j]])) ++differing;
  return differing;
}

std::vector<size_t> slot_counts(const Table& table, size_t backend_count) {
  std::vector<size_t> counts(backend_count, 0);
  for (uint32_t owner : table.entries()) ++counts.at(owner);
  return counts;
}

// "Within 1%" is relative to the backend's weight share: |count/M - w/W| <= 0.01 * w/W.
// An absolute reading (|count/M - w/W| <= 0.01) would be vacuous for N = 655, where each share
// is 0.15%. The relative reading is the strictest one integer slot counts can meet: a backend's
// count can be off its ideal M*w/W by up to about one slot (equal weights: floor or ceil of
// M/N), so it needs M*w/W >= ~100 slots. That is exactly the paper's N <= M/100 condition for
// equal weights, and the mixed-weight cases below keep every ideal count above 100 slots.
void expect_shares_within_one_percent(std::span<const Backend> backends, uint32_t table_size) {
  const Table table = Table::build(backends, table_size);
  const std::vector<size_t> counts = slot_counts(table, backends.size());
  double total_weight = 0;
  for (const Backend& b : backends) total_weight += b.weight;
  for (size_t i = 0; i < backends.size(); ++i) {
    const double want = backends[i].weight / total_weight;
    const double got = static_cast<double>(counts[i]) / table_size;
    EXPECT_LE(std::abs(got - want), 0.01 * want)
        << backends[i].name << " weight " << backends[i].weight << " has " << counts[i]
        << " slots, ideal " << want * table_size;
  }
}

// ---- SipHash-2-4 ----------------------------------------------------------------------------

TEST(SipHash24, PublishedVectors) {
  // Key 00 01 .. 0f, message 00 01 .. (len-1). len 15 is the worked example of the SipHash paper
  // (Aumasson & Bernstein 2012, appendix A: a129ca6149be45e5); the others are the reference
  // implementation's vectors_sip64 (read as little-endian words), cross-checked with OpenSSL 3
  // (`openssl mac -macopt hexkey:000102..0f -macopt size:8 SIPHASH`).
  const std::array<std::pair<size_t, uint64_t>, 20> vectors = {{
      {0, 0x726fdb47dd0e0e31ull},  {1, 0x74f839c593dc67fdull},  {2, 0x0d6c8009d9a94f5aull},
      {3, 0x85676696d7fb7e2dull},  {4, 0xcf2794e0277187b7ull},  {5, 0x18765564cd99a68dull},
      {6, 0xcbc9466e58fee3ceull},  {7, 0xab0200f58b01d137ull},  {8, 0x93f5f5799a932462ull},
      {9, 0x9e0082df0ba9e4b0ull},  {10, 0x7a5dbbc594ddb9f3ull}, {11, 0xf4b32f46226bada7ull},
      {12, 0x751e8fbc860ee5fbull}, {13, 0x14ea5627c0843d90ull}, {14, 0xf723ca908e7af2eeull},
      {15, 0xa129ca6149be45e5ull}, {16, 0x3f2acc7f57c29bdbull}, {31, 0x32d892fad841c342ull},
      {32, 0x7127512f72f27cceull}, {63, 0x958a324ceb064572ull},
  }};
  SipKey key;
  for (size_t i = 0; i < key.size(); ++i) key[i] = static_cast<uint8_t>(i);
  std::vector<uint8_t> message;
  for (const auto& [length, expected] : vectors) {
    message.clear();
    for (size_t i = 0; i < length; ++i) message.push_back(static_cast<uint8_t>(i));
    EXPECT_EQ(siphash24(key, message), expected) << "message length " << length;
  }
}

// ---- is_prime -------------------------------------------------------------------------------

TEST(IsPrime, MatchesSieveBelow200000) {
  constexpr uint32_t kLimit = 200000;
  std::vector<bool> composite(kLimit, false);
  composite[0] = composite[1] = true;
  for (uint32_t p = 2; p * p < kLimit; ++p)
    if (!composite[p])
      for (uint32_t m = p * p; m < kLimit; m += p) composite[m] = true;
  for (uint32_t n = 0; n < kLimit; ++n) ASSERT_EQ(is_prime(n), !composite[n]) << n;
}

TEST(IsPrime, LargeValues) {
  EXPECT_TRUE(is_prime(4294967291u));   // largest prime below 2^32
  EXPECT_FALSE(is_prime(4294967295u));  // 2^32 - 1 = 3 * 5 * 17 * 257 * 65537
  EXPECT_FALSE(is_prime(4293001441u));  // 65521^2, 65521 the largest prime below 2^16
  EXPECT_FALSE(is_prime(4294836225u));  // 65535^2
  EXPECT_TRUE(is_prime(16777259u));     // smallest prime above 2^24
}

// ---- Permutation parameters and flow hashes: the documented encodings --------------------------

TEST(Preference, IsSipHashOfTheDocumentedIdentityEncoding) {
  const Backend web = backend("web", 0x0a000001, 8080, 3);
  // u32 name length, name, u32 address, u16 port; all big-endian.
  const std::vector<uint8_t> id = {0, 0, 0, 3, 'w', 'e', 'b', 10, 0, 0, 1, 0x1f, 0x90};
  for (uint32_t m : {2u, 3u, 251u, kM, 16777213u}) {
    const Preference p = preference(web, m);
    EXPECT_EQ(p.offset, siphash24(kOffsetKey, id) % m) << m;
    EXPECT_EQ(p.skip, siphash24(kSkipKey, id) % (m - 1) + 1) << m;
    EXPECT_GE(p.skip, 1u);
    EXPECT_LT(p.skip, m);
  }
  // The weight is not part of the identity.
  EXPECT_EQ(preference(backend("web", 0x0a000001, 8080, 7), kM).offset, preference(web, kM).offset);
}

TEST(Preference, RejectsNonPrimeSize) {
  EXPECT_THROW(preference(backend("web", 1, 1, 1), 65536), std::invalid_argument);
}

TEST(FlowHash, FiveTupleIsSipHashOfBigEndianFields) {
  const FiveTuple tuple{0xc0a80001, 0x0a000002, 0x1234, 443, 6};
  const std::vector<uint8_t> encoded = {0xc0, 0xa8, 0, 1, 10, 0, 0, 2, 0x12, 0x34, 0x01, 0xbb, 6};
  EXPECT_EQ(hash_five_tuple(tuple), siphash24(kFlowKey, encoded));
  EXPECT_EQ(flow_hash(FlowKey::five_tuple, tuple), siphash24(kFlowKey, encoded));
}

TEST(FlowHash, SourceIpIsSipHashOfTheBigEndianAddress) {
  const FiveTuple tuple{0xc0a80001, 0x0a000002, 0x1234, 443, 6};
  const std::vector<uint8_t> encoded = {0xc0, 0xa8, 0, 1};
  EXPECT_EQ(hash_source_ip(0xc0a80001), siphash24(kFlowKey, encoded));
  EXPECT_EQ(flow_hash(FlowKey::source_ip, tuple), siphash24(kFlowKey, encoded));
}

TEST(FlowHash, FiveTupleDependsOnEveryFieldSourceIpOnlyOnTheSource) {
  const FiveTuple base{0xc0a80001, 0x0a000002, 0x1234, 443, 6};
  std::vector<FiveTuple> variants(5, base);
  variants[0].src_address ^= 1;
  variants[1].dst_address ^= 1;
  variants[2].src_port ^= 1;
  variants[3].dst_port ^= 1;
  variants[4].protocol = 17;
  for (size_t i = 0; i < variants.size(); ++i) {
    EXPECT_NE(hash_five_tuple(variants[i]), hash_five_tuple(base)) << "field " << i;
    EXPECT_EQ(flow_hash(FlowKey::source_ip, variants[i]) == flow_hash(FlowKey::source_ip, base),
              i != 0)
        << "field " << i;
  }
}

// ---- Table population against slow references -------------------------------------------------

std::vector<const Backend*> canonical_eligible(std::span<const Backend> backends) {
  std::vector<const Backend*> out;
  for (const Backend& b : backends)
    if (b.accepts_new_flows) out.push_back(&b);
  std::sort(out.begin(), out.end(),
            [](const Backend* a, const Backend* b) { return identity_of(*a) < identity_of(*b); });
  return out;
}

std::vector<std::vector<uint32_t>> permutations(const std::vector<const Backend*>& eligible,
                                                uint32_t m) {
  std::vector<std::vector<uint32_t>> permutation;
  for (const Backend* b : eligible) {
    const Preference p = preference(*b, m);
    std::vector<uint32_t> row(m);
    for (uint64_t j = 0; j < m; ++j) row[j] = static_cast<uint32_t>((p.offset + j * p.skip) % m);
    permutation.push_back(std::move(row));
  }
  return permutation;
}

// The paper's Pseudocode 1, literally (unweighted), over the canonically sorted backends.
std::vector<const Backend*> paper_pseudocode_1(std::span<const Backend> backends, uint32_t m) {
  const std::vector<const Backend*> eligible = canonical_eligible(backends);
  const std::vector<std::vector<uint32_t>> permutation = permutations(eligible, m);
  const size_t n_backends = eligible.size();
  std::vector<size_t> next(n_backends, 0);
  std::vector<int64_t> entry(m, -1);
  uint32_t n = 0;
  while (true) {
    for (size_t i = 0; i < n_backends; ++i) {
      uint32_t c = permutation[i][next[i]];
      while (entry[c] >= 0) {
        next[i] = next[i] + 1;
        c = permutation[i][next[i]];
      }
      entry[c] = static_cast<int64_t>(i);
      next[i] = next[i] + 1;
      n = n + 1;
      if (n == m) {
        std::vector<const Backend*> out;
        for (int64_t e : entry) out.push_back(eligible[e]);
        return out;
      }
    }
  }
}

// The weighted order documented in maglev.cc, by brute force: before each turn, scan every backend
// for the earliest next turn time (turns_i + 1/2) / w_i, ties to the canonically first.
std::vector<const Backend*> weighted_reference(std::span<const Backend> backends, uint32_t m) {
  const std::vector<const Backend*> eligible = canonical_eligible(backends);
  const std::vector<std::vector<uint32_t>> permutation = permutations(eligible, m);
  std::vector<size_t> next(eligible.size(), 0);
  std::vector<uint64_t> turns(eligible.size(), 0);
  std::vector<int64_t> entry(m, -1);
  for (uint32_t n = 0; n < m; ++n) {
    size_t i = 0;
    for (size_t k = 1; k < eligible.size(); ++k)
      if ((2 * turns[k] + 1) * eligible[i]->weight < (2 * turns[i] + 1) * eligible[k]->weight)
        i = k;
    uint32_t c = permutation[i][next[i]];
    while (entry[c] >= 0) c = permutation[i][++next[i]];
    entry[c] = static_cast<int64_t>(i);
    ++next[i];
    ++turns[i];
  }
  std::vector<const Backend*> out;
  for (int64_t e : entry) out.push_back(eligible[e]);
  return out;
}

void expect_table_equals(std::span<const Backend> backends, uint32_t m,
                         const std::vector<const Backend*>& reference) {
  const Table table = Table::build(backends, m);
  ASSERT_EQ(table.entries().size(), reference.size());
  size_t differing = 0;
  for (uint32_t j = 0; j < m; ++j)
    if (&backends[table.entries()[j]] != reference[j]) ++differing;
  EXPECT_EQ(differing, 0u);
}

TEST(Population, EqualWeightsMatchThePapersPseudocode1) {
  for (uint32_t m : {13u, 1009u, 4099u}) {
    for (uint32_t weight : {1u, 5u}) {
      std::vector<Backend> backends = pool(7, {weight});
      std::reverse(backends.begin(), backends.end());  // input order is not canonical order
      backends[3].accepts_new_flows = false;
      SCOPED_TRACE("M " + std::to_string(m) + " weight " + std::to_string(weight));
      expect_table_equals(backends, m, paper_pseudocode_1(backends, m));
    }
  }
}

TEST(Population, WeightedMatchesBruteForceTurnOrder) {
  // {1, 3, 3, 2, 6}: many simultaneous turns across weight classes (times k/2 coincide).
  const std::vector<std::vector<uint32_t>> weight_sets = {
      {1, 3, 3, 2, 6}, {1, 2}, {7, 1, 1, 1, 1, 1, 1, 1}, {100, 1, 37, 2, 5, 5, 64}};
  for (const auto& weights : weight_sets) {
    for (uint32_t m : {13u, 1009u, 4099u}) {
      std::vector<Backend> backends = pool(weights.size(), weights);
      std::swap(backends.front(), backends.back());
      SCOPED_TRACE("M " + std::to_string(m) + " first weight " + std::to_string(weights[0]));
      expect_table_equals(backends, m, weighted_reference(backends, m));
    }
  }
}

// ---- Shares -----------------------------------------------------------------------------------

TEST(Shares, ThreeBackendsWeighted112) {
  expect_shares_within_one_percent(pool(3, {1, 1, 2}), kM);
}

TEST(Shares, SixHundredFiftyFiveEqualWeights) {
  // N = 655 <= M / 100: ideal 100.05 slots each; counts are 100 or 101, worst error 0.95%.
  expect_shares_within_one_percent(pool(655), kM);
}

TEST(Shares, MixedWeights) {
  // 50 backends, weights 1..10 cyclically: W = 275, smallest ideal count 238 slots.
  expect_shares_within_one_percent(pool(50, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10}), kM);
  // Skewed: weights 1, 5, 20, 100: W = 126 * 4, smallest ideal count 130 slots.
  expect_shares_within_one_percent(pool(16, {1, 5, 20, 100}), kM);
}

TEST(Shares, ExcludedBackendsGetNothingAndOthersShareByWeight) {
  std::vector<Backend> backends = pool(6, {1, 2, 3});
  backends[1].accepts_new_flows = false;  // weight 2
  backends[5].accepts_new_flows = false;  // weight 3
  const Table table = Table::build(backends, kM);
  const std::vector<size_t> counts = slot_counts(table, backends.size());
  EXPECT_EQ(counts[1], 0u);
  EXPECT_EQ(counts[5], 0u);
  std::vector<Backend> eligible = {backends[0], backends[2], backends[3], backends[4]};
  expect_shares_within_one_percent(eligible, kM);
}

TEST(Shares, ScalingAllWeightsChangesNothing) {
  const std::vector<Backend> small = pool(20, {1, 2, 3});
  const std::vector<Backend> scaled = pool(20, {10, 20, 30});
  EXPECT_EQ(slots_differing(Table::build(small, kM), small, Table::build(scaled, kM), scaled), 0u);
}

// ---- Consistency ------------------------------------------------------------------------------

TEST(Consistency, RemovingOneOfHundredMovesAtMostThreePercentOfTheOthers) {
  for (const std::vector<uint32_t>& weights : {std::vector<uint32_t>{1}, {1, 2, 3, 4}}) {
    const std::vector<Backend> all = pool(100, weights);
    const Table full = Table::build(all, kM);
    for (uint32_t removed = 0; removed < all.size(); removed += weights.size() == 1 ? 1 : 7) {
      std::vector<Backend> fewer = all;
      fewer[removed].accepts_new_flows = false;
      const Table reduced = Table::build(fewer, kM);
      size_t others = 0;
      size_t others_moved = 0;
      for (uint32_t j = 0; j < kM; ++j) {
        EXPECT_NE(reduced.entries()[j], removed);
        if (full.entries()[j] == removed) continue;
        ++others;
        if (reduced.entries()[j] != full.entries()[j]) ++others_moved;
      }
      EXPECT_LE(static_cast<double>(others_moved), 0.03 * static_cast<double>(others))
          << "removing " << all[removed].name << " moved " << others_moved << " of " << others
          << " other slots";
    }
  }
}

TEST(Consistency, AddingTheBackendBackRestoresTheTable) {
  const std::vector<Backend> original = pool(100, {1, 2, 3, 4});
  const Table before = Table::build(original, kM);
  // Removed from the input entirely (not just flagged), then appended at the end.
  std::vector<Backend> changing = original;
  changing.erase(changing.begin() + 42);
  const Table without = Table::build(changing, kM);
  EXPECT_GT(slots_differing(before, original, without, changing), 0u);
  changing.push_back(original[42]);
  EXPECT_EQ(slots_differing(before, original, Table::build(changing, kM), changing), 0u);
}

TEST(Consistency, FlaggedOutEqualsLeftOut) {
  std::vector<Backend> flagged = pool(30, {1, 4});
  flagged[7].accepts_new_flows = false;
  std::vector<Backend> left_out = pool(30, {1, 4});
  left_out.erase(left_out.begin() + 7);
  EXPECT_EQ(
      slots_differing(Table::build(flagged, kM), flagged, Table::build(left_out, kM), left_out),
      0u);
}

TEST(Consistency, InputOrderDoesNotMatter) {
  std::vector<Backend> backends = pool(40, {1, 2, 5});
  backends[3].accepts_new_flows = false;
  backends[17].accepts_new_flows = false;
  // Two backends that differ only in port and only in address: the canonical order must break
  // those ties too.
  backends.push_back(backend("b0", 0x0a000000, 8081, 2));
  backends.push_back(backend("b1", 0x0a000009, 8080, 3));
  const Table reference = Table::build(backends, kM);
  std::mt19937 rng(12345);
  for (int round = 0; round < 5; ++round) {
    std::vector<Backend> shuffled = backends;
    std::shuffle(shuffled.begin(), shuffled.end(), rng);
    EXPECT_EQ(slots_differing(reference, backends, Table::build(shuffled, kM), shuffled), 0u)
        << "shuffle " << round;
  }
}

TEST(Consistency, IdentityIncludesNameAddressAndPort) {
  const std::vector<Backend> base = pool(10);
  for (int field = 0; field < 3; ++field) {
    std::vector<Backend> changed = base;
    if (field == 0) changed[4].name = "renamed";
    if (field == 1) changed[4].address = 0x0b000004;
    if (field == 2) changed[4].port = 9090;
    EXPECT_NE(preference(changed[4], kM).offset, preference(base[4], kM).offset) << field;
  }
}

// ---- Edge cases -------------------------------------------------------------------------------

TEST(Edges, OneBackendOwnsEverySlot) {
  const std::vector<Backend> one = {backend("only", 0x0a000001, 80, 3)};
  const Table table = Table::build(one, kM);
  ASSERT_EQ(table.entries().size(), kM);
  EXPECT_EQ(std::count(table.entries().begin(), table.entries().end(), 0u), kM);
}

TEST(Edges, OneEligibleAmongExcludedOwnsEverySlot) {
  std::vector<Backend> backends = pool(5);
  for (Backend& b : backends) b.accepts_new_flows = false;
  backends[3].accepts_new_flows = true;
  const Table table = Table::build(backends, 101);
  ASSERT_EQ(table.entries().size(), 101u);
  EXPECT_EQ(std::count(table.entries().begin(), table.entries().end(), 3u), 101);
}

TEST(Edges, NoEligibleBackendReportsNoBackend) {
  std::vector<Backend> down = pool(4);
  for (Backend& b : down) b.accepts_new_flows = false;
  const Table all_down = Table::build(down, kM);
  const Table empty = Table::build(std::span<const Backend>{}, kM);
  std::mt19937_64 rng(7);
  for (const Table* table : {&all_down, &empty}) {
    EXPECT_EQ(table->size(), kM);
    EXPECT_TRUE(table->entries().empty());
    EXPECT_EQ(table->lookup(0), std::nullopt);
    for (int i = 0; i < 1000; ++i) EXPECT_EQ(table->lookup(rng()), std::nullopt);
  }
}

TEST(Edges, AsManyBackendsAsSlots) {
  const std::vector<Backend> backends = pool(13);
  const Table table = Table::build(backends, 13);
  std::vector<size_t> counts = slot_counts(table, backends.size());
  EXPECT_EQ(std::count(counts.begin(), counts.end(), 1u), 13);
}

TEST(Edges, SmallestPrimeSize) {
  const std::vector<Backend> backends = pool(2);
  const Table table = Table::build(backends, 2);
  const std::vector<size_t> counts = slot_counts(table, backends.size());
  EXPECT_EQ(counts[0], 1u);
  EXPECT_EQ(counts[1], 1u);
}

// ---- Rejected input: std::invalid_argument whose message says what is wrong --------------------

void expect_invalid(std::span<const Backend> backends, uint32_t size, const std::string& mention) {
  try {
    Table::build(backends, size);
    ADD_FAILURE() << "accepted; expected an error mentioning '" << mention << "'";
  } catch (const std::invalid_argument& error) {
    EXPECT_NE(std::string(error.what()).find(mention), std::string::npos) << error.what();
  }
}

TEST(Rejects, NonPrimeOrOutOfRangeSize) {
  const std::vector<Backend> backends = pool(3);
  for (uint32_t size : {0u, 1u, 4u, 65535u, 65536u, 4294967295u})
    expect_invalid(backends, size, "table size " + std::to_string(size) + " is not a prime");
  // Prime, but above kMaxTableSize.
  expect_invalid(backends, 16777259u, "table size 16777259 is not a prime in [2, 16777216]");
  // Rejected even with nothing to place.
  expect_invalid({}, 65536, "table size 65536");
}

TEST(Rejects, ZeroWeightEvenWhenExcluded) {
  std::vector<Backend> backends = pool(3);
  backends[1].weight = 0;
  expect_invalid(backends, kM, "backend #1 'b1' (10.0.0.1:8080) has weight 0");
  backends[1].accepts_new_flows = false;
  expect_invalid(backends, kM, "backend #1 'b1' (10.0.0.1:8080) has weight 0");
}

TEST(Rejects, DuplicateIdentity) {
  std::vector<Backend> backends = pool(5);
  backends.push_back(backend("b2", 0x0a000002, 8080, 7, false));
  expect_invalid(backends, kM, "backends #2 and #5 share the identity 'b2' (10.0.0.2:8080)");
}

TEST(Rejects, MoreEligibleBackendsThanSlots) {
  expect_invalid(pool(12), 11, "12 eligible backends do not fit a table of 11 slots");
  std::vector<Backend> backends = pool(12);
  backends[0].accepts_new_flows = false;
  EXPECT_NO_THROW(Table::build(backends, 11));
}

// ---- Lookup -----------------------------------------------------------------------------------

TEST(Lookup, RandomFlowsFollowTheWeights) {
  const std::vector<Backend> backends = pool(3, {1, 1, 2});
  const Table table = Table::build(backends, kM);
  std::mt19937_64 rng(99);
  constexpr int kFlows = 200000;
  std::vector<int> hits(backends.size(), 0);
  for (int i = 0; i < kFlows; ++i) {
    const std::optional<uint32_t> chosen = table.lookup(rng());
    ASSERT_TRUE(chosen.has_value());
    ASSERT_LT(*chosen, backends.size());
    ++hits[*chosen];
  }
  // Sampling noise: the standard deviation of a fraction near 0.5 over 200000 flows is 0.0011;
  // 0.01 is nine of them.
  EXPECT_NEAR(hits[0] / double(kFlows), 0.25, 0.01);
  EXPECT_NEAR(hits[1] / double(kFlows), 0.25, 0.01);
  EXPECT_NEAR(hits[2] / double(kFlows), 0.50, 0.01);
}

TEST(Lookup, SlotForSpansTheWholeTable) {
  const Table table = Table::build(pool(3), 101);
  // The folded 32-bit value v selects floor(v * M / 2^32): 0 for v = 0 and M - 1 for v = 2^32 - 1.
  EXPECT_EQ(table.slot_for(0), 0u);
  EXPECT_EQ(table.slot_for(0xffffffffull), 100u);
  EXPECT_EQ(table.slot_for(0xffffffff00000000ull), 100u);
  EXPECT_EQ(table.slot_for(~0ull), 0u);
  std::vector<bool> seen(101, false);
  std::mt19937_64 rng(5);
  for (int i = 0; i < 20000; ++i) {
    const uint32_t slot = table.slot_for(rng());
    ASSERT_LT(slot, 101u);
    seen[slot] = true;
  }
  EXPECT_EQ(std::count(seen.begin(), seen.end(), true), 101);
}

}  // namespace
}  // namespace weir::maglev
