// fuzz_engine: the whole engine under random host behaviour.
//
// The fuzzer's bytes choose a config, some capabilities, then a sequence of
// operations: commands (start, stop, update_capability, late handle), stream
// events (open answers, frames, garbage, split chunks, closes), POST answers
// (any status, lostLeases bodies), handler completions and progress, and
// clock steps (through every deadline, like a host with one timer).
//
// A tiny model of the host tracks what the engine told it, and after every
// action and step these invariants are checked (abort() on violation):
//   - every POST body is valid JSON whose `type` matches its path;
//   - per leaseId, at most one distinct ack/nack frame (ignoring sentAt):
//     retries resend the same frame. The config remembers lease ids for ever,
//     so a second decision can only be a bug;
//   - a heartbeat lists exactly the leases running at that moment (started,
//     no terminal frame yet, not lost), and running_lease_ids() agrees with
//     that model after every step;
//   - capability running == handlers started and not reported done, and never
//     above the largest concurrency ever set;
//   - poll_timeout() is never in the past, and after handle_timeout(now) it is
//     strictly after now;
//   - stop(): StopSettled no later than now + drain timeout + stop_flush_ms;
//     after it: no action at all, no timer, no POST or stream left open;
//   - the terminal counters in stats() match the distinct decisions seen.
// LeakSanitizer covers leaks.
#include <fuzzer/FuzzedDataProvider.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include <rapidjson/document.h>

#include "neuron/engine.h"
#include "neuron/engine/recent_ids.h"
#include "neuron/frames.h"
#include "neuron/iso_time.h"

namespace {

using namespace neuron;

// FUZZ_ENGINE_TRACE=1: print every action and event (to debug a crash input).
const bool kTrace = std::getenv("FUZZ_ENGINE_TRACE") != nullptr;
#define TRACE(...) \
  do {                 \
    if (kTrace) std::fprintf(stderr, __VA_ARGS__); \
  } while (0)

[[noreturn]] void fail(const char* what, std::string_view detail = {}) {
  std::fprintf(stderr, "fuzz_engine: %s\n%.*s\n", what, static_cast<int>(std::min<std::size_t>(detail.size(), 4000)),
               detail.data());
  std::abort();
}

const char* const kCapTypes[] = {"core/a", "core/b", "core/c.v2"};
const char* const kInputSchema = R"({"type":"object","required":["x"],"properties":{"x":{"type":"integer"}}})";
const char* const kOutputSchema = R"({"type":"object","required":["y"]})";
constexpr int kLeasePool = 6;
constexpr int kStatuses[] = {200, 204, 401, 403, 409, 429, 500, 503, 0, 400, 404};

std::string lease_id(int i) { return "L" + std::to_string(i); }

struct Host {
  explicit Host(FuzzedDataProvider& in, Config config) : fdp(in), engine(config), cfg(std::move(config)) {}

  FuzzedDataProvider& fdp;
  Engine engine;
  Config cfg;
  TimeMs now = 1'700'000'000'000;

  // The host's view.
  std::uint64_t stream = 0;       // the stream the engine wants (0: none)
  bool stream_opened = false;     // reported open
  std::uint64_t old_stream = 0;   // a stale id, for late reports
  std::map<std::uint64_t, PostPath> pending;  // POSTs not answered yet
  std::vector<std::uint64_t> unreleased;      // answered, not yet released (host_releases_posts)
  struct Handler {
    std::uint32_t capability;
    std::string lease_id;
    std::string task_id;
    bool ended = false;  // aborted for a lost lease or the shutdown
  };
  std::map<std::uint64_t, Handler> handlers;  // started, not reported done
  std::vector<std::uint64_t> finished_handlers;
  // Outputs the host keeps (HandlerOutcome::host_builds_ack: for every
  // attempt, or for the first only), by handler: each is let go by exactly
  // one ReleaseOutput (its ack settled, its first attempt posted, or the
  // engine did not use it), and asked for by no Post after that.
  struct Kept {
    std::string lease_id;
    std::string task_id;
  };
  std::map<std::uint64_t, Kept> kept;

  // The model.
  std::map<std::string, std::uint64_t> running;  // lease id -> handler id
  std::set<std::uint64_t> abandoned_heartbeats;  // heartbeats the engine gave up (AbortPost)
  std::map<std::string, std::string> decisions;   // lease id -> terminal frame sans sentAt
  std::uint64_t acks = 0, nacks = 0;
  std::vector<std::string> types;          // per capability
  std::vector<std::uint32_t> outstanding;  // per capability
  std::vector<std::uint32_t> max_concurrency;
  std::uint32_t max_bound = 0;  // the largest bound on POSTs in flight so far
  bool started = false;
  bool start_settled = false;
  bool stop_called = false;
  bool stopped = false;
  TimeMs stop_deadline = 0;
  TimeMs drain_deadline = 0;  // stop()'s drain ends then (0: none pending)
  int task_counter = 0;

  // ------------------------------------------------------------ driving --

  void drain() {
    for (;;) {
      bool any = false;
      while (auto a = engine.poll_action()) {
        any = true;
        if (stopped) fail("action after StopSettled");
        if (kTrace) trace_action(*a);
        std::visit([this](auto& x) { perform(x); }, *a);
      }
      while (auto e = engine.poll_event()) {
        any = true;
        std::visit([this](auto& x) { on_event(x); }, *e);
      }
      if (!any) break;
    }
    check();
  }

