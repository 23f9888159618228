// emscripten/bindings.cpp: the wasm boundary, C++ side.
//
// One embind class, `Core`, owns a neuron::Engine and exposes it to JS as a
// handful of flat calls: numbers and strings in, ONE string out. Every call
// drains the engine (events first, then actions, then the next deadline) into
// a "tape": records separated by RS (0x1e), fields by US (0x1f), the record's
// first character saying what it is. emscripten/library_neuron.js decodes it;
// web/src/host.js acts on it. No emval handle is created on any path, so
// nothing can leak across the boundary, and one call costs one string.
//
// SSE bytes never become a JS string: JS copies each ReadableStream chunk into
// the buffer neuron_input_buffer() points at and calls neuron_stream_bytes(len).
//
//   record                  fields after the op letter
//   o connection:open       -
//   r registered            sessionId, capabilities
//   c connection:close      reason
//   n reconnecting          attempt, delayMs, reason
//   e error                 code, message, httpStatus
//   f frame                 json
//   l log                   level (0 debug .. 3 error), msg, metaJson
//   s start settled         code ("" = ok), message, httpStatus
//   S stop settled          -
//   O open stream           streamId, path
//   C close stream          streamId
//   P post                  requestId, path, body
//   A abort post            requestId
//   H start handler         handlerId, capability index, leaseId, taskJson
//   X abort handler         handlerId, reason
//   T next deadline         ms since the epoch, or empty for none; last, and
//                           only when it changed (always after timeout() and
//                           commands)
//   ! command failed        code, message (first, only from commands)
//
// JSON fields are valid JSON and so hold no raw control character; free text
// (reasons, messages, ids) has RS/US replaced by '?'.
#include <emscripten/bind.h>
#include <emscripten/emscripten.h>
#include <malloc.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <rapidjson/document.h>

#include "neuron/engine.h"

extern "C" void neuron_boundary_link();  // library_neuron.js

namespace {

using neuron::TimeMs;

constexpr char kRs = '\x1e';
constexpr char kUs = '\x1f';

TimeMs to_ms(double now) { return static_cast<TimeMs>(std::floor(now)); }

// The tape is built after a 4-byte header that the raw entry points fill
// with its length (JS reads it from memory: no std::string marshalling).
constexpr std::size_t kHeader = 4;
// The boundary's two buffers (input, tape) grow as needed. One huge output
// must not pin megabytes for the life of the neuron, and a run of large ones
// must not reallocate every time: a buffer over kKeepBytes is given back once
// it has been at least 4 times too big for kShrinkAfter uses in a row.
constexpr std::size_t kKeepBytes = std::size_t{1} << 20;
constexpr int kShrinkAfter = 4;

class Oversized {
 public:
  // Call once per use; true when the buffer should be given back now.
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

class Tape {
 public:
  Tape() { out_.assign(kHeader, '\0'); }
  void begin(char op) {
    if (out_.size() > kHeader) out_ += kRs;
    out_ += op;
  }
  void text(std::string_view s) {
    out_ += kUs;
    for (char ch : s) out_ += (ch == kRs || ch == kUs) ? '?' : ch;
  }
  void json(std::string_view s) {
    out_ += kUs;
    out_.append(s);
  }
  void num(double v) {
    char buf[32];
    const int n = std::snprintf(buf, sizeof buf, "%.17g", v);
    out_ += kUs;
    out_.append(buf, static_cast<std::size_t>(n));
  }
  void integer(std::uint64_t v) {
    char buf[24];
    const int n = std::snprintf(buf, sizeof buf, "%llu", static_cast<unsigned long long>(v));
    out_ += kUs;
    out_.append(buf, static_cast<std::size_t>(n));
  }
  // The tape as a string (cold paths, through embind); starts a new one.
  std::string take() {
    std::string t = out_.substr(kHeader);
    out_.resize(kHeader);
    return t;
  }
  // The tape in place: [u32 length][bytes], valid until the next call.
  std::uintptr_t take_in_place() {
    const auto n = static_cast<std::uint32_t>(out_.size() - kHeader);
    std::memcpy(out_.data(), &n, sizeof n);
    last_.swap(out_);
    // The two tape buffers take turns: a big one is judged on the calls it
    // comes back to out_ (the other turns, JS is reading it).
    if (out_.capacity() > kKeepBytes && oversized_.check(out_.capacity(), last_.size())) std::string().swap(out_);
    out_.resize(kHeader);
    return reinterpret_cast<std::uintptr_t>(last_.data());
  }
  std::string& raw() { return out_; }

