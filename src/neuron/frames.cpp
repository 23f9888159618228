#include "neuron/frames.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>

#include <rapidjson/error/en.h>
#include <rapidjson/internal/dtoa.h>
#include <rapidjson/reader.h>

#include "neuron/find_byte.h"
#include "neuron/iso_time.h"

// The four hex digits of a \uXXXX escape, for the one stream type every
// frame is read from. The same result as RapidJSON's own ParseHex4, but
// always inlined: left a call (the core is built for size), it takes the
// stream by reference, so ParseString's copy of the stream lived in memory
// and every character of every string was a load and a store of its
// pointers. (An explicit specialization must be seen before any use: this
// file holds the core's only in-situ reader; another file that parses in
// situ would need it in a header.)
template <>
template <>
RAPIDJSON_FORCEINLINE unsigned
rapidjson::GenericReader<rapidjson::UTF8<>, rapidjson::UTF8<>, rapidjson::CrtAllocator>::ParseHex4(
    rapidjson::InsituStringStream& is, std::size_t escapeOffset) {
  unsigned value = 0;
  for (int i = 0; i < 4; ++i) {
    const char c = is.Peek();
    unsigned digit;
    if (c >= '0' && c <= '9') {
      digit = static_cast<unsigned>(c - '0');
    } else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f') {
      digit = static_cast<unsigned>((c | 0x20) - 'a' + 10);
    } else {
      parseResult_.Set(rapidjson::kParseErrorStringUnicodeEscapeInvalidHex, escapeOffset);
      return 0;
    }
    value = value << 4 | digit;
    is.Take();
  }
  return value;
}

namespace neuron {

namespace {

// Writes the JSON escape of `c` (a quote, a backslash or a control
// character) at `p`; returns the end. At most 6 bytes.
char* put_escape(char* p, unsigned char c) {
  static constexpr char kHex[] = "0123456789abcdef";
  *p++ = '\\';
  switch (c) {
    case '"': *p++ = '"'; break;
    case '\\': *p++ = '\\'; break;
    case '\n': *p++ = 'n'; break;
    case '\r': *p++ = 'r'; break;
    case '\t': *p++ = 't'; break;
    default:
      *p++ = 'u';
      *p++ = '0';
      *p++ = '0';
      *p++ = kHex[c >> 4];
      *p++ = kHex[c & 15];
  }
  return p;
}

bool needs_escape(unsigned char c) { return c < 0x20 || c == '"' || c == '\\'; }


using rapidjson::Document;
using rapidjson::SizeType;
using rapidjson::Value;

// Default number precision: numbers parsed here only meet schema bounds; the
// handler gets the lease's own text and the gateway our handler's own text,
// so no number is ever re-printed on the hot path. (RapidJSON 1.1's
// full-precision mode also has undefined behaviour on inputs like "0e55".)
// The parse is recursive, but DepthLimitedHandler stops it at kMaxJsonDepth
// levels, which bounds the stack it can use.
constexpr unsigned kParseFlags = rapidjson::kParseDefaultFlags;

// Forwards SAX events to a Document, refusing to nest deeper than the limit.
template <typename Doc>
struct DepthLimitedHandler {
  Doc& doc;
  bool copy_strings = false;  // else strings point into the parsed text
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
  bool String(const char* s, SizeType n, bool copy) { return doc.String(s, n, copy || copy_strings); }
  bool Key(const char* s, SizeType n, bool copy) { return doc.Key(s, n, copy || copy_strings); }
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

// `json`, NUL-terminated, lone surrogate escapes repaired, in `buffer`: what
// an in-situ parse reads (it unescapes strings inside the copy instead of
// allocating each one).
void copy_json(std::vector<char>& buffer, std::string_view json) {
  if (buffer.capacity() > (1u << 20) && json.size() < buffer.capacity() / 4) std::vector<char>().swap(buffer);
  buffer.assign(json.begin(), json.end());
  buffer.push_back('\0');
  replace_lone_surrogate_escapes(buffer.data(), json.size());
}

// After an in-situ parse that ended at `at`: true if only whitespace
// follows. (A NUL inside the text ends the parse early: that is not JSON.)
bool only_space_after(std::string_view json, std::size_t at) {
  for (std::size_t i = at; i < json.size(); ++i) {
    const char c = json[i];
    if (c != ' ' && c != '\t' && c != '\n' && c != '\r') return false;
  }
  return true;
}

// One SAX pass over a frame, in situ in the decoder's copy: the root's
// `type` and `leaseId`, and inside `task` its `taskId`, `type` and the byte
// range of `input` and of `task` itself. First
// occurrences win, as FindMember's would. Offsets are those of the original
// text (an in-situ parse rewrites only the inside of strings).
struct LeaseScan : rapidjson::BaseReaderHandler<rapidjson::UTF8<>, LeaseScan> {
  enum Key : std::uint8_t { kOther, kType, kLeaseId, kTask, kTaskId, kInput };

