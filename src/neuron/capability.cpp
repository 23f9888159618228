#include "neuron/capability.h"

#include "neuron/schema_fast_path.h"

// valijson aborts instead of throwing unless this is set, and a bad schema
// must never take the process down. Defined here too (not only by the build)
// because this is the only file that includes valijson.
#ifndef VALIJSON_USE_EXCEPTIONS
#define VALIJSON_USE_EXCEPTIONS 1
#endif

// valijson/exceptions.hpp includes <stdexcept> inside `namespace valijson`;
// including it first keeps that a no-op.
#include <stdexcept>

#include <algorithm>
#include <cstdio>
#include <exception>
#include <regex>
#include <utility>

#include <rapidjson/error/en.h>
#include <rapidjson/pointer.h>

// The adapter wants to redefine RAPIDJSON_ASSERT to throw, and warns because
// capability.h already included RapidJSON. Keeping RapidJSON's own assert is
// what we want: one definition across all translation units (ODR), and the
// adapter checks types before it reads values.
#if defined(__clang__)
#pragma clang diagnostic push
#pragma clang diagnostic ignored "-W#warnings"
#elif defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wcpp"
#endif
#include <valijson/adapters/rapidjson_adapter.hpp>
#if defined(__clang__)
#pragma clang diagnostic pop
#elif defined(__GNUC__)
#pragma GCC diagnostic pop
#endif
#include <valijson/schema.hpp>
#include <valijson/schema_parser.hpp>
#include <valijson/validation_results.hpp>
#include <valijson/validator.hpp>

