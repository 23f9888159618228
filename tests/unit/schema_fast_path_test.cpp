// SchemaFastPath: which schemas take it, and that validate() with it gives
// exactly the answers valijson alone gives (the fuzzer checks the same on
// random values: tests/fuzz/fuzz_schema.cpp).
#include <gtest/gtest.h>

#include "neuron/capability_type.h"
#include "neuron/schema.h"
#include "neuron/schema_fast_path.h"

namespace neuron {
namespace {

CompiledSchema compile(const std::string& text) {
  std::string error;
  auto schema = CompiledSchema::compile(text, error);
  if (!schema) throw std::runtime_error(error);
  return std::move(*schema);
}

rapidjson::Document parse(const char* text) {
  rapidjson::Document doc;
  doc.Parse(text);
  if (doc.HasParseError()) throw std::runtime_error(text);
  return doc;
}

TEST(SchemaFastPath, CommonSchemasTakeItOthersFallBack) {
  EXPECT_TRUE(compile(R"({"type":"object","required":["code"],"properties":{"code":{"type":"string"},)"
                      R"("n":{"type":"integer","minimum":1},"tags":{"type":"array","items":{"type":"string"}}},)"
                      R"("additionalProperties":false,"title":"t","description":"d"})")
                  .has_fast_path());
  EXPECT_TRUE(compile("true").has_fast_path());
  EXPECT_TRUE(compile(R"({"enum":["a","b",null]})").has_fast_path());
  for (const char* other : {R"({"type":"string","pattern":"^a"})", R"({"type":"string","format":"date"})",
                            R"({"allOf":[{"type":"string"}]})", R"({"items":[{"type":"string"}]})",
                            R"({"enum":[1,2]})",
                            R"({"definitions":{"a":{}},"$ref":"#/definitions/a"})"}) {
    EXPECT_FALSE(compile(other).has_fast_path()) << other;
  }
}

TEST(SchemaFastPath, AgreesWithValijsonOnEveryValue) {
  const char* schemas[] = {
      R"({"type":"object","required":["code"],"properties":{"code":{"type":"string","minLength":1,"maxLength":5},)"
      R"("n":{"type":"integer","minimum":1,"maximum":10},"x":{"type":"number","exclusiveMinimum":0,"exclusiveMaximum":1},)"
      R"("tags":{"type":"array","items":{"type":"string"},"minItems":1,"maxItems":2},"k":{"enum":["a",true,null]}},)"
      R"("additionalProperties":{"type":"boolean"},"minProperties":1,"maxProperties":4})",
      R"({"type":["string","null"],"const":"only"})",
      R"({"properties":{"no":false}})",
  };
  const char* values[] = {
      R"({"code":"abc"})", R"({"code":""})", R"({"code":"abcdef"})", R"({"code":"héllo"})", R"({"code":"héllo!"})",
      R"({"code":"a","n":1})", R"({"code":"a","n":0})", R"({"code":"a","n":11})", R"({"code":"a","n":1.0})",
      R"({"code":"a","n":2.5})", R"({"code":"a","x":0.5})", R"({"code":"a","x":0})", R"({"code":"a","x":1})",
      R"({"code":"a","tags":[]})", R"({"code":"a","tags":["x"]})", R"({"code":"a","tags":["x",1]})",
      R"({"code":"a","tags":["x","y","z"]})", R"({"code":"a","k":"a"})", R"({"code":"a","k":false})",
      R"({"code":"a","k":null})", R"({"code":"a","k":"b"})", R"({"code":"a","other":true})",
      R"({"code":"a","other":"no"})", R"({"code":"a","b":true,"c":true,"d":true})", R"({})", R"({"n":1})",
      R"({"code":"a","code":"b"})", R"({"code":"a","other":true,"other":false})",
      R"("only")", R"("other")", R"(null)", R"(1)", R"([])", R"({"no":1})", R"({"yes":1})", R"(9007199254740993)",
  };
  for (const char* s : schemas) {
    const CompiledSchema schema = compile(s);
    ASSERT_TRUE(schema.has_fast_path()) << s;
    for (const char* v : values) {
      const rapidjson::Document value = parse(v);
      std::vector<ValidationError> fast_errors, slow_errors;
      const bool fast = schema.validate(value, fast_errors);
      const bool slow = schema.validate_without_fast_path(value, slow_errors);
      EXPECT_EQ(fast, slow) << s << "\n  value: " << v;
      EXPECT_EQ(fast_errors.size(), slow_errors.size()) << "errors always come from valijson";
    }
  }
}

TEST(SchemaFastPath, AgreesWithValijsonPastTheFirst64PropertiesAndOnRequiredNamesNotDeclared) {
  // The object check keeps the first 64 declared names as bits (required,
  // duplicates); names beyond them, and required names that are not
  // declared, take the slower road. Both must give valijson's answers.
  std::string props;
  for (int i = 0; i < 70; ++i) props += (i ? "," : "") + std::string("\"p") + std::to_string(i) + R"(":{"type":"integer"})";
  const CompiledSchema schema = compile(R"({"type":"object","properties":{)" + props +
                                        R"(,"p3":{"type":"string"}},"required":["p0","p65","q"],"additionalProperties":{"type":"boolean"}})");
  ASSERT_TRUE(schema.has_fast_path());
  const char* values[] = {
      R"({"p0":1,"p65":2,"q":true})", R"({"p0":1,"p65":2})", R"({"p65":2,"q":true})", R"({"p0":1,"q":true})",
      R"({"p0":1,"p65":2,"q":true,"p3":4})", R"({"p0":1,"p65":2,"q":true,"p3":"x"})",
      R"({"p0":1,"p65":2,"q":true,"p65":3})", R"({"p0":1,"p65":2,"q":true,"p0":3})", R"({"p0":1,"p65":2,"q":true,"q":false})",
      R"({"p0":1,"p65":2,"q":true,"p69":"x"})", R"({"p0":1,"p65":2,"q":1})", R"({"p0":1,"p65":"2","q":true})",
  };
  for (const char* v : values) {
    const rapidjson::Document value = parse(v);
    std::vector<ValidationError> fast_errors, slow_errors;
    EXPECT_EQ(schema.validate(value, fast_errors), schema.validate_without_fast_path(value, slow_errors)) << v;
  }
  const rapidjson::Document ok = parse(R"({"p0":1,"p65":2,"q":true,"p3":4,"p64":5})");
  std::vector<ValidationError> errors;
  EXPECT_TRUE(schema.certainly_valid(ok)) << "the fast path itself vouches";
  EXPECT_TRUE(schema.validate(ok, errors));
}

}  // namespace
}  // namespace neuron
