// The engine's theory of operation.
//
// Three pieces of state move independently:
//   - the connection (conn_): idle -> connecting -> open -> registered, and on
//     loss either backoff (HTTP) or down (no reconnect: IPC, 403, disconnect
//     without reconnect). Only a live stream's reports are listened to: every
//     OpenStream gets a fresh id and reports for other ids are dropped.
//   - the leases (leases_): queued -> running; a lease is "ended" once its one
//     terminal frame is posted (or suppressed: lost leases). It leaves the
//     table when it is ended and its handler no longer runs, so a handler that
//     ignores its abort still holds its concurrency slot and its lease id
//     still deduplicates.
//   - the requests (requests_): every POST in flight or waiting to be retried,
//     each with one deadline (its timeout, or its retry time).
// Timers are a small fixed array (reconnect, heartbeat, idle, stop phases) plus
// the ordered set of request deadlines; poll_timeout() is their minimum.
#include "neuron/engine.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <deque>
#include <set>
#include <unordered_map>
#include <unordered_set>

#include "neuron/capability.h"
#include "neuron/frames.h"
#include "neuron/iso_time.h"
#include "neuron/sse_parser.h"

namespace neuron {

std::string_view error_code_name(ErrorCode code) {
  switch (code) {
    case ErrorCode::kOk: return "ok";
    case ErrorCode::kInvalidConfig: return "invalid-config";
    case ErrorCode::kInvalidCapability: return "invalid-capability";
    case ErrorCode::kDuplicateCapability: return "duplicate-capability";
    case ErrorCode::kHandleAfterStart: return "handle-after-start";
    case ErrorCode::kNoHandlers: return "no-handlers";
    case ErrorCode::kUnknownCapability: return "unknown-capability";
    case ErrorCode::kStopped: return "stopped";
    case ErrorCode::kRegistrationRejected: return "registration-rejected";
    case ErrorCode::kStreamFailed: return "stream-failed";
    case ErrorCode::kFrameTooLarge: return "frame-too-large";
    case ErrorCode::kMalformedFrame: return "malformed-frame";
    case ErrorCode::kMalformedLease: return "malformed-lease";
    case ErrorCode::kPostFailed: return "post-failed";
  }
  return "unknown";
}

std::string_view post_path_string(PostPath path) {
  switch (path) {
    case PostPath::kRegister: return "/neuron/register";
    case PostPath::kUpdateCapability: return "/neuron/update-capability";
    case PostPath::kHeartbeat: return "/neuron/heartbeat";
    case PostPath::kAck: return "/neuron/ack";
    case PostPath::kNack: return "/neuron/nack";
    case PostPath::kProgress: return "/neuron/progress";
  }
  return "";
}

std::string_view abort_reason_string(AbortReason reason) {
  switch (reason) {
    case AbortReason::kCancelled: return "cancelled";
    case AbortReason::kCapabilityRevoked: return "capability revoked";
    case AbortReason::kShuttingDown: return "shutting down";
    case AbortReason::kLeaseLost: return "lease lost";
  }
  return "";
}

namespace {

Status fail(ErrorCode code, std::string message, int http_status = 0) {
  Status s;
  s.code = code;
  s.message = std::move(message);
  s.http_status = http_status;
  return s;
}

bool is_2xx(int status) { return status >= 200 && status < 300; }
bool is_retryable_status(int status) {
  return status == 0 || status == 429 || (status >= 500 && status < 600);
}

// Heterogeneous lookup by string_view in unordered containers of std::string.
struct StringHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

// A pino `meta` object, built only when the record will be emitted.
class Meta {
 public:
  Meta& str(std::string_view key, std::string_view value) {
    key_(key);
    append_json_string(json_, value);
    return *this;
  }
  Meta& num(std::string_view key, std::int64_t value) {
    key_(key);
    json_ += std::to_string(value);
    return *this;
  }
  std::string take() {
    json_ += '}';
    return std::move(json_);
  }

 private:
  void key_(std::string_view key) {
    json_ += json_.size() > 1 ? "," : "";
    append_json_string(json_, key);
    json_ += ':';
  }
  std::string json_ = "{";
};

enum class Timer : std::uint8_t {
  kReconnect,  // backoff wait before the next OpenStream
  kRegister,   // the stream opened: `registered` must arrive by then
  kHeartbeat,
  kIdle,       // HTTP: no stream bytes since
  kStopDrain,  // stop(): running handlers are aborted then
  kStopFlush,  // stop(): final acks/nacks are given up then
  kCount
};

enum class Conn : std::uint8_t {
  kIdle,        // before start()
  kConnecting,  // OpenStream sent, waiting for handle_stream_opened
  kOpen,        // stream open, register posted, waiting for `registered`
  kRegistered,  // heartbeating
  kBackoff,     // waiting for the reconnect timer
  kDown,        // no stream and none coming (IPC closed, 403, disconnect, stopping)
  kClosed,      // stopped
};

struct Capability {
  CapabilitySpec spec;
  std::optional<CompiledSchema> input_schema;
  std::optional<CompiledSchema> output_schema;
  std::uint32_t concurrency = 1;
  std::uint32_t running = 0;
  bool revoked = false;
  std::deque<std::uint64_t> queue;  // handles, FIFO
};

// A result decided before the handler finished (cancel, revoke).
struct Verdict {
  NackKind kind;
  std::string reason;
  std::string code;
};

struct Lease {
  std::string lease_id;
  std::string task_id;
  std::string task_json;  // moved into StartHandler when the lease starts
  std::uint32_t capability = 0;
  bool running = false;   // handler started and not yet reported done
  bool ended = false;     // terminal frame posted, or suppressed (lost)
  TimeMs started_at = 0;
  // Rare, so allocated only when needed: a queued lease stays small.
  std::unique_ptr<Verdict> verdict;
  bool progress_in_flight = false;
  std::uint64_t progress_request = 0;  // the request id of that progress POST
  std::unique_ptr<ProgressUpdate> progress_pending;
};

enum class RequestKind : std::uint8_t { kRegister, kUpdateCapability, kHeartbeat, kTerminal, kProgress };

struct Request {
  RequestKind kind;
  PostPath path;
  std::string body;
  std::uint64_t lease = 0;      // progress: the lease's handle
  std::uint64_t stream_id = 0;  // register: the stream it registers
  std::string lease_id;         // terminal: for logs
  int attempts = 1;             // terminal: tries so far (a 401 retry is not one)
  bool reauthed = false;        // the one 401 retry was used
  bool waiting_retry = false;   // deadline is the retry time, not a timeout
  TimeMs deadline = 0;
};

// splitmix64: tiny, seedable, good enough for jitter.
class Random {
 public:
  explicit Random(std::uint64_t seed) : state_(seed) {}
  double next_unit() {  // [0, 1)
    std::uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    return static_cast<double>(z >> 11) * 0x1.0p-53;
  }

