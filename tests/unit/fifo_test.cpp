// The engine's queue (engine/fifo.h) against std::deque: pushes at both ends,
// pops and erases from the middle, across wraps, growth and the give-back of
// a buffer that grew past what is kept.
#include <gtest/gtest.h>

#include <algorithm>
#include <deque>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "neuron/engine/fifo.h"
#include "neuron/engine/graveyard.h"

namespace neuron {
namespace {

TEST(Fifo, AgreesWithADequeUnderRandomPushesPopsAndErases) {
  std::mt19937 rng(5);
  Fifo<std::string> fifo;
  std::deque<std::string> model;
  int given_back = 0;
  bool filling = true;
  for (int step = 0; step < 50'000; ++step) {
    // Phases that fill past the kept size (256), then drain to empty.
    if (filling && model.size() > 600) filling = false;
    if (!filling && model.empty()) {
      filling = true;
      given_back += fifo.capacity() == 0;
    }
    const unsigned r = rng() % 10;
    // Longer than any small-string buffer: every value owns heap memory.
    const std::string value = "a value long enough to live on the heap " + std::to_string(rng() % 400);
    if (r < (filling ? 6u : 2u)) {
      fifo.push_back(value);
      model.push_back(value);
    } else if (r < (filling ? 7u : 3u)) {
      fifo.push_front(value);
      model.push_front(value);
    } else if (r < 9 && !model.empty()) {
      ASSERT_EQ(fifo.front(), model.front());
      fifo.pop_front();
      model.pop_front();
    } else {
      fifo.erase(value);
      if (auto it = std::find(model.begin(), model.end(), value); it != model.end()) model.erase(it);
    }
    ASSERT_EQ(fifo.size(), model.size()) << "step " << step;
    ASSERT_EQ(fifo.empty(), model.empty());
    if (!model.empty()) ASSERT_EQ(fifo.front(), model.front()) << "step " << step;
  }
  EXPECT_GE(given_back, 3) << "a buffer grown past 256 entries is given back when the queue empties";
  Fifo<std::string> moved(std::move(fifo));
  EXPECT_EQ(moved.size(), model.size());
  EXPECT_EQ(fifo.size(), 0u) << "a moved-from queue is empty";  // NOLINT(bugprone-use-after-move)
  fifo.push_back("again");
  EXPECT_EQ(fifo.front(), "again");
  fifo = std::move(moved);
  EXPECT_EQ(fifo.size(), model.size());
  Fifo<std::string> other;
  other.push_back("x");
  fifo.swap(other);
  ASSERT_EQ(fifo.size(), 1u);
  EXPECT_EQ(fifo.front(), "x");
  std::vector<std::string> rest;
  for (; !other.empty(); other.pop_front()) rest.push_back(other.front());
  EXPECT_TRUE(std::equal(rest.begin(), rest.end(), model.begin(), model.end()));
}

TEST(Graveyard, KeptStringsStayWhereTheyAreUntilClearedShortOnesToo) {
  Graveyard graveyard;
  for (int round = 0; round < 3; ++round) {
    std::vector<std::pair<const char*, std::string>> kept;  // where each one's characters were, and what
    for (int i = 0; i < 100; ++i) {
      // short strings live inside the string object, long ones on the heap
      std::string s = i % 2 ? "s" + std::to_string(i) : std::string(40, 'a') + std::to_string(i);
      const std::string copy = s;
      const std::string& ref = i % 3 ? graveyard.keep(std::move(s)) : graveyard.keep(copy);
      kept.emplace_back(ref.data(), copy);
    }
    EXPECT_EQ(graveyard.size(), 100u);
    for (const auto& [data, text] : kept) EXPECT_EQ(std::string_view(data, text.size()), text);
    graveyard.clear();
    EXPECT_EQ(graveyard.size(), 0u);
    EXPECT_EQ(graveyard.blocks(), 1u) << "one block kept for the next call";
  }
}

}  // namespace
}  // namespace neuron
