// neuron/schema.h: the JSON Schemas a capability checks its lease input and
// handler output against (rules 5 and 7).
//
//   std::string err;
//   auto schema = CompiledSchema::compile(R"({"type":"object"})", err);
//   if (!schema) fail(err);               // caught at start()
//   std::vector<ValidationError> errors;
//   if (!schema->validate(text, dom, errors)) nack_schema_mismatch(errors);
//
// Every lease with an inputSchema is checked, so the usual case (a valid
// value against a plain object schema) goes through SchemaFastPath in this
// module; anything it is not sure of, and every message, comes from the
// validator behind schema_backend.h.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <rapidjson/document.h>

#include "neuron/vocabulary.h"

namespace neuron {

// How deep a schema's JSON may nest. valijson builds a schema recursively,
// about 1 KiB of the schema module's stack a level: 240 levels overflowed its
// 256 KiB and corrupted its memory (measured), 200 did not.
inline constexpr int kMaxSchemaDepth = 128;

class CompiledSchema {
 public:
  // nullopt and `error` set when the text is not JSON, nests deeper than
  // kMaxSchemaDepth, is not a schema, or refers to a remote $ref.
  static std::optional<CompiledSchema> compile(std::string_view schema_json, std::string& error);

  // true when valid. `text` and `value` are the same JSON value, as text and
  // parsed. When invalid, appends one entry per violation.
  bool validate(std::string_view text, const rapidjson::Value& value,
                std::vector<ValidationError>& errors) const;

  // The fast path alone: true only when `value` is certainly valid (false:
  // ask validate_without_fast_path).
  bool certainly_valid(const rapidjson::Value& value) const;

  // The same as validate(text, value), for a value that has no text at hand
  // (tests, fuzzers): it is serialized when the fast path is not sure.
  bool validate(const rapidjson::Value& value, std::vector<ValidationError>& errors) const;

  // The validator alone, without the fast path: for the differential fuzzer
  // and tests.
  bool validate_without_fast_path(std::string_view text, std::vector<ValidationError>& errors) const;
  bool validate_without_fast_path(const rapidjson::Value& value, std::vector<ValidationError>& errors) const;
  bool has_fast_path() const;

  CompiledSchema(CompiledSchema&&) noexcept;
  CompiledSchema& operator=(CompiledSchema&&) noexcept;
  ~CompiledSchema();

 private:
  struct Impl;
  explicit CompiledSchema(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace neuron