  const char* base = nullptr;                       // the text being parsed
  std::string_view original;                        // the same text, untouched
  rapidjson::InsituStringStream* in = nullptr;
  int depth = 0;
  bool too_deep = false;
  bool root_is_object = false;
  Key key1 = kOther;  // the root member being read
  Key key2 = kOther;  // the task member being read
  bool in_task = false;
  bool task_done = false;
  std::size_t task_start = 0;
  bool input_done = false;
  std::size_t input_start = 0;
  bool input_open = false;  // an object / array input is being read

  std::optional<std::string_view> type, lease_id, task_id, task_type;
  std::string_view task_text, input_text;
  bool has_task = false, has_input = false;

  // Where the stream is. (Inside String and number callbacks the reader
  // works on a local copy of the stream: see String and number.)
  std::size_t pos() const { return in->Tell(); }

  // The end of the string literal whose opening quote is at `start`, in the
  // untouched text (the in-situ copy has been unescaped).
  std::size_t string_end(std::size_t start) const {
    std::size_t i = start + 1;
    for (;;) {
      const char* q = find_byte(original.data() + i, original.data() + original.size(), '"');
      const auto at = static_cast<std::size_t>(q - original.data());
      std::size_t slashes = 0;
      while (at - slashes > start + 1 && original[at - slashes - 1] == '\\') ++slashes;
      if (slashes % 2 == 0) return at + 1;
      i = at + 1;
    }
  }

  // A scalar value spans [start, end).
  bool scalar(std::size_t start, std::size_t end, std::optional<std::string_view> text = std::nullopt) {
    if (depth == 1) {
      if (key1 == kType && !type && text) type = text;
      if (key1 == kLeaseId && !lease_id && text) lease_id = text;
      if (key1 == kTask && !task_done) task_done = true;  // not an object: no task
    } else if (in_task && depth == 2) {
      if (key2 == kTaskId && !task_id && text) task_id = text;
      if (key2 == kType && !task_type && text) task_type = text;
      if (key2 == kInput && !input_done) {
        input_done = has_input = true;
        input_text = {base + start, end - start};
      }
    }
    return true;
  }

