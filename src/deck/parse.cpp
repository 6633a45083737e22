// parse.cpp — a deck's TOML text -> Config: syntax, sections, keys, types and ranges (the key
// table in schema.cpp), the [[stage]] tables; then the --set overrides and check_consistency.
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>

#include <fmt/ranges.h>

#include "deck_internal.h"

namespace longctx {
namespace deck {

std::string describe(const toml::node& v) {
  if (auto* s = v.as_string()) return fmt::format("string \"{}\"", s->get());
  if (auto* i = v.as_integer()) return fmt::format("integer {}", i->get());
  if (auto* x = v.as_floating_point()) return fmt::format("float {}", x->get());
  if (auto* b = v.as_boolean()) return fmt::format("boolean {}", b->get());
  if (v.is_table()) return "a table";
  if (v.is_array()) return "an array";
  return "a date/time";
}

namespace {

std::string range_text(const Field& f, bool is_float) {
  if (!is_float)
    return f.ihi == kMaxInt ? fmt::format(">= {}", f.ilo) : fmt::format("{}..{}", f.ilo, f.ihi);
  if (std::isinf(f.fhi)) return fmt::format("{} {}", f.lo_open ? ">" : ">=", f.flo);
  return fmt::format("{}{}, {}{}", f.lo_open ? '(' : '[', f.flo, f.fhi, f.hi_open ? ')' : ']');
}

void read_value(const Field& f, const toml::node& v, const std::string& key,
                const std::string& at) {
  std::visit(
      [&](auto* p) {
        using T = std::remove_pointer_t<decltype(p)>;
        if constexpr (std::is_same_v<T, bool>) {
          if (!v.is_boolean())
            fail(at, "{} must be a boolean (true or false), got {}", key, describe(v));
          *p = v.as_boolean()->get();
        } else if constexpr (std::is_same_v<T, std::string>) {
          if (!v.is_string()) fail(at, "{} must be a string, got {}", key, describe(v));
          *p = v.as_string()->get();
        } else if constexpr (Mode<T>) {
          if (!v.is_string()) fail(at, "{} must be a string, got {}", key, describe(v));
          const std::string& s = v.as_string()->get();
          const auto mode = mode_from_string<T>(s);
          if (!mode)
            fail(at, "{} = \"{}\" is not one of \"{}\"", key, s,
                 fmt::join(ModeNames<T>::names, "\" | \""));
          *p = *mode;
        } else if constexpr (std::is_same_v<T, std::vector<int64_t>> || std::is_same_v<T, std::vector<double>>) {
          const toml::array* a = v.as_array();
          if (!a) fail(at, "{} must be an array ([...]), got {}", key, describe(v));
          T out(a->size());
          for (size_t i = 0; i < a->size(); ++i) {  // each element as the scalar key it holds
            Field elem = f;
            elem.ptr = &out[i];
            read_value(elem, *a->get(i), fmt::format("{}[{}]", key, i), at);
          }
          *p = std::move(out);
        } else if constexpr (std::is_same_v<T, double>) {
          if (!v.is_number()) fail(at, "{} must be a number, got {}", key, describe(v));
          double x = v.is_integer() ? double(v.as_integer()->get()) : v.as_floating_point()->get();
          bool lo_ok = f.lo_open ? x > f.flo : x >= f.flo;
          bool hi_ok = f.hi_open ? x < f.fhi : x <= f.fhi;
          if (!std::isfinite(x) || !lo_ok || !hi_ok)
            fail(at, "{} = {} is out of range (allowed: {})", key, x, range_text(f, true));
          *p = x;
        } else {  // the integer types
          if (!v.is_integer()) fail(at, "{} must be an integer, got {}", key, describe(v));
          int64_t x = v.as_integer()->get();
          if (x < f.ilo || x > f.ihi)
            fail(at, "{} = {} is out of range (allowed: {})", key, x, range_text(f, false));
          *p = static_cast<T>(x);
        }
      },
      f.ptr);
}

// Reads every key of `t` (section `prefix`, "[label]" in messages) into the Config behind `fields`.
void read_table(const toml::table& t, const std::vector<Field>& fields, const std::string& prefix,
                const std::string& label, Origins& org) {
  for (auto&& [k, v] : t) {
    const std::string key = prefix + "." + std::string(k.str());
    const Field* f = find_field(fields, k.str());
    if (!f) fail(org.of(key, k.source()), "{}", unknown_key(k.str(), label, fields));
    const std::string at = org.of(key, v.source());
    read_value(*f, v, key, at);
    org.given[key] = at;
  }
}

void read_stages(const toml::table& root, Config& c, Origins& org) {
  const toml::node* node = root.get("stage");
  const toml::array* arr = node ? node->as_array() : nullptr;
  if (!node || (arr && arr->empty()))
    fail(org.name,
         "no [[stage]] table: a deck needs at least one stage ([[stage]] with seq_len, "
         "rope_theta and steps)");
  if (!arr || !arr->is_array_of_tables())
    fail(org.line(node->source()),
         "stage must be an array of tables (write each stage as [[stage]]), got {}",
         describe(*node));
  for (size_t i = 0; i < arr->size(); i++) {
    const toml::table& t = *arr->get(i)->as_table();
    const std::string prefix = fmt::format("stage[{}]", i + 1);
    StageConfig s;
    read_table(t, stage_fields(s), prefix, prefix, org);
    for (const char* req : {"seq_len", "rope_theta", "steps"})
      if (!t.contains(req))
        fail(org.line(t.source()),
             "{} is missing the required key {}.{} (required: seq_len, rope_theta, steps)", prefix,
             prefix, req);
    c.stages.push_back(s);
  }
}

}  // namespace

Config build(const toml::table& root, Origins& org) {
  Config c;
  c.deck_path = org.name;
  auto sections = sections_of(c);
  for (auto&& [k, node] : root) {
    const std::string sec(k.str());
    if (sec == "stage") continue;
    const Section* s = nullptr;
    for (const auto& x : sections)
      if (sec == x.name) s = &x;
    if (!s && node.is_table())
      fail(org.line(k.source()), "unknown section [{}] (known sections: {})", sec, section_list(c));
    if (!s)
      fail(org.line(k.source()), "unknown key '{}' at the top level: keys belong in a section ({})",
           sec, section_list(c));
    const toml::table* t = node.as_table();
    if (!t)
      fail(org.line(node.source()), "{} must be a section [{}], got {}", sec, sec, describe(node));
    read_table(*t, s->fields, sec, "[" + sec + "]", org);
  }
  read_stages(root, c, org);
  check_consistency(c, org);
  return c;
}

}  // namespace deck

Config parse_deck_text(const std::string& text, const std::string& name,
                       const std::vector<std::string>& overrides) {
  toml::table root;
  try {
    root = toml::parse(text, name);
  } catch (const toml::parse_error& e) {
    const auto& b = e.source().begin;
    throw_error(LONGCTX_WHERE, fmt::format("{}:{}:{}: TOML syntax error: {}", name, b.line,
                                           b.column, e.description()), "decks are TOML: toml.io");
  }
  deck::Origins org;
  org.name = name;
  for (const auto& ov : overrides) deck::apply_override(root, ov, org);
  return deck::build(root, org);
}

Config parse_deck(const std::string& path, const std::vector<std::string>& overrides) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) FAIL_ERROR("cannot open deck '{}': {}", path, std::strerror(errno));
  std::string text;
  char buf[65536];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) text.append(buf, n);
  const int err = std::ferror(f) ? errno : 0;
  std::fclose(f);
  if (err) FAIL_ERROR("cannot read deck '{}': {}", path, std::strerror(err));
  return parse_deck_text(text, path, overrides);
}

}  // namespace longctx
