// Frame codec (PROTOCOL.md section 2) and ISO stamps: decode every
// gateway -> neuron frame, encode every neuron -> gateway frame and read it
// back with RapidJSON, depth limits, and byte-exact JSON round trips.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include <rapidjson/document.h>

#include "harness/sim_gateway.h"
#include "neuron/frames.h"
#include "neuron/iso_time.h"

namespace neuron {
namespace {

std::string str(const rapidjson::Value& v) { return {v.GetString(), v.GetStringLength()}; }

// Parses `json` with the depth-unlimited default RapidJSON (test side).
rapidjson::Document parse_doc(const std::string& json) {
  rapidjson::Document doc;
  doc.Parse<rapidjson::kParseFullPrecisionFlag>(json.data(), json.size());
  EXPECT_FALSE(doc.HasParseError()) << json.substr(0, 300);
  return doc;
}

template <typename T>
const T& as(const std::optional<ServerFrame>& frame) {
  EXPECT_TRUE(frame.has_value());
  EXPECT_TRUE(std::holds_alternative<T>(*frame));
  return std::get<T>(*frame);
}

std::string nested_arrays(std::size_t depth) {
  return std::string(depth, '[') + std::string(depth, ']');
}

// ================================================================ decoding

TEST(FramesDecode, RegisteredWithoutRejected) {
  FrameDecoder d;
  std::string error;
  auto f = d.decode(
      R"({"type":"registered","sessionId":"s-42","capabilities":[)"
      R"({"type":"core/a","scope":"any","concurrency":4},)"
      R"({"type":"desktop/mcp/drive.read","scope":{"onBehalfOf":"user:abc"},"concurrency":1}]})",
      error);
  const auto& r = as<RegisteredFrame>(f);
  EXPECT_EQ(r.session_id, "s-42");
  EXPECT_EQ(r.capabilities, 2u);
  EXPECT_EQ(r.rejected, nullptr);
}

TEST(FramesDecode, RegisteredWithRejected) {
  FrameDecoder d;
  std::string error;
  auto f = d.decode(
      R"({"type":"registered","sessionId":"s-1","capabilities":[],)"
      R"("rejected":[{"type":"core/b","reason":"namespace not allowed"}]})",
      error);
  const auto& r = as<RegisteredFrame>(f);
  EXPECT_EQ(r.capabilities, 0u);
  ASSERT_NE(r.rejected, nullptr);
  ASSERT_TRUE(r.rejected->IsArray());
  ASSERT_EQ(r.rejected->Size(), 1u);
  EXPECT_EQ(str((*r.rejected)[0]["type"]), "core/b");
  EXPECT_EQ(str((*r.rejected)[0]["reason"]), "namespace not allowed");
}

TEST(FramesDecode, RegisteredNeedsSessionId) {
  FrameDecoder d;
  std::string error;
  EXPECT_FALSE(d.decode(R"({"type":"registered","capabilities":[]})", error));
  EXPECT_EQ(error.rfind("registered: sessionId", 0), 0u) << error;
  error.clear();
  EXPECT_FALSE(d.decode(R"({"type":"registered","sessionId":7})", error));
  EXPECT_EQ(error.rfind("registered: sessionId", 0), 0u) << error;
  // capabilities not an array: counted as 0, not an error.
  auto f = d.decode(R"({"type":"registered","sessionId":"s","capabilities":{}, "rejected":"x"})", error);
  EXPECT_EQ(as<RegisteredFrame>(f).capabilities, 0u);
  EXPECT_EQ(as<RegisteredFrame>(f).rejected, nullptr);
}

TEST(FramesDecode, LeaseFull) {
  FrameDecoder d;
  std::string error;
  auto f = d.decode(
      R"({"type":"lease","leaseId":"01HB","expiresAt":"2024-01-01T12:00:10.000Z",)"
      R"j("task":{"taskId":"task-abc","type":"core/script.python","input":{"code":"print(1)"},)j"
      R"("attempt":1,"onBehalfOf":"user:abc","workflowId":"wf-1","createdAt":"2024-01-01T12:00:00.000Z",)"
      R"("metadata":{"k":[1,2]}}})",
      error);
  const auto& l = as<LeaseFrame>(f);
  EXPECT_EQ(l.lease_id, "01HB");
  EXPECT_EQ(l.task_id, "task-abc");
  EXPECT_EQ(l.type, "core/script.python");
  ASSERT_TRUE(l.has_task);
  ASSERT_TRUE(l.has_input);
  EXPECT_EQ(l.input_text, std::string_view(R"j({"code":"print(1)"})j"));
  const auto task = parse_doc(std::string(l.task_text));
  EXPECT_EQ(str(task["workflowId"]), "wf-1");
  EXPECT_EQ(task["metadata"]["k"][1].GetInt(), 2);
}

TEST(FramesDecode, LeasePartialHasEmptyViewsNotErrors) {
  FrameDecoder d;
  std::string error;
  {
    auto f = d.decode(R"({"type":"lease"})", error);
    const auto& l = as<LeaseFrame>(f);
    EXPECT_TRUE(l.lease_id.empty());
    EXPECT_TRUE(l.task_id.empty());
    EXPECT_TRUE(l.type.empty());
    EXPECT_FALSE(l.has_task);
    EXPECT_FALSE(l.has_input);
  }
  {
    auto f = d.decode(R"({"type":"lease","leaseId":"l","task":{"taskId":5,"type":"core/x"}})", error);
    const auto& l = as<LeaseFrame>(f);
    EXPECT_EQ(l.lease_id, "l");
    EXPECT_TRUE(l.task_id.empty());
    EXPECT_EQ(l.type, "core/x");
    ASSERT_TRUE(l.has_task);
    EXPECT_FALSE(l.has_input);  // no input member
  }
  {
    auto f = d.decode(R"({"type":"lease","leaseId":"l","task":"not an object"})", error);
    const auto& l = as<LeaseFrame>(f);
    EXPECT_FALSE(l.has_task);
    EXPECT_TRUE(l.task_id.empty());
  }
  {
    // input: null is present (not absent)
    auto f = d.decode(R"({"type":"lease","leaseId":"l","task":{"taskId":"t","type":"c/x","input":null}})", error);
    const auto& l = as<LeaseFrame>(f);
    ASSERT_TRUE(l.has_input);
    EXPECT_EQ(l.input_text, "null");
  }
}

// A decoder that builds lease inputs in its one pass over the frame gives
// the value a parse of the input's own text gives: the first `input` of the
// first `task` only, strings unescaped and lone surrogates repaired alike.
TEST(FramesDecode, LeaseInputBuiltInTheFramesPassEqualsItsParse) {
  const std::vector<std::string> frames = {
      R"({"type":"lease","leaseId":"l","task":{"taskId":"t","type":"c/x","input":{"a":1,"b":[true,false,null,"s"]}}})",
      R"({"type":"lease","leaseId":"l","task":{"input":[1,-2,3.5,1e300,18446744073709551615,-9223372036854775808,0.1],"taskId":"t","type":"c/x"}})",
      R"({"task":{"taskId":"t","input":"a \"quoted\" \\ \u00e9 \ud83d\ude00 \ud800 lone","type":"c/x"},"leaseId":"l","type":"lease"})",
      R"({"type":"lease","leaseId":"l","task":{"taskId":"t","type":"c/x","input":{"in\"put":{"input":{"input":[[],{}]}},"\ud800":"\udc00x"}}})",
      R"({"type":"lease","leaseId":"l","task":{"taskId":"t","type":"c/x","input":12,"input":{"second":true}}})",
      R"({"type":"lease","input":{"root":1},"leaseId":"l","task":{"taskId":"t","meta":{"input":{"deep":1}},"type":"c/x","input":"x"}})",
      R"({"type":"lease","leaseId":"l","task":{"taskId":"t","type":"c/x","input":null},"task":{"input":"second task"}})",
      R"({"type":"lease","leaseId":"l","task":{"taskId":"t","type":"c/x","input":false}})",
      R"({"type":"lease","leaseId":"l","task":{"taskId":"t","type":"c/x","input":-0.0e-0}})",
      R"({"type":"lease","leaseId":"l","task":{"taskId":"t","type":"c/x"}})",
      R"({"type":"lease","leaseId":"l","task":[{"input":1}]})",
      R"({"type":"cancel","leaseId":"l","task":{"input":{"a":1}}})",
  };
  FrameDecoder building, plain;
  building.build_lease_inputs(true);
  for (const std::string& frame : frames) {
    SCOPED_TRACE(frame);
    std::string error;
    auto built = building.decode(frame, error);
    auto scanned = plain.decode(frame, error);
    ASSERT_TRUE(built.has_value());
    ASSERT_TRUE(scanned.has_value());
    ASSERT_EQ(built->index(), scanned->index());
    if (!std::holds_alternative<LeaseFrame>(*built)) continue;
    const LeaseFrame& b = std::get<LeaseFrame>(*built);
    const LeaseFrame& s = std::get<LeaseFrame>(*scanned);
    EXPECT_EQ(s.input_value, nullptr);  // not asked for
    EXPECT_EQ(b.has_input, s.has_input);
    EXPECT_EQ(b.input_text, s.input_text);
    EXPECT_EQ(b.task_text, s.task_text);
    if (!b.has_input) {
      EXPECT_EQ(b.input_value, nullptr);
      continue;
    }
    ASSERT_NE(b.input_value, nullptr);
    std::string built_json;
    write_json(*b.input_value, built_json);
    FrameDecoder other;
    const rapidjson::Value* parsed = other.parse(b.input_text, error);
    ASSERT_NE(parsed, nullptr) << error;
    std::string parsed_json;
    write_json(*parsed, parsed_json);
    EXPECT_EQ(built_json, parsed_json);
    EXPECT_TRUE(*b.input_value == *parsed);
  }
  // A frame that is not JSON, then one nesting too deep inside its input:
  // errors as without the option, and the decoder goes on.
  std::string error;
  EXPECT_FALSE(building.decode(R"({"type":"lease","task":{"input":{"a":[1,}})", error));
  EXPECT_FALSE(building.decode(R"({"type":"lease","task":{"input":)" + nested_arrays(kMaxJsonDepth) + "}}", error));
  auto f = building.decode(R"({"type":"lease","leaseId":"l","task":{"taskId":"t","type":"c/x","input":[1]}})", error);
  ASSERT_NE(as<LeaseFrame>(f).input_value, nullptr);
  EXPECT_EQ((*as<LeaseFrame>(f).input_value)[0].GetInt(), 1);
}

