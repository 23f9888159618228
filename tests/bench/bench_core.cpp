// Benchmarks of the core's hot paths, with the targets of issue 2 reported as
// ratios of two benchmarks measured in the same run (so they hold on a noisy
// machine), plus heap measurements with a counting allocator.
//
//   build/release/neuron_bench                      full run (scripts/bench)
//   build/release/neuron_bench --benchmark_filter=Sse
#include <benchmark/benchmark.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <new>
#include <string>

#include <unistd.h>

#include <rapidjson/document.h>

#include "neuron/engine.h"
#include "neuron/frames.h"
#include "neuron/sse_parser.h"

// ---- a counting allocator: live heap bytes of this process ----
namespace {
std::atomic<std::int64_t> g_live_bytes{0};
}

void* operator new(std::size_t n) {
  void* p = std::malloc(n + 16);
  if (!p) throw std::bad_alloc();
  *static_cast<std::size_t*>(p) = n;
  g_live_bytes.fetch_add(static_cast<std::int64_t>(n), std::memory_order_relaxed);
  return static_cast<char*>(p) + 16;
}
void operator delete(void* p) noexcept {
  if (!p) return;
  char* base = static_cast<char*>(p) - 16;
  g_live_bytes.fetch_sub(static_cast<std::int64_t>(*reinterpret_cast<std::size_t*>(base)), std::memory_order_relaxed);
  std::free(base);
}
void operator delete(void* p, std::size_t) noexcept { operator delete(p); }
void* operator new[](std::size_t n) { return operator new(n); }
void operator delete[](void* p) noexcept { operator delete(p); }
void operator delete[](void* p, std::size_t) noexcept { operator delete(p); }

namespace neuron {
namespace {

constexpr const char* kInputSchema = R"({
  "type": "object",
  "required": ["code", "language", "timeoutMs"],
  "properties": {
    "code": {"type": "string"},
    "language": {"type": "string", "enum": ["python", "node"]},
    "timeoutMs": {"type": "integer", "minimum": 1},
    "args": {"type": "array"},
    "env": {"type": "object"}
  }
})";

// A ~300-byte lease frame whose lease id is 12 digits at kIdOffset, so a
// benchmark can make every lease unique by rewriting them in place.
const std::string kLeaseFrame =
    R"({"type":"lease","leaseId":"000000000000","expiresAt":"2024-01-01T12:00:10.000Z",)"
    R"("task":{"taskId":"task-abc-0001","type":"core/script.python","attempt":1,)"
    R"J("createdAt":"2024-01-01T12:00:00.000Z","input":{"code":"print('hello world')",)J"
    R"("language":"python","timeoutMs":30000,"args":["--verbose","-n","3"],"env":{"LANG":"C.UTF-8"}}}})";
const std::size_t kIdOffset = kLeaseFrame.find("000000000000");
const std::string kLeaseEvent = "event: lease\ndata: " + kLeaseFrame + "\n\n";
const std::size_t kEventIdOffset = kLeaseEvent.find("000000000000");

void write_id(std::string& s, std::size_t offset, std::uint64_t id) {
  for (int i = 11; i >= 0; --i) {
    s[offset + static_cast<std::size_t>(i)] = static_cast<char>('0' + id % 10);
    id /= 10;
  }
}

std::string lease_stream(std::size_t bytes) {
  std::string s;
  for (std::uint64_t i = 0; s.size() < bytes; ++i) {
    std::string e = kLeaseEvent;
    write_id(e, kEventIdOffset, i);
    s += e;
  }
  return s;
}

// ---- SSE: parser vs a bare memchr scan over the same bytes ----

void BM_MemchrNewlines(benchmark::State& state) {
  const std::string stream = lease_stream(4 << 20);
  for (auto _ : state) {
    std::size_t lines = 0;
    const char* p = stream.data();
    const char* end = p + stream.size();
    while ((p = static_cast<const char*>(std::memchr(p, '\n', static_cast<std::size_t>(end - p))))) {
      ++lines;
      ++p;
    }
    benchmark::DoNotOptimize(lines);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * stream.size()));
}
BENCHMARK(BM_MemchrNewlines);

struct CountingSink : SseParser::Sink {
  std::size_t events = 0;
  std::size_t bytes = 0;
  void on_event(const SseParser::Event& e) override {
    ++events;
    bytes += e.data.size();
  }
  void on_oversized_event(std::size_t) override {}
};

