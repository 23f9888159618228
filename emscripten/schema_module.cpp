// emscripten/schema_module.cpp: neuron-schema.wasm, the JSON Schema validator
// (valijson, neuron/schema_valijson.cpp) as a module of its own. The package
// loads it only when a capability brings a raw JSON Schema (web/src/schema.js),
// so valijson, its regex engine and the locale and iostream code they pull in
// stay out of the default download. A standalone wasm: no JS glue, a few
// plain exports, every import a stub (web/src/schema.js).
//
//   schema_buffer(n)            a buffer of at least n bytes in this module,
//                               where the caller puts a JSON text
//   schema_compile(n)           compiles the n bytes there: a handle (> 0), or
//                               0 with the reason in schema_text()
//   schema_validate(h, n)       checks the n bytes there against schema h:
//                               -1 when valid, else the byte length of the
//                               errors in schema_text() ("path US message US
//                               path US message ...")
//   schema_text()               the text of the last compile / validate
//   schema_release(h)
#include <emscripten/emscripten.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "neuron/schema_backend.h"

namespace {

std::vector<char> buffer;
std::string text;

std::string_view input(std::size_t n) { return {buffer.data(), std::min(n, buffer.size())}; }

}  // namespace

extern "C" {

EMSCRIPTEN_KEEPALIVE char* schema_buffer(std::size_t n) {
  // A huge value once must not pin its size.
  if (buffer.capacity() > (std::size_t{4} << 20) && n < buffer.capacity() / 4) std::vector<char>().swap(buffer);
  if (buffer.size() < n) buffer.resize(n);
  return buffer.data();
}

EMSCRIPTEN_KEEPALIVE std::uint32_t schema_compile(std::size_t n) {
  text.clear();
  return neuron::schema_backend::compile(input(n), text);
}

EMSCRIPTEN_KEEPALIVE std::int32_t schema_validate(std::uint32_t schema, std::size_t n) {
  std::vector<neuron::ValidationError> errors;
  if (neuron::schema_backend::validate(schema, input(n), errors)) return -1;
  text.clear();
  auto put = [](std::string_view part) {
    for (char c : part) text += c == '\x1f' ? '?' : c;
  };
  for (const neuron::ValidationError& e : errors) {
    if (!text.empty()) text += '\x1f';
    put(e.path);
    text += '\x1f';
    put(e.message);
  }
  return static_cast<std::int32_t>(text.size());
}

EMSCRIPTEN_KEEPALIVE const char* schema_text() { return text.c_str(); }

EMSCRIPTEN_KEEPALIVE void schema_release(std::uint32_t schema) { neuron::schema_backend::release(schema); }

}  // extern "C"
