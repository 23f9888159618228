// emscripten/schema_bridge.cpp: schema_backend.h in the default module. The
// validator lives in neuron-schema.wasm (schema_module.cpp); these calls
// cross to it through library_neuron.js, copying the JSON texts between the
// two memories. Only a capability with a raw JSON Schema ever calls them,
// and only when its fast path is not sure (schema.h).
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "neuron/schema_backend.h"

// library_neuron.js
extern "C" {
std::uint32_t neuron_schema_compile(const char* json, std::size_t length);
std::int32_t neuron_schema_validate(std::uint32_t schema, const char* json, std::size_t length);
std::size_t neuron_schema_text_length();
void neuron_schema_text(char* out);
void neuron_schema_release(std::uint32_t schema);
}

namespace neuron::schema_backend {

namespace {

std::string pending_text() {
  std::string text(neuron_schema_text_length(), '\0');
  neuron_schema_text(text.data());
  return text;
}

}  // namespace

std::uint32_t compile(std::string_view schema_json, std::string& error) {
  const std::uint32_t schema = neuron_schema_compile(schema_json.data(), schema_json.size());
  if (!schema) error = pending_text();
  return schema;
}

bool validate(std::uint32_t schema, std::string_view value_json, std::vector<ValidationError>& errors) {
  if (neuron_schema_validate(schema, value_json.data(), value_json.size()) < 0) return true;
  const std::string text = pending_text();
  // "path US message US path US message ..."
  std::size_t at = 0;
  while (at <= text.size()) {
    const std::size_t a = text.find('\x1f', at);
    if (a == std::string::npos) break;
    std::size_t b = text.find('\x1f', a + 1);
    if (b == std::string::npos) b = text.size();
    errors.push_back({text.substr(at, a - at), text.substr(a + 1, b - a - 1)});
    at = b + 1;
  }
  if (errors.empty()) errors.push_back({"", "the value does not match the schema"});
  return false;
}

void release(std::uint32_t schema) { neuron_schema_release(schema); }

}  // namespace neuron::schema_backend
