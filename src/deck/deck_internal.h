// deck_internal.h — what the deck's files share (src/deck/ only): the key table, messages, the
// record of where each value came from, and the steps parse -> override -> validate -> print.
//
// Every key lives in one table (sections_of / stage_fields) that holds its type, its range or
// choices and where it is stored in Config; parsing, the range checks and to_toml all walk that
// table, so a new key is one line there (plus its cross-checks in check_consistency, if any).
#pragma once

#include <initializer_list>
#include <limits>
#include <map>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <toml++/toml.h>

#include "longctx/common.h"
#include "longctx/config.h"

namespace longctx::deck {

constexpr int64_t kMaxInt = std::numeric_limits<int64_t>::max();
constexpr double kInf = std::numeric_limits<double>::infinity();
inline constexpr const char* kHint =
    "README.md (Deck reference) lists every key with its type, default and range";

// ---- the key table (schema.cpp) ---------------------------------------------------------------

// Where a key's value is stored; the enum pointers are the string keys with a fixed set of values.
// The vectors are TOML arrays whose every element takes the field's range.
using Ptr = std::variant<int64_t*, uint64_t*, int*, double*, bool*, std::string*, TpMode*, Ring*,
                         Schedule*, DataKind*, Filler*, Device*, Transport*, std::vector<int64_t>*,
                         std::vector<double>*>;

struct Field {
  const char* key;
  Ptr ptr;
  int64_t ilo = 0, ihi = 0;  // integers: inclusive range
  double flo = 0, fhi = 0;   // floats: range, ends open or closed as below
  bool lo_open = false, hi_open = false;
};

// A key whose value is TOML text (strings and modes: --set takes the value as plain text).
bool is_text(const Ptr& p);

struct Section {
  const char* name;
  std::vector<Field> fields;
};

// The sections of a deck, with pointers into `c` (so the same table reads and writes a Config).
std::vector<Section> sections_of(Config& c);
std::vector<Field> stage_fields(StageConfig& s);
const Field* find_field(const std::vector<Field>& fields, std::string_view key);
std::string unknown_key(std::string_view key, const std::string& section,
                        const std::vector<Field>& fields);
std::string section_list(Config& c);  // "[run], [model], ..., [[stage]]"

// ---- messages ---------------------------------------------------------------------------------

template <class... A>
[[noreturn]] void fail(const std::string& at, fmt::format_string<A...> f, A&&... args) {
  throw_error(LONGCTX_WHERE, at + ": " + fmt::format(f, std::forward<A>(args)...), kHint);
}

// A TOML value as a person would write it, with its type first: `string "abc"`, `float 1.5`.
std::string describe(const toml::node& v);

// Where each key's value came from: "deck.toml:12" or "--set model.d_model=256".
struct Origins {
  std::string name;                          // the deck file, for messages
  std::map<std::string, std::string> set;    // keys given by --set -> "--set ..."
  std::map<std::string, std::string> given;  // every key present (file or --set) -> its location

  std::string line(const toml::source_region& src) const {
    return src.begin.line ? fmt::format("{}:{}", name, src.begin.line) : name;
  }
  std::string of(const std::string& key, const toml::source_region& src) const {
    auto it = set.find(key);
    return it != set.end() ? it->second : line(src);
  }
  // Where the first of `keys` came from, preferring a --set (the likelier cause of a conflict);
  // the file alone if the deck gives none of them.
  std::string first(std::initializer_list<std::string> keys) const {
    for (const auto& k : keys)
      if (auto it = set.find(k); it != set.end()) return it->second;
    for (const auto& k : keys)
      if (auto it = given.find(k); it != given.end()) return it->second;
    return name;
  }
  bool has(const std::string& key) const { return given.count(key) != 0; }
};

// ---- the steps --------------------------------------------------------------------------------

// override.cpp: puts one --set "section.key=value" into the parsed TOML tree.
void apply_override(toml::table& root, const std::string& ov, Origins& org);
// parse.cpp: the TOML tree -> Config (types and ranges checked), then check_consistency.
Config build(const toml::table& root, Origins& org);
// validate.cpp: the checks between keys; fills in the resolved defaults (out_dir, checkpoint.dir).
void check_consistency(Config& c, const Origins& org);
// print.cpp: a value as TOML text.
std::string value_text(const Ptr& ptr);

}  // namespace longctx::deck
