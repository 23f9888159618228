// emscripten/bindings.cpp: the wasm boundary, C++ side.
//
// One embind class, `Core`, owns a neuron::Engine. Commands (handle, start,
// stop, ...) are embind methods; the hot path is three raw C entry points
// that take numbers only (library_neuron.js calls them):
//
//   neuron_inbox(core, bytes)        -> pointer to the inbox, at least `bytes`
//                                       long (it keeps what JS wrote so far)
//   neuron_flush(core, now, used)    -> the engine takes every record JS wrote
//                                       into the inbox, in order; returns the tape
//   neuron_timeout(core, now)        -> handle_timeout; returns the tape
//
// Every call answers with a TAPE: what the engine wants done, in order.
// The tape's header is six u32: [records ptr, record count (f64s), texts
// ptr, texts length, inbox ptr, inbox size] (the inbox may have moved or
// been given back). Records are f64 runs: an op code, then its
// fields; strings are indices into the texts, which JS decodes once
// (TextDecoder) and splits at US (0x1f).
//
//   op  record                     fields after the op
//    1  deadline                   ms since the epoch, or -1 for none (last,
//                                  and only when it changed or after a timeout
//                                  or a command)
//    2  start handler              handlerId, capability, leaseId$, task$, hostRef,
//                                  input$ (the task's input, also inside task$;
//                                  -1 when the task has none)
//                                  (-1 for each text of a lease the host gave
//                                  as fields: it kept them)
//    3  post                       requestId, path (PostPath), body$, answerBytes,
//                                  readsSuccessBody
//    4  post a host-built ack      requestId, leaseHandler, sentAt, durationMs,
//                                  answerBytes
//    5  abort post                 requestId
//    6  abort handler              handlerId, reason (AbortReason)
//    7  open stream                streamId, path$
//    8  close stream               streamId
//    9  release task               hostRef
//   10  release output             handlerId
//   11  post a host-written ack    requestId, leaseHandler, sentAt, durationMs,
//                                  answerBytes, leaseId#, taskId# (#: a text
//                                  index, the text a JSON string literal)
//   20  connection:open            -
//   21  registered                 sessionId$, capabilities
//   22  connection:close           reason$
//   23  reconnecting               attempt, delayMs, reason$
//   24  error                      code$, message$, httpStatus
//   25  frame                      json$ (-1 for a lease given as fields), hostRef
//   26  log                        level, msg$, meta$
//   27  start settled              code$ ("" = ok), message$, httpStatus
//   28  stop settled               -
//   30  command failed             code$, message$ (first, commands only)
//   ($: a text index)
//
// The INBOX is how JS hands over what happened, many events per call: f64
// runs again, each an op and its fields, with the bytes of a string field
// right after (padded to 8):
//
//   op  record                     fields, then bytes
//    1  stream bytes               streamId, n | n bytes
//    2  stream frame (JSON)        streamId, n | n bytes
//    3  lease given as fields      streamId, hostRef, flags (1 has task, 2 has
//                                  input, 4 input vouched), n leaseId, n taskId, n type, n input
//                                  | the four strings, one after the other
//    4  POST answered              requestId, status, n | n bytes of body
//    5  handler returned           handlerId, flags, n | n bytes of output JSON
//                                  (flags: 1 the host builds the first ack,
//                                  2 the host keeps the output and builds
//                                  every attempt (n is 0), 4 the host checked
//                                  the output against its schema, 8 with 2:
//                                  the host kept the output's JSON and writes
//                                  the ack's JSON itself (op 11))
//    6  POST released              requestId (its connection is free again)
//
// Texts other than JSON have US and RS replaced by '?'; JSON texts hold no
// raw control character.
#include <emscripten/bind.h>
#include <emscripten/emscripten.h>
#include <malloc.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <rapidjson/document.h>

#include "neuron/engine.h"
#include "neuron/frames.h"
#include "neuron/sse_parser.h"

extern "C" void neuron_boundary_link();  // library_neuron.js

