// The lease id indexes (engine/id_index.h) against a plain std::map model:
// random inserts, lookups and erases over a small pool of ids, so that runs
// of colliding entries form, grow, and are shifted back on erase.
#include <gtest/gtest.h>

#include <cstdint>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "neuron/engine/id_index.h"

namespace neuron {
namespace {

std::vector<std::string> id_pool(std::size_t n) {
  std::vector<std::string> ids;
  for (std::size_t i = 0; i < n; ++i) ids.push_back((i % 3 ? "lease-" : "L") + std::to_string(i * 7919));
  return ids;
}

TEST(IdIndex, AgreesWithAMapUnderRandomInsertsAndErases) {
  const std::vector<std::string> ids = id_pool(300);
  std::mt19937 rng(7);
  IdIndex index;
  std::map<std::string, std::uint64_t> model;
  for (int step = 0; step < 20'000; ++step) {
    const std::string& id = ids[rng() % ids.size()];
    if (rng() % 2) {
      if (!model.count(id)) {
        index.insert(id, step);
        model[id] = static_cast<std::uint64_t>(step);
      }
    } else {
      index.erase(id);
      model.erase(id);
    }
    ASSERT_EQ(index.size(), model.size());
    const std::string& probe = ids[rng() % ids.size()];
    const std::uint64_t* found = index.find(probe);
    ASSERT_EQ(found != nullptr, model.count(probe) == 1) << probe;
    if (found) EXPECT_EQ(*found, model[probe]);
  }
}

TEST(SlotIndex, AgreesWithAMapUnderRandomInsertsAndErases) {
  // Slots hold fingerprints, as rule 2's ring does; one is in at most one slot.
  // Fingerprints that share their low 32 bits (the index's hash) make long
  // runs, so the backward shift is exercised.
  std::vector<std::uint64_t> prints;
  for (const std::string& id : id_pool(300)) prints.push_back(id_hash(id));
  for (std::uint64_t k = 1; k <= 40; ++k) prints.push_back((k << 32) | 7);
  std::vector<std::uint64_t> slots(64);
  std::map<std::uint64_t, std::uint32_t> model;  // fingerprint -> slot
  std::mt19937 rng(11);
  SlotIndex index;
  auto print_of = [&](std::uint32_t slot) { return slots[slot]; };
  for (int step = 0; step < 20'000; ++step) {
    const std::uint64_t print = prints[rng() % prints.size()];
    if (rng() % 2) {
      const auto slot = static_cast<std::uint32_t>(rng() % slots.size());
      if (model.count(print)) continue;
      // The slot's old fingerprint leaves first (the ring reuses slots).
      for (auto it = model.begin(); it != model.end(); ++it) {
        if (it->second == slot) {
          index.erase(slots[slot], slot);
          model.erase(it);
          break;
        }
      }
      slots[slot] = print;
      index.insert(print, slot);
      model[print] = slot;
    } else if (auto it = model.find(print); it != model.end()) {
      index.erase(print, it->second);
      model.erase(it);
    }
    ASSERT_EQ(index.size(), model.size());
    for (int k = 0; k < 3; ++k) {
      const std::uint64_t probe = prints[rng() % prints.size()];
      ASSERT_EQ(index.contains(probe, print_of), model.count(probe) == 1) << probe << " at step " << step;
    }
  }
}

}  // namespace
}  // namespace neuron
