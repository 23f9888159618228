// neuron/engine/graveyard.h: the strings polled actions point into (a
// StartHandler's task, a Post's body the engine let go of), kept until the
// next call into the engine (engine.h). A kept string never moves, short
// ones included (their characters live inside the string object): blocks of
// kBlock strings that stay where they are. Cleared at the start of each
// call, it keeps one block for the next (a std::deque did the same job with
// 4 KiB blocks and twice the code).
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace neuron {

class Graveyard {
 public:
  // Keeps `s`; the reference stays valid until clear().
  const std::string& keep(std::string s) {
    if (size_ == blocks_.size() * kBlock) blocks_.push_back(std::make_unique<std::string[]>(kBlock));
    std::string& slot = blocks_[size_ / kBlock][size_ % kBlock];
    slot = std::move(s);
    ++size_;
    return slot;
  }

  // Lets every kept string go (their memory too).
  void clear() {
    for (std::size_t i = 0; i < size_; ++i) blocks_[i / kBlock][i % kBlock] = std::string();
    size_ = 0;
    if (blocks_.size() > 1) blocks_.resize(1);  // after a burst (stop() dropping many requests)
  }

  std::size_t size() const { return size_; }
  // Blocks held (each kBlock strings): 1 at most after clear().
  std::size_t blocks() const { return blocks_.size(); }

  static constexpr std::size_t kBlock = 16;

 private:
  std::vector<std::unique_ptr<std::string[]>> blocks_;
  std::size_t size_ = 0;
};

}  // namespace neuron
