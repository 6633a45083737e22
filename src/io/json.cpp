// json.cpp — the strict JSON reader and the Value accessors (json.h says what it accepts); the
// writer is json_write.cpp.
#include "longctx/json.h"

#include <charconv>
#include <cmath>
#include <fstream>
#include <sstream>
#include <unordered_set>

#include "longctx/common.h"

namespace longctx::json {

const char* type_name(Type t) {
  switch (t) {
    case Type::null: return "null";
    case Type::boolean: return "boolean";
    case Type::integer: return "integer";
    case Type::number: return "number";
    case Type::string: return "string";
    case Type::array: return "array";
    case Type::object: return "object";
  }
  return "?";
}

// ---- Value ------------------------------------------------------------------------------------

namespace {
[[noreturn]] void wrong_type(const std::string& what, Type want, Type have) {
  FAIL_HINT("check the file against the format it should follow", "{} must be {} {}, not {}", what,
            want == Type::integer || want == Type::array || want == Type::object ? "an" : "a",
            type_name(want), type_name(have));
}
}  // namespace

bool Value::as_bool(const std::string& what) const {
  if (type_ != Type::boolean) wrong_type(what, Type::boolean, type_);
  return b_;
}
int64_t Value::as_int(const std::string& what) const {
  if (type_ != Type::integer) wrong_type(what, Type::integer, type_);
  return i_;
}
double Value::as_double(const std::string& what) const {
  if (type_ == Type::integer) return double(i_);
  if (type_ != Type::number) wrong_type(what, Type::number, type_);
  return d_;
}
const std::string& Value::as_string(const std::string& what) const {
  if (type_ != Type::string) wrong_type(what, Type::string, type_);
  return s_;
}
const Value::Array& Value::as_array(const std::string& what) const {
  if (type_ != Type::array) wrong_type(what, Type::array, type_);
  return a_;
}
const Value::Object& Value::as_object(const std::string& what) const {
  if (type_ != Type::object) wrong_type(what, Type::object, type_);
  return o_;
}
const Value* Value::find(std::string_view key) const {
  if (type_ != Type::object) return nullptr;
  for (const auto& [k, v] : o_)
    if (k == key) return &v;
  return nullptr;
}
Value& Value::set(const std::string& key, Value v) {
  CHECK(type_ == Type::object, "json: set('{}') on a {}", key, type_name(type_));
  for (auto& [k, old] : o_)
    if (k == key) return old = std::move(v);
  o_.emplace_back(key, std::move(v));
  return o_.back().second;
}
void Value::push(Value v) {
  CHECK(type_ == Type::array, "json: push on a {}", type_name(type_));
  a_.push_back(std::move(v));
}
bool Value::operator==(const Value& o) const {
  if (type_ != o.type_) return false;
  switch (type_) {
    case Type::null: return true;
    case Type::boolean: return b_ == o.b_;
    case Type::integer: return i_ == o.i_;
    case Type::number: return d_ == o.d_;
    case Type::string: return s_ == o.s_;
    case Type::array: return a_ == o.a_;
    case Type::object: return o_ == o.o_;
  }
  return false;
}

// ---- reader -----------------------------------------------------------------------------------

namespace {

class Parser {
 public:
  Parser(std::string_view t, const std::string& name, int max_depth)
      : t_(t), name_(name), max_depth_(max_depth) {}

  Value document() {
    skip_ws();
    Value v = value(0);
    skip_ws();
    if (p_ != t_.size()) fail("unexpected text after the JSON value");
    return v;
  }

 private:
  [[noreturn]] void fail(const std::string& what, size_t at = size_t(-1)) const {
    FAIL_HINT("the file is not valid JSON: an interrupted download or a hand edit?",
              "{}: invalid JSON at byte {}: {}", name_, at == size_t(-1) ? p_ : at, what);
  }
  bool eof() const { return p_ >= t_.size(); }
  char peek() const { return eof() ? '\0' : t_[p_]; }
  void skip_ws() {
    while (!eof() && (t_[p_] == ' ' || t_[p_] == '\t' || t_[p_] == '\n' || t_[p_] == '\r')) ++p_;
  }
  void expect_word(std::string_view w) {
    if (t_.substr(p_, w.size()) != w) fail("unexpected character" + shown());
    p_ += w.size();
  }
  std::string shown() const {
    if (eof()) return " (end of input)";
    const unsigned char c = static_cast<unsigned char>(t_[p_]);
    return c >= 0x20 && c < 0x7f ? fmt::format(" '{}'", char(c)) : fmt::format(" (byte 0x{:02x})", c);
  }

