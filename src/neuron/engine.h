// neuron/engine.h: the neuron engine, the whole protocol brain of the SDK.
//
// WHAT IT IS
//   `Engine` is a deterministic state machine that speaks the neuron side of the
//   BigBrain gateway protocol (shared/PROTOCOL.md). It is sans-IO: it never reads
//   a clock, opens a socket, starts a thread or touches global state. A host (the
//   wasm binding in emscripten/, or the test harness in tests/) does all of that
//   and talks to the engine in three kinds of calls:
//
//     inputs    handle_*(now, ...)   something happened: bytes arrived, a POST
//                                    answered, a handler finished, time passed
//     commands  handle/start/stop/update_capability: what the user asked for
//     outputs   poll_action()        something the host must do now
//               poll_event()         something the host should tell the user
//               poll_timeout()       when to call handle_timeout() next
//
//   Every input and command takes `now`: milliseconds since the Unix epoch from
//   a clock that never goes backwards (in JS: performance.timeOrigin +
//   performance.now()). Outgoing `sentAt` / `startedAt` stamps are made from it.
//
// THE ORDER A HOST CALLS IT IN
//   1. Engine engine{config};                 (check it first: validate_config)
//   2. engine.handle(spec) for each capability; then engine.start(now).
//   3. Loop, after every input or command:
//        while (auto e = engine.poll_event())  deliver(*e);
//        while (auto a = engine.poll_action()) perform(*a);
//        arm ONE timer for engine.poll_timeout() (none if it is empty);
//      Events first: then listeners hear connection:open before the register
//      POST goes out, as the README promises.
//      and feed back what happens: stream opened / bytes / closed, POST results,
//      handler completions and progress, timer expiry.
//   4. engine.stop(now, drain, timeout_ms); keep looping until StopSettled is
//      polled. After it the engine wants nothing: no stream, no request, no timer.
//
// WHAT THE HOST MUST PROMISE
//   - Perform actions in the order they are polled.
//   - Report each OpenStream exactly once as handle_stream_opened or
//     handle_stream_closed (failure to open), then bytes, then one
//     handle_stream_closed, unless the engine sent CloseStream first (then it
//     may stay silent: late reports for a closed stream id are ignored).
//   - Report each Post exactly once with handle_post_result, unless the engine
//     sent AbortPost for it (late reports are ignored, except a heartbeat's:
//     the leases a late heartbeat answer names as lost are still lost). With
//     Config::host_releases_posts, also call handle_post_released once the
//     connection that carried an answered POST can carry the next one.
//   - Report each StartHandler exactly once with handle_handler_done (late or
//     duplicate reports are ignored, so a handler that ignored its AbortHandler
//     can report whenever it likes).
//   - Call auth itself for every request it performs: tokens never enter the
//     engine, so no token can leak into a log, event or error.
//
// Everything polled is a small value. Strings in events are owned copies;
// the string_views in actions (StartHandler, Post) point into the engine and
// are valid until the next call into it (any handle_* or command).
//
// READING ORDER (docs/ARCHITECTURE.md follows one lease through them)
//   neuron/vocabulary.h        time, status and error codes, validation errors:
//                              the words every layer shares (no layer below
//                              the engine includes this header)
//   neuron/engine.h            this contract: Config, the inputs, Action, Event
//   neuron/engine/state.h      what the engine is made of, part by part, and
//                              which file holds each part's behaviour:
//     engine/connection.cpp      stream life cycle, register, heartbeat, and who
//                                decides when to reconnect (schedule_reconnect)
//     engine/frames_in.cpp       SSE events and frames in, dispatched by type
//     engine/leases.cpp          rules 2-11, 13: dedupe, where a queued lease
//                                waits (its capability's FIFO), pump, complete
//     engine/lease_table.h       the lease records, the running list, rule 2's
//                                memory of finished ids
//     engine/requests.cpp        POSTs: 401 retry, the retry rule for an ack or
//                                nack (on_terminal_result), the bound on requests
//     engine/request_table.h     queued / held / in-flight requests, deadlines
//     engine/stop.cpp            stop with and without drain, its deadline
//   neuron/sse_parser.h, neuron/frames.h, neuron/schema.h: the layers below
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "neuron/vocabulary.h"

