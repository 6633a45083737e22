// json.h — a small strict JSON (RFC 8259) reader and writer: Hugging Face's config.json, the
// safetensors header and model.safetensors.index.json.
//
// Our own, a few hundred lines, rather than a library: no JSON development package is installed
// on the machines that build longctx, and a vendored or apt one would have to travel to the GPU
// nodes too. It reads what those files hold and nothing looser:
//  - objects (member order kept; a duplicate key is an error), arrays, strings with every escape
//    (\" \\ \/ \b \f \n \r \t \uXXXX, surrogate pairs joined; a lone surrogate, a raw control
//    character or invalid UTF-8 is an error), true, false, null;
//  - numbers: an integer literal (no fraction, no exponent) that fits int64 is kept exactly as an
//    integer; any other number is a double (as_int refuses it, as_double takes both);
//  - no comments, trailing commas, leading zeros, NaN/Infinity, or text after the value;
//  - nesting deeper than max_depth (default 128) is an error (no stack overflow on hostile input).
// Errors throw longctx::Error "NAME: invalid JSON at byte OFFSET: what" (NAME is the file).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace longctx::json {

enum class Type { null, boolean, integer, number, string, array, object };
const char* type_name(Type t);  // "null", "boolean", "integer", "number", "string", "array", "object"

class Value {
 public:
  using Array = std::vector<Value>;
  using Object = std::vector<std::pair<std::string, Value>>;  // in member order

  Value() = default;  // null
  Value(std::nullptr_t) {}
  Value(bool b) : type_(Type::boolean), b_(b) {}
  Value(int v) : type_(Type::integer), i_(v) {}
  Value(int64_t v) : type_(Type::integer), i_(v) {}
  Value(double v) : type_(Type::number), d_(v) {}
  Value(const char* s) : type_(Type::string), s_(s) {}
  Value(std::string s) : type_(Type::string), s_(std::move(s)) {}
  Value(Array a) : type_(Type::array), a_(std::move(a)) {}
  Value(Object o) : type_(Type::object), o_(std::move(o)) {}
  static Value object() { return Value(Object{}); }
  static Value array() { return Value(Array{}); }

  Type type() const { return type_; }
  bool is_null() const { return type_ == Type::null; }
  bool is_bool() const { return type_ == Type::boolean; }
  bool is_int() const { return type_ == Type::integer; }
  bool is_number() const { return type_ == Type::integer || type_ == Type::number; }
  bool is_string() const { return type_ == Type::string; }
  bool is_array() const { return type_ == Type::array; }
  bool is_object() const { return type_ == Type::object; }

  // Typed access; the wrong type throws Error naming `what` (e.g. "config.json: hidden_size").
  bool as_bool(const std::string& what = "value") const;
  int64_t as_int(const std::string& what = "value") const;
  double as_double(const std::string& what = "value") const;  // integers too
  const std::string& as_string(const std::string& what = "value") const;
  const Array& as_array(const std::string& what = "value") const;
  const Object& as_object(const std::string& what = "value") const;

  // Objects: the member named key, or nullptr (also for a non-object).
  const Value* find(std::string_view key) const;
  // Objects: sets (or replaces) a member, keeping the order of first insertion.
  Value& set(const std::string& key, Value v);
  // Arrays: appends.
  void push(Value v);

  bool operator==(const Value& o) const;

 private:
  Type type_ = Type::null;
  bool b_ = false;
  int64_t i_ = 0;
  double d_ = 0.0;
  std::string s_;
  Array a_;
  Object o_;
};

// Parses `text` (all of it: only whitespace may follow the value). `name` names it in messages.
Value parse(std::string_view text, const std::string& name, int max_depth = 128);
// Reads and parses a file (its path names it in messages).
Value parse_file(const std::string& path, int max_depth = 128);

// Serialises: compact with indent < 0, else pretty with `indent` spaces per level. Strings are
// escaped (control characters as \u00XX; other UTF-8 kept), doubles in the shortest form that reads
// back exactly (always with '.' or 'e', so they read back as doubles); NaN and infinity throw.
std::string dump(const Value& v, int indent = -1);

}  // namespace longctx::json
