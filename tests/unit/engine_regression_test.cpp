// Regressions: findings of a review against shared/PROTOCOL.md and
// src/neuron/engine.h, each of which failed on the engine as reviewed.
#include <gtest/gtest.h>

#include "harness/sim_gateway.h"

namespace neuron::testing {
namespace {

// Finding 1 (rule 10; frames.h "callers pass well-formed JSON only"):
// handle_progress embeds ProgressUpdate::data_json verbatim, so a data value
// that is not JSON (a careless host passing JSON.stringify's `undefined`, say)
// yields a progress POST whose body is not JSON. The engine already refuses to
// embed non-JSON handler output (rule 7 path); progress must be as careful,
// and ctx.progress() "never throws", so the fix is to drop the bad field.
TEST(RegressionProgress, DataThatIsNotJsonNeverProducesAnInvalidPostBody) {
  Sim sim;
  sim.handle("core/x");
  sim.connect();
  sim.answer_all();
  sim.lease("l-1", "t-1", "core/x");
  const std::uint64_t h = sim.started.at(0).handler_id;
  // The Sim throws if the engine posts a body that is not JSON.
  ASSERT_NO_THROW(sim.progress(h, {50.0, std::string("half"), std::string("undefined")}));
  ASSERT_EQ(sim.count(PostPath::kProgress), 1u) << "percent and message still go out";
  const auto& p = sim.last_post(PostPath::kProgress);
  EXPECT_EQ(p["percent"].GetDouble(), 50.0);
  EXPECT_FALSE(p.HasMember("data"));
  // Same through the merge path (an update waiting behind one in flight).
  ASSERT_NO_THROW(sim.progress(h, {60.0, std::nullopt, std::string("{oops")}));
  ASSERT_NO_THROW(sim.answer(PostPath::kProgress, 200));
  EXPECT_EQ(sim.count(PostPath::kProgress), 2u);
}

// Finding 2 (rule 2 "finished within the last few minutes"; Config
// recent_lease_ttl_ms "rule 2 memory ... by age"): expiry only happens inside
// remember(), i.e. when some other lease finishes. is_known() never looks at
// the age, so on a quiet neuron a lease id is remembered forever and a later
// lease with that id is silently ignored: no handler, no ack, no nack.
TEST(RegressionRecentLeases, IdIsForgottenAfterTheTtlEvenIfNothingElseFinishes) {
  Config c = test_config();
  c.recent_lease_ttl_ms = 60'000;
  c.idle_timeout_ms = 600'000;
  Sim sim(c);
  sim.auto_answer = true;
  sim.handle("core/x", 1);
  sim.connect();
  sim.lease("old", "t", "core/x");
  sim.done(sim.started.back().handler_id, returned("1"));
  sim.advance(120'000);  // twice the TTL, nothing else finishes meanwhile
  sim.lease("old", "t", "core/x");
  EXPECT_EQ(sim.started.size(), 2u) << "forgotten after the TTL: accepted again";
  EXPECT_EQ(sim.engine.stats().leases_duplicate, 0u);
}

// Finding 3 (1.1 keep-alive: "a stream that delivered no bytes for
// idleTimeoutMs" is dead): handle_stream_bytes re-arms the idle timer even for
// a zero-length chunk, so a host whose reader yields empty chunks keeps a dead
// stream alive forever.
TEST(RegressionIdle, EmptyChunksAreNotBytesAndDoNotKeepADeadStreamAlive) {
  Sim sim;
  sim.auto_answer = true;
  sim.handle("core/x");
  sim.connect();
  for (int i = 0; i < 6; ++i) {
    sim.advance(10'000);
    sim.send_bytes("");
  }
  ASSERT_EQ(sim.events_of<ConnectionReconnecting>().size(), 1u);
  EXPECT_EQ(sim.events_of<ConnectionReconnecting>()[0]->reason, "idle timeout");
}


// A register POST that fails after `registered` already arrived changes
// nothing: the gateway has us (no teardown, no dropped leases).
TEST(RegressionRegister, FailureAfterRegisteredIsIgnored) {
  Sim sim;
  sim.handle("core/x", 1);
  sim.start();
  sim.accept_stream();
  sim.registered();
  sim.lease("l-1", "t-1", "core/x");
  sim.lease("l-2", "t-2", "core/x");
  sim.answer(PostPath::kRegister, 503);
  EXPECT_TRUE(sim.engine.is_registered());
  EXPECT_TRUE(sim.closes.empty());
  EXPECT_EQ(sim.engine.capability_stats(0).queued, 1u);
  EXPECT_TRUE(sim.logged("register post failed after registration"));
}

// A gateway that accepts register but never sends `registered` (while its
// pings keep the stream alive) must not leave start() pending forever.
TEST(RegressionRegister, RegisteredMustArriveWithinTheRequestTimeout) {
  Config c = test_config();
  c.request_timeout_ms = 30'000;
  Sim sim(c);
  sim.handle("core/x");
  sim.start();
  sim.accept_stream();
  sim.answer(PostPath::kRegister, 200);
  for (int i = 0; i < 2; ++i) {
    sim.advance(14'000);
    sim.send_bytes(": ping\n\n");
  }
  EXPECT_TRUE(sim.events_of<ConnectionReconnecting>().empty());
  sim.advance(2'000);
  ASSERT_EQ(sim.events_of<ConnectionReconnecting>().size(), 1u);
  EXPECT_EQ(sim.events_of<ConnectionReconnecting>()[0]->reason, "registration timed out");
  EXPECT_TRUE(sim.has_error(ErrorCode::kStreamFailed));
  sim.advance(500);
  sim.establish();
  EXPECT_TRUE(sim.events_of<StartSettled>()[0]->status.ok()) << "start() settles on the next registration";
}

// stop() never starts a connection: a stream still being opened is
// abandoned, so no register is posted after stop().
TEST(RegressionStop, StopWhileConnectingAbandonsTheOpen) {
  Sim sim;
  sim.handle("core/x", 1);
  sim.connect();
  sim.lease("l-1", "t-1", "core/x");
  sim.close_stream();
  sim.advance(500);  // reconnecting: OpenStream sent, not answered yet
  ASSERT_EQ(sim.opens.size(), 2u);
  sim.engine.stop(sim.now, /*drain=*/true, 10'000);
  sim.drain();
  EXPECT_EQ(sim.closes.size(), 1u) << "the pending open is closed";
  sim.accept_stream();  // a late answer for the abandoned stream
  EXPECT_EQ(sim.count(PostPath::kRegister), 1u);
  EXPECT_TRUE(sim.events_of<StopSettled>().empty()) << "l-1 is still draining";
  sim.done(sim.started[0].handler_id, returned("1"));
  sim.answer_all();
  EXPECT_EQ(sim.events_of<StopSettled>().size(), 1u);
}

// A cancelled lease that is then reported lost: its signal fired once (for
// the cancel), and it gets no terminal frame (the gateway no longer holds it).
TEST(RegressionLost, CancelledThenLostAbortsOnceAndPostsNothing) {
  Sim sim;
  sim.auto_answer = true;
  sim.handle("core/x");
  sim.connect();
  sim.lease("l-1", "t-1", "core/x");
  sim.cancel("l-1");
  sim.auto_answer = false;
  sim.advance(10'000);
  sim.answer(PostPath::kHeartbeat, 200, R"({"lostLeases":["l-1"]})");
  EXPECT_EQ(sim.aborts.size(), 1u);
  sim.done(sim.started[0].handler_id, threw("aborted"));
  EXPECT_EQ(sim.terminal_posts_for("l-1"), 0u);
}

}  // namespace
}  // namespace neuron::testing

namespace neuron::testing {
namespace {

// Found by fuzz_engine: checking a lease's input against its schema parsed
// the input into the buffer the lease's ids were decoded in, so the handler
// started under another lease id.
TEST(Regression, ALeaseCheckedAgainstAnInputSchemaKeepsItsIds) {
  Sim sim;
  sim.auto_answer = true;
  sim.handle("core/b", 1, R"({"type":"object"})");
  sim.connect();
  sim.lease("L3", "T1", "core/b", R"({"x":-7,"deep":[[[[{"a":null}]]]]})");
  ASSERT_EQ(sim.started.size(), 1u);
  EXPECT_EQ(sim.started[0].lease_id, "L3");
  sim.done(sim.started[0].handler_id, returned("1"));
  const auto& ack = sim.last_post(PostPath::kAck);
  EXPECT_EQ(std::string(ack["leaseId"].GetString()), "L3");
  EXPECT_EQ(std::string(ack["taskId"].GetString()), "T1");
}

}  // namespace
}  // namespace neuron::testing
