// The live-lease index (engine/id_index.h) and rule 2's memory
// (engine/recent_ids.h) against plain models: random inserts, lookups and
// erases over a small pool of ids, so that runs of colliding entries form,
// grow, and are shifted back on erase.
#include <gtest/gtest.h>

#include <cstdint>
#include <deque>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "neuron/engine/id_index.h"
#include "neuron/engine/id_store.h"
#include "neuron/engine/recent_ids.h"

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

// The request table's store: a model map, and references that stay put.
TEST(IdStore, AgreesWithAMapAndKeepsValuesInPlace) {
  std::mt19937 rng(3);
  IdStore<std::string> store;
  std::map<std::uint64_t, std::string> model;
  std::map<std::uint64_t, const std::string*> where;
  std::uint64_t next = 0;
  for (int step = 0; step < 20'000; ++step) {
    if (rng() % 3 != 0 || model.empty()) {
      const std::uint64_t id = ++next;
      std::string& value = store.insert(id);
      value = "a request body long enough for the heap " + std::to_string(id);
      model[id] = value;
      where[id] = &value;
    } else {
      auto it = model.begin();
      std::advance(it, rng() % model.size());
      store.erase(it->first);
      where.erase(it->first);
      model.erase(it);
    }
    ASSERT_EQ(store.size(), model.size());
    if (step % 97 == 0) {
      const std::vector<std::uint64_t> ids = store.ids();
      ASSERT_EQ(ids.size(), model.size());
      std::size_t k = 0;
      for (const auto& [id, value] : model) {
        ASSERT_EQ(ids[k++], id) << "oldest first";
        ASSERT_EQ(store.find(id), where[id]) << "a value never moves";
        ASSERT_EQ(*store.find(id), value);
      }
    }
    ASSERT_EQ(store.find(next + 1), nullptr);
  }
}

