// Frames in: SSE events (or frames an IPC carrier delivers whole) are decoded
// (neuron/frames.h) and dispatched by `type`. Events over maxFrameBytes or
// nesting deeper than 256 levels, and anything that is not a frame, are
// dropped with an `error` event; the stream goes on (PROTOCOL.md 1.1).
#include "neuron/engine/state.h"

namespace neuron {

void Engine::State::on_event(const SseParser::Event& event) { on_frame(feed_now, event.data); }

void Engine::State::on_oversized_event(std::size_t bytes) {
  ++stats.frame_errors;
  emit_error(fail(ErrorCode::kFrameTooLarge, "dropped an SSE event over maxFrameBytes (" +
                                                 std::to_string(config.max_frame_bytes) + " bytes; " +
                                                 std::to_string(bytes) + " seen)"));
}

void Engine::State::on_frame(TimeMs now, std::string_view json) {
  if (!stream_live()) return;  // e.g. after a disconnect frame earlier in the same chunk
  ++stats.frames_in;
  if (json.size() > config.max_frame_bytes) {
    on_oversized_event(json.size());
    return;
  }
  std::string error;
  std::optional<ServerFrame> frame = decoder.decode(json, error);
  if (!frame) {
    ++stats.frame_errors;
    emit_error(fail(ErrorCode::kMalformedFrame, "dropped a malformed frame: " + error));
    return;
  }
  if (frame_events) events.emplace_back(FrameEvent{std::string(json)});
  std::visit([&](auto& f) { on_decoded(now, f); }, *frame);
}

void Engine::State::on_decoded(TimeMs now, const RegisteredFrame& f) {
  if (conn != Conn::kOpen && conn != Conn::kRegistered) return;
  const bool first = conn == Conn::kOpen;
  conn = Conn::kRegistered;
  reconnect_attempt = 0;
  timer(Timer::kRegister).reset();
  if (logs(LogLevel::kInfo)) {
    Meta meta;
    meta.str("sessionId", f.session_id).num("capabilities", f.capabilities);
    if (f.rejected && !f.rejected->Empty()) {
      std::string rejected;
      write_json(*f.rejected, rejected);
      meta.str("rejected", rejected);
    }
    log(LogLevel::kInfo, "registered", std::move(meta));
  }
  events.emplace_back(ConnectionRegistered{std::string(f.session_id), f.capabilities});
  settle_start(Status::Ok());
  if (first) timer(Timer::kHeartbeat) = now + config.heartbeat_interval_ms;
}

void Engine::State::on_decoded(TimeMs now, const LeaseFrame& f) { accept_lease(now, f); }

void Engine::State::on_decoded(TimeMs now, const CancelFrame& f) {
  cancel_lease(now, f.lease_id, f.reason.empty() ? std::string_view("cancelled by gateway") : f.reason);
}

void Engine::State::on_decoded(TimeMs now, const CapabilityRevokedFrame& f) {
  revoke_capability(now, f.capability, f.reason);
}

void Engine::State::on_decoded(TimeMs now, const DisconnectFrame& f) {
  const std::string reason = f.reason.empty() ? std::string("disconnected by gateway") : std::string(f.reason);
  if (logs(LogLevel::kInfo)) log(LogLevel::kInfo, "gateway disconnect", Meta().str("reason", reason).num("reconnect", f.reconnect));
  close_stream(now, reason, f.reconnect);
}

void Engine::State::on_decoded(TimeMs, const UnknownFrame& f) {
  if (logs(LogLevel::kWarn)) log(LogLevel::kWarn, "frame of unknown type ignored", Meta().str("type", f.type));
}

}  // namespace neuron