namespace {

using neuron::TimeMs;

constexpr char kUs = '\x1f';
TimeMs to_ms(double now) { return static_cast<TimeMs>(std::floor(now)); }

// A buffer over kKeepBytes is given back once it has been at least 4 times
// too big for kShrinkAfter uses in a row: one huge output must not pin
// megabytes for the life of the neuron, and a run of large ones must not
// reallocate every time.
constexpr std::size_t kKeepBytes = std::size_t{1} << 20;
constexpr int kShrinkAfter = 4;

class Oversized {
 public:
  bool check(std::size_t capacity, std::size_t used) {
    if (capacity <= kKeepBytes || used > capacity / 4) {
      uses_ = 0;
      return false;
    }
    if (++uses_ < kShrinkAfter) return false;
    uses_ = 0;
    return true;
  }

 private:
  int uses_ = 0;
};

enum Op : int {
  kDeadline = 1, kStartHandler, kPost, kPostHostAck, kAbortPost, kAbortHandler, kOpenStream, kCloseStream,
  kReleaseTask, kReleaseOutput, kPostHostJson,
  kEvOpen = 20, kEvRegistered, kEvClose, kEvReconnecting, kEvError, kEvFrame, kEvLog, kEvStartSettled,
  kEvStopSettled,
  kCommandFailed = 30,
};

enum InboxOp : int { kInBytes = 1, kInFrame, kInLease, kInPostResult, kInReturned, kInReleased };

class Tape {
 public:
  void clear() {
    if (records_.size() > kKeepBytes / 8 && records_oversized_.check(records_.size() * 8, count_ * 8)) {
      std::vector<double>().swap(records_);
    }
    if (texts_.size() > kKeepBytes && texts_oversized_.check(texts_.size(), texts_size_)) {
      std::vector<char>().swap(texts_);
    }
    count_ = 0;
    texts_size_ = 0;
    text_count_ = 0;
  }
  void op(Op op) { put(op); }
  void num(double v) { put(v); }
  // The texts are written in place, as the records are stored: a
  // std::string's append and push_back are calls into libc++ (built for
  // size, nothing inlined), several per text.
  // A JSON text: no raw control character in it.
  void json(std::string_view s) {
    put(text_count_++);
    char* out = room(s.size() + 1);
    std::memcpy(out, s.data(), s.size());
    out[s.size()] = kUs;
    texts_size_ += s.size() + 1;
  }
  // `s` as a JSON string literal (control characters escaped).
  void literal(std::string_view s) {
    put(text_count_++);
    const std::size_t n = neuron::json_string_size(s);
    char* out = room(n + 1);
    neuron::write_json_string(out, s);
    out[n] = kUs;
    texts_size_ += n + 1;
  }
  // Free text: US and RS become '?'.
  void text(std::string_view s) {
    put(text_count_++);
    char* out = room(s.size() + 1);
    for (char ch : s) *out++ = (ch == '\x1f' || ch == '\x1e') ? '?' : ch;
    *out = kUs;
    texts_size_ += s.size() + 1;
  }
  // `inbox`: where the inbox is now and how big (it may have been given back).
  std::uintptr_t header(const std::vector<char>& inbox) {
    header_[0] = static_cast<std::uint32_t>(reinterpret_cast<std::uintptr_t>(records_.data()));
    header_[1] = static_cast<std::uint32_t>(count_);
    header_[2] = static_cast<std::uint32_t>(reinterpret_cast<std::uintptr_t>(texts_.data()));
    header_[3] = static_cast<std::uint32_t>(texts_size_);
    header_[4] = static_cast<std::uint32_t>(reinterpret_cast<std::uintptr_t>(inbox.data()));
    header_[5] = static_cast<std::uint32_t>(inbox.size());
    return reinterpret_cast<std::uintptr_t>(header_);
  }

 private:
  // Both vectors are kept at their full size, count_ records and
  // texts_size_ bytes of text in use: a record is a store, a text a copy,
  // not a push_back or append call.
  void put(double v) {
    if (count_ == records_.size()) grow();
    records_[count_++] = v;
  }
  NEURON_COLD void grow() { records_.resize(std::max<std::size_t>(64, records_.size() * 2)); }
  // Where the next `n` bytes of text go.
  char* room(std::size_t n) {
    if (texts_.size() - texts_size_ < n) grow_texts(n);
    return texts_.data() + texts_size_;
  }
  NEURON_COLD void grow_texts(std::size_t n) {
    texts_.resize(std::max({std::size_t{4096}, texts_.size() * 2, texts_size_ + n}));
  }