// Rule 2's memory against a model that keeps every (time, fingerprint) in
// order: the ones remembered are exactly the last `capacity` within the TTL.
// Fingerprints that share their low bits (the index's home) make long runs,
// so the backward shift on forgetting is exercised; time jumps of days move
// the 32-bit stamps' base.
TEST(RecentIds, AgreesWithAModelOfTheLastCapacityWithinTheTtl) {
  std::vector<std::uint64_t> prints;
  for (const std::string& id : id_pool(300)) prints.push_back(id_hash(id));
  for (std::uint64_t k = 1; k <= 40; ++k) prints.push_back((k << 32) | 7);
  auto check = [&](std::size_t capacity, TimeMs ttl) {
    RecentIds recent(capacity, ttl);
    std::deque<std::pair<TimeMs, std::uint64_t>> model;  // oldest first
    auto model_forget = [&](TimeMs now) {
      while (!model.empty() && model.front().first + ttl < now) model.pop_front();
    };
    auto model_has = [&](std::uint64_t p) {
      for (const auto& [at, q] : model) {
        if (q == p) return true;
      }
      return false;
    };
    std::mt19937 rng(11 + static_cast<unsigned>(capacity));
    TimeMs now = 1'000;
    for (int step = 0; step < 20'000; ++step) {
      const unsigned r = rng() % 100;
      if (r < 3) {
        now += TimeMs{10} * 24 * 3600 * 1000 + rng() % 10'000;  // days later
      } else if (r < 30) {
        now += rng() % 400;
      }
      const std::uint64_t print = prints[rng() % prints.size()];
      if (rng() % 2) {
        recent.remember(now, print);
        model_forget(now);
        if (!model_has(print)) {
          if (model.size() >= capacity) model.pop_front();
          model.emplace_back(now, print);
        }
      } else if (rng() % 4 == 0) {
        recent.forget_expired(now);
        model_forget(now);
      }
      ASSERT_EQ(recent.size(), model.size()) << "step " << step;
      for (int k = 0; k < 3; ++k) {
        const std::uint64_t probe = prints[rng() % prints.size()];
        ASSERT_EQ(recent.contains(probe), model_has(probe)) << probe << " at step " << step;
      }
    }
  };
  // 20 000: past RecentIds' presized index, which grows; 70 000: 4-byte index entries.
  for (const std::size_t capacity : {1, 7, 64, 300, 20'000, 70'000}) {
    SCOPED_TRACE(capacity);
    check(capacity, 5'000);               // jumps of days forget everything
    check(capacity, RecentIds::kMaxTtlMs);  // ... or not: the stamps' base moves
  }
}

TEST(RecentIds, RemembersExactlyTheLastCapacityAcrossThe16BitIndexBoundary) {
  // Positions up to 65 535 fit the 2-byte index entries; one more id of
  // capacity takes the 4-byte ones. Either way, past a wrap of the ring.
  for (const std::size_t capacity : {std::size_t{65'535}, std::size_t{65'536}}) {
    SCOPED_TRACE(capacity);
    RecentIds recent(capacity, 600'000);
    const std::size_t total = capacity + 1'000;
    for (std::size_t i = 0; i < total; ++i) recent.remember(5'000, id_hash("lease-" + std::to_string(i)));
    ASSERT_EQ(recent.size(), capacity);
    std::size_t remembered = 0;
    for (std::size_t i = 0; i < total; ++i) {
      const bool in = recent.contains(id_hash("lease-" + std::to_string(i)));
      if (i < 1'000) {
        ASSERT_FALSE(in) << i;
      } else {
        remembered += in;
      }
    }
    EXPECT_EQ(remembered, capacity);
  }
}

TEST(RecentIds, KeepsFinishTimesToTheMillisecondAcrossTheStampsRebase) {
  // Stamps are 32-bit milliseconds from a base that moves when they would
  // not fit: with the longest TTL, ids finished 2^31 - 1 ms apart.
  const TimeMs ttl = RecentIds::kMaxTtlMs;
  RecentIds recent(10, ttl);
  const TimeMs t0 = 1'000;
  for (std::uint64_t k = 0; k < 4; ++k) {
    recent.remember(t0 + static_cast<TimeMs>(k) * ttl, k + 1);
    ASSERT_EQ(recent.size(), k == 0 ? 1u : 2u) << "the one before is remembered for exactly the TTL";
    EXPECT_TRUE(recent.contains(k + 1));
    if (k > 0) EXPECT_TRUE(recent.contains(k));
  }
  const TimeMs last = t0 + 3 * ttl;
  recent.forget_expired(last + ttl);
  EXPECT_TRUE(recent.contains(4)) << "finished exactly the TTL ago";
  recent.forget_expired(last + ttl + 1);
  EXPECT_FALSE(recent.contains(4)) << "a millisecond later: forgotten";
  EXPECT_EQ(recent.size(), 0u);
}

TEST(RecentIds, AClockThatStepsBackKeepsAnIdAtLeastItsTtl) {
  // Date.now() may step back (NTP, a user changing the clock). An id
  // finished "before" the stamps' base is stamped at the base: remembered a
  // little longer, never shorter than the TTL from when it finished.
  const TimeMs ttl = 5'000;
  RecentIds recent(10, ttl);
  recent.remember(100'000, 1);
  recent.remember(40'000, 2);  // the clock stepped back a minute
  EXPECT_TRUE(recent.contains(1));
  EXPECT_TRUE(recent.contains(2));
  recent.forget_expired(40'000 + ttl + 1);
  EXPECT_TRUE(recent.contains(2)) << "its TTL from when it finished has passed, but it is kept from the base";
  recent.forget_expired(100'000 + ttl);
  EXPECT_EQ(recent.size(), 2u);
  recent.forget_expired(100'000 + ttl + 1);
  EXPECT_EQ(recent.size(), 0u);
  // Once empty, the base moves to the next finish; a step back far below it.
  recent.remember(100'000 + TimeMs{UINT32_MAX} + 10, 3);
  recent.remember(100'000, 4);
  EXPECT_TRUE(recent.contains(3));
  EXPECT_TRUE(recent.contains(4));
  recent.forget_expired(100'000 + TimeMs{UINT32_MAX} + 10 + ttl);
  EXPECT_EQ(recent.size(), 2u);
  recent.forget_expired(100'000 + TimeMs{UINT32_MAX} + 10 + ttl + 1);
  EXPECT_EQ(recent.size(), 0u);
}

}  // namespace
}  // namespace neuron
