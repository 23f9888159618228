// neuron/engine/id_store.h: values by a nonzero 64-bit id (the request
// table's requests). Values live in chunks that never move, so a reference
// to one stays valid until it is erased (a Post's body is viewed while its
// request lives); ids are found through the open-addressing table the lease
// index uses. A std::unordered_map did the same with a node per value and
// several KB more wasm.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "neuron/engine/id_index.h"
#include "neuron/engine/slot_pool.h"

namespace neuron {

template <typename T>
class IdStore {
 public:
  T* find(std::uint64_t id) {
    const std::uint64_t h = mix(id);
    const Entry* e = index_.find(h, [&](const Entry& x) { return x.hash == h; });
    return e ? &slots_[e->slot].value : nullptr;
  }
  const T* find(std::uint64_t id) const { return const_cast<IdStore*>(this)->find(id); }
  // The value of an id that must be present.
  T& at(std::uint64_t id) {
    T* value = find(id);
    if (!value) std::abort();
    return *value;
  }
  // A default value for `id`, which must not be present.
  T& insert(std::uint64_t id) {
    const std::uint32_t n = slots_.acquire();
    Slot& s = slots_[n];
    s.id = id;
    index_.insert({mix(id), n});
    return s.value;
  }
  void erase(std::uint64_t id) {
    const std::uint64_t h = mix(id);
    const Entry* e = index_.find(h, [&](const Entry& x) { return x.hash == h; });
    if (!e) return;
    const std::uint32_t n = e->slot;
    index_.erase(h, [&](const Entry& x) { return x.hash == h; });
    Slot& s = slots_[n];
    s.id = 0;
    s.value = T();
    slots_.release(n);
  }
  std::size_t size() const { return index_.size(); }
  bool empty() const { return index_.size() == 0; }
  // The ids present, oldest (smallest) first.
  std::vector<std::uint64_t> ids() const {
    std::vector<std::uint64_t> out;
    out.reserve(size());
    for (std::uint32_t n = 0; n < slots_.count(); ++n) {
      if (const std::uint64_t id = slots_[n].id) out.push_back(id);
    }
    std::sort(out.begin(), out.end());
    return out;
  }

 private:
  struct Slot {
    std::uint64_t id = 0;  // 0: free
    T value;
  };
  struct Entry {
    std::uint64_t hash = 0;  // mix(id): one-to-one, so it is the key
    std::uint32_t slot = UINT32_MAX;
    bool used() const { return slot != UINT32_MAX; }
  };
  // Odd multiplier: a bijection of 64-bit ids that spreads consecutive ones.
  static std::uint64_t mix(std::uint64_t id) { return id * 0x9e3779b97f4a7c15ULL; }

  SlotPool<Slot, 32> slots_;
  ProbeTable<Entry> index_;
};

}  // namespace neuron
