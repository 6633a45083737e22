// test_json.cpp — the strict JSON reader and writer (include/longctx/json.h): every value kind,
// every escape, exact int64, doubles that round-trip, and each malformed input refused with the
// byte offset of the fault.
#include <cmath>
#include <string>

#include "catch.h"
#include "longctx/json.h"
#include "util.h"

using namespace longctx;
using json::Value;

namespace {
std::string parse_error(const std::string& text, int depth = 128) {
  return test::error_of([&] { json::parse(text, "t.json", depth); });
}
}  // namespace

TEST_CASE("json: values of every kind", "[json]") {
  const Value v = json::parse(
      R"( {"a": 1, "b": -9223372036854775808, "c": 9223372036854775807, "d": 1.5e-3, "e": -0.0,
          "f": [true, false, null, [], {}], "g": "x", "h": 12345678901234567890, "i": 1E2 } )",
      "t.json");
  REQUIRE(v.is_object());
  CHECK(v.as_object().size() == 9);
  CHECK(v.as_object()[0].first == "a");  // member order kept
  CHECK(v.find("a")->as_int() == 1);
  CHECK(v.find("b")->as_int() == INT64_MIN);  // exact at both ends of int64
  CHECK(v.find("c")->as_int() == INT64_MAX);
  CHECK(v.find("d")->as_double() == 1.5e-3);
  CHECK(std::signbit(v.find("e")->as_double()));
  CHECK_FALSE(v.find("d")->is_int());
  const auto& f = v.find("f")->as_array();
  CHECK((f.size() == 5 && f[0].as_bool() && !f[1].as_bool() && f[2].is_null()));
  CHECK(v.find("g")->as_string() == "x");
  CHECK(v.find("h")->type() == json::Type::number);  // beyond int64: a double
  CHECK(v.find("h")->as_double() == 12345678901234567890.0);
  CHECK(v.find("i")->type() == json::Type::number);
  CHECK(v.find("zz") == nullptr);
  CHECK_THAT(test::error_of([&] { v.find("g")->as_int("config.json: hidden_size"); }),
             Catch::Matchers::Contains("config.json: hidden_size must be an integer, not string"));
  CHECK_THAT(test::error_of([&] { v.find("d")->as_int("x"); }), Catch::Matchers::Contains("not number"));
}

TEST_CASE("json: string escapes, \\u and surrogate pairs, UTF-8", "[json]") {
  const Value v = json::parse(R"(["\"\\\/\b\f\n\r\t", "\u0041\u00e9\u20AC", "\ud83d\ude00", "é€😀"])", "t.json");
  const auto& a = v.as_array();
  CHECK(a[0].as_string() == "\"\\/\b\f\n\r\t");
  CHECK(a[1].as_string() == "A\xc3\xa9\xe2\x82\xac");
  CHECK(a[2].as_string() == "\xf0\x9f\x98\x80");  // U+1F600 from its surrogate pair
  CHECK(a[3].as_string() == "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
}

TEST_CASE("json: malformed inputs are refused with the byte offset", "[json]") {
  using Catch::Matchers::Contains;
  struct Case {
    std::string text, message;
  };
  const Case cases[] = {
      {"", "at byte 0: unexpected end of input"},
      {"{\"a\":1,}", "at byte 7: expected a string key"},
      {"[1,]", "at byte 3: unexpected character ']'"},
      {"[1 2]", "at byte 3: expected ',' or ']'"},
      {"{\"a\" 1}", "at byte 5: expected ':'"},
      {"{\"a\":1,\"a\":2}", "at byte 7: duplicate key \"a\""},
      {"01", "at byte 0: leading zero"},
      {"-", "a digit must follow '-'"},
      {"1.", "a digit must follow the decimal point"},
      {"1e+", "a digit must follow the exponent"},
      {"1e999", "out of the range of a double"},
      {"NaN", "unexpected character 'N'"},
      {"tru", "unexpected character 't'"},
      {"\"abc", "at byte 0: unterminated string"},
      {"\"a\tb\"", "at byte 2: raw control character"},
      {"\"\\x\"", "at byte 1: unknown escape \\x"},
      {"\"\\u12G4\"", "4 hex digits"},
      {"\"\\u12\"", "truncated \\u escape"},
      {"\"\\ud83d\"", "high surrogate not followed by a low one"},
      {"\"\\ud83d\\u0041\"", "high surrogate not followed by a low one"},
      {"\"\\ude00\"", "lone low surrogate"},
      {"\"\xc3\"", "invalid UTF-8"},
      {"\"\xc0\xaf\"", "invalid UTF-8"},           // overlong
      {"\"\xed\xa0\x80\"", "invalid UTF-8"},       // an encoded surrogate
      {"{} x", "at byte 3: unexpected text after the JSON value"},
      {"// c\n{}", "unexpected character '/'"},
      {"{'a':1}", "expected a string key"},
  };
  for (const Case& c : cases) {
    INFO("input: " << c.text);
    const std::string e = parse_error(c.text);
    CHECK_THAT(e, Contains("t.json: invalid JSON"));
    CHECK_THAT(e, Contains(c.message));
  }
  // The depth limit: 5 levels pass a limit of 5, 6 do not.
  CHECK(parse_error("[[[[[1]]]]]", 5).empty());
  CHECK_THAT(parse_error("[[[[[[1]]]]]]", 5), Contains("nesting deeper than 5 levels"));
  CHECK_THAT(parse_error(std::string(100000, '['), 128), Contains("nesting deeper than 128"));
}

TEST_CASE("json: dump reads back equal, compact and pretty", "[json]") {
  Value o = Value::object();
  o.set("s", std::string("q\"\\\n\x01\xc3\xa9"));
  o.set("i", int64_t(-42));
  o.set("big", INT64_MIN);
  o.set("d", 0.1);
  o.set("w", 3.0);  // a whole double stays a double
  o.set("tiny", 4.9e-324);
  o.set("a", Value(Value::Array{true, nullptr, Value::object(), Value::array()}));
  o.set("i", int64_t(7));  // replaces, keeps the position
  CHECK(o.as_object()[1].first == "i");
  for (int indent : {-1, 2}) {
    const std::string text = json::dump(o, indent);
    INFO(text);
    const Value back = json::parse(text, "dump");
    CHECK(back == o);
    CHECK(back.find("w")->type() == json::Type::number);
  }
  CHECK(json::dump(o).find("\\u0001") != std::string::npos);
  CHECK(json::dump(Value(Value::Array{1, 2})) == "[1,2]");
  CHECK_THAT(test::error_of([] { json::dump(Value(NAN)); }), Catch::Matchers::Contains("cannot be written"));
}