  void trace_action(const Action& action) {
    std::visit([this](const auto& a) {
      using T = std::decay_t<decltype(a)>;
      if constexpr (std::is_same_v<T, OpenStream>) TRACE("  @%lld OpenStream %llu\n", (long long)now, (unsigned long long)a.stream_id);
      if constexpr (std::is_same_v<T, CloseStream>) TRACE("  @%lld CloseStream %llu\n", (long long)now, (unsigned long long)a.stream_id);
      if constexpr (std::is_same_v<T, Post>) TRACE("  @%lld Post %llu %s\n", (long long)now, (unsigned long long)a.request_id, std::string(a.body).c_str());
      if constexpr (std::is_same_v<T, AbortPost>) TRACE("  @%lld AbortPost %llu\n", (long long)now, (unsigned long long)a.request_id);
      if constexpr (std::is_same_v<T, StartHandler>) TRACE("  @%lld StartHandler h%llu %s\n", (long long)now, (unsigned long long)a.handler_id, std::string(a.lease_id).c_str());
      if constexpr (std::is_same_v<T, AbortHandler>) TRACE("  @%lld AbortHandler h%llu %d\n", (long long)now, (unsigned long long)a.handler_id, (int)a.reason);
    }, action);
  }

  void perform(OpenStream& a) {
    if (a.path != "/neuron/events?neuronId=w-1") fail("bad events path", a.path);
    old_stream = stream ? stream : old_stream;
    stream = a.stream_id;
    stream_opened = false;
  }
  void perform(CloseStream& a) {
    if (a.stream_id == stream) {
      old_stream = stream;
      stream = 0;
      stream_opened = false;
    }
  }
  void perform(Post& post) {
    struct {
      std::uint64_t request_id;
      PostPath path;
      std::string body;
    } a{post.request_id, post.path, std::string(post.body)};
    if (post.host_ack) {
      // Built here, as the host builds it, around the output it keeps.
      auto k = kept.find(post.host_ack->handler);
      if (k == kept.end()) fail("host-built ack for an output the host does not keep");
      if (!a.body.empty() || post.path != PostPath::kAck) fail("host-built ack with a body or not to /neuron/ack");
      encode_ack(a.body, "w-1", post.host_ack->sent_at, k->second.lease_id, k->second.task_id, R"({"kept":true})",
                 post.host_ack->duration_ms);
    }
    rapidjson::Document doc;
    doc.Parse(a.body.data(), a.body.size());
    if (doc.HasParseError() || !doc.IsObject()) fail("engine posted invalid JSON", a.body);
    if (!doc.HasMember("type") || !doc["type"].IsString()) fail("post without type", a.body);
    const std::string t = doc["type"].GetString();
    const std::string expected_path = "/neuron/" + t;
    if (post_path_string(a.path) != expected_path) fail("post type does not match path", a.body);
    if (!doc.HasMember("sentAt") || !doc["sentAt"].IsString() || doc["sentAt"].GetStringLength() != 24)
      fail("bad sentAt", a.body);
    if (a.path == PostPath::kAck || a.path == PostPath::kNack) on_terminal(doc, a.body);
    if (a.path == PostPath::kHeartbeat) on_heartbeat(doc, a.body);
    if (a.path == PostPath::kProgress) {
      const std::string id = doc["leaseId"].GetString();
      if (decisions.count(id)) fail("progress after the lease's terminal frame", a.body);
    }
    if (pending.count(a.request_id)) fail("request id reused");
    // Every step drains what it caused, and the bound changes only in handle()
    // and update_capability() before they pump: each POST went out under the
    // bound that holds now, with fewer in flight than it.
    if (pending.size() + unreleased.size() >= engine.stats().request_bound) fail("a POST sent with the bound reached");
    pending.emplace(a.request_id, a.path);
  }
  void perform(AbortPost& a) {
    if (auto it = pending.find(a.request_id); it != pending.end() && it->second == PostPath::kHeartbeat) {
      abandoned_heartbeats.insert(a.request_id);
    }
    pending.erase(a.request_id);
  }
  void perform(StartHandler& start) {
    struct {
      std::uint64_t handler_id;
      std::uint32_t capability;
      std::string lease_id;
      std::string task_json;
    } a{start.handler_id, start.capability, std::string(start.lease_id), std::string(start.task_json)};
    if (stop_called) fail("handler started after stop()");
    if (a.capability >= outstanding.size()) fail("bad capability index");
    if (handlers.count(a.handler_id)) fail("handler id reused");
    if (running.count(a.lease_id)) fail("two running handlers for one lease id", a.lease_id);
    if (decisions.count(a.lease_id)) fail("lease started after its terminal frame", a.lease_id);
    rapidjson::Document task;
    task.Parse(a.task_json.data(), a.task_json.size());
    if (task.HasParseError() || !task.IsObject() || !task.HasMember("taskId") || !task.HasMember("type"))
      fail("bad task_json", a.task_json);
    if (task["type"] != types[a.capability].c_str()) fail("task for the wrong capability");
    // The input's own text: the task's (first) input, as it arrived.
    const rapidjson::Value* input = task.HasMember("input") ? &task.FindMember("input")->value : nullptr;
    if (start.input_json.empty() != (input == nullptr)) fail("input_json and the task's input disagree", a.task_json);
    if (input) {
      rapidjson::Document own;
      own.Parse(start.input_json.data(), start.input_json.size());
      if (own.HasParseError() || own != *input) fail("input_json is not the task's input", a.task_json);
    }
    handlers.emplace(a.handler_id, Handler{a.capability, a.lease_id, task["taskId"].IsString() ? task["taskId"].GetString() : "", false});
    running.emplace(a.lease_id, a.handler_id);
    ++outstanding[a.capability];
  }
  void perform(ReleaseTask&) {}
  void perform(ReleaseOutput& a) {
    TRACE("  ReleaseOutput h%llu\n", (unsigned long long)a.handler_id);
    if (kept.erase(a.handler_id) != 1) fail("ReleaseOutput for an output the host does not keep");
  }
  void perform(AbortHandler& a) {
    auto it = handlers.find(a.handler_id);
    if (it == handlers.end()) return;  // already reported done: the abort is moot
    if (a.reason == AbortReason::kLeaseLost || a.reason == AbortReason::kShuttingDown) {
      it->second.ended = true;
      auto r = running.find(it->second.lease_id);
      if (r != running.end() && r->second == a.handler_id) running.erase(r);
    }
  }

