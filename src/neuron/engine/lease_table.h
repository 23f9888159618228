// neuron/engine/lease_table.h: the leases this neuron holds, and the ids it
// has finished recently. Owns the lease records, the id index, the order in
// which running leases started (what a heartbeat lists) and rule 2's bounded
// memory of finished ids; decides nothing (engine/leases.cpp does).
//
//   A lease is queued (its capability's FIFO holds its handle), then running
//   (on the running list), and "ended" once its one terminal frame is decided
//   (or suppressed: a lost lease). It leaves the table when it has ended and
//   its handler no longer runs, so a handler that ignores its abort keeps its
//   slot and its id keeps deduplicating.
//
//   Handles are (generation << 32 | slot): a handle whose lease has left the
//   table never finds a newer lease in the same slot. Records never move, so
//   views into them stay valid while the lease is in the table; records that
//   leave are kept until collect() (the start of the next engine call), so a
//   view polled in an action outlives the call that made it.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "neuron/engine.h"
#include "neuron/engine/id_index.h"
#include "neuron/engine/recent_ids.h"
#include "neuron/engine/slot_pool.h"

namespace neuron {

// A result decided before the handler finished (cancel, revoke, stop).
struct Verdict {
  NackKind kind = NackKind::kRetryable;
  std::string reason;
  std::string code;
};

struct Lease {
  std::string lease_id;
  std::string task_id;
  std::string task_json;       // until the handler starts
  std::uint32_t input_at = 0;    // task.input's text in task_json
  std::uint32_t input_size = 0;  // (0: none)
  std::uint32_t capability = 0;
  bool running = false;        // handler started and not yet reported done
  bool ended = false;          // terminal frame decided, or suppressed (lost)
  TimeMs started_at = 0;
  // Rare, so allocated only when needed: a queued lease stays small.
  std::unique_ptr<Verdict> verdict;
  std::uint32_t host_ref = 0;      // handle_lease(): the host's task, until started
  RequestId progress_request = 0;  // its progress POST, queued or in flight
  std::unique_ptr<ProgressUpdate> progress_pending;  // merged updates after it
  // The running list, in start order.
  std::uint64_t prev_running = 0;
  std::uint64_t next_running = 0;
};

class LeaseTable {
 public:
  LeaseTable(std::size_t recent_capacity, TimeMs recent_ttl_ms);

  // A new record for `lease_id` (not known: check first). Returns its handle.
  std::uint64_t add(std::string_view lease_id);
  Lease* get(std::uint64_t handle);
  const Lease* get(std::uint64_t handle) const;
  // The lease in the table with this id, if any.
  std::optional<std::uint64_t> find(std::string_view lease_id);
  // Rule 2: in the table, or finished within the TTL / capacity.
  bool is_known(std::string_view lease_id);
  // Removes the lease from the table (its record lives until collect()).
  void erase(std::uint64_t handle);

  // Running list: leases in the order their handlers started.
  void start_running(std::uint64_t handle);
  void stop_running(std::uint64_t handle);
  template <typename F>
  void for_each_running(F&& f) const {
    for (std::uint64_t h = first_running_; h;) {
      const Lease* lease = get(h);
      const std::uint64_t next = lease->next_running;
      f(h, *lease);
      h = next;
    }
  }
  std::size_t size() const { return live_; }

  // Rule 2 memory of finished ids.
  void remember(TimeMs now, std::string_view lease_id);
  void forget_expired(TimeMs now);

  // Frees the records of leases erased before this call.
  void collect();
  // Drops every lease (stop): handles go stale, ids are forgotten unless
  // remembered.
  void clear();

 private:
  struct Slot {
    Lease lease;
    std::uint32_t generation = 1;
    bool live = false;
  };

  Slot* slot(std::uint64_t handle);
  const Slot* slot(std::uint64_t handle) const;

  SlotPool<Slot, 64> slots_;             // lease records
  std::vector<std::uint32_t> dead_;      // erased this call: freed by collect()
  std::size_t live_ = 0;
  IdIndex by_id_;                        // views into Lease::lease_id
  std::uint64_t first_running_ = 0;
  std::uint64_t last_running_ = 0;

  RecentIds recent_;  // rule 2
};

}  // namespace neuron