  std::vector<double> records_;
  std::size_t count_ = 0;
  std::vector<char> texts_;
  std::size_t texts_size_ = 0;
  double text_count_ = 0;
  std::uint32_t header_[6] = {};
  Oversized records_oversized_;
  Oversized texts_oversized_;
};

struct EventWriter {
  Tape& t;
  void operator()(const neuron::ConnectionOpen&) { t.op(kEvOpen); }
  void operator()(const neuron::ConnectionRegistered& e) {
    t.op(kEvRegistered);
    t.text(e.session_id);
    t.num(e.capabilities);
  }
  void operator()(const neuron::ConnectionClose& e) {
    t.op(kEvClose);
    t.text(e.reason);
  }
  void operator()(const neuron::ConnectionReconnecting& e) {
    t.op(kEvReconnecting);
    t.num(e.attempt);
    t.num(static_cast<double>(e.delay_ms));
    t.text(e.reason);
  }
  void operator()(const neuron::ErrorEvent& e) {
    t.op(kEvError);
    t.text(neuron::error_code_name(e.error.code));
    t.text(e.error.message);
    t.num(e.error.http_status);
  }
  void operator()(const neuron::FrameEvent& e) {
    t.op(kEvFrame);
    if (e.host_ref) {
      t.num(-1);
    } else {
      t.json(e.json);
    }
    t.num(e.host_ref);
  }
  void operator()(const neuron::LogEvent& e) {
    t.op(kEvLog);
    t.num(static_cast<double>(e.level));
    t.text(e.msg);
    t.json(e.meta_json);
  }
  void operator()(const neuron::StartSettled& e) {
    t.op(kEvStartSettled);
    t.text(e.status.ok() ? std::string_view{} : neuron::error_code_name(e.status.code));
    t.text(e.status.message);
    t.num(e.status.http_status);
  }
  void operator()(const neuron::StopSettled&) { t.op(kEvStopSettled); }
};

struct ActionWriter {
  Tape& t;
  void operator()(const neuron::OpenStream& a) {
    t.op(kOpenStream);
    t.num(static_cast<double>(a.stream_id));
    t.text(a.path);
  }
  void operator()(const neuron::CloseStream& a) {
    t.op(kCloseStream);
    t.num(static_cast<double>(a.stream_id));
  }
  void operator()(const neuron::Post& a) {
    if (a.host_ack) {
      t.op(a.host_ack->json ? kPostHostJson : kPostHostAck);
      t.num(static_cast<double>(a.request_id));
      t.num(static_cast<double>(a.host_ack->handler));
      t.num(static_cast<double>(a.host_ack->sent_at));
      t.num(static_cast<double>(a.host_ack->duration_ms));
      t.num(a.answer_bytes);
      if (a.host_ack->json) {
        t.literal(a.host_ack->lease_id);
        t.literal(a.host_ack->task_id);
      }
      return;
    }
    t.op(kPost);
    t.num(static_cast<double>(a.request_id));
    t.num(static_cast<double>(a.path));
    t.json(a.body);
    t.num(a.answer_bytes);
    t.num(a.reads_success_body ? 1 : 0);
  }
  void operator()(const neuron::AbortPost& a) {
    t.op(kAbortPost);
    t.num(static_cast<double>(a.request_id));
  }
  void operator()(const neuron::StartHandler& a) {
    t.op(kStartHandler);
    t.num(static_cast<double>(a.handler_id));
    t.num(a.capability);
    if (a.host_ref) {  // the host has the lease's id and task: no text
      t.num(-1);
      t.num(-1);
    } else {
      t.text(a.lease_id);
      t.json(a.task_json);
    }
    t.num(a.host_ref);
    if (a.input_json.empty()) {
      t.num(-1);
    } else {
      t.json(a.input_json);
    }
  }
  void operator()(const neuron::AbortHandler& a) {
    t.op(kAbortHandler);
    t.num(static_cast<double>(a.handler_id));
    t.num(static_cast<double>(a.reason));
  }
  void operator()(const neuron::ReleaseTask& a) {
    t.op(kReleaseTask);
    t.num(a.host_ref);
  }
  void operator()(const neuron::ReleaseOutput& a) {
    t.op(kReleaseOutput);
    t.num(static_cast<double>(a.handler_id));
  }
};

// Reads the options JS passes as one JSON object (names as in the README /
// PROTOCOL.md); absent fields keep the engine's defaults.
NEURON_COLD neuron::Config parse_config(const std::string& json, std::string& error) {
  neuron::Config c;
  rapidjson::Document d;
  std::string parse_error;
  if (!neuron::parse_json(d, json, parse_error) || !d.IsObject()) {
    error = "internal: options are not a JSON object";
    return c;
  }
  auto num = [&](const char* key, auto& field) {
    if (d.HasMember(key) && d[key].IsNumber()) {
      using T = std::decay_t<decltype(field)>;
      field = static_cast<T>(d[key].GetDouble());
    }
  };
  auto str = [&](const char* key, std::string& field) {
    if (d.HasMember(key) && d[key].IsString()) field.assign(d[key].GetString(), d[key].GetStringLength());
  };
  str("neuronId", c.neuron_id);
  str("sdkVersion", c.sdk_version);
  std::string carrier;
  str("carrier", carrier);
  if (carrier == "ipc") c.carrier = neuron::Carrier::kIpc;
  num("heartbeatIntervalMs", c.heartbeat_interval_ms);
  num("initialReconnectDelayMs", c.initial_reconnect_delay_ms);
  num("maxReconnectDelayMs", c.max_reconnect_delay_ms);
  num("reconnectJitter", c.reconnect_jitter);
  num("randomSeed", c.random_seed);
  num("idleTimeoutMs", c.idle_timeout_ms);
  num("maxFrameBytes", c.max_frame_bytes);
  num("requestTimeoutMs", c.request_timeout_ms);
  num("maxInFlightRequests", c.max_in_flight_requests);
  num("progressGraceMs", c.progress_grace_ms);
  if (d.HasMember("releasesPosts") && d["releasesPosts"].IsBool()) c.host_releases_posts = d["releasesPosts"].GetBool();
  return c;
}

std::uint32_t whole(double v, double max = 1e6) {
  return (v >= 1 && v <= max && std::floor(v) == v) ? static_cast<std::uint32_t>(v) : 0;
}

class Core {
 public:
  NEURON_COLD explicit Core(std::string options_json) {
    neuron::Config config = parse_config(options_json, config_error_);
    if (config_error_.empty()) {
      neuron::Status st = neuron::validate_config(config);
      if (!st.ok()) config_error_ = st.message;
    }
    engine_ = std::make_unique<neuron::Engine>(std::move(config));
  }

