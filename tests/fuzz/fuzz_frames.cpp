// fuzz_frames: the frame codec on arbitrary bytes.
//
// - FrameDecoder::decode / parse never crash, and keep their error contract.
// - A decoded lease's task, written with write_json, parses back to a value
//   equal to the original (members in order, same numbers, same bytes).
// - Any value parse() accepts round-trips the same way.
// - encode_* with strings cut from the input always produce JSON that
//   RapidJSON parses, with the strings read back byte for byte.
//
// Input layout: byte 0 picks a mode bit set; the rest is the JSON text; the
// encoder strings are slices of the same bytes.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <rapidjson/document.h>

#include "neuron/frames.h"
#include "neuron/iso_time.h"

namespace {

using rapidjson::Value;

[[noreturn]] void fail(const char* what, std::string_view detail = {}) {
  std::fprintf(stderr, "fuzz_frames: %s\n%.*s\n", what, static_cast<int>(std::min<std::size_t>(detail.size(), 2000)),
               detail.data());
  std::abort();
}

// Strict structural equality: same kinds, same member order (duplicate keys
// are legal JSON and write_json keeps them, where Value::operator== would
// compare a duplicate against the first occurrence), same numbers.
bool same(const Value& a, const Value& b) {
  if (a.GetType() != b.GetType()) return false;
  switch (a.GetType()) {
    case rapidjson::kNullType:
    case rapidjson::kFalseType:
    case rapidjson::kTrueType:
      return true;
    case rapidjson::kStringType:
      return a.GetStringLength() == b.GetStringLength() &&
             std::memcmp(a.GetString(), b.GetString(), a.GetStringLength()) == 0;
    case rapidjson::kNumberType:
      if (a.IsDouble() != b.IsDouble()) return false;
      if (a.IsDouble()) {
        const double x = a.GetDouble(), y = b.GetDouble();
        return x == y && std::signbit(x) == std::signbit(y);
      }
      return a == b;
    case rapidjson::kArrayType: {
      if (a.Size() != b.Size()) return false;
      for (rapidjson::SizeType i = 0; i < a.Size(); ++i) {
        if (!same(a[i], b[i])) return false;
      }
      return true;
    }
    case rapidjson::kObjectType: {
      if (a.MemberCount() != b.MemberCount()) return false;
      for (auto ia = a.MemberBegin(), ib = b.MemberBegin(); ia != a.MemberEnd(); ++ia, ++ib) {
        if (!same(ia->name, ib->name) || !same(ia->value, ib->value)) return false;
      }
      return true;
    }
  }
  return false;
}

// Depth (objects + arrays) of a parsed value.
int depth_of(const Value& v) {
  int d = 0;
  if (v.IsArray()) {
    for (const Value& e : v.GetArray()) d = std::max(d, depth_of(e));
    return d + 1;
  }
  if (v.IsObject()) {
    for (const auto& m : v.GetObject()) d = std::max(d, depth_of(m.value));
    return d + 1;
  }
  return 0;
}

// write_json(v) re-parses (with the neuron's own decoder and with a plain
// RapidJSON document) into something identical to v.
void check_round_trip(const Value& v, const char* what) {
  if (depth_of(v) > neuron::kMaxJsonDepth) fail("accepted a value deeper than the limit");
  std::string out;
  neuron::write_json(v, out);
  neuron::FrameDecoder again;
  std::string error;
  const Value* back = again.parse(out, error);
  if (!back) fail(what, error + "\n" + out);
  // What a correct reader (JSON.parse; here RapidJSON at full precision, safe
  // on the shortest-form numbers the writer prints) reads back is exactly v.
  rapidjson::Document exact;
  exact.Parse<rapidjson::kParseFullPrecisionFlag>(out.data(), out.size());
  if (exact.HasParseError()) fail(what, out);
  if (!same(exact, v)) fail("write_json round trip changed the value", out);
  if (!neuron::is_well_formed_json(out)) fail("write_json output not well-formed", out);
  // A second write is byte-identical (stable output).
  std::string out2;
  neuron::write_json(exact, out2);
  if (out2 != out) fail("write_json not stable", out + "\n" + out2);
}

void check_parses(const std::string& json, const char* what) {
  rapidjson::Document doc;
  doc.Parse<rapidjson::kParseFullPrecisionFlag | rapidjson::kParseIterativeFlag>(json.data(), json.size());
  if (doc.HasParseError()) fail(what, json);
  if (!neuron::is_well_formed_json(json)) fail("encoder output not well-formed per is_well_formed_json", json);
}

std::string_view member_string(const rapidjson::Document& doc, const char* key) {
  auto it = doc.FindMember(key);
  if (it == doc.MemberEnd() || !it->value.IsString()) fail("encoded frame lacks a string member", key);
  return {it->value.GetString(), it->value.GetStringLength()};
}

void check_encoders(std::string_view data, std::uint8_t mode) {
  // Slice the input into a few strings (any bytes, including invalid UTF-8).
  const std::size_t n = data.size();
  std::string_view a = data.substr(0, n / 3);
  std::string_view b = data.substr(n / 3, n / 3);
  std::string_view c = data.substr(2 * (n / 3));
  const neuron::TimeMs now = static_cast<neuron::TimeMs>(n) * 7919 * (mode & 1 ? -1 : 1) * 1'000'003;

  std::string out;
  neuron::encode_nack(out, a, now, b, c, static_cast<neuron::NackKind>(mode % 4), c, a,
                      std::vector<neuron::ValidationError>{{std::string(a), std::string(b)}});
  check_parses(out, "encode_nack produced invalid JSON");
  {
    rapidjson::Document doc;
    doc.Parse(out.data(), out.size());
    if (member_string(doc, "neuronId") != a || member_string(doc, "leaseId") != b ||
        member_string(doc, "taskId") != c || member_string(doc, "reason") != c)
      fail("encode_nack changed a string", out);
    if (member_string(doc, "sentAt") != neuron::iso_time(now)) fail("sentAt mismatch", out);
  }

  out.clear();
  neuron::encode_update_capability(out, b, now, a, mode);
  check_parses(out, "encode_update_capability produced invalid JSON");

  const neuron::InFlightLease in_flight[] = {{a, b, now}, {c, a, -now}};
  out.clear();
  neuron::encode_heartbeat(out, c, now, in_flight);
  check_parses(out, "encode_heartbeat produced invalid JSON");

  struct {
    std::optional<double> percent;
    std::optional<std::string> message;
    std::optional<std::string> data_json;
  } u;
  if (mode & 2) {
    double p;
    std::memcpy(&p, data.data(), std::min<std::size_t>(sizeof p, n));
    if (n < sizeof p) p = static_cast<double>(n);
    u.percent = p;
  }
  if (mode & 4) u.message = std::string(b);
  if (mode & 8) u.data_json = "{\"k\":" + std::string(mode & 16 ? "[1,\"x\"]" : "null") + "}";
  out.clear();
  neuron::encode_progress(out, a, now, b, c, u.percent, u.message, u.data_json);
  check_parses(out, "encode_progress produced invalid JSON");
  {
    rapidjson::Document doc;
    doc.Parse<rapidjson::kParseFullPrecisionFlag>(out.data(), out.size());
    if (u.percent && std::isfinite(*u.percent) && (!doc.HasMember("percent") ||
                                                   doc["percent"].GetDouble() != *u.percent))
      fail("percent not preserved", out);
    if (u.message && member_string(doc, "message") != *u.message) fail("message not preserved", out);
  }

  const neuron::RegisterCapability caps[] = {{a, b, mode, c, (mode & 32) ? R"({"type":"object"})" : "", ""}};
  out.clear();
  neuron::encode_register(out, a, now, b, c, caps);
  check_parses(out, "encode_register produced invalid JSON");

  out.clear();
  neuron::encode_ack(out, a, now, b, c, "[null,\"\\u0000\"]", now);
  check_parses(out, "encode_ack produced invalid JSON");

  // events_path only emits the unreserved set and %XX.
  const std::string path = neuron::events_path(a);
  for (char ch : path.substr(std::strlen("/neuron/events?neuronId="))) {
    const auto u8 = static_cast<unsigned char>(ch);
    if (u8 < 0x21 || u8 > 0x7e || ch == '&' || ch == '#' || ch == '+' || ch == '/' || ch == '?' || ch == '=')
      fail("events_path left a reserved char", path);
  }

  // Iso stamps are always 24 chars, digits in the right places.
  const std::string stamp = neuron::iso_time(now);
  if (stamp.size() != neuron::kIsoTimeLength || stamp[4] != '-' || stamp[10] != 'T' || stamp[23] != 'Z')
    fail("bad iso stamp", stamp);

  (void)neuron::error_message_from_body(data);
  if (neuron::error_message_from_body(data).size() > 512) fail("error_message_from_body over 512 bytes");
}

// A lease decoded in one pass must agree with the document of the same text:
// task_text is the first `task` member, its ids and input are its members.
void check_lease(std::string_view json, const neuron::LeaseFrame& lease) {
  neuron::FrameDecoder other;
  std::string error;
  const Value* root = other.parse(json, error);
  if (!root) return;  // numbers a document cannot hold (1e400): nothing to compare
  auto task = root->FindMember("task");
  const bool has_task = task != root->MemberEnd() && task->value.IsObject();
  if (has_task != lease.has_task) fail("has_task disagrees with the document", json);
  auto lease_id = root->FindMember("leaseId");
  const std::string_view expected_id = lease_id != root->MemberEnd() && lease_id->value.IsString()
      ? std::string_view(lease_id->value.GetString(), lease_id->value.GetStringLength()) : std::string_view();
  if (expected_id != lease.lease_id) fail("leaseId disagrees with the document", json);
  if (!has_task) {
    if (!lease.task_id.empty() || !lease.type.empty() || lease.has_input) fail("task fields without a task");
    return;
  }
  neuron::FrameDecoder third;
  const Value* t = third.parse(lease.task_text, error);
  if (!t) fail("task_text does not parse", std::string(lease.task_text) + "\n" + error);
  if (!same(*t, task->value)) fail("task_text is not the first task member", json);
  auto member = [&](const char* name) {
    auto m = task->value.FindMember(name);
    return m != task->value.MemberEnd() && m->value.IsString()
        ? std::string_view(m->value.GetString(), m->value.GetStringLength()) : std::string_view();
  };
  if (member("taskId") != lease.task_id) fail("taskId disagrees with the document", json);
  if (member("type") != lease.type) fail("task.type disagrees with the document", json);
  auto input = task->value.FindMember("input");
  if ((input != task->value.MemberEnd()) != lease.has_input) fail("has_input disagrees with the document", json);
  if (lease.has_input) {
    neuron::FrameDecoder fourth;
    const Value* in = fourth.parse(lease.input_text, error);
    if (!in || !same(*in, input->value)) fail("input_text is not task.input", json);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size) {
  if (size == 0) return 0;
  const std::uint8_t mode = bytes[0];
  const std::string_view json(reinterpret_cast<const char*>(bytes + 1), size - 1);

  neuron::FrameDecoder decoder;
  std::string error;
  std::optional<neuron::ServerFrame> frame = decoder.decode(json, error);
  if (!frame) {
    if (error.empty()) fail("decode failed without an error message");
  } else if (auto* lease = std::get_if<neuron::LeaseFrame>(&*frame)) {
    check_lease(json, *lease);
  } else if (auto* cancel = std::get_if<neuron::CancelFrame>(&*frame)) {
    if (cancel->lease_id.empty()) fail("cancel decoded without leaseId");
  } else if (auto* revoked = std::get_if<neuron::CapabilityRevokedFrame>(&*frame)) {
    if (revoked->capability.empty()) fail("capability-revoked decoded without capability");
  } else if (auto* reg = std::get_if<neuron::RegisteredFrame>(&*frame)) {
    if (reg->session_id.empty()) fail("registered decoded without sessionId");
    if (reg->rejected && !reg->rejected->IsArray()) fail("rejected not an array");
  }

  // parse(): any accepted value round-trips; the well-formedness check agrees.
  const rapidjson::Value* value = decoder.parse(json, error);
  const bool well_formed = neuron::is_well_formed_json(json);
  // Numbers too big for a double are JSON (JSON.parse reads them as
  // Infinity) but no document holds them: only that may tell them apart.
  const bool too_big = !value && error.find("too big") != std::string::npos;
  if ((value != nullptr) != well_formed && !too_big) fail("parse and is_well_formed_json disagree", json);
  if (frame && !value && !too_big) fail("decode accepted what parse rejects", json);
  if (!frame && value && value->IsObject()) {
    auto type = value->FindMember("type");
    if (type != value->MemberEnd() && type->value.IsString()) {
      // A known frame type that failed: the error names the frame.
      const std::string prefix = std::string(type->value.GetString(), type->value.GetStringLength()) + ": ";
      if (error.rfind(prefix, 0) != 0) fail("decode error does not name the frame", error);
    }
  }
  if (value) check_round_trip(*value, "parsed value did not re-parse");
  (void)neuron::decode_lost_leases(json);

  check_encoders(json, mode);
  return 0;
}