namespace neuron {

// ------------------------------------------------------------ configuration --

enum class Carrier : std::uint8_t {
  kHttp,  // SSE + POST: auth retry on 401, reconnect with backoff, idle timeout
  kIpc,   // Electron bridge / custom transport: none of those three. A loss the
          // transport reports is its own to recover from (it calls back when
          // open again); a stream the engine closes itself (a `disconnect`
          // frame, register failing or timing out) it reopens after a backoff.
};

// The bound on POSTs in flight when Config::max_in_flight_requests is 0: the
// capabilities' concurrency added up (so the verdicts of leases that run at
// once never wait for each other), at least this many and at most that.
inline constexpr std::uint32_t kAutoRequestsMin = 16;
inline constexpr std::uint32_t kAutoRequestsMax = 128;

struct Config {
  std::string neuron_id;                     // required, non-empty
  Carrier carrier = Carrier::kHttp;
  std::string sdk_name = "@holokai/neuron-sdk";
  std::string sdk_version = "0.1.1";

  TimeMs heartbeat_interval_ms = 10'000;
  TimeMs initial_reconnect_delay_ms = 500;
  TimeMs max_reconnect_delay_ms = 30'000;
  double reconnect_jitter = 0.2;             // delay scaled by U[1-jitter, 1]
  std::uint64_t random_seed = 0;             // the only source of randomness
  TimeMs idle_timeout_ms = 45'000;           // HTTP: no bytes for this long = dead
  std::size_t max_frame_bytes = 16u << 20;   // bigger SSE events are dropped
  TimeMs request_timeout_ms = 30'000;        // a POST unanswered by then = network error;
                                             // also the time `registered` may take
  TimeMs stop_flush_ms = 5'000;              // stop(): time left for final acks/nacks
  int max_terminal_attempts = 5;             // ack/nack tries on 429/5xx/network
  std::uint32_t max_in_flight_requests = 0;  // POSTs in flight at once (the stream is
                                             // separate); the rest wait in order.
                                             // 0: the capabilities' concurrency added
                                             // up, kAutoRequestsMin..kAutoRequestsMax
  TimeMs progress_grace_ms = 1'000;          // a verdict waits at most this long for
                                             // its lease's progress POST (rule 10),
                                             // which is then aborted
  bool host_releases_posts = false;          // an answered POST keeps its place in
                                             // the bound until handle_post_released
                                             // (the host's connection is free again)
  std::size_t recent_lease_capacity = 10'000;  // rule 2 memory, by count (up to 2^24)...
  TimeMs recent_lease_ttl_ms = 5 * 60'000;     // ...and by age (up to 24 days)
};

// Checks every field; the engine assumes a valid config.
Status validate_config(const Config& config);

// ------------------------------------------------------------ capabilities --

// What `neuron.handle(reg, fn)` registers. The index of a capability is the
// number of capabilities registered before it (0, 1, 2, ...).
struct CapabilitySpec {
  std::string type;                // rule 1 grammar
  std::string on_behalf_of;        // empty: scope "any"
  std::uint32_t concurrency = 1;   // >= 1
  std::string description;         // optional, sent in register
  std::string input_schema_json;   // optional JSON Schema, checked by the engine
  std::string output_schema_json;  // optional JSON Schema, checked by the engine
  // The host validates input/output itself (zod) and reports failures as
  // HandlerResult::kInputInvalid / kOutputInvalid. The schemas above, if
  // any, are then only advertised in register, not compiled.
  bool host_validates = false;
};

// ------------------------------------------------------------------ actions --

// HTTP: GET {gatewayUrl}{path} with the auth header, read it as a byte stream.
// IPC: bridge.attach + subscribe. Report back with handle_stream_*.
struct OpenStream {
  StreamId stream_id;
  std::string path;  // "/neuron/events?neuronId=<urlencoded id>"
};

// Abort / unsubscribe the stream (IPC: also bridge.detach). Nothing more
// about this stream id is expected.
struct CloseStream {
  StreamId stream_id;
};

// POST {gatewayUrl}{path} with `body` (a complete JSON frame). Report back with
// handle_post_result(request_id, ...). `body` is valid until the next call
// into the engine: copy it (or send it) before that.
//
// The engine decides when each POST goes out: at most the request bound at
// once (Config::max_in_flight_requests, by default the capabilities'
// concurrency added up; Stats::request_bound), register and update-capability
// first, then the heartbeat, then acks, nacks and progress in order; a
// lease's verdict never goes out while its progress POST is in flight
// (rule 10). So the host sends every Post as soon as it is polled.
//
// When the host said it keeps a handler's output (HandlerOutcome::
// host_builds_ack), that lease's first ack comes with `host_ack` and an empty
// body: the host builds { type: 'ack', neuronId, sentAt, leaseId, taskId,
// output, durationMs } itself (a transport that takes objects then needs no
// JSON at all), and a ReleaseOutput follows that Post. A retry carries the
// frame as usual. When the host keeps the output and sent no JSON of it
// (HandlerOutcome::host_keeps_output), every attempt comes with `host_ack`,
// and ReleaseOutput says when the ack has settled.
struct HostAck {
  HandlerId handler;  // whose kept output the ack is built around
  TimeMs sent_at;
  TimeMs duration_ms;
  // With HandlerOutcome::host_writes_json: the host writes the frame as
  // JSON text, with the lease's ids as the engine read them (views valid
  // until every action polled before the next call has been polled, as
  // Post::body).
  bool json = false;
  std::string_view lease_id;
  std::string_view task_id;
};
struct Post {
  RequestId request_id;
  PostPath path;
  std::string_view body;
  // How much of the answer's body the engine reads (the heartbeat's
  // lostLeases, an error message): report at most this many bytes, and the
  // host may stop reading there. A 2xx answer's body is read only when
  // `reads_success_body` (the heartbeat); other 2xx are decided on the status.
  std::uint32_t answer_bytes;
  bool reads_success_body;
  std::optional<HostAck> host_ack;
};

// Abort the request (it timed out, or the neuron stopped). No result expected.
struct AbortPost {
  RequestId request_id;
};

// Run the capability's handler. `task_json` is the lease's `task` object as
// the gateway sent it, and `input_json` the text of its `input` (the first
// one: the input a schema checked), the handler's input: a host that parses
// only that needs the rest of the task only if the handler asks for it.
// Report the result with handle_handler_done(handler_id, ...). The views are
// valid until the next call into the engine.
struct StartHandler {
  HandlerId handler_id;
  std::uint32_t capability;  // index, see CapabilitySpec
  std::string_view lease_id;
  std::string_view task_json;   // empty for a lease given by handle_lease()
  std::uint32_t host_ref;       // handle_lease()'s host_ref, else 0
  std::string_view input_json;  // inside task_json; empty when it has no input
};

// A lease given by handle_lease() that will never start (refused, a
// duplicate, cancelled or dropped while queued): the host may drop the task
// it kept under `host_ref`. Every such lease ends in exactly one StartHandler
// or one ReleaseTask.
struct ReleaseTask {
  std::uint32_t host_ref;
};

enum class AbortReason : std::uint8_t {
  kCancelled,          // gateway sent cancel
  kCapabilityRevoked,  // gateway sent capability-revoked
  kShuttingDown,       // stop() deadline (or stop without drain)
  kLeaseLost,          // heartbeat answer listed it in lostLeases
};
std::string_view abort_reason_string(AbortReason reason);  // "lease lost", ...

// Fire the handler's ctx.signal. The engine has already decided the lease's
// outcome; whatever the handler reports later only frees its slot.
struct AbortHandler {
  HandlerId handler_id;
  AbortReason reason;
};

// The output the host kept for a handler (HandlerOutcome::host_builds_ack)
// will not be asked for again, so the host drops it: exactly once for every
// output it kept, and the only way it hears so. When: an output kept for
// every attempt (host_keeps_output), once the ack has settled (answered, or
// given up); one kept for the first attempt only, right after the Post of
// that first ack; either, when the lease ended without it (a cancel or a
// revocation came first, the lease was lost, the output failed a check, the
// ack was dropped by stop(): any frame the engine sends for it is its own).
struct ReleaseOutput {
  HandlerId handler_id;
};

using Action = std::variant<OpenStream, CloseStream, Post, AbortPost,
                            StartHandler, AbortHandler, ReleaseTask, ReleaseOutput>;

// ------------------------------------------------------------------- events --

enum class LogLevel : std::uint8_t { kDebug, kInfo, kWarn, kError, kSilent };

struct ConnectionOpen {};
struct ConnectionRegistered {
  std::string session_id;
  std::uint32_t capabilities;  // number of effective capabilities
};
struct ConnectionClose {
  std::string reason;
};
struct ConnectionReconnecting {
  std::uint32_t attempt;  // 1-based
  TimeMs delay_ms;
  std::string reason;
};
struct ErrorEvent {
  Status error;
};
// Every decoded inbound frame, as the JSON text that arrived. Only produced
// while set_frame_events(true): off, it costs nothing.
struct FrameEvent {
  std::string json;
  std::uint32_t host_ref = 0;  // a lease given by handle_lease(): the host has the frame
};
// A pino-shaped log record: logger[level](meta, msg). `meta_json` is a JSON
// object (leaseId, taskId, capability, status... where they apply). Only
// produced at or above set_log_level().
struct LogEvent {
  LogLevel level;
  std::string msg;
  std::string meta_json;
};
// start()'s promise: resolve on the first `registered` (ok), or reject.
struct StartSettled {
  Status status;
};
// stop()'s promise resolves: the engine holds nothing any more. It is the
// last thing the engine says: a host handles it after the actions polled
// with it (the final CloseStream, AbortPost and AbortHandler).
struct StopSettled {};

using Event = std::variant<ConnectionOpen, ConnectionRegistered, ConnectionClose,
                           ConnectionReconnecting, ErrorEvent, FrameEvent,
                           LogEvent, StartSettled, StopSettled>;

// ------------------------------------------------------------------- inputs --

// How a handler ended, as handle_handler_done reports it.
enum class HandlerResult : std::uint8_t {
  kReturned,       // output_json is the return value (JSON.stringify of it)
  kThrew,          // reason is the error's message
  kFailed,         // ctx.fail(reason, { code })
  kInputInvalid,   // host-side validation (zod) rejected the input: errors
  kOutputInvalid,  // host-side validation (zod) rejected the output: errors
};

struct HandlerOutcome {
  HandlerResult result = HandlerResult::kReturned;
  std::string output_json = "null";
  // kReturned: the host keeps the output and builds the first ack itself
  // (Post::host_ack), until ReleaseOutput. output_json is still needed: a
  // retry is encoded from it, and an output schema checks it.
  bool host_builds_ack = false;
  // kReturned: the host vouches that output_json is well-formed JSON (it
  // comes from JSON.stringify), so it is not parsed unless a schema checks
  // it; only its depth is checked.
  bool output_is_json = false;
  // kReturned, with host_builds_ack: the host keeps the output and sent no
  // JSON of it (output_json is ignored): it vouches that the value is plain
  // JSON (finite numbers, no lone surrogate, nesting within kMaxJsonDepth)
  // and, where the capability has an outputSchema, certainly valid against
  // it (as input_vouched); it builds every attempt of the ack itself, until
  // ReleaseOutput.
  bool host_keeps_output = false;
  // kReturned, with host_keeps_output: the host kept the output's JSON text
  // (it vouches for it as above) and sends JSON, not objects: it writes
  // every attempt's frame as JSON itself (HostAck::json).
  bool host_writes_json = false;
  // kReturned: the host checked the value whose JSON output_json is against
  // the capability's outputSchema (certainly valid, as input_vouched): the
  // engine does not parse it.
  bool output_vouched = false;
  std::string reason;
  std::string code;
  std::vector<ValidationError> errors;
};

// ctx.progress(update): each field optional; newer fields win when merged.
struct ProgressUpdate {
  std::optional<double> percent;        // not finite: left out
  std::optional<std::string> message;
  std::optional<std::string> data_json;  // JSON.stringify(data); not JSON: left out
};

// ------------------------------------------------------------------- stats --

struct CapabilityStats {
  std::uint32_t queued = 0;
  std::uint32_t running = 0;
  std::uint32_t concurrency = 0;
};

struct Stats {
  std::uint64_t leases_received = 0;   // lease frames decoded
  std::uint64_t leases_duplicate = 0;  // ignored by rule 2
  std::uint64_t leases_acked = 0;
  std::uint64_t nacks_retryable = 0;
  std::uint64_t nacks_terminal = 0;
  std::uint64_t nacks_schema_mismatch = 0;
  std::uint64_t nacks_cancelled = 0;
  std::uint64_t leases_dropped = 0;    // queued leases discarded on stream loss
  std::uint64_t leases_lost = 0;       // lostLeases from heartbeat answers
  std::uint64_t reconnects = 0;        // reconnect attempts scheduled
  std::uint64_t bytes_in = 0;          // stream bytes received
  std::uint64_t frames_in = 0;         // frames decoded
  std::uint64_t frames_out = 0;        // POSTs issued (retries included)
  std::uint64_t frame_errors = 0;      // events dropped as too large / malformed
  // Gauges: what is true now.
  std::uint32_t requests_in_flight = 0;  // POSTs sent and not yet answered
  std::uint32_t requests_queued = 0;     // POSTs waiting: for a free slot (the
                                         // bound), their retry time, or rule 10
  std::uint32_t request_bound = 0;       // POSTs in flight at most, now
};

// ------------------------------------------------------------------ engine --

class Engine {
 public:
  explicit Engine(Config config);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // ---- commands (the README API) ----