 private:
  std::uint64_t state_;
};

}  // namespace

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
  if (c.recent_lease_capacity < 1) return bad("recentLeaseCapacity", "must be >= 1");
  if (c.recent_lease_ttl_ms < 0) return bad("recentLeaseTtlMs", "must be >= 0");
  return Status::Ok();
}

struct Engine::State final : SseParser::Sink {
  explicit State(Config c)
      : config(std::move(c)), parser(config.max_frame_bytes), random(config.random_seed) {}

  Config config;
  SseParser parser;
  FrameDecoder decoder;
  Random random;
  Stats stats;

  std::vector<Capability> caps;
  std::unordered_map<std::string, std::uint32_t, StringHash, std::equal_to<>> cap_by_type;

  std::unordered_map<std::uint64_t, Lease> leases;  // by handle
  std::unordered_map<std::string_view, std::uint64_t> lease_by_id;  // views into leases
  std::uint64_t next_handle = 0;

  // Rule 2 memory of finished lease ids: a set, and the order to forget in.
  std::unordered_set<std::string, StringHash, std::equal_to<>> recent;
  // A ring (oldest at recent_head) that grows to recent_lease_capacity once.
  std::vector<std::pair<TimeMs, std::string_view>> recent_ring;
  std::size_t recent_head = 0;
  std::size_t recent_size = 0;

  std::unordered_map<std::uint64_t, Request> requests;
  std::set<std::pair<TimeMs, std::uint64_t>> request_deadlines;
  std::uint64_t next_request = 0;

  std::array<std::optional<TimeMs>, static_cast<std::size_t>(Timer::kCount)> timers;

  std::deque<Action> actions;
  std::deque<Event> events;

  Conn conn = Conn::kIdle;
  std::uint64_t stream_id = 0;
  std::uint64_t next_stream = 0;
  bool stream_reauthed = false;  // this connection attempt used its 401 retry
  std::uint32_t reconnect_attempt = 0;

  bool started = false;
  bool start_pending = false;
  bool stopping = false;
  bool stopped = false;

  bool frame_events = false;
  LogLevel log_level = LogLevel::kSilent;
  TimeMs feed_now = 0;  // `now` of the bytes being parsed, for the Sink

  bool is_http() const { return config.carrier == Carrier::kHttp; }
  bool stream_live() const {
    return conn == Conn::kConnecting || conn == Conn::kOpen || conn == Conn::kRegistered;
  }
  std::optional<TimeMs>& timer(Timer t) { return timers[static_cast<std::size_t>(t)]; }

  // ---------------------------------------------------------------- output --

  bool logs(LogLevel level) const { return level >= log_level && log_level != LogLevel::kSilent; }
  void log(LogLevel level, std::string_view msg, Meta meta = {}) {
    events.emplace_back(LogEvent{level, std::string(msg), meta.take()});
  }
  void emit_error(Status error) {
    if (logs(LogLevel::kError)) {
      log(LogLevel::kError, error.message, Meta().str("code", error_code_name(error.code)));
    }
    events.emplace_back(ErrorEvent{std::move(error)});
  }
  void settle_start(Status status) {
    if (!start_pending) return;
    start_pending = false;
    events.emplace_back(StartSettled{std::move(status)});
  }

  // -------------------------------------------------------------- requests --

  void arm_request(std::uint64_t id, Request& req, TimeMs deadline) {
    req.deadline = deadline;
    request_deadlines.emplace(deadline, id);
  }

  // Sends `req` now under a fresh request id.
  void send(TimeMs now, Request req, std::uint64_t after = 0) {
    const std::uint64_t id = ++next_request;
    req.waiting_retry = false;
    ++stats.frames_out;
    actions.emplace_back(Post{id, req.path, req.body, after});
    if (req.kind == RequestKind::kProgress) {  // also its retries: what a terminal frame must wait for
      auto lease = leases.find(req.lease);
      if (lease != leases.end()) lease->second.progress_request = id;
    }
    auto [it, inserted] = requests.emplace(id, std::move(req));
    arm_request(id, it->second, now + config.request_timeout_ms);
  }

  void post(TimeMs now, RequestKind kind, PostPath path, std::string body) {
    Request req;
    req.kind = kind;
    req.path = path;
    req.body = std::move(body);
    send(now, std::move(req));
  }

  std::optional<Request> take_request(std::uint64_t id) {
    auto it = requests.find(id);
    if (it == requests.end()) return std::nullopt;
    request_deadlines.erase({it->second.deadline, id});
    Request req = std::move(it->second);
    requests.erase(it);
    return req;
  }

  void abort_requests_where(auto&& predicate) {
    for (auto it = requests.begin(); it != requests.end();) {
      if (predicate(it->second)) {
        if (!it->second.waiting_retry) actions.emplace_back(AbortPost{it->first});
        request_deadlines.erase({it->second.deadline, it->first});
        it = requests.erase(it);
      } else {
        ++it;
      }
    }
  }

  TimeMs backoff_delay(std::uint32_t attempt) {
    const double base = static_cast<double>(config.initial_reconnect_delay_ms) *
                        std::ldexp(1.0, static_cast<int>(std::min<std::uint32_t>(attempt - 1, 62)));
    const double capped = std::min(base, static_cast<double>(config.max_reconnect_delay_ms));
    const double factor = 1.0 - config.reconnect_jitter * random.next_unit();
    return static_cast<TimeMs>(std::llround(capped * factor));
  }

  void on_post_outcome(TimeMs now, Request req, int status, std::string_view body) {
    if (status == 401 && !req.reauthed && is_http()) {
      // The host calls auth again for the retry: that is the token refresh.
      // Progress for a lease that has ended since is dropped (rule 10), and a
      // heartbeat is rebuilt so its inFlight is what runs now (none is sent
      // while not registered), rather than resending a stale frame.
      if (req.kind == RequestKind::kProgress) {
        auto it = leases.find(req.lease);
        if (it == leases.end() || it->second.ended) return on_progress_result(now, req, status);
      }
      if (req.kind == RequestKind::kHeartbeat) {
        if (conn != Conn::kRegistered) return on_heartbeat_result(status, body);
        req.body = heartbeat_body(now);
      }
      req.reauthed = true;
      send(now, std::move(req));
      return;
    }
    switch (req.kind) {
      case RequestKind::kRegister: return on_register_result(now, req, status, body);
      case RequestKind::kUpdateCapability:
        if (!is_2xx(status) && logs(LogLevel::kWarn))
          log(LogLevel::kWarn, "update-capability post failed", Meta().num("status", status));
        return;
      case RequestKind::kHeartbeat: return on_heartbeat_result(status, body);
      case RequestKind::kProgress: return on_progress_result(now, req, status);
      case RequestKind::kTerminal: return on_terminal_result(now, std::move(req), status, body);
    }
  }

