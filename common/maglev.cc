#include "common/maglev.h"

#include <algorithm>
#include <limits>
#include <stdexcept>
#include <string>
#include <utility>

namespace weir::maglev {

namespace {

constexpr uint64_t rotl(uint64_t x, int bits) {
  return (x << bits) | (x >> (64 - bits));
}

// SipHash reads its key and message as little-endian 64-bit words (paper section 2).
uint64_t load_le64(const uint8_t* p) {
  uint64_t value = 0;
  for (int i = 7; i >= 0; --i) value = (value << 8) | p[i];
  return value;
}

struct SipState {
  uint64_t v0, v1, v2, v3;

  void round() {
    v0 += v1;
    v1 = rotl(v1, 13);
    v1 ^= v0;
    v0 = rotl(v0, 32);
    v2 += v3;
    v3 = rotl(v3, 16);
    v3 ^= v2;
    v0 += v3;
    v3 = rotl(v3, 21);
    v3 ^= v0;
    v2 += v1;
    v1 = rotl(v1, 17);
    v1 ^= v2;
    v2 = rotl(v2, 32);
  }

  // Two compression rounds per message word: the "2" of SipHash-2-4.
  void compress(uint64_t word) {
    v3 ^= word;
    round();
    round();
    v0 ^= word;
  }
};

void put_be32(std::string& out, uint32_t value) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>(value >> shift));
}

void put_be16(std::string& out, uint16_t value) {
  out.push_back(static_cast<char>(value >> 8));
  out.push_back(static_cast<char>(value));
}

std::string describe(const Backend& backend) {
  std::string text = "'" + backend.name + "' (";
  for (int shift = 24; shift >= 0; shift -= 8) {
    text += std::to_string((backend.address >> shift) & 0xff);
    text += shift > 0 ? "." : ":";
  }
  return text + std::to_string(backend.port) + ")";
}

// Identity encoding documented at Preference in maglev.h.
std::string identity_bytes(const Backend& backend) {
  if (backend.name.size() > std::numeric_limits<uint32_t>::max())
    throw std::invalid_argument("maglev: backend name longer than 2^32 - 1 bytes");
  std::string out;
  out.reserve(4 + backend.name.size() + 4 + 2);
  put_be32(out, static_cast<uint32_t>(backend.name.size()));
  out += backend.name;
  put_be32(out, backend.address);
  put_be16(out, backend.port);
  return out;
}

std::span<const uint8_t> as_bytes(const std::string& text) {
  return {reinterpret_cast<const uint8_t*>(text.data()), text.size()};
}

// Canonical order: name (byte-wise, as char_traits<char> compares like memcmp), address, port.
bool identity_less(const Backend& a, const Backend& b) {
  if (int order = a.name.compare(b.name); order != 0) return order < 0;
  if (a.address != b.address) return a.address < b.address;
  return a.port < b.port;
}

bool same_identity(const Backend& a, const Backend& b) {
  return a.name == b.name && a.address == b.address && a.port == b.port;
}

void check_table_size(uint32_t table_size) {
  if (table_size > kMaxTableSize || !is_prime(table_size))
    throw std::invalid_argument("maglev: table size " + std::to_string(table_size) +
                                " is not a prime in [2, " + std::to_string(kMaxTableSize) +
                                "] (Maglev needs a prime size so every skip walks all slots)");
}

// Backends of equal weight have the same turn times (see the schedule in Table::build), so the
// schedule tracks one entry per distinct weight. The class's k-th turn time is
// (2k + 1) / (2 * weight); `numerator` is 2k + 1.
struct WeightClass {
  uint32_t weight;
  uint64_t numerator;
  std::vector<uint32_t> members;  // canonical indices, ascending
};

// Exact comparison of (n_a / 2w_a) with (n_b / 2w_b) by cross-multiplying: n <= 2M + 1 <= 2^25 + 1
// and w < 2^32 keep each product below 2^58.
bool turn_earlier(const WeightClass& a, const WeightClass& b) {
  return a.numerator * b.weight < b.numerator * a.weight;
}

bool turn_simultaneous(const WeightClass& a, const WeightClass& b) {
  return a.numerator * b.weight == b.numerator * a.weight;
}

}  // namespace