  // neuron.handle(): register a capability. Fails (changing nothing) on a bad
  // type (rule 1), duplicate type, concurrency < 1, a schema that is not
  // JSON, or after start(). Schemas are compiled by start().
  Status handle(CapabilitySpec spec);

  // True when a capability brings a raw JSON Schema the engine checks: the
  // host must make the validator (schema_backend.h) available before start().
  bool needs_schema_validator() const;

  // For a host_validates capability (zod): set the JSON Schemas advertised in
  // register, once the host has produced them (it may do so asynchronously,
  // up to start()). They must be JSON; they are not compiled.
  Status advertise_schemas(std::uint32_t capability, std::string input_schema_json,
                           std::string output_schema_json);

  // neuron.start(): compile the capabilities' JSON Schemas, open the stream,
  // register, then heartbeat. Fails with no capability, a schema that does
  // not compile (kInvalidCapability, naming it), or after stop(); a second
  // call while started is a no-op. Its promise settles with StartSettled.
  Status start(TimeMs now);

  // neuron.stop({ drain, timeoutMs }): rule 12. Settles with StopSettled no
  // later than now + (drain ? timeout_ms : 0) + config.stop_flush_ms. Starts
  // no connection (a pending reconnect or open is dropped); an open stream
  // stays through the drain. A second call changes nothing (the host returns
  // the first promise).
  void stop(TimeMs now, bool drain, TimeMs timeout_ms);