  // "" when the options were valid; otherwise what was wrong.
  std::string configError() const { return config_error_; }

  // ---- commands: each returns the tape header (see the table above) ----

  NEURON_COLD std::uintptr_t handle(std::string type, std::string on_behalf_of, double concurrency, std::string description,
                        std::string input_schema, std::string output_schema, bool host_validates) {
    neuron::CapabilitySpec spec;
    spec.type = std::move(type);
    spec.on_behalf_of = std::move(on_behalf_of);
    spec.concurrency = whole(concurrency);  // non-integers fail rule 1, not truncated
    spec.description = std::move(description);
    spec.input_schema_json = std::move(input_schema);
    spec.output_schema_json = std::move(output_schema);
    spec.host_validates = host_validates;
    return command(engine_->handle(std::move(spec)));
  }
  NEURON_COLD std::uintptr_t advertiseSchemas(double capability, std::string input_schema, std::string output_schema) {
    return command(engine_->advertise_schemas(static_cast<std::uint32_t>(capability), std::move(input_schema),
                                              std::move(output_schema)));
  }
  NEURON_COLD std::uintptr_t start(double now) { return command(engine_->start(to_ms(now))); }
  NEURON_COLD std::uintptr_t stop(double now, bool drain, double timeout_ms) {
    engine_->stop(to_ms(now), drain, timeout_ms > 0 ? to_ms(timeout_ms) : 0);
    return drain_tape(true);
  }
  NEURON_COLD std::uintptr_t updateCapability(double now, std::string type, double concurrency) {
    return command(engine_->update_capability(to_ms(now), type, whole(concurrency)));
  }
  NEURON_COLD std::uintptr_t reconnectNow(double now) {
    engine_->reconnect_now(to_ms(now));
    return drain_tape(true);
  }

