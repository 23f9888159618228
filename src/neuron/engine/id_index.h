// neuron/engine/id_index.h: the index of live leases by id, and the id hash
// it shares with rule 2's memory (recent_ids.h). Open addressing with linear
// probing and backward-shift deletion: no allocation per insert (leases
// arrive at tens of thousands per second), no tombstones. IdIndex's keys are
// views: the caller keeps each key's bytes alive (and unmoved) while it is
// in the index.
#pragma once

#include <cstdint>
#include <cstring>
#include <string_view>
#include <vector>

namespace neuron {

// 8 bytes at a time, multiply-xorshift: ids are short ASCII strings.
inline std::uint64_t id_hash(std::string_view s) {
  std::uint64_t h = 0x9e3779b97f4a7c15ULL ^ s.size();
  std::size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    std::uint64_t w;
    std::memcpy(&w, s.data() + i, 8);
    h = (h ^ w) * 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 29;
  }
  std::uint64_t tail = 0;
  std::memcpy(&tail, s.data() + i, s.size() - i);
  h = (h ^ tail) * 0x94d049bb133111ebULL;
  return h ^ (h >> 32);
}

// Open addressing with linear probing and backward-shift deletion, at most
// half full, over entries that carry their hash and say whether they are in
// use (`used()`; a default-made Entry is not). `match(entry)` picks the entry
// a lookup or an erase is after.
template <typename Entry>
class ProbeTable {
 public:
  ProbeTable() { table_.resize(16); }

  template <typename Match>
  Entry* find(std::uint64_t hash, Match&& match) {
    if (size_ == 0) return nullptr;
    for (std::size_t i = hash & mask(); table_[i].used(); i = (i + 1) & mask()) {
      if (match(table_[i])) return &table_[i];
    }
    return nullptr;
  }
  template <typename Match>
  const Entry* find(std::uint64_t hash, Match&& match) const {
    return const_cast<ProbeTable*>(this)->find(hash, match);
  }

  // The entry's key must not be present.
  void insert(const Entry& entry) {
    // Most lookups are for ids not in the index (a new lease), and linear
    // probing pays for those by the length of the run: keep runs short.
    if ((size_ + 1) * 2 > table_.size()) grow();
    place(entry);
    ++size_;
  }

  template <typename Match>
  void erase(std::uint64_t hash, Match&& match) {
    Entry* e = find(hash, match);
    if (!e) return;
    // Backward shift: pull later entries of the run into the hole when their
    // home slot allows it, so lookups never need tombstones.
    std::size_t hole = static_cast<std::size_t>(e - table_.data());
    for (std::size_t j = (hole + 1) & mask(); table_[j].used(); j = (j + 1) & mask()) {
      const std::size_t home = table_[j].hash & mask();
      const bool movable = hole <= j ? (home <= hole || home > j) : (home <= hole && home > j);
      if (movable) {
        table_[hole] = table_[j];
        hole = j;
      }
    }
    table_[hole] = Entry{};
    --size_;
  }

  void clear() {
    for (Entry& e : table_) e = Entry{};
    size_ = 0;
  }
  std::size_t size() const { return size_; }

 private:
  std::size_t mask() const { return table_.size() - 1; }

  void place(const Entry& entry) {
    std::size_t i = entry.hash & mask();
    while (table_[i].used()) i = (i + 1) & mask();
    table_[i] = entry;
  }

  void grow() {
    std::vector<Entry> old(table_.size() * 2);
    old.swap(table_);
    for (const Entry& e : old) {
      if (e.used()) place(e);
    }
  }

  std::vector<Entry> table_;
  std::size_t size_ = 0;
};

// Lease id -> handle: the running leases (cancel, lostLeases, rule 2).
class IdIndex {
 public:
  // The value stored for `key`, or nullptr.
  std::uint64_t* find(std::string_view key) {
    const std::uint64_t h = id_hash(key);
    Entry* e = table_.find(h, [&](const Entry& x) { return x.hash == h && x.key == key; });
    return e ? &e->value : nullptr;
  }
  bool contains(std::string_view key) { return find(key) != nullptr; }
  // `key` must not be present.
  void insert(std::string_view key, std::uint64_t value) { table_.insert({key, value, id_hash(key), true}); }
  void erase(std::string_view key) {
    const std::uint64_t h = id_hash(key);
    table_.erase(h, [&](const Entry& x) { return x.hash == h && x.key == key; });
  }
  void clear() { table_.clear(); }
  std::size_t size() const { return table_.size(); }

 private:
  struct Entry {
    std::string_view key;
    std::uint64_t value = 0;
    std::uint64_t hash = 0;
    bool in_use = false;
    bool used() const { return in_use; }
  };
  ProbeTable<Entry> table_;
};

}  // namespace neuron
