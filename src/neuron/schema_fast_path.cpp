#include "neuron/schema_fast_path.h"

#include "neuron/vocabulary.h"

#include <cmath>
#include <cstring>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace neuron {
namespace {

using rapidjson::Value;

enum TypeBit : std::uint8_t {
  kNull = 1, kBoolean = 2, kObject = 4, kArray = 8, kString = 16, kNumber = 32, kInteger = 64,
  kAnyType = 127,
};

struct Node {
  bool always_false = false;
  std::uint8_t types = kAnyType;
  std::vector<std::pair<std::string, std::uint32_t>> properties;  // name -> node
  std::vector<std::string> required;
  // `required` as bits of the first 64 `properties` (the one of that name
  // that a key matches: the first), and the names that are not among them.
  std::uint64_t required_bits = 0;
  std::vector<std::string> required_elsewhere;
  enum class Additional : std::uint8_t { kAllowed, kForbidden, kSchema } additional = Additional::kAllowed;
  std::uint32_t additional_node = 0;
  std::optional<std::uint32_t> items;
  std::vector<const Value*> enum_values;  // strings, booleans, null; into the schema copy
  bool has_enum = false;
  std::optional<double> minimum, maximum, exclusive_minimum, exclusive_maximum;
  std::optional<std::uint64_t> min_length, max_length, min_items, max_items, min_properties, max_properties;
};

std::optional<std::uint64_t> count(const Value& v) {
  if (v.IsUint64()) return v.GetUint64();
  return std::nullopt;
}

std::optional<double> number(const Value& v) {
  if (v.IsNumber()) return v.GetDouble();
  return std::nullopt;
}

// A number that converts to double exactly enough to compare with bounds.
bool comparable(const Value& v) {
  if (v.IsInt64()) return v.GetInt64() > -(std::int64_t{1} << 53) && v.GetInt64() < (std::int64_t{1} << 53);
  if (v.IsUint64()) return v.GetUint64() < (std::uint64_t{1} << 53);
  return v.IsDouble() && std::isfinite(v.GetDouble());
}

bool is_ascii(const Value& s) {
  const char* p = s.GetString();
  for (rapidjson::SizeType i = 0; i < s.GetStringLength(); ++i) {
    if (static_cast<unsigned char>(p[i]) >= 0x80) return false;
  }
  return true;
}

// True when two members share a name, or when the object is too big to say
// cheaply (then the caller is not sure, and valijson decides).
constexpr rapidjson::SizeType kMaxPairwiseMembers = 32;

bool has_duplicate_keys(const Value& object) {
  if (object.MemberCount() > kMaxPairwiseMembers) return true;
  for (auto a = object.MemberBegin(); a != object.MemberEnd(); ++a) {
    for (auto b = a + 1; b != object.MemberEnd(); ++b) {
      if (a->name.GetStringLength() == b->name.GetStringLength() &&
          std::memcmp(a->name.GetString(), b->name.GetString(), a->name.GetStringLength()) == 0) {
        return true;
      }
    }
  }
  return false;
}

}  // namespace

struct SchemaFastPath::Impl {
  rapidjson::Document schema;  // a copy: enum values point into it
  std::vector<Node> nodes;     // nodes[0] is the root

