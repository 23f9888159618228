#include "neuron/schema.h"

#include <string>

#include "neuron/frames.h"
#include "neuron/schema_backend.h"
#include "neuron/schema_fast_path.h"

namespace neuron {

struct CompiledSchema::Impl {
  std::uint32_t backend = 0;
  std::optional<SchemaFastPath> fast;  // when the schema fits the common subset
  ~Impl() {
    if (backend) schema_backend::release(backend);
  }
};

CompiledSchema::CompiledSchema(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
CompiledSchema::CompiledSchema(CompiledSchema&&) noexcept = default;
CompiledSchema& CompiledSchema::operator=(CompiledSchema&&) noexcept = default;
CompiledSchema::~CompiledSchema() = default;

std::optional<CompiledSchema> CompiledSchema::compile(std::string_view schema_json, std::string& error) {
  rapidjson::Document doc;
  if (!parse_json(doc, schema_json, error)) {
    error = "schema is not valid JSON: " + error;
    return std::nullopt;
  }
  if (!nests_within_limit(schema_json, kMaxSchemaDepth)) {
    error = "schema nests deeper than " + std::to_string(kMaxSchemaDepth) + " levels";
    return std::nullopt;
  }
  auto impl = std::make_unique<Impl>();
  // The validator reads the schema as the parse above did (and as inputs and
  // outputs reach it): lone surrogate escapes repaired (frames.h). Else a
  // key spelled "\udc00" in the schema would never match the same key in a
  // value, and the fast path and valijson would disagree.
  std::string repaired(schema_json);
  replace_lone_surrogate_escapes(repaired.data(), repaired.size());
  impl->backend = schema_backend::compile(repaired, error);
  if (!impl->backend) return std::nullopt;
  impl->fast = SchemaFastPath::compile(doc);
  return CompiledSchema(std::move(impl));
}

bool CompiledSchema::has_fast_path() const { return impl_ && impl_->fast; }

bool CompiledSchema::validate(std::string_view text, const rapidjson::Value& value,
                              std::vector<ValidationError>& errors) const {
  if (impl_ && impl_->fast && impl_->fast->certainly_valid(value)) return true;
  return validate_without_fast_path(text, errors);
}

bool CompiledSchema::certainly_valid(const rapidjson::Value& value) const {
  return impl_ && impl_->fast && impl_->fast->certainly_valid(value);
}

bool CompiledSchema::validate_without_fast_path(std::string_view text, std::vector<ValidationError>& errors) const {
  if (!impl_) {
    errors.push_back({"", "schema was moved from"});
    return false;
  }
  return schema_backend::validate(impl_->backend, text, errors);
}

bool CompiledSchema::validate(const rapidjson::Value& value, std::vector<ValidationError>& errors) const {
  if (impl_ && impl_->fast && impl_->fast->certainly_valid(value)) return true;
  return validate_without_fast_path(value, errors);
}

bool CompiledSchema::validate_without_fast_path(const rapidjson::Value& value,
                                                std::vector<ValidationError>& errors) const {
  std::string text;
  write_json(value, text);
  return validate_without_fast_path(text, errors);
}

}  // namespace neuron
