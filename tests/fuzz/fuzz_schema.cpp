// Differential fuzzer: SchemaFastPath may only ever say "certainly valid" for
// a value that valijson also accepts (it is a shortcut, never the authority).
//
// Input: the first byte picks a schema from a fixed set covering every
// keyword of the subset; the rest is a JSON value (the fuzzer mutates it).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <rapidjson/document.h>

#include "neuron/capability_type.h"
#include "neuron/frames.h"
#include "neuron/schema.h"
#include "neuron/schema_fast_path.h"

namespace {

const char* const kSchemas[] = {
    R"({"type":"object","required":["code","language"],"properties":{"code":{"type":"string","minLength":1},
        "language":{"enum":["python","node"]},"timeoutMs":{"type":"integer","minimum":1,"maximum":60000},
        "args":{"type":"array","items":{"type":"string"},"maxItems":4},"env":{"type":"object",
        "additionalProperties":{"type":"string"}}},"additionalProperties":false})",
    R"({"type":["number","null"],"exclusiveMinimum":-1.5,"exclusiveMaximum":1e3})",
    R"({"type":"string","maxLength":3})",
    R"({"type":"array","minItems":1,"items":{"type":"object","properties":{"a":{"const":true}},"minProperties":1,"maxProperties":2}})",
    R"({"properties":{"x":false,"y":true},"required":["y"]})",
    R"({"type":"integer"})",
    R"({"enum":["a",null,false]})",
    R"(true)",
    R"({"type":"object","properties":{"n":{"type":"number","minimum":0}},"additionalProperties":{"type":"boolean"}})",
};
constexpr std::size_t kSchemaCount = sizeof kSchemas / sizeof kSchemas[0];

struct Compiled {
  neuron::CompiledSchema full;
  neuron::SchemaFastPath fast;
};

std::vector<Compiled>& schemas() {
  static std::vector<Compiled> all = [] {
    std::vector<Compiled> out;
    for (const char* text : kSchemas) {
      std::string error;
      auto full = neuron::CompiledSchema::compile(text, error);
      rapidjson::Document doc;
      doc.Parse(text);
      auto fast = neuron::SchemaFastPath::compile(doc);
      if (!full || !fast) {
        std::fprintf(stderr, "fuzz_schema: schema outside the subset: %s (%s)\n", text, error.c_str());
        std::abort();
      }
      out.push_back({std::move(*full), std::move(*fast)});
    }
    return out;
  }();
  return all;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const Compiled& schema = schemas()[data[0] % kSchemaCount];
  // Parsed as the core parses (RapidJSON's Parse(str, length) would skip
  // a stray BOM byte the core refuses).
  const std::string_view json(reinterpret_cast<const char*>(data + 1), size - 1);
  rapidjson::Document value;
  std::string error;
  if (!neuron::parse_json(value, json, error)) return 0;
  if (schema.fast.certainly_valid(value)) {
    // valijson alone, on the text as the core hands it over (lone surrogate
    // escapes repaired, as in the parse).
    std::vector<neuron::ValidationError> errors;
    std::string repaired(json);
    neuron::replace_lone_surrogate_escapes(repaired.data(), repaired.size());
    if (!schema.full.validate_without_fast_path(repaired, errors)) {
      std::fprintf(stderr, "fast path accepted a value valijson rejects: %s\n", errors.empty() ? "" : errors[0].message.c_str());
      std::abort();
    }
  }
  return 0;
}