  // Adds the node for `s`; false if `s` is outside the subset.
  NEURON_COLD bool add(const Value& s, std::uint32_t& index) {
    index = static_cast<std::uint32_t>(nodes.size());
    nodes.emplace_back();
    if (s.IsBool()) {
      nodes[index].always_false = !s.GetBool();
      return true;
    }
    if (!s.IsObject()) return false;
    for (const auto& m : s.GetObject()) {
      const std::string_view k(m.name.GetString(), m.name.GetStringLength());
      const Value& v = m.value;
      if (k == "title" || k == "description" || k == "default" || k == "examples" || k == "$comment" ||
          k == "$schema") {
        continue;
      }
      if (k == "type") {
        std::uint8_t types = 0;
        auto bit = [](std::string_view t) -> std::uint8_t {
          if (t == "null") return kNull;
          if (t == "boolean") return kBoolean;
          if (t == "object") return kObject;
          if (t == "array") return kArray;
          if (t == "string") return kString;
          if (t == "number") return kNumber | kInteger;
          if (t == "integer") return kInteger;
          return 0;
        };
        if (v.IsString()) {
          types = bit({v.GetString(), v.GetStringLength()});
        } else if (v.IsArray()) {
          for (const Value& t : v.GetArray()) {
            if (!t.IsString()) return false;
            types |= bit({t.GetString(), t.GetStringLength()});
          }
        }
        if (types == 0) return false;
        nodes[index].types = types;
      } else if (k == "properties") {
        if (!v.IsObject()) return false;
        for (const auto& p : v.GetObject()) {
          std::uint32_t child;
          if (!add(p.value, child)) return false;
          nodes[index].properties.emplace_back(std::string(p.name.GetString(), p.name.GetStringLength()), child);
        }
      } else if (k == "required") {
        if (!v.IsArray()) return false;
        for (const Value& r : v.GetArray()) {
          if (!r.IsString()) return false;
          nodes[index].required.emplace_back(r.GetString(), r.GetStringLength());
        }
      } else if (k == "additionalProperties") {
        if (v.IsBool()) {
          nodes[index].additional = v.GetBool() ? Node::Additional::kAllowed : Node::Additional::kForbidden;
        } else {
          std::uint32_t child;
          if (!add(v, child)) return false;
          nodes[index].additional = Node::Additional::kSchema;
          nodes[index].additional_node = child;
        }
      } else if (k == "items") {
        if (v.IsArray()) return false;  // tuple form: leave it to valijson
        std::uint32_t child;
        if (!add(v, child)) return false;
        nodes[index].items = child;
      } else if (k == "enum" || k == "const") {
        auto add_value = [&](const Value& e) {
          if (!e.IsString() && !e.IsBool() && !e.IsNull()) return false;
          nodes[index].enum_values.push_back(&e);
          return true;
        };
        if (k == "enum") {
          if (!v.IsArray()) return false;
          for (const Value& e : v.GetArray()) {
            if (!add_value(e)) return false;
          }
        } else if (!add_value(v)) {
          return false;
        }
        if (nodes[index].has_enum) return false;  // both enum and const: rare, skip
        nodes[index].has_enum = true;
      } else if (k == "minimum" || k == "maximum" || k == "exclusiveMinimum" || k == "exclusiveMaximum") {
        auto n = number(v);  // the draft-4 boolean exclusive* form is left to valijson
        if (!n || !comparable(v)) return false;
        Node& node = nodes[index];
        (k == "minimum" ? node.minimum : k == "maximum" ? node.maximum
         : k == "exclusiveMinimum" ? node.exclusive_minimum : node.exclusive_maximum) = n;
      } else if (k == "minLength" || k == "maxLength" || k == "minItems" || k == "maxItems" ||
                 k == "minProperties" || k == "maxProperties") {
        auto c = count(v);
        if (!c) return false;
        Node& node = nodes[index];
        (k == "minLength" ? node.min_length : k == "maxLength" ? node.max_length
         : k == "minItems" ? node.min_items : k == "maxItems" ? node.max_items
         : k == "minProperties" ? node.min_properties : node.max_properties) = c;
      } else {
        return false;  // anything else (format, pattern, $ref, allOf, ...): valijson
      }
    }
    Node& node = nodes[index];
    for (const std::string& name : node.required) {
      const std::size_t j = declared(node, name);
      if (j < node.properties.size() && j < 64) node.required_bits |= std::uint64_t{1} << j;
      else node.required_elsewhere.push_back(name);
    }
    return true;
  }

  // The index in n.properties of the first with this name, or its size.
  static std::size_t declared(const Node& n, std::string_view name) {
    std::size_t j = 0;
    while (j < n.properties.size() && n.properties[j].first != name) ++j;
    return j;
  }

