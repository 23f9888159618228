// neuron/capability.h: capability types (PROTOCOL.md rule 1) and JSON Schema
// checks for lease input / handler output (rules 5 and 7), with valijson.
//
//   std::string err;
//   auto schema = CompiledSchema::compile(R"({"type":"object"})", err);
//   if (!schema) fail(err);              // a bad schema is caught at handle()
//   std::vector<ValidationError> errors;
//   if (!schema->validate(doc, errors)) nack_schema_mismatch(errors);
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <rapidjson/document.h>

#include "neuron/engine.h"  // ValidationError

namespace neuron {

// Rule 1: `{owner}/{package}[/{name}][.{variant}]`, owner `[a-z0-9][a-z0-9-]*`,
// then one to three segments of `[A-Za-z0-9][A-Za-z0-9:_-]*`, then an optional
// `.variant` of `[A-Za-z0-9_-]+`, 200 characters at most. On failure `why`
// says what is wrong, e.g. "owner must start with [a-z0-9]".
bool is_valid_capability_type(std::string_view type, std::string* why = nullptr);

// A JSON Schema compiled once (draft 4/6/7 keywords valijson supports).
// Immutable after compile; validate() is const and may be called concurrently.
class CompiledSchema {
 public:
  // nullopt and `error` set ("inputSchema: <what>") when the text is not JSON,
  // not a schema, or refers to a remote $ref.
  static std::optional<CompiledSchema> compile(std::string_view schema_json,
                                               std::string& error);

  // true when valid. When invalid, appends one entry per violation with a JSON
  // Pointer `path` ("/items/0/name", "" for the root). The valid case takes a
  // fast path that collects nothing.
  bool validate(const rapidjson::Value& value,
                std::vector<ValidationError>& errors) const;

  // validate() without the SchemaFastPath shortcut: valijson alone. For the
  // differential fuzzer and tests; the engine uses validate().
  bool validate_without_fast_path(const rapidjson::Value& value,
                                  std::vector<ValidationError>& errors) const;
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