  Value value(int depth) {
    if (eof()) fail("unexpected end of input, expected a value");
    switch (peek()) {
      case '{': return object(depth + 1);
      case '[': return array(depth + 1);
      case '"': return Value(string());
      case 't': expect_word("true"); return Value(true);
      case 'f': expect_word("false"); return Value(false);
      case 'n': expect_word("null"); return Value();
      default:
        if (peek() == '-' || (peek() >= '0' && peek() <= '9')) return number();
        fail("unexpected character" + shown() + ", expected a value");
    }
  }

  void enter(int depth) {
    if (depth > max_depth_) fail(fmt::format("nesting deeper than {} levels", max_depth_));
  }

  Value object(int depth) {
    enter(depth);
    ++p_;  // '{'
    Value::Object members;
    // Duplicates: a linear search for small objects, a hash set once an object is large (a
    // tokenizer.json vocabulary has 10^5 members).
    std::unordered_set<std::string> seen;
    skip_ws();
    if (peek() == '}') return ++p_, Value(std::move(members));
    for (;;) {
      skip_ws();
      if (peek() != '"') fail("expected a string key" + shown());
      const size_t at = p_;
      std::string key = string();
      bool dup = false;
      if (members.size() < 32) {
        for (const auto& m : members) dup = dup || m.first == key;
      } else {
        if (seen.empty())
          for (const auto& m : members) seen.insert(m.first);
        dup = !seen.insert(key).second;
      }
      if (dup) fail(fmt::format("duplicate key \"{}\"", key), at);
      skip_ws();
      if (peek() != ':') fail("expected ':' after the key" + shown());
      ++p_;
      skip_ws();
      Value item = value(depth);
      members.emplace_back(std::move(key), std::move(item));
      skip_ws();
      if (peek() == ',') { ++p_; continue; }
      if (peek() == '}') return ++p_, Value(std::move(members));
      fail("expected ',' or '}' in an object" + shown());
    }
  }

  Value array(int depth) {
    enter(depth);
    ++p_;  // '['
    Value v = Value::array();
    skip_ws();
    if (peek() == ']') return ++p_, v;
    for (;;) {
      skip_ws();
      v.push(value(depth));
      skip_ws();
      if (peek() == ',') { ++p_; continue; }
      if (peek() == ']') return ++p_, v;
      fail("expected ',' or ']' in an array" + shown());
    }
  }

  unsigned hex4() {
    if (p_ + 4 > t_.size()) fail("truncated \\u escape");
    unsigned u = 0;
    for (int k = 0; k < 4; ++k) {
      const char c = t_[p_++];
      u <<= 4;
      if (c >= '0' && c <= '9') u |= unsigned(c - '0');
      else if (c >= 'a' && c <= 'f') u |= unsigned(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F') u |= unsigned(c - 'A' + 10);
      else fail("\\u must be followed by 4 hex digits", p_ - 1);
    }
    return u;
  }

  static void put_utf8(std::string& s, uint32_t c) {
    if (c < 0x80) s += char(c);
    else if (c < 0x800) s += char(0xc0 | (c >> 6)), s += char(0x80 | (c & 0x3f));
    else if (c < 0x10000)
      s += char(0xe0 | (c >> 12)), s += char(0x80 | ((c >> 6) & 0x3f)), s += char(0x80 | (c & 0x3f));
    else
      s += char(0xf0 | (c >> 18)), s += char(0x80 | ((c >> 12) & 0x3f)),
          s += char(0x80 | ((c >> 6) & 0x3f)), s += char(0x80 | (c & 0x3f));
  }

  // One UTF-8 sequence starting at p_ (its first byte >= 0x80), validated and copied.
  void utf8(std::string& s) {
    const size_t at = p_;
    const unsigned char c0 = static_cast<unsigned char>(t_[p_]);
    int n = c0 >= 0xc2 && c0 <= 0xdf ? 1 : c0 >= 0xe0 && c0 <= 0xef ? 2 : c0 >= 0xf0 && c0 <= 0xf4 ? 3 : -1;
    if (n < 0 || p_ + size_t(n) >= t_.size()) fail("invalid UTF-8 in a string", at);
    uint32_t cp = c0 & (n == 1 ? 0x1f : n == 2 ? 0x0f : 0x07);
    for (int k = 1; k <= n; ++k) {
      const unsigned char c = static_cast<unsigned char>(t_[p_ + size_t(k)]);
      if ((c & 0xc0) != 0x80) fail("invalid UTF-8 in a string", at);
      cp = (cp << 6) | (c & 0x3f);
    }
    const uint32_t min = n == 1 ? 0x80 : n == 2 ? 0x800 : 0x10000;
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) fail("invalid UTF-8 in a string", at);
    s.append(t_.substr(p_, size_t(n) + 1));
    p_ += size_t(n) + 1;
  }