  // Open a new stream now. HTTP: skips the rest of a reconnect backoff (a
  // "reconnect now" button). IPC / custom transports, whose carrier reconnects
  // by itself: call it when the carrier is back after a close. Does nothing
  // unless started, not stopping and without a stream (nor one opening); after
  // a 403 or a `disconnect` with reconnect false, HTTP stays down.
  void reconnect_now(TimeMs now);

  // neuron.updateCapability(): rule 13.
  Status update_capability(TimeMs now, std::string_view type,
                           std::uint32_t concurrency);

  // ---- inputs ----

  // The stream answered. HTTP: `http_status` and whether Content-Type was
  // text/event-stream. IPC: report 200 / true when attach + subscribe worked.
  void handle_stream_opened(TimeMs now, StreamId stream_id,
                            int http_status, bool is_event_stream);
  // Bytes of the SSE stream, in order, any chunking.
  void handle_stream_bytes(TimeMs now, StreamId stream_id,
                           std::string_view bytes);
  // One already-separated frame (IPC delivers parsed objects: pass their JSON).
  void handle_stream_frame(TimeMs now, StreamId stream_id,
                           std::string_view json);
  // A lease frame the host decoded itself (a transport that delivers
  // objects): the same rules as a lease in handle_stream_frame(), without
  // the JSON. The host keeps the task under `host_ref` (> 0) until the lease
  // starts (StartHandler) or is let go (ReleaseTask). `input_json` is needed
  // only for a capability whose input is checked (checks_input()).
  struct LeaseInput {
    std::string_view lease_id;  // empty when missing or not a string
    std::string_view task_id;
    std::string_view type;      // task.type
    bool has_task = true;       // `task` is an object
    std::optional<std::string_view> input_json;
    std::uint32_t host_ref = 0;
    // The host checked task.input against the capability's inputSchema with
    // a check as conservative as the engine's fast path (web/src/schema-
    // fast.js): it is certainly valid, and input_json may be absent.
    bool input_vouched = false;
  };
  void handle_lease(TimeMs now, StreamId stream_id, const LeaseInput& lease);
  // True when the capability's inputSchema is checked by the engine: then
  // handle_lease() needs the input's JSON.
  bool checks_input(std::uint32_t capability) const;
  // True when the capability's outputSchema is checked by the engine: then a
  // handler's output comes as JSON unless the host vouches for it
  // (HandlerOutcome::host_keeps_output).
  bool checks_output(std::uint32_t capability) const;
  // The stream ended (EOF, network error) or could not be opened.
  void handle_stream_closed(TimeMs now, StreamId stream_id,
                            std::string_view reason);

