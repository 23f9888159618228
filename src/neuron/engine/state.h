// neuron/engine/state.h: what an Engine is made of. Private to the engine;
// a host reads engine.h.
//
// The state is split by concern; each part owns its data, and its behaviour
// lives in the file named for it:
//
//   part                     data                          behaviour
//   ----------------------   ---------------------------   ------------------------------
//   output                   actions_, events_, logging    engine/state.h (below)
//   requests                 RequestTable requests         engine/requests.cpp: POSTs,
//                            (engine/request_table.h)      401 retry, ack/nack retries,
//                                                          the bound, rule 10's hold
//   connection               conn, stream ids, backoff     engine/connection.cpp: open,
//                                                          lose, reconnect, register,
//                                                          heartbeat, idle timeout
//   frames in                parser, decoder               engine/frames_in.cpp: SSE
//                                                          events -> decoded frames
//   leases                   LeaseTable leases, caps       engine/leases.cpp: rules 2-11
//                            (engine/lease_table.h)
//   stop                     stopping, stopped, timers     engine/stop.cpp: rule 12
//
// engine/engine.cpp composes them behind the public Engine API.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "neuron/engine.h"
#include "neuron/engine/fifo.h"
#include "neuron/engine/graveyard.h"
#include "neuron/engine/lease_table.h"
#include "neuron/engine/request_table.h"
#include "neuron/frames.h"
#include "neuron/schema.h"
#include "neuron/sse_parser.h"

namespace neuron {

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
  Fifo<std::uint64_t> queue;  // lease handles
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

Status fail(ErrorCode code, std::string message, int http_status = 0);
inline bool is_2xx(int status) { return status >= 200 && status < 300; }

struct Engine::State final : SseParser::Sink {
  explicit State(Config c);

  Config config;
  Random random;
  Stats stats;

  // ---- output ----
  std::vector<Action> actions;
  std::size_t next_action = 0;
  Fifo<Event> events;
  bool frame_events = false;
  LogLevel log_level = LogLevel::kSilent;
  // Strings polled actions point into, kept until the next call (engine.h).
  Graveyard graveyard;

  bool logs(LogLevel level) const { return level >= log_level && log_level != LogLevel::kSilent; }
  void log(LogLevel level, std::string_view msg, Meta meta = {}) {
    events.emplace_back(LogEvent{level, std::string(msg), meta.take()});
  }
  void emit_error(Status error) {
    if (logs(LogLevel::kError)) log(LogLevel::kError, error.message, Meta().str("code", error_code_name(error.code)));
    events.emplace_back(ErrorEvent{std::move(error)});
  }
  // Every public call begins here: once the host has polled every action,
  // what they pointed into may go. (A host that calls in while it is still
  // polling, e.g. answering a Post at once, keeps the rest valid.)
  void begin_call() {
    if (next_action < actions.size()) return;
    actions.clear();
    next_action = 0;
    graveyard.clear();
    leases.collect();
  }
  std::optional<TimeMs>& timer(Timer t) { return timers[static_cast<std::size_t>(t)]; }
  std::array<std::optional<TimeMs>, static_cast<std::size_t>(Timer::kCount)> timers;

  // ---- requests (engine/requests.cpp) ----
  RequestTable requests;
  void post(TimeMs now, Request&& request);
  void post_terminal(TimeMs now, Lease& lease, std::uint64_t handle, Request&& request);
  void pump_requests(TimeMs now);
  template <typename Pred>
  void drop_requests_where(Pred&& pred) {
    requests.remove_if(pred, [&](RequestId id, bool in_flight, Request&& r) {
      if (in_flight) actions.emplace_back(AbortPost{id});
      release_output(r);
      graveyard.keep(std::move(r.body));  // its Post may still be unpolled
      requests.release(id);
    });
  }
  RequestId last_heartbeat = 0;  // the latest heartbeat: queued, in flight, or done
  // Heartbeats given up for the next one, the latest few (see on_post_result):
  // a gateway slower than the interval answers each after its successor left.
  std::array<RequestId, 4> abandoned_heartbeats{};
  std::uint32_t abandoned_next = 0;
  void remember_abandoned_heartbeat(RequestId id) { abandoned_heartbeats[abandoned_next++ % abandoned_heartbeats.size()] = id; }
  void on_post_result(TimeMs now, RequestId id, int status, std::string_view body);
  void on_post_released(TimeMs now, RequestId id);
  void on_post_outcome(TimeMs now, RequestId id, Request&& req, int status, std::string_view body);
  void on_register_result(TimeMs now, const Request& req, int status, std::string_view body);
  void on_heartbeat_result(int status, std::string_view body);
  void on_progress_result(TimeMs now, RequestId id, const Request& req, int status);
  void on_terminal_result(TimeMs now, Request&& req, int status, std::string_view body);
  // An ack whose output the host still keeps (every attempt's, or a first
  // attempt not yet posted) has settled or is dropped (ReleaseOutput).
  void release_output(const Request& r) {
    if (r.host_ack) actions.emplace_back(ReleaseOutput{r.lease});
  }
  void expire_requests(TimeMs now);
  TimeMs backoff_delay(std::uint32_t attempt);
  void update_request_stats();
  // With Config::max_in_flight_requests 0, sets the bound on POSTs in flight
  // from the capabilities' concurrency (kAutoRequestsMin..kAutoRequestsMax).
  void size_request_bound();
  std::uint32_t answer_bytes(RequestKind kind) const;

