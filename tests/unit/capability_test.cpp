#include "neuron/capability_type.h"
#include "neuron/frames.h"  // kMaxJsonDepth
#include "neuron/schema.h"

#include <algorithm>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

namespace neuron {
namespace {

// ------------------------------------------------------- capability types --

TEST(CapabilityType, AcceptsTheGrammar) {
  const std::string max_len = "a/" + std::string(198, 'b');
  for (const std::string& type : std::vector<std::string>{
           "core/script.python",
           "desktop/mcp/drive.read",
           "org/01HBQ8ZK/custom-tool",
           "user/user:abc/tool",
           "core/http",
           "a/b/c/d",
           "a/b/c/d.e",
           "0/X",
           "my-org/Pkg_1/name-2.v_1-x",
           "core/http.V2",
           max_len,
       }) {
    std::string why = "untouched";
    EXPECT_TRUE(is_valid_capability_type(type, &why)) << type << ": " << why;
    EXPECT_EQ(why, "untouched") << type;
    EXPECT_TRUE(is_valid_capability_type(type)) << type;
  }
}

struct InvalidCase {
  std::string type;
  std::string why_contains;
};

TEST(CapabilityType, RejectsWithAReason) {
  const std::vector<InvalidCase> cases = {
      {"", "empty"},
      {"core", "missing \"/{package}\""},
      {"Core/x", "owner must start with [a-z0-9]"},
      {"cOre/x", "lower case"},
      {"core/", "segment 2"},
      {"core//x", "is empty"},
      {"/x", "owner"},
      {"a/b/c/d/e", "too many"},
      {"core/x.", "variant"},
      {"core/x..y", "variant after the '.' at index 6 is empty"},
      {"core/x./y", "variant after the '.' at index 6 is empty"},
      {"core/x/", "segment 3"},
      {"core/x.y.z", "only one '.'"},
      {"core/x.y/z", "variant must come last"},
      {"core.x/y", "owner"},
      {"core/.x", "is empty"},
      {"-core/x", "owner must start"},
      {"core/_x", "must start with [A-Za-z0-9]"},
      {"core/:x", "must start with [A-Za-z0-9]"},
      {"core/x y", "' '"},
      {" core/x", "owner must start"},
      {"core/x ", "' '"},
      {"co_re/x", "[a-z0-9-]"},
      {"core/x.a:b", "variant may contain only"},
      {"core/caf\xC3\xA9", "byte 0xC3"},
      {"core/x\n", "byte 0x0A"},
      {std::string("core/a\0b", 8), "byte 0x00"},
      {"a/" + std::string(199, 'b'), "at most 200"},
  };
  for (const auto& c : cases) {
    std::string why;
    EXPECT_FALSE(is_valid_capability_type(c.type, &why)) << c.type;
    EXPECT_NE(why.find(c.why_contains), std::string::npos)
        << "type \"" << c.type << "\": why = " << why;
    EXPECT_NE(why.find("{owner}/{package}"), std::string::npos) << why;
    EXPECT_FALSE(is_valid_capability_type(c.type)) << c.type;
  }
}

// ------------------------------------------------------------ JSON Schema --

CompiledSchema compile_ok(std::string_view text) {
  std::string error;
  auto schema = CompiledSchema::compile(text, error);
  EXPECT_TRUE(schema.has_value()) << text << ": " << error;
  if (!schema) {
    schema = CompiledSchema::compile("true", error);
  }
  return std::move(*schema);
}

std::string compile_error(std::string_view text) {
  std::string error;
  auto schema = CompiledSchema::compile(text, error);
  EXPECT_FALSE(schema.has_value()) << text;
  EXPECT_FALSE(error.empty()) << text;
  return error;
}

rapidjson::Document parse(std::string_view json) {
  rapidjson::Document doc;
  doc.Parse(json.data(), json.size());
  EXPECT_FALSE(doc.HasParseError()) << json;
  return doc;
}

std::vector<ValidationError> errors_for(const CompiledSchema& schema, std::string_view json) {
  std::vector<ValidationError> errors;
  auto doc = parse(json);
  EXPECT_FALSE(schema.validate(doc, errors)) << json;
  EXPECT_FALSE(errors.empty()) << json;
  return errors;
}

bool valid(const CompiledSchema& schema, std::string_view json) {
  std::vector<ValidationError> errors;
  auto doc = parse(json);
  bool ok = schema.validate(doc, errors);
  EXPECT_EQ(ok, errors.empty());
  return ok;
}

// Sorted: valijson's order follows its own keyword and property order.
std::vector<std::string> paths(const std::vector<ValidationError>& errors) {
  std::vector<std::string> out;
  for (const auto& e : errors) out.push_back(e.path);
  std::sort(out.begin(), out.end());
  return out;
}

std::string dump(const std::vector<ValidationError>& errors) {
  std::string out;
  for (const auto& e : errors) out += "  [" + e.path + "] " + e.message + "\n";
  return out;
}

TEST(CompiledSchema, RejectsTextThatIsNotJson) {
  std::string error = compile_error(R"({"type": "object",})");
  EXPECT_EQ(error.rfind("schema is not valid JSON: ", 0), 0u) << error;
  EXPECT_NE(error.find("at offset 18"), std::string::npos) << error;

  error = compile_error("");
  EXPECT_EQ(error.rfind("schema is not valid JSON: ", 0), 0u) << error;
}

TEST(CompiledSchema, RefusesASchemaNestedDeeperThanTheLimitAndTakesOneAtIt) {
  // kMaxSchemaDepth levels of JSON: {"items": ... {"type":"string"} ...}.
  auto nested = [](int levels) {
    std::string text = R"({"type":"string"})";
    for (int i = 1; i < levels; ++i) text = R"({"type":"array","items":)" + text + "}";
    return text;
  };
  std::string error;
  auto at_limit = CompiledSchema::compile(nested(kMaxSchemaDepth), error);
  ASSERT_TRUE(at_limit) << error;
  EXPECT_EQ(compile_error(nested(kMaxSchemaDepth + 1)),
            "schema nests deeper than " + std::to_string(kMaxSchemaDepth) + " levels");
}

TEST(CompiledSchema, RejectsJsonThatIsNotASchema) {
  for (std::string_view text : {
           R"({"type": 12})",
           R"({"type": "strnig"})",
           R"({"required": "name"})",
           R"({"properties": 5})",
           R"({"minLength": "three"})",
           R"({"pattern": "("})",
           R"({"patternProperties": {"[": {}}})",
           R"({"properties": {"a": {"pattern": "a{2,1}"}}})",
           R"([])",
           R"("string")",
           R"(12)",
           R"(null)",
       }) {
    std::string error = compile_error(text);
    EXPECT_EQ(error.rfind("schema is not a valid JSON Schema: ", 0), 0u) << text << ": " << error;
  }
}

TEST(CompiledSchema, PatternLikeDataIsNotCheckedAsRegex) {
  compile_ok(R"({"enum": [{"pattern": "("}], "default": {"pattern": "["}})");
}

TEST(CompiledSchema, RejectsRemoteRefsWithoutFetching) {
  for (std::string_view text : {
           R"({"$ref": "https://example.com/schema.json"})",
           R"({"properties": {"a": {"$ref": "http://example.com/s.json#/definitions/x"}}})",
           R"({"$ref": "other.json"})",
       }) {
    std::string error = compile_error(text);
    EXPECT_EQ(error.rfind("schema is not a valid JSON Schema: ", 0), 0u) << text << ": " << error;
  }
}

TEST(CompiledSchema, RejectsBrokenLocalRefs) {
  for (std::string_view text : {
           R"({"$ref": "#/definitions/missing"})",
           R"({"$ref": "#"})",
           R"({"$ref": "#/definitions/a", "definitions": {"a": {"$ref": "#/definitions/b"},
                                                       "b": {"$ref": "#/definitions/a"}}})",
           R"({"properties": {"x": {"$ref": "#/properties/x"}}})",
           R"({"$ref": "#no-pointer"})",
       }) {
    std::string error = compile_error(text);
    EXPECT_EQ(error.rfind("schema is not a valid JSON Schema: ", 0), 0u) << text << ": " << error;
  }
}

TEST(CompiledSchema, ResolvesLocalAndRecursiveRefs) {
  auto schema = compile_ok(R"({
    "definitions": {"node": {"type": "object",
      "properties": {"children": {"type": "array", "items": {"$ref": "#/definitions/node"}},
                     "id": {"type": "integer"}}}},
    "$ref": "#/definitions/node"})");
  EXPECT_TRUE(valid(schema, R"({"id": 1, "children": [{"id": 2, "children": []}]})"));
  auto errors = errors_for(schema, R"({"id": 1, "children": [{"id": 2}, {"id": "3"}]})");
  EXPECT_EQ(paths(errors), std::vector<std::string>{"/children/1/id"}) << dump(errors);
}

// A chain of $refs nests as deep as it is long however shallow its text:
// valijson parses each target where its $ref stands (300 links overflowed the
// schema module's stack). Each link counts as a level.
std::string ref_chain(int links) {
  std::string defs;
  for (int i = 0; i < links; ++i) {
    defs += "\"d" + std::to_string(i) + R"(":{"type":"array","items":{"$ref":"#/definitions/d)" +
            std::to_string(i + 1) + "\"}},";
  }
  defs += "\"d" + std::to_string(links) + R"(":{"type":"string"})";
  return R"({"$ref":"#/definitions/d0","definitions":{)" + defs + "}}";
}

// d0 -> d1 -> ... -> d<links> (a string), each d_i referring to d_i+1 twice
// under `keyword` ("properties": two properties; "allOf": in place).
std::string doubling_chain(int links, const std::string& keyword) {
  std::string defs;
  for (int i = 0; i < links; ++i) {
    const std::string next = "{\"$ref\":\"#/definitions/d" + std::to_string(i + 1) + "\"}";
    defs += "\"d" + std::to_string(i) + "\":" +
            (keyword == "allOf" ? "{\"allOf\":[" + next + "," + next + "]}," : "{\"properties\":{\"a\":" + next + ",\"b\":" + next + "}},");
  }
  defs += "\"d" + std::to_string(links) + R"(":{"type":"string"})";
  return R"({"$ref":"#/definitions/d0","definitions":{)" + defs + "}}";
}

TEST(CompiledSchema, RefusesARefChainDeeperThanTheLimitAndTakesOneWithin) {
  // root (1) -> $ref (2) -> items (3) -> $ref (4) -> ...: a link costs 2 levels.
  auto ok = compile_ok(ref_chain(60));
  std::string deep = "\"bottom\"";
  for (int i = 0; i < 60; ++i) deep = "[" + deep + "]";
  EXPECT_TRUE(valid(ok, deep));
  EXPECT_FALSE(valid(ok, "[" + deep + "]"));
  for (int links : {70, 300, 5000}) {
    EXPECT_EQ(compile_error(ref_chain(links)),
              "schema nests deeper than " + std::to_string(kMaxSchemaDepth) +
                  " levels once its $refs are followed (each $ref counts as a level)")
        << links;
  }
}

TEST(CompiledSchema, TakesRefsThatFanOutAndDefinitionsThatReferToEachOther) {
  // d_i refers to d_{i+1} twice: 2^20 paths through a 20-link chain, but
  // valijson parses each definition once, and so does the depth count.
  compile_ok(doubling_chain(20, "properties"));
  // Seven entity types, each with a property of every other type.
  std::string types;
  for (int i = 0; i < 7; ++i) {
    std::string props;
    for (int j = 0; j < 7; ++j) {
      if (j == i) continue;
      props += (props.empty() ? "" : ",") + std::string("\"t") + std::to_string(j) +
               "\":{\"$ref\":\"#/definitions/T" + std::to_string(j) + "\"}";
    }
    types += (i ? "," : "") + std::string("\"T") + std::to_string(i) +
             R"(":{"type":"object","properties":{"id":{"type":"integer"},)" + props + "}}";
  }
  auto entities = compile_ok(R"({"$ref":"#/definitions/T0","definitions":{)" + types + "}}");
  EXPECT_TRUE(valid(entities, R"({"id":1,"t3":{"id":2,"t0":{"id":3}}})"));
  EXPECT_FALSE(valid(entities, R"({"id":1,"t3":{"id":"2"}})"));
}

TEST(CompiledSchema, PropertiesNamedLikeKeywordsAreSchemasToo) {
  // A property called "default" (or "enum", "$ref") is a schema like any
  // other: its $ref is checked (valijson recursed without end on this one).
  EXPECT_EQ(compile_error(R"({"properties":{"default":{"$ref":"#/properties/default"}}})"),
            R"(schema is not a valid JSON Schema: $ref "#/properties/default" is part of a $ref cycle)");
  const std::string error = compile_error(R"({"properties":{"enum":{"type":"string","pattern":"("}}})");
  EXPECT_NE(error.find("is not a valid regular expression"), std::string::npos) << error;
  // A long chain under such a name counts toward the depth.
  std::string chain = ref_chain(300);
  chain.replace(chain.find("\"definitions\":"), 14, "\"properties\":{\"default\":{\"definitions\":");
  chain += "}}";
  for (std::size_t at = 0; (at = chain.find("#/definitions/", at)) != std::string::npos;) {
    chain.replace(at, 14, "#/properties/default/definitions/");
    at += 33;
  }
  EXPECT_EQ(compile_error(chain), "schema nests deeper than " + std::to_string(kMaxSchemaDepth) +
                                      " levels once its $refs are followed (each $ref counts as a level)")
      << chain.substr(0, 200);
  // The same names as data stay data.
  compile_ok(R"({"properties":{"x":{"enum":[{"pattern":"("}],"default":{"$ref":"nowhere"}}}})");
}

TEST(CompiledSchema, RefusesASchemaThatRefersBackToItselfWithoutMovingIntoTheValue) {
  for (const char* text : {R"({"allOf":[{"$ref":"#"}]})", R"({"anyOf":[{"type":"string"},{"not":{"$ref":"#"}}]})",
                           R"({"$ref":"#/definitions/a","definitions":{"a":{"oneOf":[{"$ref":"#/definitions/b"}]},"b":{"allOf":[{"$ref":"#/definitions/a"}]}}})"}) {
    const std::string error = compile_error(text);
    EXPECT_NE(error.find("leads back to where it stands without a property or an item in between"), std::string::npos)
        << text << ": " << error;
  }
  // Through a property or an item it ends with the value; unused definitions are not read.
  compile_ok(R"({"anyOf":[{"type":"string"},{"items":{"$ref":"#"}}]})");
  compile_ok(R"({"allOf":[{"properties":{"next":{"$ref":"#"}}}]})");
  compile_ok(R"({"definitions":{"loop":{"allOf":[{"$ref":"#/definitions/loop"}]}},"type":"object"})");
}

TEST(CompiledSchema, RefusesARelativeIdAndTakesAnAbsoluteOne) {
  // valijson parsed this one again under a longer scope ("y", "yy", ...) without end.
  EXPECT_EQ(compile_error(R"({"id":"y","properties":{"p":{"$ref":"#"}}})"),
            R"(schema is not a valid JSON Schema: "id": "y" is a relative URI, which this SDK does not support; give an absolute URI or leave "id" out)");
  auto absolute = compile_ok(R"({"id":"https://example.com/s.json","properties":{"p":{"$ref":"#"}}})");
  EXPECT_TRUE(valid(absolute, R"({"p":{"p":{}}})"));
  // A property called "id" is a property.
  compile_ok(R"({"properties":{"id":{"type":"string"}},"required":["id"]})");
}

TEST(CompiledSchema, RefusesARefIntoDataAndTakesOneIntoAPropertyNamedLikeData) {
  // Nothing under "default" is checked as a schema: a self-reference there
  // made valijson recurse without end.
  EXPECT_EQ(compile_error(R"({"properties":{"p":{"$ref":"#/default"}},"default":{"properties":{"q":{"$ref":"#/default/properties/q"}}}})"),
            R"(schema is not a valid JSON Schema: $ref "#/default" points into "default", which holds data, not a schema)");
  EXPECT_NE(compile_error(R"({"allOf":[{"$ref":"#/enum/0"}],"enum":[{}]})").find("points into \"enum\""), std::string::npos);
  auto ok = compile_ok(R"({"properties":{"default":{"type":"string"},"p":{"$ref":"#/properties/default"}}})");
  EXPECT_TRUE(valid(ok, R"({"p":"x"})"));
  EXPECT_FALSE(valid(ok, R"({"p":1})"));
}

TEST(CompiledSchema, RefusesPointersThatRapidJsonAndValijsonReadDifferently) {
  // valijson skips empty tokens and unescapes ~1 before %7E: the checks would see another node.
  for (const char* text : {R"({"$ref":"#/definitions/a/","definitions":{"a":{"":{},"$ref":"#"}}})",
                           R"({"$ref":"#/definitions//a","definitions":{"a":{"type":"string"}}})"}) {
    EXPECT_NE(compile_error(text).find("has an empty reference token"), std::string::npos) << text;
  }
  EXPECT_NE(compile_error(R"({"$ref":"#/definitions/a%7E1b","definitions":{"a~1b":{"type":"string"}}})").find("spells"),
            std::string::npos);
  // Several spellings of one target are parsed once each by valijson (it keeps
  // them by spelling): 70 spellings of "abcdefg" nest 70 copies, so they
  // count as 70 targets.
  std::string refs;
  for (int bits = 0; bits < 70; ++bits) {
    std::string name;
    for (int k = 0; k < 7; ++k) {
      const char c = static_cast<char>('a' + k);
      name += (bits >> k) & 1 ? "%" + std::string(1, "0123456789ABCDEF"[c >> 4]) + std::string(1, "0123456789ABCDEF"[c & 15])
                              : std::string(1, c);
    }
    refs += (bits ? "," : "") + std::string(R"({"items":{"$ref":"#/definitions/)") + name + "\"}}";
  }
  EXPECT_EQ(compile_error(R"({"$ref":"#/definitions/abcdefg","definitions":{"abcdefg":{"anyOf":[)" + refs + "]}}}"),
            "schema nests deeper than " + std::to_string(kMaxSchemaDepth) +
                " levels once its $refs are followed (each $ref counts as a level)");
  // Two spellings are two targets, and that is all.
  auto two = compile_ok(R"({"$ref":"#/definitions/t","definitions":{"t":{"anyOf":[{"type":"string"},)"
                        R"({"items":{"$ref":"#/definitions/%74"}},{"properties":{"p":{"$ref":"#/definitions/t"}}}]}}})");
  EXPECT_TRUE(valid(two, R"([["x"]])"));
  EXPECT_TRUE(valid(two, R"({"p":[{"p":"x"}]})"));
}

TEST(CompiledSchema, RefusesASchemaThatChecksOnePlaceOfAValueTooManyTimes) {
  // d_i applies d_i+1 twice in place: 2^40 checks of any value.
  EXPECT_EQ(compile_error(doubling_chain(40, "allOf")),
            "schema is too costly to check: it applies more than 100000 subschemas to one place of a value (its root) "
            "(allOf / anyOf / oneOf / $ref that apply the same subschemas over and over, or branches of an anyOf / "
            "oneOf that recurse under the same property); checking a lease's value against it could take hours. "
            "Apply each subschema once, and move a property the branches share out of them");
  // Twice per level of an array: 2^d checks at depth d.
  std::string error = compile_error(R"({"allOf":[{"items":{"$ref":"#"}},{"items":{"$ref":"#"}}]})");
  EXPECT_NE(error.find("to one place of a value 15 levels deep"), std::string::npos) << error;
  error = compile_error(R"({"anyOf":[{"type":"integer"},{"items":{"$ref":"#"}},{"contains":{"$ref":"#"}}]})");
  EXPECT_NE(error.find("schema is too costly to check"), std::string::npos) << error;
  error = compile_error(R"({"properties":{"a":{"$ref":"#"}},"patternProperties":{"^a":{"$ref":"#"}}})");
  EXPECT_NE(error.find("schema is too costly to check"), std::string::npos) << error;
  // An array or an object of nodes, a node per place; many properties of
  // the same type; each item of a tuple once; shared definitions.
  auto tree = compile_ok(R"({"$ref":"#/definitions/n","definitions":{"n":{"oneOf":[{"type":"array","items":{"$ref":"#/definitions/n"}},)"
                         R"({"type":"object","additionalProperties":{"$ref":"#/definitions/n"}},{"type":["string","number"]}]}}})");
  EXPECT_TRUE(valid(tree, R"({"a":[1,{"b":["x"]}]})"));
  std::string props, tuple;
  for (int i = 0; i < 50; ++i) {
    props += (i ? "," : "") + std::string("\"p") + std::to_string(i) + R"(":{"$ref":"#"})";
    tuple += (i ? "," : "") + std::string(R"({"$ref":"#"})");
  }
  compile_ok(R"({"properties":{)" + props + "}}");
  compile_ok(R"({"items":[)" + tuple + R"(],"additionalItems":{"type":"integer"}})");
  // valijson checks additionalItems on the items that failed theirs too: each
  // level of a wrong value doubles the work (18 levels took 9 s in wasm).
  error = compile_error(R"({"type":"array","items":[{"$ref":"#"}],"additionalItems":{"$ref":"#"}})");
  EXPECT_NE(error.find("schema is too costly to check"), std::string::npos) << error;
  // Accepted, but each item of an array is checked 2^10 times: a value of
  // 60 000 items would take ~6 * 10^7 checks (seconds), and is refused unchecked.
  std::string costly = doubling_chain(10, "allOf");
  costly.replace(costly.find(R"({"type":"string"})"), 17, R"({"type":"array","items":{"type":"integer"}})");
  auto heavy = compile_ok(costly);
  std::string small = "[0", large = "[0";
  for (int i = 1; i < 100; ++i) small += ",1";
  for (int i = 1; i < 60000; ++i) large += ",1";
  EXPECT_TRUE(valid(heavy, small + "]"));
  EXPECT_EQ(errors_for(heavy, small + ",\"x\"]")[0].path, "/100");
  EXPECT_EQ(dump(errors_for(heavy, large + "]")),
            "  [] the value could not be checked: against this schema it would take more than 50000000 checks (its places "
            "times the subschemas the schema applies at each, and with uniqueItems each pair of an array's items); send a "
            "smaller value, or apply fewer subschemas at each place\n");
  // uniqueItems compares each pair of items: 2 000 distinct items pass, 30 000
  // (4.5e8 pairs, 40 s in wasm) are refused unchecked.
  auto unique = compile_ok(R"({"type":"array","uniqueItems":true,"items":{"type":"integer"}})");
  std::string two = "[0", thirty = "[0";
  for (int i = 1; i < 2000; ++i) two += "," + std::to_string(i);
  for (int i = 1; i < 30000; ++i) thirty += "," + std::to_string(i);
  EXPECT_TRUE(valid(unique, two + "]"));
  EXPECT_NE(dump(errors_for(unique, thirty + "]")).find("the value could not be checked"), std::string::npos);
  EXPECT_FALSE(valid(unique, "[1,2,1]"));
  // A huge, deep value that fails: said in one error, not listed (listing
  // copies the path to each: 800 KB of nested zeros ran out of memory).
  auto nested = compile_ok(R"({"type":"array","items":{"$ref":"#"}})");
  std::string deep_zeros;
  for (int i = 0; i < 200; ++i) deep_zeros += "[";
  for (int i = 0; i < 150000; ++i) deep_zeros += i ? ",0" : "0";
  for (int i = 0; i < 200; ++i) deep_zeros += "]";
  EXPECT_EQ(dump(errors_for(nested, deep_zeros)), "  [] the value does not match the schema (it is too large and deep to list where)\n");
  EXPECT_EQ(errors_for(nested, "[[0]]")[0].path, "/0/0");
  // Names as valijson keeps them: cut at a NUL ("a\u0000x" and "a\u0000y" are
  // both "a": two recursions under one name), the first of two equal keys.
  error = compile_error(R"({"allOf":[{"properties":{"a\u0000x":{"$ref":"#"}}},{"properties":{"a\u0000y":{"$ref":"#"}}}]})");
  EXPECT_NE(error.find("schema is too costly to check"), std::string::npos) << error;
  error = compile_error(R"({"additionalProperties":{"allOf":[{"$ref":"#"},{"$ref":"#"}]},"additionalProperties":true})");
  EXPECT_NE(error.find("schema is too costly to check"), std::string::npos) << error;
  error = compile_error(R"({"properties":{"a":{"allOf":[{"$ref":"#"},{"$ref":"#"}]},"a":true}})");
  EXPECT_NE(error.find("schema is too costly to check"), std::string::npos) << error;
  compile_ok(R"({"additionalProperties":true,"additionalProperties":{"allOf":[{"$ref":"#"},{"$ref":"#"}]}})");
  // Members no properties entry names meet an empty schema each: 2000
  // branches that each name another property check every member 2000 times.
  std::string branches;
  for (int i = 0; i < 2000; ++i) {
    branches += (i ? "," : "") + std::string(R"({"properties":{"p)") + std::to_string(i) + R"(":{"type":"integer"}},"required":["p)" +
                std::to_string(i) + "\"]}";
  }
  auto wide = compile_ok(R"({"anyOf":[)" + branches + "]}");
  std::string members = "{";
  for (int i = 0; i < 30000; ++i) members += (i ? "," : "") + std::string("\"m") + std::to_string(i) + "\":0";
  EXPECT_NE(dump(errors_for(wide, members + "}")).find("the value could not be checked"), std::string::npos);
  // The JSON Schema validator applies the parent to the names where a $ref
  // parsed it first: refused rather than checked wrongly.
  EXPECT_EQ(compile_error(R"({"type":"object","propertyNames":{"pattern":"^[a-z]+$"},"additionalProperties":{"$ref":"#"}})"),
            "schema uses propertyNames together with $ref, which the JSON Schema validator checks against the wrong "
            "schema; give the names' rule as patternProperties with additionalProperties: false instead");
  auto names = compile_ok(R"({"type":"object","propertyNames":{"pattern":"^[a-z]+$"}})");
  EXPECT_TRUE(valid(names, R"({"abc":{}})"));
  EXPECT_FALSE(valid(names, R"({"ABC":{}})"));
  // Branches that recurse under names of their own: a filter language, an
  // expression tree, JSON-Logic-like operators. One branch per place.
  auto filter = compile_ok(R"({"$ref":"#/definitions/f","definitions":{"f":{"oneOf":[)"
                           R"({"type":"object","required":["and"],"properties":{"and":{"type":"array","items":{"$ref":"#/definitions/f"}}}},)"
                           R"({"type":"object","required":["or"],"properties":{"or":{"type":"array","items":{"$ref":"#/definitions/f"}}}},)"
                           R"({"type":"object","required":["not"],"properties":{"not":{"$ref":"#/definitions/f"}}},)"
                           R"({"type":"object","required":["field","eq"],"properties":{"field":{"type":"string"},"eq":{}}}]}}})");
  EXPECT_TRUE(valid(filter, R"({"and":[{"not":{"field":"a","eq":1}},{"or":[{"field":"b","eq":"x"}]}]})"));
  EXPECT_FALSE(valid(filter, R"({"and":[{"not":{"field":1,"eq":1}}]})"));
  compile_ok(R"({"$ref":"#/definitions/e","definitions":{"e":{"anyOf":[{"type":"number"},)"
             R"({"type":"object","properties":{"op":{"enum":["+","-"]},"left":{"$ref":"#/definitions/e"},"right":{"$ref":"#/definitions/e"}}},)"
             R"({"type":"object","properties":{"neg":{"$ref":"#/definitions/e"}}}]}}})");
  std::string ops;
  for (const char* op : {"==", "!=", "<", ">", "and", "or", "!", "if", "var", "in", "cat", "+", "*"}) {
    ops += std::string(ops.empty() ? "" : ",") + R"({"type":"object","properties":{")" + op +
           R"(":{"type":"array","items":{"$ref":"#/definitions/rule"}}},"additionalProperties":false})";
  }
  compile_ok(R"({"$ref":"#/definitions/rule","definitions":{"rule":{"anyOf":[{"type":["string","number","boolean","null"]},)" + ops + "]}}}");
  // Two branches that recurse under the same name double at each level
  // (valijson tries both: 18 levels took 1.6 s).
  error = compile_error(R"({"$ref":"#/definitions/n","definitions":{"n":{"oneOf":[)"
                        R"({"properties":{"kind":{"const":"a"},"children":{"type":"array","items":{"$ref":"#/definitions/n"}}}},)"
                        R"({"properties":{"kind":{"const":"b"},"children":{"type":"array","items":{"$ref":"#/definitions/n"}}}}]}}})");
  EXPECT_NE(error.find("move a property the branches share out of them"), std::string::npos) << error;
  std::string shared;
  for (int i = 0; i < 12; ++i) shared += (i ? "," : "") + std::string(R"({"$ref":"#/definitions/base"})");
  compile_ok(R"({"allOf":[)" + shared + R"(],"properties":{"next":{"$ref":"#"}},"definitions":{"base":{"allOf":[{"type":"object"},{"required":["id"]}]}}})");
}

TEST(CompiledSchema, ResolvesRefsToDollarDefsAsPydanticWritesThem) {
  // "$" in a fragment: RapidJSON wants it percent-encoded, valijson does not.
  auto schema = compile_ok(R"({"$ref":"#/$defs/Model","$defs":{"Model":{"type":"object","properties":{"child":{"$ref":"#/$defs/Model"},)"
                           R"("n":{"type":"integer"}},"required":["n"]}}})");
  EXPECT_TRUE(valid(schema, R"({"n":1,"child":{"n":2}})"));
  EXPECT_EQ(paths(errors_for(schema, R"({"n":1,"child":{"n":"2"}})")), std::vector<std::string>{"/child/n"});
  EXPECT_NE(compile_error(R"({"$ref":"#/$defs/Missing","$defs":{}})").find("points to nothing in this schema"), std::string::npos);
}

TEST(CompiledSchema, ReportsEveryWrongItemOfALongArrayOnceWithoutItsSummary) {
  // 20 000 wrong items: each reported at its own path, the "Failed to
  // validate item #i" summaries dropped (this took a pass over all errors per
  // summary: 1.35 s for this value).
  auto schema = compile_ok(R"({"items":{"type":"integer"}})");
  std::string value = "[";
  for (int i = 0; i < 20000; ++i) value += i ? ",\"x\"" : "\"x\"";
  const auto errors = errors_for(schema, value + "]");
  ASSERT_EQ(errors.size(), 20000u);
  EXPECT_EQ(errors[0].path, "/0");
  EXPECT_EQ(errors[19999].path, "/19999");
  for (const auto& e : errors) ASSERT_EQ(e.message, "Value type not permitted by 'type' constraint.") << e.path;
}

TEST(CompiledSchema, ARecursiveSchemaChecksAValueAsDeepAsTheCoreTakes) {
  auto schema = compile_ok(R"({"type":"object","properties":{"a":{"$ref":"#"}},"additionalProperties":false})");
  std::string deep = "{}", wrong = R"({"b":1})";
  for (int i = 0; i < kMaxJsonDepth - 2; ++i) {
    deep = R"({"a":)" + deep + "}";
    wrong = R"({"a":)" + wrong + "}";
  }
  EXPECT_TRUE(valid(schema, deep));
  EXPECT_FALSE(valid(schema, wrong));
}

constexpr std::string_view kLeaseInput = R"({
  "type": "object",
  "properties": {
    "name": {"type": "string", "minLength": 1},
    "count": {"type": "integer", "minimum": 0},
    "ratio": {"type": "number"},
    "enabled": {"type": "boolean"},
    "tags": {"type": "array", "items": {"type": "string"}}
  },
  "required": ["name", "count"],
  "additionalProperties": false
})";

TEST(CompiledSchema, AcceptsValidValues) {
  auto schema = compile_ok(kLeaseInput);
  EXPECT_TRUE(valid(schema, R"({"name": "x", "count": 3})"));
  EXPECT_TRUE(valid(schema,
                    R"({"name": "x", "count": 0, "ratio": 0.5, "enabled": true, "tags": ["a"]})"));
  EXPECT_TRUE(valid(schema, R"({"name": "x", "count": 3, "ratio": 2})"));
}

TEST(CompiledSchema, ValidDoesNotTouchErrors) {
  auto schema = compile_ok(kLeaseInput);
  std::vector<ValidationError> errors = {{"/x", "earlier"}};
  auto doc = parse(R"({"name": "x", "count": 3})");
  EXPECT_TRUE(schema.validate(doc, errors));
  ASSERT_EQ(errors.size(), 1u);
}

TEST(CompiledSchema, InvalidAppendsAfterExistingErrors) {
  auto schema = compile_ok(R"({"type": "string"})");
  std::vector<ValidationError> errors = {{"/x", "earlier"}};
  auto doc = parse("1");
  EXPECT_FALSE(schema.validate(doc, errors));
  ASSERT_EQ(errors.size(), 2u);
  EXPECT_EQ(errors[0].message, "earlier");
  EXPECT_EQ(errors[1].path, "");
}

TEST(CompiledSchema, TypesAreStrict) {
  auto schema = compile_ok(kLeaseInput);
  auto errors = errors_for(schema, R"({"name": "x", "count": "1"})");
  EXPECT_EQ(paths(errors), std::vector<std::string>{"/count"}) << dump(errors);
  EXPECT_NE(errors[0].message.find("type"), std::string::npos) << dump(errors);
  errors = errors_for(schema, R"({"name": "x", "count": 1.5})");
  EXPECT_EQ(paths(errors), std::vector<std::string>{"/count"}) << dump(errors);
  errors = errors_for(schema, R"({"name": "x", "count": 1, "enabled": "true"})");
  EXPECT_EQ(paths(errors), std::vector<std::string>{"/enabled"}) << dump(errors);
}

TEST(CompiledSchema, RootPathIsEmpty) {
  auto schema = compile_ok(kLeaseInput);
  auto errors = errors_for(schema, R"([1, 2])");
  EXPECT_EQ(paths(errors), std::vector<std::string>{""}) << dump(errors);
}

TEST(CompiledSchema, MissingRequiredIsReportedOnTheObject) {
  auto schema = compile_ok(R"({"type": "object", "properties": {
      "outer": {"type": "object", "required": ["inner"]}}})");
  auto errors = errors_for(schema, R"({"outer": {}})");
  ASSERT_EQ(paths(errors), std::vector<std::string>{"/outer"}) << dump(errors);
  EXPECT_NE(errors[0].message.find("inner"), std::string::npos) << dump(errors);

  auto top = compile_ok(kLeaseInput);
  errors = errors_for(top, R"({"count": 1})");
  ASSERT_EQ(paths(errors), std::vector<std::string>{""}) << dump(errors);
  EXPECT_NE(errors[0].message.find("name"), std::string::npos) << dump(errors);
}

TEST(CompiledSchema, NestedPropertyAndArrayIndexPaths) {
  auto schema = compile_ok(R"({"type": "object", "properties": {
      "items": {"type": "array", "items": {"type": "object", "properties": {
          "name": {"type": "string"}}}}}})");
  auto errors = errors_for(schema, R"({"items": [{"name": "a"}, {"name": "b"}, {"name": 3}]})");
  EXPECT_EQ(paths(errors), std::vector<std::string>{"/items/2/name"}) << dump(errors);

  auto tuple = compile_ok(R"({"type": "array", "items": [{"type": "string"}, {"type": "integer"}],
      "additionalItems": {"type": "boolean"}})");
  errors = errors_for(tuple, R"(["a", "b", true, 4])");
  EXPECT_EQ(paths(errors), (std::vector<std::string>{"/1", "/3"})) << dump(errors);
}

TEST(CompiledSchema, KeysWithSlashAndTildeAreEscaped) {
  auto schema = compile_ok(R"({"type": "object", "properties": {
      "a/b": {"type": "string"}, "m~n": {"type": "object", "properties": {
          "~/": {"type": "integer"}}}}})");
  auto errors = errors_for(schema, R"({"a/b": 1, "m~n": {"~/": "x"}})");
  EXPECT_EQ(paths(errors), (std::vector<std::string>{"/a~1b", "/m~0n/~0~1"})) << dump(errors);
}

TEST(CompiledSchema, KeysThatLookLikeValijsonContextStayIntact) {
  auto schema = compile_ok(R"({"type": "object", "properties": {
      "[x]": {"type": "string"}, "": {"type": "string"}}})");
  auto errors = errors_for(schema, R"({"[x]": 1, "": 2})");
  EXPECT_EQ(paths(errors), (std::vector<std::string>{"/", "/[x]"})) << dump(errors);
}

TEST(CompiledSchema, CollectsEveryViolation) {
  auto schema = compile_ok(kLeaseInput);
  auto errors = errors_for(
      schema, R"({"name": "", "count": -1, "ratio": "x", "tags": ["a", 2, null], "extra": 1})");
  auto p = paths(errors);
  for (std::string want : {"/name", "/count", "/ratio", "/tags/1", "/tags/2", ""}) {
    EXPECT_NE(std::find(p.begin(), p.end(), want), p.end()) << want << "\n" << dump(errors);
  }
  // Parent summaries ("Failed to validate item #1 in array.") are dropped.
  for (const auto& e : errors) {
    EXPECT_EQ(e.message.find("Failed to validate item"), std::string::npos) << dump(errors);
    EXPECT_EQ(e.message.find("associated with property name"), std::string::npos) << dump(errors);
  }
}

TEST(CompiledSchema, AdditionalPropertiesFalseNamesTheProperty) {
  auto schema = compile_ok(kLeaseInput);
  auto errors = errors_for(schema, R"({"name": "x", "count": 1, "extra": 1})");
  ASSERT_EQ(paths(errors), std::vector<std::string>{""}) << dump(errors);
  EXPECT_NE(errors[0].message.find("extra"), std::string::npos) << dump(errors);
}

TEST(CompiledSchema, AdditionalPropertiesSchemaReportsTheChild) {
  auto schema = compile_ok(R"({"type": "object", "additionalProperties": {"type": "integer"}})");
  auto errors = errors_for(schema, R"({"a": 1, "b": "x"})");
  EXPECT_EQ(paths(errors), std::vector<std::string>{"/b"}) << dump(errors);
}

TEST(CompiledSchema, BooleanSchemas) {
  auto yes = compile_ok("true");
  EXPECT_TRUE(valid(yes, "null"));
  EXPECT_TRUE(valid(yes, R"({"a": [1]})"));

  auto no = compile_ok("false");
  auto errors = errors_for(no, "{}");
  EXPECT_EQ(paths(errors), std::vector<std::string>{""}) << dump(errors);
  EXPECT_FALSE(errors[0].message.empty());

  // A false subschema reports nothing itself, so the parent's summary stays.
  auto nested = compile_ok(R"({"properties": {"a": false, "b": true}})");
  EXPECT_TRUE(valid(nested, R"({"b": 1})"));
  errors = errors_for(nested, R"({"a": 1, "b": 1})");
  ASSERT_EQ(errors.size(), 1u) << dump(errors);
  EXPECT_NE(errors[0].message.find("'a'"), std::string::npos) << dump(errors);
}

TEST(CompiledSchema, PatternsWork) {
  auto schema = compile_ok(R"({"type": "object",
      "properties": {"id": {"type": "string", "pattern": "^[a-z]+$"}},
      "patternProperties": {"^x-": {"type": "integer"}}})");
  EXPECT_TRUE(valid(schema, R"({"id": "abc", "x-a": 1})"));
  auto errors = errors_for(schema, R"({"id": "ABC", "x-a": "1"})");
  EXPECT_EQ(paths(errors), (std::vector<std::string>{"/id", "/x-a"})) << dump(errors);
}

TEST(CompiledSchema, CanBeMoved) {
  auto a = compile_ok(R"({"type": "integer"})");
  CompiledSchema b(std::move(a));
  EXPECT_TRUE(valid(b, "1"));
  auto c = compile_ok(R"({"type": "string"})");
  c = std::move(b);
  EXPECT_TRUE(valid(c, "1"));
  EXPECT_FALSE(valid(c, R"("1")"));

  std::vector<CompiledSchema> many;
  for (int i = 0; i < 20; ++i) many.push_back(compile_ok(R"({"type": "integer"})"));
  for (const auto& s : many) EXPECT_TRUE(valid(s, "7"));
}

TEST(CompiledSchema, ValidatesConcurrently) {
#ifdef __EMSCRIPTEN__
  GTEST_SKIP() << "the wasm build has no threads";
#endif
  auto schema = compile_ok(R"({"type": "object",
      "properties": {"id": {"type": "string", "pattern": "^[a-z]+$"}}, "required": ["id"]})");
  auto good = parse(R"({"id": "abc"})");
  auto bad = parse(R"({"id": "ABC"})");
  std::vector<std::thread> threads;
  std::vector<int> failures(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) {
        std::vector<ValidationError> errors;
        if (!schema.validate(good, errors)) ++failures[t];
        if (schema.validate(bad, errors) || errors.size() != 1 || errors[0].path != "/id") {
          ++failures[t];
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures, std::vector<int>(4, 0));
}

TEST(CompiledSchema, OutlivesTheSchemaText) {
  std::string text(kLeaseInput);
  std::string error;
  auto schema = CompiledSchema::compile(text, error);
  ASSERT_TRUE(schema) << error;
  text.assign(text.size(), 'x');
  text.clear();
  text.shrink_to_fit();
  EXPECT_TRUE(valid(*schema, R"({"name": "x", "count": 3})"));
  EXPECT_FALSE(valid(*schema, R"({"name": "x"})"));
}

}  // namespace
}  // namespace neuron