namespace neuron {

// ------------------------------------------------------- capability types --

namespace {

constexpr std::size_t kMaxCapabilityTypeLength = 200;
constexpr int kMaxSegmentsAfterOwner = 3;
constexpr std::string_view kExpectedForm =
    " (expected {owner}/{package}[/{name}][.{variant}], e.g. \"core/http\" or "
    "\"desktop/mcp/drive.read\")";

bool is_lower_alnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
bool is_alnum(char c) { return is_lower_alnum(c) || (c >= 'A' && c <= 'Z'); }
bool is_owner_char(char c) { return is_lower_alnum(c) || c == '-'; }
bool is_segment_char(char c) { return is_alnum(c) || c == ':' || c == '_' || c == '-'; }
bool is_variant_char(char c) { return is_alnum(c) || c == '_' || c == '-'; }

// Quotes printable ASCII; anything else (control bytes, UTF-8) as hex so the
// message stays readable ASCII.
std::string describe_char(char c) {
  auto u = static_cast<unsigned char>(c);
  if (u >= 0x20 && u < 0x7f) return std::string("'") + c + "'";
  char buf[16];
  std::snprintf(buf, sizeof buf, "byte 0x%02X", u);
  return buf;
}

bool fail(std::string* why, std::string message) {
  if (why) *why = std::move(message) + std::string(kExpectedForm);
  return false;
}

std::string at(std::size_t i) { return " at index " + std::to_string(i); }

// `n` counts the owner as segment 1.
std::string segment_name(int n) {
  std::string numbered = "segment " + std::to_string(n);
  if (n == 2) return "package (" + numbered + ")";
  if (n == 3) return "name (" + numbered + ")";
  return numbered;
}

}  // namespace

bool is_valid_capability_type(std::string_view type, std::string* why) {
  if (type.empty()) return fail(why, "capability type is empty");
  if (type.size() > kMaxCapabilityTypeLength) {
    return fail(why, "capability type is " + std::to_string(type.size()) +
                         " characters long, at most " +
                         std::to_string(kMaxCapabilityTypeLength) + " are allowed");
  }

  const std::size_t n = type.size();
  std::size_t i = 0;

  // owner
  if (type[0] == '/') return fail(why, "owner (before the first '/') is empty");
  if (!is_lower_alnum(type[0])) {
    return fail(why, "owner must start with [a-z0-9], found " + describe_char(type[0]) + at(0));
  }
  for (i = 1; i < n && type[i] != '/'; ++i) {
    char c = type[i];
    if (is_owner_char(c)) continue;
    if (c >= 'A' && c <= 'Z') {
      return fail(why, "owner must be lower case ([a-z0-9-]), found " + describe_char(c) + at(i));
    }
    if (c == '.') {
      return fail(why, "'.' found" + at(i) +
                           " in the owner; a .variant may only follow the package or name");
    }
    return fail(why, "owner may contain only [a-z0-9-], found " + describe_char(c) + at(i));
  }
  if (i == n) {
    return fail(why, "missing \"/{package}\" after owner \"" + std::string(type) + "\"");
  }

  // One to three segments, each introduced by the '/' at type[i].
  int segments = 0;
  while (i < n && type[i] == '/') {
    ++segments;
    if (segments > kMaxSegmentsAfterOwner) {
      return fail(why, "too many '/' segments: at most " +
                           std::to_string(kMaxSegmentsAfterOwner) +
                           " may follow the owner, found another '/'" + at(i));
    }
    const std::size_t start = ++i;
    if (start == n || type[start] == '/' || type[start] == '.') {
      return fail(why, segment_name(segments + 1) + " after the '/'" + at(start - 1) +
                           " is empty");
    }
    if (!is_alnum(type[start])) {
      return fail(why, segment_name(segments + 1) + " must start with [A-Za-z0-9], found " + describe_char(type[start]) +
                           at(start));
    }
    for (i = start + 1; i < n && type[i] != '/' && type[i] != '.'; ++i) {
      if (!is_segment_char(type[i])) {
        return fail(why, segment_name(segments + 1) + " may contain only [A-Za-z0-9:_-], found " + describe_char(type[i]) +
                             at(i));
      }
    }
  }
  if (i == n) return true;

  // type[i] == '.': the variant runs to the end.
  const std::size_t dot = i++;
  if (i == n || type[i] == '.' || type[i] == '/') {
    return fail(why, "variant after the '.'" + at(dot) + " is empty");
  }
  for (; i < n; ++i) {
    char c = type[i];
    if (is_variant_char(c)) continue;
    if (c == '.') {
      return fail(why, "only one '.' is allowed, found a second one" + at(i));
    }
    if (c == '/') {
      return fail(why, "'/' found" + at(i) + " after the .variant; the variant must come last");
    }
    return fail(why, "variant may contain only [A-Za-z0-9_-], found " + describe_char(c) + at(i));
  }
  return true;
}

// ------------------------------------------------------------ JSON Schema --

struct CompiledSchema::Impl {
  valijson::Schema schema;
  std::optional<SchemaFastPath> fast;  // when the schema fits the common subset
};

CompiledSchema::CompiledSchema(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
CompiledSchema::CompiledSchema(CompiledSchema&&) noexcept = default;
CompiledSchema& CompiledSchema::operator=(CompiledSchema&&) noexcept = default;
CompiledSchema::~CompiledSchema() = default;

namespace {

const char* json_type_name(const rapidjson::Value& v) {
  switch (v.GetType()) {
    case rapidjson::kNullType: return "null";
    case rapidjson::kFalseType:
    case rapidjson::kTrueType: return "a boolean";
    case rapidjson::kObjectType: return "an object";
    case rapidjson::kArrayType: return "an array";
    case rapidjson::kStringType: return "a string";
    case rapidjson::kNumberType: return "a number";
  }
  return "unknown";
}

bool try_regex(const char* what, std::string_view pattern, std::string& error) {
  try {
    std::regex r{std::string(pattern)};
    return true;
  } catch (const std::regex_error& e) {
    error = std::string("schema is not a valid JSON Schema: ") + what + " \"" +
            std::string(pattern) + "\" is not a valid regular expression: " + e.what();
    return false;
  }
}

// Follows a chain of `$ref`s from `origin`. valijson recurses without a
// cycle check ({"$ref": "#"} overflows the stack) and treats a relative
// "other.json" as local, so both are rejected here first.
bool check_ref(const rapidjson::Document& doc, const rapidjson::Value& origin,
               std::string_view ref, std::string& error) {
  const std::string prefix = "schema is not a valid JSON Schema: $ref \"" + std::string(ref) + "\" ";
  std::vector<const rapidjson::Value*> chain{&origin};
  while (true) {
    if (ref.empty() || ref.front() != '#') {
      error = prefix + "refers to another document; only local refs (\"#/...\") are supported";
      return false;
    }
    rapidjson::Pointer pointer(ref.data(), ref.size());
    if (!pointer.IsValid()) {
      error = prefix + "is not a JSON Pointer fragment (\"#/definitions/name\")";
      return false;
    }
    const rapidjson::Value* target = pointer.Get(doc);
    if (!target) {
      error = prefix + "points to nothing in this schema";
      return false;
    }
    if (std::find(chain.begin(), chain.end(), target) != chain.end()) {
      error = prefix + "is part of a $ref cycle";
      return false;
    }
    if (!target->IsObject()) return true;
    auto next = target->FindMember("$ref");
    if (next == target->MemberEnd() || !next->value.IsString()) return true;
    chain.push_back(target);
    ref = std::string_view(next->value.GetString(), next->value.GetStringLength());
  }
}

// Checks valijson leaves to validation time or gets wrong: `pattern` regexes
// are compiled lazily (a bad one would throw std::regex_error on the first
// lease), and `$ref`s (see check_ref). Keywords whose values are data, not
// schemas, are skipped so that {"enum": [{"pattern": "("}]} stays valid.
bool check_schema_document(const rapidjson::Document& doc, const rapidjson::Value& node,
                           std::string& error) {
  if (node.IsArray()) {
    for (const auto& item : node.GetArray()) {
      if (!check_schema_document(doc, item, error)) return false;
    }
    return true;
  }
  if (!node.IsObject()) return true;
  for (const auto& m : node.GetObject()) {
    std::string_view key(m.name.GetString(), m.name.GetStringLength());
    if (key == "enum" || key == "const" || key == "default" || key == "examples") continue;
    if (m.value.IsString()) {
      std::string_view text(m.value.GetString(), m.value.GetStringLength());
      if (key == "pattern" && !try_regex("pattern", text, error)) return false;
      if (key == "$ref" && !check_ref(doc, node, text, error)) return false;
    } else if (key == "patternProperties" && m.value.IsObject()) {
      for (const auto& p : m.value.GetObject()) {
        std::string_view pattern(p.name.GetString(), p.name.GetStringLength());
        if (!try_regex("patternProperties key", pattern, error)) return false;
      }
    }
    if (!check_schema_document(doc, m.value, error)) return false;
  }
  return true;
}

// valijson's context is {"<root>", "[name]", "[0]", ...}: each step wrapped in
// brackets, property names unescaped.
std::string to_json_pointer(const std::vector<std::string>& context) {
  std::string out;
  for (std::size_t k = 1; k < context.size(); ++k) {
    std::string_view step = context[k];
    if (step.size() >= 2 && step.front() == '[' && step.back() == ']') {
      step = step.substr(1, step.size() - 2);
    }
    out += '/';
    for (char c : step) {
      if (c == '~') {
        out += "~0";
      } else if (c == '/') {
        out += "~1";
      } else {
        out += c;
      }
    }
  }
  return out;
}

bool starts_with(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

// True when `path` is `prefix` or lies below it.
bool is_at_or_below(std::string_view path, std::string_view prefix) {
  return starts_with(path, prefix) && (path.size() == prefix.size() || path[prefix.size()] == '/');
}

std::string escape_pointer_token(std::string_view token) {
  return to_json_pointer({"<root>", "[" + std::string(token) + "]"});
}

// valijson reports a failing child twice: the child's own error, then a
// summary on the parent ("Failed to validate item #2 in array."). Returns the
// path the summary's child errors live at (empty optional if `e` is no such
// summary); `any_child` when the summary doesn't name which child.
struct SummaryTarget {
  std::string path;
  bool any_child = false;
};

std::optional<SummaryTarget> summary_target(const ValidationError& e) {
  constexpr std::string_view kProperty =
      "Failed to validate against schema associated with property name '";
  constexpr std::string_view kItem = "Failed to validate item #";
  const std::string& msg = e.message;
  if (starts_with(msg, kProperty) && msg.size() >= kProperty.size() + 2 &&
      msg.compare(msg.size() - 2, 2, "'.") == 0) {
    auto name = std::string_view(msg).substr(kProperty.size(), msg.size() - kProperty.size() - 2);
    return SummaryTarget{e.path + escape_pointer_token(name)};
  }
  if (starts_with(msg, kItem)) {
    std::size_t digits = kItem.size();
    while (digits < msg.size() && msg[digits] >= '0' && msg[digits] <= '9') ++digits;
    std::string_view index = std::string_view(msg).substr(kItem.size(), digits - kItem.size());
    std::string_view rest = std::string_view(msg).substr(digits);
    if (index.empty()) return std::nullopt;
    // This one is reported at the item's own path already.
    if (rest == " against corresponding item schema.") return SummaryTarget{e.path};
    if (rest == " in array." || rest == " against additional items schema.") {
      return SummaryTarget{e.path + "/" + std::string(index)};
    }
    return std::nullopt;
  }
  if (msg == "Failed to validate against additional properties schema" ||
      starts_with(msg, "Failed to validate against schema associated with pattern '")) {
    return SummaryTarget{e.path, true};
  }
  return std::nullopt;
}

// Drops exact duplicates, and a summary only when an error it summarizes is present: a child
// rejected by a `false` subschema reports nothing itself, so there the summary
// is the only trace and stays.
void drop_redundant_summaries(std::vector<ValidationError>& errors, std::size_t first) {
  std::vector<std::optional<SummaryTarget>> targets;
  targets.reserve(errors.size() - first);
  for (std::size_t k = first; k < errors.size(); ++k) targets.push_back(summary_target(errors[k]));

  auto summarized = [&](std::size_t k) {
    const SummaryTarget& t = *targets[k - first];
    for (std::size_t j = first; j < errors.size(); ++j) {
      if (j == k || targets[j - first]) continue;
      const std::string& p = errors[j].path;
      if (t.any_child ? (p.size() > t.path.size() && is_at_or_below(p, t.path))
                      : is_at_or_below(p, t.path)) {
        return true;
      }
    }
    return false;
  };

  std::vector<bool> drop(errors.size() - first, false);
  for (std::size_t k = first; k < errors.size(); ++k) {
    if (targets[k - first] && summarized(k)) drop[k - first] = true;
  }
  std::size_t out = first;
  for (std::size_t k = first; k < errors.size(); ++k) {
    if (drop[k - first]) continue;
    // After a tuple (`items: [...]`) item fails, valijson also checks it against
    // `additionalItems` (it counts only passing items), often repeating the error.
    auto same = [&](std::size_t j) {
      return errors[j].path == errors[k].path && errors[j].message == errors[k].message;
    };
    bool duplicate = false;
    for (std::size_t j = first; j < out && !duplicate; ++j) duplicate = same(j);
    if (duplicate) continue;
    if (out != k) errors[out] = std::move(errors[k]);
    ++out;
  }
  errors.resize(out);
}

// valijson::Validator::validate is non-const: it caches compiled `pattern`
// regexes, keyed by pattern text. One per thread keeps validate() lock-free
// and lets that cache be shared by every schema.
valijson::Validator& thread_validator() {
  thread_local valijson::Validator validator;  // strict types: "1" is no number
  return validator;
}

}  // namespace

std::optional<CompiledSchema> CompiledSchema::compile(std::string_view schema_json,
                                                      std::string& error) {
  rapidjson::Document doc;
  doc.Parse(schema_json.data(), schema_json.size());
  if (doc.HasParseError()) {
    error = std::string("schema is not valid JSON: ") + rapidjson::GetParseError_En(doc.GetParseError()) +
            " at offset " + std::to_string(doc.GetErrorOffset());
    return std::nullopt;
  }
  if (!doc.IsObject() && !doc.IsBool()) {
    error = std::string("schema is not a valid JSON Schema: expected an object or a boolean, found ") +
            json_type_name(doc);
    return std::nullopt;
  }
  if (!check_schema_document(doc, doc, error)) return std::nullopt;

  auto impl = std::make_unique<Impl>();
  try {
    valijson::SchemaParser parser;  // draft 7, also reads draft 4/6 keywords
    valijson::adapters::RapidJsonAdapter adapter(doc);
    // No fetch functions: should a $ref still resolve to another document
    // (through an `$id`), valijson throws "Fetching of remote JSON References
    // not enabled." rather than touching the network.
    parser.populateSchema(adapter, impl->schema);
    impl->fast = SchemaFastPath::compile(doc);
  } catch (const std::exception& e) {
    error = std::string("schema is not a valid JSON Schema: ") + e.what();
    return std::nullopt;
  }
  return CompiledSchema(std::move(impl));
}

bool CompiledSchema::has_fast_path() const { return impl_ && impl_->fast; }

bool CompiledSchema::validate(const rapidjson::Value& value,
                              std::vector<ValidationError>& errors) const {
  if (impl_ && impl_->fast && impl_->fast->certainly_valid(value)) return true;
  return validate_without_fast_path(value, errors);
}

bool CompiledSchema::validate_without_fast_path(const rapidjson::Value& value,
                                                std::vector<ValidationError>& errors) const {
  if (!impl_) {
    errors.push_back({"", "schema was moved from"});
    return false;
  }
  valijson::adapters::RapidJsonAdapter adapter(value);
  valijson::Validator& validator = thread_validator();
  const std::size_t first = errors.size();
  try {
    // Stops at the first failure and builds no messages.
    if (validator.validate(impl_->schema, adapter, nullptr)) return true;

    valijson::ValidationResults results;
    validator.validate(impl_->schema, adapter, &results);
    errors.reserve(first + results.numErrors());
    valijson::ValidationResults::Error e;
    while (results.popError(e)) {
      errors.push_back({to_json_pointer(e.context), std::move(e.description)});
    }
  } catch (const std::exception& e) {
    errors.resize(first);
    errors.push_back({"", std::string("schema check failed: ") + e.what()});
    return false;
  }
  drop_redundant_summaries(errors, first);
  if (errors.size() == first) {
    // Only a `false` schema fails without saying why.
    errors.push_back({"", "no value is allowed here (the schema is false)"});
  }
  return false;
}

}  // namespace neuron
