// Connection engine: PROTOCOL.md 1.1 (status codes), 1.2 (reconnection),
// 1.3 (heartbeat answer), 1.4 (IPC), through the simulated gateway.
#include <gtest/gtest.h>

#include <cmath>

#include "harness/sim_gateway.h"

namespace neuron::testing {
namespace {

std::string str(const rapidjson::Value& v) { return {v.GetString(), v.GetStringLength()}; }

TEST(Connection, StartOpensStreamThenRegistersThenHeartbeats) {
  Sim sim;
  sim.handle("core/script.python", 4);
  sim.start();
  ASSERT_EQ(sim.opens.size(), 1u);
  EXPECT_EQ(sim.opens[0].path, "/neuron/events?neuronId=w-1");
  EXPECT_TRUE(sim.posts.empty()) << "register waits for the stream";
  EXPECT_TRUE(sim.events_of<ConnectionOpen>().empty());

  sim.accept_stream();
  ASSERT_EQ(sim.events_of<ConnectionOpen>().size(), 1u);
  ASSERT_EQ(sim.count(PostPath::kRegister), 1u);
  const auto& reg = sim.last_post(PostPath::kRegister);
  EXPECT_EQ(str(reg["type"]), "register");
  EXPECT_EQ(str(reg["neuronId"]), "w-1");
  EXPECT_EQ(str(reg["sentAt"]), "2023-11-14T22:13:20.000Z");
  EXPECT_EQ(str(reg["sdk"]["name"]), "@holokai/neuron-sdk");
  ASSERT_EQ(reg["capabilities"].Size(), 1u);
  EXPECT_EQ(str(reg["capabilities"][0]["type"]), "core/script.python");
  EXPECT_EQ(str(reg["capabilities"][0]["scope"]), "any");
  EXPECT_EQ(reg["capabilities"][0]["concurrency"].GetInt(), 4);

  sim.answer(PostPath::kRegister, 200);
  sim.advance(20'000);
  EXPECT_EQ(sim.count(PostPath::kHeartbeat), 0u) << "no heartbeat before registered";
  EXPECT_TRUE(sim.events_of<StartSettled>().empty()) << "start() pends until registered";

  sim.registered("s-42");
  auto registered = sim.events_of<ConnectionRegistered>();
  ASSERT_EQ(registered.size(), 1u);
  EXPECT_EQ(registered[0]->session_id, "s-42");
  EXPECT_EQ(registered[0]->capabilities, 1u);
  ASSERT_EQ(sim.events_of<StartSettled>().size(), 1u);
  EXPECT_TRUE(sim.events_of<StartSettled>()[0]->status.ok());
  EXPECT_TRUE(sim.logged("registered"));

  sim.advance(9'999);
  EXPECT_EQ(sim.count(PostPath::kHeartbeat), 0u);
  sim.advance(1);
  ASSERT_EQ(sim.count(PostPath::kHeartbeat), 1u);
  EXPECT_EQ(sim.last_post(PostPath::kHeartbeat)["inFlight"].Size(), 0u);
  sim.answer_all();
  sim.advance(10'000);
  EXPECT_EQ(sim.count(PostPath::kHeartbeat), 2u);
}

TEST(Connection, UserScopedCapabilityAndSchemasAreAdvertised) {
  Sim sim;
  CapabilitySpec spec;
  spec.type = "desktop/mcp/drive.read";
  spec.on_behalf_of = "user:abc";
  spec.description = "read a drive file";
  spec.input_schema_json = R"({"type":"object"})";
  ASSERT_TRUE(sim.engine.handle(spec).ok());
  sim.start();
  sim.accept_stream();
  const auto& cap = sim.last_post(PostPath::kRegister)["capabilities"][0];
  EXPECT_EQ(str(cap["scope"]["onBehalfOf"]), "user:abc");
  EXPECT_EQ(str(cap["description"]), "read a drive file");
  EXPECT_EQ(str(cap["inputSchema"]["type"]), "object");
  EXPECT_FALSE(cap.HasMember("outputSchema"));
}

TEST(Connection, NeuronIdIsUrlEncodedInTheStreamPath) {
  Config c = test_config();
  c.neuron_id = "worker host/1?x=é";
  Sim sim(c);
  sim.handle("core/x");
  sim.start();
  EXPECT_EQ(sim.opens[0].path, "/neuron/events?neuronId=worker%20host%2F1%3Fx%3D%C3%A9");
}

TEST(Connection, StartWithoutHandlersAndHandleAfterStartFail) {
  Sim sim;
  Status s = sim.engine.start(sim.now);
  EXPECT_EQ(s.code, ErrorCode::kNoHandlers);
  EXPECT_NE(s.message.find("requires at least one handler"), std::string::npos);
  sim.handle("core/x");
  sim.start();
  EXPECT_TRUE(sim.engine.start(sim.now).ok()) << "second start is a no-op";
  sim.drain();
  EXPECT_EQ(sim.opens.size(), 1u);
  CapabilitySpec spec;
  spec.type = "core/y";
  EXPECT_EQ(sim.engine.handle(spec).code, ErrorCode::kHandleAfterStart);
}

// ---- reconnection (1.2) ----

TEST(Reconnect, BackoffDoublesToTheCeilingWithJitterZero) {
  Config c = test_config();
  c.initial_reconnect_delay_ms = 500;
  c.max_reconnect_delay_ms = 30'000;
  Sim sim(c);
  sim.handle("core/x");
  sim.start();
  const TimeMs expected[] = {500, 1000, 2000, 4000, 8000, 16000, 30000, 30000};
  for (TimeMs delay : expected) {
    sim.close_stream("connection refused");
    auto rec = sim.events_of<ConnectionReconnecting>();
    ASSERT_FALSE(rec.empty());
    EXPECT_EQ(rec.back()->delay_ms, delay);
    EXPECT_EQ(rec.back()->reason, "connection refused");
    const std::size_t opens = sim.opens.size();
    sim.advance(delay - 1);
    EXPECT_EQ(sim.opens.size(), opens) << "no reopen before the delay";
    sim.advance(1);
    EXPECT_EQ(sim.opens.size(), opens + 1);
  }
  auto rec = sim.events_of<ConnectionReconnecting>();
  for (std::size_t i = 0; i < rec.size(); ++i) EXPECT_EQ(rec[i]->attempt, i + 1);
  EXPECT_EQ(sim.engine.stats().reconnects, 8u);
  EXPECT_EQ(sim.events_of<ErrorEvent>().size(), 8u) << "a failed open emits error";
}

TEST(Reconnect, AttemptCounterResetsOnRegistered) {
  Sim sim;
  sim.handle("core/x");
  sim.start();
  sim.close_stream();
  sim.advance(500);
  sim.close_stream();
  EXPECT_EQ(sim.events_of<ConnectionReconnecting>().back()->attempt, 2u);
  sim.advance(1000);
  sim.establish();
  sim.close_stream("reset by peer");
  auto rec = sim.events_of<ConnectionReconnecting>();
  EXPECT_EQ(rec.back()->attempt, 1u);
  EXPECT_EQ(rec.back()->delay_ms, 500);
  ASSERT_EQ(sim.events_of<ConnectionClose>().size(), 1u) << "close only for a stream that was open";
  EXPECT_EQ(sim.events_of<ConnectionClose>()[0]->reason, "reset by peer");
}

TEST(Reconnect, DefaultJitterStaysWithinTwentyPercentBelowAndIsSeeded) {
  auto delays = [](std::uint64_t seed) {
    Config c = test_config();
    c.reconnect_jitter = 0.2;
    c.random_seed = seed;
    Sim sim(c);
    sim.handle("core/x");
    sim.start();
    std::vector<TimeMs> out;
    for (int i = 0; i < 10; ++i) {
      sim.close_stream();
      out.push_back(sim.events_of<ConnectionReconnecting>().back()->delay_ms);
      sim.advance(out.back());
    }
    return out;
  };
  const std::vector<TimeMs> a = delays(7), b = delays(7), other = delays(8);
  EXPECT_EQ(a, b) << "same seed, same delays";
  EXPECT_NE(a, other);
  for (std::size_t i = 0; i < a.size(); ++i) {
    const double nominal = std::min(500.0 * std::pow(2.0, static_cast<double>(i)), 30000.0);
    EXPECT_LE(a[i], nominal);
    EXPECT_GE(a[i], std::floor(nominal * 0.8));
  }
}

TEST(Reconnect, StreamLossPausesHeartbeatDropsQueuedKeepsRunning) {
  Sim sim;
  sim.handle("core/x", 1);
  sim.connect();
  sim.lease("l-1", "t-1", "core/x");
  sim.lease("l-2", "t-2", "core/x");
  ASSERT_EQ(sim.started.size(), 1u);
  EXPECT_EQ(sim.engine.capability_stats(0).queued, 1u);

  sim.close_stream();
  EXPECT_EQ(sim.engine.capability_stats(0).queued, 0u);
  EXPECT_EQ(sim.engine.stats().leases_dropped, 1u);
  EXPECT_EQ(sim.count(PostPath::kNack), 0u) << "dropped leases get no nack";
  sim.advance(60'000);
  EXPECT_EQ(sim.count(PostPath::kHeartbeat), 0u) << "heartbeat paused while not registered";

  // The running handler finishes while disconnected: its ack is still posted.
  sim.done(sim.started[0].handler_id, returned("1"));
  EXPECT_EQ(sim.count(PostPath::kAck), 1u);

  // The broker redelivers l-2 after the reconnect: it must be accepted.
  sim.establish();
  sim.lease("l-2", "t-2", "core/x");
  EXPECT_EQ(sim.started.size(), 2u);
}

TEST(Reconnect, IdleTimeoutAbortsTheStreamAndReconnects) {
  Sim sim;
  sim.handle("core/x");
  sim.connect();
  sim.answer_all();
  sim.advance(30'000);
  sim.send_bytes(": ping\n\n");  // keep-alive resets the idle clock
  sim.advance(44'999);
  EXPECT_TRUE(sim.events_of<ConnectionReconnecting>().empty());
  const std::uint64_t stream = sim.stream;
  sim.answer_all();
  sim.advance(1);
  ASSERT_EQ(sim.closes.size(), 1u);
  EXPECT_EQ(sim.closes[0], stream);
  ASSERT_EQ(sim.events_of<ConnectionReconnecting>().size(), 1u);
  EXPECT_EQ(sim.events_of<ConnectionReconnecting>()[0]->reason, "idle timeout");
  EXPECT_EQ(sim.events_of<ConnectionClose>()[0]->reason, "idle timeout");
}

TEST(Reconnect, IdleTimeoutAlsoCoversAnOpenThatNeverAnswers) {
  Sim sim;
  sim.handle("core/x");
  sim.start();
  sim.advance(45'000);
  EXPECT_EQ(sim.closes.size(), 1u);
  EXPECT_EQ(sim.events_of<ConnectionReconnecting>().size(), 1u);
}

TEST(Reconnect, DisconnectFrameWithAndWithoutReconnect) {
  {
    Sim sim;
    sim.handle("core/x");
    sim.connect();
    sim.send_frame(R"({"type":"disconnect","reason":"superseded"})");
    EXPECT_EQ(sim.events_of<ConnectionClose>().back()->reason, "superseded");
    ASSERT_EQ(sim.events_of<ConnectionReconnecting>().size(), 1u) << "reconnect defaults to true";
    sim.advance(500);
    EXPECT_EQ(sim.opens.size(), 2u);
  }
  {
    Sim sim;
    sim.handle("core/x");
    sim.connect();
    sim.send_frame(R"({"type":"disconnect","reason":"superseded","reconnect":false})");
    EXPECT_EQ(sim.closes.size(), 1u);
    EXPECT_TRUE(sim.events_of<ConnectionReconnecting>().empty());
    sim.advance(120'000);
    EXPECT_EQ(sim.opens.size(), 1u);
    EXPECT_FALSE(sim.engine.is_connected());
  }
}

TEST(Reconnect, FramesAfterADisconnectInTheSameChunkAreIgnored) {
  Sim sim;
  sim.handle("core/x");
  sim.connect();
  sim.send_bytes(
      "data: {\"type\":\"disconnect\",\"reconnect\":false}\n\n"
      "data: {\"type\":\"lease\",\"leaseId\":\"l-1\",\"task\":{\"taskId\":\"t\",\"type\":\"core/x\"}}\n\n");
  EXPECT_TRUE(sim.started.empty());
}

// ---- status codes (1.1) ----

TEST(StatusCodes, StreamOpenNon200WrongContentTypeAndNetworkErrorReconnect) {
  Sim sim;
  sim.handle("core/x");
  sim.start();
  sim.accept_stream(503);
  EXPECT_EQ(sim.events_of<ErrorEvent>().back()->error.code, ErrorCode::kStreamFailed);
  EXPECT_EQ(sim.events_of<ErrorEvent>().back()->error.http_status, 503);
  sim.advance(500);
  sim.accept_stream(200, /*event_stream=*/false);
  EXPECT_NE(sim.events_of<ErrorEvent>().back()->error.message.find("text/event-stream"), std::string::npos);
  sim.advance(1000);
  sim.close_stream("ECONNREFUSED");
  EXPECT_EQ(sim.events_of<ConnectionReconnecting>().size(), 3u);
  EXPECT_TRUE(sim.events_of<ConnectionOpen>().empty());
}

TEST(StatusCodes, StreamOpen401RetriesOnceThenBacksOff) {
  Sim sim;
  sim.handle("core/x");
  sim.start();
  sim.accept_stream(401);
  EXPECT_EQ(sim.opens.size(), 2u) << "401: re-auth and retry at once";
  EXPECT_TRUE(sim.events_of<ErrorEvent>().empty());
  sim.accept_stream(401);
  EXPECT_EQ(sim.opens.size(), 2u) << "second 401 is final for that request";
  EXPECT_EQ(sim.events_of<ErrorEvent>().back()->error.http_status, 401);
  EXPECT_EQ(sim.events_of<ConnectionReconnecting>().size(), 1u);
  sim.advance(500);
  sim.accept_stream(401);
  EXPECT_EQ(sim.opens.size(), 4u) << "a new attempt gets its own 401 retry";
}

TEST(StatusCodes, Register403IsARegistrationErrorWithoutReconnect) {
  Sim sim;
  sim.handle("core/x");
  sim.start();
  sim.accept_stream();
  sim.answer(PostPath::kRegister, 403, R"({"error":"core/* needs a service identity"})");
  auto settled = sim.events_of<StartSettled>();
  ASSERT_EQ(settled.size(), 1u);
  EXPECT_EQ(settled[0]->status.code, ErrorCode::kRegistrationRejected);
  EXPECT_EQ(settled[0]->status.http_status, 403);
  EXPECT_NE(settled[0]->status.message.find("core/* needs a service identity"), std::string::npos);
  EXPECT_EQ(sim.events_of<ErrorEvent>().back()->error.code, ErrorCode::kRegistrationRejected);
  EXPECT_EQ(sim.closes.size(), 1u);
  sim.advance(600'000);
  EXPECT_EQ(sim.opens.size(), 1u) << "no reconnect after 403";
}

TEST(StatusCodes, Register401RetriesOnceWithTheSameFrame) {
  Sim sim;
  sim.handle("core/x");
  sim.start();
  sim.accept_stream();
  sim.answer(PostPath::kRegister, 401);
  ASSERT_EQ(sim.count(PostPath::kRegister), 2u);
  EXPECT_EQ(sim.posts_to(PostPath::kRegister)[0]->body, sim.posts_to(PostPath::kRegister)[1]->body);
  sim.answer(PostPath::kRegister, 401);
  EXPECT_EQ(sim.count(PostPath::kRegister), 2u);
  EXPECT_EQ(sim.events_of<ConnectionReconnecting>().size(), 1u) << "then it is a failed connection";
}

TEST(StatusCodes, HeartbeatAndProgressFailuresAreLoggedNotRetried) {
  Sim sim;
  sim.handle("core/x");
  sim.connect();
  sim.lease("l-1", "t-1", "core/x");
  sim.answer_all();
  sim.advance(10'000);
  sim.answer(PostPath::kHeartbeat, 500);
  EXPECT_TRUE(sim.logged("heartbeat post failed"));
  sim.progress(sim.started[0].handler_id, {50.0, std::nullopt, std::nullopt});
  sim.answer(PostPath::kProgress, 503);
  EXPECT_TRUE(sim.logged("progress post failed"));
  sim.advance(5'000);
  EXPECT_EQ(sim.count(PostPath::kHeartbeat), 1u);
  EXPECT_EQ(sim.count(PostPath::kProgress), 1u);
  sim.advance(5'000);
  EXPECT_EQ(sim.count(PostPath::kHeartbeat), 2u) << "the next tick supersedes it";
}

TEST(StatusCodes, Heartbeat401IsRetriedOnce) {
  Sim sim;
  sim.handle("core/x");
  sim.connect();
  sim.answer_all();
  sim.advance(10'000);
  sim.answer(PostPath::kHeartbeat, 401);
  EXPECT_EQ(sim.count(PostPath::kHeartbeat), 2u);
  sim.answer(PostPath::kHeartbeat, 401);
  EXPECT_EQ(sim.count(PostPath::kHeartbeat), 2u);
}

class TerminalRetry : public ::testing::TestWithParam<int> {};

TEST_P(TerminalRetry, AckIsRetriedWithBackoffAtMostFiveAttempts) {
  const int status = GetParam();
  Sim sim;
  sim.handle("core/x");
  sim.connect();
  sim.lease("l-1", "t-1", "core/x");
  sim.answer_all();
  sim.done(sim.started[0].handler_id, returned(R"({"ok":true})"));
  const TimeMs delays[] = {500, 1000, 2000, 4000};
  for (TimeMs delay : delays) {
    const std::size_t acks = sim.count(PostPath::kAck);
    sim.answer(PostPath::kAck, status);
    sim.advance(delay - 1);
    EXPECT_EQ(sim.count(PostPath::kAck), acks);
    sim.advance(1);
    EXPECT_EQ(sim.count(PostPath::kAck), acks + 1);
  }
  EXPECT_EQ(sim.count(PostPath::kAck), 5u);
  sim.answer(PostPath::kAck, status);
  sim.advance(600'000);
  EXPECT_EQ(sim.count(PostPath::kAck), 5u) << "at most 5 attempts";
  EXPECT_TRUE(sim.has_error(ErrorCode::kPostFailed));
  // Every attempt is the same frame for the same lease.
  for (const SentPost* p : sim.posts_to(PostPath::kAck)) {
    EXPECT_EQ(str(p->json()["leaseId"]), "l-1");
    EXPECT_TRUE(p->json()["output"]["ok"].GetBool());
  }
}
INSTANTIATE_TEST_SUITE_P(StatusCodes, TerminalRetry, ::testing::Values(0, 429, 500, 502, 503));

TEST(StatusCodes, Ack409And4xxAreNotRetried) {
  for (int status : {409, 400, 404, 413}) {
    Sim sim;
    sim.handle("core/x");
    sim.connect();
    sim.lease("l-1", "t-1", "core/x");
    sim.answer_all();
    sim.done(sim.started[0].handler_id, threw("boom"));
    sim.answer(PostPath::kNack, status, R"({"error":"lease not held"})");
    sim.advance(600'000);
    EXPECT_EQ(sim.count(PostPath::kNack), 1u) << status;
    EXPECT_TRUE(sim.logged("ack POST rejected by gateway")) << status;
  }
}

TEST(StatusCodes, Ack401RetriesOnceAndCountsAsOneAttempt) {
  Sim sim;
  sim.handle("core/x");
  sim.connect();
  sim.lease("l-1", "t-1", "core/x");
  sim.answer_all();
  sim.done(sim.started[0].handler_id, returned("1"));
  sim.answer(PostPath::kAck, 401);
  EXPECT_EQ(sim.count(PostPath::kAck), 2u) << "at once";
  for (int i = 0; i < 4; ++i) {
    sim.answer(PostPath::kAck, 503);
    sim.advance(TimeMs{500} << i);
  }
  EXPECT_EQ(sim.count(PostPath::kAck), 6u) << "1 + its 401 retry + 4 more attempts";
  sim.answer(PostPath::kAck, 503);
  sim.advance(600'000);
  EXPECT_EQ(sim.count(PostPath::kAck), 6u);
}

TEST(StatusCodes, UnansweredPostTimesOutAsANetworkError) {
  Config c = test_config();
  c.request_timeout_ms = 30'000;
  Sim sim(c);
  sim.handle("core/x");
  sim.connect();
  sim.lease("l-1", "t-1", "core/x");
  sim.answer_all();
  sim.done(sim.started[0].handler_id, returned("1"));
  const std::uint64_t first = sim.posts_to(PostPath::kAck)[0]->request_id;
  sim.advance(30'000);
  ASSERT_FALSE(sim.aborted_posts.empty());
  EXPECT_EQ(sim.aborted_posts.back(), first);
  sim.advance(500);
  EXPECT_EQ(sim.count(PostPath::kAck), 2u) << "retried like a network error";
}

// ---- heartbeat answer (1.3) ----

TEST(Heartbeat, ListsRunningLeasesOnlyWithStartTimes) {
  Sim sim;
  sim.handle("core/x", 2);
  sim.connect();
  sim.lease("l-1", "t-1", "core/x");
  sim.advance(1'000);
  sim.lease("l-2", "t-2", "core/x");
  sim.lease("l-3", "t-3", "core/x");  // queued
  sim.answer_all();
  sim.advance(9'000);
  const auto& hb = sim.last_post(PostPath::kHeartbeat);
  ASSERT_EQ(hb["inFlight"].Size(), 2u);
  EXPECT_EQ(str(hb["inFlight"][0]["leaseId"]), "l-1");
  EXPECT_EQ(str(hb["inFlight"][0]["taskId"]), "t-1");
  EXPECT_EQ(str(hb["inFlight"][0]["startedAt"]), "2023-11-14T22:13:20.000Z");
  EXPECT_EQ(str(hb["inFlight"][1]["leaseId"]), "l-2");
  EXPECT_EQ(str(hb["inFlight"][1]["startedAt"]), "2023-11-14T22:13:21.000Z");
}

TEST(Heartbeat, LostLeasesAreAbortedAndGetNoTerminalFrame) {
  Sim sim;
  sim.handle("core/x", 1);
  sim.connect();
  sim.lease("l-1", "t-1", "core/x");
  sim.lease("l-2", "t-2", "core/x");  // queued behind l-1
  sim.answer_all();
  sim.advance(10'000);
  sim.answer(PostPath::kHeartbeat, 200, R"({"lostLeases":["l-1","l-2","nope"]})");
  ASSERT_EQ(sim.aborts.size(), 1u);
  EXPECT_EQ(sim.aborts[0].reason, AbortReason::kLeaseLost);
  EXPECT_EQ(abort_reason_string(sim.aborts[0].reason), "lease lost");
  EXPECT_EQ(sim.engine.stats().leases_lost, 2u);
  EXPECT_EQ(sim.engine.capability_stats(0).queued, 0u);
  EXPECT_TRUE(sim.engine.running_lease_ids().empty()) << "no longer heartbeated";
  sim.done(sim.started[0].handler_id, returned("1"));
  EXPECT_EQ(sim.terminal_posts_for("l-1"), 0u);
  EXPECT_EQ(sim.terminal_posts_for("l-2"), 0u);
  EXPECT_EQ(sim.started.size(), 1u) << "the lost queued lease never starts";
}

// ---- IPC carrier (1.4) ----

TEST(Ipc, NoReconnectNoIdleTimeoutNoAuthRetry) {
  Config c = test_config();
  c.carrier = Carrier::kIpc;
  Sim sim(c);
  sim.handle("core/x");
  sim.start();
  sim.accept_stream();
  sim.answer(PostPath::kRegister, 200);
  sim.engine.handle_stream_frame(sim.now, sim.stream, R"({"type":"registered","sessionId":"s-ipc","capabilities":[]})");
  sim.drain();
  EXPECT_TRUE(sim.events_of<StartSettled>()[0]->status.ok());
  sim.advance(10 * 60'000);
  EXPECT_TRUE(sim.engine.is_registered()) << "no idle timeout over IPC";
  sim.answer_all(401);
  EXPECT_EQ(sim.count(PostPath::kHeartbeat), 60u) << "no 401 retry over IPC";
  sim.engine.handle_stream_frame(sim.now, sim.stream,
                                 R"({"type":"lease","leaseId":"l-1","task":{"taskId":"t","type":"core/x","input":{"a":1}}})");
  sim.drain();
  ASSERT_EQ(sim.started.size(), 1u);
  sim.close_stream("bridge detached");
  EXPECT_TRUE(sim.events_of<ConnectionReconnecting>().empty());
  EXPECT_FALSE(sim.events_of<ErrorEvent>().empty());
  sim.advance(600'000);
  EXPECT_EQ(sim.opens.size(), 1u);
}

TEST(Ipc, AttachFailureRejectsStartAndRegister403IsARegistrationError) {
  Config c = test_config();
  c.carrier = Carrier::kIpc;
  {
    Sim sim(c);
    sim.handle("core/x");
    sim.start();
    sim.close_stream("attach rejected");
    ASSERT_EQ(sim.events_of<StartSettled>().size(), 1u);
    EXPECT_FALSE(sim.events_of<StartSettled>()[0]->status.ok());
  }
  {
    Sim sim(c);
    sim.handle("desktop/x");
    sim.start();
    sim.accept_stream();
    sim.answer(PostPath::kRegister, 403, R"({"error":"not attested"})");
    EXPECT_EQ(sim.events_of<StartSettled>()[0]->status.code, ErrorCode::kRegistrationRejected);
  }
}

TEST(Ipc, ReconnectNowReopensAfterTheCarrierComesBackAndRunningLeasesStillAck) {
  Config c = test_config();
  c.carrier = Carrier::kIpc;
  Sim sim(c);
  sim.handle("core/x");
  sim.start();
  sim.engine.reconnect_now(sim.now);  // a stream is opening: nothing to do
  sim.drain();
  EXPECT_EQ(sim.opens.size(), 1u);
  sim.accept_stream();
  sim.answer(PostPath::kRegister, 200);
  sim.registered();
  sim.lease("l-1", "t-1", "core/x");
  ASSERT_EQ(sim.started.size(), 1u);
  sim.close_stream("transport lost its socket");
  EXPECT_EQ(sim.opens.size(), 1u) << "IPC / custom carriers reconnect themselves";
  sim.engine.reconnect_now(sim.now);
  sim.drain();
  ASSERT_EQ(sim.opens.size(), 2u);
  sim.accept_stream();
  EXPECT_EQ(sim.count(PostPath::kRegister), 2u);
  sim.answer(PostPath::kRegister, 200);
  sim.registered("s-2");
  sim.done(sim.started[0].handler_id, HandlerOutcome{});
  EXPECT_EQ(sim.count(PostPath::kAck), 1u);
}

TEST(Reconnect, ReconnectNowSkipsTheBackoffButNotAfterDisconnectWithoutReconnect) {
  Sim sim(test_config());
  sim.handle("core/x");
  sim.start();
  sim.establish();
  sim.close_stream("network error");
  ASSERT_EQ(sim.events_of<ConnectionReconnecting>().size(), 1u);
  sim.engine.reconnect_now(sim.now);
  sim.drain();
  EXPECT_EQ(sim.opens.size(), 2u) << "opened without waiting for the backoff";
  sim.advance(10'000);  // past the backoff, within the idle timeout
  EXPECT_EQ(sim.opens.size(), 2u) << "the cancelled backoff timer must not open a third";
  sim.accept_stream();
  sim.answer(PostPath::kRegister, 200);
  sim.registered();
  sim.send_frame(R"({"type":"disconnect","reason":"superseded","reconnect":false})");
  sim.engine.reconnect_now(sim.now);
  sim.drain();
  EXPECT_EQ(sim.opens.size(), 2u);
}

// ---- frames in, events out ----

TEST(Frames, MalformedAndOversizedFramesAreDroppedAndTheStreamSurvives) {
  Config c = test_config();
  c.max_frame_bytes = 1024;
  Sim sim(c);
  sim.handle("core/x");
  sim.connect();
  sim.send_bytes("data: {not json\n\n");
  sim.send_bytes("data: [1,2]\n\n");
  sim.send_bytes("data: " + std::string(300, '[') + std::string(300, ']') + "\n\n");
  sim.send_bytes("data: {\"x\":\"" + std::string(2000, 'a') + "\"}\n\n");
  const auto errors = sim.events_of<ErrorEvent>();
  ASSERT_EQ(errors.size(), 4u);
  EXPECT_EQ(errors[0]->error.code, ErrorCode::kMalformedFrame);
  EXPECT_EQ(errors[1]->error.code, ErrorCode::kMalformedFrame);
  EXPECT_NE(errors[2]->error.message.find("deeper than 256"), std::string::npos);
  EXPECT_EQ(errors[3]->error.code, ErrorCode::kFrameTooLarge);
  EXPECT_EQ(sim.engine.stats().frame_errors, 4u);
  sim.lease("l-1", "t-1", "core/x");
  EXPECT_EQ(sim.started.size(), 1u) << "the stream survived";
}

TEST(Frames, UnknownTypesAndFieldsAreIgnored) {
  Sim sim;
  sim.handle("core/x");
  sim.connect();
  sim.send_frame(R"({"type":"workflow:task-completed","x":1})");
  EXPECT_TRUE(sim.events_of<ErrorEvent>().empty());
  sim.send_frame(
      R"({"type":"lease","future":{"a":[1]},"leaseId":"l-1","task":{"taskId":"t","type":"core/x","input":1,"zzz":true}})");
  EXPECT_EQ(sim.started.size(), 1u);
}

TEST(Frames, FrameEventsMirrorEveryDecodedFrameOnlyWhenEnabled) {
  Sim sim;
  sim.handle("core/x");
  sim.connect();
  sim.lease("l-1", "t-1", "core/x");
  auto frames = sim.events_of<FrameEvent>();
  ASSERT_EQ(frames.size(), 2u);  // registered + lease
  EXPECT_NE(frames[0]->json.find("\"registered\""), std::string::npos);
  EXPECT_NE(frames[1]->json.find("\"lease\""), std::string::npos);
  sim.engine.set_frame_events(false);
  sim.lease("l-2", "t-2", "core/x");
  EXPECT_EQ(sim.events_of<FrameEvent>().size(), 2u);
}

TEST(Frames, LogsAreSilentByDefaultAndScopedToTheLease) {
  Sim sim;
  sim.engine.set_log_level(LogLevel::kSilent);
  sim.handle("core/x");
  sim.connect();
  sim.lease("l-1", "t-1", "core/x");
  EXPECT_TRUE(sim.events_of<LogEvent>().empty());
  sim.engine.set_log_level(LogLevel::kInfo);
  sim.done(sim.started[0].handler_id, returned("1"));
  auto logs = sim.events_of<LogEvent>();
  ASSERT_FALSE(logs.empty());
  EXPECT_EQ(logs.back()->msg, "lease acked");
  EXPECT_NE(logs.back()->meta_json.find(R"("leaseId":"l-1")"), std::string::npos);
  EXPECT_NE(logs.back()->meta_json.find(R"("capability":"core/x")"), std::string::npos);
}

// A stream the engine closes itself (a gateway `disconnect`, register failing)
// the engine reopens on IPC / custom carriers too: the transport it stopped
// will not come back by itself.
TEST(Ipc, StreamsTheEngineClosesItselfAreReopenedAfterABackoff) {
  Config c = test_config();
  c.carrier = Carrier::kIpc;
  auto connect_ipc = [](Sim& sim, std::string session) {
    sim.accept_stream();
    sim.answer(PostPath::kRegister, 200);
    sim.engine.handle_stream_frame(sim.now, sim.stream,
                                   R"({"type":"registered","sessionId":")" + session + R"(","capabilities":[]})");
    sim.drain();
  };
  Sim sim(c);
  sim.handle("core/x");
  sim.start();
  connect_ipc(sim, "s-1");
  sim.engine.handle_stream_frame(sim.now, sim.stream, R"({"type":"disconnect","reason":"gateway draining"})");
  sim.drain();
  EXPECT_EQ(sim.closes.size(), 1u);
  ASSERT_EQ(sim.events_of<ConnectionReconnecting>().size(), 1u);
  sim.advance(1'000);
  ASSERT_EQ(sim.opens.size(), 2u) << "reopened after the backoff";
  connect_ipc(sim, "s-2");
  EXPECT_TRUE(sim.engine.is_registered());
  EXPECT_EQ(sim.count(PostPath::kRegister), 2u);

  // A register the bridge rejects as a network error: closed here, reopened.
  sim.close_stream("bridge restarted");  // reported by the transport: its own to recover from
  EXPECT_EQ(sim.events_of<ConnectionReconnecting>().size(), 1u);
  sim.engine.reconnect_now(sim.now);
  sim.drain();
  ASSERT_EQ(sim.opens.size(), 3u);
  sim.accept_stream();
  sim.answer(PostPath::kRegister, 0);
  EXPECT_EQ(sim.closes.size(), 2u);
  EXPECT_EQ(sim.events_of<ConnectionReconnecting>().size(), 2u);
  sim.advance(1'000);
  EXPECT_EQ(sim.opens.size(), 4u);

  // disconnect with reconnect false: down for good.
  connect_ipc(sim, "s-4");
  sim.engine.handle_stream_frame(sim.now, sim.stream, R"({"type":"disconnect","reason":"superseded","reconnect":false})");
  sim.drain();
  sim.advance(120'000);
  EXPECT_EQ(sim.opens.size(), 4u);
}

}  // namespace
}  // namespace neuron::testing