  bool Null() { return scalar(pos() - 4, pos()); }
  bool Bool(bool b) { return scalar(pos() - (b ? 4 : 5), pos()); }
  // A number's range. The reader reports a number while it reads on a copy
  // of the stream, so pos() is where the number starts; were that to change,
  // it would be where the number ends (the char before it is then a digit).
  bool number() {
    if (!(in_task && depth == 2 && key2 == kInput && !input_done)) return scalar(0, 0);  // only a task's input is kept
    auto in_number = [](char c) { return (c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E'; };
    std::size_t start = pos(), end = start;
    if (start > 0 && in_number(base[start - 1])) {
      while (start > 0 && in_number(base[start - 1])) --start;
    } else {
      while (end < original.size() && in_number(base[end])) ++end;
    }
    return scalar(start, end);
  }
  bool Int(int) { return number(); }
  bool Uint(unsigned) { return number(); }
  bool Int64(std::int64_t) { return number(); }
  bool Uint64(std::uint64_t) { return number(); }
  bool Double(double) { return number(); }
  bool String(const char* s, rapidjson::SizeType n, bool) {
    // Only an input needs its end: the one string whose range is kept.
    const auto start = static_cast<std::size_t>(s - base) - 1;
    const bool wanted = in_task && depth == 2 && key2 == kInput && !input_done;
    return scalar(start, wanted ? string_end(start) : start, std::string_view(s, n));
  }
  bool Key(const char* s, rapidjson::SizeType n, bool) {
    const std::string_view k(s, n);
    if (depth == 1) {
      key1 = k == "type" ? kType : k == "leaseId" ? kLeaseId : k == "task" ? kTask : kOther;
    } else if (in_task && depth == 2) {
      key2 = k == "taskId" ? kTaskId : k == "type" ? kType : k == "input" ? kInput : kOther;
    }
    return true;
  }
  bool open() {
    const std::size_t start = pos() - 1;
    if (depth == 0) {
      root_is_object = base[start] == '{';
    } else if (depth == 1 && key1 == kTask && !task_done) {
      task_done = true;
      if (base[start] == '{') {
        in_task = has_task = true;
        task_start = start;
      }
    } else if (in_task && depth == 2 && key2 == kInput && !input_done) {
      input_done = input_open = has_input = true;
      input_start = start;
    }
    if (++depth > kMaxJsonDepth) {
      too_deep = true;
      return false;
    }
    return true;
  }
  bool close() {
    --depth;
    if (in_task && depth == 1) {
      in_task = false;
      task_text = {base + task_start, pos() - task_start};
    } else if (input_open && depth == 2) {
      input_open = false;
      input_text = {base + input_start, pos() - input_start};
    }
    return true;
  }
  bool StartObject() { return open(); }
  bool EndObject(rapidjson::SizeType) { return close(); }
  bool StartArray() { return open(); }
  bool EndArray(rapidjson::SizeType) { return close(); }

  // Scans a copy of `json` (kept in `text`): true if it is well-formed JSON
  // nesting at most kMaxJsonDepth levels.
  // With `input`, the task's input (its first occurrence) also goes to that
  // handler's document, its strings pointing into `text`.
  bool run(rapidjson::Reader& reader, std::vector<char>& text, std::string_view json,
           DepthLimitedHandler<Document>* input = nullptr);

  // The next event is (part of) the task's input.
  bool in_input() const { return input_open || (in_task && depth == 2 && key2 == kInput && !input_done); }
};


// The one handler type RapidJSON's reader is instantiated with (the reader
// is several KB of wasm per instantiation): it feeds a LeaseScan, a
// document, or a LeaseScan and, with the events of the task's input, a
// document (one pass builds the input; leases.cpp checks it against the
// capability's inputSchema).
struct Sax {
  LeaseScan* scan = nullptr;
  DepthLimitedHandler<Document>* doc = nullptr;

  // Whether an event goes to `doc`: with a scan, only the task's input
  // (asked before the scan sees the event: its state moves past the input
  // on the input's last event).
#define NEURON_SAX_EVENT(call)                   \
  if (scan) {                                    \
    const bool to_doc = doc && scan->in_input(); \
    const bool ok = scan->call;                  \
    if (!ok || !to_doc) return ok;               \
  }                                              \
  return doc->call;

  bool Null() { NEURON_SAX_EVENT(Null()) }
  bool Bool(bool b) { NEURON_SAX_EVENT(Bool(b)) }
  bool Int(int i) { NEURON_SAX_EVENT(Int(i)) }
  bool Uint(unsigned u) { NEURON_SAX_EVENT(Uint(u)) }
  bool Int64(std::int64_t i) { NEURON_SAX_EVENT(Int64(i)) }
  bool Uint64(std::uint64_t u) { NEURON_SAX_EVENT(Uint64(u)) }
  bool Double(double d) { NEURON_SAX_EVENT(Double(d)) }
  bool RawNumber(const char* s, SizeType n, bool copy) { NEURON_SAX_EVENT(RawNumber(s, n, copy)) }
  bool String(const char* s, SizeType n, bool copy) { NEURON_SAX_EVENT(String(s, n, copy)) }
  bool Key(const char* s, SizeType n, bool copy) { NEURON_SAX_EVENT(Key(s, n, copy)) }
  bool StartObject() { NEURON_SAX_EVENT(StartObject()) }
  bool EndObject(SizeType n) { NEURON_SAX_EVENT(EndObject(n)) }
  bool StartArray() { NEURON_SAX_EVENT(StartArray()) }
  bool EndArray(SizeType n) { NEURON_SAX_EVENT(EndArray(n)) }
#undef NEURON_SAX_EVENT
};

constexpr unsigned kReaderFlags = kParseFlags | rapidjson::kParseInsituFlag;

bool LeaseScan::run(rapidjson::Reader& reader, std::vector<char>& text, std::string_view json,
                    DepthLimitedHandler<Document>* input) {
  copy_json(text, json);
  base = text.data();
  original = json;
  rapidjson::InsituStringStream stream(text.data());
  in = &stream;
  Sax sax{this, input};
  const bool ok = !reader.Parse<kReaderFlags>(stream, sax).IsError() &&
                  only_space_after(json, stream.Tell());
  in = nullptr;
  return ok;
}

// Parses a copy of `json` (kept in `text`, which must outlive `doc` unless
// `copy_strings`) into `doc`, in situ; false with `error` set on failure.
// Every JSON text in the core is read here or by LeaseScan::run, through
// the one reader instantiation (Sax).
bool parse_limited(Document& doc, std::vector<char>& text, std::string_view json, std::string& error,
                   bool copy_strings = false) {
  doc.SetNull();
  copy_json(text, json);
  rapidjson::Reader reader;
  DepthLimitedHandler<Document> handler{doc, copy_strings};
  bool ok = false;
  std::size_t nul_at = json.size();  // a NUL that ended the parse early
  auto generate = [&](Document&) {
    rapidjson::InsituStringStream in(text.data());
    Sax sax{nullptr, &handler};
    ok = !reader.Parse<kReaderFlags>(in, sax).IsError();
    if (ok && !only_space_after(json, in.Tell())) {
      ok = false;
      nul_at = in.Tell();
    }
    return ok;
  };
  doc.Populate(generate);
  if (ok) return true;
  doc.SetNull();
  if (handler.too_deep) {
    error = "JSON nests deeper than " + std::to_string(kMaxJsonDepth) + " levels";
  } else if (nul_at < json.size()) {
    error = "invalid JSON: a NUL character at offset " + std::to_string(nul_at);
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

// Appends JSON to a std::string: frames are small and fixed in shape, so a
// hand-written writer (escape only what JSON requires, copy runs in bulk)
// beats a generic one. Raw values are copied verbatim. It writes through a
// pointer into room it makes in the string (std::string's own members are
// compiled once in the system libc++, out of line: one call per character
// cost more than the frame), and gives back what it did not use when done.
class JsonOut {
 public:
  explicit JsonOut(std::string& out) : out_(out), at_(out.size()) { grow(std::max(out_.capacity(), at_ + 128) - at_); }
  JsonOut(const JsonOut&) = delete;
  JsonOut& operator=(const JsonOut&) = delete;
  ~JsonOut() { out_.resize(at_); }

  JsonOut& begin() { return sep('{'); }
  JsonOut& end() { put('}'); first_ = false; return *this; }
  JsonOut& begin_array() { return sep('['); }
  JsonOut& end_array() { put(']'); first_ = false; return *this; }
  JsonOut& key(std::string_view k) {
    if (!first_) put(',');
    put('"');
    put(k);  // keys are our own ASCII literals
    put('"');
    put(':');
    first_ = true;  // the value that follows needs no comma
    return *this;
  }
  [[gnu::noinline]] JsonOut& str(std::string_view v) {
    comma();
    at_ = static_cast<std::size_t>(write_json_string(room(json_string_size(v)), v) - base_);
    return *this;
  }
  JsonOut& raw(std::string_view json) {
    comma();
    put(json);
    return *this;
  }
  JsonOut& num(std::int64_t v) {
    comma();
    char* p = room(24);
    at_ = static_cast<std::size_t>(std::to_chars(p, p + 24, v).ptr - base_);
    return *this;
  }
  [[gnu::noinline]] JsonOut& num(double v) {
    if (v == std::floor(v) && std::fabs(v) < 9.0e15) return num(static_cast<std::int64_t>(v));
    comma();
    // The shortest digits that read back as `v` (Grisu2, RapidJSON's own:
    // Emscripten's libc++ has no floating-point std::to_chars, and printf
    // would link printf, strtod and long-double arithmetic into the wasm).
    char* p = room(32);
    at_ = static_cast<std::size_t>(rapidjson::internal::dtoa(v, p) - base_);
    return *this;
  }
  // Any parsed value, as it was: numbers keep their kind (a double is
  // written with a '.' or an exponent), strings are escaped, member names too.
  NEURON_COLD JsonOut& value(const Value& v) {
    switch (v.GetType()) {
      case rapidjson::kNullType: return raw("null");
      case rapidjson::kFalseType: return raw("false");
      case rapidjson::kTrueType: return raw("true");
      case rapidjson::kStringType: return str({v.GetString(), v.GetStringLength()});
      case rapidjson::kNumberType: {
        comma();
        char* p = room(32);
        char* end = v.IsDouble() ? rapidjson::internal::dtoa(v.GetDouble(), p)
                    : v.IsInt64() ? std::to_chars(p, p + 32, v.GetInt64()).ptr
                                  : std::to_chars(p, p + 32, v.GetUint64()).ptr;
        at_ = static_cast<std::size_t>(end - base_);
        return *this;
      }
      case rapidjson::kArrayType:
        begin_array();
        for (const Value& e : v.GetArray()) value(e);
        return end_array();
      case rapidjson::kObjectType:
        begin();
        for (const auto& m : v.GetObject()) {
          str({m.name.GetString(), m.name.GetStringLength()});
          put(':');
          first_ = true;
          value(m.value);
        }
        return end();
    }
    return *this;
  }
  JsonOut& time(TimeMs t) {
    comma();
    char* p = room(kIsoTimeLength + 2);
    p[0] = '"';
    format_iso_time(t, p + 1);
    p[kIsoTimeLength + 1] = '"';
    at_ += kIsoTimeLength + 2;
    return *this;
  }

 private:
  // Where to write n more bytes (the string grows by doubling).
  char* room(std::size_t n) {
    if (size_ - at_ < n) grow(n);
    return base_ + at_;
  }
  [[gnu::noinline]] void grow(std::size_t n) {
    out_.resize(std::max(size_ * 2, at_ + n));
    base_ = out_.data();
    size_ = out_.size();
  }
  void put(char c) {
    *room(1) = c;
    ++at_;
  }
  void put(std::string_view s) {
    if (s.empty()) return;
    std::memcpy(room(s.size()), s.data(), s.size());
    at_ += s.size();
  }
  JsonOut& sep(char c) {
    comma();
    put(c);
    first_ = true;
    return *this;
  }
  void comma() {
    if (!first_) put(',');
    first_ = false;
  }
  std::string& out_;
  char* base_ = nullptr;  // out_.data() and out_.size(), kept here: out_ is
  std::size_t size_ = 0;  // longer than what is written until the end
  std::size_t at_;        // bytes written
  bool first_ = true;
};

JsonOut& put_header(JsonOut& w, std::string_view type, std::string_view neuron_id, TimeMs now) {
  return w.begin().key("type").str(type).key("neuronId").str(neuron_id).key("sentAt").time(now);
}

JsonOut& put_lease_ids(JsonOut& w, std::string_view lease_id, std::string_view task_id) {
  return w.key("leaseId").str(lease_id).key("taskId").str(task_id);
}

}  // namespace

// ----------------------------------------------------------------- decoder --

struct FrameDecoder::Impl {
  // Small frames are parsed without touching the heap: the pool starts in
  // this buffer and is cleared (not freed) before every parse. 4 KiB holds
  // the document of a frame of about a hundred values; a larger one takes
  // 16 KiB chunks from the heap for the parse.
  alignas(8) char first_chunk[4 * 1024];
  rapidjson::MemoryPoolAllocator<> pool{first_chunk, sizeof first_chunk, 16 * 1024};
  Document doc{&pool};
  // In-situ parsing unescapes strings inside a copy of the text instead of
  // allocating each one; the decoded views point into it. One copy for
  // decode() and one for parse(), so that a lease's ids outlive the parse of
  // its input for a schema check.
  std::vector<char> text;
  std::vector<char> parse_text;
  // decode() builds a lease's input into `doc` (build_lease_inputs).
  bool build_inputs = false;

  void reset() {
    doc.SetNull();
    pool.Clear();
  }
};

FrameDecoder::FrameDecoder() : impl_(new Impl) {}
FrameDecoder::~FrameDecoder() { delete impl_; }

void FrameDecoder::build_lease_inputs(bool on) { impl_->build_inputs = on; }

const rapidjson::Value* FrameDecoder::parse(std::string_view json, std::string& error) {
  impl_->reset();
  if (!parse_limited(impl_->doc, impl_->parse_text, json, error)) return nullptr;
  return &impl_->doc;
}


std::optional<ServerFrame> FrameDecoder::decode(std::string_view json, std::string& error) {
  // Leases are nearly every frame: one pass, no document. Anything else (or
  // anything the pass cannot read) is parsed into a document below.
  std::vector<char>& text = impl_->text;
  LeaseScan scan;
  rapidjson::Reader reader;
  bool ok = false, input_built = false;
  if (impl_->build_inputs) {
    // The same pass builds the task's input into the document (a parse of
    // its own would copy, repair and read those bytes again).
    impl_->reset();
    auto generate = [&](Document& doc) {
      DepthLimitedHandler<Document> input{doc};
      ok = scan.run(reader, text, json, &input);
      input_built = ok && scan.has_input;
      return input_built;  // else nothing (or a part) is on the document's stack
    };
    impl_->doc.Populate(generate);
  } else {
    ok = scan.run(reader, text, json);
  }
  if (ok && scan.root_is_object && scan.type == std::string_view("lease")) {
    LeaseFrame lease;
    lease.lease_id = scan.lease_id.value_or(std::string_view());
    if (scan.has_task) {
      lease.has_task = true;
      lease.task_text = json.substr(static_cast<std::size_t>(scan.task_text.data() - text.data()), scan.task_text.size());
      lease.task_id = scan.task_id.value_or(std::string_view());
      lease.type = scan.task_type.value_or(std::string_view());
      if (scan.has_input) {
        lease.has_input = true;
        lease.input_text =
            json.substr(static_cast<std::size_t>(scan.input_text.data() - text.data()), scan.input_text.size());
        if (input_built) lease.input_value = &impl_->doc;
      }
    }
    return lease;
  }

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
    // The one-pass scan and the document disagree: never expected; be safe.
    error = "lease could not be decoded";
    return std::nullopt;
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

NEURON_COLD void write_json(const rapidjson::Value& value, std::string& out) { JsonOut(out).value(value); }

std::size_t json_string_size(std::string_view v) {
  std::size_t n = v.size() + 2;
  for (const char ch : v) {
    const auto c = static_cast<unsigned char>(ch);
    if (needs_escape(c)) {
      char escape[6];  // as long as put_escape writes it
      n += static_cast<std::size_t>(put_escape(escape, c) - escape) - 1;
    }
  }
  return n;
}

char* write_json_string(char* out, std::string_view v) {
  *out++ = '"';
  for (const char ch : v) {
    const auto c = static_cast<unsigned char>(ch);
    if (needs_escape(c)) {
      out = put_escape(out, c);
    } else {
      *out++ = ch;
    }
  }
  *out++ = '"';
  return out;
}

// Log meta's strings, the ids of frames (not through JsonOut: its buffer
// handling would add 1.3 KB gz to the wasm for this cold path, measured).
void append_json_string(std::string& out, std::string_view v) {
  const std::size_t at = out.size();
  out.resize(at + json_string_size(v));
  write_json_string(out.data() + at, v);
}

bool is_well_formed_json(std::string_view json, std::string* why) {
  std::vector<char> scratch;
  return is_well_formed_json(json, scratch, why);
}

bool is_well_formed_json(std::string_view json, std::vector<char>& text, std::string* why) {
  // A raw NUL is never valid JSON (and an in-situ parse would stop at it).
  if (json.find('\0') != std::string_view::npos) {
    if (why) *why = "it contains a NUL character";
    return false;
  }
  LeaseScan scan;
  rapidjson::Reader reader;
  if (scan.run(reader, text, json)) return true;
  if (why) {
    *why = reader.GetParseErrorCode() == rapidjson::kParseErrorTermination
               ? "it nests deeper than " + std::to_string(kMaxJsonDepth) + " levels"
               : std::string(rapidjson::GetParseError_En(reader.GetParseErrorCode())) + " at offset " +
                     std::to_string(reader.GetErrorOffset());
  }
  return false;
}

bool nests_within_limit(std::string_view json, int limit) {
  int depth = 0;
  for (std::size_t i = 0; i < json.size(); ++i) {
    switch (json[i]) {
      case '"':
        // Skip the string: its brackets do not count.
        for (++i; i < json.size() && json[i] != '"'; ++i) {
          if (json[i] == '\\') ++i;
        }
        break;
      case '[':
      case '{':
        if (++depth > limit) return false;
        break;
      case ']':
      case '}':
        --depth;
        break;
      default:
        break;
    }
  }
  return true;
}

namespace {

// The value of the 4 hex digits at `p`, or -1.
int hex4(const char* p) {
  int v = 0;
  for (int i = 0; i < 4; ++i) {
    const char c = p[i];
    int d;
    if (c >= '0' && c <= '9') d = c - '0';
    else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
    else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
    else return -1;
    v = v * 16 + d;
  }
  return v;
}

}  // namespace

bool replace_lone_surrogate_escapes(char* json, std::size_t size) {
  bool changed = false;
  char* const end = json + size;
  char* p = find_byte(json, end, '\\');
  while (end - p >= 2) {
    if (p[1] != 'u' || end - p < 6) {
      p += 2;  // \\, \", \n...: the escaped character is never the start of another escape
    } else {
      const int unit = hex4(p + 2);
      if (unit >= 0xD800 && unit <= 0xDBFF) {
        // A high surrogate must be followed by an escaped low one.
        const int next = (end - p >= 12 && p[6] == '\\' && p[7] == 'u') ? hex4(p + 8) : -1;
        if (next >= 0xDC00 && next <= 0xDFFF) {
          p += 12;
        } else {
          std::memcpy(p + 2, "FFFD", 4);
          changed = true;
          p += 6;
        }
      } else if (unit >= 0xDC00 && unit <= 0xDFFF) {
        std::memcpy(p + 2, "FFFD", 4);
        changed = true;
        p += 6;
      } else {
        p += 6;
      }
    }
    if (p >= end) break;
    p = find_byte(p, end, '\\');
  }
  return changed;
}

bool parse_json(rapidjson::Document& doc, std::string_view json, std::string& error) {
  std::vector<char> text;
  return parse_limited(doc, text, json, error, /*copy_strings=*/true);
}

namespace {

// `body` without the JSON whitespace around it, or "" when what is left
// cannot be a JSON object. Answers are parsed in a copy: a gateway that pads
// an answer with megabytes of spaces costs no copy of them.
std::string_view object_text(std::string_view body) {
  const auto space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
  while (!body.empty() && space(body.front())) body.remove_prefix(1);
  while (!body.empty() && space(body.back())) body.remove_suffix(1);
  return body.size() >= 2 && body.front() == '{' && body.back() == '}' ? body : std::string_view();
}

}  // namespace

NEURON_COLD std::vector<std::string> decode_lost_leases(std::string_view answer) {
  std::vector<std::string> lost;
  const std::string_view body = object_text(answer);
  if (body.empty()) return lost;
  Document doc;
  std::vector<char> text;
  std::string error;
  if (!parse_limited(doc, text, body, error) || !doc.IsObject()) return lost;
  const Value* list = member(doc, "lostLeases");
  if (!list || !list->IsArray()) return lost;
  for (const Value& id : list->GetArray()) {
    if (id.IsString()) lost.emplace_back(id.GetString(), id.GetStringLength());
  }
  return lost;
}

NEURON_COLD std::string error_message_from_body(std::string_view answer) {
  const std::string_view body = object_text(answer);
  Document doc;
  std::vector<char> text;
  std::string error;
  if (!body.empty() && parse_limited(doc, text, body, error) && doc.IsObject()) {
    std::string_view message = string_member(doc, "error");
    if (!message.empty()) return std::string(message.substr(0, 512));
  }
  return std::string(answer.substr(0, 512));
}

// ----------------------------------------------------------------- encoder --

NEURON_COLD void encode_register(std::string& out, std::string_view neuron_id, TimeMs now,
                     std::string_view sdk_name, std::string_view sdk_version,
                     std::span<const RegisterCapability> capabilities) {
  JsonOut w(out);
  put_header(w, "register", neuron_id, now);
  w.key("sdk").begin().key("name").str(sdk_name).key("version").str(sdk_version).end();
  w.key("capabilities").begin_array();
  for (const RegisterCapability& cap : capabilities) {
    w.begin().key("type").str(cap.type).key("scope");
    if (cap.on_behalf_of.empty()) {
      w.str("any");
    } else {
      w.begin().key("onBehalfOf").str(cap.on_behalf_of).end();
    }
    w.key("concurrency").num(std::int64_t{cap.concurrency});
    if (!cap.description.empty()) w.key("description").str(cap.description);
    if (!cap.input_schema_json.empty()) w.key("inputSchema").raw(cap.input_schema_json);
    if (!cap.output_schema_json.empty()) w.key("outputSchema").raw(cap.output_schema_json);
    w.end();
  }
  w.end_array().end();
}

NEURON_COLD void encode_update_capability(std::string& out, std::string_view neuron_id,
                              TimeMs now, std::string_view capability,
                              std::uint32_t concurrency) {
  JsonOut w(out);
  put_header(w, "update-capability", neuron_id, now)
      .key("capability").str(capability)
      .key("concurrency").num(std::int64_t{concurrency})
      .end();
}

void encode_heartbeat(std::string& out, std::string_view neuron_id, TimeMs now,
                      std::span<const InFlightLease> in_flight) {
  JsonOut w(out);
  put_header(w, "heartbeat", neuron_id, now).key("inFlight").begin_array();
  for (const InFlightLease& lease : in_flight) {
    put_lease_ids(w.begin(), lease.lease_id, lease.task_id).key("startedAt").time(lease.started_at).end();
  }
  w.end_array().end();
}

void encode_ack(std::string& out, std::string_view neuron_id, TimeMs now,
                std::string_view lease_id, std::string_view task_id,
                std::string_view output_json, TimeMs duration_ms) {
  out.reserve(out.size() + output_json.size() + 160 + neuron_id.size() + lease_id.size() + task_id.size());
  JsonOut w(out);
  put_lease_ids(put_header(w, "ack", neuron_id, now), lease_id, task_id)
      .key("output").raw(output_json)
      .key("durationMs").num(std::int64_t{duration_ms})
      .end();
}

void encode_nack(std::string& out, std::string_view neuron_id, TimeMs now,
                 std::string_view lease_id, std::string_view task_id,
                 NackKind kind, std::string_view reason, std::string_view code,
                 std::span<const ValidationError> errors) {
  JsonOut w(out);
  put_lease_ids(put_header(w, "nack", neuron_id, now), lease_id, task_id)
      .key("kind").str(nack_kind_string(kind))
      .key("reason").str(reason);
  if (!code.empty()) w.key("code").str(code);
  if (kind == NackKind::kSchemaMismatch) {
    w.key("errors").begin_array();
    for (const ValidationError& e : errors) w.begin().key("path").str(e.path).key("message").str(e.message).end();
    w.end_array();
  }
  w.end();
}

void encode_progress(std::string& out, std::string_view neuron_id, TimeMs now,
                     std::string_view lease_id, std::string_view task_id,
                     const std::optional<double>& percent, const std::optional<std::string>& message,
                     const std::optional<std::string>& data_json) {
  JsonOut w(out);
  put_lease_ids(put_header(w, "progress", neuron_id, now), lease_id, task_id);
  if (percent && std::isfinite(*percent)) w.key("percent").num(*percent);
  if (message) w.key("message").str(*message);
  if (data_json) w.key("data").raw(*data_json);
  w.end();
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
