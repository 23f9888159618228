// neuron/schema_backend.h: the JSON Schema validator (valijson) behind three
// calls. Natively they are schema_valijson.cpp; in the wasm package they
// cross into a module of their own (neuron-schema.wasm, loaded only when a
// capability brings a raw JSON Schema), which holds valijson, its regex
// engine and everything they pull in, out of the default download.
//
//   std::string error;
//   std::uint32_t id = schema_backend::compile(R"({"type":"object"})", error);
//   if (!id) fail(error);
//   std::vector<ValidationError> errors;
//   if (!schema_backend::validate(id, R"([1])", errors)) report(errors);
//   schema_backend::release(id);
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "neuron/vocabulary.h"

namespace neuron::schema_backend {

// A handle (> 0) to the compiled schema; 0 with `error` set ("schema is not
// a valid JSON Schema: ...") when the text is not a schema this SDK accepts
// (not JSON, not an object or boolean, a bad `pattern`, a remote or cyclic
// `$ref`).
std::uint32_t compile(std::string_view schema_json, std::string& error);

// true when `value_json` (well-formed JSON) is valid. When it is not, appends
// one entry per violation with a JSON Pointer path ("" is the root).
bool validate(std::uint32_t schema, std::string_view value_json, std::vector<ValidationError>& errors);

void release(std::uint32_t schema);

}  // namespace neuron::schema_backend
