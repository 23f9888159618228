// SseParser: every input is parsed whole, one byte at a time, and split at
// every offset (two and, for short inputs, three feeds); all must agree.
#include "neuron/sse_parser.h"

#include <gtest/gtest.h>

#include "neuron/find_byte.h"

#include <algorithm>
#include <cstddef>
#include <iterator>
#include <string>
#include <string_view>
#include <vector>

namespace neuron {
namespace {

using namespace std::string_literals;

struct Recorder : SseParser::Sink {
  std::vector<std::string> log;
  void on_event(const SseParser::Event& e) override {
    log.push_back("event type=" + std::string(e.type) + " id=" + std::string(e.last_event_id) +
                  " data=" + std::string(e.data));
  }
  void on_oversized_event(std::size_t bytes) override {
    log.push_back("oversized " + std::to_string(bytes));
  }
};

struct Outcome {
  std::vector<std::string> log;
  std::string last_event_id;
  std::optional<std::int64_t> retry_ms;
  std::size_t max_buffered = 0;
  bool operator==(const Outcome&) const = default;
};

constexpr std::size_t kDefaultMax = 1024;

Outcome parse_chunks(const std::vector<std::string_view>& chunks, std::size_t max) {
  SseParser parser{max};
  Recorder rec;
  Outcome out;
  for (auto chunk : chunks) {
    parser.feed(chunk, rec);
    out.max_buffered = std::max(out.max_buffered, parser.buffered_bytes());
  }
  out.log = rec.log;
  out.last_event_id = std::string(parser.last_event_id());
  out.retry_ms = parser.retry_ms();
  return out;
}

std::string describe(const std::vector<std::string_view>& chunks) {
  std::string s;
  for (auto c : chunks) s += "[" + std::to_string(c.size()) + "]";
  return s;
}

// Parses `input` every way and checks each against the whole-input result,
// which it returns. max_buffered is compared to the bound, not across ways.
Outcome parse_all_ways(std::string_view input, std::size_t max = kDefaultMax) {
  Outcome whole = parse_chunks({input}, max);
  const std::size_t bound = 2 * max + 65;
  EXPECT_LE(whole.max_buffered, bound);
  auto check = [&](const std::vector<std::string_view>& chunks) {
    Outcome got = parse_chunks(chunks, max);
    EXPECT_LE(got.max_buffered, bound) << describe(chunks);
    got.max_buffered = whole.max_buffered;
    EXPECT_EQ(got, whole) << "split " << describe(chunks);
  };
  std::vector<std::string_view> bytes;
  for (std::size_t i = 0; i < input.size(); ++i) bytes.push_back(input.substr(i, 1));
  check(bytes);
  for (std::size_t i = 0; i <= input.size(); ++i) {
    check({input.substr(0, i), input.substr(i)});
  }
  if (input.size() <= 64) {
    for (std::size_t i = 0; i <= input.size(); ++i) {
      for (std::size_t j = i; j <= input.size(); ++j) {
        check({input.substr(0, i), input.substr(i, j - i), input.substr(j)});
      }
    }
  }
  return whole;
}

std::vector<std::string> events(std::string_view input, std::size_t max = kDefaultMax) {
  return parse_all_ways(input, max).log;
}

std::string ev(std::string_view data, std::string_view type = "message", std::string_view id = "") {
  return "event type=" + std::string(type) + " id=" + std::string(id) + " data=" + std::string(data);
}

using Log = std::vector<std::string>;

TEST(SseParser, SingleEventLf) {
  EXPECT_EQ(events("data: hello\n\n"), Log{ev("hello")});
}

TEST(SseParser, CrLfLineEnds) {
  EXPECT_EQ(events("data: a\r\ndata: b\r\n\r\ndata: c\r\n\r\n"), (Log{ev("a\nb"), ev("c")}));
}

TEST(SseParser, CrLineEnds) {
  EXPECT_EQ(events("data: a\rdata: b\r\rdata: c\r\r"), (Log{ev("a\nb"), ev("c")}));
}

TEST(SseParser, MixedLineEnds) {
  EXPECT_EQ(events("data: a\rdata: b\r\ndata: c\n\r\ndata: d\r\n\n"), (Log{ev("a\nb\nc"), ev("d")}));
}

TEST(SseParser, CrThenLfIsOneLineEndAcrossFeeds) {
  // Explicit on top of the exhaustive splits: "\r" | "\n" must not make a
  // blank line (which would dispatch early).
  SseParser parser{kDefaultMax};
  Recorder rec;
  parser.feed("data: a\r", rec);
  parser.feed("\ndata: b\r", rec);
  parser.feed("\n", rec);
  EXPECT_TRUE(rec.log.empty());
  parser.feed("\r", rec);
  EXPECT_EQ(rec.log, Log{ev("a\nb")});
  parser.feed("\n", rec);  // second half of that CRLF, not another blank line
  parser.feed("\n", rec);  // a real blank line, nothing pending
  EXPECT_EQ(rec.log, Log{ev("a\nb")});
}

TEST(SseParser, CrCrIsTwoLineEnds) {
  EXPECT_EQ(events("data: x\r\r"), Log{ev("x")});
  EXPECT_EQ(events("data: x\r\r\n"), Log{ev("x")});
}

TEST(SseParser, MultiLineData) {
  EXPECT_EQ(events("data: one\ndata: two\ndata: three\n\n"), Log{ev("one\ntwo\nthree")});
}

TEST(SseParser, EmptyDataLineContributesLf) {
  EXPECT_EQ(events("data\n\n"), Log{ev("")});
  EXPECT_EQ(events("data:\n\n"), Log{ev("")});
  EXPECT_EQ(events("data:\ndata:\n\n"), Log{ev("\n")});
  EXPECT_EQ(events("data: a\ndata:\ndata: b\n\n"), Log{ev("a\n\nb")});
}

TEST(SseParser, OnlyOneLeadingSpaceStripped) {
  EXPECT_EQ(events("data:no-space\n\n"), Log{ev("no-space")});
  EXPECT_EQ(events("data:  two\n\n"), Log{ev(" two")});
  EXPECT_EQ(events("data: trailing \n\n"), Log{ev("trailing ")});
  EXPECT_EQ(events("data:\ttab\n\n"), Log{ev("\ttab")});
  EXPECT_EQ(events("data: a:b: c\n\n"), Log{ev("a:b: c")});
}

TEST(SseParser, Comments) {
  EXPECT_EQ(events(": ping\n\n: ping\ndata: x\n: inside\n\n:\n\n"), Log{ev("x")});
}

TEST(SseParser, BomSkippedAtStreamStart) {
  EXPECT_EQ(events("\xEF\xBB\xBF" "data: x\n\n"), Log{ev("x")});
  EXPECT_EQ(events("\xEF\xBB\xBF\n" "data: x\n\n"), Log{ev("x")});
}

TEST(SseParser, OnlyOneBomSkipped) {
  // A second BOM makes the field name "\uFEFFdata": unknown, ignored.
  EXPECT_EQ(events("\xEF\xBB\xBF\xEF\xBB\xBF" "data: x\n\ndata: y\n\n"), Log{ev("y")});
}

TEST(SseParser, BomLaterInStreamIsNotSkipped) {
  EXPECT_EQ(events("data: a\n\n\xEF\xBB\xBF" "data: b\n\ndata: c\n\n"), (Log{ev("a"), ev("c")}));
  EXPECT_EQ(events("data: \xEF\xBB\xBFz\n\n"), Log{ev("\xEF\xBB\xBFz")});
}

TEST(SseParser, BomPrefixThatIsNotABom) {
  // Bytes that start like a BOM but are not one stay part of the first line.
  EXPECT_EQ(events("\xEF\xBB" "data: x\n\ndata: y\n\n"), Log{ev("y")});
  EXPECT_EQ(events("\xEF\n" "data: x\n\n"), Log{ev("x")});
  EXPECT_EQ(events("\xEF\xBB" ":c\ndata: x\n\n"), Log{ev("x")});
}

TEST(SseParser, BomAgainAfterReset) {
  SseParser parser{kDefaultMax};
  Recorder rec;
  parser.feed("\xEF\xBB\xBF" "data: a\n\n", rec);
  parser.reset();
  parser.feed("\xEF\xBB", rec);
  parser.feed("\xBF" "data: b\n\n", rec);
  EXPECT_EQ(rec.log, (Log{ev("a"), ev("b")}));
}

TEST(SseParser, IdField) {
  EXPECT_EQ(events("id: 7\ndata: x\n\ndata: y\n\n"), (Log{ev("x", "message", "7"), ev("y", "message", "7")}));
  EXPECT_EQ(events("id: 7\ndata: x\n\nid\ndata: y\n\n"), (Log{ev("x", "message", "7"), ev("y")}));
  EXPECT_EQ(parse_all_ways("id: 7\ndata: x\n\nid: 8\n\n").last_event_id, "8");
}

TEST(SseParser, IdWithNulIgnored) {
  const std::string input = "id: 1\ndata: x\n\nid: 2\0z\ndata: y\n\n"s;
  const Outcome out = parse_all_ways(input);
  EXPECT_EQ(out.log, (Log{ev("x", "message", "1"), ev("y", "message", "1")}));
  EXPECT_EQ(out.last_event_id, "1");
}

TEST(SseParser, IdCommittedOnlyAtBlankLine) {
  // The id of an event cut off by the end of the stream must not be what a
  // reconnect reports: the server has to resend that event.
  const Outcome out = parse_all_ways("id: 1\ndata: x\n\nid: 2\ndata: partial\n");
  EXPECT_EQ(out.log, Log{ev("x", "message", "1")});
  EXPECT_EQ(out.last_event_id, "1");
}

TEST(SseParser, LastEventIdSurvivesReset) {
  SseParser parser{kDefaultMax};
  Recorder rec;
  parser.feed("id: 42\ndata: a\n\nretry: 500\nid: 43\ndata: cut", rec);
  parser.reset();
  EXPECT_EQ(parser.last_event_id(), "42");
  EXPECT_EQ(parser.retry_ms(), 500);
  parser.feed("data: b\n\n", rec);
  EXPECT_EQ(rec.log, (Log{ev("a", "message", "42"), ev("b", "message", "42")}));
}

TEST(SseParser, Retry) {
  EXPECT_EQ(parse_all_ways("retry: 1500\n\n").retry_ms, 1500);
  EXPECT_EQ(parse_all_ways("retry:0\n").retry_ms, 0);
  EXPECT_EQ(parse_all_ways("retry: 1500\nretry: 15x\n").retry_ms, 1500);
  EXPECT_EQ(parse_all_ways("retry: 1500\nretry: -1\n").retry_ms, 1500);
  EXPECT_EQ(parse_all_ways("retry: 1500\nretry:  20\n").retry_ms, 1500);  // second space
  EXPECT_EQ(parse_all_ways("retry: 1500\nretry:\n").retry_ms, 1500);
  EXPECT_EQ(parse_all_ways("retry: 1.5\n").retry_ms, std::nullopt);
  EXPECT_EQ(parse_all_ways("retry: 99999999999999999999999\n").retry_ms, std::nullopt);
  EXPECT_EQ(parse_all_ways("retry: 9223372036854775807\n").retry_ms, INT64_MAX);
  // Applies at once, even without a blank line; not an event.
  EXPECT_EQ(events("retry: 10\n"), Log{});
}

TEST(SseParser, EventType) {
  EXPECT_EQ(events("event: lease\ndata: {}\n\ndata: {}\n\n"), (Log{ev("{}", "lease"), ev("{}")}));
  EXPECT_EQ(events("event: a\nevent: b\ndata: x\n\n"), Log{ev("x", "b")});
  EXPECT_EQ(events("event:\ndata: x\n\n"), Log{ev("x")});
  // A type without data is dropped with its (empty) event.
  EXPECT_EQ(events("event: lost\n\ndata: x\n\n"), Log{ev("x")});
}

TEST(SseParser, UnknownFieldAndNameCase) {
  EXPECT_EQ(events("foo: bar\nData: no\ndata: x\nDATA: no\n\n"), Log{ev("x")});
}

TEST(SseParser, FieldWithoutColon) {
  EXPECT_EQ(events("data\ndata\n\n"), Log{ev("\n")});
  EXPECT_EQ(events("event\ndata: x\n\n"), Log{ev("x")});
  EXPECT_EQ(events("id: 5\n\nid\ndata: x\n\n"), Log{ev("x")});
}

TEST(SseParser, BlankLinesWithoutData) {
  EXPECT_EQ(events("\n\n\r\n\r\r\n\n"), Log{});
  EXPECT_EQ(events("\n\ndata: x\n\n\n\n"), Log{ev("x")});
}

TEST(SseParser, IncompleteEventNotDispatched) {
  EXPECT_EQ(events("data: x\n\ndata: y\n"), Log{ev("x")});
  EXPECT_EQ(events("data: x\n\ndata: y"), Log{ev("x")});
  EXPECT_EQ(events("data: x"), Log{});
}

TEST(SseParser, ResetDropsPartialState) {
  SseParser parser{kDefaultMax};
  Recorder rec;
  parser.feed("event: t\ndata: a\ndata: par", rec);
  EXPECT_GT(parser.buffered_bytes(), 0u);
  parser.reset();
  EXPECT_EQ(parser.buffered_bytes(), 0u);
  parser.feed("tial\n\ndata: b\n\n", rec);
  EXPECT_EQ(rec.log, Log{ev("b")});
}

TEST(SseParser, ResetDropsPendingCr) {
  SseParser parser{kDefaultMax};
  Recorder rec;
  parser.feed("data: a\r", rec);
  parser.reset();
  // Had the CR survived, this LF would be eaten and nothing dispatched.
  parser.feed("\ndata: b\n\n", rec);
  EXPECT_EQ(rec.log, Log{ev("b")});
}

TEST(SseParser, ResetEndsOversizedSkip) {
  SseParser parser{8};
  Recorder rec;
  parser.feed("data: 0123456789\n", rec);
  parser.reset();
  parser.feed("data: ok\n\n", rec);
  EXPECT_EQ(rec.log, (Log{"oversized 10", ev("ok")}));
}

TEST(SseParser, DataAtLimitIsDelivered) {
  EXPECT_EQ(events("data: 01234567\n\n", 8), Log{ev("01234567")});
  EXPECT_EQ(events("data: 012\ndata: 3456\n\n", 8), Log{ev("012\n3456")});
}

TEST(SseParser, OversizedEventSkippedOnce) {
  // 9 bytes of data > 8: one report, the rest of the event ignored, the next
  // event delivered.
  EXPECT_EQ(events("data: 012345678\ndata: more\n\ndata: ok\n\n", 8), (Log{"oversized 9", ev("ok")}));
  // Reported size: the joined data had the crossing line been added.
  EXPECT_EQ(events("data: 0123\ndata: 4567\ndata: 8\ndata: 9\n\ndata: ok\n\n", 8),
            (Log{"oversized 9", ev("ok")}));
  // Empty data lines count their LF.
  EXPECT_EQ(events("data: 01234567\ndata\n\ndata: ok\n\n", 8), (Log{"oversized 9", ev("ok")}));
}

TEST(SseParser, OversizedEventKeepsIdAndRetry) {
  const Outcome out = parse_all_ways("data: 0123456789\nid: 9\nretry: 7\nevent: big\n\ndata: ok\n\n", 8);
  EXPECT_EQ(out.log, (Log{"oversized 10", ev("ok", "message", "9")}));
  EXPECT_EQ(out.retry_ms, 7);
}

TEST(SseParser, OverlongLineSkipsItsEvent) {
  // Line limit is 8 + 64 = 72; report = pending data + 73.
  const std::string long_data = "data: " + std::string(100, 'x') + "\n";
  EXPECT_EQ(events("data: ab\n" + long_data + "data: cd\n\ndata: ok\n\n", 8), (Log{"oversized 76", ev("ok")}));
  // Exactly at the line limit: an ordinary line.
  const std::string at_limit = ":" + std::string(71, 'c') + "\n";
  EXPECT_EQ(events(at_limit + "data: ok\n\n", 8), Log{ev("ok")});
}

// Only a data line that long takes its event with it. A comment, an id, an
// event type or an unknown field over the limit is ignored, and no lease is
// lost for it.
TEST(SseParser, OverlongNonDataLinesAreIgnored) {
  const std::string long_comment = ":" + std::string(100, 'c') + "\n";
  EXPECT_EQ(events(long_comment + "data: kept\n\ndata: ok\n\n", 8), (Log{ev("kept"), ev("ok")}));
  EXPECT_EQ(events("data: a\n" + long_comment + "data: b\n\n", 8), (Log{ev("a\nb")}));
  const std::string long_id = "id: " + std::string(80, '1') + "\r\n";
  const Outcome out = parse_all_ways("id: 1\n\n" + long_id + "data: ok\r\n\r\n", 8);
  EXPECT_EQ(out.log, (Log{ev("ok", "message", "1")})) << "the long id is not taken";
  for (const char* field : {"event: ", "retry: ", "x-unknown: "}) {
    EXPECT_EQ(events(field + std::string(100, '7') + "\ndata: ok\n\n", 8), (Log{ev("ok")})) << field;
  }
}

TEST(SseParser, GiantCommentDoesNotGrowMemory) {
  constexpr std::size_t kMax = 1000;
  SseParser parser{kMax};
  Recorder rec;
  parser.feed("data: pending\n: ", rec);
  const std::string chunk(4096, 'c');
  for (int i = 0; i < 2000; ++i) {  // 8 MB of comment
    parser.feed(chunk, rec);
    ASSERT_LE(parser.buffered_bytes(), 16u) << "comments are not buffered";
  }
  parser.feed("\n\ndata: after\n\n", rec);
  EXPECT_EQ(rec.log, (Log{ev("pending"), ev("after")})) << "a comment never costs an event";
  EXPECT_EQ(parser.buffered_bytes(), 0u);
}

TEST(SseParser, GiantDataDoesNotGrowMemory) {
  constexpr std::size_t kMax = 1000;
  SseParser parser{kMax};
  Recorder rec;
  const std::string chunk = "data: " + std::string(500, 'd') + "\n";
  for (int i = 0; i < 1000; ++i) {
    parser.feed(chunk, rec);
    ASSERT_LE(parser.buffered_bytes(), 2 * kMax + 65);
  }
  parser.feed("\ndata: after\n\n", rec);
  EXPECT_EQ(rec.log, (Log{"oversized 1001", ev("after")}));
}

TEST(SseParser, BoundHoldsForEveryChunking) {
  // parse_all_ways checks buffered_bytes() after every feed.
  std::string input = "data: " + std::string(30, 'a') + "\n:" + std::string(200, 'c') + "\r" +
                      "data: " + std::string(40, 'b') + "\r\n\r\n" + "data: ok\n\n";
  EXPECT_EQ(events(input, 32), (Log{"oversized 71", ev("ok")})) << "the comment is ignored; the two data lines are too much";
}

TEST(SseParser, Utf8PassesThroughByteExact) {
  const std::string text = "h\xC3\xA9llo \xE2\x82\xAC \xF0\x9F\x98\x80 \xE6\x97\xA5\xE6\x9C\xAC";
  EXPECT_EQ(events("event: \xC3\xA9v\ndata: " + text + "\n\n"), Log{ev(text, "\xC3\xA9v")});
  // Invalid UTF-8 is not this layer's business: passed on as is.
  EXPECT_EQ(events("data: \xFF\xC3\n\n"), Log{ev("\xFF\xC3")});
}

TEST(SseParser, NulInDataPassesThrough) {
  EXPECT_EQ(events("data: a\0b\n\n"s), Log{ev("a\0b"s)});
}

TEST(SseParser, TypicalLeaseStream) {
  std::string input;
  Log expected;
  for (int i = 0; i < 5; ++i) {
    const std::string json = R"({"type":"lease","leaseId":"l-)" + std::to_string(i) + R"(","payload":{"x":1}})";
    input += "event: lease\nid: " + std::to_string(i) + "\ndata: " + json + "\n\n: ping\n";
    expected.push_back(ev(json, "lease", std::to_string(i)));
  }
  EXPECT_EQ(events(input), expected);
}

TEST(SseParser, ViewsLiveOnlyDuringCallButParserReusable) {
  // A sink may read last_event_id() and buffered_bytes() from inside on_event.
  struct Peek : SseParser::Sink {
    SseParser* parser = nullptr;
    std::vector<std::string> ids;
    void on_event(const SseParser::Event& e) override {
      ids.push_back(std::string(parser->last_event_id()) + "/" + std::string(e.last_event_id));
    }
    void on_oversized_event(std::size_t) override {}
  } peek;
  SseParser parser{kDefaultMax};
  peek.parser = &parser;
  parser.feed("id: a\ndata: 1\n\nid: b\ndata: 2\n\n", peek);
  EXPECT_EQ(peek.ids, (std::vector<std::string>{"a/a", "b/b"}));
}

// find_byte reads aligned 16-byte blocks in wasm (this suite also runs
// compiled to wasm): every start offset within two blocks, every length up
// to three blocks, the byte at each place or nowhere, and the same byte just
// outside the range on both sides (in the blocks it reads, never found).
TEST(FindByte, EveryOffsetLengthAndPlace) {
  alignas(16) char buf[96];
  for (std::size_t start = 0; start < 32; ++start) {
    for (std::size_t len = 0; len <= 48; ++len) {
      for (std::size_t at = 0; at <= len; ++at) {  // at == len: nowhere
        std::fill(std::begin(buf), std::end(buf), 'x');
        std::fill(buf + start, buf + start + len, 'a');
        if (at < len) buf[start + at] = 'x';
        const char* got = find_byte(buf + start, buf + start + len, 'x');
        ASSERT_EQ(got - buf, static_cast<std::ptrdiff_t>(start + at)) << "start " << start << " len " << len;
      }
    }
  }
  EXPECT_EQ(find_byte(buf + 8, buf + 4, 'x'), buf + 4);  // an empty range (end before start): end
}

}  // namespace
}  // namespace neuron
