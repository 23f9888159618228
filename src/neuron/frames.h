// neuron/frames.h: the JSON frames of PROTOCOL.md section 2, with RapidJSON.
//
// Decoding (gateway -> neuron):
//   FrameDecoder decoder;
//   std::string error;
//   if (auto frame = decoder.decode(json, error)) std::visit(..., *frame);
//   else report(error);   // e.g. "lease: task must be an object"
//
// The decoded structs borrow from the decoder and from `json`: every
// string_view and Value pointer is valid until the next decode() call, and
// task_text / input_text while `json` is. Unknown fields are ignored;
// nesting deeper than kMaxJsonDepth is rejected as soon as it is seen, which
// bounds the parser's recursion, so no input can exhaust the stack.
//
// Encoding (neuron -> gateway): encode_* append one complete frame to `out`.
// Raw JSON arguments (`output_json`, schema texts, progress data) are
// embedded verbatim: callers pass well-formed JSON only.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <rapidjson/document.h>

#include "neuron/vocabulary.h"

namespace neuron {

inline constexpr int kMaxJsonDepth = 256;

// ---- gateway -> neuron ----

struct RegisteredFrame {
  std::string_view session_id;
  std::uint32_t capabilities = 0;             // effective capabilities
  const rapidjson::Value* rejected = nullptr;  // array of {type, reason} or null
};

// Rule 4 needs what a malformed lease does have, so missing ids are empty
// views rather than decode errors. Leases are decoded in one pass that builds
// no document: the handler's input is the task object's own text, and the
// input is parsed again only when a schema must check it.
struct LeaseFrame {
  std::string_view lease_id;
  std::string_view task_id;
  std::string_view type;        // task.type
  bool has_task = false;        // `task` is an object
  // The task object's text exactly as it arrived (so the handler's input is
  // what JSON.parse makes of the gateway's bytes).
  std::string_view task_text;
  bool has_input = false;       // task.input is present (null counts)
  std::string_view input_text;  // its text
  // Its value, when the decoder built it (FrameDecoder::build_lease_inputs):
  // valid until the decoder's next decode or parse.
  const rapidjson::Value* input_value = nullptr;
};

struct CancelFrame {
  std::string_view lease_id;
  std::string_view reason;
};

struct CapabilityRevokedFrame {
  std::string_view capability;
  std::string_view reason;
};

struct DisconnectFrame {
  std::string_view reason;
  bool reconnect = true;
};

// A well-formed frame whose `type` this version does not know.
struct UnknownFrame {
  std::string_view type;
};

using ServerFrame = std::variant<RegisteredFrame, LeaseFrame, CancelFrame,
                                 CapabilityRevokedFrame, DisconnectFrame,
                                 UnknownFrame>;

class FrameDecoder {
 public:
  FrameDecoder();
  ~FrameDecoder();
  FrameDecoder(const FrameDecoder&) = delete;
  FrameDecoder& operator=(const FrameDecoder&) = delete;

  // nullopt with `error` set when `json` is not a frame.
  std::optional<ServerFrame> decode(std::string_view json, std::string& error);

  // Parses any JSON value (handler output, heartbeat answers, a lease's input)
  // with the same depth limit; the result is valid until the next parse or
  // decode. The views of a LeaseFrame survive a parse().
  const rapidjson::Value* parse(std::string_view json, std::string& error);

  // On: decode() also builds a lease's input into a document in its one pass
  // over the frame (LeaseFrame::input_value), for an inputSchema check.
  void build_lease_inputs(bool on);

