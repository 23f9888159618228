#include "neuron/engine/request_table.h"

#include <algorithm>

namespace neuron {

void RequestTable::add_timer(TimeMs at, RequestId id) {
  const std::pair<TimeMs, RequestId> timer{at, id};
  timers_.insert(std::upper_bound(timers_.begin(), timers_.end(), timer), timer);
}

void RequestTable::erase_timer(TimeMs at, RequestId id) {
  const std::pair<TimeMs, RequestId> timer{at, id};
  auto it = std::lower_bound(timers_.begin(), timers_.end(), timer);
  if (it != timers_.end() && *it == timer) timers_.erase(it);
}

std::vector<std::pair<RequestId, RequestId>>::iterator RequestTable::held_behind(RequestId after) {
  return std::find_if(held_behind_.begin(), held_behind_.end(), [&](const auto& h) { return h.first == after; });
}

void RequestTable::release_slot(RequestId id) {
  auto it = std::find(releasing_.begin(), releasing_.end(), id);
  if (it != releasing_.end()) releasing_.erase(it);
}

RequestTable::Queue RequestTable::queue_of(RequestKind kind) {
  switch (kind) {
    case RequestKind::kRegister:
    case RequestKind::kUpdateCapability: return kControl;
    case RequestKind::kHeartbeat: return kHeartbeat;
    case RequestKind::kTerminal:
    case RequestKind::kProgress: return kRest;
  }
  return kRest;
}

RequestId RequestTable::insert(Request&& request, State state) {
  const RequestId id = ++next_id_;
  if (request.kind == RequestKind::kTerminal) ++terminal_count_;
  Entry& e = entries_.insert(id);
  e.request = std::move(request);
  e.state = state;
  return id;
}

void RequestTable::enqueue(RequestId id, bool first) {
  Entry& e = entries_.at(id);
  e.state = State::kQueued;
  auto& queue = queues_[queue_of(e.request.kind)];
  if (first) {
    queue.push_front(id);
  } else {
    queue.push_back(id);
  }
}

RequestId RequestTable::add(Request&& request, bool first) {
  const RequestId id = insert(std::move(request), State::kQueued);
  enqueue(id, first);
  return id;
}

RequestId RequestTable::add_held(Request&& request, RequestId after, TimeMs until) {
  const RequestId id = insert(std::move(request), State::kHeld);
  Entry& e = entries_.at(id);
  e.after = after;
  e.deadline = until;
  add_timer(until, id);
  if (auto held = held_behind(after); held != held_behind_.end()) {
    held->second = id;
  } else {
    held_behind_.emplace_back(after, id);
  }
  return id;
}

RequestId RequestTable::add_waiting(Request&& request, TimeMs at) {
  const RequestId id = insert(std::move(request), State::kWaiting);
  entries_.at(id).deadline = at;
  add_timer(at, id);
  return id;
}

RequestId RequestTable::pop_next() {
  for (auto& queue : queues_) {
    while (!queue.empty()) {
      const RequestId id = queue.front();
      queue.pop_front();
      const Entry* e = entries_.find(id);
      if (e && e->state == State::kQueued) return id;
    }
  }
  return 0;
}

void RequestTable::release(RequestId settled) {
  auto held = held_behind(settled);
  if (held == held_behind_.end()) return;
  const RequestId id = held->second;
  held_behind_.erase(held);
  const Entry* e = entries_.find(id);
  if (!e || e->state != State::kHeld) return;
  erase_timer(e->deadline, id);
  enqueue(id, /*first=*/true);
}

Request* RequestTable::find(RequestId id) {
  Entry* e = entries_.find(id);
  return e ? &e->request : nullptr;
}

RequestId RequestTable::held_after(RequestId held) const {
  const Entry* e = entries_.find(held);
  return e ? e->after : 0;
}

std::optional<RequestTable::State> RequestTable::state(RequestId id) const {
  const Entry* e = entries_.find(id);
  if (!e) return std::nullopt;
  return e->state;
}

std::optional<Request> RequestTable::take(RequestId id, bool keep_slot) {
  Entry* found = entries_.find(id);
  if (!found) return std::nullopt;
  Entry& e = *found;
  switch (e.state) {
    case State::kInFlight:
      --in_flight_;
      if (keep_slot) releasing_.push_back(id);
      break;
    case State::kHeld: {
      erase_timer(e.deadline, id);
      if (auto held = held_behind(e.after); held != held_behind_.end()) held_behind_.erase(held);
      break;
    }
    case State::kWaiting:
      erase_timer(e.deadline, id);
      break;
    case State::kQueued:
      break;  // its queue slot is skipped when it surfaces
  }
  if (e.request.kind == RequestKind::kTerminal) --terminal_count_;
  std::optional<Request> out(std::move(e.request));
  entries_.erase(id);
  trim_timeouts();
  return out;
}

void RequestTable::trim_timeouts() {
  while (!timeouts_.empty()) {
    const auto [deadline, id] = timeouts_.front();
    const Entry* e = entries_.find(id);
    if (e && e->state == State::kInFlight && e->deadline == deadline) return;
    timeouts_.pop_front();
  }
}

std::optional<TimeMs> RequestTable::next_deadline() const {
  std::optional<TimeMs> earliest;
  if (!timeouts_.empty()) earliest = timeouts_.front().first;
  if (!timers_.empty() && (!earliest || timers_.begin()->first < *earliest)) earliest = timers_.begin()->first;
  return earliest;
}

std::optional<RequestId> RequestTable::next_timed_out(TimeMs now) {
  trim_timeouts();
  if (timeouts_.empty() || timeouts_.front().first > now) return std::nullopt;
  return timeouts_.front().second;
}

void RequestTable::queue_due_retries(TimeMs now) {
  // One pass over the due timers (many come due together after an outage):
  // the waiting retries are queued in timer order, the others (held
  // verdicts) move up in place, and the gap is erased once.
  auto kept = timers_.begin();
  auto it = timers_.begin();
  for (; it != timers_.end() && it->first <= now; ++it) {
    if (entries_.at(it->second).state == State::kWaiting) {
      enqueue(it->second, /*first=*/true);
    } else {
      *kept++ = *it;
    }
  }
  timers_.erase(kept, it);
}

std::optional<RequestId> RequestTable::next_expired_hold(TimeMs now) {
  for (auto it = timers_.begin(); it != timers_.end() && it->first <= now; ++it) {
    const Entry& e = entries_.at(it->second);
    if (e.state == State::kHeld) return it->second;
  }
  return std::nullopt;
}

}  // namespace neuron
