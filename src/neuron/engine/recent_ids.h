// neuron/engine/recent_ids.h: rule 2's memory of finished lease ids.
//
// A lease whose id finished within the TTL, among the last `capacity` ones,
// is a duplicate. Ids are remembered by a 64-bit fingerprint (id_hash), so
// an entry costs the same however long the id is: 8 bytes of fingerprint and
// 4 of finish time in a ring, and an index up to 3/4 full of ring positions,
// 2 bytes each while the capacity allows (4 beyond 65 535). 10 000 ids take
// 120 KiB of ring and 32 KiB of index.
//
// A new id is taken for a remembered one with odds of about capacity / 2^64
// (5e-16 a lease at 10 000). Such a lease is ignored as a duplicate (logged)
// and its task runs when the gateway leases it again after the lease expires,
// once the fingerprint is forgotten: late, never finished twice.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "neuron/vocabulary.h"

namespace neuron {

class RecentIds {
 public:
  // Finish times are kept to the millisecond as 32-bit offsets, so a TTL is
  // at most 2^31 - 1 ms (24 days); validate_config checks both bounds.
  static constexpr TimeMs kMaxTtlMs = (TimeMs{1} << 31) - 1;
  static constexpr std::size_t kMaxCapacity = std::size_t{1} << 24;

  RecentIds(std::size_t capacity, TimeMs ttl_ms);

  bool contains(std::uint64_t print) const;
  // Remembers `print` as finished at `now` (already remembered: no change),
  // forgetting the expired ones and, when full, the oldest.
  void remember(TimeMs now, std::uint64_t print);
  void forget_expired(TimeMs now);
  std::size_t size() const { return size_; }

 private:
  static constexpr std::size_t kChunk = 256;
  static constexpr std::size_t kPresized = 16'384;  // ids (10 000 by default: 32 KiB of index; 16 384: 64 KiB)
  // The ring grows a chunk at a time up to its capacity, and stays.
  struct Chunk {
    std::uint64_t print[kChunk];
    std::uint32_t stamp[kChunk];  // finish time - base_
  };
  std::uint64_t print_at(std::size_t i) const { return chunks_[i / kChunk]->print[i % kChunk]; }
  std::uint32_t& stamp_at(std::size_t i) { return chunks_[i / kChunk]->stamp[i % kChunk]; }
  std::uint32_t stamp_of(TimeMs now);
  void forget_oldest();

  // Index: open addressing with linear probing and backward-shift deletion
  // over ring positions (position + 1; 0 is empty), homed by the fingerprint
  // the position holds, so an entry is just the position: in index16_ when
  // every position fits 16 bits, else in index32_.
  std::size_t mask() const { return index_slots_ - 1; }
  std::uint32_t entry(std::size_t i) const { return wide_ ? index32_[i] : index16_[i]; }
  void set_entry(std::size_t i, std::uint32_t e) {
    if (wide_) {
      index32_[i] = e;
    } else {
      index16_[i] = static_cast<std::uint16_t>(e);
    }
  }
  void index_place(std::uint32_t entry);
  void index_erase(std::uint64_t print, std::size_t position);
  void index_grow();

  std::size_t capacity_;
  TimeMs ttl_ms_;
  std::vector<std::unique_ptr<Chunk>> chunks_;
  std::size_t head_ = 0;  // the oldest; the live ones are [head, head + size) mod capacity
  std::size_t size_ = 0;
  TimeMs base_ = 0;       // what the stamps count from
  bool wide_;
  std::size_t index_slots_ = 16;
  std::vector<std::uint16_t> index16_;
  std::vector<std::uint32_t> index32_;
};

}  // namespace neuron