uint64_t siphash24(const SipKey& key, std::span<const uint8_t> message) {
  const uint64_t k0 = load_le64(key.data());
  const uint64_t k1 = load_le64(key.data() + 8);
  SipState state{k0 ^ 0x736f6d6570736575ull, k1 ^ 0x646f72616e646f6dull, k0 ^ 0x6c7967656e657261ull,
                 k1 ^ 0x7465646279746573ull};

  const size_t whole_words = message.size() / 8;
  for (size_t i = 0; i < whole_words; ++i) state.compress(load_le64(message.data() + 8 * i));

  // Last word: the remaining 0..7 bytes, little-endian, with the length mod 256 in the top byte.
  uint64_t last = static_cast<uint64_t>(message.size() & 0xff) << 56;
  const size_t tail = message.size() % 8;
  for (size_t i = 0; i < tail; ++i) last |= uint64_t{message[8 * whole_words + i]} << (8 * i);
  state.compress(last);

  // Finalization: the "4" of SipHash-2-4.
  state.v2 ^= 0xff;
  for (int i = 0; i < 4; ++i) state.round();
  return state.v0 ^ state.v1 ^ state.v2 ^ state.v3;
}

bool is_prime(uint32_t n) {
  if (n < 2) return false;
  if (n % 2 == 0) return n == 2;
  // d is 64-bit so that d * d cannot wrap for n close to 2^32.
  for (uint64_t d = 3; d * d <= n; d += 2)
    if (n % d == 0) return false;
  return true;
}

namespace {

Preference preference_for_checked_size(const Backend& backend, uint32_t table_size) {
  const std::string id = identity_bytes(backend);
  const uint64_t h1 = siphash24(kOffsetKey, as_bytes(id));
  const uint64_t h2 = siphash24(kSkipKey, as_bytes(id));
  // M = 2 leaves one choice of skip (1): h2 mod 1 is 0.
  return Preference{static_cast<uint32_t>(h1 % table_size),
                    static_cast<uint32_t>(h2 % (table_size - 1) + 1)};
}

}  // namespace

Preference preference(const Backend& backend, uint32_t table_size) {
  check_table_size(table_size);
  return preference_for_checked_size(backend, table_size);
}

Table Table::build(std::span<const Backend> backends, uint32_t table_size) {
  check_table_size(table_size);
  if (backends.size() >= kNoBackend)
    throw std::invalid_argument("maglev: more than 2^32 - 2 backends");

  for (size_t i = 0; i < backends.size(); ++i) {
    if (backends[i].weight == 0)
      throw std::invalid_argument("maglev: backend #" + std::to_string(i) + " " +
                                  describe(backends[i]) +
                                  " has weight 0; weights must be at least 1 (to take a backend "
                                  "out of rotation, mark it as not accepting new flows)");
  }

  // Canonical order over all backends, so duplicates are adjacent and rejected whether or not
  // they are eligible.
  std::vector<uint32_t> order(backends.size());
  for (uint32_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(),
            [&](uint32_t a, uint32_t b) { return identity_less(backends[a], backends[b]); });
  for (size_t i = 1; i < order.size(); ++i) {
    if (same_identity(backends[order[i - 1]], backends[order[i]])) {
      const auto [first, second] = std::minmax(order[i - 1], order[i]);
      throw std::invalid_argument("maglev: backends #" + std::to_string(first) + " and #" +
                                  std::to_string(second) + " share the identity " +
                                  describe(backends[first]));
    }
  }

  // input_index[c] is the caller's index of the c-th eligible backend in canonical order.
  std::vector<uint32_t> input_index;
  for (uint32_t i : order)
    if (backends[i].accepts_new_flows) input_index.push_back(i);
  const size_t eligible = input_index.size();
  if (eligible == 0) return Table(table_size, {});
  if (eligible > table_size)
    throw std::invalid_argument("maglev: " + std::to_string(eligible) +
                                " eligible backends do not fit a table of " +
                                std::to_string(table_size) + " slots");

  // next_slot[c] is the slot at the head of backend c's remaining preference list: the paper's
  // permutation[c][next[c]], generated on the fly instead of storing N x M entries.
  std::vector<uint32_t> next_slot(eligible);
  std::vector<uint32_t> skip(eligible);
  for (size_t c = 0; c < eligible; ++c) {
    const Preference p = preference_for_checked_size(backends[input_index[c]], table_size);
    next_slot[c] = p.offset;
    skip[c] = p.skip;
  }

  // Population: the paper's Pseudocode 1 (section 3.4) with a weighted order of turns. In the
  // paper every backend takes one turn per round; a turn claims the first still-free slot of the
  // backend's preference list, so every turn claims exactly one slot and M turns fill the table.
  // A backend's slot count is therefore its number of turns, whatever the collisions.
  //
  // Weights decide who takes the next turn: backend i's k-th turn (k = 0, 1, ...) comes at
  // virtual time (k + 1/2) / w_i; turns run in virtual-time order, simultaneous turns in canonical
  // order. That is the Sainte-Lague (Webster) highest-averages sequence, so the slot counts are
  // the Sainte-Lague apportionment of M seats by weight: count_i = round(w_i / d) for one divisor d
  // near W / M (W the sum of weights). Equal weights get counts at most one apart, and each
  // count's relative error shrinks as M * w_i / W grows. Turns stay interleaved (a weight-3
  // backend takes three turns per turn of a weight-1 backend, spread out, not in a burst), which
  // keeps the paper's balanced claiming; with equal weights the order is exactly the paper's
  // round-robin over the canonical order.
  std::vector<uint32_t> by_weight(eligible);
  for (uint32_t c = 0; c < eligible; ++c) by_weight[c] = c;
  std::sort(by_weight.begin(), by_weight.end(), [&](uint32_t a, uint32_t b) {
    const uint32_t wa = backends[input_index[a]].weight;
    const uint32_t wb = backends[input_index[b]].weight;
    return wa != wb ? wa < wb : a < b;
  });
  std::vector<WeightClass> classes;
  for (uint32_t c : by_weight) {
    const uint32_t weight = backends[input_index[c]].weight;
    if (classes.empty() || classes.back().weight != weight)
      classes.push_back(WeightClass{weight, 1, {}});
    classes.back().members.push_back(c);
  }
  // Min-heap of class indices by next turn time.
  const auto later = [&](uint32_t a, uint32_t b) { return turn_earlier(classes[b], classes[a]); };
  std::vector<uint32_t> heap(classes.size());
  for (uint32_t k = 0; k < heap.size(); ++k) heap[k] = k;
  std::make_heap(heap.begin(), heap.end(), later);

  std::vector<uint32_t> owners(table_size, kNoBackend);
  std::vector<uint32_t> due;           // classes whose turn time is the current minimum
  std::vector<uint32_t> merged_turns;  // their members in canonical order, when more than one
  uint32_t filled = 0;
  while (filled < table_size) {
    due.clear();
    do {
      std::pop_heap(heap.begin(), heap.end(), later);
      due.push_back(heap.back());
      heap.pop_back();
    } while (!heap.empty() && turn_simultaneous(classes[heap.front()], classes[due.front()]));

    std::span<const uint32_t> turns = classes[due.front()].members;
    if (due.size() > 1) {
      merged_turns.clear();
      for (uint32_t k : due)
        merged_turns.insert(merged_turns.end(), classes[k].members.begin(),
                            classes[k].members.end());
      std::sort(merged_turns.begin(), merged_turns.end());
      turns = merged_turns;
    }

    for (uint32_t c : turns) {
      uint32_t slot = next_slot[c];
      const uint32_t step = skip[c];
      // Terminates: the list is a permutation of all M slots and fewer than M are taken.
      while (owners[slot] != kNoBackend) {
        slot += step;  // slot, step < M <= 2^24: no overflow, one conditional subtraction
        if (slot >= table_size) slot -= table_size;
      }
      owners[slot] = c;
      slot += step;
      if (slot >= table_size) slot -= table_size;
      next_slot[c] = slot;
      if (++filled == table_size) break;
    }

    for (uint32_t k : due) {
      classes[k].numerator += 2;
      heap.push_back(k);
      std::push_heap(heap.begin(), heap.end(), later);
    }
  }

  for (uint32_t& owner : owners) owner = input_index[owner];
  return Table(table_size, std::move(owners));
}

