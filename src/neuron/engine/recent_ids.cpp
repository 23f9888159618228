#include "neuron/engine/recent_ids.h"

namespace neuron {

RecentIds::RecentIds(std::size_t capacity, TimeMs ttl_ms)
    : capacity_(capacity), ttl_ms_(ttl_ms), wide_(capacity > UINT16_MAX) {
  // Up to kPresized ids, the index starts at the size a full ring needs and
  // never grows: one block allocated first, not a larger one allocated later
  // beside the smaller (which left a hole in the wasm heap that later blocks
  // did not fit, and the core's memory grew a page).
  if (capacity <= kPresized) {
    while (capacity * 4 > index_slots_ * 3) index_slots_ *= 2;
  }
  if (wide_) {
    index32_.resize(index_slots_);
  } else {
    index16_.resize(index_slots_);
  }
}

bool RecentIds::contains(std::uint64_t print) const {
  if (size_ == 0) return false;
  for (std::size_t i = print & mask(); entry(i); i = (i + 1) & mask()) {
    if (print_at(entry(i) - 1) == print) return true;
  }
  return false;
}

void RecentIds::forget_expired(TimeMs now) {
  while (size_ > 0 && base_ + stamp_at(head_) + ttl_ms_ < now) forget_oldest();
}

void RecentIds::remember(TimeMs now, std::uint64_t print) {
  forget_expired(now);
  if (contains(print)) return;
  if (size_ >= capacity_) forget_oldest();
  // Until the ring first fills, the position after the newest is a new one or
  // one already written.
  const std::size_t i = (head_ + size_) % capacity_;
  if (i / kChunk >= chunks_.size()) chunks_.push_back(std::make_unique<Chunk>());
  stamp_at(i) = stamp_of(now);
  chunks_[i / kChunk]->print[i % kChunk] = print;
  ++size_;
  // Up to three quarters full: most lookups are for ids not here (a new
  // lease), and linear probing pays for those by the length of the run.
  if (size_ * 4 > index_slots_ * 3) index_grow();
  index_place(static_cast<std::uint32_t>(i + 1));
}

// The stamps count milliseconds from base_. When `now` is too far past it,
// base_ moves up to `now - ttl`: every entry still remembered finished after
// that (forget_expired ran), and the new stamp (the TTL) fits.
std::uint32_t RecentIds::stamp_of(TimeMs now) {
  if (size_ == 0) base_ = now;
  if (now < base_) return 0;  // a clock that stepped back: remembered a little longer
  if (now - base_ > TimeMs{UINT32_MAX}) {
    const TimeMs shift = now - ttl_ms_ - base_;
    for (std::size_t k = 0; k < size_; ++k) {
      std::uint32_t& s = stamp_at((head_ + k) % capacity_);
      s = s > shift ? static_cast<std::uint32_t>(s - shift) : 0;
    }
    base_ += shift;
  }
  return static_cast<std::uint32_t>(now - base_);
}

void RecentIds::forget_oldest() {
  index_erase(print_at(head_), head_);
  head_ = (head_ + 1) % capacity_;
  --size_;
}

void RecentIds::index_place(std::uint32_t e) {
  std::size_t i = print_at(e - 1) & mask();
  while (entry(i)) i = (i + 1) & mask();
  set_entry(i, e);
}

void RecentIds::index_erase(std::uint64_t print, std::size_t position) {
  const auto e = static_cast<std::uint32_t>(position + 1);
  std::size_t hole = print & mask();
  while (entry(hole) != e) {
    if (!entry(hole)) return;
    hole = (hole + 1) & mask();
  }
  // Backward shift: pull later entries of the run into the hole when their
  // home allows it, so lookups never need tombstones.
  for (std::size_t j = (hole + 1) & mask(); entry(j); j = (j + 1) & mask()) {
    const std::size_t home = print_at(entry(j) - 1) & mask();
    const bool movable = hole <= j ? (home <= hole || home > j) : (home <= hole && home > j);
    if (movable) {
      set_entry(hole, entry(j));
      hole = j;
    }
  }
  set_entry(hole, 0);
}

void RecentIds::index_grow() {
  index_slots_ *= 2;
  if (wide_) {
    std::vector<std::uint32_t> old(index_slots_);
    old.swap(index32_);
    for (const std::uint32_t e : old) {
      if (e) index_place(e);
    }
  } else {
    std::vector<std::uint16_t> old(index_slots_);
    old.swap(index16_);
    for (const std::uint16_t e : old) {
      if (e) index_place(e);
    }
  }
}

}  // namespace neuron
