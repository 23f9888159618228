// tests/harness/sim_gateway.h: a simulated gateway and a virtual clock around
// one Engine, for tests, fuzzers and benchmarks.
//
//   Sim sim;                              // engine with a test config
//   sim.handle("core/echo", 2);
//   sim.connect();                        // start, stream opens, registered
//   sim.lease("l-1", "t-1", "core/echo", R"({"x":1})");
//   ASSERT_EQ(sim.started.size(), 1);
//   sim.done(sim.started[0].handler_id, ok(R"({"y":2})"));
//   EXPECT_EQ(sim.last_post(PostPath::kAck)["output"]["y"], 2);
//
// The Sim performs the engine's actions the way a host would and records
// them; POSTs wait in `pending` until answered (or are answered at once with
// `auto_answer`). advance(ms) moves the virtual clock through every deadline
// on the way, exactly like a host with one timer. Nothing sleeps.
#pragma once

#include <algorithm>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <rapidjson/document.h>
#include <rapidjson/writer.h>

#include "neuron/engine.h"
#include "neuron/frames.h"

namespace neuron::testing {

inline Config test_config() {
  Config c;
  c.neuron_id = "w-1";
  c.reconnect_jitter = 0.0;
  return c;
}

struct SentPost {
  std::uint64_t request_id;
  PostPath path;
  std::string body;
  TimeMs at;
  std::shared_ptr<rapidjson::Document> doc;  // parsed body
  const rapidjson::Value& json() const { return *doc; }
};

// A StartHandler as the host keeps it (the action's views live only until
// the next call into the engine).
struct Started {
  std::uint64_t handler_id;
  std::uint32_t capability;
  std::string lease_id;
  std::string task_json;
  std::string input_json;
};

inline HandlerOutcome returned(std::string output_json) {
  HandlerOutcome o;
  o.result = HandlerResult::kReturned;
  o.output_json = std::move(output_json);
  return o;
}
inline HandlerOutcome threw(std::string message) {
  HandlerOutcome o;
  o.result = HandlerResult::kThrew;
  o.reason = std::move(message);
  return o;
}
inline HandlerOutcome failed(std::string reason, std::string code = {}) {
  HandlerOutcome o;
  o.result = HandlerResult::kFailed;
  o.reason = std::move(reason);
  o.code = std::move(code);
  return o;
}

class Sim {
 public:
  explicit Sim(Config config = test_config()) : engine(std::move(config)) {
    engine.set_log_level(LogLevel::kDebug);
    engine.set_frame_events(true);
  }

  Engine engine;
  TimeMs now = 1'700'000'000'000;  // 2023-11-14T22:13:20.000Z

  // What the engine did, in order.
  std::vector<SentPost> posts;                 // every Post ever
  std::map<std::uint64_t, SentPost> pending;   // Posts not answered yet
  std::vector<std::uint64_t> aborted_posts;
  std::vector<Started> started;
  std::vector<AbortHandler> aborts;
  std::vector<std::uint32_t> released;  // ReleaseTask host refs
  std::vector<std::uint64_t> released_outputs;  // ReleaseOutput handler ids
  std::vector<OpenStream> opens;
  std::vector<std::uint64_t> closes;
  std::vector<Event> events;

  std::uint64_t stream = 0;  // the stream the engine has open (0: none)
  bool auto_answer = false;  // answer every POST 200 "{}" as it is sent
  // A gateway reply hook for auto-answered posts: status + body per post.
  std::function<std::pair<int, std::string>(const SentPost&)> responder;

  // ---- driving ----

  void drain() {
    for (;;) {
      bool any = false;
      while (auto a = engine.poll_action()) {
        any = true;
        perform(std::move(*a));
      }
      while (auto e = engine.poll_event()) {
        any = true;
        events.push_back(std::move(*e));
      }
      if (!any) break;
    }
  }

