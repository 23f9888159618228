// neuron/engine/slot_pool.h: numbered slots in chunks that never move (a
// reference to a slot stays valid while the pool lives), with a list of
// numbers given back for reuse. The lease table's records and the request
// table's requests live in one each.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

namespace neuron {

template <typename Slot, std::uint32_t kChunk>
class SlotPool {
 public:
  // A slot number: one given back, or a new one.
  std::uint32_t acquire() {
    if (!free_.empty()) {
      const std::uint32_t n = free_.back();
      free_.pop_back();
      return n;
    }
    const std::uint32_t n = count_++;
    if (n / kChunk >= chunks_.size()) chunks_.push_back(std::make_unique<Slot[]>(kChunk));
    return n;
  }
  // `n` may be handed out again (its slot keeps whatever it holds).
  void release(std::uint32_t n) { free_.push_back(n); }
  Slot& operator[](std::uint32_t n) { return chunks_[n / kChunk][n % kChunk]; }
  const Slot& operator[](std::uint32_t n) const { return chunks_[n / kChunk][n % kChunk]; }
  // Slot numbers ever handed out: [0, count()).
  std::uint32_t count() const { return count_; }

 private:
  std::vector<std::unique_ptr<Slot[]>> chunks_;
  std::vector<std::uint32_t> free_;
  std::uint32_t count_ = 0;
};

}  // namespace neuron