  // ---- connection (engine/connection.cpp) ----
  Conn conn = Conn::kIdle;
  StreamId stream_id = 0;
  StreamId next_stream = 0;
  bool stream_reauthed = false;  // this connection attempt used its 401 retry
  std::uint32_t reconnect_attempt = 0;
  bool started = false;
  bool start_pending = false;

  bool is_http() const { return config.carrier == Carrier::kHttp; }
  bool stream_live() const {
    return conn == Conn::kConnecting || conn == Conn::kOpen || conn == Conn::kRegistered;
  }
  void settle_start(Status status);
  void open_stream(TimeMs now, bool auth_retry);
  void close_stream(TimeMs now, std::string_view reason, bool reconnect);
  void lose_stream(TimeMs now, std::string_view reason, bool reconnect, bool closed_here = false);
  void schedule_reconnect(TimeMs now, std::string_view reason);
  void send_register(TimeMs now);
  void send_heartbeat(TimeMs now);
  std::string heartbeat_body(TimeMs now) const;
  void on_stream_opened(TimeMs now, StreamId id, int http_status, bool is_event_stream);
  void on_stream_closed(TimeMs now, StreamId id, std::string_view reason);
  void on_connection_timers(TimeMs now);

  // ---- frames in (engine/frames_in.cpp) ----
  SseParser parser;
  FrameDecoder decoder;
  std::vector<char> json_scratch;  // is_well_formed_json's copy, kept between checks
  TimeMs feed_now = 0;  // `now` of the bytes being parsed, for the Sink
  void on_event(const SseParser::Event& event) override;
  void on_oversized_event(std::size_t bytes) override;
  void on_frame(TimeMs now, std::string_view json);
  void on_decoded(TimeMs now, const RegisteredFrame& f);
  void on_decoded(TimeMs now, const LeaseFrame& f);
  void on_decoded(TimeMs now, const CancelFrame& f);
  void on_decoded(TimeMs now, const CapabilityRevokedFrame& f);
  void on_decoded(TimeMs now, const DisconnectFrame& f);
  void on_decoded(TimeMs now, const UnknownFrame& f);

  // ---- leases (engine/leases.cpp) ----
  std::vector<Capability> caps;
  LeaseTable leases;
  std::uint32_t running_not_ended = 0;  // handlers whose lease has not ended: stop drains these

  std::optional<std::uint32_t> capability_index(std::string_view type) const;
  // input_vouched: the host checked the input against the inputSchema (LeaseInput).
  void accept_lease(TimeMs now, const LeaseFrame& f, std::uint32_t host_ref = 0, bool input_vouched = false);
  void release_task(std::uint32_t host_ref) {
    if (host_ref) actions.emplace_back(ReleaseTask{host_ref});
  }
  // Removes a lease from the table; one that never started gives its task
  // back to the host (ReleaseTask).
  void erase_lease(std::uint64_t handle);
  void count_nack(NackKind kind);
  void nack_unstarted(TimeMs now, std::string_view lease_id, std::string_view task_id, NackKind kind,
                      std::string_view reason, std::string_view code,
                      const std::vector<ValidationError>& errors = {});
  void pump(TimeMs now, std::uint32_t capability);
  void unqueue(std::uint64_t handle, std::uint32_t capability);
  void handler_done(TimeMs now, std::uint64_t handle, HandlerOutcome& outcome);
  // Clears outcome.host_builds_ack when the ack takes the output the host kept.
  void complete(TimeMs now, std::uint64_t handle, Lease& lease, HandlerOutcome& outcome);
  void finish(TimeMs now, std::uint64_t handle, Lease& lease, NackKind kind, std::string_view reason,
              std::string_view code, const std::vector<ValidationError>& errors);
  void end_lease(TimeMs now, std::uint64_t handle, Lease& lease);
  void abort_running(std::uint64_t handle, Lease& lease, AbortReason reason, Verdict verdict);
  void cancel_lease(TimeMs now, std::string_view lease_id, std::string_view reason);
  void revoke_capability(TimeMs now, std::string_view type, std::string_view reason);
  void lose_lease(std::string_view lease_id);
  void drop_queued_leases();
  void progress(TimeMs now, std::uint64_t handle, ProgressUpdate& update);
  void send_progress(TimeMs now, std::uint64_t handle, Lease& lease, const ProgressUpdate& update);
  Status compile_schemas();

  // ---- stop (engine/stop.cpp) ----
  bool stopping = false;
  bool stopped = false;
  void begin_stop(TimeMs now, bool drain, TimeMs timeout_ms);
  void abort_all_running(TimeMs now);
  void maybe_finish_stop(TimeMs now);
  void finish_stop();
};

}  // namespace neuron