  // Moves the clock forward by `ms`, firing every deadline on the way.
  void advance(TimeMs ms) {
    const TimeMs target = now + ms;
    for (;;) {
      auto deadline = engine.poll_timeout();
      if (!deadline || *deadline > target) break;
      now = std::max(now, *deadline);
      engine.handle_timeout(now);
      drain();
    }
    now = target;
  }

  // ---- the gateway's side ----

  void handle(std::string type, std::uint32_t concurrency = 1, std::string input_schema = {},
              std::string output_schema = {}) {
    CapabilitySpec spec;
    spec.type = std::move(type);
    spec.concurrency = concurrency;
    spec.input_schema_json = std::move(input_schema);
    spec.output_schema_json = std::move(output_schema);
    Status s = engine.handle(std::move(spec));
    if (!s.ok()) throw std::runtime_error("handle failed: " + s.message);
  }

  void start() {
    Status s = engine.start(now);
    if (!s.ok()) throw std::runtime_error("start failed: " + s.message);
    drain();
  }

  // Accepts the open stream (200, text/event-stream).
  void accept_stream(int status = 200, bool event_stream = true) {
    engine.handle_stream_opened(now, stream, status, event_stream);
    drain();
  }

  // start + accept + answer register + `registered`.
  void connect(std::string session = "s-1") {
    start();
    establish(std::move(session));
  }

  // After an OpenStream: accept, answer register, send registered.
  void establish(std::string session = "s-1") {
    accept_stream();
    if (has_pending(PostPath::kRegister)) answer(PostPath::kRegister, 200);
    registered(std::move(session));
  }

