// Stop (PROTOCOL.md rule 12): from stop() on, new leases are refused and
// queued ones nacked at once; running handlers get the drain time, then
// their signals fire and they end in nack retryable (SHUTTING_DOWN); the
// final acks and nacks get stop_flush_ms to go out; then the stream closes
// and StopSettled is emitted. After it the engine holds nothing: no stream,
// no request, no timer.
#include "neuron/engine/state.h"

namespace neuron {

NEURON_COLD void Engine::State::begin_stop(TimeMs now, bool drain, TimeMs timeout_ms) {
  stopping = true;
  if (!started) {
    stopped = true;
    conn = Conn::kClosed;
    events.emplace_back(ConnectionClose{"stopped"});
    events.emplace_back(StopSettled{});
    return;
  }
  if (logs(LogLevel::kInfo)) log(LogLevel::kInfo, "neuron stopping", Meta().num("drain", drain).num("timeoutMs", timeout_ms));
  settle_start(fail(ErrorCode::kStopped, "Neuron.stop() was called before the gateway registered the neuron"));
  // Stopping never starts a connection: a pending reconnect is cancelled and a
  // stream still being opened is abandoned. An open stream stays for the drain
  // (cancel frames, heartbeats for the running leases).
  timer(Timer::kReconnect).reset();
  if (conn == Conn::kBackoff) conn = Conn::kDown;
  if (conn == Conn::kConnecting) {
    actions.emplace_back(CloseStream{stream_id});
    timer(Timer::kIdle).reset();
    conn = Conn::kDown;
  }
  for (Capability& cap : caps) {
    Fifo<std::uint64_t> queued;
    queued.swap(cap.queue);
    for (; !queued.empty(); queued.pop_front()) {
      const std::uint64_t handle = queued.front();
      finish(now, handle, *leases.get(handle), NackKind::kRetryable, "neuron is shutting down", "SHUTTING_DOWN", {});
    }
  }
  if (drain && timeout_ms > 0) {
    timer(Timer::kStopDrain) = now + timeout_ms;
  } else {
    abort_all_running(now);
  }
  maybe_finish_stop(now);
}

// Every running lease not yet ended ends now in its verdict or SHUTTING_DOWN.
NEURON_COLD void Engine::State::abort_all_running(TimeMs now) {
  std::vector<std::uint64_t> running;
  leases.for_each_running([&](std::uint64_t handle, const Lease& lease) {
    if (!lease.ended) running.push_back(handle);
  });
  for (std::uint64_t handle : running) {
    Lease& lease = *leases.get(handle);
    if (!lease.verdict) actions.emplace_back(AbortHandler{handle, AbortReason::kShuttingDown});
    const Verdict verdict =
        lease.verdict ? *lease.verdict : Verdict{NackKind::kRetryable, "neuron is shutting down", "SHUTTING_DOWN"};
    finish(now, handle, lease, verdict.kind, verdict.reason, verdict.code, {});
  }
}

NEURON_COLD void Engine::State::maybe_finish_stop(TimeMs now) {
  if (!stopping || stopped) return;
  if (running_not_ended > 0) return;  // still draining
  timer(Timer::kStopDrain).reset();
  if (!timer(Timer::kStopFlush)) timer(Timer::kStopFlush) = now + config.stop_flush_ms;
  if (requests.terminal_count() > 0) return;  // final acks/nacks still going out
  finish_stop();
}

NEURON_COLD void Engine::State::finish_stop() {
  drop_requests_where([](RequestId, const Request&) { return true; });
  if (stream_live()) actions.emplace_back(CloseStream{stream_id});
  timers.fill(std::nullopt);
  leases.clear();
  running_not_ended = 0;
  for (Capability& cap : caps) {
    cap.queue.clear();
    cap.running = 0;
  }
  conn = Conn::kClosed;
  stopped = true;
  update_request_stats();
  if (logs(LogLevel::kInfo)) log(LogLevel::kInfo, "neuron stopped");
  events.emplace_back(ConnectionClose{"stopped"});
  events.emplace_back(StopSettled{});
}

}  // namespace neuron