  // ---- inputs that are rare enough for embind ----

  NEURON_COLD std::uintptr_t streamOpened(double now, double stream_id, int status, bool is_event_stream) {
    engine_->handle_stream_opened(to_ms(now), id(stream_id), status, is_event_stream);
    return drain_tape(false);
  }
  NEURON_COLD std::uintptr_t streamClosed(double now, double stream_id, std::string reason) {
    engine_->handle_stream_closed(to_ms(now), id(stream_id), reason);
    return drain_tape(false);
  }
  // result: 1 threw, 2 failed, 3 input invalid, 4 output invalid
  // (neuron::HandlerResult). `errors` is "path US message US path US ..." for 3/4.
  std::uintptr_t handlerDone(double now, double handler_id, int result, std::string reason, std::string code,
                             std::string errors) {
    neuron::HandlerOutcome o;
    o.result = static_cast<neuron::HandlerResult>(result < 1 || result > 4 ? 1 : result);
    o.reason = std::move(reason);
    o.code = std::move(code);
    std::size_t pos = 0;
    while (!errors.empty() && pos <= errors.size()) {
      const std::size_t a = errors.find(kUs, pos);
      if (a == std::string::npos) break;
      std::size_t b = errors.find(kUs, a + 1);
      if (b == std::string::npos) b = errors.size();
      o.errors.push_back({errors.substr(pos, a - pos), errors.substr(a + 1, b - a - 1)});
      pos = b + 1;
    }
    engine_->handle_handler_done(to_ms(now), id(handler_id), std::move(o));
    return drain_tape(false);
  }
  // percent: NaN when absent; message / data: has_* false when absent.
  std::uintptr_t progress(double now, double handler_id, double percent, bool has_message, std::string message,
                          bool has_data, std::string data_json) {
    neuron::ProgressUpdate u;
    if (std::isfinite(percent)) u.percent = percent;
    if (has_message) u.message = std::move(message);
    if (has_data) u.data_json = std::move(data_json);
    engine_->handle_progress(to_ms(now), id(handler_id), std::move(u));
    return drain_tape(false);
  }

  // ---- observation ----

  std::uintptr_t address() { return reinterpret_cast<std::uintptr_t>(this); }
  void setFrameEvents(bool enabled) { engine_->set_frame_events(enabled); }
  void setLogLevel(int level) {
    engine_->set_log_level(static_cast<neuron::LogLevel>(level < 0 || level > 4 ? 4 : level));
  }
  bool isConnected() const { return engine_->is_connected(); }
  bool isRegistered() const { return engine_->is_registered(); }
  bool isStopped() const { return engine_->is_stopped(); }
  bool needsSchemaValidator() const { return engine_->needs_schema_validator(); }
  // What the engine checks of the capability's values: 1 its input, 2 its output.
  int checks(double capability) const {
    const auto i = static_cast<std::uint32_t>(capability);
    return (engine_->checks_input(i) ? 1 : 0) | (engine_->checks_output(i) ? 2 : 0);
  }