TEST(FramesDecode, CancelWithAndWithoutReason) {
  FrameDecoder d;
  std::string error;
  auto f = d.decode(R"({"type":"cancel","leaseId":"01HB","reason":"workflow cancelled"})", error);
  EXPECT_EQ(as<CancelFrame>(f).lease_id, "01HB");
  EXPECT_EQ(as<CancelFrame>(f).reason, "workflow cancelled");
  auto g = d.decode(R"({"type":"cancel","leaseId":"01HC"})", error);
  EXPECT_EQ(as<CancelFrame>(g).lease_id, "01HC");
  EXPECT_TRUE(as<CancelFrame>(g).reason.empty());
}

TEST(FramesDecode, CancelErrorsNameFrameAndField) {
  FrameDecoder d;
  for (const char* json : {R"({"type":"cancel"})", R"({"type":"cancel","leaseId":""})",
                           R"({"type":"cancel","leaseId":12})"}) {
    std::string error;
    EXPECT_FALSE(d.decode(json, error)) << json;
    EXPECT_EQ(error.rfind("cancel: leaseId", 0), 0u) << error;
  }
}

TEST(FramesDecode, CapabilityRevoked) {
  FrameDecoder d;
  std::string error;
  auto f = d.decode(R"({"type":"capability-revoked","capability":"desktop/mcp/drive.read","reason":"user revoked"})",
                    error);
  EXPECT_EQ(as<CapabilityRevokedFrame>(f).capability, "desktop/mcp/drive.read");
  EXPECT_EQ(as<CapabilityRevokedFrame>(f).reason, "user revoked");
  EXPECT_FALSE(d.decode(R"({"type":"capability-revoked","reason":"x"})", error));
  EXPECT_EQ(error.rfind("capability-revoked: capability", 0), 0u) << error;
}

TEST(FramesDecode, DisconnectReconnectDefaultsToTrue) {
  FrameDecoder d;
  std::string error;
  auto a = d.decode(R"({"type":"disconnect","reason":"superseded","reconnect":false})", error);
  EXPECT_EQ(as<DisconnectFrame>(a).reason, "superseded");
  EXPECT_FALSE(as<DisconnectFrame>(a).reconnect);
  auto b = d.decode(R"({"type":"disconnect","reason":"maintenance"})", error);
  EXPECT_TRUE(as<DisconnectFrame>(b).reconnect);
  auto c = d.decode(R"({"type":"disconnect","reconnect":true})", error);
  EXPECT_TRUE(as<DisconnectFrame>(c).reconnect);
  EXPECT_TRUE(as<DisconnectFrame>(c).reason.empty());
  auto e = d.decode(R"({"type":"disconnect","reconnect":"no"})", error);  // not a bool: default
  EXPECT_TRUE(as<DisconnectFrame>(e).reconnect);
}

TEST(FramesDecode, UnknownFieldsIgnored) {
  FrameDecoder d;
  std::string error;
  auto f = d.decode(
      R"({"future":{"deep":[1,2,{"x":null}]},"type":"cancel","leaseId":"l-1","v2":true,"reason":"r","n":1e300})",
      error);
  EXPECT_EQ(as<CancelFrame>(f).lease_id, "l-1");
  auto g = d.decode(
      R"({"type":"lease","leaseId":"l","extra":1,"task":{"taskId":"t","type":"c/x","input":1,"newField":[]}})",
      error);
  EXPECT_EQ(as<LeaseFrame>(g).task_id, "t");
}

TEST(FramesDecode, UnknownTypeIsUnknownFrame) {
  FrameDecoder d;
  std::string error;
  auto f = d.decode(R"({"type":"quantum-entangle","x":1})", error);
  EXPECT_EQ(as<UnknownFrame>(f).type, "quantum-entangle");
  auto g = d.decode(R"({"type":""})", error);
  EXPECT_EQ(as<UnknownFrame>(g).type, "");
}

