// neuron/schema_fast_path.h: a conservative fast check for the common subset
// of JSON Schema, in front of valijson.
//
// Every lease with an inputSchema is validated, so the usual case (a valid
// input against a plain object schema) must be cheap. SchemaFastPath compiles
// only schemas made of the keywords below, and answers one question: is this
// value *certainly* valid? "No" means "not sure": the caller then asks
// valijson, which stays the authority for every failure and every message.
// So a mistake here could only accept a value valijson would reject; the
// differential fuzzer (tests/fuzz/fuzz_schema.cpp) checks that never happens.
//
// Subset: type, properties, required, additionalProperties, items (one
// schema), enum/const (strings, booleans, null), minimum, maximum,
// exclusiveMinimum/exclusiveMaximum (numbers), minLength/maxLength,
// minItems/maxItems, minProperties/maxProperties, boolean schemas, and the
// annotations title, description, default, examples, $comment, $schema.
// Values it is never sure of: objects of more than 32 members (duplicate
// names are not checked for cheaply there), strings under a length bound
// that are not ASCII, numbers past 2^53 under a bound.
#pragma once

#include <memory>
#include <optional>

#include <rapidjson/document.h>

namespace neuron {

class SchemaFastPath {
 public:
  // nullopt when the schema uses anything outside the subset.
  static std::optional<SchemaFastPath> compile(const rapidjson::Value& schema);

  // true only when the value is certainly valid against the schema.
  bool certainly_valid(const rapidjson::Value& value) const;

  SchemaFastPath(SchemaFastPath&&) noexcept;
  SchemaFastPath& operator=(SchemaFastPath&&) noexcept;
  ~SchemaFastPath();

 private:
  struct Impl;
  explicit SchemaFastPath(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace neuron