  // A POST answered. `http_status` 0 means a network error (or a rejected IPC
  // invoke; IPC rejections carrying { status: 403 } report 403).
  void handle_post_result(TimeMs now, RequestId request_id,
                          int http_status, std::string_view body);
  // Config::host_releases_posts: the POST answered by handle_post_result no
  // longer holds a connection, so its place in the bound is free. Node's
  // fetch gives a connection back to its pool a few turns after the answer
  // ended; a POST sent before that opens one more connection.
  void handle_post_released(TimeMs now, RequestId request_id);

  void handle_handler_done(TimeMs now, HandlerId handler_id,
                           HandlerOutcome outcome);
  // ctx.progress(): never fails; ignored once the lease has ended.
  void handle_progress(TimeMs now, HandlerId handler_id,
                       ProgressUpdate update);

  // The deadline from poll_timeout() has passed.
  void handle_timeout(TimeMs now);

  // ---- outputs ----

  [[nodiscard]] std::optional<Action> poll_action();
  [[nodiscard]] std::optional<Event> poll_event();
  // The earliest deadline at which handle_timeout must be called; empty when
  // nothing is timed. Const: asking changes nothing.
  [[nodiscard]] std::optional<TimeMs> poll_timeout() const;

  // ---- observation ----

  void set_frame_events(bool enabled);  // FrameEvent on/off (default off)
  void set_log_level(LogLevel level);   // LogEvent threshold (default kSilent)

  const Stats& stats() const;
  std::uint32_t capability_count() const;
  CapabilityStats capability_stats(std::uint32_t capability) const;
  bool is_connected() const;   // stream open (registered or not)
  bool is_registered() const;  // `registered` received on the current stream
  bool is_stopped() const;     // StopSettled has been emitted

  // Ids of the running leases, in start order (what the next heartbeat lists).
  std::vector<std::string> running_lease_ids() const;

 private:
  struct State;
  std::unique_ptr<State> s_;
};

}  // namespace neuron