TEST(FramesDecode, NotAnObjectOrNoType) {
  FrameDecoder d;
  for (const char* json : {"[]", "1", "\"lease\"", "null", "true"}) {
    std::string error;
    EXPECT_FALSE(d.decode(json, error)) << json;
    EXPECT_EQ(error, "frame is not a JSON object") << json;
  }
  for (const char* json : {"{}", R"({"type":1})", R"({"type":null})"}) {
    std::string error;
    EXPECT_FALSE(d.decode(json, error)) << json;
    EXPECT_NE(error.find("type"), std::string::npos) << error;
  }
  for (const char* json : {"", "{", R"({"type":"cancel",})", "{} {}", "\xff", R"({"type":"x"} x)",
                           R"({"a":"\ud8"})"}) {
    std::string error;
    EXPECT_FALSE(d.decode(json, error)) << json;
    EXPECT_EQ(error.rfind("invalid JSON", 0), 0u) << error;
  }
}

TEST(FramesDecode, ErrorsAndViewsSurviveDecoderReuse) {
  FrameDecoder d;
  std::string error;
  EXPECT_FALSE(d.decode("[", error));
  auto f = d.decode(R"({"type":"cancel","leaseId":"ok"})", error);
  EXPECT_EQ(as<CancelFrame>(f).lease_id, "ok");
}

// ---- depth ----

TEST(FramesDepth, ExactlyMaxDepthAccepted) {
  FrameDecoder d;
  std::string error;
  ASSERT_EQ(kMaxJsonDepth, 256);
  const std::string ok = nested_arrays(256);
  EXPECT_NE(d.parse(ok, error), nullptr) << error;
  EXPECT_TRUE(is_well_formed_json(ok));
  // As a frame: the object counts as level 1, so 255 more arrays inside.
  const std::string frame = R"({"type":"lease","leaseId":"l","task":{"taskId":"t","type":"c/x","input":)" +
                            nested_arrays(256 - 2) + "}}";
  auto lease = d.decode(frame, error);
  ASSERT_TRUE(lease) << error;
  EXPECT_EQ(std::string(as<LeaseFrame>(lease).task_text), R"({"taskId":"t","type":"c/x","input":)" + nested_arrays(254) + "}");
}

TEST(FramesDepth, OneDeeperRejected) {
  FrameDecoder d;
  std::string error;
  EXPECT_EQ(d.parse(nested_arrays(257), error), nullptr);
  EXPECT_NE(error.find("deeper than 256"), std::string::npos) << error;
  EXPECT_FALSE(is_well_formed_json(nested_arrays(257)));
  const std::string frame = R"({"type":"lease","leaseId":"l","task":{"taskId":"t","type":"c/x","input":)" +
                            nested_arrays(256 - 1) + "}}";
  error.clear();
  EXPECT_FALSE(d.decode(frame, error));
  EXPECT_NE(error.find("deeper than 256"), std::string::npos) << error;
  // Objects count too.
  std::string objects;
  for (int i = 0; i < 257; ++i) objects += R"({"a":)";
  objects += "1";
  objects += std::string(257, '}');
  EXPECT_EQ(d.parse(objects, error), nullptr);
  EXPECT_FALSE(is_well_formed_json(objects));
}