 private:
  struct Impl;
  Impl* impl_;
};

// Appends `value` as compact JSON (UTF-8 kept as is; what JSON.parse reads
// back equals what was parsed).
void write_json(const rapidjson::Value& value, std::string& out);

// Parses `json` into `doc` (which owns its strings), at most kMaxJsonDepth
// levels deep; false with `error` ("invalid JSON: ... at offset N", "JSON
// nests deeper than ...") on failure. Every document in the core is parsed
// by the same reader as the frames: one reader in the wasm.
bool parse_json(rapidjson::Document& doc, std::string_view json, std::string& error);

// Appends `s` as a JSON string literal (quotes, escapes; UTF-8 kept as is).
void append_json_string(std::string& out, std::string_view s);
// The same literal's size in bytes, and the literal written at `out`, which
// has that much room; returns its end.
std::size_t json_string_size(std::string_view s);
char* write_json_string(char* out, std::string_view s);

// true when `json` is exactly one well-formed JSON value (depth-limited),
// as FrameDecoder reads it (lone surrogate escapes allowed, see below).
// On false, `why` (if given) says what is wrong.
bool is_well_formed_json(std::string_view json, std::string* why = nullptr);
// The same, checking in `scratch` (kept between calls: no allocation per check).
bool is_well_formed_json(std::string_view json, std::vector<char>& scratch, std::string* why = nullptr);

// For JSON known to be well-formed (JSON.stringify's, or one parsed already):
// true when it nests no deeper than `limit`. One pass over the bytes, no parse.
bool nests_within_limit(std::string_view well_formed_json, int limit = kMaxJsonDepth);

// Rewrites every \\uXXXX escape of a lone UTF-16 surrogate (a high one not
// followed by a low one, or a low one alone) to \\uFFFD, in place; the text
// keeps its length. JavaScript's JSON.stringify writes such escapes for a
// string cut in the middle of an emoji ('😀'.slice(0, 1)) and JSON.parse
// accepts them, but they stand for no Unicode text and RapidJSON refuses
// them: repaired, the frame or output goes through with U+FFFD where the
// half character was, as TextEncoder does. Returns true if it changed
// anything; costs one memchr when the text has no backslash.
bool replace_lone_surrogate_escapes(char* json, std::size_t size);

// Extracts `lostLeases` from a heartbeat answer body (absent/invalid: empty).
std::vector<std::string> decode_lost_leases(std::string_view body);

// The `error` string of a `{ "error": "..." }` body, else the body itself
// (truncated to 512 bytes).
std::string error_message_from_body(std::string_view body);

// ---- neuron -> gateway ----

struct RegisterCapability {
  std::string_view type;
  std::string_view on_behalf_of;  // empty: scope "any"
  std::uint32_t concurrency;
  std::string_view description;         // empty: left out
  std::string_view input_schema_json;   // empty: left out
  std::string_view output_schema_json;  // empty: left out
};

struct InFlightLease {
  std::string_view lease_id;
  std::string_view task_id;
  TimeMs started_at;
};


void encode_register(std::string& out, std::string_view neuron_id, TimeMs now,
                     std::string_view sdk_name, std::string_view sdk_version,
                     std::span<const RegisterCapability> capabilities);
void encode_update_capability(std::string& out, std::string_view neuron_id,
                              TimeMs now, std::string_view capability,
                              std::uint32_t concurrency);
void encode_heartbeat(std::string& out, std::string_view neuron_id, TimeMs now,
                      std::span<const InFlightLease> in_flight);
void encode_ack(std::string& out, std::string_view neuron_id, TimeMs now,
                std::string_view lease_id, std::string_view task_id,
                std::string_view output_json, TimeMs duration_ms);
void encode_nack(std::string& out, std::string_view neuron_id, TimeMs now,
                 std::string_view lease_id, std::string_view task_id,
                 NackKind kind, std::string_view reason, std::string_view code,
                 std::span<const ValidationError> errors);
// Each of percent, message and data (raw JSON) left out when absent.
void encode_progress(std::string& out, std::string_view neuron_id, TimeMs now,
                     std::string_view lease_id, std::string_view task_id,
                     const std::optional<double>& percent, const std::optional<std::string>& message,
                     const std::optional<std::string>& data_json);

// "/neuron/events?neuronId=<percent-encoded id>"
std::string events_path(std::string_view neuron_id);

}  // namespace neuron
