// Lease engine: PROTOCOL.md section 3, rules 1-13, through the simulated gateway.
#include <algorithm>
#include <gtest/gtest.h>

#include "harness/sim_gateway.h"
#include "neuron/engine/recent_ids.h"

namespace neuron::testing {
namespace {

std::string str(const rapidjson::Value& v) { return {v.GetString(), v.GetStringLength()}; }

struct LeaseTest : ::testing::Test {
  Sim sim;
  void SetUp() override { sim.auto_answer = true; }
  std::uint64_t handler(std::size_t i) const { return sim.started.at(i).handler_id; }
  const rapidjson::Value& nack() const { return sim.last_post(PostPath::kNack); }
};

// ---- rule 1 ----

TEST(Rule1, HandleRejectsBadTypesDuplicatesConcurrencyAndSchemas) {
  Sim sim;
  auto handle = [&](std::string type, std::uint32_t concurrency = 1, std::string schema = {}) {
    CapabilitySpec spec;
    spec.type = std::move(type);
    spec.concurrency = concurrency;
    spec.input_schema_json = std::move(schema);
    return sim.engine.handle(std::move(spec));
  };
  for (const char* bad : {"", "core", "Core/x", "core/", "core//x", "core/x.", "core/x.y.z", "a/b/c/d/e", "core/x y"}) {
    Status s = handle(bad);
    EXPECT_EQ(s.code, ErrorCode::kInvalidCapability) << bad;
    EXPECT_NE(s.message.find("invalid capability type"), std::string::npos) << bad;
  }
  EXPECT_EQ(handle(std::string(201, 'a')).code, ErrorCode::kInvalidCapability);
  EXPECT_TRUE(handle("core/script.python").ok());
  EXPECT_TRUE(handle("org/01HBQ8ZK/custom-tool").ok());
  EXPECT_TRUE(handle("user/user:abc/tool").ok());
  EXPECT_EQ(handle("core/script.python").code, ErrorCode::kDuplicateCapability);
  EXPECT_EQ(handle("core/zero", 0).code, ErrorCode::kInvalidCapability);
  EXPECT_EQ(handle("core/schema2", 1, "{not json").code, ErrorCode::kInvalidCapability);
  EXPECT_EQ(sim.engine.capability_count(), 3u) << "failed handle() changed nothing";
  // A schema that is JSON but no valid schema is caught when the schemas are
  // compiled, at start(), naming the capability and the schema.
  EXPECT_TRUE(handle("core/schema", 1, R"({"type": 12})").ok());
  EXPECT_TRUE(sim.engine.needs_schema_validator());
  Status bad_schema = sim.engine.start(sim.now);
  EXPECT_EQ(bad_schema.code, ErrorCode::kInvalidCapability);
  EXPECT_NE(bad_schema.message.find("core/schema: inputSchema"), std::string::npos) << bad_schema.message;
  EXPECT_FALSE(sim.engine.poll_action()) << "a failed start() changed nothing";
}

// ---- rule 2 ----

TEST_F(LeaseTest, Rule2DuplicatesOfQueuedRunningAndRecentlyFinishedAreIgnored) {
  sim.handle("core/x", 1);
  sim.connect();
  sim.lease("l-1", "t-1", "core/x");
  sim.lease("l-2", "t-2", "core/x");
  sim.lease("l-1", "t-1", "core/x");  // running
  sim.lease("l-2", "t-2", "core/x");  // queued
  EXPECT_EQ(sim.started.size(), 1u);
  EXPECT_EQ(sim.engine.capability_stats(0).queued, 1u);
  sim.done(handler(0), returned("1"));
  sim.lease("l-1", "t-1", "core/x");  // finished
  EXPECT_EQ(sim.engine.stats().leases_duplicate, 3u);
  EXPECT_EQ(sim.started.size(), 2u);
  EXPECT_EQ(sim.terminal_posts_for("l-1"), 1u);
  EXPECT_TRUE(sim.logged("duplicate lease ignored"));
}

// A connected engine with one capability, core/x, and the given rule 2 memory.
Config rule2_config(TimeMs ttl_ms, std::size_t capacity) {
  Config c = test_config();
  c.recent_lease_ttl_ms = ttl_ms;
  c.recent_lease_capacity = capacity;
  c.idle_timeout_ms = 600'000;
  return c;
}

void connect_with_core_x(Sim& sim) {
  sim.auto_answer = true;
  sim.handle("core/x", 1);
  sim.connect();
}

TEST(Rule2, RecentLeaseMemoryIsBoundedByAgeAndCount) {
  Sim sim(rule2_config(60'000, 3));
  connect_with_core_x(sim);
  sim.lease("old", "t", "core/x");
  sim.done(sim.started.back().handler_id, returned("1"));
  sim.advance(61'000);
  sim.lease("a", "t", "core/x");  // remembering "a" forgets the expired "old"
  sim.done(sim.started.back().handler_id, returned("1"));
  sim.lease("old", "t", "core/x");
  EXPECT_EQ(sim.started.size(), 3u) << "forgotten after the TTL: accepted again";
  sim.done(sim.started.back().handler_id, returned("1"));
  for (const char* id : {"b", "c", "d"}) {
    sim.lease(id, "t", "core/x");
    sim.done(sim.started.back().handler_id, returned("1"));
  }
  sim.lease("a", "t", "core/x");
  EXPECT_EQ(sim.started.size(), 7u) << "forgotten past the capacity: accepted again";
  sim.lease("d", "t", "core/x");
  EXPECT_EQ(sim.started.size(), 7u);
}

TEST(Rule2, TheConfigBoundsTheRecentIdMemory) {
  Config c = rule2_config(RecentIds::kMaxTtlMs, RecentIds::kMaxCapacity);
  EXPECT_TRUE(validate_config(c).ok());
  for (const std::size_t capacity : {std::size_t{0}, RecentIds::kMaxCapacity + 1}) {
    c.recent_lease_capacity = capacity;
    const Status s = validate_config(c);
    EXPECT_FALSE(s.ok()) << capacity;
    EXPECT_NE(s.message.find("recentLeaseCapacity"), std::string::npos) << s.message;
  }
  c.recent_lease_capacity = 1;
  for (const TimeMs ttl : {TimeMs{-1}, RecentIds::kMaxTtlMs + 1}) {
    c.recent_lease_ttl_ms = ttl;
    const Status s = validate_config(c);
    EXPECT_FALSE(s.ok()) << ttl;
    EXPECT_NE(s.message.find("recentLeaseTtlMs"), std::string::npos) << s.message;
  }
}

TEST(Rule2, LongIdsAreRememberedExactlyForTheLastCapacityOnesAcrossRingWraps) {
  // Gateway-style 42-character ids: the ring keeps fingerprints, not the ids.
  Sim sim(rule2_config(600'000, 300));
  connect_with_core_x(sim);
  auto id = [](int i) { return "lease-00000000-0000-4000-8000-" + std::to_string(100'000'000'000 + i); };
  const int n = 1000;
  for (int i = 0; i < n; ++i) {
    sim.lease(id(i), "t", "core/x");
    sim.done(sim.started.back().handler_id, returned("1"));
  }
  ASSERT_EQ(sim.started.size(), static_cast<std::size_t>(n));
  for (int i = n - 300; i < n; ++i) sim.lease(id(i), "t", "core/x");  // the last 300: all remembered
  EXPECT_EQ(sim.started.size(), static_cast<std::size_t>(n));
  EXPECT_EQ(sim.engine.stats().leases_duplicate, 300u);
  sim.lease(id(n - 301), "t", "core/x");  // the one before them: forgotten, so accepted again
  EXPECT_EQ(sim.started.size(), static_cast<std::size_t>(n + 1));
}

// ---- rule 3 ----

TEST_F(LeaseTest, Rule3NoHandler) {
  sim.handle("core/x");
  sim.connect();
  sim.lease("l-1", "t-1", "core/other");
  EXPECT_TRUE(sim.started.empty());
  EXPECT_EQ(str(nack()["kind"]), "retryable");
  EXPECT_EQ(str(nack()["code"]), "NO_HANDLER");
  EXPECT_EQ(str(nack()["leaseId"]), "l-1");
  EXPECT_EQ(str(nack()["taskId"]), "t-1");
  EXPECT_FALSE(nack().HasMember("errors"));
}

// ---- rule 4 ----

TEST_F(LeaseTest, Rule4MalformedLeases) {
  sim.handle("core/x");
  sim.connect();
  sim.send_frame(R"({"type":"lease","task":{"taskId":"t-1","type":"core/x"}})");
  sim.send_frame(R"({"type":"lease","leaseId":"l-2","task":{"type":"core/x"}})");
  sim.send_frame(R"({"type":"lease","leaseId":"l-3"})");
  sim.send_frame(R"({"type":"lease","leaseId":"l-4","task":{"taskId":"t-4"}})");
  sim.send_frame(R"({"type":"lease","leaseId":5,"task":{"taskId":"t-5","type":"core/x"}})");
  EXPECT_EQ(sim.events_of<ErrorEvent>().size(), 5u);
  for (auto* e : sim.events_of<ErrorEvent>()) EXPECT_EQ(e->error.code, ErrorCode::kMalformedLease);
  EXPECT_TRUE(sim.started.empty());
  ASSERT_EQ(sim.count(PostPath::kNack), 1u) << "only l-4 has both ids";
  EXPECT_EQ(str(nack()["leaseId"]), "l-4");
  EXPECT_EQ(str(nack()["kind"]), "terminal");
  EXPECT_EQ(str(nack()["code"]), "MALFORMED_LEASE");
}

// ---- rule 5 ----

TEST_F(LeaseTest, Rule5InputSchemaMismatchNeverCallsTheHandler) {
  sim.handle("core/x", 1,
             R"({"type":"object","required":["code"],"properties":{"code":{"type":"string"},"n":{"type":"integer"}}})");
  sim.connect();
  sim.lease("l-1", "t-1", "core/x", R"({"code":7})");
  EXPECT_TRUE(sim.started.empty());
  EXPECT_EQ(str(nack()["kind"]), "schema-mismatch");
  ASSERT_TRUE(nack()["errors"].IsArray());
  ASSERT_GE(nack()["errors"].Size(), 1u);
  EXPECT_EQ(str(nack()["errors"][0]["path"]), "/code");
  EXPECT_FALSE(str(nack()["errors"][0]["message"]).empty());
  sim.lease("l-2", "t-2", "core/x", R"J({"code":"print(1)","n":2})J");
  EXPECT_EQ(sim.started.size(), 1u);
  sim.lease("l-3", "t-3", "core/x");  // input null
  EXPECT_EQ(str(nack()["leaseId"]), "l-3");
  EXPECT_EQ(str(nack()["kind"]), "schema-mismatch");
}

TEST_F(LeaseTest, Rule5ALoneSurrogateEscapeIsReadAsUFFFDInInputAndSchemaWithOrWithoutTheFastPath) {
  // JSON.stringify writes a string cut inside an emoji as a lone surrogate
  // escape; the core reads it as U+FFFD (frames.h), in an input and in a
  // schema alike. The fast path and valijson (here: allOf is outside the
  // fast path's subset) must agree.
  sim.handle("core/fast", 1, R"({"type":"object","properties":{"s":{"enum":["\ufffd"]}}})");
  sim.handle("core/slow", 1, R"({"type":"object","allOf":[{"properties":{"s":{"const":"\ufffd"}}}]})");
  // A lone low surrogate as a key in the schema and in the input.
  sim.handle("core/key-fast", 1, R"({"type":"object","properties":{"\udc00":{"type":"string"}},"additionalProperties":false})");
  sim.handle("core/key-slow", 1, R"({"allOf":[{"properties":{"\udc00":{"type":"string"}},"additionalProperties":false}]})");
  sim.connect();
  sim.lease("l-1", "t-1", "core/fast", R"({"s":"\ud83d"})");
  sim.lease("l-2", "t-2", "core/slow", R"({"s":"\ud83d"})");
  sim.lease("l-3", "t-3", "core/key-fast", R"({"\udc00":"x"})");
  sim.lease("l-4", "t-4", "core/key-slow", R"({"\udc00":"x"})");
  ASSERT_EQ(sim.started.size(), 4u) << "all accepted";
  int n = 4;
  for (const auto& [cap, input] : std::vector<std::pair<std::string, std::string>>{
           {"core/fast", R"({"s":"x"})"}, {"core/slow", R"({"s":"x"})"},
           {"core/key-fast", R"({"\udc00":7})"}, {"core/key-slow", R"({"\udc00":7})"},
           {"core/key-fast", R"({"k":"x"})"}, {"core/key-slow", R"({"k":"x"})"}}) {
    const std::string id = "l-" + std::to_string(++n);
    sim.lease(id, "t", cap, input);
    EXPECT_EQ(str(nack()["leaseId"]), id) << cap << " " << input;
    EXPECT_EQ(str(nack()["kind"]), "schema-mismatch") << cap << " " << input;
  }
  EXPECT_EQ(sim.started.size(), 4u);
}

// ---- rule 6 ----

TEST_F(LeaseTest, Rule6FifoPerCapabilityWithConcurrencySlots) {
  sim.handle("core/a", 2);
  sim.handle("core/b", 1);
  sim.connect();
  for (int i = 1; i <= 4; ++i) sim.lease("a" + std::to_string(i), "t", "core/a");
  for (int i = 1; i <= 2; ++i) sim.lease("b" + std::to_string(i), "t", "core/b");
  ASSERT_EQ(sim.started.size(), 3u);
  EXPECT_EQ(sim.started[0].lease_id, "a1");
  EXPECT_EQ(sim.started[1].lease_id, "a2");
  EXPECT_EQ(sim.started[2].lease_id, "b1");
  EXPECT_EQ(sim.started[2].capability, 1u);
  EXPECT_EQ(sim.engine.capability_stats(0).queued, 2u);
  EXPECT_EQ(sim.engine.capability_stats(0).running, 2u);
  EXPECT_EQ(sim.engine.running_lease_ids(), (std::vector<std::string>{"a1", "a2", "b1"}));
  sim.done(handler(1), returned("1"));
  ASSERT_EQ(sim.started.size(), 4u);
  EXPECT_EQ(sim.started[3].lease_id, "a3");
  sim.done(handler(2), returned("1"));
  EXPECT_EQ(sim.started[4].lease_id, "b2");
}

TEST_F(LeaseTest, Rule6TaskJsonCarriesTheWholeTaskWithNonAsciiIntact) {
  sim.handle("core/x");
  sim.connect();
  const std::string input = R"({"s":"héllo 😀 \ud83d\ude00 \u00e9 \n \"q\"","n":1.5e300,"i":-12345678901234,"a":[true,null]})";
  sim.lease("l-1", "t-1", "core/x", input, R"(,"onBehalfOf":"user:abc","metadata":{"k":"v"})");
  ASSERT_EQ(sim.started.size(), 1u);
  rapidjson::Document task;
  task.Parse(sim.started[0].task_json.c_str());
  ASSERT_FALSE(task.HasParseError());
  EXPECT_EQ(str(task["taskId"]), "t-1");
  EXPECT_EQ(str(task["onBehalfOf"]), "user:abc");
  EXPECT_EQ(str(task["metadata"]["k"]), "v");
  EXPECT_EQ(str(task["input"]["s"]), "héllo 😀 😀 é \n \"q\"");
  EXPECT_EQ(task["input"]["n"].GetDouble(), 1.5e300);
  EXPECT_EQ(task["input"]["i"].GetInt64(), -12345678901234);
}

// ---- rule 7 ----

TEST_F(LeaseTest, Rule7ReturnAcksWithOutputAndDuration) {
  sim.handle("core/x");
  sim.connect();
  sim.lease("l-1", "t-1", "core/x");
  sim.advance(1234);
  sim.done(handler(0), returned(R"({"stdout":"ok ✓","exitCode":0})"));
  const auto& ack = sim.last_post(PostPath::kAck);
  EXPECT_EQ(str(ack["type"]), "ack");
  EXPECT_EQ(str(ack["leaseId"]), "l-1");
  EXPECT_EQ(str(ack["taskId"]), "t-1");
  EXPECT_EQ(str(ack["output"]["stdout"]), "ok ✓");
  EXPECT_EQ(ack["durationMs"].GetInt(), 1234);
  EXPECT_EQ(sim.engine.stats().leases_acked, 1u);
}

TEST_F(LeaseTest, Rule7OutputSchemaMismatch) {
  sim.handle("core/x", 1, {}, R"({"type":"object","required":["exitCode"]})");
  sim.connect();
  sim.lease("l-1", "t-1", "core/x");
  sim.done(handler(0), returned(R"({"stdout":""})"));
  EXPECT_EQ(sim.count(PostPath::kAck), 0u);
  EXPECT_EQ(str(nack()["kind"]), "schema-mismatch");
  EXPECT_EQ(nack()["errors"].Size(), 1u);
  sim.lease("l-2", "t-2", "core/x");
  sim.done(handler(1), returned(R"({"exitCode":0})"));
  EXPECT_EQ(sim.count(PostPath::kAck), 1u);
}

TEST_F(LeaseTest, Rule7ThrowFailAndHostValidation) {
  sim.handle("core/x", 5);
  sim.connect();
  for (int i = 1; i <= 5; ++i) sim.lease("l-" + std::to_string(i), "t", "core/x");
  sim.done(handler(0), threw("socket hang up"));
  EXPECT_EQ(str(nack()["kind"]), "retryable");
  EXPECT_EQ(str(nack()["reason"]), "socket hang up");
  sim.done(handler(1), failed("invalid API key", "INVALID_API_KEY"));
  EXPECT_EQ(str(nack()["kind"]), "terminal");
  EXPECT_EQ(str(nack()["code"]), "INVALID_API_KEY");
  HandlerOutcome zod;
  zod.result = HandlerResult::kInputInvalid;
  zod.errors = {{"/code", "Expected string, received number"}};
  sim.done(handler(2), zod);
  EXPECT_EQ(str(nack()["kind"]), "schema-mismatch");
  EXPECT_EQ(str(nack()["errors"][0]["path"]), "/code");
  zod.result = HandlerResult::kOutputInvalid;
  sim.done(handler(3), zod);
  EXPECT_EQ(str(nack()["kind"]), "schema-mismatch");
  sim.done(handler(4), returned("{broken"));
  EXPECT_EQ(str(nack()["kind"]), "terminal") << "output that is not JSON can never be acked";
  EXPECT_EQ(sim.count(PostPath::kNack), 5u);
}

// JavaScript strings cut inside a surrogate pair serialise as lone "\ud83d"
// escapes: such a lease still runs, such an output is still acked.
TEST_F(LeaseTest, LoneSurrogateEscapesInLeasesOutputsAndProgressAreRepaired) {
  sim.handle("core/x", 2);
  sim.connect();
  sim.lease("l-1", "t-1", "core/x", R"({"s":"cut \ud83d"})");
  ASSERT_EQ(sim.started.size(), 1u) << "the lease is not dropped as malformed";
  // The task goes to the host as the gateway wrote it: JSON.parse reads it
  // back to the same (ill-formed) JavaScript string.
  EXPECT_NE(sim.started[0].task_json.find(R"("s":"cut \ud83d")"), std::string::npos) << sim.started[0].task_json;
  EXPECT_EQ(sim.count(PostPath::kNack), 0u);
  sim.progress(handler(0), {std::nullopt, std::nullopt, std::string(R"({"p":"\udc00"})")});
  const auto& progress = sim.last_post(PostPath::kProgress);
  EXPECT_EQ(str(progress["data"]["p"]), "\xEF\xBF\xBD");
  sim.done(handler(0), returned(R"({"text":"\ud83d"})"));
  const auto& ack = sim.last_post(PostPath::kAck);
  EXPECT_EQ(str(ack["output"]["text"]), "\xEF\xBF\xBD");
}

TEST_F(LeaseTest, OutputTooDeepSaysSo) {
  sim.handle("core/x");
  sim.connect();
  sim.lease("l-1", "t-1", "core/x");
  sim.done(handler(0), returned(std::string(300, '[') + std::string(300, ']')));
  EXPECT_EQ(str(nack()["kind"]), "terminal");
  EXPECT_EQ(str(nack()["code"]), "INVALID_OUTPUT");
  EXPECT_NE(str(nack()["reason"]).find("deeper than 256"), std::string::npos) << str(nack()["reason"]);
}

// ---- rule 8 ----

TEST_F(LeaseTest, Rule8CancelQueuedRunningAndUnknown) {
  sim.handle("core/x", 1);
  sim.connect();
  sim.lease("l-1", "t-1", "core/x");
  sim.lease("l-2", "t-2", "core/x");
  sim.cancel("l-2");  // queued
  EXPECT_EQ(str(nack()["leaseId"]), "l-2");
  EXPECT_EQ(str(nack()["kind"]), "cancelled");
  sim.cancel("l-1");  // running
  ASSERT_EQ(sim.aborts.size(), 1u);
  EXPECT_EQ(sim.aborts[0].reason, AbortReason::kCancelled);
  EXPECT_EQ(sim.terminal_posts_for("l-1"), 0u) << "the nack waits for the handler";
  sim.done(handler(0), returned(R"({"finished":"anyway"})"));
  EXPECT_EQ(sim.count(PostPath::kAck), 0u);
  EXPECT_EQ(str(nack()["leaseId"]), "l-1");
  EXPECT_EQ(str(nack()["kind"]), "cancelled");
  sim.cancel("nope");
  sim.cancel("l-1");
  EXPECT_EQ(sim.count(PostPath::kNack), 2u);
  EXPECT_EQ(sim.started.size(), 1u) << "l-2 never ran";
}

TEST_F(LeaseTest, Rule8ThrowAfterCancelIsCancelled) {
  sim.handle("core/x");
  sim.connect();
  sim.lease("l-1", "t-1", "core/x");
  sim.cancel("l-1");
  sim.done(handler(0), threw("The operation was aborted"));
  EXPECT_EQ(str(nack()["kind"]), "cancelled");
}

// ---- rule 9 ----

TEST_F(LeaseTest, Rule9CapabilityRevoked) {
  sim.handle("core/x", 1);
  sim.handle("core/y", 1);
  sim.connect();
  sim.lease("l-1", "t-1", "core/x");
  sim.lease("l-2", "t-2", "core/x");
  sim.lease("l-3", "t-3", "core/y");
  sim.send_frame(R"({"type":"capability-revoked","capability":"core/x","reason":"policy"})");
  EXPECT_EQ(str(nack()["leaseId"]), "l-2");
  EXPECT_EQ(str(nack()["code"]), "CAPABILITY_REVOKED");
  ASSERT_EQ(sim.aborts.size(), 1u);
  EXPECT_EQ(sim.aborts[0].handler_id, handler(0));
  EXPECT_EQ(sim.aborts[0].reason, AbortReason::kCapabilityRevoked);
  sim.done(handler(0), returned("1"));
  EXPECT_EQ(str(nack()["leaseId"]), "l-1");
  EXPECT_EQ(str(nack()["kind"]), "retryable");
  EXPECT_EQ(str(nack()["code"]), "CAPABILITY_REVOKED");
  sim.lease("l-4", "t-4", "core/x");
  EXPECT_EQ(str(nack()["leaseId"]), "l-4");
  EXPECT_EQ(str(nack()["code"]), "CAPABILITY_REVOKED");
  sim.done(handler(1), returned("1"));
  EXPECT_EQ(sim.count(PostPath::kAck), 1u) << "core/y is untouched";
}

// ---- rule 10 ----

TEST(Rule10, ProgressKeepsOneInFlightAndMergesNewerUpdates) {
  Sim sim;
  sim.handle("core/x");
  sim.connect();
  sim.lease("l-1", "t-1", "core/x");
  const std::uint64_t h = sim.started[0].handler_id;
  sim.progress(h, {10.0, std::string("starting"), std::nullopt});
  sim.progress(h, {20.0, std::nullopt, std::string(R"({"rows":1})")});
  sim.progress(h, {30.0, std::nullopt, std::nullopt});
  sim.progress(h, {std::nullopt, std::string("later"), std::nullopt});
  ASSERT_EQ(sim.count(PostPath::kProgress), 1u);
  const auto& first = sim.last_post(PostPath::kProgress);
  EXPECT_EQ(first["percent"].GetDouble(), 10.0);
  EXPECT_EQ(str(first["message"]), "starting");
  EXPECT_FALSE(first.HasMember("data"));
  sim.answer(PostPath::kProgress, 200);
  ASSERT_EQ(sim.count(PostPath::kProgress), 2u);
  const auto& merged = sim.last_post(PostPath::kProgress);
  EXPECT_EQ(merged["percent"].GetDouble(), 30.0);
  EXPECT_EQ(str(merged["message"]), "later");
  EXPECT_EQ(merged["data"]["rows"].GetInt(), 1);
  EXPECT_EQ(str(merged["leaseId"]), "l-1");
  // Pending progress is dropped once the terminal frame is sent.
  sim.progress(h, {90.0, std::nullopt, std::nullopt});
  sim.done(h, returned("1"));
  sim.answer(PostPath::kProgress, 200);
  EXPECT_EQ(sim.count(PostPath::kProgress), 2u);
  sim.progress(h, {100.0, std::nullopt, std::nullopt});
  EXPECT_EQ(sim.count(PostPath::kProgress), 2u) << "progress after completion is ignored";
}

// Rule 10 on the wire: a verdict never goes out while its lease's progress
// POST is in flight; it waits for the answer, and at most progress_grace_ms.
TEST(Rule10, TerminalFramesWaitForTheLeasesProgressPostOnTheWire) {
  Sim sim;
  sim.handle("core/x", 2);
  sim.connect();
  sim.lease("l-1", "t-1", "core/x");
  sim.lease("l-2", "t-2", "core/x");
  sim.progress(sim.started[0].handler_id, {50.0, std::nullopt, std::nullopt});
  ASSERT_EQ(sim.posts.back().path, PostPath::kProgress);
  sim.done(sim.started[0].handler_id, returned("1"));
  EXPECT_EQ(sim.count(PostPath::kAck), 0u) << "held behind the progress POST";
  EXPECT_EQ(sim.engine.stats().requests_queued, 1u);
  sim.done(sim.started[1].handler_id, returned("2"));
  EXPECT_EQ(sim.count(PostPath::kAck), 1u) << "l-2 has no progress in flight: nothing to wait for";
  EXPECT_EQ(str(sim.last_post(PostPath::kAck)["leaseId"]), "l-2");
  sim.answer(PostPath::kProgress, 200);
  ASSERT_EQ(sim.count(PostPath::kAck), 2u) << "released by the progress answer";
  EXPECT_EQ(str(sim.last_post(PostPath::kAck)["leaseId"]), "l-1");
  // A failed progress POST releases it as well.
  sim.lease("l-3", "t-3", "core/x");
  sim.progress(sim.started[2].handler_id, {10.0, std::nullopt, std::nullopt});
  sim.done(sim.started[2].handler_id, failed("no", "X"));
  EXPECT_EQ(sim.count(PostPath::kNack), 0u);
  sim.answer(PostPath::kProgress, 503);
  EXPECT_EQ(sim.count(PostPath::kNack), 1u);
}

// A progress POST the gateway never answers delays the verdict by the grace
// only: it is aborted, the verdict goes out once, and nothing is resent later.
TEST(Rule10, AStalledProgressPostIsAbortedAfterTheGraceAndTheAckGoesOutOnce) {
  Config config = test_config();
  config.progress_grace_ms = 1'000;
  config.request_timeout_ms = 30'000;
  Sim sim(config);
  sim.handle("core/x");
  sim.connect();
  sim.lease("l-1", "t-1", "core/x");
  sim.progress(sim.started[0].handler_id, {50.0, std::nullopt, std::nullopt});
  const std::uint64_t progress_id = sim.posts.back().request_id;
  sim.done(sim.started[0].handler_id, returned("1"));
  sim.advance(999);
  EXPECT_EQ(sim.count(PostPath::kAck), 0u);
  sim.advance(1);
  ASSERT_EQ(sim.count(PostPath::kAck), 1u) << "sent when the grace is up";
  EXPECT_NE(std::find(sim.aborted_posts.begin(), sim.aborted_posts.end(), progress_id), sim.aborted_posts.end())
      << "the progress POST was aborted first";
  sim.answer(PostPath::kAck, 200);
  sim.advance(120'000);
  EXPECT_EQ(sim.terminal_posts_for("l-1"), 1u) << "exactly one ack";
}

// A progress update still waiting for a slot when the verdict is decided
// never goes out (rule 10: pending progress is dropped).
TEST(Rule10, QueuedProgressIsDroppedByTheVerdict) {
  Config config = test_config();
  config.max_in_flight_requests = 1;
  Sim sim(config);
  sim.handle("core/x", 2);
  sim.connect();
  sim.lease("l-1", "t-1", "core/x");
  sim.lease("l-2", "t-2", "core/x");
  sim.done(sim.started[1].handler_id, returned("2"));  // its ack takes the one slot
  sim.progress(sim.started[0].handler_id, {50.0, std::nullopt, std::nullopt});
  EXPECT_EQ(sim.count(PostPath::kProgress), 0u) << "queued";
  sim.done(sim.started[0].handler_id, returned("1"));
  sim.answer_all();
  EXPECT_EQ(sim.count(PostPath::kProgress), 0u);
  EXPECT_EQ(sim.terminal_posts_for("l-1"), 1u);
}

// ---- rule 11 ----

TEST_F(LeaseTest, Rule11ExactlyOneTerminalFrameWhateverTheHostReports) {
  sim.handle("core/x", 2);
  sim.connect();
  sim.lease("l-1", "t-1", "core/x");
  sim.lease("l-2", "t-2", "core/x");
  sim.done(handler(0), returned("1"));
  sim.done(handler(0), threw("again"));
  sim.done(handler(0), returned("2"));
  sim.cancel("l-2");
  sim.cancel("l-2");
  sim.done(handler(1), returned("1"));
  sim.done(handler(1), returned("1"));
  sim.done(999, returned("1"));
  EXPECT_EQ(sim.terminal_posts_for("l-1"), 1u);
  EXPECT_EQ(sim.terminal_posts_for("l-2"), 1u);
}

// ---- rule 12 ----

TEST(Rule12, StopWithDrainWaitsThenAbortsAtTheDeadline) {
  Sim sim;
  sim.auto_answer = true;
  sim.handle("core/x", 2);
  sim.connect();
  sim.lease("l-1", "t-1", "core/x");
  sim.lease("l-2", "t-2", "core/x");
  sim.lease("l-3", "t-3", "core/x");  // queued
  sim.engine.stop(sim.now, /*drain=*/true, 30'000);
  sim.drain();
  EXPECT_EQ(sim.terminal_posts_for("l-3"), 1u) << "queued leases are nacked at once";
  EXPECT_EQ(str(sim.last_post(PostPath::kNack)["code"]), "SHUTTING_DOWN");
  EXPECT_TRUE(sim.aborts.empty());
  sim.lease("l-4", "t-4", "core/x");
  EXPECT_EQ(str(sim.last_post(PostPath::kNack)["code"]), "SHUTTING_DOWN") << "new leases refused";
  EXPECT_EQ(sim.started.size(), 2u);

  sim.advance(10'000);
  EXPECT_EQ(sim.last_post(PostPath::kHeartbeat)["inFlight"].Size(), 2u) << "heartbeat continues while draining";
  sim.done(sim.started[0].handler_id, returned("1"));
  EXPECT_EQ(sim.count(PostPath::kAck), 1u);
  EXPECT_TRUE(sim.events_of<StopSettled>().empty());

  sim.advance(19'999);
  EXPECT_TRUE(sim.aborts.empty());
  sim.advance(1);
  ASSERT_EQ(sim.aborts.size(), 1u);
  EXPECT_EQ(sim.aborts[0].reason, AbortReason::kShuttingDown);
  EXPECT_EQ(sim.terminal_posts_for("l-2"), 1u);
  EXPECT_EQ(str(sim.last_post(PostPath::kNack)["kind"]), "retryable");
  EXPECT_EQ(str(sim.last_post(PostPath::kNack)["code"]), "SHUTTING_DOWN");
  ASSERT_EQ(sim.events_of<StopSettled>().size(), 1u);
  EXPECT_EQ(sim.events_of<ConnectionClose>().back()->reason, "stopped");
  EXPECT_EQ(sim.closes.size(), 1u) << "the stream is closed";
  EXPECT_FALSE(sim.engine.poll_timeout()) << "no timer left";
  EXPECT_TRUE(sim.engine.is_stopped());
  // The handler that ignored its signal reports late: nothing more is sent.
  const std::size_t posts = sim.posts.size();
  sim.done(sim.started[1].handler_id, returned("1"));
  sim.engine.stop(sim.now, true, 1000);
  sim.drain();
  EXPECT_EQ(sim.posts.size(), posts);
  EXPECT_EQ(sim.events_of<StopSettled>().size(), 1u) << "a second stop changes nothing";
  EXPECT_EQ(sim.engine.start(sim.now).code, ErrorCode::kStopped);
}

TEST(Rule12, StopWithoutDrainAbortsAtOnceAndEndsWhenTheNacksAreAnswered) {
  Sim sim;
  sim.handle("core/x", 2);
  sim.connect();
  sim.lease("l-1", "t-1", "core/x");
  sim.answer_all();
  sim.engine.stop(sim.now, /*drain=*/false, 30'000);
  sim.drain();
  ASSERT_EQ(sim.aborts.size(), 1u);
  EXPECT_EQ(sim.terminal_posts_for("l-1"), 1u);
  EXPECT_TRUE(sim.events_of<StopSettled>().empty()) << "the nack is still in flight";
  sim.answer(PostPath::kNack, 200);
  EXPECT_EQ(sim.events_of<StopSettled>().size(), 1u);
}

TEST(Rule12, StopEndsByItsDeadlineEvenIfTheGatewayNeverAnswers) {
  Config c = test_config();
  c.stop_flush_ms = 5'000;
  Sim sim(c);
  sim.handle("core/x", 1);
  sim.connect();
  sim.lease("l-1", "t-1", "core/x");
  sim.lease("l-2", "t-2", "core/x");
  const TimeMs t0 = sim.now;
  sim.engine.stop(sim.now, /*drain=*/true, 10'000);
  sim.drain();
  sim.advance(15'000);
  ASSERT_EQ(sim.events_of<StopSettled>().size(), 1u);
  EXPECT_LE(sim.now, t0 + 15'000);
  EXPECT_TRUE(sim.pending.empty()) << "every request still open was aborted";
  EXPECT_FALSE(sim.engine.poll_timeout());
}

TEST(Rule12, StopBeforeRegistrationRejectsStartAndStopBeforeStartResolves) {
  {
    Sim sim;
    sim.handle("core/x");
    sim.start();
    sim.engine.stop(sim.now, true, 30'000);
    sim.drain();
    EXPECT_EQ(sim.events_of<StartSettled>()[0]->status.code, ErrorCode::kStopped);
    EXPECT_EQ(sim.events_of<StopSettled>().size(), 1u);
    EXPECT_EQ(sim.closes.size(), 1u);
  }
  {
    Sim sim;
    sim.handle("core/x");
    sim.engine.stop(sim.now, true, 30'000);
    sim.drain();
    EXPECT_EQ(sim.events_of<StopSettled>().size(), 1u);
    EXPECT_TRUE(sim.opens.empty());
  }
}

TEST(Rule12, StopDuringBackoffCancelsTheReconnect) {
  Sim sim;
  sim.handle("core/x");
  sim.start();
  sim.close_stream();
  sim.engine.stop(sim.now, true, 30'000);
  sim.drain();
  EXPECT_EQ(sim.events_of<StopSettled>().size(), 1u);
  sim.advance(600'000);
  EXPECT_EQ(sim.opens.size(), 1u);
}

TEST(Rule12, CancelledLeaseStillRunningAtTheDeadlineKeepsItsVerdict) {
  Sim sim;
  sim.auto_answer = true;
  sim.handle("core/x");
  sim.connect();
  sim.lease("l-1", "t-1", "core/x");
  sim.cancel("l-1");
  sim.engine.stop(sim.now, true, 1'000);
  sim.drain();
  sim.advance(1'000);
  EXPECT_EQ(sim.terminal_posts_for("l-1"), 1u);
  EXPECT_EQ(str(sim.last_post(PostPath::kNack)["kind"]), "cancelled");
  EXPECT_EQ(sim.aborts.size(), 1u) << "its signal had already fired";
}

// ---- rule 13 ----

TEST_F(LeaseTest, Rule13UpdateCapability) {
  sim.handle("core/x", 1);
  sim.connect();
  EXPECT_EQ(sim.engine.update_capability(sim.now, "core/nope", 2).code, ErrorCode::kUnknownCapability);
  EXPECT_EQ(sim.engine.update_capability(sim.now, "core/x", 0).code, ErrorCode::kInvalidCapability);
  for (int i = 1; i <= 4; ++i) sim.lease("l-" + std::to_string(i), "t", "core/x");
  ASSERT_EQ(sim.started.size(), 1u);
  ASSERT_TRUE(sim.engine.update_capability(sim.now, "core/x", 3).ok());
  sim.drain();
  const auto& update = sim.last_post(PostPath::kUpdateCapability);
  EXPECT_EQ(str(update["type"]), "update-capability");
  EXPECT_EQ(str(update["capability"]), "core/x");
  EXPECT_EQ(update["concurrency"].GetInt(), 3);
  EXPECT_EQ(sim.started.size(), 3u) << "queued leases start while running < new limit";
  ASSERT_TRUE(sim.engine.update_capability(sim.now, "core/x", 1).ok());
  sim.drain();
  EXPECT_TRUE(sim.aborts.empty()) << "running leases finish";
  sim.done(handler(0), returned("1"));
  sim.done(handler(1), returned("1"));
  EXPECT_EQ(sim.started.size(), 3u);
  sim.done(handler(2), returned("1"));
  EXPECT_EQ(sim.started.size(), 4u);
  // The next register carries the current concurrency.
  sim.close_stream();
  sim.advance(500);
  sim.accept_stream();
  EXPECT_EQ(sim.last_post(PostPath::kRegister)["capabilities"][0]["concurrency"].GetInt(), 1);
}

TEST(Stats, CountersFollowTheLeases) {
  Sim sim;
  sim.auto_answer = true;
  sim.handle("core/x", 1);
  sim.connect();
  sim.lease("l-1", "t-1", "core/x");
  sim.lease("l-2", "t-2", "core/x");
  sim.lease("l-3", "t-3", "core/none");
  sim.done(sim.started[0].handler_id, returned("1"));
  sim.done(sim.started[1].handler_id, failed("no"));
  const Stats& s = sim.engine.stats();
  EXPECT_EQ(s.leases_received, 3u);
  EXPECT_EQ(s.leases_acked, 1u);
  EXPECT_EQ(s.nacks_retryable, 1u);
  EXPECT_EQ(s.nacks_terminal, 1u);
  EXPECT_EQ(s.frames_in, 4u);
  EXPECT_GT(s.bytes_in, 300u);
  EXPECT_EQ(s.frames_out, 4u);  // register, ack, 2 nacks
}

}  // namespace
}  // namespace neuron::testing
