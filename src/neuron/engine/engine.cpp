// The public Engine (neuron/engine.h): each call begins a new turn (what the
// previous turn's actions pointed into may go), then hands over to the part
// of the state that owns the concern (engine/state.h lists them).
#include "neuron/engine.h"

#include "neuron/capability_type.h"
#include "neuron/engine/state.h"

namespace neuron {

std::string_view abort_reason_string(AbortReason reason) {
  switch (reason) {
    case AbortReason::kCancelled: return "cancelled";
    case AbortReason::kCapabilityRevoked: return "capability revoked";
    case AbortReason::kShuttingDown: return "shutting down";
    case AbortReason::kLeaseLost: return "lease lost";
  }
  return "";
}

Status fail(ErrorCode code, std::string message, int http_status) {
  Status s;
  s.code = code;
  s.message = std::move(message);
  s.http_status = http_status;
  return s;
}

Status validate_config(const Config& c) {
  auto bad = [](std::string field, std::string what) {
    return fail(ErrorCode::kInvalidConfig, field + " " + what);
  };
  if (c.neuron_id.empty()) return bad("neuronId", "must be a non-empty string");
  if (c.heartbeat_interval_ms < 1) return bad("heartbeatIntervalMs", "must be >= 1");
  if (c.initial_reconnect_delay_ms < 0) return bad("initialReconnectDelayMs", "must be >= 0");
  if (c.max_reconnect_delay_ms < c.initial_reconnect_delay_ms)
    return bad("maxReconnectDelayMs", "must be >= initialReconnectDelayMs");
  if (!(c.reconnect_jitter >= 0.0 && c.reconnect_jitter <= 1.0))
    return bad("reconnectJitter", "must be between 0 and 1");
  if (c.idle_timeout_ms < 1) return bad("idleTimeoutMs", "must be >= 1");
  if (c.max_frame_bytes < 1024) return bad("maxFrameBytes", "must be >= 1024");
  if (c.request_timeout_ms < 1) return bad("requestTimeoutMs", "must be >= 1");
  if (c.stop_flush_ms < 0) return bad("stopFlushMs", "must be >= 0");
  if (c.max_terminal_attempts < 1) return bad("maxTerminalAttempts", "must be >= 1");
  if (c.progress_grace_ms < 0) return bad("progressGraceMs", "must be >= 0");
  if (c.recent_lease_capacity < 1 || c.recent_lease_capacity > RecentIds::kMaxCapacity) {
    return bad("recentLeaseCapacity", "must be between 1 and 2^24");
  }
  if (c.recent_lease_ttl_ms < 0 || c.recent_lease_ttl_ms > RecentIds::kMaxTtlMs) {
    return bad("recentLeaseTtlMs", "must be between 0 and 2^31 - 1 (24 days)");
  }
  return Status::Ok();
}

NEURON_COLD Engine::State::State(Config c)
    : config(std::move(c)),
      random(config.random_seed),
      requests(config.max_in_flight_requests, config.request_timeout_ms),
      parser(config.max_frame_bytes),
      leases(config.recent_lease_capacity, config.recent_lease_ttl_ms) {
  size_request_bound();  // the default's, before any capability: its floor
}

NEURON_COLD Engine::Engine(Config config) : s_(std::make_unique<State>(std::move(config))) {}
Engine::~Engine() = default;

// ------------------------------------------------------------------ commands --

NEURON_COLD Status Engine::handle(CapabilitySpec spec) {
  State& s = *s_;
  s.begin_call();
  if (s.started || s.stopping) {
    return fail(ErrorCode::kHandleAfterStart,
                "Neuron.handle() must be called before start(); use updateCapability() for runtime changes");
  }
  std::string why;
  if (!is_valid_capability_type(spec.type, &why)) {
    return fail(ErrorCode::kInvalidCapability, "invalid capability type \"" + spec.type + "\": " + why);
  }
  if (s.capability_index(spec.type)) {
    return fail(ErrorCode::kDuplicateCapability, "capability " + spec.type + " is already handled by this neuron");
  }
  if (spec.concurrency < 1) {
    return fail(ErrorCode::kInvalidCapability, "capability " + spec.type + ": concurrency must be an integer >= 1");
  }
  // Must be JSON, or register would be malformed. Raw schemas are compiled
  // at start() (compile_schemas), advertised ones never.
  for (const std::string* schema : {&spec.input_schema_json, &spec.output_schema_json}) {
    std::string error;
    if (!schema->empty() && !is_well_formed_json(*schema, &error)) {
      const char* which = schema == &spec.input_schema_json ? "inputSchema" : "outputSchema";
      return fail(ErrorCode::kInvalidCapability,
                  "capability " + spec.type + ": " + which + ": schema is not valid JSON: " + error);
    }
  }
  Capability cap;
  cap.concurrency = spec.concurrency;
  cap.spec = std::move(spec);
  s.caps.push_back(std::move(cap));
  s.size_request_bound();
  return Status::Ok();
}

NEURON_COLD Status Engine::advertise_schemas(std::uint32_t capability, std::string input_schema_json,
                                 std::string output_schema_json) {
  State& s = *s_;
  s.begin_call();
  if (s.started || s.stopping) {
    return fail(ErrorCode::kHandleAfterStart, "capability schemas can only change before start()");
  }
  if (capability >= s.caps.size() || !s.caps[capability].spec.host_validates) {
    return fail(ErrorCode::kUnknownCapability, "advertise_schemas: no host-validated capability at that index");
  }
  for (const std::string* schema : {&input_schema_json, &output_schema_json}) {
    if (!schema->empty() && !is_well_formed_json(*schema)) {
      return fail(ErrorCode::kInvalidCapability,
                  "capability " + s.caps[capability].spec.type + ": schema is not valid JSON");
    }
  }
  s.caps[capability].spec.input_schema_json = std::move(input_schema_json);
  s.caps[capability].spec.output_schema_json = std::move(output_schema_json);
  return Status::Ok();
}

bool Engine::needs_schema_validator() const {
  for (const Capability& cap : s_->caps) {
    if (!cap.spec.host_validates && (!cap.spec.input_schema_json.empty() || !cap.spec.output_schema_json.empty())) {
      return true;
    }
  }
  return false;
}

NEURON_COLD Status Engine::start(TimeMs now) {
  State& s = *s_;
  s.begin_call();
  if (s.stopping) return fail(ErrorCode::kStopped, "Neuron.start() after stop(): create a new Neuron");
  if (s.started) return Status::Ok();
  if (s.caps.empty()) {
    return fail(ErrorCode::kNoHandlers, "Neuron.start() requires at least one handler: call neuron.handle() first");
  }
  if (Status compiled = s.compile_schemas(); !compiled.ok()) return compiled;
  s.started = true;
  s.start_pending = true;
  if (s.logs(LogLevel::kInfo)) {
    s.log(LogLevel::kInfo, "neuron starting",
          Meta().str("neuronId", s.config.neuron_id).num("capabilities", static_cast<std::int64_t>(s.caps.size())));
  }
  s.open_stream(now, false);
  return Status::Ok();
}

NEURON_COLD void Engine::stop(TimeMs now, bool drain, TimeMs timeout_ms) {
  State& s = *s_;
  s.begin_call();
  if (s.stopping) return;
  s.begin_stop(now, drain, timeout_ms);
}

NEURON_COLD Status Engine::update_capability(TimeMs now, std::string_view type, std::uint32_t concurrency) {
  State& s = *s_;
  s.begin_call();
  const std::optional<std::uint32_t> index = s.capability_index(type);
  if (!index) {
    return fail(ErrorCode::kUnknownCapability,
                "updateCapability: " + std::string(type) + " is not registered; call neuron.handle() for it first");
  }
  if (concurrency < 1) return fail(ErrorCode::kInvalidCapability, "updateCapability: concurrency must be an integer >= 1");
  if (s.stopping) return fail(ErrorCode::kStopped, "updateCapability after stop()");
  Capability& cap = s.caps[*index];
  cap.concurrency = concurrency;
  s.size_request_bound();
  if (s.conn == Conn::kOpen || s.conn == Conn::kRegistered) {
    Request req;
    req.kind = RequestKind::kUpdateCapability;
    req.path = PostPath::kUpdateCapability;
    encode_update_capability(req.body, s.config.neuron_id, now, cap.spec.type, concurrency);
    s.post(now, std::move(req));
  } else {
    s.pump_requests(now);  // a bound that grew sends what waits for it
  }
  s.pump(now, *index);
  return Status::Ok();
}

NEURON_COLD void Engine::reconnect_now(TimeMs now) {
  State& s = *s_;
  s.begin_call();
  if (!s.started || s.stopping) return;
  const bool may = s.conn == Conn::kBackoff || (s.conn == Conn::kDown && !s.is_http());
  if (!may) return;
  s.timer(Timer::kReconnect).reset();
  s.open_stream(now, /*auth_retry=*/false);
}

// -------------------------------------------------------------------- inputs --

NEURON_COLD void Engine::handle_stream_opened(TimeMs now, StreamId stream_id, int http_status, bool is_event_stream) {
  s_->begin_call();
  s_->on_stream_opened(now, stream_id, http_status, is_event_stream);
}

void Engine::handle_stream_bytes(TimeMs now, StreamId stream_id, std::string_view bytes) {
  State& s = *s_;
  s.begin_call();
  if (bytes.empty() || stream_id != s.stream_id || (s.conn != Conn::kOpen && s.conn != Conn::kRegistered)) return;
  s.stats.bytes_in += bytes.size();
  if (s.is_http()) s.timer(Timer::kIdle) = now + s.config.idle_timeout_ms;
  s.feed_now = now;
  s.parser.feed(bytes, s);
}

void Engine::handle_stream_frame(TimeMs now, StreamId stream_id, std::string_view json) {
  State& s = *s_;
  s.begin_call();
  if (json.empty() || stream_id != s.stream_id || (s.conn != Conn::kOpen && s.conn != Conn::kRegistered)) return;
  s.stats.bytes_in += json.size();
  if (s.is_http()) s.timer(Timer::kIdle) = now + s.config.idle_timeout_ms;
  s.on_frame(now, json);
}

void Engine::handle_lease(TimeMs now, StreamId stream_id, const LeaseInput& in) {
  State& s = *s_;
  s.begin_call();
  if (stream_id != s.stream_id || (s.conn != Conn::kOpen && s.conn != Conn::kRegistered)) {
    s.release_task(in.host_ref);
    return;
  }
  if (s.is_http()) s.timer(Timer::kIdle) = now + s.config.idle_timeout_ms;
  ++s.stats.frames_in;
  if (s.frame_events) s.events.emplace_back(FrameEvent{std::string(), in.host_ref});
  LeaseFrame f;
  f.lease_id = in.lease_id;
  f.has_task = in.has_task;
  if (in.has_task) {
    f.task_id = in.task_id;
    f.type = in.type;
    f.has_input = in.input_json.has_value();
    if (in.input_json) f.input_text = *in.input_json;
  }
  s.accept_lease(now, f, in.host_ref, in.has_task && in.input_vouched);
}

bool Engine::checks_input(std::uint32_t capability) const {
  return capability < s_->caps.size() && s_->caps[capability].input_schema.has_value();
}

bool Engine::checks_output(std::uint32_t capability) const {
  return capability < s_->caps.size() && s_->caps[capability].output_schema.has_value();
}

NEURON_COLD void Engine::handle_stream_closed(TimeMs now, StreamId stream_id, std::string_view reason) {
  s_->begin_call();
  s_->on_stream_closed(now, stream_id, reason);
}

void Engine::handle_post_result(TimeMs now, RequestId request_id, int http_status, std::string_view body) {
  State& s = *s_;
  s.begin_call();
  s.on_post_result(now, request_id, http_status, body);
  s.maybe_finish_stop(now);
}

void Engine::handle_post_released(TimeMs now, RequestId request_id) {
  State& s = *s_;
  s.begin_call();
  s.on_post_released(now, request_id);
  s.maybe_finish_stop(now);
}

void Engine::handle_handler_done(TimeMs now, HandlerId handler_id, HandlerOutcome outcome) {
  s_->begin_call();
  s_->handler_done(now, handler_id, outcome);
}

void Engine::handle_progress(TimeMs now, HandlerId handler_id, ProgressUpdate update) {
  s_->begin_call();
  s_->progress(now, handler_id, update);
}

void Engine::handle_timeout(TimeMs now) {
  State& s = *s_;
  s.begin_call();
  auto due = [&](Timer t) {
    auto& deadline = s.timer(t);
    if (!deadline || *deadline > now) return false;
    deadline.reset();
    return true;
  };
  // stop()'s deadlines first: past the flush nothing more is sent, and past
  // the drain the leases that still ran have ended (so a heartbeat due now
  // lists what runs after it).
  if (due(Timer::kStopFlush)) {
    if (!s.stopped) s.finish_stop();
    return;
  }
  if (due(Timer::kStopDrain)) s.abort_all_running(now);
  s.on_connection_timers(now);
  s.expire_requests(now);
  s.maybe_finish_stop(now);
}

// ------------------------------------------------------------------- outputs --

std::optional<Action> Engine::poll_action() {
  State& s = *s_;
  if (s.next_action == s.actions.size()) return std::nullopt;
  return std::move(s.actions[s.next_action++]);
}

std::optional<Event> Engine::poll_event() {
  if (s_->events.empty()) return std::nullopt;
  Event e = std::move(s_->events.front());
  s_->events.pop_front();
  return e;
}

std::optional<TimeMs> Engine::poll_timeout() const {
  std::optional<TimeMs> earliest = s_->requests.next_deadline();
  for (const auto& t : s_->timers) {
    if (t && (!earliest || *t < *earliest)) earliest = t;
  }
  return earliest;
}

// --------------------------------------------------------------- observation --

void Engine::set_frame_events(bool enabled) { s_->frame_events = enabled; }
void Engine::set_log_level(LogLevel level) { s_->log_level = level; }
const Stats& Engine::stats() const { return s_->stats; }
std::uint32_t Engine::capability_count() const { return static_cast<std::uint32_t>(s_->caps.size()); }

CapabilityStats Engine::capability_stats(std::uint32_t capability) const {
  if (capability >= s_->caps.size()) return {};
  const Capability& cap = s_->caps[capability];
  return {static_cast<std::uint32_t>(cap.queue.size()), cap.running, cap.concurrency};
}

bool Engine::is_connected() const { return s_->conn == Conn::kOpen || s_->conn == Conn::kRegistered; }
bool Engine::is_registered() const { return s_->conn == Conn::kRegistered; }
bool Engine::is_stopped() const { return s_->stopped; }

std::vector<std::string> Engine::running_lease_ids() const {
  std::vector<std::string> ids;
  s_->leases.for_each_running([&](std::uint64_t, const Lease& lease) {
    if (!lease.ended) ids.push_back(lease.lease_id);
  });
  return ids;
}

}  // namespace neuron