  NEURON_COLD std::string stats() const {
    const neuron::Stats& s = engine_->stats();
    std::string out = "{";
    auto field = [&](const char* name, std::uint64_t v) {
      if (out.size() > 1) out += ',';
      out += '"';
      out += name;
      out += "\":";
      out += std::to_string(v);
    };
    field("leasesReceived", s.leases_received);
    field("leasesDuplicate", s.leases_duplicate);
    field("leasesAcked", s.leases_acked);
    field("nacksRetryable", s.nacks_retryable);
    field("nacksTerminal", s.nacks_terminal);
    field("nacksSchemaMismatch", s.nacks_schema_mismatch);
    field("nacksCancelled", s.nacks_cancelled);
    field("leasesDropped", s.leases_dropped);
    field("leasesLost", s.leases_lost);
    field("reconnects", s.reconnects);
    field("bytesIn", s.bytes_in);
    field("framesIn", s.frames_in);
    field("framesOut", s.frames_out);
    field("frameErrors", s.frame_errors);
    field("requestsInFlight", s.requests_in_flight);
    field("requestsQueued", s.requests_queued);
    field("requestBound", s.request_bound);
    out += ",\"capabilities\":[";
    for (std::uint32_t i = 0; i < engine_->capability_count(); ++i) {
      const neuron::CapabilityStats c = engine_->capability_stats(i);
      if (i) out += ',';
      out += "{\"queued\":" + std::to_string(c.queued) + ",\"running\":" + std::to_string(c.running) +
             ",\"concurrency\":" + std::to_string(c.concurrency) + "}";
    }
    out += "]}";
    return out;
  }

  // ---- the hot path: the raw C entry points below ----

  std::uintptr_t inbox(std::size_t bytes) {
    if (inbox_.size() < bytes) inbox_.resize(bytes);
    return reinterpret_cast<std::uintptr_t>(inbox_.data());
  }

  std::uintptr_t flush(double now_ms, std::size_t used) {
    const TimeMs now = to_ms(now_ms);
    tape_.clear();
    used = std::min(used, inbox_.size());
    const char* base = inbox_.data();
    std::size_t at = 0;  // in bytes, always a multiple of 8
    auto f64 = [&]() {
      double v;
      std::memcpy(&v, base + at, sizeof v);
      at += 8;
      return v;
    };
    auto bytes = [&](std::size_t n) {
      const std::string_view s(base + at, std::min(n, used - at));
      at += (n + 7) & ~std::size_t{7};
      return s;
    };
    while (at + 8 <= used) {
      switch (static_cast<int>(f64())) {
        case kInBytes: {
          const auto sid = id(f64());
          const auto n = static_cast<std::size_t>(f64());
          engine_->handle_stream_bytes(now, sid, bytes(n));
          break;
        }
        case kInFrame: {
          const auto sid = id(f64());
          const auto n = static_cast<std::size_t>(f64());
          engine_->handle_stream_frame(now, sid, bytes(n));
          break;
        }
        case kInLease: {
          neuron::Engine::LeaseInput in;
          const auto sid = id(f64());
          in.host_ref = static_cast<std::uint32_t>(f64());
          const auto flags = static_cast<int>(f64());
          std::size_t n[4];
          for (auto& k : n) k = static_cast<std::size_t>(f64());
          const std::string_view all = bytes(n[0] + n[1] + n[2] + n[3]);
          in.lease_id = all.substr(0, n[0]);
          in.task_id = all.substr(n[0], n[1]);
          in.type = all.substr(n[0] + n[1], n[2]);
          in.has_task = (flags & 1) != 0;
          if (flags & 2) in.input_json = all.substr(n[0] + n[1] + n[2], n[3]);
          in.input_vouched = (flags & 4) != 0;
          engine_->handle_lease(now, sid, in);
          break;
        }
        case kInPostResult: {
          const auto rid = id(f64());
          const auto status = static_cast<int>(f64());
          const auto n = static_cast<std::size_t>(f64());
          engine_->handle_post_result(now, rid, status, bytes(n));
          break;
        }
        case kInReleased:
          engine_->handle_post_released(now, id(f64()));
          break;
        case kInReturned: {
          const auto hid = id(f64());
          const auto flags = static_cast<int>(f64());
          const auto n = static_cast<std::size_t>(f64());
          returned_.result = neuron::HandlerResult::kReturned;
          returned_.host_builds_ack = (flags & 3) != 0;
          returned_.host_keeps_output = (flags & 2) != 0;
          returned_.host_writes_json = (flags & 10) == 10;
          returned_.output_vouched = (flags & 4) != 0;
          returned_.output_is_json = true;  // library_neuron.js sends JSON.stringify's text only
          returned_.output_json.assign(bytes(n));
          engine_->handle_handler_done(now, hid, std::move(returned_));
          break;
        }
        default:
          at = used;  // never written by library_neuron.js: stop reading
          break;
      }
      drain();
    }
    if (inbox_oversized_.check(inbox_.capacity(), used)) std::vector<char>().swap(inbox_);
    deadline(false);
    return tape_.header(inbox_);
  }