void BM_SseParse(benchmark::State& state) {
  const std::string stream = lease_stream(4 << 20);
  const auto chunk = static_cast<std::size_t>(state.range(0));
  SseParser parser(16u << 20);
  CountingSink sink;
  for (auto _ : state) {
    parser.reset();
    for (std::size_t at = 0; at < stream.size(); at += chunk) {
      parser.feed(std::string_view(stream).substr(at, chunk), sink);
    }
  }
  benchmark::DoNotOptimize(sink.bytes);
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * stream.size()));
}
BENCHMARK(BM_SseParse)->Arg(16 << 10)->Arg(1 << 20);

// ---- frame decoding ----

void BM_RapidJsonParseLease(benchmark::State& state) {
  for (auto _ : state) {
    rapidjson::Document doc;
    doc.Parse(kLeaseFrame.data(), kLeaseFrame.size());
    benchmark::DoNotOptimize(doc.IsObject());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_RapidJsonParseLease);

void BM_DecodeLeaseFrame(benchmark::State& state) {
  FrameDecoder decoder;
  std::string error;
  for (auto _ : state) {
    auto frame = decoder.decode(kLeaseFrame, error);
    benchmark::DoNotOptimize(frame);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_DecodeLeaseFrame);

// ---- full lease cycle ----

// An engine registered with one capability, driven like a host would: SSE
// bytes in, StartHandler out, completion in, ack Post out, 200 in.
class Cycler {
 public:
  explicit Cycler(std::uint32_t concurrency, bool schema = true) : engine_(config()) {
    CapabilitySpec spec;
    spec.type = "core/script.python";
    spec.concurrency = concurrency;
    if (schema) spec.input_schema_json = kInputSchema;
    if (!engine_.handle(spec).ok() || !engine_.start(now_).ok()) std::abort();
    std::uint64_t stream = 0;
    while (auto a = engine_.poll_action()) {
      if (auto* open = std::get_if<OpenStream>(&*a)) stream = open->stream_id;
    }
    engine_.handle_stream_opened(now_, stream, 200, true);
    settle();
    const std::string registered =
        "data: {\"type\":\"registered\",\"sessionId\":\"s\",\"capabilities\":[]}\n\n";
    engine_.handle_stream_bytes(now_, stream, registered);
    settle();
    stream_ = stream;
    if (!engine_.is_registered()) std::abort();
  }

  // One lease frame in; everything the engine asks for is answered at once.
  void deliver() {
    write_id(event_, kEventIdOffset, next_id_++);
    engine_.handle_stream_bytes(now_, stream_, event_);
    settle();
  }

  // Completes the oldest running handler.
  void complete_one() {
    if (running_.empty()) std::abort();
    const std::uint64_t h = running_.front();
    running_.pop_front();
    HandlerOutcome outcome;
    outcome.output_json = R"({"stdout":"hello world\n","exitCode":0})";
    engine_.handle_handler_done(now_, h, std::move(outcome));
    settle();
  }

  std::size_t acks() const { return acks_; }
  Engine& engine() { return engine_; }

 private:
  static Config config() {
    Config c;
    c.neuron_id = "bench-1";
    c.reconnect_jitter = 0;
    return c;
  }
  void settle() {
    while (auto a = engine_.poll_action()) {
      if (auto* start = std::get_if<StartHandler>(&*a)) {
        running_.push_back(start->handler_id);
      } else if (auto* post = std::get_if<Post>(&*a)) {
        if (post->path == PostPath::kAck) ++acks_;
        pending_.push_back(post->request_id);
      }
    }
    while (!pending_.empty()) {
      const std::uint64_t id = pending_.front();
      pending_.pop_front();
      engine_.handle_post_result(now_, id, 200, "{}");
    }
    while (engine_.poll_event()) {
    }
  }

  Engine engine_;
  TimeMs now_ = 1'700'000'000'000;
  std::uint64_t stream_ = 0;
  std::uint64_t next_id_ = 1;
  std::string event_ = kLeaseEvent;
  std::deque<std::uint64_t> running_;
  std::deque<std::uint64_t> pending_;
  std::size_t acks_ = 0;
};

void BM_LeaseCycle(benchmark::State& state) {
  Cycler cycler(1, state.range(0) != 0);
  for (auto _ : state) {
    cycler.deliver();
    cycler.complete_one();
  }
  if (cycler.acks() != static_cast<std::size_t>(state.iterations())) state.SkipWithError("ack missing");
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_LeaseCycle)->ArgName("schema")->Arg(1)->Arg(0);

void BM_LeaseCycle1000Queued(benchmark::State& state) {
  Cycler cycler(1);
  for (int i = 0; i < 1001; ++i) cycler.deliver();  // 1 running + 1000 queued
  for (auto _ : state) {
    cycler.deliver();
    cycler.complete_one();
  }
  if (cycler.engine().capability_stats(0).queued != 1000) state.SkipWithError("queue depth drifted");
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_LeaseCycle1000Queued);

// ---- ratios against the targets ----

class RatioReporter : public benchmark::ConsoleReporter {
 public:
  RatioReporter() : ConsoleReporter(isatty(STDOUT_FILENO) ? OO_ColorTabular : OO_Tabular) {}
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const Run& run : runs) {
      if (run.run_type == Run::RT_Iteration && !run.error_occurred) {
        ns_per_iter[run.benchmark_name()] = run.GetAdjustedRealTime();  // in the run's time unit
        unit[run.benchmark_name()] = run.time_unit;
      }
    }
  }
  double ns(const std::string& name) const {
    auto it = ns_per_iter.find(name);
    if (it == ns_per_iter.end()) return 0;
    return it->second / benchmark::GetTimeUnitMultiplier(unit.at(name)) * 1e9;
  }
  std::map<std::string, double> ns_per_iter;
  std::map<std::string, benchmark::TimeUnit> unit;
};