  void registered(std::string session = "s-1") {
    send_frame(R"({"type":"registered","sessionId":")" + session +
               R"(","capabilities":[{"type":"x","scope":"any","concurrency":1}]})");
  }

  void send_bytes(std::string_view bytes) {
    engine.handle_stream_bytes(now, stream, bytes);
    drain();
  }

  void send_frame(const std::string& json) {
    send_bytes("event: frame\ndata: " + json + "\n\n");
  }

  void lease(std::string lease_id, std::string task_id, std::string type, std::string input = "null",
             std::string extra_task_fields = {}) {
    send_frame(R"({"type":"lease","leaseId":")" + lease_id +
               R"(","expiresAt":"2024-01-01T12:00:10.000Z","task":{"taskId":")" + task_id +
               R"(","type":")" + type + R"(","input":)" + input + R"(,"attempt":1)" +
               extra_task_fields + "}}");
  }

  void cancel(std::string lease_id) {
    send_frame(R"({"type":"cancel","leaseId":")" + lease_id + R"(","reason":"workflow cancelled"})");
  }

  void close_stream(std::string reason = "network error") {
    const std::uint64_t id = stream;
    stream = 0;
    engine.handle_stream_closed(now, id, reason);
    drain();
  }

  // Answers the oldest pending POST to `path`.
  void answer(PostPath path, int status, std::string body = "{}") {
    for (auto& [id, post] : pending) {
      if (post.path == path) {
        const std::uint64_t rid = id;
        pending.erase(rid);
        engine.handle_post_result(now, rid, status, body);
        drain();
        return;
      }
    }
    throw std::runtime_error("no pending post to " + std::string(post_path_string(path)));
  }

  bool has_pending(PostPath path) const {
    return std::any_of(pending.begin(), pending.end(), [&](const auto& p) { return p.second.path == path; });
  }

  // Answers every pending POST (answers may create more; those too).
  void answer_all(int status = 200, std::string body = "{}") {
    while (!pending.empty()) {
      auto it = pending.begin();
      const std::uint64_t rid = it->first;
      pending.erase(it);
      engine.handle_post_result(now, rid, status, body);
      drain();
    }
  }

  void done(std::uint64_t handler_id, HandlerOutcome outcome) {
    engine.handle_handler_done(now, handler_id, std::move(outcome));
    drain();
  }

  void progress(std::uint64_t handler_id, ProgressUpdate update) {
    engine.handle_progress(now, handler_id, std::move(update));
    drain();
  }

  // ---- looking at what happened ----

  std::vector<const SentPost*> posts_to(PostPath path) const {
    std::vector<const SentPost*> out;
    for (const SentPost& p : posts) {
      if (p.path == path) out.push_back(&p);
    }
    return out;
  }
  std::size_t count(PostPath path) const { return posts_to(path).size(); }
  const rapidjson::Value& last_post(PostPath path) const {
    auto list = posts_to(path);
    if (list.empty()) throw std::runtime_error("no post to " + std::string(post_path_string(path)));
    return list.back()->json();
  }
  // Terminal frames (ack + nack) posted for a lease id, first attempts and retries.
  std::size_t terminal_posts_for(std::string_view lease_id) const {
    std::size_t n = 0;
    for (const SentPost& p : posts) {
      if ((p.path == PostPath::kAck || p.path == PostPath::kNack) && p.json().HasMember("leaseId") &&
          std::string_view(p.json()["leaseId"].GetString()) == lease_id) {
        ++n;
      }
    }
    return n;
  }

  template <typename T>
  std::vector<const T*> events_of() const {
    std::vector<const T*> out;
    for (const Event& e : events) {
      if (auto* p = std::get_if<T>(&e)) out.push_back(p);
    }
    return out;
  }
  bool has_error(ErrorCode code) const {
    for (auto* e : events_of<ErrorEvent>()) {
      if (e->error.code == code) return true;
    }
    return false;
  }
  bool logged(std::string_view msg) const {
    for (auto* log : events_of<LogEvent>()) {
      if (log->msg == msg) return true;
    }
    return false;
  }

 private:
  void perform(Action action) {
    std::visit([this](auto& a) { perform_one(a); }, action);
  }
  void perform_one(OpenStream& a) {
    stream = a.stream_id;
    opens.push_back(a);
  }
  void perform_one(CloseStream& a) {
    closes.push_back(a.stream_id);
    if (stream == a.stream_id) stream = 0;
  }
  void perform_one(Post& a) {
    // An ack the host builds comes without a body: the Sim stands in for the
    // host's frame with one that names the handler.
    // One the host writes as JSON (HostAck::json) also names the ids.
    std::string body = a.host_ack ? R"({"type":"ack","hostBuilt":true,"leaseHandler":)" +
                                        std::to_string(a.host_ack->handler)
                                  : std::string(a.body);
    if (a.host_ack && a.host_ack->json) {
      body += R"(,"hostJson":true,"sentAt":)" + std::to_string(a.host_ack->sent_at) + R"(,"leaseId":)";
      append_json_string(body, a.host_ack->lease_id);
      body += R"(,"taskId":)";
      append_json_string(body, a.host_ack->task_id);
      body += R"(,"durationMs":)" + std::to_string(a.host_ack->duration_ms);
    }
    if (a.host_ack) body += "}";
    SentPost p{a.request_id, a.path, std::move(body), now, std::make_shared<rapidjson::Document>()};
    p.doc->Parse(p.body.data(), p.body.size());
    if (p.doc->HasParseError()) throw std::runtime_error("engine posted invalid JSON: " + p.body);
    posts.push_back(p);
    if (auto_answer) {
      auto [status, body] = responder ? responder(p) : std::pair<int, std::string>{200, "{}"};
      engine.handle_post_result(now, a.request_id, status, body);
    } else {
      pending.emplace(a.request_id, std::move(p));
    }
  }
  void perform_one(AbortPost& a) {
    aborted_posts.push_back(a.request_id);
    pending.erase(a.request_id);
  }
  void perform_one(StartHandler& a) {
    started.push_back({a.handler_id, a.capability, std::string(a.lease_id), std::string(a.task_json),
                       std::string(a.input_json)});
  }
  void perform_one(AbortHandler& a) { aborts.push_back(a); }
  void perform_one(ReleaseTask& a) { released.push_back(a.host_ref); }
  void perform_one(ReleaseOutput& a) { released_outputs.push_back(a.handler_id); }
};

}  // namespace neuron::testing
