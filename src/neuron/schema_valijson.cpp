// The JSON Schema validator behind schema_backend.h: valijson over RapidJSON.
// Natively it is linked into the core; the wasm package builds it into
// neuron-schema.wasm on its own (emscripten/schema_module.cpp).
#include "neuron/schema_backend.h"
#include "neuron/frames.h"  // kMaxJsonDepth
#include "neuron/schema.h"  // kMaxSchemaDepth

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
#include <cstdint>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <regex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <rapidjson/document.h>
#include <rapidjson/error/en.h>
#include <rapidjson/pointer.h>

// The adapter wants to redefine RAPIDJSON_ASSERT to throw, and warns because
// this file already included RapidJSON. Keeping RapidJSON's own assert is
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

// Keywords whose value maps names to schemas: there a key is a name (a
// property called "default" or "$ref" is a schema like any other).
bool maps_names(std::string_view key) {
  return key == "properties" || key == "patternProperties" || key == "definitions" || key == "$defs" ||
         key == "dependencies" || key == "dependentSchemas";
}

// Keywords whose values are data, not schemas.
bool is_data(std::string_view key) {
  return key == "enum" || key == "const" || key == "default" || key == "examples";
}

// A local $ref ("#/...") as RapidJSON reads it. In a URI fragment RapidJSON
// takes only unreserved characters as they are; valijson takes any ("#/$defs/x",
// as pydantic writes it): the others are percent-encoded here first, so both
// read the same names.
rapidjson::Pointer ref_pointer(std::string_view ref) {
  std::string encoded;
  encoded.reserve(ref.size());
  for (std::size_t i = 0; i < ref.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(ref[i]);
    const bool plain = (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '-' ||
                       c == '.' || c == '_' || c == '~' || c == '/' || c == '%' || (c == '#' && i == 0);
    if (plain) {
      encoded += static_cast<char>(c);
    } else {
      constexpr char kHex[] = "0123456789ABCDEF";
      encoded += '%';
      encoded += kHex[c >> 4];
      encoded += kHex[c & 15];
    }
  }
  return rapidjson::Pointer(encoded.data(), encoded.size());
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
    const rapidjson::Pointer pointer = ref_pointer(ref);
    if (!pointer.IsValid()) {
      error = prefix + "is not a JSON Pointer fragment (\"#/definitions/name\")";
      return false;
    }
    // Where RapidJSON and valijson would read the pointer differently
    // (valijson skips empty tokens, and unescapes ~0 / ~1 before %XX), the
    // checks here would look at another node than valijson parses.
    for (std::size_t t = 0; t < pointer.GetTokenCount(); ++t) {
      if (pointer.GetTokens()[t].length == 0) {
        error = prefix + "has an empty reference token (\"//\" or a trailing \"/\"); write the pointer without it";
        return false;
      }
    }
    for (const std::string_view escape : {"%7E", "%7e", "%2F", "%2f"}) {
      if (ref.find(escape) != std::string_view::npos) {
        error = prefix + "spells \"~\" or \"/\" as " + std::string(escape) + "; write \"~0\" or \"~1\" instead";
        return false;
      }
    }
    // Data (a default value, an enum entry) is not checked as a schema, so
    // a $ref may not make valijson read it as one.
    bool names = false;  // the token is a name in a map of schemas
    for (std::size_t t = 0; t < pointer.GetTokenCount(); ++t) {
      const std::string_view token(pointer.GetTokens()[t].name, pointer.GetTokens()[t].length);
      if (!names && is_data(token)) {
        error = prefix + "points into \"" + std::string(token) + "\", which holds data, not a schema";
        return false;
      }
      names = !names && maps_names(token);
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
// `names`: `node` maps names to schemas (maps_names).
bool check_schema_document(const rapidjson::Document& doc, const rapidjson::Value& node,
                           std::string& error, bool names = false) {
  if (node.IsArray()) {
    for (const auto& item : node.GetArray()) {
      if (!check_schema_document(doc, item, error)) return false;
    }
    return true;
  }
  if (!node.IsObject()) return true;
  for (const auto& m : node.GetObject()) {
    std::string_view key(m.name.GetString(), m.name.GetStringLength());
    if (names) {
      if (!check_schema_document(doc, m.value, error)) return false;
      continue;
    }
    if (is_data(key)) continue;
    if (m.value.IsString()) {
      std::string_view text(m.value.GetString(), m.value.GetStringLength());
      if (key == "pattern" && !try_regex("pattern", text, error)) return false;
      if (key == "$ref" && !check_ref(doc, node, text, error)) return false;
      // valijson reads a relative draft-4 `id` as its scope + the id, so a
      // $ref back into it parses the schema again under a longer scope,
      // without end ({"id":"y","properties":{"p":{"$ref":"#"}}}).
      if (key == "id" && text.find("://") == std::string_view::npos && text.rfind("urn:", 0) != 0 &&
          text.rfind("URN:", 0) != 0) {
        error = "schema is not a valid JSON Schema: \"id\": \"" + std::string(text) +
                "\" is a relative URI, which this SDK does not support; give an absolute URI or leave \"id\" out";
        return false;
      }
    } else if (key == "patternProperties" && m.value.IsObject()) {
      for (const auto& p : m.value.GetObject()) {
        std::string_view pattern(p.name.GetString(), p.name.GetStringLength());
        if (!try_regex("patternProperties key", pattern, error)) return false;
      }
    }
    if (!check_schema_document(doc, m.value, error, maps_names(key))) return false;
  }
  return true;
}

// How deep valijson's parser recurses, $refs followed. It parses a $ref's
// target where the $ref stands, so a chain of refs nests as deep as it is
// long however shallow its text ({"$ref":"#/definitions/d0"} with d0 ->
// items -> d1 -> items -> ... : 300 links overflowed the schema module's stack
// and broke the module for the rest of the process, measured). Counted as
// nests_within_limit counts the text, one more level for each link, so that
// what passes is at most as deep as text that passes. valijson parses each
// target once (it keeps what it parsed by its JSON Pointer, and a target it
// is still parsing further up is recursion, built once; "#" is the root
// parsed a second time): so does this walk, which keeps each target's
// height, and a target met again costs its height where it stands, without a
// second walk. It walks in document order, valijson in its keyword order, so
// for schemas whose refs form cycles this is an estimate, not a bound (the
// limit is half the depth measured to overflow). It also refuses a schema
// that refers back to itself without a property or an item in between
// ({"allOf":[{"$ref":"#"}]}): valijson would check a value against it
// forever, on the first lease.
class RefDepth {
 public:
  explicit RefDepth(const rapidjson::Document& doc) : doc_(doc) {}

  bool within_limits(std::string& error) {
    if (height(doc_, 1, false, 0, true) >= 0) return true;
    error = !error_.empty() ? error_
                            : "schema nests deeper than " + std::to_string(kMaxSchemaDepth) +
                                  " levels once its $refs are followed (each $ref counts as a level)";
    return false;
  }

 private:
  // Keywords whose schemas check a part of the value (a property, an item, a
  // name): a schema that refers back to itself only through these ends when
  // the value does.
  static bool moves_into_value(std::string_view key) {
    return key == "properties" || key == "patternProperties" || key == "additionalProperties" || key == "items" ||
           key == "additionalItems" || key == "contains" || key == "propertyNames";
  }

  // The levels `node` (at `depth`, 1 for the root) spans, itself included:
  // 0 for a scalar; -1 once anything under it is deeper than kMaxSchemaDepth
  // or it refers back to itself without moving into the value (error_).
  // `moved`: how many moves_into_value keywords lead here; `applied`: false
  // under `definitions`, which valijson reads only through a $ref.
  int height(const rapidjson::Value& node, int depth, bool names, int moved, bool applied) {
    if (!node.IsObject() && !node.IsArray()) return 0;
    if (depth > kMaxSchemaDepth) return -1;
    int below = 0;  // the tallest child, or $ref target one level down
    auto child = [&](const rapidjson::Value& v, bool v_names, int v_moved, bool v_applied) {
      const int h = height(v, depth + 1, v_names, v_moved, v_applied);
      if (h < 0) return false;
      below = std::max(below, h);
      return true;
    };
    if (node.IsArray()) {
      for (const auto& item : node.GetArray()) {
        if (!child(item, false, moved, applied)) return -1;
      }
      return below + 1;
    }
    for (const auto& m : node.GetObject()) {
      std::string_view key(m.name.GetString(), m.name.GetStringLength());
      if (names) {
        if (!child(m.value, false, moved, applied)) return -1;
        continue;
      }
      if (is_data(key)) continue;
      if (key == "$ref" && m.value.IsString()) {
        if (!applied) continue;  // valijson follows it only once something refers to this definition
        // check_ref ran first: a local pointer to something.
        const std::string_view ref(m.value.GetString(), m.value.GetStringLength());
        const rapidjson::Value* target = ref_pointer(ref).Get(doc_);
        if (!target) continue;
        // Targets go by their spelling, as valijson keeps them ("#/definitions/a"
        // and "#/definitions/%61" are parsed once each).
        auto walking = std::find_if(walking_.begin(), walking_.end(), [&](const auto& w) { return w.first == ref; });
        if (walking != walking_.end()) {
          if (walking->second == moved) {
            error_ = "schema is not a valid JSON Schema: $ref \"" + std::string(ref) +
                     "\" leads back to where it stands without a property or an item in between (through allOf, anyOf, "
                     "oneOf, not, if/then/else or dependencies): checking a value against it would never end";
            return -1;
          }
          continue;  // recursion: valijson builds it once
        }
        int h;
        if (auto known = heights_.find(ref); known != heights_.end()) {
          h = known->second;
        } else {
          walking_.emplace_back(ref, moved);
          h = height(*target, depth + 1, false, moved, true);
          walking_.pop_back();
          if (h < 0) return -1;
          heights_.emplace(ref, h);
        }
        if (depth + h > kMaxSchemaDepth) return -1;
        below = std::max(below, h);
        continue;
      }
      const bool v_names = maps_names(key);
      if (!child(m.value, v_names, moved + (moves_into_value(key) ? 1 : 0),
                 applied && key != "definitions" && key != "$defs")) {
        return -1;
      }
    }
    return below + 1;
  }

  const rapidjson::Document& doc_;
  // $ref targets (their spelling, in the document) on the current path, with
  // the `moved` where each was met.
  std::vector<std::pair<std::string_view, int>> walking_;
  std::map<std::string_view, int> heights_;
  std::string error_;
};

// How many subschemas one place in a value can be checked against. valijson
// applies every schema that reaches a place, so a schema can make a small
// value cost exponential work: d_i = {"allOf":[{"$ref":d_i+1},{"$ref":d_i+1}]}
// for 40 links checks any value 2^40 times; {"allOf":[{"items":S},
// {"items":S}]} as S doubles the count at each level of an array. This
// computes an upper bound of that count at each depth of a value, up to the
// deepest the core takes (kMaxJsonDepth), and refuses the schema at start()
// past kMaxChecksPerPlace, instead of a neuron that hangs on its first lease.
// At one place of a value every schema applied in place (allOf, anyOf, oneOf,
// not, if/then/else, dependencies, $ref) counts. Below it, an array's item
// gets `items` (or its entry for that index), `additionalItems` (valijson
// checks it on the items that failed theirs too) and `contains`; an object's
// member named n gets properties[n] or else additionalProperties, plus every
// patternProperties and propertyNames: counted per name, summed over the
// schemas applied at the place, so that the branches of a oneOf that recurse
// under different names ({"and":[f]}, {"or":[f]}, {"not":f}) count one
// each. A value is an array or an object, never both.
class CheckWork {
 public:
  static constexpr double kMaxChecksPerPlace = 100000;

  explicit CheckWork(const rapidjson::Document& doc) : doc_(doc) {}

  bool within_limits(std::string& error) {
    index(doc_);
    for (std::uint32_t i = 0; i < values_.size(); ++i) read(i);
    first_.push_back(static_cast<std::uint32_t>(edges_.size()));
    first_member_.push_back(static_cast<std::uint32_t>(members_.size()));
    // Children applied in place come first (they form no cycle: RefDepth
    // refused those; a cycle is refused here too, should one remain).
    std::vector<std::uint32_t> order;
    if (!in_place_order(order)) {
      error = "schema is not a valid JSON Schema: it applies itself in place through a cycle of $refs: checking a value "
              "against it would never end";
      return false;
    }
    // valijson keys a propertyNames subschema by its parent's path, so where
    // a $ref has parsed that parent already, the names are checked against
    // the parent itself: valid values fail (or pass) wrongly.
    if (property_names_ && refs_) {
      error = "schema uses propertyNames together with $ref, which the JSON Schema validator checks against the wrong "
              "schema; give the names' rule as patternProperties with additionalProperties: false instead";
      return false;
    }
    collect_names(order);
    const std::size_t n = values_.size();
    // Per schema: checks at one place `depth` levels below a value it
    // checks (cur), the level above (prev); the part an array brings, and
    // per member name (names_[i], then any other name) the part an object
    // brings.
    std::vector<double> prev(n), cur(n), arrays(n);
    std::vector<std::vector<double>> objects(n);
    for (std::uint32_t i = 0; i < n; ++i) objects[i].resize(names_[i].size() + 1);
    for (int depth = 0; depth <= kMaxJsonDepth; ++depth) {
      bool any = false;
      for (std::uint32_t i : order) {
        cur[i] = depth == 0 ? at_root(i, cur) : below(i, prev, arrays, objects);
        any = any || cur[i] > 0;
      }
      if (cur[0] > kMaxChecksPerPlace) {
        error = "schema is too costly to check: it applies more than 100000 subschemas to one place of a value " +
                (depth == 0 ? std::string("(its root)") : std::to_string(depth) + (depth == 1 ? " level" : " levels") + " deep") +
                " (allOf / anyOf / oneOf / $ref that apply the same subschemas over and over, or branches of an anyOf / "
                "oneOf that recurse under the same property); checking a lease's value against it could take hours. "
                "Apply each subschema once, and move a property the branches share out of them";
        return false;
      }
      per_depth_.push_back(cur[0]);
      // Nothing reaches further down, or each level now counts as the last.
      if (!any) break;
      if (depth > 0 && cur == prev) {
        last_repeats_ = true;
        break;
      }
      std::swap(prev, cur);
    }
    return true;
  }

  // After within_limits: the bound at each depth of a value, from its root.
  std::vector<double> per_depth() && { return std::move(per_depth_); }
  bool last_repeats() const { return last_repeats_; }
  bool unique_items() const { return unique_items_; }

 private:
  enum Kind : std::uint8_t {
    kInPlace,     // allOf, anyOf, oneOf, not, if/then/else, dependencies, $ref
    kItem,        // items (a schema, or the entry for one index): one of these
    kItemToo,     // additionalItems beside a list of items, contains
    kAdditional,  // additionalProperties: a member no properties entry names
    kMemberToo,   // patternProperties, propertyNames
  };
  struct Edge {
    std::uint32_t to;
    Kind kind;
  };
  struct Member {  // properties: name -> schema
    std::string_view name;
    std::uint32_t to;
  };
  // A schema whose in-place closure names more members than this is counted
  // as if one name took the largest of them all (an upper bound still).
  static constexpr std::size_t kMaxNamesPerSchema = 256;
  static inline const rapidjson::Value kEmptySchema{true};

  double at_root(std::uint32_t i, const std::vector<double>& cur) const {
    double c = 1;
    for (std::uint32_t e = first_[i]; e < first_[i + 1]; ++e) {
      if (edges_[e].kind == kInPlace) c += cur[edges_[e].to];
    }
    return c;
  }

  double below(std::uint32_t i, const std::vector<double>& prev, std::vector<double>& arrays,
               std::vector<std::vector<double>>& objects) const {
    double a = 0, item = 0, extra = 0, additional = 0;
    for (std::uint32_t e = first_[i]; e < first_[i + 1]; ++e) {
      const std::uint32_t k = edges_[e].to;
      switch (edges_[e].kind) {
        case kInPlace: a += arrays[k]; break;
        case kItem: item = std::max(item, prev[k]); break;
        case kItemToo: a += prev[k]; break;
        case kAdditional: additional = prev[k]; break;
        case kMemberToo: extra += prev[k]; break;
      }
    }
    arrays[i] = a + item;
    std::vector<double>& o = objects[i];
    const std::vector<std::string_view>& names = names_[i];
    // This schema's own part: properties[name], or additionalProperties.
    std::fill(o.begin(), o.end(), additional + extra);
    for (std::uint32_t m = first_member_[i + 1]; m-- > first_member_[i];) {  // the first of two equal names last
      const double here = prev[members_[m].to] + extra;
      if (names.empty()) {
        o.back() = std::max(o.back(), here);  // too many names: one for all
      } else {
        o[slot(names, members_[m].name)] = here;
      }
    }
    // The schemas applied in place: each name as that schema counts it.
    for (std::uint32_t e = first_[i]; e < first_[i + 1]; ++e) {
      if (edges_[e].kind != kInPlace) continue;
      const std::uint32_t k = edges_[e].to;
      const std::vector<double>& ko = objects[k];
      for (std::size_t j = 0; j < names.size(); ++j) {
        ko.size() > 1 ? o[j] += ko[slot(names_[k], names[j])] : o[j] += ko.back();
      }
      o.back() += names.empty() ? *std::max_element(ko.begin(), ko.end()) : ko.back();
    }
    return std::max(arrays[i], *std::max_element(o.begin(), o.end()));
  }

  // Where `name` is in the sorted `names`; names.size() (any other name) when not there.
  static std::size_t slot(const std::vector<std::string_view>& names, std::string_view name) {
    auto it = std::lower_bound(names.begin(), names.end(), name);
    return it != names.end() && *it == name ? static_cast<std::size_t>(it - names.begin()) : names.size();
  }

  // The member names each schema's in-place closure declares (children first in `order`).
  void collect_names(const std::vector<std::uint32_t>& order) {
    names_.resize(values_.size());
    std::vector<bool> too_many(values_.size());
    for (std::uint32_t i : order) {
      std::vector<std::string_view>& names = names_[i];
      bool over = false;
      for (std::uint32_t m = first_member_[i]; m < first_member_[i + 1]; ++m) names.push_back(members_[m].name);
      for (std::uint32_t e = first_[i]; e < first_[i + 1] && !over; ++e) {
        if (edges_[e].kind != kInPlace) continue;
        over = too_many[edges_[e].to];
        names.insert(names.end(), names_[edges_[e].to].begin(), names_[edges_[e].to].end());
        over = over || names.size() > 4 * kMaxNamesPerSchema;
      }
      std::sort(names.begin(), names.end());
      names.erase(std::unique(names.begin(), names.end()), names.end());
      if (over || names.size() > kMaxNamesPerSchema) {
        too_many[i] = true;
        std::vector<std::string_view>().swap(names);
      }
    }
  }

  // The schema's number, given on first sight (values_ grows as read() walks it).
  std::uint32_t index(const rapidjson::Value& v) {
    auto [at, added] = numbers_.emplace(&v, static_cast<std::uint32_t>(values_.size()));
    if (added) values_.push_back(&v);
    return at->second;
  }

  // Appends schema `i`'s edges and members; first_[i] / first_member_[i] are where they start.
  void read(std::uint32_t i) {
    first_.push_back(static_cast<std::uint32_t>(edges_.size()));
    first_member_.push_back(static_cast<std::uint32_t>(members_.size()));
    const rapidjson::Value& v = *values_[i];
    if (!v.IsObject()) return;
    auto schema = [&](const rapidjson::Value& s, Kind kind) {
      if (s.IsObject() || s.IsBool()) edges_.push_back({index(s), kind});
    };
    auto each = [&](const rapidjson::Value& list, Kind kind) {
      if (list.IsArray()) {
        for (const auto& s : list.GetArray()) schema(s, kind);
      }
    };
    auto map = [&](const rapidjson::Value& m, Kind kind) {
      if (m.IsObject()) {
        for (const auto& e : m.GetObject()) schema(e.value, kind);  // a list of names is not a schema
      }
    };
    // valijson reads the first of two equal keys (RapidJSON's FindMember).
    auto items = v.FindMember("items");
    const bool item_list = items != v.MemberEnd() && items->value.IsArray();
    const bool has_properties = v.FindMember("properties") != v.MemberEnd() || v.FindMember("patternProperties") != v.MemberEnd();
    const bool has_additional = v.FindMember("additionalProperties") != v.MemberEnd();
    const bool has_additional_items = v.FindMember("additionalItems") != v.MemberEnd();
    // Without additionalProperties / additionalItems beside them, valijson
    // checks the members properties do not name, and the items past a list,
    // against an empty schema: one check each.
    if (has_properties && !has_additional) schema(kEmptySchema, kAdditional);
    if (item_list && !has_additional_items) schema(kEmptySchema, kItemToo);
    std::vector<std::string_view> seen;  // keywords read, at most one of each
    for (const auto& m : v.GetObject()) {
      const std::string_view key(m.name.GetString(), m.name.GetStringLength());
      if (!reads(key) || std::find(seen.begin(), seen.end(), key) != seen.end()) continue;
      seen.push_back(key);
      if (key == "$ref" && m.value.IsString()) {
        if (const rapidjson::Value* target = ref_pointer({m.value.GetString(), m.value.GetStringLength()}).Get(doc_)) {
          schema(*target, kInPlace);
        }
      } else if (key == "allOf" || key == "anyOf" || key == "oneOf") {
        each(m.value, kInPlace);
      } else if (key == "not" || key == "if" || key == "then" || key == "else") {
        schema(m.value, kInPlace);
      } else if (key == "dependencies" || key == "dependentSchemas") {
        map(m.value, kInPlace);
      } else if (key == "items") {
        schema(m.value, kItem);
        each(m.value, kItem);
      } else if (key == "additionalItems") {
        schema(m.value, item_list ? kItemToo : kItem);
      } else if (key == "contains") {
        schema(m.value, kItemToo);
      } else if (key == "properties") {
        if (m.value.IsObject()) {
          for (const auto& p : m.value.GetObject()) {
            // valijson keeps a name up to its first NUL, and the first of two
            // equal names (below() reads a schema's members last to first).
            std::string_view name(p.name.GetString(), p.name.GetStringLength());
            name = name.substr(0, name.find('\0'));
            if (p.value.IsObject() || p.value.IsBool()) members_.push_back({name, index(p.value)});
          }
        }
      } else if (key == "additionalProperties") {
        schema(m.value, kAdditional);
      } else if (key == "patternProperties") {
        map(m.value, kMemberToo);
      } else if (key == "propertyNames") {
        schema(m.value, kMemberToo);
        property_names_ = true;
      }
      if (key == "$ref") refs_ = true;
      if (key == "uniqueItems" && m.value.IsTrue()) unique_items_ = true;
    }
  }

  // The keywords read() looks at (any other key is skipped without a lookup
  // in `seen`, so a schema object with many keys costs one pass).
  static bool reads(std::string_view key) {
    for (const std::string_view k : {"$ref", "allOf", "anyOf", "oneOf", "not", "if", "then", "else", "dependencies",
                                     "dependentSchemas", "items", "additionalItems", "contains", "properties",
                                     "additionalProperties", "patternProperties", "propertyNames", "uniqueItems"}) {
      if (key == k) return true;
    }
    return false;
  }

  // Post-order over in-place edges, without recursion; false on a cycle.
  bool in_place_order(std::vector<std::uint32_t>& order) {
    enum : std::uint8_t { kNew, kOpen, kDone };
    std::vector<std::uint8_t> state(values_.size(), kNew);
    std::vector<std::pair<std::uint32_t, std::uint32_t>> stack;  // schema, next edge
    for (std::uint32_t root = 0; root < values_.size(); ++root) {
      if (state[root] != kNew) continue;
      stack.emplace_back(root, first_[root]);
      state[root] = kOpen;
      while (!stack.empty()) {
        auto& [i, e] = stack.back();
        if (e < first_[i + 1]) {
          const Edge edge = edges_[e++];
          if (edge.kind != kInPlace) continue;
          if (state[edge.to] == kOpen) return false;
          if (state[edge.to] == kNew) {
            state[edge.to] = kOpen;
            stack.emplace_back(edge.to, first_[edge.to]);
          }
          continue;
        }
        state[i] = kDone;
        order.push_back(i);
        stack.pop_back();
      }
    }
    return true;
  }

  const rapidjson::Document& doc_;
  std::map<const rapidjson::Value*, std::uint32_t> numbers_;
  std::vector<const rapidjson::Value*> values_;
  std::vector<std::uint32_t> first_;
  std::vector<Edge> edges_;
  std::vector<std::uint32_t> first_member_;
  std::vector<Member> members_;
  std::vector<std::vector<std::string_view>> names_;
  std::vector<double> per_depth_;
  bool last_repeats_ = false;    // the last depth's count holds for every depth below it
  bool unique_items_ = false;    // an applied schema has uniqueItems (valijson compares each pair of items)
  bool property_names_ = false;  // an applied schema has propertyNames
  bool refs_ = false;            // and one has a $ref
};

// The most checks valijson may make for one value (per_depth summed over the
// value's places): ~10 s at the worst in wasm. Past it the value is refused
// without being checked.
constexpr double kMaxChecksPerValue = 5e7;
// The most (check x depth) for which the errors of a value are listed.
constexpr double kMaxListing = 2e7;

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
  // The paths of the errors that are no summary, sorted: those at or below
  // a path come right from where it, or it + "/", would go (a value's wrong
  // items can be thousands: no pass over all of them per summary).
  std::vector<std::string_view> paths;
  for (std::size_t k = first; k < errors.size(); ++k) {
    if (!targets[k - first]) paths.push_back(errors[k].path);
  }
  std::sort(paths.begin(), paths.end());
  auto summarized = [&](const SummaryTarget& t) {
    if (!t.any_child && std::binary_search(paths.begin(), paths.end(), std::string_view(t.path))) return true;
    const std::string below = t.path + "/";
    auto it = std::lower_bound(paths.begin(), paths.end(), std::string_view(below));
    return it != paths.end() && starts_with(*it, below);
  };

  std::vector<bool> drop(errors.size() - first, false);
  for (std::size_t k = first; k < errors.size(); ++k) {
    if (targets[k - first] && summarized(*targets[k - first])) drop[k - first] = true;
  }
  paths.clear();  // they point into the errors, which move below
  // After a tuple (`items: [...]`) item fails, valijson also checks it against
  // `additionalItems` (it counts only passing items), often repeating the error.
  std::set<std::pair<std::string, std::string>> seen;
  std::size_t out = first;
  for (std::size_t k = first; k < errors.size(); ++k) {
    if (drop[k - first] || !seen.emplace(errors[k].path, errors[k].message).second) continue;
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

namespace {

struct Compiled {
  valijson::Schema schema;
  std::vector<double> per_depth;  // CheckWork's bound at each depth of a value
  bool last_repeats = false;
  bool unique_items = false;  // then every array costs a check per pair of its items too

  // The bound of the checks of `value`, stopping once past `limit`.
  // `listing`: the same with each check weighed by its depth, as listing
  // the errors copies the path to each (valijson's error pass).
  double checks(const rapidjson::Value& value, double limit, double& listing) const {
    double total = 0;
    listing = 0;
    std::vector<std::pair<const rapidjson::Value*, std::size_t>> todo{{&value, 0}};
    while (!todo.empty() && total <= limit) {
      const auto [v, depth] = todo.back();
      todo.pop_back();
      const double here = depth < per_depth.size() ? per_depth[depth] : last_repeats ? per_depth.back() : 0;
      total += here;
      listing += here * static_cast<double>(depth + 1);
      if (v->IsArray()) {
        const double n = v->Size();
        if (unique_items) total += n * (n - 1) / 2;
        for (const auto& item : v->GetArray()) todo.emplace_back(&item, depth + 1);
      } else if (v->IsObject()) {
        for (const auto& m : v->GetObject()) todo.emplace_back(&m.value, depth + 1);
      }
    }
    return total;
  }
};

// Compiled schemas by handle - 1; a released handle's slot is reused.
struct Registry {
  std::mutex mutex;
  std::vector<std::unique_ptr<Compiled>> schemas;
};

Registry& registry() {
  static Registry r;
  return r;
}

const Compiled* lookup(std::uint32_t handle) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  return handle >= 1 && handle <= r.schemas.size() ? r.schemas[handle - 1].get() : nullptr;
}

}  // namespace

namespace schema_backend {

std::uint32_t compile(std::string_view schema_json, std::string& error) {
  rapidjson::Document doc;
  doc.Parse(schema_json.data(), schema_json.size());
  if (doc.HasParseError()) {
    error = std::string("schema is not valid JSON: ") + rapidjson::GetParseError_En(doc.GetParseError()) +
            " at offset " + std::to_string(doc.GetErrorOffset());
    return 0;
  }
  if (!doc.IsObject() && !doc.IsBool()) {
    error = std::string("schema is not a valid JSON Schema: expected an object or a boolean, found ") +
            json_type_name(doc);
    return 0;
  }
  if (!check_schema_document(doc, doc, error)) return 0;
  if (!RefDepth(doc).within_limits(error)) return 0;
  CheckWork work(doc);
  if (!work.within_limits(error)) return 0;

  auto schema = std::make_unique<Compiled>();
  schema->last_repeats = work.last_repeats();
  schema->unique_items = work.unique_items();
  schema->per_depth = std::move(work).per_depth();
  try {
    valijson::SchemaParser parser;  // draft 7, also reads draft 4/6 keywords
    valijson::adapters::RapidJsonAdapter adapter(doc);
    // No fetch functions: should a $ref still resolve to another document
    // (through an `$id`), valijson throws "Fetching of remote JSON References
    // not enabled." rather than touching the network.
    parser.populateSchema(adapter, schema->schema);
  } catch (const std::exception& e) {
    error = std::string("schema is not a valid JSON Schema: ") + e.what();
    return 0;
  }
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  for (std::size_t i = 0; i < r.schemas.size(); ++i) {
    if (!r.schemas[i]) {
      r.schemas[i] = std::move(schema);
      return static_cast<std::uint32_t>(i + 1);
    }
  }
  r.schemas.push_back(std::move(schema));
  return static_cast<std::uint32_t>(r.schemas.size());
}

void release(std::uint32_t handle) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  if (handle >= 1 && handle <= r.schemas.size()) r.schemas[handle - 1].reset();
}

bool validate(std::uint32_t handle, std::string_view value_json, std::vector<ValidationError>& errors) {
  const Compiled* compiled = lookup(handle);
  if (!compiled) {
    errors.push_back({"", "schema was released"});
    return false;
  }
  rapidjson::Document value;
  value.Parse(value_json.data(), value_json.size());
  if (value.HasParseError()) {
    errors.push_back({"", "value is not JSON"});
    return false;
  }
  // An invalid value is checked twice (the second pass collects the errors).
  double listing = 0;
  if (compiled->checks(value, kMaxChecksPerValue / 2, listing) > kMaxChecksPerValue / 2) {
    errors.push_back({"", "the value could not be checked: against this schema it would take more than 50000000 checks "
                          "(its places times the subschemas the schema applies at each, and with uniqueItems each "
                          "pair of an array's items); send a smaller value, or "
                          "apply fewer subschemas at each place"});
    return false;
  }
  const valijson::Schema* schema = &compiled->schema;
  valijson::adapters::RapidJsonAdapter adapter(value);
  valijson::Validator& validator = thread_validator();
  const std::size_t first = errors.size();
  try {
    // Stops at the first failure and builds no messages.
    if (validator.validate(*schema, adapter, nullptr)) return true;
    // Listing where a huge, deep value fails copies the path to every error
    // (800 KB of nested arrays: 32 s, then out of memory in wasm): past
    // kMaxListing, one error says so instead.
    if (listing > kMaxListing) {
      errors.push_back({"", "the value does not match the schema (it is too large and deep to list where)"});
      return false;
    }

    valijson::ValidationResults results;
    validator.validate(*schema, adapter, &results);
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

}  // namespace schema_backend
}  // namespace neuron
