// neuron/sse_parser.h: incremental server-sent-events parser (WHATWG HTML,
// "event stream interpretation"), bounded in memory.
//
//   SseParser parser{16u << 20};
//   parser.feed(bytes, sink);   // any chunking: output is identical
//
// Lines end in LF, CRLF or CR (a CR at the end of one chunk and an LF at the
// start of the next are one line end). `data:` lines are joined with LF; an
// event is dispatched at a blank line if its data is non-empty; lines starting
// with ':' are comments; one leading BOM is skipped; `id` (without NUL) and
// `retry` (ASCII digits only) follow the standard. An incomplete event at the
// end of the stream is discarded (reset() before the next stream).
//
// Memory: an event whose data would exceed `max_data_bytes`, or a data line
// longer than max_data_bytes + 64, is skipped up to its end: the sink hears
// on_oversized_event once and the stream goes on. Any other line that long (a
// comment, an id, an event type, an unknown field) is ignored without a word,
// and its event goes on; comments are never buffered. The parser never holds
// more than about 2 x max_data_bytes whatever the input.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace neuron {

class SseParser {
 public:
  struct Event {
    std::string_view type;           // "message" unless an `event:` field set it
    std::string_view data;           // joined data lines, no trailing LF
    std::string_view last_event_id;  // the stream's last event id so far
  };  // views valid only during the on_event call

  class Sink {
   public:
    virtual ~Sink() = default;
    virtual void on_event(const Event& event) = 0;
    // An event was dropped because it was too large; `bytes` is how much of
    // it had been seen when the limit was crossed.
    virtual void on_oversized_event(std::size_t bytes) = 0;
  };

  explicit SseParser(std::size_t max_data_bytes);

  void feed(std::string_view bytes, Sink& sink);

  // A new stream: drop any partial line/event, expect a BOM again. The last
  // event id and retry survive (the standard keeps them across reconnects).
  void reset();

  std::optional<std::int64_t> retry_ms() const { return retry_ms_; }
  std::string_view last_event_id() const { return last_event_id_; }
  // Bytes currently held (partial line + pending data): for tests of the bound.
  // Never more than 2 * max_data_bytes + 65 (a line of max_data_bytes + 64
  // plus data of max_data_bytes + one LF).
  std::size_t buffered_bytes() const;

 private:
  // `in_input`: the line lives in the caller's buffer for the rest of feed().
  void process_line(std::string_view line, bool in_input, Sink& sink);
  void dispatch(Sink& sink);
  void append_data(std::string_view value, bool in_input, Sink& sink);
  void own_data_view();
  std::size_t pending_data_size() const;
  bool consume_bom(std::string_view& bytes);
  void start_overlong_line(bool is_data, Sink& sink);
  static bool is_data_line(std::string_view head, std::string_view tail);
  void skip_event(std::size_t seen, Sink& sink);

  std::size_t max_data_bytes_;
  std::size_t line_limit_;  // max_data_bytes + 64, saturated
  std::string line_;        // partial line carried between feeds
  std::string data_;        // data of the event being built, each line + LF
  // Zero-copy fast path: an event whose data is one line, whole in the current
  // feed, is dispatched from the caller's buffer. Valid only inside feed();
  // copied into data_ before feed() returns or a second data line arrives.
  std::string_view data_view_;
  bool data_in_view_ = false;
  std::string type_;        // event type of the event being built
  // The standard's "last event ID buffer": committed to last_event_id_ only at
  // a blank line, so an id inside an event cut off by a disconnect is not
  // sent on reconnect (the server must resend that event).
  std::string id_buffer_;
  bool id_pending_ = false;
  std::string last_event_id_;
  std::optional<std::int64_t> retry_ms_;
  bool bom_checked_ = false;
  bool after_cr_ = false;      // last byte seen was CR: a following LF is eaten
  bool skipping_line_ = false; // current line is over the limit: discard to EOL
  bool skipping_event_ = false;// current event is over the limit: discard to blank line
};

}  // namespace neuron