 private:
  std::string out_;
  std::string last_;  // the tape JS is reading (take_in_place)
  Oversized oversized_;
};

struct EventWriter {
  Tape& t;
  void operator()(const neuron::ConnectionOpen&) { t.begin('o'); }
  void operator()(const neuron::ConnectionRegistered& e) {
    t.begin('r');
    t.text(e.session_id);
    t.integer(e.capabilities);
  }
  void operator()(const neuron::ConnectionClose& e) {
    t.begin('c');
    t.text(e.reason);
  }
  void operator()(const neuron::ConnectionReconnecting& e) {
    t.begin('n');
    t.integer(e.attempt);
    t.num(static_cast<double>(e.delay_ms));
    t.text(e.reason);
  }
  void operator()(const neuron::ErrorEvent& e) {
    t.begin('e');
    t.text(neuron::error_code_name(e.error.code));
    t.text(e.error.message);
    t.integer(static_cast<std::uint64_t>(e.error.http_status));
  }
  void operator()(const neuron::FrameEvent& e) {
    t.begin('f');
    t.json(e.json);
  }
  void operator()(const neuron::LogEvent& e) {
    t.begin('l');
    t.integer(static_cast<std::uint64_t>(e.level));
    t.text(e.msg);
    t.json(e.meta_json);
  }
  void operator()(const neuron::StartSettled& e) {
    t.begin('s');
    t.text(e.status.ok() ? std::string_view{} : neuron::error_code_name(e.status.code));
    t.text(e.status.message);
    t.integer(static_cast<std::uint64_t>(e.status.http_status));
  }
  void operator()(const neuron::StopSettled&) { t.begin('S'); }
};

struct ActionWriter {
  Tape& t;
  void operator()(const neuron::OpenStream& a) {
    t.begin('O');
    t.integer(a.stream_id);
    t.text(a.path);
  }
  void operator()(const neuron::CloseStream& a) {
    t.begin('C');
    t.integer(a.stream_id);
  }
  void operator()(const neuron::Post& a) {
    t.begin('P');
    t.integer(a.request_id);
    t.text(neuron::post_path_string(a.path));
    t.json(a.body);
  }
  void operator()(const neuron::AbortPost& a) {
    t.begin('A');
    t.integer(a.request_id);
  }
  void operator()(const neuron::StartHandler& a) {
    t.begin('H');
    t.integer(a.handler_id);
    t.integer(a.capability);
    t.text(a.lease_id);
    t.json(a.task_json);
  }
  void operator()(const neuron::AbortHandler& a) {
    t.begin('X');
    t.integer(a.handler_id);
    t.text(neuron::abort_reason_string(a.reason));
  }
};

// Reads the options JS passes as one JSON object (names as in the README /
// PROTOCOL.md); absent fields keep the engine's defaults.
neuron::Config parse_config(const std::string& json, std::string& error) {
  neuron::Config c;
  rapidjson::Document d;
  d.Parse(json.c_str(), json.size());
  if (d.HasParseError() || !d.IsObject()) {
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
  return c;
}

class Core {
 public:
  explicit Core(std::string options_json) {
    neuron::Config config = parse_config(options_json, config_error_);
    if (config_error_.empty()) {
      neuron::Status st = neuron::validate_config(config);
      if (!st.ok()) config_error_ = st.message;
    }
    engine_ = std::make_unique<neuron::Engine>(std::move(config));
  }

  // "" when the options were valid; otherwise what was wrong.
  std::string configError() const { return config_error_; }

  // ---- commands ----

  std::string handle(std::string type, std::string on_behalf_of, double concurrency,
                     std::string description, std::string input_schema,
                     std::string output_schema, bool host_validates) {
    neuron::CapabilitySpec spec;
    spec.type = std::move(type);
    spec.on_behalf_of = std::move(on_behalf_of);
    // Non-integers and out-of-range values must fail rule 1, not be truncated.
    spec.concurrency = (concurrency >= 1 && concurrency <= 1e6 && std::floor(concurrency) == concurrency)
                           ? static_cast<std::uint32_t>(concurrency) : 0;
    spec.description = std::move(description);
    spec.input_schema_json = std::move(input_schema);
    spec.output_schema_json = std::move(output_schema);
    spec.host_validates = host_validates;
    return status_tape(engine_->handle(std::move(spec)));
  }

  std::string advertiseSchemas(double capability, std::string input_schema, std::string output_schema) {
    return status_tape(engine_->advertise_schemas(static_cast<std::uint32_t>(capability),
                                                  std::move(input_schema), std::move(output_schema)));
  }

  std::string start(double now) { return status_tape(engine_->start(to_ms(now))); }

  std::string stop(double now, bool drain, double timeout_ms) {
    engine_->stop(to_ms(now), drain, timeout_ms > 0 ? to_ms(timeout_ms) : 0);
    return drain_tape();
  }

  std::string updateCapability(double now, std::string type, double concurrency) {
    const std::uint32_t c = (concurrency >= 1 && concurrency <= 1e6 && std::floor(concurrency) == concurrency)
                                ? static_cast<std::uint32_t>(concurrency) : 0;
    return status_tape(engine_->update_capability(to_ms(now), type, c));
  }

  std::string reconnectNow(double now) {
    engine_->reconnect_now(to_ms(now));
    return drain_tape();
  }

  // ---- inputs ----

  std::string streamOpened(double now, double stream_id, int status, bool is_event_stream) {
    engine_->handle_stream_opened(to_ms(now), id(stream_id), status, is_event_stream);
    return drain_tape();
  }

  std::string streamBytes(double now, double stream_id, double length) {
    const auto n = std::min(static_cast<std::size_t>(length), input_.size());
    engine_->handle_stream_bytes(to_ms(now), id(stream_id), std::string_view(input_.data(), n));
    return drain_tape();
  }

  std::string streamFrame(double now, double stream_id, std::string json) {
    engine_->handle_stream_frame(to_ms(now), id(stream_id), json);
    return drain_tape();
  }

  std::string streamClosed(double now, double stream_id, std::string reason) {
    engine_->handle_stream_closed(to_ms(now), id(stream_id), reason);
    return drain_tape();
  }

  std::string postResult(double now, double request_id, int status, std::string body) {
    engine_->handle_post_result(to_ms(now), id(request_id), status, body);
    return drain_tape();
  }

  // result: 0 returned, 1 threw, 2 failed, 3 input invalid, 4 output invalid
  // (neuron::HandlerResult). `errors` is "path US message US path US ..." for 3/4.
  std::string handlerDone(double now, double handler_id, int result, std::string output_json,
                          std::string reason, std::string code, std::string errors) {
    neuron::HandlerOutcome o;
    o.result = static_cast<neuron::HandlerResult>(result < 0 || result > 4 ? 1 : result);
    if (o.result == neuron::HandlerResult::kReturned) o.output_json = std::move(output_json);
    o.reason = std::move(reason);
    o.code = std::move(code);
    if (!errors.empty()) {
      std::size_t pos = 0;
      while (pos <= errors.size()) {
        const std::size_t a = errors.find(kUs, pos);
        if (a == std::string::npos) break;
        std::size_t b = errors.find(kUs, a + 1);
        if (b == std::string::npos) b = errors.size();
        o.errors.push_back({errors.substr(pos, a - pos), errors.substr(a + 1, b - a - 1)});
        pos = b + 1;
      }
    }
    engine_->handle_handler_done(to_ms(now), id(handler_id), std::move(o));
    return drain_tape();
  }

  // percent: NaN when absent; message / data: has_* false when absent.
  std::string progress(double now, double handler_id, double percent, bool has_message,
                       std::string message, bool has_data, std::string data_json) {
    neuron::ProgressUpdate u;
    if (std::isfinite(percent)) u.percent = percent;
    if (has_message) u.message = std::move(message);
    if (has_data) u.data_json = std::move(data_json);
    engine_->handle_progress(to_ms(now), id(handler_id), std::move(u));
    return drain_tape();
  }

  std::string timeout(double now) {
    engine_->handle_timeout(to_ms(now));
    return drain_tape();
  }

  // ---- observation ----

  // This object's address, for the raw entry points (library_neuron.js).
  std::uintptr_t address() { return reinterpret_cast<std::uintptr_t>(this); }

  void setFrameEvents(bool enabled) { engine_->set_frame_events(enabled); }
  void setLogLevel(int level) {
    engine_->set_log_level(static_cast<neuron::LogLevel>(level < 0 || level > 4 ? 4 : level));
  }
  bool isConnected() const { return engine_->is_connected(); }
  bool isRegistered() const { return engine_->is_registered(); }
  bool isStopped() const { return engine_->is_stopped(); }

  std::string stats() const {
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

 private:
  static std::uint64_t id(double v) { return v > 0 ? static_cast<std::uint64_t>(v) : 0; }

  std::string status_tape(const neuron::Status& st) {
    if (!st.ok()) {
      tape_.begin('!');
      tape_.text(neuron::error_code_name(st.code));
      tape_.text(st.message);
    }
    return drain_tape();
  }

  std::string drain_tape() {
    drain(/*force_deadline=*/true);
    return tape_.take();
  }

 public:
  // ---- the hot path: raw C entry points below call these ----

  std::uintptr_t raw_input_buffer(std::size_t n) {
    if (input_oversized_.check(input_.size(), n)) std::vector<char>().swap(input_);
    if (input_.size() < n) input_.resize(n);
    return reinterpret_cast<std::uintptr_t>(input_.data());
  }
  std::string_view input(double length) const {
    return {input_.data(), std::min(static_cast<std::size_t>(length), input_.size())};
  }
  std::uintptr_t raw_stream_bytes(double now, double stream_id, double length) {
    engine_->handle_stream_bytes(to_ms(now), id(stream_id), input(length));
    return drain_in_place();
  }
  std::uintptr_t raw_stream_frame(double now, double stream_id, double length) {
    engine_->handle_stream_frame(to_ms(now), id(stream_id), input(length));
    return drain_in_place();
  }
  std::uintptr_t raw_post_result(double now, double request_id, int status, double length) {
    engine_->handle_post_result(to_ms(now), id(request_id), status, input(length));
    return drain_in_place();
  }
  std::uintptr_t raw_handler_returned(double now, double handler_id, double length) {
    neuron::HandlerOutcome o;
    o.output_json.assign(input(length));
    engine_->handle_handler_done(to_ms(now), id(handler_id), std::move(o));
    return drain_in_place();
  }
  std::uintptr_t raw_timeout(double now) {
    engine_->handle_timeout(to_ms(now));
    // JS's timer has just fired and is gone: always say when the next one is.
    return drain_in_place(/*force_deadline=*/true);
  }

 private:
  std::uintptr_t drain_in_place(bool force_deadline = false) {
    drain(force_deadline);
    return tape_.take_in_place();
  }

  void drain(bool force_deadline = false) {
    EventWriter ew{tape_};
    ActionWriter aw{tape_};
    // Events first (listeners hear connection:open before register goes out),
    // then actions; loop because neither produces the other, but be sure.
    for (;;) {
      bool any = false;
      while (auto e = engine_->poll_event()) {
        any = true;
        std::visit(ew, *e);
      }
      while (auto a = engine_->poll_action()) {
        any = true;
        std::visit(aw, *a);
      }
      if (!any) break;
    }
    // The deadline only when it changed since the last tape (or when asked):
    // most leases leave it alone, and a tape with nothing in it costs JS nothing.
    const std::optional<neuron::TimeMs> t = engine_->poll_timeout();
    if (force_deadline || t != reported_deadline_) {
      reported_deadline_ = t;
      tape_.begin('T');
      if (t) {
        tape_.num(static_cast<double>(*t));
      } else {
        tape_.raw() += kUs;
      }
    }
  }

  std::unique_ptr<neuron::Engine> engine_;
  std::string config_error_;
  std::vector<char> input_;
  Oversized input_oversized_;
  std::optional<neuron::TimeMs> reported_deadline_;
  Tape tape_;
};

}  // namespace

// The hot path, called by library_neuron.js without embind's marshalling:
// numbers in, inputs already copied into the core's input buffer, a pointer to
// the [u32 length][tape] out.
extern "C" {
EMSCRIPTEN_KEEPALIVE std::uintptr_t neuron_input_buffer(Core* core, double size) {
  return core->raw_input_buffer(static_cast<std::size_t>(size));
}
EMSCRIPTEN_KEEPALIVE std::uintptr_t neuron_stream_bytes(Core* core, double now, double stream_id, double length) {
  return core->raw_stream_bytes(now, stream_id, length);
}
EMSCRIPTEN_KEEPALIVE std::uintptr_t neuron_stream_frame(Core* core, double now, double stream_id, double length) {
  return core->raw_stream_frame(now, stream_id, length);
}
EMSCRIPTEN_KEEPALIVE std::uintptr_t neuron_post_result(Core* core, double now, double request_id, int status,
                                                       double length) {
  return core->raw_post_result(now, request_id, status, length);
}
EMSCRIPTEN_KEEPALIVE std::uintptr_t neuron_handler_returned(Core* core, double now, double handler_id, double length) {
  return core->raw_handler_returned(now, handler_id, length);
}
EMSCRIPTEN_KEEPALIVE std::uintptr_t neuron_timeout(Core* core, double now) { return core->raw_timeout(now); }
}

namespace {

// Bytes the allocator holds for live objects: the leak test's baseline.
double heapInUse() { return static_cast<double>(mallinfo().uordblks); }

}  // namespace

EMSCRIPTEN_BINDINGS(neuron_core) {
  neuron_boundary_link();
  emscripten::class_<Core>("Core")
      .constructor<std::string>()
      .function("configError", &Core::configError)
      .function("handle", &Core::handle)
      .function("advertiseSchemas", &Core::advertiseSchemas)
      .function("start", &Core::start)
      .function("stop", &Core::stop)
      .function("updateCapability", &Core::updateCapability)
      .function("reconnectNow", &Core::reconnectNow)
      .function("streamOpened", &Core::streamOpened)
      .function("streamBytes", &Core::streamBytes)
      .function("streamFrame", &Core::streamFrame)
      .function("streamClosed", &Core::streamClosed)
      .function("postResult", &Core::postResult)
      .function("handlerDone", &Core::handlerDone)
      .function("progress", &Core::progress)
      .function("timeout", &Core::timeout)
      .function("setFrameEvents", &Core::setFrameEvents)
      .function("setLogLevel", &Core::setLogLevel)
      .function("isConnected", &Core::isConnected)
      .function("isRegistered", &Core::isRegistered)
      .function("isStopped", &Core::isStopped)
      .function("stats", &Core::stats)
      .function("address", &Core::address);
  emscripten::function("heapInUse", &heapInUse);
}