  std::uintptr_t timeout(double now) {
    tape_.clear();
    engine_->handle_timeout(to_ms(now));
    drain();
    deadline(true);  // JS's timer has just fired and is gone: always say when the next one is
    return tape_.header(inbox_);
  }

 private:
  static std::uint64_t id(double v) { return v > 0 ? static_cast<std::uint64_t>(v) : 0; }

  std::uintptr_t command(const neuron::Status& st) {
    tape_.clear();
    if (!st.ok()) {
      tape_.op(kCommandFailed);
      tape_.text(neuron::error_code_name(st.code));
      tape_.text(st.message);
    }
    drain();
    deadline(true);
    return tape_.header(inbox_);
  }

  std::uintptr_t drain_tape(bool force_deadline) {
    tape_.clear();
    drain();
    deadline(force_deadline);
    return tape_.header(inbox_);
  }

  // Events first (listeners hear connection:open before register goes out),
  // then actions; StopSettled last of all (engine.h), after the final
  // actions it came with.
  void drain() {
    EventWriter ew{tape_};
    ActionWriter aw{tape_};
    bool stop_settled = false;
    for (;;) {
      bool any = false;
      while (auto e = engine_->poll_event()) {
        any = true;
        if (std::holds_alternative<neuron::StopSettled>(*e)) {
          stop_settled = true;
        } else {
          std::visit(ew, *e);
        }
      }
      while (auto a = engine_->poll_action()) {
        any = true;
        std::visit(aw, *a);
      }
      if (!any) break;
    }
    if (stop_settled) ew(neuron::StopSettled{});
  }

  // The deadline only when it changed since the last tape (or when asked):
  // most leases leave it alone.
  void deadline(bool force) {
    const std::optional<neuron::TimeMs> t = engine_->poll_timeout();
    if (!force && t == reported_deadline_) return;
    reported_deadline_ = t;
    tape_.op(kDeadline);
    tape_.num(t ? static_cast<double>(*t) : -1.0);
  }

  std::unique_ptr<neuron::Engine> engine_;
  std::string config_error_;
  std::vector<char> inbox_;
  Oversized inbox_oversized_;
  neuron::HandlerOutcome returned_;  // reused: its output buffer keeps its capacity
  std::optional<neuron::TimeMs> reported_deadline_;
  Tape tape_;
};

}  // namespace

extern "C" {
EMSCRIPTEN_KEEPALIVE std::uintptr_t neuron_inbox(Core* core, double bytes) {
  return core->inbox(static_cast<std::size_t>(bytes));
}
EMSCRIPTEN_KEEPALIVE std::uintptr_t neuron_flush(Core* core, double now, double used) {
  return core->flush(now, static_cast<std::size_t>(used));
}
EMSCRIPTEN_KEEPALIVE std::uintptr_t neuron_timeout(Core* core, double now) { return core->timeout(now); }
}

namespace {

// Bytes the allocator holds for live objects: the leak test's baseline.
double heapInUse() { return static_cast<double>(mallinfo().uordblks); }

}  // namespace

// embind, thin: free functions on the Core's address (web/src/core.js
// gives them back the shape of a class). `rare` for the commands, built for
// size; `call` for what may come per lease (a failed handler, progress). No class_ registration: its JS
// half (handles, pointer registries, inheritance) was a third of the glue.
template <auto Method>
struct OnCore;
template <typename R, typename... A, R (Core::*Method)(A...)>
struct OnCore<Method> {
  static R call(std::uintptr_t self, A... a) { return (reinterpret_cast<Core*>(self)->*Method)(std::move(a)...); }
  NEURON_COLD static R rare(std::uintptr_t self, A... a) { return call(self, std::move(a)...); }
};
template <typename R, typename... A, R (Core::*Method)(A...) const>
struct OnCore<Method> {
  static R call(std::uintptr_t self, A... a) { return (reinterpret_cast<const Core*>(self)->*Method)(std::move(a)...); }
  NEURON_COLD static R rare(std::uintptr_t self, A... a) { return call(self, std::move(a)...); }
};

