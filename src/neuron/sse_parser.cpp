// neuron/sse_parser.cpp: see sse_parser.h. Hot path: complete lines are
// parsed in place from the caller's buffer; only a trailing partial line is
// copied (into line_), and data lines go straight into data_.
#include "neuron/sse_parser.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include "neuron/find_byte.h"

namespace neuron {
namespace {

constexpr std::string_view kBom = "\xEF\xBB\xBF";
constexpr std::size_t kLineSlack = 64;  // room for "data: " and the like

// Where the line ending at `eol` (CR or LF) is followed. A CR that is the last
// byte of the chunk may be the first half of a CRLF split across feeds.
const char* skip_line_end(const char* eol, const char* end, bool& after_cr) {
  if (*eol == '\n') return eol + 1;
  if (eol + 1 == end) {
    after_cr = true;
    return end;
  }
  return eol[1] == '\n' ? eol + 2 : eol + 1;
}

std::optional<std::int64_t> parse_retry(std::string_view value) {
  if (value.empty()) return std::nullopt;
  std::int64_t result = 0;
  constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max();
  for (char c : value) {
    if (c < '0' || c > '9') return std::nullopt;
    const int digit = c - '0';
    // A value past int64 is ignored rather than clamped: it is nonsense, and
    // a clamped "forever" delay would stall reconnects.
    if (result > (kMax - digit) / 10) return std::nullopt;
    result = result * 10 + digit;
  }
  return result;
}

// Keep large buffers from pinning memory past a reconnect.
void clear_and_trim(std::string& s) {
  constexpr std::size_t kKeep = 64 * 1024;
  if (s.capacity() > kKeep) {
    std::string().swap(s);
  } else {
    s.clear();
  }
}

// s += [p, p + n) without letting s's capacity pass `limit` (nor what it
// must hold): std::string doubles its capacity, so a line just past half the
// limit would take twice the limit, and the wasm memory that grew for it is
// never given back. With the cap, the peak is the limit however the stream
// was cut into chunks (an attack at two sizes costs the same).
// `more`: bytes the caller appends right after.
void append_within(std::string& s, const char* p, std::size_t n, std::size_t limit, std::size_t more = 0) {
  const std::size_t need = s.size() + n + more;
  if (need > s.capacity()) s.reserve(std::max(need, std::min(2 * s.capacity(), limit)));
  s.append(p, n);
}

}  // namespace

SseParser::SseParser(std::size_t max_data_bytes)
    : max_data_bytes_(max_data_bytes),
      line_limit_(max_data_bytes > std::numeric_limits<std::size_t>::max() - kLineSlack
                      ? std::numeric_limits<std::size_t>::max()
                      : max_data_bytes + kLineSlack) {}

void SseParser::reset() {
  clear_and_trim(line_);
  clear_and_trim(data_);
  type_.clear();
  // An id seen in an unfinished event was never committed (see id_buffer_).
  id_buffer_ = last_event_id_;
  id_pending_ = false;
  bom_checked_ = false;
  after_cr_ = false;
  skipping_line_ = false;
  skipping_event_ = false;
}

std::size_t SseParser::buffered_bytes() const { return line_.size() + pending_data_size(); }

std::size_t SseParser::pending_data_size() const {
  return data_in_view_ ? data_view_.size() + 1 : data_.size();
}

void SseParser::own_data_view() {
  if (!data_in_view_) return;
  data_.assign(data_view_);
  data_.push_back('\n');
  data_in_view_ = false;
}

// While the BOM is undecided its bytes wait in line_; on a mismatch they stay
// there as the start of the first line. Returns false if `bytes` ran out
// while still matching a BOM prefix.
bool SseParser::consume_bom(std::string_view& bytes) {
  while (!bytes.empty()) {
    if (bytes.front() != kBom[line_.size()]) {
      bom_checked_ = true;
      return true;
    }
    line_.push_back(bytes.front());
    bytes.remove_prefix(1);
    if (line_.size() == kBom.size()) {
      line_.clear();
      bom_checked_ = true;
      return true;
    }
  }
  return false;
}

void SseParser::feed(std::string_view bytes, Sink& sink) {
  if (!bom_checked_ && !consume_bom(bytes)) return;
  if (bytes.empty()) return;
  // data_view_ points into `bytes`: it must be owned however feed() is left,
  // including by an exception out of the sink.
  struct OwnViewOnExit {
    SseParser& parser;
    ~OwnViewOnExit() { parser.own_data_view(); }
  } own_view_on_exit{*this};
  if (after_cr_) {
    after_cr_ = false;
    if (bytes.front() == '\n') bytes.remove_prefix(1);
  }

  const char* p = bytes.data();
  const char* const end = p + bytes.size();
  // Each terminator is searched for at most once per occurrence: a stream
  // without CR pays for one scan for '\r' per feed, not one per line.
  const char* next_lf = find_byte(p, end, '\n');
  const char* next_cr = find_byte(p, end, '\r');
  auto next_eol = [&]() {
    if (next_lf < p) next_lf = find_byte(p, end, '\n');
    if (next_cr < p) next_cr = find_byte(p, end, '\r');
    return next_lf < next_cr ? next_lf : next_cr;
  };

  // Finish the line carried over from the previous feed, if any.
  if (!line_.empty() || skipping_line_) {
    const char* eol = next_eol();
    const auto seg = static_cast<std::size_t>(eol - p);
    if (!skipping_line_) {
      if (seg > line_limit_ - line_.size()) {
        start_overlong_line(is_data_line(line_, std::string_view(p, seg)), sink);
      } else {
        append_within(line_, p, seg, line_limit_);
      }
    }
    if (eol == end) return;
    p = skip_line_end(eol, end, after_cr_);
    if (skipping_line_) {
      skipping_line_ = false;
    } else {
      process_line(line_, false, sink);
      line_.clear();
    }
  }

  while (p < end) {
    const char* eol = next_eol();
    if (eol == end) {
      const auto seg = static_cast<std::size_t>(end - p);
      if (*p == ':') {
        skipping_line_ = true;  // a comment: nothing of it is ever needed
      } else if (seg > line_limit_) {
        start_overlong_line(is_data_line({}, std::string_view(p, seg)), sink);
      } else {
        line_.assign(p, seg);
      }
      return;
    }
    const std::string_view line(p, static_cast<std::size_t>(eol - p));
    p = skip_line_end(eol, end, after_cr_);
    process_line(line, true, sink);
  }
}

// The reported size must not depend on chunking, so an overlong line always
// reports the point where it crossed the limit, never how much of it a
// particular feed happened to hold. Only a data line takes its event with it:
// any other field that long (an id, an event type, a comment, an unknown
// field) is ignored, and the event goes on.
void SseParser::start_overlong_line(bool is_data, Sink& sink) {
  line_.clear();
  skipping_line_ = true;
  if (is_data) skip_event(pending_data_size() + line_limit_ + 1, sink);
}

// Whether the line whose start is `head` + `tail` is a data line. Called for
// lines over the limit, so the field name is always there.
bool SseParser::is_data_line(std::string_view head, std::string_view tail) {
  char name[5];
  std::size_t n = 0;
  for (std::string_view part : {head, tail}) {
    for (std::size_t i = 0; i < part.size() && n < sizeof name; ++i) name[n++] = part[i];
  }
  return n == sizeof name && std::memcmp(name, "data:", 5) == 0;
}

void SseParser::skip_event(std::size_t seen, Sink& sink) {
  data_.clear();
  data_in_view_ = false;
  type_.clear();
  if (skipping_event_) return;
  skipping_event_ = true;
  sink.on_oversized_event(seen);
}

void SseParser::process_line(std::string_view line, bool in_input, Sink& sink) {
  if (line.empty()) {
    dispatch(sink);
    return;
  }
  if (line.size() > line_limit_) {
    // Same outcome as a line that crossed the limit across feeds.
    if (is_data_line({}, line)) skip_event(pending_data_size() + line_limit_ + 1, sink);
    return;
  }
  if (line.front() == ':') return;
  // Most lines are data lines: skip the generic colon search for them.
  if (line.size() >= 5 && std::memcmp(line.data(), "data:", 5) == 0) {
    std::string_view value = line.substr(5);
    if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    append_data(value, in_input, sink);
    return;
  }

  std::string_view name = line;
  std::string_view value;
  if (const std::size_t colon = line.find(':'); colon != std::string_view::npos) {
    name = line.substr(0, colon);
    value = line.substr(colon + 1);
    if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  }

  switch (name.size()) {
    case 4:
      if (name == "data") append_data(value, in_input, sink);
      return;
    case 5:
      if (name == "event") {
        if (!skipping_event_) type_.assign(value);
      } else if (name == "retry") {
        if (auto ms = parse_retry(value)) retry_ms_ = ms;
      }
      return;
    case 2:
      if (name == "id" && value.find('\0') == std::string_view::npos) {
        id_buffer_.assign(value);
        id_pending_ = true;
      }
      return;
    default:
      return;  // unknown field: ignored by the standard
  }
}

void SseParser::append_data(std::string_view value, bool in_input, Sink& sink) {
  if (skipping_event_) return;
  const std::size_t held = pending_data_size();
  if (held + value.size() > max_data_bytes_) {
    skip_event(held + value.size(), sink);
    return;
  }
  if (held == 0 && in_input) {
    data_view_ = value;
    data_in_view_ = true;
    return;
  }
  own_data_view();
  append_within(data_, value.data(), value.size(), max_data_bytes_, 1);
  data_.push_back('\n');
}

void SseParser::dispatch(Sink& sink) {
  if (id_pending_) {
    last_event_id_.assign(id_buffer_);
    id_pending_ = false;
  }
  if (skipping_event_) {
    skipping_event_ = false;
    data_.clear();
    type_.clear();
    return;
  }
  if (!data_in_view_ && data_.empty()) {
    type_.clear();
    return;
  }
  std::string_view data = data_view_;
  if (!data_in_view_) data = std::string_view(data_.data(), data_.size() - 1);  // final LF
  data_in_view_ = false;
  const std::string_view type = type_.empty() ? std::string_view("message") : type_;
  sink.on_event(Event{type, data, last_event_id_});
  data_.clear();
  type_.clear();
}

}  // namespace neuron
