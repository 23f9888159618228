// neuron/engine/id_index.h: lease id -> handle, for rule 2's duplicate check
// and for cancel / lostLeases lookups. Open addressing with linear probing and
// backward-shift deletion: no allocation per insert (leases arrive at tens of
// thousands per second), no tombstones. Keys are views: the caller keeps each
// key's bytes alive (and unmoved) while it is in the index.
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

class IdIndex {
 public:
  IdIndex() { table_.resize(16); }

  // The value stored for `key`, or nullptr.
  std::uint64_t* find(std::string_view key) {
    if (size_ == 0) return nullptr;
    const std::uint64_t h = hash(key);
    for (std::size_t i = h & mask(); ; i = (i + 1) & mask()) {
      Entry& e = table_[i];
      if (!e.used) return nullptr;
      if (e.hash == h && e.key == key) return &e.value;
    }
  }
  bool contains(std::string_view key) { return find(key) != nullptr; }

  // `key` must not be present.
  void insert(std::string_view key, std::uint64_t value) {
    // At most half full: most lookups are for ids not in the index (a new
    // lease), and linear probing pays for those by the length of the run.
    if ((size_ + 1) * 2 > table_.size()) grow();
    place({key, value, hash(key), true});
    ++size_;
  }

  // Same bytes, new home (the key's owner moved them).
  void rekey(std::string_view key, std::string_view moved_to) {
    const std::uint64_t h = hash(key);
    for (std::size_t i = h & mask(); table_[i].used; i = (i + 1) & mask()) {
      if (table_[i].hash == h && table_[i].key == key) {
        table_[i].key = moved_to;
        return;
      }
    }
  }

  void erase(std::string_view key) {
    if (size_ == 0) return;
    const std::uint64_t h = hash(key);
    std::size_t i = h & mask();
    for (;; i = (i + 1) & mask()) {
      if (!table_[i].used) return;
      if (table_[i].hash == h && table_[i].key == key) break;
    }
    // Backward shift: pull later entries of the run into the hole when their
    // home slot allows it, so lookups never need tombstones.
    std::size_t hole = i;
    for (std::size_t j = (i + 1) & mask(); table_[j].used; j = (j + 1) & mask()) {
      const std::size_t home = table_[j].hash & mask();
      const bool movable = hole <= j ? (home <= hole || home > j) : (home <= hole && home > j);
      if (movable) {
        table_[hole] = table_[j];
        hole = j;
      }
    }
    table_[hole].used = false;
    --size_;
  }

  void clear() {
    for (Entry& e : table_) e.used = false;
    size_ = 0;
  }
  std::size_t size() const { return size_; }

 private:
  struct Entry {
    std::string_view key;
    std::uint64_t value = 0;
    std::uint64_t hash = 0;
    bool used = false;
  };

  std::size_t mask() const { return table_.size() - 1; }

  static std::uint64_t hash(std::string_view s) { return id_hash(s); }

  void place(const Entry& entry) {
    std::size_t i = entry.hash & mask();
    while (table_[i].used) i = (i + 1) & mask();
    table_[i] = entry;
  }

  void grow() {
    std::vector<Entry> old(table_.size() * 2);
    old.swap(table_);
    for (const Entry& e : old) {
      if (e.used) place(e);
    }
  }

  std::vector<Entry> table_;
  std::size_t size_ = 0;
};

// A set of ids whose bytes live in numbered slots elsewhere (rule 2's ring of
// recent ids): 8 bytes an entry, a 32-bit hash and the slot, so a lookup of
// an id that is not there (the usual case: a new lease) reads no key at all
// and a 10 000-id ring needs 256 KiB, not 1 MiB. Open addressing, linear
// probing, backward-shift deletion, at most half full.
class SlotIndex {
 public:
  SlotIndex() { table_.resize(16); }

  // `key_of(slot)` is the id in that slot.
  template <typename KeyOf>
  bool contains(std::string_view key, KeyOf&& key_of) const {
    if (size_ == 0) return false;
    const auto h = static_cast<std::uint32_t>(id_hash(key));
    for (std::size_t i = h & mask(); table_[i].slot_plus_one; i = (i + 1) & mask()) {
      if (table_[i].hash == h && key_of(table_[i].slot_plus_one - 1) == key) return true;
    }
    return false;
  }

  // `key` (the id in `slot`) must not be present.
  void insert(std::string_view key, std::uint32_t slot) {
    if ((size_ + 1) * 2 > table_.size()) grow();
    place({static_cast<std::uint32_t>(id_hash(key)), slot + 1});
    ++size_;
  }

  // Removes the entry of `slot`, whose id is `key`.
  void erase(std::string_view key, std::uint32_t slot) {
    if (size_ == 0) return;
    std::size_t i = static_cast<std::uint32_t>(id_hash(key)) & mask();
    for (;; i = (i + 1) & mask()) {
      if (!table_[i].slot_plus_one) return;
      if (table_[i].slot_plus_one == slot + 1) break;
    }
    std::size_t hole = i;
    for (std::size_t j = (i + 1) & mask(); table_[j].slot_plus_one; j = (j + 1) & mask()) {
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

  std::size_t size() const { return size_; }

 private:
  struct Entry {
    std::uint32_t hash = 0;
    std::uint32_t slot_plus_one = 0;  // 0: empty
  };

  std::size_t mask() const { return table_.size() - 1; }

  void place(const Entry& entry) {
    std::size_t i = entry.hash & mask();
    while (table_[i].slot_plus_one) i = (i + 1) & mask();
    table_[i] = entry;
  }

  void grow() {
    std::vector<Entry> old(table_.size() * 2);
    old.swap(table_);
    for (const Entry& e : old) {
      if (e.slot_plus_one) place(e);
    }
  }

  std::vector<Entry> table_;
  std::size_t size_ = 0;
};

}  // namespace neuron