uint64_t hash_five_tuple(const FiveTuple& tuple) {
  const std::array<uint8_t, 13> bytes = {
      static_cast<uint8_t>(tuple.src_address >> 24),
      static_cast<uint8_t>(tuple.src_address >> 16),
      static_cast<uint8_t>(tuple.src_address >> 8),
      static_cast<uint8_t>(tuple.src_address),
      static_cast<uint8_t>(tuple.dst_address >> 24),
      static_cast<uint8_t>(tuple.dst_address >> 16),
      static_cast<uint8_t>(tuple.dst_address >> 8),
      static_cast<uint8_t>(tuple.dst_address),
      static_cast<uint8_t>(tuple.src_port >> 8),
      static_cast<uint8_t>(tuple.src_port),
      static_cast<uint8_t>(tuple.dst_port >> 8),
      static_cast<uint8_t>(tuple.dst_port),
      tuple.protocol,
  };
  return siphash24(kFlowKey, bytes);
}

uint64_t hash_source_ip(uint32_t src_address) {
  const std::array<uint8_t, 4> bytes = {
      static_cast<uint8_t>(src_address >> 24), static_cast<uint8_t>(src_address >> 16),
      static_cast<uint8_t>(src_address >> 8), static_cast<uint8_t>(src_address)};
  return siphash24(kFlowKey, bytes);
}

uint64_t flow_hash(FlowKey key, const FiveTuple& tuple) {
  switch (key) {
    case FlowKey::five_tuple:
      return hash_five_tuple(tuple);
    case FlowKey::source_ip:
      return hash_source_ip(tuple.src_address);
  }
  throw std::invalid_argument("maglev: unknown FlowKey " +
                              std::to_string(static_cast<unsigned>(key)));
}

}  // namespace weir::maglev
