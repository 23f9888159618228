// The connection (PROTOCOL.md 1.2): idle -> connecting -> open -> registered,
// and on loss either a backoff and a reconnect, or down. Who decides when to
// reconnect: this file, always (schedule_reconnect); the host only performs
// OpenStream / CloseStream and reports what the stream did.
//
//   - HTTP reconnects after any loss, with backoff (initial * 2^(n-1), capped,
//     scaled by the jitter); the attempt counter resets at `registered`.
//   - IPC / custom transports reconnect by themselves after a loss they
//     report; a stream the engine closes itself (a `disconnect` frame,
//     register failing or timing out) it reopens after a backoff too.
//   - 403 to register, and `disconnect` with reconnect false, stay down.
//   - While not registered, no heartbeat; queued leases are dropped on loss
//     (the broker redelivers them); running handlers keep running.
#include "neuron/engine/state.h"

namespace neuron {

NEURON_COLD void Engine::State::settle_start(Status status) {
  if (!start_pending) return;
  start_pending = false;
  events.emplace_back(StartSettled{std::move(status)});
}

void Engine::State::open_stream(TimeMs now, bool auth_retry) {
  stream_id = ++next_stream;
  stream_reauthed = auth_retry;
  conn = Conn::kConnecting;
  parser.reset();
  actions.emplace_back(OpenStream{stream_id, events_path(config.neuron_id)});
  if (is_http()) timer(Timer::kIdle) = now + config.idle_timeout_ms;
}

// The engine ends the stream itself, and reopens it (after a backoff) on every
// carrier: an IPC / custom transport reconnects by itself only after a loss it
// reported, and this one the engine caused.
void Engine::State::close_stream(TimeMs now, std::string_view reason, bool reconnect) {
  actions.emplace_back(CloseStream{stream_id});
  lose_stream(now, reason, reconnect, /*closed_here=*/true);
}

// The stream is gone (the caller already closed it if it had to).
NEURON_COLD void Engine::State::lose_stream(TimeMs now, std::string_view reason, bool reconnect, bool closed_here) {
  const bool was_open = conn == Conn::kOpen || conn == Conn::kRegistered;
  conn = Conn::kDown;
  abandoned_heartbeats.fill(0);  // an old session's answers: the gateway may resend its leases
  timer(Timer::kIdle).reset();
  timer(Timer::kRegister).reset();
  timer(Timer::kHeartbeat).reset();
  // What belonged to this connection: its register, capability updates, a
  // heartbeat not yet sent (none is sent while not registered; one already
  // on the wire may still renew the running leases).
  drop_requests_where([&](RequestId id, const Request& r) {
    return r.kind == RequestKind::kRegister || r.kind == RequestKind::kUpdateCapability ||
           (r.kind == RequestKind::kHeartbeat && requests.state(id) != RequestTable::State::kInFlight);
  });
  drop_queued_leases();
  if (was_open) events.emplace_back(ConnectionClose{std::string(reason)});
  pump_requests(now);
  if (stopping) {
    maybe_finish_stop(now);
    return;
  }
  if (reconnect && (is_http() || closed_here)) {
    schedule_reconnect(now, reason);
    return;
  }
  settle_start(fail(ErrorCode::kStreamFailed, "connection closed before registration: " + std::string(reason)));
}

NEURON_COLD void Engine::State::schedule_reconnect(TimeMs now, std::string_view reason) {
  const std::uint32_t attempt = ++reconnect_attempt;
  const TimeMs delay = backoff_delay(attempt);
  ++stats.reconnects;
  conn = Conn::kBackoff;
  timer(Timer::kReconnect) = now + delay;
  if (logs(LogLevel::kInfo)) {
    log(LogLevel::kInfo, "transport reconnecting",
        Meta().num("attempt", attempt).num("delayMs", delay).str("reason", reason));
  }
  events.emplace_back(ConnectionReconnecting{attempt, delay, std::string(reason)});
}

NEURON_COLD void Engine::State::send_register(TimeMs now) {
  std::vector<RegisterCapability> list;
  list.reserve(caps.size());
  for (const Capability& cap : caps) {
    const CapabilitySpec& s = cap.spec;
    list.push_back({s.type, s.on_behalf_of, cap.concurrency, s.description, s.input_schema_json, s.output_schema_json});
  }
  Request req;
  req.kind = RequestKind::kRegister;
  req.path = PostPath::kRegister;
  req.stream_id = stream_id;
  encode_register(req.body, config.neuron_id, now, config.sdk_name, config.sdk_version, list);
  post(now, std::move(req));
}

// One heartbeat waits at most: its body is made when it is sent, so a queued
// one already says what runs then.
//
// One heartbeat on the wire at most, too: one still unanswered a whole
// interval later is abandoned for the new one (it says what runs now, and a
// gateway that never answers must not hold one connection per tick).
void Engine::State::send_heartbeat(TimeMs now) {
  if (last_heartbeat) {
    const auto state = requests.state(last_heartbeat);
    if (state == RequestTable::State::kQueued) return;
    if (state == RequestTable::State::kInFlight) {
      if (logs(LogLevel::kWarn)) log(LogLevel::kWarn, "heartbeat post failed", Meta().str("reason", "unanswered when the next one was due"));
      const RequestId stuck = last_heartbeat;
      drop_requests_where([stuck](RequestId id, const Request&) { return id == stuck; });
      remember_abandoned_heartbeat(stuck);
    }
  }
  Request req;
  req.kind = RequestKind::kHeartbeat;
  req.path = PostPath::kHeartbeat;
  last_heartbeat = requests.add(std::move(req));
  pump_requests(now);
}

std::string Engine::State::heartbeat_body(TimeMs now) const {
  std::vector<InFlightLease> in_flight;
  leases.for_each_running([&](std::uint64_t, const Lease& lease) {
    if (!lease.ended) in_flight.push_back({lease.lease_id, lease.task_id, lease.started_at});
  });
  std::string body;
  encode_heartbeat(body, config.neuron_id, now, in_flight);
  return body;
}

NEURON_COLD void Engine::State::on_stream_opened(TimeMs now, StreamId id, int http_status, bool is_event_stream) {
  if (id != stream_id || conn != Conn::kConnecting) return;
  if (http_status == 200 && is_event_stream) {
    conn = Conn::kOpen;
    if (is_http()) timer(Timer::kIdle) = now + config.idle_timeout_ms;
    timer(Timer::kRegister) = now + config.request_timeout_ms;
    if (logs(LogLevel::kInfo)) log(LogLevel::kInfo, "stream open");
    events.emplace_back(ConnectionOpen{});
    send_register(now);
    return;
  }
  actions.emplace_back(CloseStream{id});
  if (http_status == 401 && !stream_reauthed && is_http()) {
    open_stream(now, /*auth_retry=*/true);
    return;
  }
  const std::string reason = http_status != 200 ? "stream open failed: HTTP " + std::to_string(http_status)
                                                : std::string("stream open failed: Content-Type is not text/event-stream");
  emit_error(fail(ErrorCode::kStreamFailed, reason, http_status));
  lose_stream(now, reason, /*reconnect=*/true);
}

NEURON_COLD void Engine::State::on_stream_closed(TimeMs now, StreamId id, std::string_view reason) {
  if (id != stream_id || !stream_live()) return;
  const std::string why = reason.empty() ? std::string("stream ended") : std::string(reason);
  if (conn == Conn::kConnecting) {
    emit_error(fail(ErrorCode::kStreamFailed, "stream open failed: " + why));
  } else if (logs(LogLevel::kWarn)) {
    log(LogLevel::kWarn, "stream closed", Meta().str("reason", why));
  }
  if (!is_http() && conn != Conn::kConnecting) {
    emit_error(fail(ErrorCode::kStreamFailed, "IPC channel closed: " + why + " (IPC does not reconnect)"));
  }
  lose_stream(now, why, /*reconnect=*/true);
}

// The connection's timers: idle, registration, reconnect, heartbeat.
void Engine::State::on_connection_timers(TimeMs now) {
  auto due = [&](Timer t) {
    auto& deadline = timer(t);
    if (!deadline || *deadline > now) return false;
    deadline.reset();
    return true;
  };
  if (due(Timer::kIdle) && stream_live()) {
    const std::string reason = "no bytes for idleTimeoutMs (" + std::to_string(config.idle_timeout_ms) + " ms)";
    emit_error(fail(ErrorCode::kStreamFailed, "stream is dead: " + reason));
    close_stream(now, "idle timeout", /*reconnect=*/true);
  }
  if (due(Timer::kRegister) && conn == Conn::kOpen) {
    emit_error(fail(ErrorCode::kStreamFailed, "the gateway did not answer register with a registered frame within " +
                                                  std::to_string(config.request_timeout_ms) + " ms"));
    close_stream(now, "registration timed out", /*reconnect=*/true);
  }
  if (due(Timer::kReconnect) && conn == Conn::kBackoff) open_stream(now, false);
  if (due(Timer::kHeartbeat) && conn == Conn::kRegistered) {
    // While stop() only flushes its last frames, nothing runs to renew.
    if (!stopping || running_not_ended > 0) send_heartbeat(now);
    timer(Timer::kHeartbeat) = now + config.heartbeat_interval_ms;
  }
}

}  // namespace neuron