  void on_terminal(const rapidjson::Document& doc, const std::string& body) {
    if (!doc.HasMember("leaseId") || !doc["leaseId"].IsString()) fail("terminal without leaseId", body);
    const std::string id = doc["leaseId"].GetString();
    // Strip the sentAt stamp (the header is type, neuronId, sentAt).
    std::string key = body;
    const auto at = key.find("\"sentAt\":\"");
    if (at == std::string::npos) fail("no sentAt", body);
    key.erase(at, 10 + 24 + 1);
    auto [it, inserted] = decisions.emplace(id, key);
    if (!inserted && it->second != key) fail("two distinct terminal frames for one lease", it->second + "\n" + key);
    if (inserted) ++(doc["type"] == "ack" ? acks : nacks);
    running.erase(id);
    if (doc["type"] == "nack") {
      const std::string kind = doc["kind"].GetString();
      if ((kind == "schema-mismatch") != doc.HasMember("errors")) fail("errors only with schema-mismatch", body);
    }
  }

  void on_heartbeat(const rapidjson::Document& doc, const std::string& body) {
    if (!doc.HasMember("inFlight") || !doc["inFlight"].IsArray()) fail("heartbeat without inFlight", body);
    std::set<std::string> listed;
    for (const auto& l : doc["inFlight"].GetArray()) {
      if (!listed.insert(l["leaseId"].GetString()).second) fail("lease listed twice in heartbeat", body);
    }
    std::set<std::string> expected;
    for (const auto& [id, handler] : running) expected.insert(id);
    if (listed != expected) fail("heartbeat inFlight differs from the running leases", body);
    if (!listed.empty()) ++busy_heartbeats;
    if (stop_called && stopped) fail("heartbeat after stop");
  }

  void on_event(StartSettled&) {
    if (start_settled) fail("StartSettled twice");
    start_settled = true;
  }
  void on_event(StopSettled&) {
    if (stopped) fail("StopSettled twice");
    stopped = true;
  }
  void on_event(LogEvent& e) { TRACE("  log %s %s\n", e.msg.c_str(), e.meta_json.c_str()); }
  template <typename T>
  void on_event(T&) {}

  void check() {
    if (stopped != engine.is_stopped()) fail("is_stopped() disagrees with StopSettled");
    if (auto t = engine.poll_timeout(); t && *t < now) fail("poll_timeout in the past");
    if (stopped) {
      if (engine.poll_timeout()) fail("timer left after StopSettled");
      if (!pending.empty()) fail("POST left in flight after StopSettled");
      if (stream != 0) fail("stream left open after StopSettled");
      if (!engine.running_lease_ids().empty()) fail("running leases after StopSettled");
      if (!kept.empty()) fail("a kept output was never let go by StopSettled");
    } else {
      std::set<std::string> ids;
      for (const std::string& id : engine.running_lease_ids()) {
        if (!ids.insert(id).second) fail("running_lease_ids lists an id twice", id);
      }
      std::set<std::string> expected;
      for (const auto& [id, handler] : running) expected.insert(id);
      if (ids != expected) {
        std::string both = "engine:";
        for (const auto& id : ids) both += " " + id;
        both += " model:";
        for (const auto& id : expected) both += " " + id;
        fail("running_lease_ids differs from the model", both);
      }
      for (std::uint32_t i = 0; i < outstanding.size(); ++i) {
        const CapabilityStats cs = engine.capability_stats(i);
        if (cs.running != outstanding[i]) fail("capability running != handlers outstanding");
        if (cs.running > max_concurrency[i]) fail("running above every concurrency ever set");
        if (cs.concurrency > max_concurrency[i]) fail("concurrency above what was set");
      }
    }
    if (stop_called && !stopped && now > stop_deadline) fail("stop did not settle in time");
    // Stats count verdicts when decided; a verdict may wait for a slot or for
    // its progress POST (rule 10) before it is first posted, or be given up
    // at stop's flush deadline without ever going out.
    const Stats& st = engine.stats();
    const std::uint64_t decided = st.leases_acked + st.nacks_retryable + st.nacks_terminal +
                                  st.nacks_schema_mismatch + st.nacks_cancelled;
    if (decided < acks + nacks) fail("stats count fewer verdicts than were posted");
    if (!stopped && decided - (acks + nacks) > st.requests_queued) fail("stats count verdicts that are nowhere");
    if (st.requests_in_flight != pending.size()) fail("stats.requests_in_flight != POSTs pending");
    // The bound: the config's, or (0) the capabilities' concurrency added up.
    // A bound lowered below what is in flight sends nothing more, so what is
    // in flight stays under the largest bound so far.
    std::uint64_t sum = 0;
    for (std::uint32_t i = 0; i < engine.capability_count(); ++i) sum += engine.capability_stats(i).concurrency;
    const std::uint32_t bound = cfg.max_in_flight_requests
                                    ? cfg.max_in_flight_requests
                                    : static_cast<std::uint32_t>(std::clamp<std::uint64_t>(sum, kAutoRequestsMin, kAutoRequestsMax));
    if (st.request_bound != bound) fail("stats.request_bound is not the bound the config and concurrency give");
    max_bound = std::max(max_bound, bound);
    if (st.requests_in_flight > max_bound) fail("more POSTs in flight than the bound");
    if (pending.size() + unreleased.size() > max_bound) fail("POSTs in flight and unreleased exceed the bound");
  }