// The core's SSE parser on its own, for an HttpTransport that no Neuron
// drives (web/src/http-transport.js): the package keeps one SSE parser.
class SseReader final : public neuron::SseParser::Sink {
 public:
  explicit SseReader(std::size_t max_data_bytes) : parser_(max_data_bytes) {}
  // Each event's data followed by CR (data never holds a CR: it ends lines).
  std::string feed(const std::string& bytes) {
    out_.clear();
    parser_.feed(bytes, *this);
    return std::move(out_);
  }
  // Events dropped as over the limit since the last call.
  double takeOversized() { return static_cast<double>(std::exchange(oversized_, 0)); }

 private:
  void on_event(const neuron::SseParser::Event& event) override {
    out_.append(event.data);
    out_ += '\r';
  }
  void on_oversized_event(std::size_t) override { ++oversized_; }

  neuron::SseParser parser_;
  std::string out_;
  std::size_t oversized_ = 0;
};

namespace {
// The C++ objects JS holds by address (Cores and SSE readers): the leak
// test's count of what crossed the boundary and was not given back.
double live_objects = 0;

std::uintptr_t sseNew(double max_data_bytes) {
  ++live_objects;
  return reinterpret_cast<std::uintptr_t>(new SseReader(max_data_bytes >= 1 ? static_cast<std::size_t>(max_data_bytes) : 1));
}
std::string sseFeed(std::uintptr_t self, std::string bytes) { return reinterpret_cast<SseReader*>(self)->feed(bytes); }
double sseOversized(std::uintptr_t self) { return reinterpret_cast<SseReader*>(self)->takeOversized(); }
void sseDelete(std::uintptr_t self) {
  --live_objects;
  delete reinterpret_cast<SseReader*>(self);
}

NEURON_COLD std::uintptr_t coreNew(std::string options_json) {
  ++live_objects;
  return reinterpret_cast<std::uintptr_t>(new Core(std::move(options_json)));
}
void coreDelete(std::uintptr_t self) {
  --live_objects;
  delete reinterpret_cast<Core*>(self);
}
double liveObjects() { return live_objects; }
}  // namespace

EMSCRIPTEN_BINDINGS(neuron_core) {
  using emscripten::function;
  neuron_boundary_link();
  function("Core_new", &coreNew);
  function("Core_delete", &coreDelete);
  function("Core_configError", &OnCore<&Core::configError>::rare);
  function("Core_handle", &OnCore<&Core::handle>::rare);
  function("Core_advertiseSchemas", &OnCore<&Core::advertiseSchemas>::rare);
  function("Core_start", &OnCore<&Core::start>::rare);
  function("Core_stop", &OnCore<&Core::stop>::rare);
  function("Core_updateCapability", &OnCore<&Core::updateCapability>::rare);
  function("Core_reconnectNow", &OnCore<&Core::reconnectNow>::rare);
  function("Core_streamOpened", &OnCore<&Core::streamOpened>::rare);
  function("Core_streamClosed", &OnCore<&Core::streamClosed>::rare);
  function("Core_handlerDone", &OnCore<&Core::handlerDone>::call);
  function("Core_progress", &OnCore<&Core::progress>::call);
  function("Core_setFrameEvents", &OnCore<&Core::setFrameEvents>::rare);
  function("Core_setLogLevel", &OnCore<&Core::setLogLevel>::rare);
  function("Core_isConnected", &OnCore<&Core::isConnected>::rare);
  function("Core_isRegistered", &OnCore<&Core::isRegistered>::rare);
  function("Core_isStopped", &OnCore<&Core::isStopped>::rare);
  function("Core_needsSchemaValidator", &OnCore<&Core::needsSchemaValidator>::rare);
  function("Core_checks", &OnCore<&Core::checks>::rare);
  function("Core_stats", &OnCore<&Core::stats>::rare);
  function("Sse_new", &sseNew);
  function("Sse_feed", &sseFeed);
  function("Sse_oversized", &sseOversized);
  function("Sse_delete", &sseDelete);
  function("heapInUse", &heapInUse);
  function("liveObjects", &liveObjects);
}
