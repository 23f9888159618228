// neuron/engine/request_table.h: every POST the engine wants made, and when
// each may go out. Owns the requests, their order and their deadlines;
// decides nothing about what an answer means (engine/requests.cpp does).
//
//   A request is, at any time, in exactly one of these states:
//     queued       waiting for a free slot (at most max_in_flight at once),
//                  in one of three queues: control (register, update-
//                  capability) before heartbeat before the rest (acks, nacks,
//                  progress), each first in, first out;
//     held         a verdict waiting for its lease's progress POST to settle
//                  (rule 10), or for its grace deadline, then queued first;
//     in flight    posted; its deadline is its timeout;
//     waiting      a retry waiting for its backoff deadline, then queued first.
//   An answered request leaves the table; with keep_slot its slot stays taken
//   until release_slot() (the host's connection is not free yet).
//
//   RequestTable table{config};
//   RequestId id = table.add(std::move(request), now);
//   table.pump(now, [&](RequestId id, Request& r) { post(id, r); });
//   ... on an answer:  std::optional<Request> r = table.take(id);
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "neuron/engine/fifo.h"
#include "neuron/engine/id_store.h"
#include "neuron/vocabulary.h"

namespace neuron {

enum class RequestKind : std::uint8_t { kRegister, kUpdateCapability, kHeartbeat, kTerminal, kProgress };

struct Request {
  RequestKind kind = RequestKind::kTerminal;
  PostPath path = PostPath::kAck;
  std::string body;            // a heartbeat's is built when it is sent
  std::uint64_t lease = 0;     // progress, terminal: the lease's handle
  StreamId stream_id = 0;      // register: the stream it registers
  std::string lease_id;        // terminal: for logs
  int attempts = 1;            // terminal: tries so far (a 401 retry is not one)
  bool reauthed = false;       // the one 401 retry was used
  // The next attempt of this ack is the host's to build (HandlerOutcome::
  // host_builds_ack), so the host still keeps its output; after a first
  // attempt kept for itself only, the body is encoded from these.
  bool host_ack = false;
  // ... and every attempt is host-built: the host keeps the output (no
  // output_json), until ReleaseOutput.
  bool host_keeps_output = false;
  // ... as JSON text (HostAck::json).
  bool host_json = false;
  std::string task_id;
  std::string output_json;
  TimeMs decided_at = 0;
  TimeMs duration_ms = 0;
};

class RequestTable {
 public:
  enum class State : std::uint8_t { kQueued, kHeld, kInFlight, kWaiting };

  RequestTable(std::uint32_t max_in_flight, TimeMs timeout_ms)
      : max_in_flight_(max_in_flight), timeout_ms_(timeout_ms) {}

  // Queues a request (at the front of its queue with `first`: a retry or a
  // released verdict whose turn has come). Returns its id.
  RequestId add(Request&& request, bool first = false);
  // Holds a verdict until request `after` settles (release()) or until
  // `until`, whichever comes first.
  RequestId add_held(Request&& request, RequestId after, TimeMs until);
  // A retry: waits until `at`, then is queued first.
  RequestId add_waiting(Request&& request, TimeMs at);

  // Posts what the bound allows, in order: `send(id, request)` for each.
  template <typename Send>
  void pump(TimeMs now, Send&& send) {
    while (in_flight_ + releasing_.size() < max_in_flight_) {
      const RequestId id = pop_next();
      if (!id) return;
      Entry& e = entries_.at(id);
      e.state = State::kInFlight;
      e.deadline = now + timeout_ms_;
      timeouts_.emplace_back(e.deadline, id);
      ++in_flight_;
      send(id, e.request);
    }
  }

  // A new bound: a smaller one sends nothing more until the requests in
  // flight are fewer; a larger one takes effect at the next pump().
  void set_max_in_flight(std::uint32_t max_in_flight) { max_in_flight_ = max_in_flight; }
  std::uint32_t max_in_flight() const { return max_in_flight_; }

