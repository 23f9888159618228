// The engine's POSTs: what it sends, when, and what each answer means
// (PROTOCOL.md 1.1 "Status codes"). The table of requests and their order is
// engine/request_table.h; the rules are here:
//
//   - at most Config::max_in_flight_requests POSTs at once (by default the
//     capabilities' concurrency added up, 16 to 128); the rest wait in
//     order, register and update-capability before the heartbeat before
//     acks, nacks and progress (a heartbeat never waits behind a queue of
//     acks: it renews the leases that run now);
//   - 401 on any request: the host calls auth again and the frame is sent
//     once more (a heartbeat rebuilt, progress for an ended lease dropped);
//   - ack / nack on 429, 5xx or a network error: retried with the reconnect
//     backoff, at most max_terminal_attempts tries, while not stopped; 409
//     and other 4xx are final (logged);
//   - heartbeat / progress failures are logged, never retried;
//   - rule 10: a verdict never goes out while its lease's progress POST is
//     in flight; it waits at most progress_grace_ms, then that POST is
//     aborted (progress is best effort).
#include "neuron/engine/state.h"

#include <algorithm>
#include <cmath>

namespace neuron {

namespace {

bool is_retryable_status(int status) {
  return status == 0 || status == 429 || (status >= 500 && status < 600);
}

}  // namespace

void Engine::State::post(TimeMs now, Request&& request) {
  requests.add(std::move(request));
  pump_requests(now);
}

// A lease's verdict. Its progress POST, if one is queued, never goes out now
// (pending progress is dropped once the verdict is sent, rule 10); one in
// flight holds the verdict back for at most the grace.
void Engine::State::post_terminal(TimeMs now, Lease& lease, std::uint64_t /*handle*/, Request&& request) {
  const RequestId progress = lease.progress_request;
  const auto progress_state = progress ? requests.state(progress) : std::nullopt;
  if (progress_state == RequestTable::State::kInFlight) {
    requests.add_held(std::move(request), progress, now + config.progress_grace_ms);
    update_request_stats();
    return;
  }
  if (progress_state) {
    if (auto dropped = requests.take(progress)) graveyard.keep(std::move(dropped->body));
    lease.progress_request = 0;
  }
  post(now, std::move(request));
}

void Engine::State::size_request_bound() {
  if (!config.max_in_flight_requests) {
    std::uint64_t sum = 0;
    for (const Capability& cap : caps) sum += cap.concurrency;
    requests.set_max_in_flight(
        static_cast<std::uint32_t>(std::clamp<std::uint64_t>(sum, kAutoRequestsMin, kAutoRequestsMax)));
  }
  update_request_stats();
}

void Engine::State::pump_requests(TimeMs now) {
  requests.pump(now, [&](RequestId id, Request& r) {
    if (r.kind == RequestKind::kHeartbeat) r.body = heartbeat_body(now);  // what runs now
    ++stats.frames_out;
    std::optional<HostAck> host_ack;
    if (r.host_ack) {
      // The host builds this one ...
      host_ack = HostAck{r.lease, now, r.duration_ms, r.host_json, {}, {}};
      if (r.host_json) {
        // Copies that stay put until the host has polled this Post, whatever
        // becomes of the request meanwhile (a stop, a timeout in a call the
        // host makes while polling): the request's own may be gone by then.
        host_ack->lease_id = graveyard.keep(r.lease_id);
        host_ack->task_id = graveyard.keep(r.task_id);
      }
      r.host_ack = r.host_keeps_output;  // ... and the retries, if it keeps the output
    } else if (r.kind == RequestKind::kTerminal && r.body.empty()) {
      encode_ack(r.body, config.neuron_id, now, r.lease_id, r.task_id, r.output_json, r.duration_ms);
    }
    actions.emplace_back(Post{id, r.path, r.body, answer_bytes(r.kind), r.kind == RequestKind::kHeartbeat, host_ack});
    // Kept for this first attempt only: built into the Post just polled.
    if (host_ack && !r.host_keeps_output) actions.emplace_back(ReleaseOutput{r.lease});
  });
  update_request_stats();
}

// What of an answer's body is ever read: a heartbeat's lostLeases (4 MiB:
// over 100 000 lease ids; a longer answer is cut and read as none lost),
// else the start of an error message (logs keep 512 bytes).
std::uint32_t Engine::State::answer_bytes(RequestKind kind) const {
  constexpr std::uint32_t kErrorBytes = 4096;
  constexpr std::size_t kHeartbeatBytes = std::size_t{4} << 20;
  if (kind != RequestKind::kHeartbeat) return kErrorBytes;
  return static_cast<std::uint32_t>(std::min(config.max_frame_bytes, kHeartbeatBytes));
}

void Engine::State::update_request_stats() {
  stats.requests_in_flight = requests.in_flight();
  stats.requests_queued = requests.waiting();
  stats.request_bound = requests.max_in_flight();
}

TimeMs Engine::State::backoff_delay(std::uint32_t attempt) {
  const double base = static_cast<double>(config.initial_reconnect_delay_ms) *
                      std::ldexp(1.0, static_cast<int>(std::min<std::uint32_t>(attempt - 1, 62)));
  const double capped = std::min(base, static_cast<double>(config.max_reconnect_delay_ms));
  const double factor = 1.0 - config.reconnect_jitter * random.next_unit();
  return static_cast<TimeMs>(std::llround(capped * factor));
}

void Engine::State::on_post_result(TimeMs now, RequestId id, int status, std::string_view body) {
  if (requests.state(id) != RequestTable::State::kInFlight) {  // aborted, or not sent
    // A heartbeat given up for the next one may still be answered (a custom
    // transport cannot abort its POST): the leases its answer names as lost
    // are lost all the same. (A gateway slower than the heartbeat interval
    // would otherwise never be heard.)
    for (RequestId& abandoned : abandoned_heartbeats) {
      if (id == 0 || id != abandoned) continue;
      abandoned = 0;
      on_heartbeat_result(status, body.substr(0, answer_bytes(RequestKind::kHeartbeat)));
    }
    return;
  }
  Request req = *requests.take(id, config.host_releases_posts);
  body = body.substr(0, answer_bytes(req.kind));
  on_post_outcome(now, id, std::move(req), status, body);
  pump_requests(now);
}

void Engine::State::on_post_outcome(TimeMs now, RequestId id, Request&& req, int status, std::string_view body) {
  if (status == 401 && !req.reauthed && is_http()) {
    // The host calls auth again for the retry: that is the token refresh.
    // Progress for a lease that has ended since is dropped (rule 10), and a
    // heartbeat is rebuilt when it is sent, so its inFlight is what runs
    // then (none is sent while not registered).
    if (req.kind == RequestKind::kProgress) {
      const Lease* lease = leases.get(req.lease);
      if (!lease || lease->ended) return on_progress_result(now, id, req, status);
    }
    if (req.kind == RequestKind::kHeartbeat && conn != Conn::kRegistered) return on_heartbeat_result(status, body);
    req.reauthed = true;
    const RequestKind kind = req.kind;
    const std::uint64_t lease = req.lease;
    const RequestId retry = requests.add(std::move(req), /*first=*/true);
    if (kind == RequestKind::kProgress) {
      // The lease's progress POST is now the retry; a verdict held behind
      // the first one waits for it... but a held verdict means the lease has
      // ended, and then progress was dropped above.
      if (Lease* l = leases.get(lease)) l->progress_request = retry;
    }
    return;
  }
  switch (req.kind) {
    case RequestKind::kRegister: return on_register_result(now, req, status, body);
    case RequestKind::kUpdateCapability:
      if (!is_2xx(status) && logs(LogLevel::kWarn))
        log(LogLevel::kWarn, "update-capability post failed", Meta().num("status", status));
      return;
    case RequestKind::kHeartbeat: return on_heartbeat_result(status, body);
    case RequestKind::kProgress: return on_progress_result(now, id, req, status);
    case RequestKind::kTerminal: return on_terminal_result(now, std::move(req), status, body);
  }
}

void Engine::State::on_register_result(TimeMs now, const Request& req, int status, std::string_view body) {
  if (req.stream_id != stream_id || !stream_live()) return;  // an older connection's
  if (is_2xx(status)) return;                                // `registered` follows
  if (conn == Conn::kRegistered) {
    // `registered` already came over the stream: the gateway has us.
    if (logs(LogLevel::kWarn)) log(LogLevel::kWarn, "register post failed after registration", Meta().num("status", status));
    return;
  }
  if (status == 403) {
    Status error = fail(ErrorCode::kRegistrationRejected,
                        "registration rejected (HTTP 403): " + error_message_from_body(body) +
                            ". The token is not authorized for a capability's namespace or scope.",
                        403);
    settle_start(error);
    emit_error(std::move(error));
    close_stream(now, "registration rejected", /*reconnect=*/false);
    return;
  }
  emit_error(fail(ErrorCode::kStreamFailed,
                  status == 0 ? std::string("register post failed: network error")
                              : "register post failed: HTTP " + std::to_string(status),
                  status));
  close_stream(now, "register failed", /*reconnect=*/true);
}

void Engine::State::on_heartbeat_result(int status, std::string_view body) {
  if (!is_2xx(status)) {
    if (logs(LogLevel::kWarn)) log(LogLevel::kWarn, "heartbeat post failed", Meta().num("status", status));
    return;
  }
  for (const std::string& id : decode_lost_leases(body)) lose_lease(id);
}

void Engine::State::on_progress_result(TimeMs now, RequestId id, const Request& req, int status) {
  if (!is_2xx(status) && logs(LogLevel::kWarn)) log(LogLevel::kWarn, "progress post failed", Meta().num("status", status));
  requests.release(id);  // a verdict held behind it goes out now
  Lease* lease = leases.get(req.lease);
  if (!lease || lease->progress_request != id) return;
  lease->progress_request = 0;
  if (lease->progress_pending && !lease->ended) {
    ProgressUpdate next = std::move(*lease->progress_pending);
    lease->progress_pending.reset();
    send_progress(now, req.lease, *lease, next);
  }
}

void Engine::State::on_terminal_result(TimeMs now, Request&& req, int status, std::string_view body) {
  if (is_2xx(status)) return release_output(req);
  const bool nack = req.path == PostPath::kNack;
  if (is_retryable_status(status) && req.attempts < config.max_terminal_attempts && !stopped) {
    const TimeMs delay = backoff_delay(static_cast<std::uint32_t>(req.attempts));
    ++req.attempts;
    req.reauthed = false;
    if (logs(LogLevel::kWarn)) {
      log(LogLevel::kWarn, nack ? "nack post failed, retrying" : "ack post failed, retrying",
          Meta().str("leaseId", req.lease_id).num("status", status).num("attempt", req.attempts)
              .num("delayMs", delay));
    }
    requests.add_waiting(std::move(req), now + delay);  // a fresh id
    return;
  }
  release_output(req);  // given up: no attempt follows
  if (is_retryable_status(status)) {
    emit_error(fail(ErrorCode::kPostFailed,
                    std::string(nack ? "nack" : "ack") + " for lease " + req.lease_id + " failed after " +
                        std::to_string(req.attempts) + " attempts; the gateway will redeliver the task",
                    status));
    return;
  }
  // 409 and other 4xx: the gateway has decided; retrying cannot help.
  if (logs(LogLevel::kWarn)) {
    log(LogLevel::kWarn, "ack POST rejected by gateway",
        Meta().str("leaseId", req.lease_id).str("frame", nack ? "nack" : "ack").num("status", status)
            .str("body", body.substr(0, 512)));
  }
}

void Engine::State::on_post_released(TimeMs now, RequestId id) {
  requests.release_slot(id);
  pump_requests(now);
}

// Request deadlines: timeouts (a network error for that request), retries
// whose backoff is over, verdicts whose grace for their progress POST is up.
void Engine::State::expire_requests(TimeMs now) {
  while (auto id = requests.next_timed_out(now)) {
    Request req = *requests.take(*id);
    if (req.kind == RequestKind::kHeartbeat) remember_abandoned_heartbeat(*id);
    actions.emplace_back(AbortPost{*id});
    // Its Post may still be unpolled: the bytes it points into are kept (a
    // moved string keeps its buffer), and a retry gets a copy.
    req.body = graveyard.keep(std::move(req.body));
    on_post_outcome(now, *id, std::move(req), 0, {});
  }
  while (auto held = requests.next_expired_hold(now)) {
    const RequestId progress = requests.held_after(*held);
    if (logs(LogLevel::kWarn)) log(LogLevel::kWarn, "progress post abandoned: the lease's verdict goes first");
    std::optional<Request> req = requests.state(progress) ? requests.take(progress) : std::nullopt;
    if (req) {
      actions.emplace_back(AbortPost{progress});
      req->body = graveyard.keep(std::move(req->body));  // as above
      on_progress_result(now, progress, *req, 0);
    }
    requests.release(progress);
  }
  requests.queue_due_retries(now);
  pump_requests(now);
}

}  // namespace neuron