  void timeout_step(TimeMs at) {
    now = std::max(now, at);
    TRACE("timeout @%lld\n", (long long)now);
    engine.handle_timeout(now);
    // The drain is over: every lease still running has ended in its verdict
    // (before anything else this timeout does).
    if (drain_deadline && now >= drain_deadline) {
      running.clear();
      drain_deadline = 0;
    }
    drain();
    if (auto t = engine.poll_timeout(); t && *t <= now) fail("poll_timeout not after now after handle_timeout");
  }

  void advance(TimeMs ms) {
    const TimeMs target = now + ms;
    for (int guard = 0;; ++guard) {
      if (guard > 100000) fail("too many deadlines in one advance");
      auto deadline = engine.poll_timeout();
      if (!deadline || *deadline > target) break;
      timeout_step(*deadline);
    }
    now = target;
    check();
  }

  // ----------------------------------------------------------- frames --

  std::string pick_type() {
    switch (fdp.ConsumeIntegralInRange<int>(0, 4)) {
      case 0: return kCapTypes[0];
      case 1: return kCapTypes[1];
      case 2: return kCapTypes[2];
      case 3: return "core/unknown";
      default: return kCapTypes[0];
    }
  }

  std::string pick_input() {
    switch (fdp.ConsumeIntegralInRange<int>(0, 7)) {
      case 0: return "null";
      case 1: return R"({"x":1})";
      case 2: return R"({"x":"no"})";
      case 3: return R"({"y":2})";
      case 4: return R"("\ud83d\ude00 \u0000 caf\u00e9")";
      case 5: return R"([1,2,{"x":3}])";
      case 6: return R"({"x":-7,"deep":[[[[{"a":null}]]]]})";
      default: return "1.5e3";
    }
  }

