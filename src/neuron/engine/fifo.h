// neuron/engine/fifo.h: the engine's queues (a capability's waiting leases,
// requests waiting for a connection, events for the host). One ring buffer
// that doubles when full, from 8 entries: a std::deque takes a 4 KiB block
// for its first entry, and the engine has a handful of queues that are
// mostly empty. A queue that empties after growing past kKeep entries gives
// its buffer back, so a burst does not stay in memory.
#pragma once

#include <algorithm>
#include <cstddef>
#include <utility>
#include <vector>

namespace neuron {

template <typename T>
class Fifo {
 public:
  Fifo() = default;
  Fifo(Fifo&& other) noexcept { swap(other); }
  Fifo& operator=(Fifo&& other) noexcept {
    Fifo(std::move(other)).swap(*this);
    return *this;
  }
  Fifo(const Fifo&) = delete;
  Fifo& operator=(const Fifo&) = delete;

  bool empty() const { return size_ == 0; }
  std::size_t size() const { return size_; }
  // Entries the buffer holds before it grows.
  std::size_t capacity() const { return buf_.size(); }
  T& front() { return buf_[head_]; }
  const T& front() const { return buf_[head_]; }

  void push_back(T value) {
    if (size_ == buf_.size()) grow();
    buf_[(head_ + size_) & mask()] = std::move(value);
    ++size_;
  }
  template <typename... Args>
  void emplace_back(Args&&... args) {
    push_back(T(std::forward<Args>(args)...));
  }
  void push_front(T value) {
    if (size_ == buf_.size()) grow();
    head_ = (head_ + buf_.size() - 1) & mask();
    buf_[head_] = std::move(value);
    ++size_;
  }
  void pop_front() {
    buf_[head_] = T();
    head_ = (head_ + 1) & mask();
    if (--size_ == 0) reset();
  }
  // Removes the first entry equal to `value`, keeping the order of the rest.
  void erase(const T& value) {
    std::size_t k = 0;
    while (k < size_ && !(at(k) == value)) ++k;
    if (k == size_) return;
    for (; k + 1 < size_; ++k) at(k) = std::move(at(k + 1));
    at(k) = T();
    if (--size_ == 0) reset();
  }
  void clear() {
    while (size_ > 0) pop_front();
  }
  void swap(Fifo& other) noexcept {
    buf_.swap(other.buf_);
    std::swap(head_, other.head_);
    std::swap(size_, other.size_);
  }

 private:
  static constexpr std::size_t kKeep = 256;

  std::size_t mask() const { return buf_.size() - 1; }
  T& at(std::size_t k) { return buf_[(head_ + k) & mask()]; }
  void grow() {
    std::vector<T> next(std::max<std::size_t>(8, buf_.size() * 2));
    for (std::size_t k = 0; k < size_; ++k) next[k] = std::move(at(k));
    buf_.swap(next);
    head_ = 0;
  }
  void reset() {
    head_ = 0;
    if (buf_.size() > kKeep) std::vector<T>().swap(buf_);
  }

  std::vector<T> buf_;  // a power of two entries, or none
  std::size_t head_ = 0;
  std::size_t size_ = 0;
};

}  // namespace neuron