void report_ratios(const RatioReporter& r) {
  std::printf("\nTargets (ratios within this run):\n");
  const double memchr = r.ns("BM_MemchrNewlines");
  const double sse = r.ns("BM_SseParse/16384");
  if (memchr > 0 && sse > 0) {
    const double ratio = memchr / sse;
    std::printf("  SSE parse throughput / memchr scan     = %5.2f   (target >= 0.30) %s\n", ratio,
                ratio >= 0.30 ? "met" : "MISSED");
  }
  const double parse = r.ns("BM_RapidJsonParseLease");
  const double cycle = r.ns("BM_LeaseCycle/schema:1");
  if (parse > 0 && cycle > 0) {
    const double ratio = cycle / parse;
    std::printf("  lease cycle / RapidJSON parse of frame = %5.2f x (target <= 4)   %s\n", ratio,
                ratio <= 4.0 ? "met" : "MISSED");
    const double per_second = 1e9 / cycle;
    std::printf("  lease cycles per second, one core      = %.0f (target >= 300000) %s\n", per_second,
                per_second >= 300000 ? "met" : "MISSED");
  }
  const double queued = r.ns("BM_LeaseCycle1000Queued");
  if (queued > 0 && cycle > 0) {
    std::printf("  lease cycle with 1000 queued / empty    = %5.2f x\n", queued / cycle);
  }
}

// ---- heap ----

void report_memory(bool quick) {
  std::printf("\nHeap (counting allocator):\n");
  {
    Cycler cycler(1);
    cycler.deliver();  // one running; the rest queue behind it
    const int n = 10'000;
    const std::int64_t before = g_live_bytes.load();
    for (int i = 0; i < n; ++i) cycler.deliver();
    const std::int64_t per_lease = (g_live_bytes.load() - before) / n;
    // The task JSON kept per queued lease holds the input; measure what the
    // engine adds on top of the frame's input bytes.
    const std::size_t input_start = kLeaseFrame.find("\"input\":") + 8;
    const std::size_t input_bytes = kLeaseFrame.size() - 2 - input_start;
    std::printf("  queued lease: %lld B held, input %zu B -> overhead %lld B (target <= 512) %s\n",
                static_cast<long long>(per_lease), input_bytes,
                static_cast<long long>(per_lease - static_cast<std::int64_t>(input_bytes)),
                per_lease - static_cast<std::int64_t>(input_bytes) <= 512 ? "met" : "MISSED");
  }
  {
    const std::int64_t start = g_live_bytes.load();
    Cycler cycler(1);
    const std::int64_t registered = g_live_bytes.load();
    const int warm = 20'000;  // fills the rule-2 memory (10 000 recent lease ids)
    const int total = quick ? 50'000 : 1'000'000;
    for (int i = 0; i < warm; ++i) {
      cycler.deliver();
      cycler.complete_one();
    }
    const std::int64_t warmed = g_live_bytes.load();
    for (int i = warm; i < total; ++i) {
      cycler.deliver();
      cycler.complete_one();
    }
    const std::int64_t after = g_live_bytes.load();
    std::printf("  %d lease cycles: heap %lld B after registering, %lld B after %d (recent-id memory full),"
                " %lld B at the end: drift %lld B (target 0) %s\n",
                total, static_cast<long long>(registered - start), static_cast<long long>(warmed - start), warm,
                static_cast<long long>(after - start), static_cast<long long>(after - warmed),
                after == warmed ? "met" : "MISSED");
  }
}

}  // namespace
}  // namespace neuron

int main(int argc, char** argv) {
  bool quick = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strstr(argv[i], "--benchmark_min_time=0.0")) quick = true;
  }
  benchmark::Initialize(&argc, argv);
  neuron::RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  neuron::report_ratios(reporter);
  neuron::report_memory(quick);
  benchmark::Shutdown();
  return 0;
}