  bool valid(std::uint32_t index, const Value& v) const {
    const Node& n = nodes[index];
    if (n.always_false) return false;
    std::uint8_t type;
    switch (v.GetType()) {
      case rapidjson::kNullType: type = kNull; break;
      case rapidjson::kFalseType:
      case rapidjson::kTrueType: type = kBoolean; break;
      case rapidjson::kObjectType: type = kObject; break;
      case rapidjson::kArrayType: type = kArray; break;
      case rapidjson::kStringType: type = kString; break;
      default:
        // Whether 1.0 is an "integer" differs between drafts and validators.
        if (v.IsInt64() || v.IsUint64()) type = kInteger;
        else if ((n.types & kNumber) || n.types == kAnyType) type = kNumber;
        else return false;
    }
    if (!(n.types & type)) return false;
    if (n.has_enum) {
      bool found = false;
      for (const Value* e : n.enum_values) {
        if (e->GetType() == v.GetType() && (!v.IsString() || *e == v)) {
          found = true;
          break;
        }
      }
      if (!found) return false;
    }
    switch (type) {
      case kInteger:
      case kNumber: {
        if (!(n.minimum || n.maximum || n.exclusive_minimum || n.exclusive_maximum)) return true;
        if (!comparable(v)) return false;
        const double d = v.GetDouble();
        return (!n.minimum || d >= *n.minimum) && (!n.maximum || d <= *n.maximum) &&
               (!n.exclusive_minimum || d > *n.exclusive_minimum) &&
               (!n.exclusive_maximum || d < *n.exclusive_maximum);
      }
      case kString: {
        if (!n.min_length && !n.max_length) return true;
        if (!is_ascii(v)) return false;  // code point counting: leave it to valijson
        const std::uint64_t len = v.GetStringLength();
        return (!n.min_length || len >= *n.min_length) && (!n.max_length || len <= *n.max_length);
      }
      case kArray: {
        const std::uint64_t size = v.Size();
        if ((n.min_items && size < *n.min_items) || (n.max_items && size > *n.max_items)) return false;
        if (n.items) {
          for (const Value& item : v.GetArray()) {
            if (!valid(*n.items, item)) return false;
          }
        }
        return true;
      }
      case kObject: {
        const std::uint64_t size = v.MemberCount();
        if ((n.min_properties && size < *n.min_properties) || (n.max_properties && size > *n.max_properties)) {
          return false;
        }
        // One pass over the members: which of the first 64 declared names
        // each is (a bit each: a name seen twice is a duplicate key), and
        // whether any is undeclared or declared further on. Duplicate keys
        // are valid JSON that validators read differently (valijson rejects
        // them under additionalProperties: false): among other keys they are
        // looked for pairwise, as is every key of an object too big to say
        // cheaply.
        std::uint64_t seen = 0;
        bool others = size > kMaxPairwiseMembers;
        for (const auto& m : v.GetObject()) {
          const std::size_t j = declared(n, {m.name.GetString(), m.name.GetStringLength()});
          if (j < n.properties.size() && j < 64) {
            const std::uint64_t bit = std::uint64_t{1} << j;
            if (seen & bit) return false;
            seen |= bit;
          } else {
            others = true;
          }
          if (j < n.properties.size()) {
            if (!valid(n.properties[j].second, m.value)) return false;
          } else if (n.additional == Node::Additional::kForbidden) {
            return false;
          } else if (n.additional == Node::Additional::kSchema && !valid(n.additional_node, m.value)) {
            return false;
          }
        }
        if ((seen & n.required_bits) != n.required_bits) return false;
        for (const std::string& name : n.required_elsewhere) {
          if (v.FindMember(rapidjson::StringRef(name.data(), name.size())) == v.MemberEnd()) return false;
        }
        return !others || !has_duplicate_keys(v);
      }
      default:
        return true;
    }
  }
};

NEURON_COLD std::optional<SchemaFastPath> SchemaFastPath::compile(const rapidjson::Value& schema) {
  auto impl = std::make_unique<Impl>();
  impl->schema.CopyFrom(schema, impl->schema.GetAllocator());
  std::uint32_t root;
  if (!impl->add(impl->schema, root)) return std::nullopt;
  return SchemaFastPath(std::move(impl));
}

bool SchemaFastPath::certainly_valid(const rapidjson::Value& value) const { return impl_->valid(0, value); }

SchemaFastPath::SchemaFastPath(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SchemaFastPath::SchemaFastPath(SchemaFastPath&&) noexcept = default;
SchemaFastPath& SchemaFastPath::operator=(SchemaFastPath&&) noexcept = default;
SchemaFastPath::~SchemaFastPath() = default;

}  // namespace neuron
