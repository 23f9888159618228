// The bound on POSTs in flight and the order waiting POSTs go out in
// (engine/requests.cpp), through the simulated gateway.
#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <string>

#include "harness/sim_gateway.h"

namespace neuron::testing {
namespace {

std::string str(const rapidjson::Value& v) { return {v.GetString(), v.GetStringLength()}; }

Config bounded(std::uint32_t max_in_flight) {
  Config c = test_config();
  c.max_in_flight_requests = max_in_flight;
  return c;
}

std::size_t in_flight(const Sim& sim) { return sim.pending.size(); }

// A registered neuron with one capability and `n` leases l-0.. delivered.
void connect_with_leases(Sim& sim, std::uint32_t concurrency, int n) {
  sim.handle("core/x", concurrency);
  sim.connect();
  sim.answer_all();
  for (int i = 0; i < n; ++i) sim.lease("l-" + std::to_string(i), "t-" + std::to_string(i), "core/x");
}

// The first `n` started handlers return.
void return_first(Sim& sim, int n) {
  for (int i = 0; i < n; ++i) sim.done(sim.started[i].handler_id, returned(std::to_string(i)));
}

TEST(Requests, AtMostTheBoundInFlightTheRestWaitInOrder) {
  Sim sim(bounded(2));
  connect_with_leases(sim, 8, 5);
  return_first(sim, 5);
  EXPECT_EQ(sim.count(PostPath::kAck), 2u);
  EXPECT_EQ(in_flight(sim), 2u);
  EXPECT_EQ(sim.engine.stats().requests_in_flight, 2u);
  EXPECT_EQ(sim.engine.stats().requests_queued, 3u);
  sim.answer(PostPath::kAck, 200);
  EXPECT_EQ(sim.count(PostPath::kAck), 3u) << "a slot freed: the next one goes";
  sim.answer_all();
  ASSERT_EQ(sim.count(PostPath::kAck), 5u);
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(str(sim.posts_to(PostPath::kAck)[i]->json()["leaseId"]), "l-" + std::to_string(i)) << "in order";
  }
  EXPECT_EQ(sim.engine.stats().requests_in_flight, 0u);
  EXPECT_EQ(sim.engine.stats().requests_queued, 0u);
}

TEST(Requests, TheDefaultBoundIsTheCapabilitiesConcurrencyAddedUp) {
  Sim sim;  // max_in_flight_requests 0: the default
  EXPECT_EQ(sim.engine.stats().request_bound, kAutoRequestsMin) << "no capability yet";
  sim.handle("core/x", 1);
  EXPECT_EQ(sim.engine.stats().request_bound, kAutoRequestsMin) << "at least";
  sim.handle("core/y", 30);
  EXPECT_EQ(sim.engine.stats().request_bound, 31u);
  sim.handle("core/z", 4'000'000'000u);
  EXPECT_EQ(sim.engine.stats().request_bound, kAutoRequestsMax) << "at most (and no overflow)";
  Sim fixed(bounded(3));
  fixed.handle("core/x", 50);
  EXPECT_EQ(fixed.engine.stats().request_bound, 3u) << "a bound given is kept";
}

TEST(Requests, TheDefaultBoundFollowsUpdateCapability) {
  Sim sim;
  connect_with_leases(sim, 20, 40);
  ASSERT_EQ(sim.engine.stats().request_bound, 20u);
  return_first(sim, 20);  // their slots free: the other 20 start
  ASSERT_EQ(sim.started.size(), 40u);
  for (int i = 20; i < 40; ++i) sim.done(sim.started[i].handler_id, returned(std::to_string(i)));
  EXPECT_EQ(sim.count(PostPath::kAck), 20u);
  EXPECT_EQ(sim.engine.stats().requests_queued, 20u);
  // Raised: what waited goes out at once, behind the update itself.
  ASSERT_TRUE(sim.engine.update_capability(sim.now, "core/x", 50).ok());
  sim.drain();
  EXPECT_EQ(sim.engine.stats().request_bound, 50u);
  EXPECT_EQ(sim.count(PostPath::kUpdateCapability), 1u);
  EXPECT_EQ(sim.count(PostPath::kAck), 40u);
  EXPECT_EQ(in_flight(sim), 41u);
  // Lowered below what is in flight: nothing new goes out until fewer are.
  ASSERT_TRUE(sim.engine.update_capability(sim.now, "core/x", 2).ok());
  sim.drain();
  EXPECT_EQ(sim.engine.stats().request_bound, kAutoRequestsMin);
  EXPECT_EQ(sim.count(PostPath::kUpdateCapability), 1u) << "the second update waits";
  EXPECT_EQ(sim.engine.stats().requests_queued, 1u);
  for (int i = 0; i < 25; ++i) sim.answer(PostPath::kAck, 200);
  EXPECT_EQ(in_flight(sim), 16u);
  EXPECT_EQ(sim.count(PostPath::kUpdateCapability), 1u) << "16 in flight: still full";
  sim.answer(PostPath::kAck, 200);
  EXPECT_EQ(sim.count(PostPath::kUpdateCapability), 2u) << "below the bound: it goes";
  EXPECT_EQ(in_flight(sim), 16u);
}

TEST(Requests, ARaisedDefaultBoundSendsWhatWaitsWhileTheStreamIsDown) {
  Sim sim;
  connect_with_leases(sim, 20, 40);
  return_first(sim, 20);
  for (int i = 20; i < 40; ++i) sim.done(sim.started[i].handler_id, returned(std::to_string(i)));
  ASSERT_EQ(sim.engine.stats().requests_queued, 20u);
  sim.close_stream();
  ASSERT_EQ(sim.count(PostPath::kAck), 20u);
  ASSERT_TRUE(sim.engine.update_capability(sim.now, "core/x", 40).ok());
  sim.drain();
  EXPECT_EQ(sim.count(PostPath::kUpdateCapability), 0u) << "not sent while the stream is down";
  EXPECT_EQ(sim.count(PostPath::kAck), 40u) << "the verdicts that waited for the bound go";
}

TEST(Requests, AHeartbeatNeverWaitsBehindQueuedAcks) {
  Sim sim(bounded(1));
  connect_with_leases(sim, 4, 4);
  return_first(sim, 3);
  ASSERT_EQ(sim.engine.stats().requests_queued, 2u);
  sim.advance(10'000);  // the heartbeat is due: it queues first
  sim.answer(PostPath::kAck, 200);
  ASSERT_EQ(sim.posts.back().path, PostPath::kHeartbeat) << "ahead of the two acks waiting";
  const auto& listed = sim.last_post(PostPath::kHeartbeat)["inFlight"];
  ASSERT_EQ(listed.Size(), 1u) << "it says what runs when it is sent";
  EXPECT_EQ(str(listed[0]["leaseId"]), "l-3");
  // One heartbeat waits at most: another tick while it waits adds none.
  sim.advance(10'000);
  sim.answer_all();
  EXPECT_EQ(sim.count(PostPath::kAck), 3u);
}

// A gateway that never answers heartbeats holds one connection, not one per
// tick: an unanswered heartbeat is abandoned when the next one is due.
TEST(Requests, OneHeartbeatOnTheWireAtMost) {
  Sim sim;
  sim.handle("core/x", 1);
  sim.connect();
  sim.answer_all();
  sim.advance(10'000);
  ASSERT_EQ(sim.count(PostPath::kHeartbeat), 1u);
  const std::uint64_t first = sim.posts.back().request_id;
  sim.advance(10'000);
  ASSERT_EQ(sim.count(PostPath::kHeartbeat), 2u);
  EXPECT_NE(std::find(sim.aborted_posts.begin(), sim.aborted_posts.end(), first), sim.aborted_posts.end());
  EXPECT_EQ(sim.engine.stats().requests_in_flight, 1u);
}

// Connects with `leases` running (l-1, l-2, ...), lets the first heartbeat go
// out and the next one, due a whole interval later, give it up. Returns the
// id of the heartbeat given up.
std::uint64_t abandon_a_heartbeat(Sim& sim, int leases) {
  sim.handle("core/x", 2);
  sim.connect();
  sim.answer_all();
  for (int i = 1; i <= leases; ++i) sim.lease("l-" + std::to_string(i), "t-" + std::to_string(i), "core/x");
  EXPECT_EQ(sim.started.size(), static_cast<std::size_t>(leases));
  sim.advance(10'000);
  const std::uint64_t first = sim.posts.back().request_id;
  EXPECT_EQ(sim.posts.back().path, PostPath::kHeartbeat);
  sim.advance(10'000);
  EXPECT_NE(std::find(sim.aborted_posts.begin(), sim.aborted_posts.end(), first), sim.aborted_posts.end());
  return first;
}

// The heartbeat given up for the next one is answered after all (a custom
// transport cannot abort its POST): the leases it names as lost are lost.
TEST(Requests, ALateAnswerToAnAbandonedHeartbeatStillLosesItsLeases) {
  Sim sim;
  const std::uint64_t first = abandon_a_heartbeat(sim, 2);
  sim.advance(10'000);  // the third gives up the second: the first is still heard
  sim.engine.handle_post_result(sim.now, first, 200, R"({"lostLeases":["l-2"]})");
  sim.drain();
  ASSERT_EQ(sim.aborts.size(), 1u);
  EXPECT_EQ(sim.aborts[0].handler_id, sim.started[1].handler_id);
  EXPECT_EQ(sim.aborts[0].reason, AbortReason::kLeaseLost);
  sim.answer(PostPath::kHeartbeat, 200);
  sim.advance(10'000);
  const auto& beat = sim.posts.back();
  ASSERT_EQ(beat.path, PostPath::kHeartbeat);
  EXPECT_EQ(beat.json()["inFlight"].Size(), 1u) << beat.body;
  // A second late report of the same heartbeat is ignored.
  sim.engine.handle_post_result(sim.now, first, 200, R"({"lostLeases":["l-1"]})");
  sim.drain();
  EXPECT_EQ(sim.aborts.size(), 1u);
}

// ... but not once the stream was lost: the gateway may have delivered the
// lease again on the new stream, and that delivery is not lost.
TEST(Requests, AnAbandonedHeartbeatOfAnEarlierStreamLosesNothing) {
  Sim sim;
  const std::uint64_t first = abandon_a_heartbeat(sim, 1);
  sim.close_stream();
  sim.advance(500);
  sim.accept_stream();
  sim.answer_all();
  sim.engine.handle_post_result(sim.now, first, 200, R"({"lostLeases":["l-1"]})");
  sim.drain();
  EXPECT_TRUE(sim.aborts.empty());
}

// A heartbeat that ran out of its request timeout is given up too: its late
// answer counts like that of one given up for the next heartbeat.
TEST(Requests, ALateAnswerToATimedOutHeartbeatStillLosesItsLeases) {
  Config c = test_config();
  c.request_timeout_ms = 2'000;
  Sim sim(c);
  sim.handle("core/x", 1);
  sim.connect();
  sim.answer_all();
  sim.lease("l-1", "t-1", "core/x");
  sim.advance(10'000);
  const std::uint64_t beat = sim.posts.back().request_id;
  ASSERT_EQ(sim.posts.back().path, PostPath::kHeartbeat);
  sim.advance(2'000);  // timed out
  ASSERT_NE(std::find(sim.aborted_posts.begin(), sim.aborted_posts.end(), beat), sim.aborted_posts.end());
  sim.engine.handle_post_result(sim.now, beat, 200, R"({"lostLeases":["l-1"]})");
  sim.drain();
  ASSERT_EQ(sim.aborts.size(), 1u);
  EXPECT_EQ(sim.aborts[0].reason, AbortReason::kLeaseLost);
}

TEST(Requests, RegisterGoesFirstAfterAReconnect) {
  Sim sim(bounded(1));
  connect_with_leases(sim, 4, 3);
  sim.close_stream();  // running handlers keep running
  return_first(sim, 3);
  sim.advance(500);  // reconnect
  sim.accept_stream();
  sim.answer(PostPath::kAck, 200);
  EXPECT_EQ(sim.posts.back().path, PostPath::kRegister) << "register before the waiting acks";
  sim.answer_all();
  EXPECT_EQ(sim.count(PostPath::kAck), 3u);
}

TEST(Requests, ALeaseWhoseAckWaitsHasFreedItsSlot) {
  Sim sim(bounded(1));
  connect_with_leases(sim, 1, 3);
  sim.done(sim.started[0].handler_id, returned("1"));  // ack in flight
  ASSERT_EQ(sim.started.size(), 2u);
  sim.done(sim.started[1].handler_id, returned("1"));  // ack queued
  EXPECT_EQ(sim.count(PostPath::kAck), 1u);
  EXPECT_EQ(sim.started.size(), 3u) << "the third lease runs while the second's ack waits";
}

TEST(Requests, ARetryWaitsItsBackoffThenGoesFirst) {
  Sim sim(bounded(1));
  connect_with_leases(sim, 4, 3);
  return_first(sim, 3);
  sim.answer(PostPath::kAck, 503);  // l-0 fails: retried after 500 ms
  EXPECT_EQ(str(sim.posts.back().json()["leaseId"]), "l-1") << "meanwhile the next one goes";
  sim.advance(500);
  sim.answer(PostPath::kAck, 200);  // l-1 done: the retry of l-0 is due and goes first
  EXPECT_EQ(str(sim.posts.back().json()["leaseId"]), "l-0");
  sim.answer_all();
  EXPECT_EQ(sim.terminal_posts_for("l-0"), 2u);
  EXPECT_EQ(sim.terminal_posts_for("l-1"), 1u);
  EXPECT_EQ(sim.terminal_posts_for("l-2"), 1u);
}

TEST(Requests, StopFlushesWaitingVerdictsUntilItsDeadline) {
  Config c = bounded(1);
  c.stop_flush_ms = 1'000;
  Sim sim(c);
  connect_with_leases(sim, 4, 3);
  return_first(sim, 3);
  sim.engine.stop(sim.now, true, 5'000);
  sim.drain();
  EXPECT_TRUE(sim.events_of<StopSettled>().empty()) << "acks still waiting to go out";
  sim.answer(PostPath::kAck, 200);
  sim.answer(PostPath::kAck, 200);
  EXPECT_TRUE(sim.events_of<StopSettled>().empty());
  sim.advance(1'000);  // the flush deadline: the last ack is given up
  EXPECT_EQ(sim.events_of<StopSettled>().size(), 1u);
  EXPECT_FALSE(sim.engine.poll_timeout());
  EXPECT_EQ(sim.engine.stats().requests_queued + sim.engine.stats().requests_in_flight, 0u);
}

// The backlog of issue "hold up under an overloaded gateway": 20 000 leases at
// once to a capability with concurrency 1, handlers that return at once, a
// gateway that answers in its own time. Every lease is acked exactly once and
// never more than the bound is in flight.
TEST(Requests, ABacklogDrainsWithinTheBound) {
  for (std::uint32_t concurrency : {1u, 64u}) {
    Sim sim(bounded(16));
    sim.handle("core/x", concurrency);
    sim.connect();
    sim.answer_all();
    std::string chunk;
    constexpr int kLeases = 20'000;
    for (int i = 0; i < kLeases; ++i) {
      chunk += "data: {\"type\":\"lease\",\"leaseId\":\"L" + std::to_string(i) + "\",\"task\":{\"taskId\":\"T" +
               std::to_string(i) + "\",\"type\":\"core/x\",\"input\":{\"pad\":\"" + std::string(300, 'x') + "\"}}}\n\n";
    }
    sim.send_bytes(chunk);
    std::size_t done = 0;
    std::size_t most_in_flight = 0;
    while (done < sim.started.size() || !sim.pending.empty()) {
      // Every handler started so far returns; the gateway answers one POST.
      while (done < sim.started.size()) sim.done(sim.started[done++].handler_id, returned("1"));
      most_in_flight = std::max(most_in_flight, sim.pending.size());
      if (!sim.pending.empty()) {
        const std::uint64_t id = sim.pending.begin()->first;
        sim.pending.erase(sim.pending.begin());
        sim.engine.handle_post_result(sim.now, id, 200, "{}");
        sim.drain();
      }
    }
    EXPECT_EQ(sim.started.size(), static_cast<std::size_t>(kLeases)) << concurrency;
    EXPECT_EQ(sim.count(PostPath::kAck), static_cast<std::size_t>(kLeases)) << concurrency;
    EXPECT_LE(most_in_flight, 16u) << concurrency;
    std::set<std::string> acked;
    for (const SentPost* p : sim.posts_to(PostPath::kAck)) acked.insert(str(p->json()["leaseId"]));
    EXPECT_EQ(acked.size(), static_cast<std::size_t>(kLeases)) << "each exactly once";
  }
}


// Config::host_releases_posts: an answer is acted on at once, but its place in
// the bound is free only when the host says its connection is (Node's fetch
// pools a connection a few turns after the answer ended).
TEST(Requests, AnAnsweredPostHoldsItsPlaceUntilTheHostReleasesIt) {
  Config config = bounded(2);
  config.host_releases_posts = true;
  Sim sim(config);
  connect_with_leases(sim, 8, 4);
  // The register POST was answered but not released: one place is taken.
  return_first(sim, 4);
  EXPECT_EQ(sim.count(PostPath::kAck), 1u) << "the register POST still holds a place";
  EXPECT_EQ(sim.engine.stats().requests_in_flight, 1u) << "in flight counts what is on the wire";
  const std::uint64_t register_id = sim.posts_to(PostPath::kRegister)[0]->request_id;
  sim.engine.handle_post_released(sim.now, register_id);
  sim.drain();
  EXPECT_EQ(sim.count(PostPath::kAck), 2u) << "released: the next ack goes";

  const std::uint64_t first_ack = sim.posts_to(PostPath::kAck)[0]->request_id;
  sim.answer(PostPath::kAck, 200);
  EXPECT_EQ(sim.count(PostPath::kAck), 2u) << "answered, not released: nothing more goes";
  sim.engine.handle_post_released(sim.now, first_ack);
  sim.drain();
  EXPECT_EQ(sim.count(PostPath::kAck), 3u);

  // Releases of unknown, repeated or aborted ids change nothing.
  sim.engine.handle_post_released(sim.now, first_ack);
  sim.engine.handle_post_released(sim.now, 9'999);
  sim.drain();
  EXPECT_EQ(sim.count(PostPath::kAck), 3u);

  // A POST that times out frees its place itself: the engine aborted it.
  sim.advance(config.request_timeout_ms);
  bool last_sent = false;
  for (const SentPost* p : sim.posts_to(PostPath::kAck)) last_sent |= str(p->json()["leaseId"]) == "l-3";
  EXPECT_TRUE(last_sent) << "the timed-out acks' places went to the last ack";
}

TEST(Requests, WithoutHostReleasesAnAnswerFreesItsPlace) {
  Sim sim(bounded(1));
  connect_with_leases(sim, 8, 2);
  return_first(sim, 2);
  EXPECT_EQ(sim.count(PostPath::kAck), 1u);
  sim.answer(PostPath::kAck, 200);
  EXPECT_EQ(sim.count(PostPath::kAck), 2u);
}

}  // namespace
}  // namespace neuron::testing