  std::string string() {
    const size_t open = p_++;  // '"'
    std::string s;
    for (;;) {
      if (eof()) fail("unterminated string", open);
      const char c = t_[p_];
      if (c == '"') return ++p_, s;
      if (static_cast<unsigned char>(c) < 0x20) fail("raw control character in a string (escape it)");
      if (static_cast<unsigned char>(c) >= 0x80) { utf8(s); continue; }
      if (c != '\\') { s += c, ++p_; continue; }
      const size_t esc = p_++;
      if (eof()) fail("unterminated string", open);
      switch (t_[p_++]) {
        case '"': s += '"'; break;
        case '\\': s += '\\'; break;
        case '/': s += '/'; break;
        case 'b': s += '\b'; break;
        case 'f': s += '\f'; break;
        case 'n': s += '\n'; break;
        case 'r': s += '\r'; break;
        case 't': s += '\t'; break;
        case 'u': {
          uint32_t u = hex4();
          if (u >= 0xdc00 && u <= 0xdfff) fail("lone low surrogate in a \\u escape", esc);
          if (u >= 0xd800 && u <= 0xdbff) {  // a high surrogate: a low one must follow
            if (t_.substr(p_, 2) != "\\u") fail("high surrogate not followed by a low one", esc);
            p_ += 2;
            const uint32_t lo = hex4();
            if (lo < 0xdc00 || lo > 0xdfff) fail("high surrogate not followed by a low one", esc);
            u = 0x10000 + ((u - 0xd800) << 10) + (lo - 0xdc00);
          }
          put_utf8(s, u);
          break;
        }
        default: fail("unknown escape \\" + std::string(1, t_[p_ - 1]), esc);
      }
    }
  }

  Value number() {
    const size_t at = p_;
    if (peek() == '-') ++p_;
    auto digits = [&] {
      const size_t d = p_;
      while (!eof() && t_[p_] >= '0' && t_[p_] <= '9') ++p_;
      return p_ - d;
    };
    if (peek() == '0') {
      ++p_;
      if (peek() >= '0' && peek() <= '9') fail("leading zero in a number", at);
    } else if (digits() == 0) {
      fail("a digit must follow '-'", at);
    }
    bool integer = true;
    if (peek() == '.') {
      ++p_, integer = false;
      if (digits() == 0) fail("a digit must follow the decimal point", at);
    }
    if (peek() == 'e' || peek() == 'E') {
      ++p_, integer = false;
      if (peek() == '+' || peek() == '-') ++p_;
      if (digits() == 0) fail("a digit must follow the exponent", at);
    }
    const char *first = t_.data() + at, *last = t_.data() + p_;
    if (integer) {
      int64_t i = 0;
      const auto r = std::from_chars(first, last, i);
      if (r.ec == std::errc() && r.ptr == last) return Value(i);  // else out of int64: a double
    }
    double d = 0;
    const auto r = std::from_chars(first, last, d);
    if (r.ec == std::errc::result_out_of_range) {  // overflow is refused, underflow reads as the nearest
      d = std::strtod(std::string(first, last).c_str(), nullptr);
      if (std::isinf(d)) fail("number out of the range of a double", at);
    } else if (r.ec != std::errc() || r.ptr != last) {
      fail("malformed number", at);
    }
    return Value(d);
  }

  std::string_view t_;
  const std::string& name_;
  int max_depth_;
  size_t p_ = 0;
};

}  // namespace

Value parse(std::string_view text, const std::string& name, int max_depth) {
  return Parser(text, name, max_depth).document();
}

Value parse_file(const std::string& path, int max_depth) {
  std::ifstream f(path, std::ios::binary);
  CHECK_HINT(f.good(), "check the path", "cannot open {}", path);
  std::ostringstream ss;
  ss << f.rdbuf();
  CHECK_HINT(!f.bad(), "check the file", "cannot read {}", path);
  return parse(ss.str(), path, max_depth);
}

}  // namespace longctx::json
