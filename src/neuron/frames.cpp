#include "neuron/frames.h"

#include <cmath>

#include <rapidjson/error/en.h>
#include <rapidjson/reader.h>
#include <rapidjson/writer.h>

#include "neuron/iso_time.h"

namespace neuron {
namespace {

using rapidjson::Document;
using rapidjson::SizeType;
using rapidjson::Value;

// Full precision so that a number read here and written back is the number
// JSON.parse reads from the original text; iterative so depth costs no stack.
constexpr unsigned kParseFlags =
    rapidjson::kParseIterativeFlag | rapidjson::kParseFullPrecisionFlag;

// Forwards SAX events to a Document, refusing to nest deeper than the limit.
template <typename Doc>
struct DepthLimitedHandler {
  Doc& doc;
  int depth = 0;
  bool too_deep = false;

  bool Null() { return doc.Null(); }
  bool Bool(bool b) { return doc.Bool(b); }
  bool Int(int i) { return doc.Int(i); }
  bool Uint(unsigned u) { return doc.Uint(u); }
  bool Int64(std::int64_t i) { return doc.Int64(i); }
  bool Uint64(std::uint64_t u) { return doc.Uint64(u); }
  bool Double(double d) { return doc.Double(d); }
  bool RawNumber(const char* s, SizeType n, bool copy) { return doc.RawNumber(s, n, copy); }
  bool String(const char* s, SizeType n, bool copy) { return doc.String(s, n, copy); }
  bool Key(const char* s, SizeType n, bool copy) { return doc.Key(s, n, copy); }
  bool StartObject() { return enter() && doc.StartObject(); }
  bool EndObject(SizeType n) { --depth; return doc.EndObject(n); }
  bool StartArray() { return enter() && doc.StartArray(); }
  bool EndArray(SizeType n) { --depth; return doc.EndArray(n); }

  bool enter() {
    if (++depth > kMaxJsonDepth) {
      too_deep = true;
      return false;
    }
    return true;
  }
};

// Counts depth only: for checking well-formedness without building a DOM.
struct DepthOnlyHandler : rapidjson::BaseReaderHandler<rapidjson::UTF8<>, DepthOnlyHandler> {
  int depth = 0;
  bool Default() { return true; }
  bool StartObject() { return ++depth <= kMaxJsonDepth; }
  bool EndObject(SizeType) { --depth; return true; }
  bool StartArray() { return ++depth <= kMaxJsonDepth; }
  bool EndArray(SizeType) { --depth; return true; }
};

// Parses `json` into `doc`; false with `error` set on failure.
template <typename Doc>
bool parse_limited(Doc& doc, std::string_view json, std::string& error) {
  doc.SetNull();
  rapidjson::MemoryStream ms(json.data(), json.size());
  rapidjson::EncodedInputStream<rapidjson::UTF8<>, rapidjson::MemoryStream> in(ms);
  rapidjson::Reader reader;
  DepthLimitedHandler<Doc> handler{doc};
  bool ok = false;
  auto generate = [&](Doc&) {
    ok = !reader.template Parse<kParseFlags>(in, handler).IsError();
    return ok;
  };
  doc.Populate(generate);
  if (ok) return true;
  doc.SetNull();
  if (handler.too_deep) {
    error = "JSON nests deeper than " + std::to_string(kMaxJsonDepth) + " levels";
  } else {
    error = std::string("invalid JSON: ") +
            rapidjson::GetParseError_En(reader.GetParseErrorCode()) + " at offset " +
            std::to_string(reader.GetErrorOffset());
  }
  return false;
}

std::string_view string_member(const Value& object, const char* name) {
  auto it = object.FindMember(name);
  if (it == object.MemberEnd() || !it->value.IsString()) return {};
  return {it->value.GetString(), it->value.GetStringLength()};
}

const Value* member(const Value& object, const char* name) {
  auto it = object.FindMember(name);
  return it == object.MemberEnd() ? nullptr : &it->value;
}

// Writer output straight into a std::string.
struct StringOut {
  using Ch = char;
  std::string& s;
  void Put(char c) { s.push_back(c); }
  void Flush() {}
};
using JsonWriter = rapidjson::Writer<StringOut>;

void put_string(JsonWriter& w, std::string_view s) {
  w.String(s.data(), static_cast<SizeType>(s.size()));
}
void put_key(JsonWriter& w, std::string_view s) {
  w.Key(s.data(), static_cast<SizeType>(s.size()));
}
void put_raw(JsonWriter& w, std::string_view json) {
  w.RawValue(json.data(), json.size(), rapidjson::kObjectType);
}

void put_header(JsonWriter& w, std::string_view type, std::string_view neuron_id,
                TimeMs now) {
  char stamp[kIsoTimeLength];
  format_iso_time(now, stamp);
  w.StartObject();
  put_key(w, "type");
  put_string(w, type);
  put_key(w, "neuronId");
  put_string(w, neuron_id);
  put_key(w, "sentAt");
  w.String(stamp, kIsoTimeLength);
}

void put_lease_ids(JsonWriter& w, std::string_view lease_id, std::string_view task_id) {
  put_key(w, "leaseId");
  put_string(w, lease_id);
  put_key(w, "taskId");
  put_string(w, task_id);
}

}  // namespace

// ----------------------------------------------------------------- decoder --

struct FrameDecoder::Impl {
  // Small frames are parsed without touching the heap: the pool starts in
  // this buffer and is cleared (not freed) before every parse.
  alignas(8) char first_chunk[16 * 1024];
  rapidjson::MemoryPoolAllocator<> pool{first_chunk, sizeof first_chunk};
  Document doc{&pool};

