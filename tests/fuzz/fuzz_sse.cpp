// fuzz_sse: SseParser must give the same events whatever the chunking, and
// stay inside its documented memory bound.
//
// Input layout: byte 0 picks max_data_bytes (0..31, small so the limits are
// hit), bytes 1-2 seed the chunk sizes; the rest is the stream.
#include "neuron/sse_parser.h"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

namespace {

struct Recorder : neuron::SseParser::Sink {
  std::size_t max_data_bytes = 0;
  std::string log;  // one record per call, length-prefixed so it is unambiguous

  void on_event(const neuron::SseParser::Event& e) override {
    if (e.data.size() > max_data_bytes) fail("event data over max_data_bytes");
    if (e.type.find_first_of("\r\n") != std::string_view::npos) fail("line end in type");
    if (e.last_event_id.find('\0') != std::string_view::npos) fail("NUL in id");
    record('E', e.type);
    record('D', e.data);
    record('I', e.last_event_id);
  }
  void on_oversized_event(std::size_t bytes) override {
    if (bytes <= max_data_bytes) fail("oversized event within the limit");
    record('O', std::to_string(bytes));
  }

  void record(char tag, std::string_view s) {
    log += tag;
    log += std::to_string(s.size());
    log += ':';
    log += s;
  }
  [[noreturn]] static void fail(const char* what) {
    std::fprintf(stderr, "fuzz_sse: %s\n", what);
    std::abort();
  }
};

struct Run {
  std::string log;
  std::string last_event_id;
  std::optional<std::int64_t> retry_ms;
  bool operator==(const Run&) const = default;
};

// chunk_of(i) gives the size of the i-th feed (0 means an empty feed).
template <typename ChunkOf>
Run parse(std::string_view input, std::size_t max, ChunkOf chunk_of) {
  neuron::SseParser parser{max};
  Recorder rec;
  rec.max_data_bytes = max;
  const std::size_t bound = 2 * max + 65;
  std::size_t pos = 0;
  for (std::size_t i = 0; pos < input.size(); ++i) {
    const std::size_t n = std::min(chunk_of(i), input.size() - pos);
    parser.feed(input.substr(pos, n), rec);
    pos += n;
    if (parser.buffered_bytes() > bound) Recorder::fail("buffered_bytes over 2 * max + 65");
  }
  return Run{rec.log, std::string(parser.last_event_id()), parser.retry_ms()};
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 3) return 0;
  const std::size_t max = data[0] & 31u;
  std::uint32_t seed = (static_cast<std::uint32_t>(data[1]) << 8) | data[2];
  const std::string_view input(reinterpret_cast<const char*>(data + 3), size - 3);

  const Run whole = parse(input, max, [&](std::size_t) { return input.size(); });
  const Run bytes = parse(input, max, [](std::size_t) { return std::size_t{1}; });
  // Mostly short chunks (so CR/LF and BOM splits are common), sometimes empty.
  const Run random = parse(input, max, [&](std::size_t) {
    seed = seed * 1103515245u + 12345u;
    const std::uint32_t r = seed >> 16;
    return static_cast<std::size_t>((r & 3u) == 0 ? 0 : r % 13u + 1);
  });
  // Two feeds split at an input-chosen offset.
  const std::size_t cut = input.empty() ? 0 : (static_cast<std::size_t>(data[1]) * 256 + data[2]) % input.size();
  const Run two = parse(input, max, [&](std::size_t i) { return i == 0 ? cut : input.size(); });

  if (!(bytes == whole)) Recorder::fail("byte-at-a-time differs from whole");
  if (!(random == whole)) Recorder::fail("random chunks differ from whole");
  if (!(two == whole)) Recorder::fail("two-way split differs from whole");
  return 0;
}
