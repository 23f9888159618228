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
  // Slots hold the ids, as rule 2's ring does; an id is in at most one slot.
  const std::vector<std::string> ids = id_pool(300);
  std::vector<std::string> slots(64);
  std::map<std::string, std::uint32_t> model;  // id -> slot
  std::mt19937 rng(11);
  SlotIndex index;
  auto key_of = [&](std::uint32_t slot) -> std::string_view { return slots[slot]; };
  for (int step = 0; step < 20'000; ++step) {
    const std::string& id = ids[rng() % ids.size()];
    if (rng() % 2) {
      const auto slot = static_cast<std::uint32_t>(rng() % slots.size());
      if (model.count(id)) continue;
      // The slot's old id leaves first (the ring reuses slots).
      for (auto it = model.begin(); it != model.end(); ++it) {
        if (it->second == slot) {
          index.erase(slots[slot], slot);
          model.erase(it);
          break;
        }
      }
      slots[slot] = id;
      index.insert(id, slot);
      model[id] = slot;
    } else if (auto it = model.find(id); it != model.end()) {
      index.erase(id, it->second);
      model.erase(it);
    }
    ASSERT_EQ(index.size(), model.size());
    for (int k = 0; k < 3; ++k) {
      const std::string& probe = ids[rng() % ids.size()];
      ASSERT_EQ(index.contains(probe, key_of), model.count(probe) == 1) << probe << " at step " << step;
    }
  }
}

}  // namespace
}  // namespace neuron
