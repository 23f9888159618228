#include "neuron/engine/lease_table.h"

namespace neuron {

namespace {

constexpr std::uint64_t make_handle(std::uint32_t generation, std::uint32_t slot) {
  return (std::uint64_t{generation} << 32) | slot;
}
constexpr std::uint32_t slot_of(std::uint64_t handle) { return static_cast<std::uint32_t>(handle); }
constexpr std::uint32_t generation_of(std::uint64_t handle) { return static_cast<std::uint32_t>(handle >> 32); }

// Handles travel to JavaScript as doubles: generations stay below 2^21 so a
// handle is an exact integer there (2^53).
constexpr std::uint32_t kMaxGeneration = (1u << 21) - 1;

// A task text this large is given back rather than kept for the next lease.
constexpr std::size_t kKeepTextBytes = 4096;

}  // namespace

LeaseTable::LeaseTable(std::size_t recent_capacity, TimeMs recent_ttl_ms)
    : recent_(recent_capacity, recent_ttl_ms) {}

LeaseTable::Slot* LeaseTable::slot(std::uint64_t handle) {
  const std::uint32_t n = slot_of(handle);
  if (n >= slots_.count()) return nullptr;
  Slot* s = &slots_[n];
  return s->live && s->generation == generation_of(handle) ? s : nullptr;
}

const LeaseTable::Slot* LeaseTable::slot(std::uint64_t handle) const {
  return const_cast<LeaseTable*>(this)->slot(handle);
}

Lease* LeaseTable::get(std::uint64_t handle) {
  Slot* s = slot(handle);
  return s ? &s->lease : nullptr;
}

const Lease* LeaseTable::get(std::uint64_t handle) const {
  const Slot* s = slot(handle);
  return s ? &s->lease : nullptr;
}

std::uint64_t LeaseTable::add(std::string_view lease_id) {
  const std::uint32_t n = slots_.acquire();
  Slot& s = slots_[n];
  s.live = true;
  ++live_;
  s.lease.lease_id.assign(lease_id);
  const std::uint64_t handle = make_handle(s.generation, n);
  by_id_.insert(s.lease.lease_id, handle);
  return handle;
}

std::optional<std::uint64_t> LeaseTable::find(std::string_view lease_id) {
  if (const std::uint64_t* h = by_id_.find(lease_id)) return *h;
  return std::nullopt;
}

bool LeaseTable::is_known(std::string_view lease_id) {
  return by_id_.contains(lease_id) || recent_.contains(id_hash(lease_id));
}

void LeaseTable::erase(std::uint64_t handle) {
  Slot* s = slot(handle);
  if (!s) return;
  if (s->lease.running) stop_running(handle);
  by_id_.erase(s->lease.lease_id);
  s->live = false;
  --live_;
  dead_.push_back(slot_of(handle));
}

void LeaseTable::collect() {
  for (std::uint32_t n : dead_) {
    Slot& s = slots_[n];
    Lease& l = s.lease;
    // Keep the small strings' buffers for the next lease in this slot.
    l.lease_id.clear();
    l.task_id.clear();
    if (l.task_json.capacity() > kKeepTextBytes) {
      std::string().swap(l.task_json);
    } else {
      l.task_json.clear();
    }
    l.input_at = 0;
    l.input_size = 0;
    l.capability = 0;
    l.running = false;
    l.ended = false;
    l.started_at = 0;
    l.verdict.reset();
    l.host_ref = 0;
    l.progress_request = 0;
    l.progress_pending.reset();
    l.prev_running = l.next_running = 0;
    s.generation = s.generation >= kMaxGeneration ? 1 : s.generation + 1;
    slots_.release(n);
  }
  dead_.clear();
}

void LeaseTable::clear() {
  for (std::uint32_t n = 0; n < slots_.count(); ++n) {
    Slot& s = slots_[n];
    if (s.live) {
      s.live = false;
      --live_;
      dead_.push_back(n);
    }
  }
  by_id_.clear();
  first_running_ = last_running_ = 0;
}

void LeaseTable::start_running(std::uint64_t handle) {
  Lease* lease = get(handle);
  lease->running = true;
  lease->prev_running = last_running_;
  lease->next_running = 0;
  if (last_running_) {
    get(last_running_)->next_running = handle;
  } else {
    first_running_ = handle;
  }
  last_running_ = handle;
}

void LeaseTable::stop_running(std::uint64_t handle) {
  Lease* lease = get(handle);
  if (!lease->running) return;
  lease->running = false;
  if (lease->prev_running) {
    get(lease->prev_running)->next_running = lease->next_running;
  } else {
    first_running_ = lease->next_running;
  }
  if (lease->next_running) {
    get(lease->next_running)->prev_running = lease->prev_running;
  } else {
    last_running_ = lease->prev_running;
  }
  lease->prev_running = lease->next_running = 0;
}

// ------------------------------------------------------------ rule 2 memory --

void LeaseTable::forget_expired(TimeMs now) { recent_.forget_expired(now); }

void LeaseTable::remember(TimeMs now, std::string_view lease_id) { recent_.remember(now, id_hash(lease_id)); }

}  // namespace neuron