  std::string lease_frame() {
    const std::string id = lease_id(fdp.ConsumeIntegralInRange<int>(0, kLeasePool - 1));
    const std::string task = "T" + std::to_string(++task_counter);
    switch (fdp.ConsumeIntegralInRange<int>(0, 9)) {
      case 0: return R"({"type":"lease","task":{"taskId":")" + task + R"(","type":"core/a","input":1}})";
      case 1: return R"({"type":"lease","leaseId":")" + id + R"(","task":{"type":"core/a","input":1}})";
      case 2: return R"({"type":"lease","leaseId":")" + id + R"(","task":{"taskId":")" + task + R"("}})";
      case 3: return R"({"type":"lease","leaseId":")" + id + R"(","task":[1]})";
      default:
        return R"({"type":"lease","leaseId":")" + id + R"(","expiresAt":"2024-01-01T12:00:10.000Z","task":{"taskId":")" +
               task + R"(","type":")" + pick_type() + R"(","input":)" + pick_input() + R"(,"attempt":1}})";
    }
  }

  std::string frame() {
    switch (fdp.ConsumeIntegralInRange<int>(0, 12)) {
      case 0:
      case 1:
      case 2:
      case 3: return lease_frame();
      case 4:
        return R"({"type":"cancel","leaseId":")" + lease_id(fdp.ConsumeIntegralInRange<int>(0, kLeasePool - 1)) +
               (fdp.ConsumeBool() ? R"(","reason":"workflow cancelled"})" : R"("})");
      case 5: return R"({"type":"capability-revoked","capability":")" + pick_type() + R"(","reason":"r"})";
      case 6:
        return std::string(R"({"type":"disconnect","reason":"superseded")") +
               (fdp.ConsumeBool() ? R"(,"reconnect":false})" : "}");
      case 7:
      case 8: return R"({"type":"registered","sessionId":"s-1","capabilities":[{"type":"core/a"}]})";
      case 9: return R"({"type":"registered","sessionId":"s-2","capabilities":[],"rejected":[{"type":"core/b","reason":"no"}]})";
      case 10: return R"({"type":"future-thing","x":1})";
      case 11: return fdp.ConsumeRandomLengthString(64);  // garbage
      default: return R"({"type":"cancel"})";
    }
  }

  void send_stream_text(std::uint64_t id, const std::string& text) {
    if (fdp.ConsumeBool()) {
      engine.handle_stream_bytes(now, id, text);
      drain();
      return;
    }
    // Split into up to 3 chunks at fuzz-chosen points.
    std::size_t pos = 0;
    for (int i = 0; i < 2 && pos < text.size(); ++i) {
      const std::size_t cut = fdp.ConsumeIntegralInRange<std::size_t>(pos, text.size());
      engine.handle_stream_bytes(now, id, std::string_view(text).substr(pos, cut - pos));
      drain();
      pos = cut;
    }
    engine.handle_stream_bytes(now, id, std::string_view(text).substr(pos));
    drain();
  }

  void send_frame() {
    const std::uint64_t id = fdp.ConsumeIntegralInRange<int>(0, 15) == 0 ? old_stream : stream;
    const std::string json = frame();
    TRACE("frame on %llu: %s\n", (unsigned long long)id, json.c_str());
    if (cfg.carrier == Carrier::kIpc) {
      engine.handle_stream_frame(now, id, json);
      drain();
      return;
    }
    std::string text;
    switch (fdp.ConsumeIntegralInRange<int>(0, 3)) {
      case 0: text = "event: frame\r\ndata: " + json + "\r\n\r\n"; break;
      case 1: text = ": ping\n\ndata: " + json + "\n\n"; break;
      default: text = "data: " + json + "\n\n"; break;
    }
    if (fdp.ConsumeIntegralInRange<int>(0, 7) == 0) text += "data: " + frame() + "\n\n";  // two in one chunk
    send_stream_text(id, text);
  }

  // ------------------------------------------------------------ handlers --

  std::uint64_t pick_handler(bool include_finished) {
    std::vector<std::uint64_t> ids;
    for (const auto& [id, h] : handlers) ids.push_back(id);
    if (include_finished) ids.insert(ids.end(), finished_handlers.begin(), finished_handlers.end());
    if (ids.empty()) return fdp.ConsumeIntegral<std::uint8_t>();
    return ids[fdp.ConsumeIntegralInRange<std::size_t>(0, ids.size() - 1)];
  }

  HandlerOutcome outcome() {
    HandlerOutcome o;
    switch (fdp.ConsumeIntegralInRange<int>(0, 11)) {
      case 0: o.result = HandlerResult::kReturned; o.output_json = R"({"y":1})"; break;
      case 1: o.result = HandlerResult::kReturned; o.output_json = "null"; break;
      case 2: o.result = HandlerResult::kReturned; o.output_json = R"({"y":"\ud83d\ude00","z":[1,2]})"; break;
      case 3: o.result = HandlerResult::kReturned; o.output_json = "{"; break;            // invalid JSON
      case 4: o.result = HandlerResult::kReturned; o.output_json = ""; break;             // undefined
      case 5: o.result = HandlerResult::kThrew; o.reason = fdp.ConsumeBool() ? "boom" : ""; break;
      case 6:
        o.result = HandlerResult::kFailed;
        o.reason = "bad key";
        o.code = fdp.ConsumeBool() ? "INVALID_API_KEY" : "";
        break;
      case 7:
        o.result = HandlerResult::kInputInvalid;
        o.errors = {{"/x", "Expected number"}};
        break;
      case 8:
        o.result = HandlerResult::kOutputInvalid;
        o.errors = {{"", "Required"}, {"/a/b", "x"}};
        break;
      case 9: o.result = HandlerResult::kReturned; o.output_json = "[[[[[[[[[[1]]]]]]]]]]"; break;
      case 10:  // the host keeps the value and sends no JSON of it
        o.result = HandlerResult::kReturned;
        o.output_json = "never read {";
        o.host_builds_ack = o.host_keeps_output = o.output_is_json = true;
        break;
      default: o.result = HandlerResult::kReturned; o.output_json = R"({"y":1} trailing)"; break;
    }
    return o;
  }

  void handler_done() {
    const std::uint64_t id = pick_handler(fdp.ConsumeIntegralInRange<int>(0, 5) == 0);
    auto it = handlers.find(id);
    TRACE("done h%llu\n", (unsigned long long)id);
    HandlerOutcome o = outcome();
    // The host keeps an output of any handler it started, until stop()
    // (host.js); one the engine does not use (a lost lease's) is let go all
    // the same (ReleaseOutput).
    if (o.host_keeps_output && (it == handlers.end() || stopped)) {
      o.host_keeps_output = o.host_builds_ack = false;
    }
    // A third of them are kept for the first attempt only, with their JSON
    // for the retries (host.js: a value that only a schema check vouches
    // for is sent as JSON too). Chosen by handler id, not by the fuzzer's
    // bytes, so that the corpus inputs play as they were recorded.
    if (o.host_keeps_output && id % 3 == 0) {
      o.host_keeps_output = false;
      o.output_json = R"({"kept":true})";
    }
    if (o.host_builds_ack) {
      kept[id] = Kept{it->second.lease_id, it->second.task_id};
      TRACE("kept h%llu (%s)\n", (unsigned long long)id, it->second.lease_id.c_str());
    }
    engine.handle_handler_done(now, id, std::move(o));
    if (it != handlers.end()) {
      --outstanding[it->second.capability];
      // The lease's verdict is decided now (or was earlier: lost, stopped):
      // it runs no more, even while its terminal frame waits for a slot or
      // for its progress POST (rule 10).
      auto r = running.find(it->second.lease_id);
      if (r != running.end() && r->second == id) running.erase(r);
      handlers.erase(it);
      finished_handlers.push_back(id);
      if (finished_handlers.size() > 16) finished_handlers.erase(finished_handlers.begin());
    }
    drain();
  }

  void progress() {
    ProgressUpdate u;
    if (fdp.ConsumeBool()) {
      switch (fdp.ConsumeIntegralInRange<int>(0, 3)) {
        case 0: u.percent = std::numeric_limits<double>::quiet_NaN(); break;
        case 1: u.percent = std::numeric_limits<double>::infinity(); break;
        default: u.percent = fdp.ConsumeIntegralInRange<int>(0, 100) + 0.25; break;
      }
    }
    if (fdp.ConsumeBool()) u.message = fdp.ConsumeRandomLengthString(16);
    if (fdp.ConsumeBool()) u.data_json = fdp.ConsumeBool() ? R"({"step":1})" : R"(["\u0000",null])";
    engine.handle_progress(now, pick_handler(fdp.ConsumeIntegralInRange<int>(0, 5) == 0), std::move(u));
    drain();
  }

  // ---------------------------------------------------------------- posts --

  std::string post_body(PostPath path) {
    switch (fdp.ConsumeIntegralInRange<int>(0, 6)) {
      case 0: return "";
      case 1: return R"({"error":"nope"})";
      case 2: return "<html>502</html>";
      case 3:
      case 4: {
        std::string body = R"({"lostLeases":[)";
        const int n = fdp.ConsumeIntegralInRange<int>(1, 3);
        for (int i = 0; i < n; ++i) {
          if (i) body += ',';
          if (!running.empty() && fdp.ConsumeBool()) {
            auto it = running.begin();
            std::advance(it, fdp.ConsumeIntegralInRange<std::size_t>(0, running.size() - 1));
            body += '"' + it->first + '"';
          } else {
            body += '"' + lease_id(fdp.ConsumeIntegralInRange<int>(0, kLeasePool - 1)) + '"';
          }
        }
        return body + "]}";
      }
      case 5: return R"({"lostLeases":"L0"})";
      default: return path == PostPath::kHeartbeat ? R"({"lostLeases":[]})" : "{}";
    }
  }

  void answer_post() {
    std::uint64_t id;
    PostPath path = PostPath::kHeartbeat;
    if (pending.empty() || fdp.ConsumeIntegralInRange<int>(0, 15) == 0) {
      id = fdp.ConsumeIntegralInRange<std::uint64_t>(0, 64);  // maybe unknown / aborted
      if (auto it = pending.find(id); it != pending.end()) path = it->second;
    } else {
      auto it = pending.begin();
      std::advance(it, fdp.ConsumeIntegralInRange<std::size_t>(0, pending.size() - 1));
      id = it->first;
      path = it->second;
    }
    const int status = fdp.ConsumeBool() ? 200 : kStatuses[fdp.ConsumeIntegralInRange<std::size_t>(0, std::size(kStatuses) - 1)];
    const std::string body = post_body(path);
    // 1.3: a 2xx heartbeat answer's lostLeases stop running for the gateway
    // (whether or not the engine fires an abort: a cancelled lease's signal
    // has fired already).
    if (pending.count(id) && path == PostPath::kHeartbeat && status >= 200 && status < 300) {
      rapidjson::Document answer;
      answer.Parse(body.c_str());
      if (!answer.HasParseError() && answer.IsObject() && answer.HasMember("lostLeases") &&
          answer["lostLeases"].IsArray()) {
        for (const auto& lost : answer["lostLeases"].GetArray()) {
          if (lost.IsString()) running.erase(lost.GetString());
        }
      }
    }
    const bool late_heartbeat = !pending.count(id) && abandoned_heartbeats.count(id);
    if (pending.erase(id) && cfg.host_releases_posts) unreleased.push_back(id);
    TRACE("answer %llu %d %s\n", (unsigned long long)id, status, body.c_str());
    engine.handle_post_result(now, id, status, body);
    // A late answer to a heartbeat the engine gave up may still lose the
    // leases it names (the engine decides whether it still counts: same
    // stream, one of the last few); no other lease may stop running.
    if (late_heartbeat) {
      const std::vector<std::string> still = engine.running_lease_ids();
      rapidjson::Document answer;
      answer.Parse(body.c_str());
      if (!answer.HasParseError() && answer.IsObject() && answer.HasMember("lostLeases") && answer["lostLeases"].IsArray()) {
        for (const auto& lost : answer["lostLeases"].GetArray()) {
          if (lost.IsString() && std::find(still.begin(), still.end(), lost.GetString()) == still.end()) {
            running.erase(lost.GetString());
          }
        }
      }
    }
    drain();
  }

  // host_releases_posts: the connection of an answered POST is free again
  // (sometimes an unknown or repeated id).
  void release_post() {
    std::uint64_t id = fdp.ConsumeIntegralInRange<std::uint64_t>(0, 64);
    if (!unreleased.empty() && fdp.ConsumeIntegralInRange<int>(0, 7) != 0) {
      const std::size_t at = fdp.ConsumeIntegralInRange<std::size_t>(0, unreleased.size() - 1);
      id = unreleased[at];
    }
    unreleased.erase(std::remove(unreleased.begin(), unreleased.end(), id), unreleased.end());
    TRACE("release %llu\n", (unsigned long long)id);
    engine.handle_post_released(now, id);
    drain();
  }

  // ------------------------------------------------------------- commands --

  void do_start() {
    Status s = engine.start(now);
    if (stop_called) {
      if (s.code != ErrorCode::kStopped) fail("start after stop did not fail with kStopped");
    } else if (!s.ok()) {
      fail("start failed", s.message);
    } else {
      started = true;
    }
    drain();
  }

  void do_stop(bool drain_flag, TimeMs timeout) {
    const bool first = !stop_called;
    engine.stop(now, drain_flag, timeout);
    if (first) {
      stop_called = true;
      stop_deadline = now + (drain_flag && timeout > 0 ? timeout : 0) + cfg.stop_flush_ms;
      if (drain_flag && timeout > 0) {
        drain_deadline = now + timeout;
      } else {
        running.clear();  // every running lease ends now (rule 12)
      }
    }
    drain();
  }

  void do_update() {
    const int which = fdp.ConsumeIntegralInRange<int>(0, static_cast<int>(outstanding.size()));
    const std::string type = which < static_cast<int>(outstanding.size()) ? types[which] : "core/nope";
    // With the default bound (0: the concurrency added up), far enough to
    // move it past its floor and its ceiling, and back below what is in flight.
    const auto concurrency = fdp.ConsumeIntegralInRange<std::uint32_t>(0, cfg.max_in_flight_requests ? 4 : 48);
    Status s = engine.update_capability(now, type, concurrency);
    const bool known = which < static_cast<int>(outstanding.size());
    if (s.ok()) {
      if (!known || concurrency < 1 || stop_called) fail("update_capability accepted a bad call");
      max_concurrency[which] = std::max(max_concurrency[which], concurrency);
    } else if (known && concurrency >= 1 && !stop_called) {
      fail("update_capability refused a good call", s.message);
    }
    drain();
  }

  void stream_open_answer() {
    static constexpr int kOpen[] = {200, 200, 200, 401, 403, 500};
    const int status = kOpen[fdp.ConsumeIntegralInRange<int>(0, 5)];
    const bool sse = fdp.ConsumeIntegralInRange<int>(0, 7) != 0;
    const std::uint64_t id = fdp.ConsumeIntegralInRange<int>(0, 15) == 0 ? old_stream : stream;
    engine.handle_stream_opened(now, id, status, sse);
    if (id == stream && status == 200 && sse) stream_opened = true;
    drain();
  }

  void stream_closed() {
    const std::uint64_t id = stream;
    if (id != 0) {
      old_stream = id;
      stream = 0;
      stream_opened = false;
    }
    engine.handle_stream_closed(now, id, fdp.ConsumeBool() ? "network error" : "");
    drain();
  }

  TimeMs step_ms() {
    static constexpr TimeMs kSteps[] = {0, 1, 10, 100, 499, 1000, 4999, 10'000, 30'000, 45'000, 120'000};
    if (fdp.ConsumeBool()) return kSteps[fdp.ConsumeIntegralInRange<std::size_t>(0, std::size(kSteps) - 1)];
    return fdp.ConsumeIntegralInRange<TimeMs>(0, 70'000);
  }

  void step() {
    TRACE("step @%lld\n", (long long)now);
    switch (fdp.ConsumeIntegralInRange<int>(0, 22)) {
      case 22: return release_post();
      case 0: return do_start();
      case 1:
      case 2:
      case 3:
      case 4:
      case 20: return send_frame();
      case 5: return stream_open_answer();
      case 6:
      case 7:
      case 8: return answer_post();
      case 9:
      case 10:
      case 21: return handler_done();
      case 11: return progress();
      case 12: return advance(step_ms());
      case 13: return advance(step_ms());
      case 14: return do_update();
      case 15:
        if (fdp.ConsumeIntegralInRange<int>(0, 3) == 0)
          return do_stop(fdp.ConsumeBool(), fdp.ConsumeIntegralInRange<TimeMs>(-5, 20'000));
        return advance(fdp.ConsumeIntegralInRange<TimeMs>(0, 2000));
      case 16: return stream_closed();
      case 17: {
        // Raw garbage / oversized / partial events on the stream.
        std::string text;
        switch (fdp.ConsumeIntegralInRange<int>(0, 3)) {
          case 0: text = "data: " + std::string(cfg.max_frame_bytes + 10, 'x') + "\n\n"; break;
          case 1: text = "\xef\xbb\xbf: hi\r"; break;
          case 2: text = "data: {\"type\":\"lea"; break;  // unfinished: completed (or not) later
          default: text = fdp.ConsumeRandomLengthString(128); break;
        }
        if (cfg.carrier == Carrier::kIpc) {
          engine.handle_stream_frame(now, stream, text);
          drain();
          return;
        }
        return send_stream_text(stream, text);
      }
      case 18: {
        CapabilitySpec spec;
        spec.type = "core/late";
        Status s = engine.handle(std::move(spec));
        if (s.ok() != (!started && !stop_called && !late_added)) fail("late handle() result wrong", s.message);
        if (s.ok()) {
          // Accepted before start: a capability no lease names.
          late_added = true;
          types.push_back("core/late");
          outstanding.push_back(0);
          max_concurrency.push_back(1);
        }
        return;
      }
      default: return connect_quickly();
    }
  }

  // Accept the stream, answer register, send registered.
  void connect_quickly() {
    if (stream != 0 && !stream_opened) {
      engine.handle_stream_opened(now, stream, 200, true);
      stream_opened = true;
      drain();
    }
    for (auto it = pending.begin(); it != pending.end(); ++it) {
      if (it->second == PostPath::kRegister) {
        const std::uint64_t id = it->first;
        pending.erase(it);
        if (cfg.host_releases_posts) unreleased.push_back(id);
        engine.handle_post_result(now, id, 200, "{}");
        drain();
        break;
      }
    }
    const std::string reg = R"({"type":"registered","sessionId":"s-9","capabilities":[]})";
    if (cfg.carrier == Carrier::kIpc) {
      engine.handle_stream_frame(now, stream, reg);
      drain();
    } else {
      engine.handle_stream_bytes(now, stream, "data: " + reg + "\n\n");
      drain();
    }
  }

  bool late_added = false;
  int busy_heartbeats = 0;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  FuzzedDataProvider fdp(data, size);

  Config config;
  config.neuron_id = "w-1";
  config.carrier = fdp.ConsumeIntegralInRange<int>(0, 7) == 0 ? Carrier::kIpc : Carrier::kHttp;
  config.heartbeat_interval_ms = fdp.ConsumeIntegralInRange<TimeMs>(100, 12'000);
  config.initial_reconnect_delay_ms = fdp.ConsumeIntegralInRange<TimeMs>(4, 1000);
  config.max_reconnect_delay_ms = config.initial_reconnect_delay_ms * fdp.ConsumeIntegralInRange<TimeMs>(1, 64);
  config.reconnect_jitter = fdp.ConsumeIntegralInRange<int>(0, 5) / 10.0;
  config.random_seed = fdp.ConsumeIntegral<std::uint64_t>();
  config.idle_timeout_ms = fdp.ConsumeBool() ? 45'000 : fdp.ConsumeIntegralInRange<TimeMs>(1, 60'000);
  config.max_frame_bytes = fdp.ConsumeIntegralInRange<std::size_t>(1024, 4096);
  config.request_timeout_ms = fdp.ConsumeIntegralInRange<TimeMs>(20, 30'000);
  config.stop_flush_ms = fdp.ConsumeIntegralInRange<TimeMs>(1, 8'000);
  config.max_terminal_attempts = fdp.ConsumeIntegralInRange<int>(1, 5);
  config.max_in_flight_requests = fdp.ConsumeIntegralInRange<std::uint32_t>(0, 6);  // 0: the default
  config.progress_grace_ms = fdp.ConsumeIntegralInRange<TimeMs>(0, 3'000);
  config.host_releases_posts = config.carrier == Carrier::kHttp && fdp.ConsumeBool();
  config.recent_lease_capacity = 1'000'000;
  config.recent_lease_ttl_ms = RecentIds::kMaxTtlMs;
  if (!validate_config(config).ok()) fail("fuzz config invalid", validate_config(config).message);

  Host host(fdp, config);
  host.engine.set_log_level(fdp.ConsumeBool() || (kTrace && std::getenv("FUZZ_ENGINE_LOGS")) ? LogLevel::kDebug
                                                                                          : LogLevel::kSilent);
  host.engine.set_frame_events(fdp.ConsumeBool());

  const int ncaps = fdp.ConsumeIntegralInRange<int>(1, 3);
  for (int i = 0; i < ncaps; ++i) {
    CapabilitySpec spec;
    spec.type = kCapTypes[i];
    spec.concurrency = fdp.ConsumeIntegralInRange<std::uint32_t>(1, 3);
    spec.on_behalf_of = i == 2 ? "user:abc" : "";
    if (i == 1) {
      spec.input_schema_json = kInputSchema;
      spec.output_schema_json = kOutputSchema;
    }
    if (i == 2) {
      spec.host_validates = true;
      spec.input_schema_json = kInputSchema;
    }
    Status s = host.engine.handle(spec);
    if (!s.ok()) fail("handle failed", s.message);
    host.types.push_back(spec.type);
    host.outstanding.push_back(0);
    host.max_concurrency.push_back(spec.concurrency);
  }

  if (fdp.ConsumeIntegralInRange<int>(0, 7) != 0) {
    host.do_start();
    if (fdp.ConsumeIntegralInRange<int>(0, 3) != 0) host.connect_quickly();
  }
  for (int steps = 0; steps < 400 && fdp.remaining_bytes() > 0; ++steps) host.step();
  const bool registered_before_stop = host.engine.stats().frames_in > 0 && host.engine.is_registered();

  // Always end with a stop and enough time for it: it must settle on time,
  // holding nothing afterwards.
  if (!host.stop_called) host.do_stop(fdp.ConsumeBool(), 3000);
  const TimeMs until = std::max<TimeMs>(host.stop_deadline - host.now, 0) + 1;
  host.advance(until);
  if (!host.stopped) fail("not stopped after the stop deadline");
  // FUZZ_ENGINE_SUMMARY=1 ./fuzz_engine corpus/*: what the inputs reach.
  static const bool summary = std::getenv("FUZZ_ENGINE_SUMMARY") != nullptr;
  if (summary) {
    const Stats& st = host.engine.stats();
    std::fprintf(stderr,
                 "summary: registered=%d received=%llu dup=%llu acked=%llu nack_r=%llu nack_t=%llu nack_sm=%llu "
                 "nack_c=%llu dropped=%llu lost=%llu reconnects=%llu frames_out=%llu heartbeats_busy=%d\n",
                 registered_before_stop, (unsigned long long)st.leases_received,
                 (unsigned long long)st.leases_duplicate, (unsigned long long)st.leases_acked,
                 (unsigned long long)st.nacks_retryable, (unsigned long long)st.nacks_terminal,
                 (unsigned long long)st.nacks_schema_mismatch, (unsigned long long)st.nacks_cancelled,
                 (unsigned long long)st.leases_dropped, (unsigned long long)st.leases_lost,
                 (unsigned long long)st.reconnects, (unsigned long long)st.frames_out, host.busy_heartbeats);
  }
  return 0;
}