  // Request `settled` has left (answered, failed, aborted): verdicts held
  // behind it are queued first.
  void release(RequestId settled);

  Request* find(RequestId id);
  // The progress request a held verdict waits for (0 if `held` is not held).
  RequestId held_after(RequestId held) const;
  std::optional<State> state(RequestId id) const;
  // Removes the request whatever its state (the caller aborts it if it was
  // in flight). With `keep_slot`, a request in flight keeps its slot until
  // release_slot(id).
  std::optional<Request> take(RequestId id, bool keep_slot = false);
  // The slot of a request taken with keep_slot is free again (an unknown id
  // is ignored).
  void release_slot(RequestId id);

  // Removes every request `pred` matches: `removed(id, was_in_flight,
  // request)` for each.
  template <typename Pred, typename Removed>
  void remove_if(Pred&& pred, Removed&& removed) {
    std::vector<RequestId> ids;
    for (const RequestId id : entries_.ids()) {  // oldest first
      if (pred(id, entries_.at(id).request)) ids.push_back(id);
    }
    for (RequestId id : ids) {
      const Entry* e = entries_.find(id);
      if (!e) continue;
      const bool in_flight = e->state == State::kInFlight;
      removed(id, in_flight, std::move(*take(id)));
    }
  }

  // The earliest deadline (a timeout, a retry, a hold's grace), if any.
  std::optional<TimeMs> next_deadline() const;

  // Timed-out requests, one at a time, oldest first: the caller takes them.
  std::optional<RequestId> next_timed_out(TimeMs now);
  // Retries whose wait is over are queued; holds past their grace are
  // returned one at a time (the caller aborts the progress POST they wait
  // for, which releases them).
  std::optional<RequestId> next_expired_hold(TimeMs now);
  void queue_due_retries(TimeMs now);

  std::uint32_t in_flight() const { return in_flight_; }
  std::uint32_t slots_taken() const { return in_flight_ + static_cast<std::uint32_t>(releasing_.size()); }
  std::uint32_t waiting() const { return static_cast<std::uint32_t>(entries_.size()) - in_flight_; }
  std::size_t terminal_count() const { return terminal_count_; }
  bool empty() const { return entries_.empty(); }

 private:
  struct Entry {
    Request request;
    State state = State::kQueued;
    TimeMs deadline = 0;    // in flight: timeout; waiting: retry time; held: grace
    RequestId after = 0;    // held: the progress request it waits for
  };
  enum Queue : std::uint8_t { kControl, kHeartbeat, kRest, kQueueCount };

  static Queue queue_of(RequestKind kind);
  RequestId insert(Request&& request, State state);
  void enqueue(RequestId id, bool first);
  RequestId pop_next();
  void trim_timeouts();

  std::uint32_t max_in_flight_;
  TimeMs timeout_ms_;
  RequestId next_id_ = 0;
  IdStore<Entry> entries_;
  // Queued ids; an id whose entry is gone or no longer queued is skipped.
  Fifo<RequestId> queues_[kQueueCount];
  // (deadline, id) of requests in flight, in send order: timeouts never
  // decrease, so the oldest is the front. Entries of requests answered since
  // are dropped from the front as they surface (trim_timeouts).
  Fifo<std::pair<TimeMs, RequestId>> timeouts_;
  // Retry times and hold graces, in order: rare, so a sorted vector.
  std::vector<std::pair<TimeMs, RequestId>> timers_;
  void add_timer(TimeMs at, RequestId id);
  void erase_timer(TimeMs at, RequestId id);
  // (progress request, the verdict held behind it): one per lease at most,
  // and only while a verdict waits for its lease's progress POST.
  std::vector<std::pair<RequestId, RequestId>> held_behind_;
  std::vector<std::pair<RequestId, RequestId>>::iterator held_behind(RequestId after);
  std::uint32_t in_flight_ = 0;
  // Answered requests whose slot the host has not released yet (at most the
  // bound on requests in flight).
  std::vector<RequestId> releasing_;
  std::size_t terminal_count_ = 0;
};

}  // namespace neuron