  void on_register_result(TimeMs now, const Request& req, int status, std::string_view body) {
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

  void on_heartbeat_result(int status, std::string_view body) {
    if (!is_2xx(status)) {
      if (logs(LogLevel::kWarn)) log(LogLevel::kWarn, "heartbeat post failed", Meta().num("status", status));
      return;
    }
    for (const std::string& id : decode_lost_leases(body)) lose_lease(id);
  }

  void on_progress_result(TimeMs now, const Request& req, int status) {
    if (!is_2xx(status) && logs(LogLevel::kWarn))
      log(LogLevel::kWarn, "progress post failed", Meta().num("status", status));
    auto it = leases.find(req.lease);
    if (it == leases.end()) return;
    Lease& lease = it->second;
    lease.progress_in_flight = false;
    if (lease.progress_pending && !lease.ended) {
      ProgressUpdate next = std::move(*lease.progress_pending);
      lease.progress_pending.reset();
      send_progress(now, req.lease, lease, next);
    }
  }

  void on_terminal_result(TimeMs now, Request req, int status, std::string_view body) {
    if (is_2xx(status)) return;
    const bool nack = req.path == PostPath::kNack;
    if (is_retryable_status(status) && req.attempts < config.max_terminal_attempts && !stopped) {
      const TimeMs delay = backoff_delay(static_cast<std::uint32_t>(req.attempts));
      ++req.attempts;
      req.reauthed = false;
      req.waiting_retry = true;
      if (logs(LogLevel::kWarn)) {
        log(LogLevel::kWarn, nack ? "nack post failed, retrying" : "ack post failed, retrying",
            Meta().str("leaseId", req.lease_id).num("status", status).num("attempt", req.attempts)
                .num("delayMs", delay));
      }
      const std::uint64_t id = ++next_request;  // a waiting retry holds a fresh id
      auto [it, inserted] = requests.emplace(id, std::move(req));
      arm_request(id, it->second, now + delay);
      it->second.waiting_retry = true;
      return;
    }
    if (is_retryable_status(status)) {
      emit_error(fail(ErrorCode::kPostFailed,
                      std::string(nack ? "nack" : "ack") + " for lease " + req.lease_id +
                          " failed after " + std::to_string(req.attempts) +
                          " attempts; the gateway will redeliver the task",
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

  // ------------------------------------------------------------ connection --

  void open_stream(TimeMs now, bool auth_retry) {
    stream_id = ++next_stream;
    stream_reauthed = auth_retry;
    conn = Conn::kConnecting;
    parser.reset();
    actions.emplace_back(OpenStream{stream_id, events_path(config.neuron_id)});
    if (is_http()) timer(Timer::kIdle) = now + config.idle_timeout_ms;
  }

  // The stream is gone (the caller already closed it if it had to).
  // The engine ends the stream itself. It also reopens it (after a backoff)
  // on every carrier: an IPC / custom transport reconnects by itself only
  // after a loss it reported, and this one the engine caused.
  void close_stream(TimeMs now, std::string_view reason, bool reconnect) {
    actions.emplace_back(CloseStream{stream_id});
    lose_stream(now, reason, reconnect, /*closed_here=*/true);
  }

  void lose_stream(TimeMs now, std::string_view reason, bool reconnect, bool closed_here = false) {
    const bool was_open = conn == Conn::kOpen || conn == Conn::kRegistered;
    conn = Conn::kDown;
    timer(Timer::kIdle).reset();
    timer(Timer::kRegister).reset();
    timer(Timer::kHeartbeat).reset();
    abort_requests_where([](const Request& r) {
      return r.kind == RequestKind::kRegister || r.kind == RequestKind::kUpdateCapability;
    });
    drop_queued_leases();
    if (was_open) events.emplace_back(ConnectionClose{std::string(reason)});
    if (stopping) {
      maybe_finish_stop(now);
      return;
    }
    if (reconnect && (is_http() || closed_here)) {
      schedule_reconnect(now, reason);
      return;
    }
    settle_start(fail(ErrorCode::kStreamFailed,
                      "connection closed before registration: " + std::string(reason)));
  }

  void schedule_reconnect(TimeMs now, std::string_view reason) {
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

  void drop_queued_leases() {
    // Never started, so the broker still holds them and redelivers: no nack,
    // and their ids are not remembered (the redelivery must be accepted).
    for (Capability& cap : caps) {
      for (std::uint64_t handle : cap.queue) {
        erase_lease(handle);
        ++stats.leases_dropped;
      }
      cap.queue.clear();
    }
  }

  void send_register(TimeMs now) {
    std::vector<RegisterCapability> list;
    list.reserve(caps.size());
    for (const Capability& cap : caps) list.push_back({&cap.spec, cap.concurrency});
    Request req;
    req.kind = RequestKind::kRegister;
    req.path = PostPath::kRegister;
    req.stream_id = stream_id;
    encode_register(req.body, config.neuron_id, now, config.sdk_name, config.sdk_version, list);
    send(now, std::move(req));
  }

  void send_heartbeat(TimeMs now) {
    post(now, RequestKind::kHeartbeat, PostPath::kHeartbeat, heartbeat_body(now));
  }

  std::string heartbeat_body(TimeMs now) const {
    std::vector<std::pair<const Lease*, std::uint64_t>> running = running_leases();
    std::vector<InFlightLease> in_flight;
    in_flight.reserve(running.size());
    for (auto [lease, handle] : running) {
      in_flight.push_back({lease->lease_id, lease->task_id, lease->started_at});
    }
    std::string body;
    encode_heartbeat(body, config.neuron_id, now, in_flight);
    return body;
  }

  // Running leases the gateway still holds for us, oldest start first.
  std::vector<std::pair<const Lease*, std::uint64_t>> running_leases() const {
    std::vector<std::pair<const Lease*, std::uint64_t>> out;
    for (const auto& [handle, lease] : leases) {
      if (lease.running && !lease.ended) out.emplace_back(&lease, handle);
    }
    std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
      return a.first->started_at != b.first->started_at ? a.first->started_at < b.first->started_at
                                                        : a.second < b.second;
    });
    return out;
  }

  // ---------------------------------------------------------------- frames --

  void on_event(const SseParser::Event& event) override { on_frame(feed_now, event.data); }

  void on_oversized_event(std::size_t bytes) override {
    ++stats.frame_errors;
    emit_error(fail(ErrorCode::kFrameTooLarge,
                    "dropped an SSE event over maxFrameBytes (" + std::to_string(config.max_frame_bytes) +
                        " bytes; " + std::to_string(bytes) + " seen)"));
  }

  void on_frame(TimeMs now, std::string_view json) {
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

  void on_decoded(TimeMs now, const RegisteredFrame& f) {
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

  void on_decoded(TimeMs now, const LeaseFrame& f) {
    ++stats.leases_received;
    forget_recent(now, config.recent_lease_capacity + 1);  // by age only
    if (f.lease_id.empty() || f.task_id.empty() || f.type.empty()) {
      const char* missing = f.lease_id.empty() ? "leaseId" : f.task_id.empty() ? "task.taskId" : "task.type";
      emit_error(fail(ErrorCode::kMalformedLease, std::string("lease: ") + missing + " is missing or not a string"));
      if (!f.lease_id.empty() && !f.task_id.empty() && !is_known(f.lease_id)) {
        nack_unstarted(now, f.lease_id, f.task_id, NackKind::kTerminal,
                       std::string("malformed lease: ") + missing + " is missing", "MALFORMED_LEASE");
      }
      return;
    }
    if (is_known(f.lease_id)) {
      ++stats.leases_duplicate;
      if (logs(LogLevel::kDebug))
        log(LogLevel::kDebug, "duplicate lease ignored", Meta().str("leaseId", f.lease_id).str("taskId", f.task_id));
      return;
    }
    auto cap_it = cap_by_type.find(f.type);
    if (stopping) {
      return nack_unstarted(now, f.lease_id, f.task_id, NackKind::kRetryable, "neuron is shutting down",
                            "SHUTTING_DOWN");
    }
    if (cap_it == cap_by_type.end()) {
      return nack_unstarted(now, f.lease_id, f.task_id, NackKind::kRetryable,
                            "no handler for capability " + std::string(f.type), "NO_HANDLER");
    }
    const std::uint32_t index = cap_it->second;
    Capability& cap = caps[index];
    if (cap.revoked) {
      return nack_unstarted(now, f.lease_id, f.task_id, NackKind::kRetryable,
                            "capability " + cap.spec.type + " was revoked", "CAPABILITY_REVOKED");
    }
    if (cap.input_schema) {
      static const rapidjson::Value kNull;
      std::vector<ValidationError> errors;
      if (!cap.input_schema->validate(f.input ? *f.input : kNull, errors)) {
        return nack_unstarted(now, f.lease_id, f.task_id, NackKind::kSchemaMismatch,
                              "input does not match the capability's inputSchema", "", errors);
      }
    }
    const std::uint64_t handle = ++next_handle;
    auto [it, inserted] = leases.emplace(handle, Lease{});
    Lease& lease = it->second;
    lease.lease_id.assign(f.lease_id);
    lease.task_id.assign(f.task_id);
    lease.capability = index;
    if (!f.task_text.empty()) {
      lease.task_json.assign(f.task_text);
    } else {
      write_json(*f.task, lease.task_json);
    }
    lease_by_id.emplace(lease.lease_id, handle);
    cap.queue.push_back(handle);
    if (logs(LogLevel::kDebug)) {
      log(LogLevel::kDebug, "lease received",
          Meta().str("leaseId", lease.lease_id).str("taskId", lease.task_id).str("capability", cap.spec.type));
    }
    pump(now, index);
  }

  void on_decoded(TimeMs now, const CancelFrame& f) {
    auto it = lease_by_id.find(f.lease_id);
    if (it == lease_by_id.end()) {
      if (logs(LogLevel::kDebug)) log(LogLevel::kDebug, "cancel for unknown lease ignored", Meta().str("leaseId", f.lease_id));
      return;
    }
    const std::uint64_t handle = it->second;
    Lease& lease = leases.at(handle);
    std::string reason = f.reason.empty() ? std::string("cancelled by gateway") : std::string(f.reason);
    if (lease.ended) return;
    if (!lease.running) {
      unqueue(handle, lease.capability);
      return finish(now, handle, lease, NackKind::kCancelled, reason, "", {});
    }
    abort_running(handle, lease, AbortReason::kCancelled, Verdict{NackKind::kCancelled, std::move(reason), ""});
  }

  void on_decoded(TimeMs now, const CapabilityRevokedFrame& f) {
    auto cap_it = cap_by_type.find(f.capability);
    if (cap_it == cap_by_type.end()) {
      if (logs(LogLevel::kWarn)) log(LogLevel::kWarn, "revocation of unknown capability ignored", Meta().str("capability", f.capability));
      return;
    }
    Capability& cap = caps[cap_it->second];
    cap.revoked = true;
    const std::string reason = "capability " + cap.spec.type + " was revoked" +
                               (f.reason.empty() ? std::string() : ": " + std::string(f.reason));
    if (logs(LogLevel::kWarn)) log(LogLevel::kWarn, "capability revoked", Meta().str("capability", cap.spec.type).str("reason", f.reason));
    std::deque<std::uint64_t> queued;
    queued.swap(cap.queue);
    for (std::uint64_t handle : queued) {
      finish(now, handle, leases.at(handle), NackKind::kRetryable, reason, "CAPABILITY_REVOKED", {});
    }
    for (auto& [handle, lease] : leases) {
      if (lease.capability == cap_it->second && lease.running && !lease.ended) {
        abort_running(handle, lease, AbortReason::kCapabilityRevoked,
                      Verdict{NackKind::kRetryable, reason, "CAPABILITY_REVOKED"});
      }
    }
  }

  void on_decoded(TimeMs now, const DisconnectFrame& f) {
    const std::string reason = f.reason.empty() ? std::string("disconnected by gateway") : std::string(f.reason);
    if (logs(LogLevel::kInfo)) log(LogLevel::kInfo, "gateway disconnect", Meta().str("reason", reason).num("reconnect", f.reconnect));
    close_stream(now, reason, f.reconnect);
  }

  void on_decoded(TimeMs, const UnknownFrame& f) {
    if (logs(LogLevel::kWarn)) log(LogLevel::kWarn, "frame of unknown type ignored", Meta().str("type", f.type));
  }

  // ---------------------------------------------------------------- leases --

  bool is_known(std::string_view lease_id) const {
    return lease_by_id.count(lease_id) != 0 || recent.find(lease_id) != recent.end();
  }

  // Forgets the oldest remembered ids while they are past the TTL, or while
  // there are `keep` or more of them.
  void forget_recent(TimeMs now, std::size_t keep) {
    const std::size_t capacity = config.recent_lease_capacity;
    while (recent_size > 0 && (recent_size >= keep ||
                               recent_ring[recent_head].first + config.recent_lease_ttl_ms < now)) {
      recent.erase(recent.find(recent_ring[recent_head].second));
      recent_head = (recent_head + 1) % capacity;
      --recent_size;
    }
  }

  void remember(TimeMs now, std::string_view lease_id) {
    const std::size_t capacity = config.recent_lease_capacity;
    forget_recent(now, capacity);
    auto [it, inserted] = recent.emplace(lease_id);
    if (!inserted) return;
    // Until the ring first fills, the slot after the newest is the end of the
    // vector or a slot already written: the live entries are the slots
    // [head, head + size) mod capacity, and nothing wraps before it is full.
    const std::size_t slot = (recent_head + recent_size) % capacity;
    if (slot == recent_ring.size()) {
      recent_ring.emplace_back(now, *it);
    } else {
      recent_ring[slot] = {now, *it};
    }
    ++recent_size;
  }

  void erase_lease(std::uint64_t handle) {
    auto it = leases.find(handle);
    if (it == leases.end()) return;
    lease_by_id.erase(it->second.lease_id);
    leases.erase(it);
  }

  void unqueue(std::uint64_t handle, std::uint32_t capability) {
    auto& queue = caps[capability].queue;
    queue.erase(std::find(queue.begin(), queue.end(), handle));
  }

  // A lease refused before it was queued still gets its one terminal frame.
  void nack_unstarted(TimeMs now, std::string_view lease_id, std::string_view task_id, NackKind kind,
                      std::string_view reason, std::string_view code,
                      const std::vector<ValidationError>& errors = {}) {
    if (logs(LogLevel::kInfo)) {
      log(LogLevel::kInfo, "lease refused",
          Meta().str("leaseId", lease_id).str("taskId", task_id).str("kind", nack_kind_string(kind)).str("code", code)
              .str("reason", reason));
    }
    remember(now, lease_id);
    send_terminal(now, PostPath::kNack, std::string(lease_id), task_id, kind, reason, code, errors, {}, 0);
  }

  void send_terminal(TimeMs now, PostPath path, std::string lease_id, std::string_view task_id, NackKind kind,
                     std::string_view reason, std::string_view code, const std::vector<ValidationError>& errors,
                     std::string_view output_json, TimeMs duration_ms, std::uint64_t after = 0) {
    Request req;
    req.kind = RequestKind::kTerminal;
    req.path = path;
    if (path == PostPath::kAck) {
      encode_ack(req.body, config.neuron_id, now, lease_id, task_id, output_json, duration_ms);
      ++stats.leases_acked;
    } else {
      encode_nack(req.body, config.neuron_id, now, lease_id, task_id, kind, reason, code, errors);
      switch (kind) {
        case NackKind::kRetryable: ++stats.nacks_retryable; break;
        case NackKind::kTerminal: ++stats.nacks_terminal; break;
        case NackKind::kSchemaMismatch: ++stats.nacks_schema_mismatch; break;
        case NackKind::kCancelled: ++stats.nacks_cancelled; break;
      }
    }
    req.lease_id = std::move(lease_id);
    send(now, std::move(req), after);
  }

  // The progress POST of `lease` still in flight, which its verdict must not
  // overtake (Post::after), or 0.
  static std::uint64_t progress_on_the_wire(const Lease& lease) {
    return lease.progress_in_flight ? lease.progress_request : 0;
  }

  // Posts the lease's terminal nack (acks go through complete()).
  void finish(TimeMs now, std::uint64_t handle, Lease& lease, NackKind kind, std::string_view reason,
              std::string_view code, const std::vector<ValidationError>& errors) {
    if (logs(LogLevel::kInfo)) {
      log(LogLevel::kInfo, "lease nacked",
          Meta().str("leaseId", lease.lease_id).str("taskId", lease.task_id)
              .str("capability", caps[lease.capability].spec.type).str("kind", nack_kind_string(kind))
              .str("reason", reason));
    }
    send_terminal(now, PostPath::kNack, lease.lease_id, lease.task_id, kind, reason, code, errors, {}, 0,
                  progress_on_the_wire(lease));
    end_lease(now, handle, lease);
  }

  void end_lease(TimeMs now, std::uint64_t handle, Lease& lease) {
    lease.ended = true;
    lease.progress_pending.reset();
    remember(now, lease.lease_id);
    if (!lease.running) erase_lease(handle);
  }

  void abort_running(std::uint64_t handle, Lease& lease, AbortReason reason, Verdict verdict) {
    if (lease.verdict) return;  // the first decision stands
    lease.verdict = std::make_unique<Verdict>(std::move(verdict));
    actions.emplace_back(AbortHandler{handle, reason});
  }

  void lose_lease(std::string_view lease_id) {
    auto it = lease_by_id.find(lease_id);
    if (it == lease_by_id.end()) return;
    const std::uint64_t handle = it->second;
    Lease& lease = leases.at(handle);
    if (lease.ended) return;
    ++stats.leases_lost;
    if (logs(LogLevel::kWarn)) log(LogLevel::kWarn, "lease lost", Meta().str("leaseId", lease.lease_id).str("taskId", lease.task_id));
    const bool running = lease.running;
    if (!running) unqueue(handle, lease.capability);
    lease.ended = true;
    lease.progress_pending.reset();
    if (!running) {
      erase_lease(handle);
    } else if (!lease.verdict) {  // a cancelled or revoked lease's signal already fired
      actions.emplace_back(AbortHandler{handle, AbortReason::kLeaseLost});
    }
  }

  void pump(TimeMs now, std::uint32_t index) {
    Capability& cap = caps[index];
    while (cap.running < cap.concurrency && !cap.queue.empty()) {
      const std::uint64_t handle = cap.queue.front();
      cap.queue.pop_front();
      Lease& lease = leases.at(handle);
      lease.running = true;
      lease.started_at = now;
      ++cap.running;
      actions.emplace_back(StartHandler{handle, index, lease.lease_id, std::move(lease.task_json)});
      lease.task_json = std::string();
    }
  }

  void complete(TimeMs now, std::uint64_t handle, Lease& lease, HandlerOutcome& outcome) {
    const Capability& cap = caps[lease.capability];
    switch (outcome.result) {
      case HandlerResult::kReturned: {
        replace_lone_surrogate_escapes(outcome.output_json.data(), outcome.output_json.size());
        std::vector<ValidationError> errors;
        if (cap.output_schema) {
          std::string error;
          const rapidjson::Value* output = decoder.parse(outcome.output_json, error);
          if (!output) {
            return finish(now, handle, lease, NackKind::kTerminal, "handler output is not JSON: " + error,
                          "INVALID_OUTPUT", {});
          }
          if (!cap.output_schema->validate(*output, errors)) {
            return finish(now, handle, lease, NackKind::kSchemaMismatch,
                          "output does not match the capability's outputSchema", "", errors);
          }
        } else if (std::string why; !is_well_formed_json(outcome.output_json, &why)) {
          return finish(now, handle, lease, NackKind::kTerminal, "handler output is not JSON: " + why, "INVALID_OUTPUT",
                        {});
        }
        if (logs(LogLevel::kInfo)) {
          log(LogLevel::kInfo, "lease acked",
              Meta().str("leaseId", lease.lease_id).str("taskId", lease.task_id).str("capability", cap.spec.type)
                  .num("durationMs", now - lease.started_at));
        }
        send_terminal(now, PostPath::kAck, lease.lease_id, lease.task_id, NackKind::kRetryable, {}, {}, {},
                      outcome.output_json, now - lease.started_at, progress_on_the_wire(lease));
        return end_lease(now, handle, lease);
      }
      case HandlerResult::kThrew:
        return finish(now, handle, lease, NackKind::kRetryable,
                      outcome.reason.empty() ? std::string("handler threw") : outcome.reason, outcome.code, {});
      case HandlerResult::kFailed:
        return finish(now, handle, lease, NackKind::kTerminal,
                      outcome.reason.empty() ? std::string("handler failed") : outcome.reason, outcome.code, {});
      case HandlerResult::kInputInvalid:
        return finish(now, handle, lease, NackKind::kSchemaMismatch, "input does not match the capability's schema",
                      "", outcome.errors);
      case HandlerResult::kOutputInvalid:
        return finish(now, handle, lease, NackKind::kSchemaMismatch, "output does not match the capability's schema",
                      "", outcome.errors);
    }
  }

  void send_progress(TimeMs now, std::uint64_t handle, Lease& lease, const ProgressUpdate& update) {
    Request req;
    req.kind = RequestKind::kProgress;
    req.path = PostPath::kProgress;
    req.lease = handle;
    encode_progress(req.body, config.neuron_id, now, lease.lease_id, lease.task_id, update);
    lease.progress_in_flight = true;
    send(now, std::move(req));
  }

  // ------------------------------------------------------------------ stop --

  // Every running lease not yet ended ends now in its verdict or SHUTTING_DOWN.
  void abort_all_running(TimeMs now) {
    std::vector<std::pair<const Lease*, std::uint64_t>> running = running_leases();
    for (auto [ptr, handle] : running) {
      Lease& lease = leases.at(handle);
      if (!lease.verdict) actions.emplace_back(AbortHandler{handle, AbortReason::kShuttingDown});
      Verdict verdict = lease.verdict ? *lease.verdict
                                      : Verdict{NackKind::kRetryable, "neuron is shutting down", "SHUTTING_DOWN"};
      finish(now, handle, lease, verdict.kind, verdict.reason, verdict.code, {});
    }
  }

  void maybe_finish_stop(TimeMs now) {
    if (!stopping || stopped) return;
    for (const auto& [handle, lease] : leases) {
      if (lease.running && !lease.ended) return;  // still draining
    }
    timer(Timer::kStopDrain).reset();
    if (!timer(Timer::kStopFlush)) timer(Timer::kStopFlush) = now + config.stop_flush_ms;
    for (const auto& [id, req] : requests) {
      if (req.kind == RequestKind::kTerminal) return;  // final acks/nacks still going out
    }
    finish_stop();
  }

  void finish_stop() {
    abort_requests_where([](const Request&) { return true; });
    if (stream_live()) actions.emplace_back(CloseStream{stream_id});
    timers.fill(std::nullopt);
    leases.clear();
    lease_by_id.clear();
    for (Capability& cap : caps) {
      cap.queue.clear();
      cap.running = 0;
    }
    conn = Conn::kClosed;
    stopped = true;
    if (logs(LogLevel::kInfo)) log(LogLevel::kInfo, "neuron stopped");
    events.emplace_back(ConnectionClose{"stopped"});
    events.emplace_back(StopSettled{});
  }
};

// ==================================================================== Engine

Engine::Engine(Config config) : s_(std::make_unique<State>(std::move(config))) {}
Engine::~Engine() = default;

Status Engine::handle(CapabilitySpec spec) {
  State& s = *s_;
  if (s.started || s.stopping) {
    return fail(ErrorCode::kHandleAfterStart,
                "Neuron.handle() must be called before start(); use updateCapability() for runtime changes");
  }
  std::string why;
  if (!is_valid_capability_type(spec.type, &why)) {
    return fail(ErrorCode::kInvalidCapability, "invalid capability type \"" + spec.type + "\": " + why);
  }
  if (s.cap_by_type.count(spec.type)) {
    return fail(ErrorCode::kDuplicateCapability, "capability " + spec.type + " is already handled by this neuron");
  }
  if (spec.concurrency < 1) {
    return fail(ErrorCode::kInvalidCapability,
                "capability " + spec.type + ": concurrency must be an integer >= 1");
  }
  Capability cap;
  if (!spec.host_validates) {
    std::string error;
    if (!spec.input_schema_json.empty()) {
      cap.input_schema = CompiledSchema::compile(spec.input_schema_json, error);
      if (!cap.input_schema) {
        return fail(ErrorCode::kInvalidCapability, "capability " + spec.type + ": inputSchema: " + error);
      }
    }
    if (!spec.output_schema_json.empty()) {
      cap.output_schema = CompiledSchema::compile(spec.output_schema_json, error);
      if (!cap.output_schema) {
        return fail(ErrorCode::kInvalidCapability, "capability " + spec.type + ": outputSchema: " + error);
      }
    }
  } else {
    // Advertised only: still must be JSON, or register would be malformed.
    for (const std::string* schema : {&spec.input_schema_json, &spec.output_schema_json}) {
      if (!schema->empty() && !is_well_formed_json(*schema)) {
        return fail(ErrorCode::kInvalidCapability, "capability " + spec.type + ": schema is not valid JSON");
      }
    }
  }
  cap.concurrency = spec.concurrency;
  cap.spec = std::move(spec);
  const auto index = static_cast<std::uint32_t>(s.caps.size());
  s.cap_by_type.emplace(cap.spec.type, index);
  s.caps.push_back(std::move(cap));
  return Status::Ok();
}

Status Engine::advertise_schemas(std::uint32_t capability, std::string input_schema_json,
                                 std::string output_schema_json) {
  State& s = *s_;
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

Status Engine::start(TimeMs now) {
  State& s = *s_;
  if (s.stopping) return fail(ErrorCode::kStopped, "Neuron.start() after stop(): create a new Neuron");
  if (s.started) return Status::Ok();
  if (s.caps.empty()) {
    return fail(ErrorCode::kNoHandlers, "Neuron.start() requires at least one handler: call neuron.handle() first");
  }
  s.started = true;
  s.start_pending = true;
  if (s.logs(LogLevel::kInfo)) {
    s.log(LogLevel::kInfo, "neuron starting",
          Meta().str("neuronId", s.config.neuron_id).num("capabilities", static_cast<std::int64_t>(s.caps.size())));
  }
  s.open_stream(now, false);
  return Status::Ok();
}

void Engine::stop(TimeMs now, bool drain, TimeMs timeout_ms) {
  State& s = *s_;
  if (s.stopping) return;
  s.stopping = true;
  if (!s.started) {
    s.stopped = true;
    s.conn = Conn::kClosed;
    s.events.emplace_back(ConnectionClose{"stopped"});
    s.events.emplace_back(StopSettled{});
    return;
  }
  if (s.logs(LogLevel::kInfo)) s.log(LogLevel::kInfo, "neuron stopping", Meta().num("drain", drain).num("timeoutMs", timeout_ms));
  s.settle_start(fail(ErrorCode::kStopped, "Neuron.stop() was called before the gateway registered the neuron"));
  // Stopping never starts a connection: a pending reconnect is cancelled and a
  // stream still being opened is abandoned. An open stream stays for the drain
  // (cancel frames, heartbeats for the running leases).
  s.timer(Timer::kReconnect).reset();
  if (s.conn == Conn::kBackoff) s.conn = Conn::kDown;
  if (s.conn == Conn::kConnecting) {
    s.actions.emplace_back(CloseStream{s.stream_id});
    s.timer(Timer::kIdle).reset();
    s.conn = Conn::kDown;
  }
  for (std::uint32_t i = 0; i < s.caps.size(); ++i) {
    std::deque<std::uint64_t> queued;
    queued.swap(s.caps[i].queue);
    for (std::uint64_t handle : queued) {
      s.finish(now, handle, s.leases.at(handle), NackKind::kRetryable, "neuron is shutting down", "SHUTTING_DOWN", {});
    }
  }
  if (drain && timeout_ms > 0) {
    s.timer(Timer::kStopDrain) = now + timeout_ms;
  } else {
    s.abort_all_running(now);
  }
  s.maybe_finish_stop(now);
}

Status Engine::update_capability(TimeMs now, std::string_view type, std::uint32_t concurrency) {
  State& s = *s_;
  auto it = s.cap_by_type.find(type);
  if (it == s.cap_by_type.end()) {
    return fail(ErrorCode::kUnknownCapability,
                "updateCapability: " + std::string(type) + " is not registered; call neuron.handle() for it first");
  }
  if (concurrency < 1) {
    return fail(ErrorCode::kInvalidCapability, "updateCapability: concurrency must be an integer >= 1");
  }
  if (s.stopping) return fail(ErrorCode::kStopped, "updateCapability after stop()");
  Capability& cap = s.caps[it->second];
  cap.concurrency = concurrency;
  if (s.conn == Conn::kOpen || s.conn == Conn::kRegistered) {
    std::string body;
    encode_update_capability(body, s.config.neuron_id, now, cap.spec.type, concurrency);
    s.post(now, RequestKind::kUpdateCapability, PostPath::kUpdateCapability, std::move(body));
  }
  s.pump(now, it->second);
  return Status::Ok();
}

void Engine::reconnect_now(TimeMs now) {
  State& s = *s_;
  if (!s.started || s.stopping) return;
  const bool may = s.conn == Conn::kBackoff || (s.conn == Conn::kDown && !s.is_http());
  if (!may) return;
  s.timer(Timer::kReconnect).reset();
  s.open_stream(now, /*auth_retry=*/false);
}

void Engine::handle_stream_opened(TimeMs now, std::uint64_t stream_id, int http_status, bool is_event_stream) {
  State& s = *s_;
  if (stream_id != s.stream_id || s.conn != Conn::kConnecting) return;
  if (http_status == 200 && is_event_stream) {
    s.conn = Conn::kOpen;
    if (s.is_http()) s.timer(Timer::kIdle) = now + s.config.idle_timeout_ms;
    s.timer(Timer::kRegister) = now + s.config.request_timeout_ms;
    if (s.logs(LogLevel::kInfo)) s.log(LogLevel::kInfo, "stream open");
    s.events.emplace_back(ConnectionOpen{});
    s.send_register(now);
    return;
  }
  s.actions.emplace_back(CloseStream{stream_id});
  if (http_status == 401 && !s.stream_reauthed && s.is_http()) {
    s.open_stream(now, /*auth_retry=*/true);
    return;
  }
  const std::string reason = http_status != 200 ? "stream open failed: HTTP " + std::to_string(http_status)
                                                 : std::string("stream open failed: Content-Type is not text/event-stream");
  s.emit_error(fail(ErrorCode::kStreamFailed, reason, http_status));
  s.lose_stream(now, reason, /*reconnect=*/true);
}

void Engine::handle_stream_bytes(TimeMs now, std::uint64_t stream_id, std::string_view bytes) {
  State& s = *s_;
  if (bytes.empty() || stream_id != s.stream_id || (s.conn != Conn::kOpen && s.conn != Conn::kRegistered)) return;
  s.stats.bytes_in += bytes.size();
  if (s.is_http()) s.timer(Timer::kIdle) = now + s.config.idle_timeout_ms;
  s.feed_now = now;
  s.parser.feed(bytes, s);
}

void Engine::handle_stream_frame(TimeMs now, std::uint64_t stream_id, std::string_view json) {
  State& s = *s_;
  if (json.empty() || stream_id != s.stream_id || (s.conn != Conn::kOpen && s.conn != Conn::kRegistered)) return;
  s.stats.bytes_in += json.size();
  if (s.is_http()) s.timer(Timer::kIdle) = now + s.config.idle_timeout_ms;
  s.on_frame(now, json);
}

void Engine::handle_stream_closed(TimeMs now, std::uint64_t stream_id, std::string_view reason) {
  State& s = *s_;
  if (stream_id != s.stream_id || !s.stream_live()) return;
  const std::string why = reason.empty() ? std::string("stream ended") : std::string(reason);
  if (s.conn == Conn::kConnecting) {
    s.emit_error(fail(ErrorCode::kStreamFailed, "stream open failed: " + why));
  } else if (s.logs(LogLevel::kWarn)) {
    s.log(LogLevel::kWarn, "stream closed", Meta().str("reason", why));
  }
  if (!s.is_http() && s.conn != Conn::kConnecting) {
    s.emit_error(fail(ErrorCode::kStreamFailed, "IPC channel closed: " + why + " (IPC does not reconnect)"));
  }
  s.lose_stream(now, why, /*reconnect=*/true);
}

void Engine::handle_post_result(TimeMs now, std::uint64_t request_id, int http_status, std::string_view body) {
  State& s = *s_;
  auto it = s.requests.find(request_id);
  if (it == s.requests.end() || it->second.waiting_retry) return;  // aborted, or not sent yet
  s.on_post_outcome(now, *s.take_request(request_id), http_status, body);
  s.maybe_finish_stop(now);
}

void Engine::handle_handler_done(TimeMs now, std::uint64_t handler_id, HandlerOutcome outcome) {
  State& s = *s_;
  auto it = s.leases.find(handler_id);
  if (it == s.leases.end() || !it->second.running) return;
  Lease& lease = it->second;
  const std::uint32_t index = lease.capability;
  lease.running = false;
  --s.caps[index].running;
  if (lease.ended) {
    s.erase_lease(handler_id);
  } else if (lease.verdict) {
    Verdict verdict = std::move(*lease.verdict);
    s.finish(now, handler_id, lease, verdict.kind, verdict.reason, verdict.code, {});
  } else {
    s.complete(now, handler_id, lease, outcome);
  }
  if (!s.stopping) s.pump(now, index);
  s.maybe_finish_stop(now);
}

void Engine::handle_progress(TimeMs now, std::uint64_t handler_id, ProgressUpdate update) {
  State& s = *s_;
  auto it = s.leases.find(handler_id);
  if (it == s.leases.end() || !it->second.running || it->second.ended) return;
  Lease& lease = it->second;
  if (update.data_json) replace_lone_surrogate_escapes(update.data_json->data(), update.data_json->size());
  if (update.data_json && !is_well_formed_json(*update.data_json)) {
    // ctx.progress() never throws: keep percent and message, drop the field.
    if (s.logs(LogLevel::kWarn)) {
      s.log(LogLevel::kWarn, "progress data is not JSON; dropped", Meta().str("leaseId", lease.lease_id));
    }
    update.data_json.reset();
  }
  if (!lease.progress_in_flight) return s.send_progress(now, handler_id, lease, update);
  if (!lease.progress_pending) {
    lease.progress_pending = std::make_unique<ProgressUpdate>(std::move(update));
    return;
  }
  ProgressUpdate& pending = *lease.progress_pending;
  if (update.percent) pending.percent = update.percent;
  if (update.message) pending.message = std::move(update.message);
  if (update.data_json) pending.data_json = std::move(update.data_json);
}

void Engine::handle_timeout(TimeMs now) {
  State& s = *s_;
  auto due = [&](Timer t) {
    auto& deadline = s.timer(t);
    if (!deadline || *deadline > now) return false;
    deadline.reset();
    return true;
  };
  if (due(Timer::kIdle) && s.stream_live()) {
    const std::string reason = "no bytes for idleTimeoutMs (" + std::to_string(s.config.idle_timeout_ms) + " ms)";
    s.emit_error(fail(ErrorCode::kStreamFailed, "stream is dead: " + reason));
    s.close_stream(now, "idle timeout", /*reconnect=*/true);
  }
  if (due(Timer::kRegister) && s.conn == Conn::kOpen) {
    s.emit_error(fail(ErrorCode::kStreamFailed, "the gateway did not answer register with a registered frame within " +
                                                    std::to_string(s.config.request_timeout_ms) + " ms"));
    s.close_stream(now, "registration timed out", /*reconnect=*/true);
  }
  if (due(Timer::kReconnect) && s.conn == Conn::kBackoff) s.open_stream(now, false);
  if (due(Timer::kHeartbeat) && s.conn == Conn::kRegistered) {
    s.send_heartbeat(now);
    s.timer(Timer::kHeartbeat) = now + s.config.heartbeat_interval_ms;
  }
  while (!s.request_deadlines.empty() && s.request_deadlines.begin()->first <= now) {
    const std::uint64_t id = s.request_deadlines.begin()->second;
    Request req = *s.take_request(id);
    if (req.waiting_retry) {
      s.send(now, std::move(req));
    } else {
      s.actions.emplace_back(AbortPost{id});
      s.on_post_outcome(now, std::move(req), 0, {});
    }
  }
  if (due(Timer::kStopDrain)) s.abort_all_running(now);
  if (due(Timer::kStopFlush)) {
    if (!s.stopped) s.finish_stop();
  } else {
    s.maybe_finish_stop(now);
  }
}

std::optional<Action> Engine::poll_action() {
  if (s_->actions.empty()) return std::nullopt;
  Action a = std::move(s_->actions.front());
  s_->actions.pop_front();
  return a;
}

std::optional<Event> Engine::poll_event() {
  if (s_->events.empty()) return std::nullopt;
  Event e = std::move(s_->events.front());
  s_->events.pop_front();
  return e;
}

std::optional<TimeMs> Engine::poll_timeout() const {
  std::optional<TimeMs> earliest;
  for (const auto& t : s_->timers) {
    if (t && (!earliest || *t < *earliest)) earliest = t;
  }
  if (!s_->request_deadlines.empty()) {
    const TimeMs first = s_->request_deadlines.begin()->first;
    if (!earliest || first < *earliest) earliest = first;
  }
  return earliest;
}

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
  for (auto [lease, handle] : s_->running_leases()) ids.push_back(lease->lease_id);
  return ids;
}

}  // namespace neuron