TEST(FramesDepth, HugeDepthNoStackOverflow) {
  FrameDecoder d;
  std::string error;
  for (std::size_t depth : {100'000u, 1'000'000u}) {
    const std::string closed = nested_arrays(depth);
    const std::string open(depth, '[');  // unterminated
    std::string objects;
    for (std::size_t i = 0; i < depth; ++i) objects += R"({"k":)";
    for (const std::string* json : std::vector<const std::string*>{&closed, &open, &objects}) {
      error.clear();
      EXPECT_EQ(d.parse(*json, error), nullptr);
      EXPECT_FALSE(error.empty());
      EXPECT_FALSE(d.decode(*json, error));
      EXPECT_FALSE(is_well_formed_json(*json));
      EXPECT_TRUE(decode_lost_leases(*json).empty());
      EXPECT_EQ(error_message_from_body(*json).size(), 512u);
    }
  }
  // The decoder still works afterwards.
  auto f = d.decode(R"({"type":"cancel","leaseId":"after"})", error);
  EXPECT_EQ(as<CancelFrame>(f).lease_id, "after");
}

// ---- helpers ----

TEST(FramesHelpers, DecodeLostLeases) {
  EXPECT_EQ(decode_lost_leases(R"({"lostLeases":["a","b"]})"), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(decode_lost_leases(R"({"lostLeases":["a",1,null,{"x":"y"},"b"],"other":1})"),
            (std::vector<std::string>{"a", "b"}));
  EXPECT_TRUE(decode_lost_leases("").empty());
  EXPECT_TRUE(decode_lost_leases("{}").empty());
  EXPECT_TRUE(decode_lost_leases("not json").empty());
  EXPECT_TRUE(decode_lost_leases(R"(["a"])").empty());
  EXPECT_TRUE(decode_lost_leases(R"({"lostLeases":"a"})").empty());
  EXPECT_TRUE(decode_lost_leases(R"({"lostLeases":["a"])").empty());  // truncated
  EXPECT_EQ(decode_lost_leases(R"({"lostLeases":["\u00e9\ud83d\ude00"]})"),
            (std::vector<std::string>{"\xc3\xa9\xf0\x9f\x98\x80"}));
  EXPECT_EQ(decode_lost_leases(std::string(R"({"lostLeases":["a\u0000b"]})")),
            (std::vector<std::string>{std::string("a\0b", 3)}));
}

TEST(FramesHelpers, ErrorMessageFromBody) {
  EXPECT_EQ(error_message_from_body(R"({"error":"token lacks scope core/*"})"), "token lacks scope core/*");
  EXPECT_EQ(error_message_from_body(R"({"error":""})"), R"({"error":""})");
  EXPECT_EQ(error_message_from_body(R"({"error":42})"), R"({"error":42})");
  EXPECT_EQ(error_message_from_body(R"({"message":"x"})"), R"({"message":"x"})");
  EXPECT_EQ(error_message_from_body("Forbidden"), "Forbidden");
  EXPECT_EQ(error_message_from_body(""), "");
  EXPECT_EQ(error_message_from_body(R"(["error"])"), R"(["error"])");
  const std::string long_body(2000, 'x');
  EXPECT_EQ(error_message_from_body(long_body), std::string(512, 'x'));
  const std::string long_error = R"({"error":")" + std::string(1000, 'e') + R"("})";
  EXPECT_EQ(error_message_from_body(long_error), std::string(512, 'e'));
}

TEST(FramesHelpers, EventsPathPercentEncodes) {
  EXPECT_EQ(events_path("w-1"), "/neuron/events?neuronId=w-1");
  EXPECT_EQ(events_path("A-z_0.9!~*'()"), "/neuron/events?neuronId=A-z_0.9!~*'()");
  EXPECT_EQ(events_path("a b/c?d&e=f#g%h+i"), "/neuron/events?neuronId=a%20b%2Fc%3Fd%26e%3Df%23g%25h%2Bi");
  EXPECT_EQ(events_path("caf\xc3\xa9 \xf0\x9f\x98\x80"), "/neuron/events?neuronId=caf%C3%A9%20%F0%9F%98%80");
  EXPECT_EQ(events_path(std::string("\0\x1f\x7f", 3)), "/neuron/events?neuronId=%00%1F%7F");
  EXPECT_EQ(events_path(""), "/neuron/events?neuronId=");
}

TEST(FramesHelpers, IsWellFormedJson) {
  EXPECT_TRUE(is_well_formed_json("null"));
  EXPECT_TRUE(is_well_formed_json(R"( {"a":[1,2.5,"x",true]} )"));
  EXPECT_FALSE(is_well_formed_json(""));
  EXPECT_FALSE(is_well_formed_json("1 2"));
  EXPECT_FALSE(is_well_formed_json("{"));
  EXPECT_FALSE(is_well_formed_json("undefined"));
  EXPECT_FALSE(is_well_formed_json("NaN"));
  EXPECT_TRUE(is_well_formed_json(R"(["\ud800"])")) << "read as FrameDecoder reads it";
  EXPECT_FALSE(is_well_formed_json(R"(["\ud800", )"));
}

// frames.cpp reads a \uXXXX escape's digits itself (ParseHex4, inlined).
TEST(FramesHelpers, UnicodeEscapeDigits) {
  EXPECT_TRUE(is_well_formed_json(R"(["\u0009\u00aF\u00Af\u09fA\uffff"])"));
  // (A lone high surrogate has become \uFFFD before the parse: the error is
  // then at the second escape.)
  for (const auto& [bad, at] : std::vector<std::pair<const char*, int>>{
           {R"(["\u00g0"])", 2}, {R"(["\u00G0"])", 2}, {R"(["\u0/00"])", 2}, {R"(["\u0:00"])", 2},
           {R"(["\u@000"])", 2}, {R"(["\u`000"])", 2}, {R"(["\u12"])", 2}, {R"(["\u 123"])", 2},
           {R"(["\ud83d\u12x4"])", 8}}) {
    std::string why;
    EXPECT_FALSE(is_well_formed_json(bad, &why)) << bad;
    EXPECT_NE(why.find("hex digit"), std::string::npos) << bad << ": " << why;
    EXPECT_NE(why.find("at offset " + std::to_string(at)), std::string::npos) << bad << ": " << why;
  }
  rapidjson::Document d;
  std::string error;
  ASSERT_TRUE(neuron::parse_json(d, R"(["\u00e9\u00C9\uD83D\uDE00"])", error)) << error;
  EXPECT_EQ(std::string(d[0].GetString()), "\xc3\xa9\xc3\x89\xf0\x9f\x98\x80");
}

TEST(FramesHelpers, IsWellFormedJsonSaysWhy) {
  std::string why;
  EXPECT_FALSE(is_well_formed_json(nested_arrays(257), &why));
  EXPECT_NE(why.find("deeper than 256"), std::string::npos) << why;
  EXPECT_FALSE(is_well_formed_json("{", &why));
  EXPECT_NE(why.find("at offset 1"), std::string::npos) << why;
  EXPECT_FALSE(is_well_formed_json(std::string("1\0", 2), &why));
  EXPECT_NE(why.find("NUL"), std::string::npos) << why;
}

// JSON.stringify('😀'.slice(0, 1)) is "\ud83d": JSON.parse reads it, RapidJSON does not.
TEST(FramesSurrogates, LoneSurrogateEscapesBecomeReplacementCharacters) {
  auto fix = [](std::string s) {
    const bool changed = replace_lone_surrogate_escapes(s.data(), s.size());
    return std::make_pair(changed, s);
  };
  EXPECT_EQ(fix(R"(["\ud83d"])"), std::make_pair(true, std::string(R"(["\uFFFD"])")));
  EXPECT_EQ(fix(R"(["\uDE00x"])"), std::make_pair(true, std::string(R"(["\uFFFDx"])")));
  EXPECT_EQ(fix(R"(["\ud83d\ude00"])").first, false) << "a pair is left alone";
  EXPECT_EQ(fix(R"(["\ud83d\u0041"])"), std::make_pair(true, std::string(R"(["\uFFFD\u0041"])")));
  EXPECT_EQ(fix(R"(["\ud83d\ud83d\ude00"])"), std::make_pair(true, std::string(R"(["\uFFFD\ud83d\ude00"])")));
  EXPECT_EQ(fix(R"(["\\ud83d"])").first, false) << "an escaped backslash then text 'ud83d' is not an escape";
  EXPECT_EQ(fix(R"(["\\\ud83d"])"), std::make_pair(true, std::string(R"(["\\\uFFFD"])")));
  EXPECT_EQ(fix(R"(["\"\n\u00e9"])").first, false);
  EXPECT_EQ(fix("[\"\\ud8").first, false) << "a cut escape is left for the parser to refuse";
  EXPECT_EQ(fix("").first, false);

  FrameDecoder d;
  std::string error;
  const rapidjson::Value* v = d.parse(R"({"s":"cut \ud83d","t":"\ude00 end"})", error);
  ASSERT_NE(v, nullptr) << error;
  EXPECT_EQ(std::string((*v)["s"].GetString()), "cut \xEF\xBF\xBD");
  EXPECT_EQ(std::string((*v)["t"].GetString()), "\xEF\xBF\xBD end");
}

// ================================================================ iso time

TEST(IsoTime, KnownStamps) {
  EXPECT_EQ(iso_time(0), "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(iso_time(1704110410000), "2024-01-01T12:00:10.000Z");
  EXPECT_EQ(iso_time(1709210096789), "2024-02-29T12:34:56.789Z");  // leap day
  EXPECT_EQ(iso_time(951782400000), "2000-02-29T00:00:00.000Z");   // 400-year leap
  EXPECT_EQ(iso_time(-2203891200000), "1900-03-01T00:00:00.000Z"); // 1900 not leap
  EXPECT_EQ(iso_time(-2203891200001), "1900-02-28T23:59:59.999Z");
}

TEST(IsoTime, NegativeTimes) {
  EXPECT_EQ(iso_time(-1), "1969-12-31T23:59:59.999Z");
  EXPECT_EQ(iso_time(-1000), "1969-12-31T23:59:59.000Z");
  EXPECT_EQ(iso_time(-86400000), "1969-12-31T00:00:00.000Z");
  EXPECT_EQ(iso_time(-86400001), "1969-12-30T23:59:59.999Z");
  EXPECT_EQ(iso_time(-11670912000001), "1600-02-29T23:59:59.999Z");
  EXPECT_EQ(iso_time(-62135596800000), "0001-01-01T00:00:00.000Z");
}

TEST(IsoTime, ClampedToYears0000Through9999) {
  EXPECT_EQ(iso_time(253402300799999), "9999-12-31T23:59:59.999Z");
  EXPECT_EQ(iso_time(253402300800000), "9999-12-31T23:59:59.999Z");
  EXPECT_EQ(iso_time(std::numeric_limits<TimeMs>::max()), "9999-12-31T23:59:59.999Z");
  EXPECT_EQ(iso_time(-62167219200000), "0000-01-01T00:00:00.000Z");
  EXPECT_EQ(iso_time(-62167219200001), "0000-01-01T00:00:00.000Z");
  EXPECT_EQ(iso_time(std::numeric_limits<TimeMs>::min()), "0000-01-01T00:00:00.000Z");
  for (TimeMs t : {TimeMs{0}, TimeMs{-1}, std::numeric_limits<TimeMs>::min(), std::numeric_limits<TimeMs>::max()}) {
    EXPECT_EQ(iso_time(t).size(), kIsoTimeLength);
  }
}

// ================================================================ encoding

constexpr TimeMs kNow = 1704110410000;  // 2024-01-01T12:00:10.000Z

TEST(FramesEncode, Register) {
  CapabilitySpec a;
  a.type = "core/script.python";
  a.concurrency = 2;  // spec value; the frame carries the current one
  a.description = "runs \"python\"\n";
  a.input_schema_json = R"({"type":"object","properties":{"code":{"type":"string"}},"required":["code"]})";
  a.output_schema_json = R"( {"type" : "string"} )";
  CapabilitySpec b;
  b.type = "desktop/mcp/drive.read";
  b.on_behalf_of = "user:abc";
  b.concurrency = 1;
  auto entry = [](const CapabilitySpec& c, std::uint32_t concurrency) {
    return RegisterCapability{c.type, c.on_behalf_of, concurrency, c.description, c.input_schema_json,
                              c.output_schema_json};
  };
  const RegisterCapability caps[] = {entry(a, 4), entry(b, 1)};
  std::string out = "garbage-before:";
  const std::size_t prefix = out.size();
  encode_register(out, "w-1", kNow, "@holokai/neuron-sdk", "0.1.1", caps);
  ASSERT_EQ(out.substr(0, prefix), "garbage-before:");  // appends
  auto doc = parse_doc(out.substr(prefix));
  EXPECT_EQ(str(doc["type"]), "register");
  EXPECT_EQ(str(doc["neuronId"]), "w-1");
  EXPECT_EQ(str(doc["sentAt"]), "2024-01-01T12:00:10.000Z");
  EXPECT_EQ(str(doc["sdk"]["name"]), "@holokai/neuron-sdk");
  EXPECT_EQ(str(doc["sdk"]["version"]), "0.1.1");
  const auto& list = doc["capabilities"];
  ASSERT_EQ(list.Size(), 2u);
  EXPECT_EQ(str(list[0]["type"]), "core/script.python");
  EXPECT_EQ(str(list[0]["scope"]), "any");
  EXPECT_EQ(list[0]["concurrency"].GetInt(), 4);
  EXPECT_EQ(str(list[0]["description"]), "runs \"python\"\n");
  EXPECT_EQ(list[0]["inputSchema"], parse_doc(a.input_schema_json));
  EXPECT_EQ(list[0]["outputSchema"], parse_doc(a.output_schema_json));
  EXPECT_EQ(str(list[1]["type"]), "desktop/mcp/drive.read");
  ASSERT_TRUE(list[1]["scope"].IsObject());
  EXPECT_EQ(str(list[1]["scope"]["onBehalfOf"]), "user:abc");
  EXPECT_EQ(list[1]["concurrency"].GetInt(), 1);
  EXPECT_FALSE(list[1].HasMember("description"));
  EXPECT_FALSE(list[1].HasMember("inputSchema"));
  EXPECT_FALSE(list[1].HasMember("outputSchema"));
}

TEST(FramesEncode, UpdateCapability) {
  std::string out;
  encode_update_capability(out, "w-1", kNow, "core/script.python", 8);
  auto doc = parse_doc(out);
  EXPECT_EQ(str(doc["type"]), "update-capability");
  EXPECT_EQ(str(doc["neuronId"]), "w-1");
  EXPECT_EQ(str(doc["sentAt"]), "2024-01-01T12:00:10.000Z");
  EXPECT_EQ(str(doc["capability"]), "core/script.python");
  EXPECT_EQ(doc["concurrency"].GetInt(), 8);
}

TEST(FramesEncode, Heartbeat) {
  const InFlightLease in_flight[] = {{"01HB", "task-abc", kNow - 1500}, {"01HC", "task-\"q\"", 0}};
  std::string out;
  encode_heartbeat(out, "w-1", kNow, in_flight);
  auto doc = parse_doc(out);
  EXPECT_EQ(str(doc["type"]), "heartbeat");
  EXPECT_EQ(str(doc["neuronId"]), "w-1");
  EXPECT_EQ(str(doc["sentAt"]), "2024-01-01T12:00:10.000Z");
  const auto& list = doc["inFlight"];
  ASSERT_EQ(list.Size(), 2u);
  EXPECT_EQ(str(list[0]["leaseId"]), "01HB");
  EXPECT_EQ(str(list[0]["taskId"]), "task-abc");
  EXPECT_EQ(str(list[0]["startedAt"]), "2024-01-01T12:00:08.500Z");
  EXPECT_EQ(str(list[1]["taskId"]), "task-\"q\"");
  EXPECT_EQ(str(list[1]["startedAt"]), "1970-01-01T00:00:00.000Z");

  std::string empty;
  encode_heartbeat(empty, "w-1", kNow, {});
  auto e = parse_doc(empty);
  ASSERT_TRUE(e["inFlight"].IsArray());
  EXPECT_EQ(e["inFlight"].Size(), 0u);
}

TEST(FramesEncode, AckWithRawOutput) {
  for (const std::string output :
       {std::string("null"), std::string("42"), std::string("\"s\""), std::string("[1,{\"a\":true}]"),
        std::string(" { \"y\" : 2.5e-3 , \"z\":\"\\u00e9\" } ")}) {
    std::string out;
    encode_ack(out, "w-1", kNow, "01HB", "task-abc", output, 12);
    auto doc = parse_doc(out);
    EXPECT_EQ(str(doc["type"]), "ack");
    EXPECT_EQ(str(doc["neuronId"]), "w-1");
    EXPECT_EQ(str(doc["sentAt"]), "2024-01-01T12:00:10.000Z");
    EXPECT_EQ(str(doc["leaseId"]), "01HB");
    EXPECT_EQ(str(doc["taskId"]), "task-abc");
    EXPECT_EQ(doc["output"], parse_doc(output)) << output;
    EXPECT_EQ(doc["durationMs"].GetInt64(), 12);
  }
}

TEST(FramesEncode, NackKinds) {
  const std::vector<ValidationError> errors = {{"/code", "must be string"}, {"", "root \"bad\""}};
  struct Case {
    NackKind kind;
    const char* name;
  };
  for (Case c : {Case{NackKind::kRetryable, "retryable"}, Case{NackKind::kTerminal, "terminal"},
                 Case{NackKind::kSchemaMismatch, "schema-mismatch"}, Case{NackKind::kCancelled, "cancelled"}}) {
    EXPECT_EQ(nack_kind_string(c.kind), c.name);
    std::string out;
    encode_nack(out, "w-1", kNow, "01HB", "task-abc", c.kind, "human readable", "INVALID_API_KEY", errors);
    auto doc = parse_doc(out);
    EXPECT_EQ(str(doc["type"]), "nack");
    EXPECT_EQ(str(doc["neuronId"]), "w-1");
    EXPECT_EQ(str(doc["sentAt"]), "2024-01-01T12:00:10.000Z");
    EXPECT_EQ(str(doc["leaseId"]), "01HB");
    EXPECT_EQ(str(doc["taskId"]), "task-abc");
    EXPECT_EQ(str(doc["kind"]), c.name);
    EXPECT_EQ(str(doc["reason"]), "human readable");
    EXPECT_EQ(str(doc["code"]), "INVALID_API_KEY");
    if (c.kind == NackKind::kSchemaMismatch) {
      const auto& list = doc["errors"];
      ASSERT_EQ(list.Size(), 2u);
      EXPECT_EQ(str(list[0]["path"]), "/code");
      EXPECT_EQ(str(list[0]["message"]), "must be string");
      EXPECT_EQ(str(list[1]["path"]), "");
      EXPECT_EQ(str(list[1]["message"]), "root \"bad\"");
    } else {
      EXPECT_FALSE(doc.HasMember("errors")) << c.name;
    }
  }
  std::string out;
  encode_nack(out, "w-1", kNow, "l", "t", NackKind::kRetryable, "r", "", {});
  auto doc = parse_doc(out);
  EXPECT_FALSE(doc.HasMember("code"));
  EXPECT_FALSE(doc.HasMember("errors"));
  std::string sm;
  encode_nack(sm, "w-1", kNow, "l", "t", NackKind::kSchemaMismatch, "r", "", {});
  auto sdoc = parse_doc(sm);
  ASSERT_TRUE(sdoc["errors"].IsArray());  // present even when empty
  EXPECT_EQ(sdoc["errors"].Size(), 0u);
}

TEST(FramesEncode, ProgressFieldsEachOptional) {
  for (int mask = 0; mask < 8; ++mask) {
    ProgressUpdate u;
    if (mask & 1) u.percent = 50;
    if (mask & 2) u.message = "half\"way\"";
    if (mask & 4) u.data_json = R"({"step":[1,2,3]})";
    std::string out;
    encode_progress(out, "w-1", kNow, "01HB", "task-abc", u.percent, u.message, u.data_json);
    auto doc = parse_doc(out);
    EXPECT_EQ(str(doc["type"]), "progress");
    EXPECT_EQ(str(doc["neuronId"]), "w-1");
    EXPECT_EQ(str(doc["sentAt"]), "2024-01-01T12:00:10.000Z");
    EXPECT_EQ(str(doc["leaseId"]), "01HB");
    EXPECT_EQ(str(doc["taskId"]), "task-abc");
    EXPECT_EQ(doc.HasMember("percent"), (mask & 1) != 0) << mask;
    EXPECT_EQ(doc.HasMember("message"), (mask & 2) != 0) << mask;
    EXPECT_EQ(doc.HasMember("data"), (mask & 4) != 0) << mask;
    if (mask & 1) EXPECT_EQ(doc["percent"].GetDouble(), 50.0);
    if (mask & 2) EXPECT_EQ(str(doc["message"]), "half\"way\"");
    if (mask & 4) EXPECT_EQ(doc["data"], parse_doc(*u.data_json));
  }
}

TEST(FramesEncode, ProgressNonFinitePercentOmitted) {
  for (double bad : {std::nan(""), std::numeric_limits<double>::infinity(), -std::numeric_limits<double>::infinity()}) {
    ProgressUpdate u;
    u.percent = bad;
    u.message = "m";
    std::string out;
    encode_progress(out, "w-1", kNow, "l", "t", u.percent, u.message, u.data_json);
    auto doc = parse_doc(out);
    EXPECT_FALSE(doc.HasMember("percent")) << out;
    EXPECT_EQ(str(doc["message"]), "m");
  }
  ProgressUpdate frac;
  frac.percent = 33.333333333333336;
  std::string out;
  encode_progress(out, "w-1", kNow, "l", "t", frac.percent, frac.message, frac.data_json);
  EXPECT_EQ(parse_doc(out)["percent"].GetDouble(), 33.333333333333336);
}

TEST(FramesEncode, StringsWithControlAndNonAsciiCharsStayValid) {
  const std::string nasty = std::string("a\0b\x01\x1f\"\\/\n\r\t\xc3\xa9\xf0\x9f\x98\x80\xe2\x80\xa8", 21);
  std::string out;
  const std::vector<ValidationError> errors = {{nasty, nasty}};
  encode_nack(out, nasty, kNow, nasty, nasty, NackKind::kSchemaMismatch, nasty, nasty, errors);
  auto doc = parse_doc(out);
  EXPECT_EQ(str(doc["neuronId"]), nasty);
  EXPECT_EQ(str(doc["leaseId"]), nasty);
  EXPECT_EQ(str(doc["reason"]), nasty);
  EXPECT_EQ(str(doc["code"]), nasty);
  EXPECT_EQ(str(doc["errors"][0]["path"]), nasty);
  ProgressUpdate u;
  u.message = nasty;
  std::string p;
  encode_progress(p, "w", kNow, nasty, nasty, u.percent, u.message, u.data_json);
  EXPECT_EQ(str(parse_doc(p)["message"]), nasty);
}

// ============================================================ round trips

// The task's text, as decoded, parses to a value equal to the original task.
void expect_task_round_trip(const std::string& input_json) {
  const std::string frame =
      R"({"type":"lease","leaseId":"l-1","task":{"taskId":"t-1","type":"core/x","input":)" + input_json + "}}";
  FrameDecoder d;
  std::string error;
  auto f = d.decode(frame, error);
  ASSERT_TRUE(f) << error;
  const auto& lease = as<LeaseFrame>(f);
  ASSERT_TRUE(lease.has_task);
  const std::string out(lease.task_text);

  rapidjson::Document expected = parse_doc(frame);
  rapidjson::Document actual = parse_doc(out);
  ASSERT_TRUE(actual.IsObject());
  EXPECT_TRUE(actual == expected["task"]) << out.substr(0, 200);
  EXPECT_TRUE(actual["input"] == expected["task"]["input"]);
  EXPECT_EQ(std::string(lease.input_text), input_json);
}

TEST(FramesRoundTrip, NonAsciiAndEscapes) {
  expect_task_round_trip(R"("plain")");
  expect_task_round_trip("\"caf\xc3\xa9 \xf0\x9f\x98\x80 \xf0\x9d\x84\x9e \xe4\xb8\xad\"");  // raw UTF-8, astral
  expect_task_round_trip(R"("\ud83d\ude00 \uD834\uDD1E \u00e9 \u4e2d")");              // escaped pairs
  expect_task_round_trip(R"({"emoji":"😀👍🏽","flag":"🇫🇷","zwj":"👩‍👩‍👧"})");
  expect_task_round_trip(R"("nul:\u0000:end")");
  expect_task_round_trip(R"("\u0001\u001f\b\f\n\r\t\"\\\/\u007f\u2028\u2029")");
  expect_task_round_trip(R"({"\u0000key\ud83d\ude00":["\u0000",{"":""}]})");
  expect_task_round_trip(R"([0,-0,-0.0,1.5,-1e-300,1.7976931348623157e308,5e-324,)"
                         R"(18446744073709551615,-9223372036854775808,9007199254740993,0.1,1e21,true,false,null])");
}

TEST(FramesRoundTrip, RawAndEscapedSurrogatePairsDecodeToSameBytes) {
  FrameDecoder d;
  std::string error;
  const rapidjson::Value* raw = d.parse("\"\xf0\x9f\x98\x80\"", error);
  ASSERT_NE(raw, nullptr);
  const std::string raw_bytes = str(*raw);
  const rapidjson::Value* escaped = d.parse(R"("\ud83d\ude00")", error);
  ASSERT_NE(escaped, nullptr);
  EXPECT_EQ(str(*escaped), raw_bytes);
  EXPECT_EQ(raw_bytes, "\xf0\x9f\x98\x80");
  std::string out;
  write_json(*escaped, out);
  EXPECT_EQ(out, "\"\xf0\x9f\x98\x80\"");  // UTF-8 kept as is
}

TEST(FramesRoundTrip, SixteenMiBStringInput) {
  std::string big;
  big.reserve(16u << 20);
  const std::string pattern = "abc\xc3\xa9\xf0\x9f\x98\x80\\n\\u0000\\\"";  // JSON-escaped text
  big += '"';
  while (big.size() < (16u << 20)) big += pattern;
  big += '"';
  expect_task_round_trip(big);
}

TEST(FramesRoundTrip, SixteenMiBAckOutputEmbeddedRaw) {
  std::string output = R"({"blob":")";
  output.reserve((16u << 20) + 64);
  while (output.size() < (16u << 20)) output += "0123456789\xf0\x9f\x98\x80\\u0000";
  output += R"(","n":[1,2,3]})";
  std::string out;
  encode_ack(out, "w-1", kNow, "l-big", "t-big", output, 99);
  auto doc = parse_doc(out);
  auto expected = parse_doc(output);
  EXPECT_TRUE(doc["output"] == expected);
  EXPECT_EQ(doc["durationMs"].GetInt(), 99);
  EXPECT_EQ(str(doc["leaseId"]), "l-big");
  FrameDecoder d;
  std::string error;
  EXPECT_NE(d.parse(out, error), nullptr) << error;
}

// ============================================ regressions found by fuzzing

// A raw NUL byte is never JSON; RapidJSON's MemoryStream reads it as the end
// of the input, so is_well_formed_json("{}\0junk") used to say yes and the
// engine embedded such an output raw in an ack (an invalid POST body).
TEST(FramesRegression, RawNulIsNotWellFormed) {
  EXPECT_FALSE(is_well_formed_json(std::string("{}\0junk", 7)));
  EXPECT_FALSE(is_well_formed_json(std::string("1\0", 2)));
  EXPECT_FALSE(is_well_formed_json(std::string("\"a\0b\"", 5)));
  EXPECT_TRUE(is_well_formed_json(R"("a\u0000b")"));
  // Nor is a BOM, or a stray BOM byte (RapidJSON's UTF-8 stream skipped them).
  for (const char* bom : {"\xef\xbb\xbf{}", "\xbb{}", "\xbf" "0", "\xef\xbf[]"}) {
    EXPECT_FALSE(is_well_formed_json(bom)) << bom;
    EXPECT_TRUE(decode_lost_leases(std::string(bom) + R"({"lostLeases":["a"]})").empty());
  }

  testing::Sim sim;
  sim.auto_answer = true;
  sim.handle("core/a");
  sim.connect();
  sim.lease("l-1", "t-1", "core/a");
  ASSERT_EQ(sim.started.size(), 1u);
  sim.done(sim.started[0].handler_id, testing::returned(std::string("{}\0junk", 7)));  // Sim throws on invalid JSON
  ASSERT_EQ(sim.count(PostPath::kAck), 0u);
  EXPECT_EQ(str(sim.last_post(PostPath::kNack)["code"]), "INVALID_OUTPUT");
}

// A lease whose "task" key appears escaped first ("t\u0061sk", which the DOM
// finds) and plain later: the handler must get the task the engine decoded
// (and validated), not the later raw text.
TEST(FramesRegression, HandlerGetsTheDecodedTaskWhenTaskKeyIsEscaped) {
  testing::Sim sim;
  sim.auto_answer = true;
  sim.handle("core/a", 2);
  sim.connect();
  sim.send_frame(R"({"type":"lease","leaseId":"l-1","t\u0061sk":{"taskId":"t1","type":"core/a","input":{"x":1}},)"
                 R"("task":{"taskId":"t2","type":"core/a","input":{"evil":true}}})");
  ASSERT_EQ(sim.started.size(), 1u);
  const rapidjson::Document task = parse_doc(sim.started[0].task_json);
  EXPECT_EQ(str(task["taskId"]), "t1");
  EXPECT_EQ(task["input"]["x"].GetInt(), 1);
  EXPECT_FALSE(task["input"].HasMember("evil"));
  // Plain frames still pass the task through unchanged.
  sim.lease("l-2", "t-2", "core/a", R"({"a":[1,2.50,"\u00e9"]})");
  ASSERT_EQ(sim.started.size(), 2u);
  const rapidjson::Document task2 = parse_doc(sim.started[1].task_json);
  EXPECT_TRUE(task2["input"] == parse_doc(R"({"a":[1,2.50,"\u00e9"]})"));
}

// The handler's input is what JSON.parse makes of the gateway's bytes, also
// for numbers a default-precision parse would round differently.
TEST(FramesRoundTrip, HandlerGetsTheGatewaysNumbers) {
  testing::Sim sim;
  sim.auto_answer = true;
  sim.handle("core/a");
  sim.connect();
  const std::string input = R"([123456789012345678901234567890,9007199254740993.5,2.2250738585072011e-308,0.1])";
  sim.lease("l-1", "t-1", "core/a", input);
  ASSERT_EQ(sim.started.size(), 1u);
  const rapidjson::Document task = parse_doc(sim.started[0].task_json);
  EXPECT_TRUE(task["input"] == parse_doc(input)) << sim.started[0].task_json;
}

// StartHandler::input_json: the text of the task's input as it arrived (the
// first `input`, the one a schema checked), so a host can parse only that.
TEST(FramesRoundTrip, HandlerGetsTheInputsOwnText) {
  testing::Sim sim;
  sim.auto_answer = true;
  sim.handle("core/a", 8);
  sim.connect();
  sim.send_frame(R"({"type":"lease","leaseId":"l-1","task":{"taskId":"t1","type":"core/a",)"
                 R"("input" : {"a" : [1, 2.50]} ,"input":{"b":2}}})");
  sim.send_frame(R"({"type":"lease","leaseId":"l-2","task":{"taskId":"t2","type":"core/a"}})");
  sim.send_frame(R"({"type":"lease","leaseId":"l-3","task":{"inp\u0075t":"s\u00e9\"","taskId":"t3","type":"core/a"}})");
  sim.send_frame(R"({"type":"lease","leaseId":"l-4","task":{"taskId":"t4","type":"core/a","input":null}})");
  sim.send_frame(R"({"type":"lease","leaseId":"l-5","task":{"taskId":"t5","type":"core/a","input":-0.5e3}})");
  ASSERT_EQ(sim.started.size(), 5u);
  EXPECT_EQ(sim.started[0].input_json, R"({"a" : [1, 2.50]})");
  EXPECT_EQ(sim.started[1].input_json, "");
  EXPECT_EQ(sim.started[2].input_json, R"("s\u00e9\"")");
  EXPECT_EQ(sim.started[3].input_json, "null");
  EXPECT_EQ(sim.started[4].input_json, "-0.5e3");
  for (const auto& started : sim.started) {
    if (started.input_json.empty()) continue;
    EXPECT_NE(started.task_json.find(started.input_json), std::string::npos) << started.task_json;
  }
}

// A progress POST answered 401 after the lease's ack was sent used to be
// retried: progress after completion (rule 10 drops it).
TEST(FramesRegression, Progress401AfterTheAckIsNotRetried) {
  testing::Sim sim;
  sim.handle("core/a");
  sim.connect();
  sim.answer_all();
  sim.lease("l-1", "t-1", "core/a");
  ASSERT_EQ(sim.started.size(), 1u);
  ProgressUpdate u;
  u.percent = 10;
  sim.progress(sim.started[0].handler_id, u);
  ASSERT_EQ(sim.count(PostPath::kProgress), 1u);
  sim.done(sim.started[0].handler_id, testing::returned("1"));
  ASSERT_EQ(sim.count(PostPath::kAck), 0u) << "held behind its progress POST (rule 10)";
  sim.answer(PostPath::kProgress, 401);
  EXPECT_EQ(sim.count(PostPath::kProgress), 1u);
  EXPECT_EQ(sim.count(PostPath::kAck), 1u) << "the progress is dropped, the ack goes out";
  // While the lease runs, the 401 retry still happens.
  sim.lease("l-2", "t-2", "core/a");
  sim.progress(sim.started[1].handler_id, u);
  sim.answer(PostPath::kProgress, 401);
  EXPECT_EQ(sim.count(PostPath::kProgress), 3u);
}

// A heartbeat answered 401 used to be resent as it was: listing leases that
// had ended meanwhile, or sent after the stream was lost (no heartbeat while
// not registered). The retry now says what runs at the time of the retry.
TEST(FramesRegression, Heartbeat401RetryListsTheLeasesRunningNow) {
  testing::Sim sim;
  sim.handle("core/a", 2);
  sim.connect();
  sim.answer_all();
  sim.lease("l-1", "t-1", "core/a");
  sim.lease("l-2", "t-2", "core/a");
  sim.advance(10'000);
  ASSERT_EQ(sim.count(PostPath::kHeartbeat), 1u);
  EXPECT_EQ(sim.last_post(PostPath::kHeartbeat)["inFlight"].Size(), 2u);
  sim.done(sim.started[0].handler_id, testing::returned("1"));
  sim.answer(PostPath::kHeartbeat, 401);
  ASSERT_EQ(sim.count(PostPath::kHeartbeat), 2u);
  const auto& in_flight = sim.last_post(PostPath::kHeartbeat)["inFlight"];
  ASSERT_EQ(in_flight.Size(), 1u);
  EXPECT_EQ(str(in_flight[0]["leaseId"]), "l-2");
}

TEST(FramesRegression, Heartbeat401AfterStreamLossIsNotRetried) {
  testing::Sim sim;
  sim.handle("core/a");
  sim.connect();
  sim.answer_all();
  sim.advance(10'000);
  ASSERT_EQ(sim.count(PostPath::kHeartbeat), 1u);
  sim.close_stream();
  sim.answer(PostPath::kHeartbeat, 401);
  EXPECT_EQ(sim.count(PostPath::kHeartbeat), 1u);
}

// A number as the whole input: its exact text, whatever kind the reader
// makes of it (int, uint64, int64, double), with or without space around.
TEST(FramesDecode, NumberInputsKeepTheirText) {
  FrameDecoder d;
  std::string error;
  for (const std::string number : {"0", "7", "-12", "4294967296", "-9223372036854775808", "18446744073709551615",
                                   "18446744073709551616", "-12.5e+3", "1E-7", "0.1", "-0"}) {
    for (const std::string& around : {std::string(""), std::string(" \n\t")}) {
      const std::string json = R"({"type":"lease","leaseId":"l","task":{"taskId":"t","type":"c/x","input":)" + around +
                               number + around + R"(,"after":[1,2.5]}})";
      auto f = d.decode(json, error);
      const LeaseFrame& lease = as<LeaseFrame>(f);
      ASSERT_TRUE(lease.has_input) << json;
      EXPECT_EQ(lease.input_text, number) << json;
      EXPECT_EQ(lease.task_id, "t");
    }
    const std::string last = R"({"type":"lease","leaseId":"l","task":{"taskId":"t","type":"c/x","input":)" + number + "}}";
    EXPECT_EQ(as<LeaseFrame>(d.decode(last, error)).input_text, number) << last;
  }
}

TEST(FramesDepth, NestsWithinLimitCountsBracketsOutsideStrings) {
  auto nested = [](int n) { return std::string(n, '[') + std::string(n, ']'); };
  EXPECT_TRUE(nests_within_limit(nested(kMaxJsonDepth)));
  EXPECT_FALSE(nests_within_limit(nested(kMaxJsonDepth + 1)));
  EXPECT_TRUE(nests_within_limit(R"({"a":")" + std::string(1000, '[') + R"("})"));
  EXPECT_TRUE(nests_within_limit(R"(["\"[[[[", {"\\": [1]}])"));
  EXPECT_TRUE(nests_within_limit(""));
}

// An output the host vouches for (JSON.stringify's) is not parsed, but its
// depth still counts: too deep is INVALID_OUTPUT, as for any other output.
TEST(FramesDepth, AVouchedForOutputStillHasTheDepthLimit) {
  testing::Sim sim;
  sim.auto_answer = true;
  sim.handle("core/a", 2);
  sim.connect();
  sim.lease("l-1", "t-1", "core/a");
  sim.lease("l-2", "t-2", "core/a");
  HandlerOutcome deep = testing::returned(std::string(300, '[') + std::string(300, ']'));
  deep.output_is_json = true;
  sim.done(sim.started[0].handler_id, deep);
  EXPECT_EQ(str(sim.last_post(PostPath::kNack)["code"]), "INVALID_OUTPUT");
  HandlerOutcome fine = testing::returned(R"({"ok":[1,2]})");
  fine.output_is_json = true;
  sim.done(sim.started[1].handler_id, fine);
  EXPECT_EQ(sim.last_post(PostPath::kAck)["output"]["ok"][1].GetInt(), 2);
}

// A heartbeat answer as large as the engine reads (a gateway naming 100 000
// lost leases): every id comes back.
TEST(FramesDecode, LostLeasesOfAFullHeartbeatAnswer) {
  std::string body = R"({"lostLeases":[)";
  for (int i = 0; i < 100000; ++i) {
    if (i) body += ',';
    body += "\"lost-" + std::to_string(1000000000 + i) + "\"";
  }
  body += R"(,"running"]})";
  const std::vector<std::string> lost = decode_lost_leases(body);
  ASSERT_EQ(lost.size(), 100001u);
  EXPECT_EQ(lost.front(), "lost-1000000000");
  EXPECT_EQ(lost.back(), "running");
}

// Answers padded with whitespace are read without it; a plain-text error
// body is still quoted as it is.
TEST(FramesDecode, AnswersPaddedWithSpaceAndPlainText) {
  const std::string pad(1 << 20, ' ');
  EXPECT_EQ(decode_lost_leases(pad + R"({"lostLeases":["a"]})" + "\r\n"), (std::vector<std::string>{"a"}));
  EXPECT_TRUE(decode_lost_leases(pad).empty());
  EXPECT_TRUE(decode_lost_leases(pad + "[]").empty());
  EXPECT_EQ(error_message_from_body(" \n {\"error\":\"lease gone\"} \n"), "lease gone");
  EXPECT_EQ(error_message_from_body("Bad Gateway"), "Bad Gateway");
  EXPECT_EQ(error_message_from_body(""), "");
}
}  // namespace
}  // namespace neuron
