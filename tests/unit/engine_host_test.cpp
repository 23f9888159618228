// Leases a host decodes itself (handle_lease: a transport that delivers
// objects) and acks the host builds itself (HandlerOutcome::host_builds_ack).
#include <gtest/gtest.h>

#include <algorithm>
#include <string>

#include "harness/sim_gateway.h"

namespace neuron::testing {
namespace {

std::string str(const rapidjson::Value& v) { return {v.GetString(), v.GetStringLength()}; }

Engine::LeaseInput lease_input(std::string_view lease_id, std::string_view task_id, std::string_view type,
                               std::uint32_t host_ref) {
  Engine::LeaseInput in;
  in.lease_id = lease_id;
  in.task_id = task_id;
  in.type = type;
  in.host_ref = host_ref;
  return in;
}

void give(Sim& sim, const Engine::LeaseInput& in) {
  sim.engine.handle_lease(sim.now, sim.stream, in);
  sim.drain();
}

std::size_t count(const std::vector<std::uint32_t>& v, std::uint32_t x) {
  return static_cast<std::size_t>(std::count(v.begin(), v.end(), x));
}

TEST(HostLeases, StartWithTheHostsRefAndNoTaskText) {
  Sim sim;
  sim.auto_answer = true;
  sim.handle("core/x", 2);
  sim.connect();
  Engine::LeaseInput in = lease_input("l-1", "t-1", "core/x", 7);
  in.input_json = R"({"a":1})";  // the host has the input: no text comes back
  give(sim, in);
  ASSERT_EQ(sim.started.size(), 1u);
  EXPECT_EQ(sim.started[0].lease_id, "l-1");
  EXPECT_TRUE(sim.started[0].task_json.empty());
  EXPECT_TRUE(sim.started[0].input_json.empty());
  EXPECT_EQ(sim.engine.running_lease_ids(), std::vector<std::string>{"l-1"});
  sim.done(sim.started[0].handler_id, returned(R"({"ok":true})"));
  EXPECT_EQ(str(sim.last_post(PostPath::kAck)["taskId"]), "t-1");
  EXPECT_TRUE(sim.released.empty());
}

// Every lease handed in ends in exactly one StartHandler or one ReleaseTask.
TEST(HostLeases, EveryLeaseThatNeverStartsIsReleasedOnce) {
  Sim sim;
  sim.auto_answer = true;
  sim.handle("core/x", 1);
  sim.connect();
  give(sim, lease_input("l-1", "t-1", "core/x", 1));      // runs
  give(sim, lease_input("l-1", "t-1", "core/x", 2));      // duplicate (rule 2)
  give(sim, lease_input("", "t-3", "core/x", 3));         // malformed (rule 4)
  give(sim, lease_input("l-4", "t-4", "core/none", 4));   // no handler (rule 3)
  give(sim, lease_input("l-5", "t-5", "core/x", 5));      // queued, then cancelled
  sim.cancel("l-5");
  give(sim, lease_input("l-6", "t-6", "core/x", 6));      // queued, then dropped with the stream
  sim.close_stream();
  for (std::uint32_t ref = 2; ref <= 6; ++ref) EXPECT_EQ(count(sim.released, ref), 1u) << ref;
  EXPECT_EQ(count(sim.released, 1), 0u) << "started, so not released";
  sim.advance(500);
  sim.establish();
  give(sim, lease_input("l-7", "t-7", "core/x", 7));      // queued, then stop
  sim.engine.stop(sim.now, true, 1'000);
  sim.drain();
  EXPECT_EQ(count(sim.released, 7), 1u);
  EXPECT_EQ(sim.started.size(), 1u);
}

TEST(HostLeases, ACheckedInputComesAsJson) {
  Sim sim;
  sim.auto_answer = true;
  sim.handle("core/x", 2, R"({"type":"object","required":["n"]})");
  sim.connect();
  EXPECT_TRUE(sim.engine.checks_input(0));
  Engine::LeaseInput good = lease_input("l-1", "t-1", "core/x", 1);
  good.input_json = R"({"n":1})";
  give(sim, good);
  Engine::LeaseInput bad = lease_input("l-2", "t-2", "core/x", 2);
  bad.input_json = R"({"m":1})";
  give(sim, bad);
  ASSERT_EQ(sim.started.size(), 1u);
  EXPECT_EQ(str(sim.last_post(PostPath::kNack)["kind"]), "schema-mismatch");
  EXPECT_EQ(count(sim.released, 2), 1u);
}

TEST(HostAcks, TheFirstAckIsTheHostsToBuildARetryCarriesTheFrame) {
  Sim sim;
  sim.handle("core/x", 1);
  sim.connect();
  sim.answer_all();
  give(sim, lease_input("l-1", "t-1", "core/x", 1));
  const std::uint64_t h = sim.started[0].handler_id;
  sim.now += 25;
  // The host sees the Post itself: catch it before the Sim parses its body.
  HandlerOutcome outcome = returned(R"({"y":2})");
  outcome.host_builds_ack = true;
  sim.engine.handle_handler_done(sim.now, h, outcome);
  std::optional<Post> first;
  bool released_after_it = false;  // the output, right after its one host-built Post
  while (auto a = sim.engine.poll_action()) {
    if (auto* p = std::get_if<Post>(&*a); p && p->path == PostPath::kAck) first = *p;
    if (auto* r = std::get_if<ReleaseOutput>(&*a)) {
      EXPECT_TRUE(first) << "released before the ack was built";
      EXPECT_FALSE(released_after_it) << "released twice";
      EXPECT_EQ(r->handler_id, h);
      released_after_it = true;
    }
  }
  ASSERT_TRUE(first);
  EXPECT_TRUE(released_after_it);
  EXPECT_TRUE(first->body.empty());
  ASSERT_TRUE(first->host_ack);
  EXPECT_EQ(first->host_ack->sent_at, sim.now);
  EXPECT_EQ(first->host_ack->duration_ms, 25);
  EXPECT_EQ(first->host_ack->handler, h);
  sim.engine.handle_post_result(sim.now, first->request_id, 503, "");
  sim.drain();
  sim.advance(500);
  const auto& retry = sim.last_post(PostPath::kAck);  // the Sim parses it: a whole frame
  EXPECT_EQ(str(retry["leaseId"]), "l-1");
  EXPECT_EQ(str(retry["taskId"]), "t-1");
  EXPECT_EQ(retry["output"]["y"].GetInt(), 2);
  EXPECT_EQ(retry["durationMs"].GetInt(), 25);
  EXPECT_TRUE(sim.released_outputs.empty()) << "no second ReleaseOutput for the retry";
}


// The host keeps the output itself and sends no JSON of it
// (HandlerOutcome::host_keeps_output): every attempt of the ack is the host's
// to build, and the host hears once, with ReleaseOutput, that it may let go.
HandlerOutcome kept_output() {
  HandlerOutcome o = returned("never read: the host keeps the value");
  o.host_builds_ack = true;
  o.host_keeps_output = true;
  o.output_is_json = true;
  return o;
}

std::uint64_t run_lease(Sim& sim, std::string_view lease_id, std::uint32_t host_ref) {
  give(sim, lease_input(lease_id, "t", "core/x", host_ref));
  return sim.started.back().handler_id;
}

// The ack of handler `h`, whose output the host keeps, answered 503 once and
// then 200: each attempt as `check(attempts)` says, the output released once,
// after the 200, and no third attempt.
template <typename Check>
void answer_503_then_200(Sim& sim, std::uint64_t h, Check&& check) {
  check(1u);
  sim.answer_all(503);
  EXPECT_TRUE(sim.released_outputs.empty());
  sim.advance(1'000);  // the retry's backoff (500 ms)
  check(2u);
  EXPECT_TRUE(sim.released_outputs.empty());
  sim.answer_all(200);
  EXPECT_EQ(sim.released_outputs, std::vector<std::uint64_t>{h});
  sim.advance(1'000);
  EXPECT_EQ(sim.count(PostPath::kAck), 2u);
  EXPECT_EQ(sim.released_outputs.size(), 1u);
}

TEST(HostAcks, AKeptOutputIsTheHostsToBuildOnEveryAttemptAndIsReleasedOnceAnswered) {
  Sim sim;
  sim.handle("core/x", 1);
  sim.connect();
  sim.answer_all();
  const std::uint64_t h = run_lease(sim, "l-1", 1);
  sim.done(h, kept_output());
  answer_503_then_200(sim, h, [&](std::size_t attempts) {
    ASSERT_EQ(sim.count(PostPath::kAck), attempts);
    EXPECT_TRUE(sim.last_post(PostPath::kAck)["hostBuilt"].GetBool());  // the retry too: no JSON to encode it from
    EXPECT_EQ(sim.last_post(PostPath::kAck)["leaseHandler"].GetUint64(), h);
  });
}

// A host that sends JSON keeps the output's JSON itself
// (HandlerOutcome::host_writes_json): every attempt is the host's to write,
// with the lease's ids as the engine read them; ReleaseOutput once it settled.
TEST(HostAcks, AnOutputKeptAsJsonIsWrittenByTheHostOnEveryAttemptWithTheEnginesIds) {
  Sim sim;
  sim.handle("core/x", 1);
  sim.connect();
  sim.answer_all();
  const std::uint64_t h = run_lease(sim, "l-\x1f\"1", 1);
  sim.now += 25;
  HandlerOutcome outcome = kept_output();
  outcome.host_writes_json = true;
  sim.done(h, outcome);
  answer_503_then_200(sim, h, [&](std::size_t attempts) {
    ASSERT_EQ(sim.count(PostPath::kAck), attempts);
    const auto& ack = sim.last_post(PostPath::kAck);
    EXPECT_TRUE(ack["hostJson"].GetBool());
    EXPECT_EQ(ack["leaseHandler"].GetUint64(), h);
    EXPECT_EQ(str(ack["leaseId"]), "l-\x1f\"1");
    EXPECT_EQ(str(ack["taskId"]), "t");
    EXPECT_EQ(ack["sentAt"].GetInt64(), sim.posts.back().at);  // when this attempt went out
    EXPECT_EQ(ack["durationMs"].GetInt64(), 25);
  });
}

// The ids of a Post the host has not polled yet stay valid when the host
// calls in meanwhile (as begin_call allows) and that call drops the request:
// here stop's deadline, due in a timeout the host handles mid-poll.
TEST(HostAcks, TheIdsOfAnUnpolledHostWrittenAckOutliveItsRequest) {
  Sim sim;
  sim.handle("core/x", 1);
  sim.connect();
  sim.answer_all();
  const std::string long_id(40, 'L');  // on the heap, not inside the string
  const std::uint64_t h = run_lease(sim, long_id, 1);
  sim.engine.stop(sim.now, true, 10'000);
  sim.drain();
  HandlerOutcome outcome = kept_output();
  outcome.host_writes_json = true;
  sim.engine.handle_handler_done(sim.now, h, outcome);  // its Post is queued, not polled
  sim.engine.handle_timeout(sim.now + 5'000);
  bool seen = false;
  while (auto a = sim.engine.poll_action()) {
    if (auto* p = std::get_if<Post>(&*a); p && p->host_ack) {
      seen = true;
      EXPECT_EQ(std::string(p->host_ack->lease_id), long_id);  // ASan: no use after free
      EXPECT_EQ(std::string(p->host_ack->task_id), "t");
    }
  }
  EXPECT_TRUE(seen);
}

TEST(HostAcks, AKeptOutputIsReleasedOnceWhenItsAckIsGivenUpRefusedOrDroppedAtStop) {
  Config c = test_config();
  c.max_terminal_attempts = 2;
  Sim sim(c);
  sim.handle("core/x", 3);
  sim.connect();
  sim.answer_all();
  // Given up: two attempts, both failed.
  const std::uint64_t h1 = run_lease(sim, "l-1", 1);
  sim.done(h1, kept_output());
  sim.answer_all(503);
  sim.advance(1'000);
  sim.answer_all(503);
  EXPECT_EQ(sim.released_outputs, std::vector<std::uint64_t>{h1});
  // Refused: a 409 is final.
  const std::uint64_t h2 = run_lease(sim, "l-2", 2);
  sim.done(h2, kept_output());
  sim.answer_all(409);
  EXPECT_EQ(sim.released_outputs, (std::vector<std::uint64_t>{h1, h2}));
  // Still in flight when the stop's flush time is up: dropped.
  const std::uint64_t h3 = run_lease(sim, "l-3", 3);
  sim.done(h3, kept_output());
  ASSERT_FALSE(sim.pending.empty());
  sim.engine.stop(sim.now, /*drain=*/true, 1'000);
  sim.drain();
  sim.advance(120'000);
  ASSERT_TRUE(sim.engine.is_stopped());
  EXPECT_EQ(sim.released_outputs, (std::vector<std::uint64_t>{h1, h2, h3}));
}

TEST(HostAcks, AKeptOutputOfACapabilityWithAnOutputSchemaIsTheHostsWord) {
  Sim sim;
  sim.handle("core/x", 1, "", R"({"type":"object","required":["a"]})");
  sim.connect();
  sim.answer_all();
  ASSERT_TRUE(sim.engine.checks_output(0));
  ASSERT_FALSE(sim.engine.checks_input(0));
  const std::uint64_t h = run_lease(sim, "l-1", 1);
  sim.done(h, kept_output());  // no JSON to check: the host checked the value
  ASSERT_EQ(sim.count(PostPath::kAck), 1u);
  EXPECT_TRUE(sim.last_post(PostPath::kAck)["hostBuilt"].GetBool());
  EXPECT_EQ(sim.count(PostPath::kNack), 0u);
  sim.answer_all();
  EXPECT_EQ(sim.released_outputs, std::vector<std::uint64_t>{h});
}

// An output the host kept that the engine does not use is let go at once,
// also in the mode where only the first attempt is the host's: the lease was
// cancelled first (the engine's nack goes out), cancelled and then lost (no
// frame at all), or the handler is not one the engine runs.
TEST(HostAcks, AKeptOutputTheEngineDoesNotUseIsReleasedOnce) {
  Sim sim;
  sim.auto_answer = true;
  sim.handle("core/x", 3);
  sim.connect();
  const std::uint64_t cancelled = run_lease(sim, "l-1", 1);
  const std::uint64_t lost = run_lease(sim, "l-2", 2);
  sim.cancel("l-1");
  sim.cancel("l-2");
  sim.auto_answer = false;
  sim.advance(10'000);
  sim.answer(PostPath::kHeartbeat, 200, R"({"lostLeases":["l-2"]})");
  sim.auto_answer = true;
  sim.done(cancelled, kept_output());
  EXPECT_EQ(str(sim.last_post(PostPath::kNack)["kind"]), "cancelled");
  HandlerOutcome first_only = returned(R"({"y":1})");
  first_only.host_builds_ack = true;
  first_only.output_is_json = true;
  sim.done(lost, first_only);
  EXPECT_EQ(sim.terminal_posts_for("l-2"), 0u);
  sim.done(987654321, kept_output());  // no such handler
  EXPECT_EQ(sim.released_outputs, (std::vector<std::uint64_t>{cancelled, lost, 987654321}));
  EXPECT_EQ(sim.count(PostPath::kAck), 0u);
}

// The byte path's host sends the output's JSON for the frame, and may vouch
// that it matches the outputSchema: then the engine does not check it again.
TEST(HostAcks, AVouchedOutputIsNotCheckedAgainAnUnvouchedOneIs) {
  Sim sim;
  sim.auto_answer = true;
  sim.handle("core/x", 2, "", R"({"type":"object","required":["a"]})");
  sim.connect();
  give(sim, lease_input("l-1", "t-1", "core/x", 1));
  give(sim, lease_input("l-2", "t-2", "core/x", 2));
  ASSERT_EQ(sim.started.size(), 2u);
  HandlerOutcome vouched = returned(R"({"b":1})");  // the host's word is taken
  vouched.output_is_json = true;
  vouched.output_vouched = true;
  sim.done(sim.started[0].handler_id, vouched);
  HandlerOutcome unvouched = returned(R"({"b":1})");
  unvouched.output_is_json = true;
  sim.done(sim.started[1].handler_id, unvouched);
  ASSERT_EQ(sim.count(PostPath::kAck), 1u);
  EXPECT_EQ(str(sim.last_post(PostPath::kAck)["leaseId"]), "l-1");
  EXPECT_EQ(sim.last_post(PostPath::kAck)["output"]["b"].GetInt(), 1);
  EXPECT_EQ(str(sim.last_post(PostPath::kNack)["leaseId"]), "l-2");
  EXPECT_EQ(str(sim.last_post(PostPath::kNack)["kind"]), "schema-mismatch");
}

// The host may vouch for a task's input (it ran a check as conservative as
// the engine's fast path): the engine then needs no JSON of it.
TEST(HostLeases, AVouchedInputNeedsNoJsonAndAnUnvouchedOneIsChecked) {
  Sim sim;
  sim.handle("core/x", 2, R"({"type":"object","required":["a"]})");
  sim.connect();
  sim.answer_all();
  ASSERT_TRUE(sim.engine.checks_input(0));
  Engine::LeaseInput vouched = lease_input("l-1", "t-1", "core/x", 1);
  vouched.input_vouched = true;  // and no input_json at all
  give(sim, vouched);
  ASSERT_EQ(sim.started.size(), 1u);
  Engine::LeaseInput unvouched = lease_input("l-2", "t-2", "core/x", 2);
  unvouched.input_json = std::string_view(R"({"b":1})");
  give(sim, unvouched);
  EXPECT_EQ(sim.started.size(), 1u);
  EXPECT_EQ(str(sim.last_post(PostPath::kNack)["kind"]), "schema-mismatch");
  EXPECT_EQ(count(sim.released, 2), 1u);
}

}  // namespace
}  // namespace neuron::testing