  void reset() {
    doc.SetNull();
    pool.Clear();
  }
};

FrameDecoder::FrameDecoder() : impl_(new Impl) {}
FrameDecoder::~FrameDecoder() { delete impl_; }

const rapidjson::Value* FrameDecoder::parse(std::string_view json, std::string& error) {
  impl_->reset();
  if (!parse_limited(impl_->doc, json, error)) return nullptr;
  return &impl_->doc;
}

std::optional<ServerFrame> FrameDecoder::decode(std::string_view json, std::string& error) {
  const Value* root = parse(json, error);
  if (!root) return std::nullopt;
  if (!root->IsObject()) {
    error = "frame is not a JSON object";
    return std::nullopt;
  }
  const Value* type_value = member(*root, "type");
  if (!type_value || !type_value->IsString()) {
    error = "frame has no string \"type\"";
    return std::nullopt;
  }
  const std::string_view type{type_value->GetString(), type_value->GetStringLength()};

  if (type == "lease") {
    LeaseFrame lease;
    lease.lease_id = string_member(*root, "leaseId");
    const Value* task = member(*root, "task");
    if (task && task->IsObject()) {
      lease.task = task;
      lease.task_id = string_member(*task, "taskId");
      lease.type = string_member(*task, "type");
      lease.input = member(*task, "input");
    }
    return lease;
  }
  if (type == "cancel") {
    CancelFrame cancel{string_member(*root, "leaseId"), string_member(*root, "reason")};
    if (cancel.lease_id.empty()) {
      error = "cancel: leaseId must be a non-empty string";
      return std::nullopt;
    }
    return cancel;
  }
  if (type == "registered") {
    RegisteredFrame registered;
    registered.session_id = string_member(*root, "sessionId");
    if (registered.session_id.empty()) {
      error = "registered: sessionId must be a non-empty string";
      return std::nullopt;
    }
    const Value* caps = member(*root, "capabilities");
    if (caps && caps->IsArray()) registered.capabilities = caps->Size();
    const Value* rejected = member(*root, "rejected");
    if (rejected && rejected->IsArray()) registered.rejected = rejected;
    return registered;
  }
  if (type == "capability-revoked") {
    CapabilityRevokedFrame revoked{string_member(*root, "capability"),
                                   string_member(*root, "reason")};
    if (revoked.capability.empty()) {
      error = "capability-revoked: capability must be a non-empty string";
      return std::nullopt;
    }
    return revoked;
  }
  if (type == "disconnect") {
    DisconnectFrame disconnect;
    disconnect.reason = string_member(*root, "reason");
    const Value* reconnect = member(*root, "reconnect");
    if (reconnect && reconnect->IsBool()) disconnect.reconnect = reconnect->GetBool();
    return disconnect;
  }
  return UnknownFrame{type};
}

void write_json(const rapidjson::Value& value, std::string& out) {
  StringOut os{out};
  JsonWriter w(os);
  value.Accept(w);
}

bool is_well_formed_json(std::string_view json) {
  rapidjson::MemoryStream ms(json.data(), json.size());
  rapidjson::EncodedInputStream<rapidjson::UTF8<>, rapidjson::MemoryStream> in(ms);
  rapidjson::Reader reader;
  DepthOnlyHandler handler;
  return !reader.Parse<kParseFlags>(in, handler).IsError();
}

std::vector<std::string> decode_lost_leases(std::string_view body) {
  std::vector<std::string> lost;
  if (body.empty()) return lost;
  Document doc;
  std::string error;
  if (!parse_limited(doc, body, error) || !doc.IsObject()) return lost;
  const Value* list = member(doc, "lostLeases");
  if (!list || !list->IsArray()) return lost;
  for (const Value& id : list->GetArray()) {
    if (id.IsString()) lost.emplace_back(id.GetString(), id.GetStringLength());
  }
  return lost;
}

std::string error_message_from_body(std::string_view body) {
  Document doc;
  std::string error;
  if (!body.empty() && parse_limited(doc, body, error) && doc.IsObject()) {
    std::string_view message = string_member(doc, "error");
    if (!message.empty()) return std::string(message.substr(0, 512));
  }
  return std::string(body.substr(0, 512));
}

// ----------------------------------------------------------------- encoder --

std::string_view nack_kind_string(NackKind kind) {
  switch (kind) {
    case NackKind::kRetryable: return "retryable";
    case NackKind::kTerminal: return "terminal";
    case NackKind::kSchemaMismatch: return "schema-mismatch";
    case NackKind::kCancelled: return "cancelled";
  }
  return "retryable";
}

void encode_register(std::string& out, std::string_view neuron_id, TimeMs now,
                     std::string_view sdk_name, std::string_view sdk_version,
                     std::span<const RegisterCapability> capabilities) {
  StringOut os{out};
  JsonWriter w(os);
  put_header(w, "register", neuron_id, now);
  put_key(w, "sdk");
  w.StartObject();
  put_key(w, "name");
  put_string(w, sdk_name);
  put_key(w, "version");
  put_string(w, sdk_version);
  w.EndObject();
  put_key(w, "capabilities");
  w.StartArray();
  for (const RegisterCapability& cap : capabilities) {
    const CapabilitySpec& spec = *cap.spec;
    w.StartObject();
    put_key(w, "type");
    put_string(w, spec.type);
    put_key(w, "scope");
    if (spec.on_behalf_of.empty()) {
      put_string(w, "any");
    } else {
      w.StartObject();
      put_key(w, "onBehalfOf");
      put_string(w, spec.on_behalf_of);
      w.EndObject();
    }
    put_key(w, "concurrency");
    w.Uint(cap.concurrency);
    if (!spec.description.empty()) {
      put_key(w, "description");
      put_string(w, spec.description);
    }
    if (!spec.input_schema_json.empty()) {
      put_key(w, "inputSchema");
      put_raw(w, spec.input_schema_json);
    }
    if (!spec.output_schema_json.empty()) {
      put_key(w, "outputSchema");
      put_raw(w, spec.output_schema_json);
    }
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
}

void encode_update_capability(std::string& out, std::string_view neuron_id,
                              TimeMs now, std::string_view capability,
                              std::uint32_t concurrency) {
  StringOut os{out};
  JsonWriter w(os);
  put_header(w, "update-capability", neuron_id, now);
  put_key(w, "capability");
  put_string(w, capability);
  put_key(w, "concurrency");
  w.Uint(concurrency);
  w.EndObject();
}

void encode_heartbeat(std::string& out, std::string_view neuron_id, TimeMs now,
                      std::span<const InFlightLease> in_flight) {
  StringOut os{out};
  JsonWriter w(os);
  put_header(w, "heartbeat", neuron_id, now);
  put_key(w, "inFlight");
  w.StartArray();
  char stamp[kIsoTimeLength];
  for (const InFlightLease& lease : in_flight) {
    w.StartObject();
    put_lease_ids(w, lease.lease_id, lease.task_id);
    put_key(w, "startedAt");
    format_iso_time(lease.started_at, stamp);
    w.String(stamp, kIsoTimeLength);
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
}

void encode_ack(std::string& out, std::string_view neuron_id, TimeMs now,
                std::string_view lease_id, std::string_view task_id,
                std::string_view output_json, TimeMs duration_ms) {
  out.reserve(out.size() + output_json.size() + 192);
  StringOut os{out};
  JsonWriter w(os);
  put_header(w, "ack", neuron_id, now);
  put_lease_ids(w, lease_id, task_id);
  put_key(w, "output");
  put_raw(w, output_json);
  put_key(w, "durationMs");
  w.Int64(duration_ms);
  w.EndObject();
}

void encode_nack(std::string& out, std::string_view neuron_id, TimeMs now,
                 std::string_view lease_id, std::string_view task_id,
                 NackKind kind, std::string_view reason, std::string_view code,
                 std::span<const ValidationError> errors) {
  StringOut os{out};
  JsonWriter w(os);
  put_header(w, "nack", neuron_id, now);
  put_lease_ids(w, lease_id, task_id);
  put_key(w, "kind");
  put_string(w, nack_kind_string(kind));
  put_key(w, "reason");
  put_string(w, reason);
  if (!code.empty()) {
    put_key(w, "code");
    put_string(w, code);
  }
  if (kind == NackKind::kSchemaMismatch) {
    put_key(w, "errors");
    w.StartArray();
    for (const ValidationError& e : errors) {
      w.StartObject();
      put_key(w, "path");
      put_string(w, e.path);
      put_key(w, "message");
      put_string(w, e.message);
      w.EndObject();
    }
    w.EndArray();
  }
  w.EndObject();
}

void encode_progress(std::string& out, std::string_view neuron_id, TimeMs now,
                     std::string_view lease_id, std::string_view task_id,
                     const ProgressUpdate& update) {
  StringOut os{out};
  JsonWriter w(os);
  put_header(w, "progress", neuron_id, now);
  put_lease_ids(w, lease_id, task_id);
  if (update.percent && std::isfinite(*update.percent)) {
    put_key(w, "percent");
    w.Double(*update.percent);
  }
  if (update.message) {
    put_key(w, "message");
    put_string(w, *update.message);
  }
  if (update.data_json) {
    put_key(w, "data");
    put_raw(w, *update.data_json);
  }
  w.EndObject();
}

std::string events_path(std::string_view neuron_id) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string path = "/neuron/events?neuronId=";
  for (unsigned char c : neuron_id) {
    // encodeURIComponent's unreserved set.
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
        c == '-' || c == '_' || c == '.' || c == '!' || c == '~' || c == '*' ||
        c == '\'' || c == '(' || c == ')') {
      path.push_back(static_cast<char>(c));
    } else {
      path.push_back('%');
      path.push_back(kHex[c >> 4]);
      path.push_back(kHex[c & 15]);
    }
  }
  return path;
}

}  // namespace neuron
