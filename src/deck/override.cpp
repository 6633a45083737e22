// override.cpp — the command line's --set section.key=value (and stage.N.key=value): each is put
// into the parsed TOML tree before it is read, so it is checked exactly like a value in the file.
#include <algorithm>
#include <charconv>
#include <optional>

#include "deck_internal.h"

namespace longctx::deck {
namespace {

// "a.b.c" -> {"a", "b", "c"}, blanks around the whole trimmed.
std::vector<std::string> split_key(std::string s) {
  s.erase(0, s.find_first_not_of(" \t"));
  s.erase(s.find_last_not_of(" \t") + 1);
  std::vector<std::string> out(1);
  for (char ch : s) ch == '.' ? out.emplace_back() : out.back() += ch;
  return out;
}

}  // namespace

// "section.key=value" or "stage.N.key=value": the value is read as a TOML value when it parses as
// one (1, 2.5, true, "x", [..]) and taken as plain text otherwise (--set data.kind=tokens), or
// when the key is a string key (--set run.name=2024-01-01 names a run, it is no date).
void apply_override(toml::table& root, const std::string& ov, Origins& org) {
  const std::string at = "--set " + ov;
  const size_t eq = ov.find('=');
  if (eq == std::string::npos) fail(at, "expected section.key=value or stage.N.key=value");
  const auto parts = split_key(ov.substr(0, eq));
  const std::string value = ov.substr(eq + 1);

  Config dummy;
  StageConfig dummy_stage;
  const auto sections = sections_of(dummy);
  const auto stage_keys = stage_fields(dummy_stage);
  toml::table* t = nullptr;  // where the value goes
  const Field* f = nullptr;
  std::string key;  // as messages name it: "model.d_model", "stage[2].steps"
  if (parts[0] == "stage") {
    if (parts.size() != 3) fail(at, "stage keys are set as stage.N.key=value (N counted from 1)");
    int64_t n = 0;
    const char* end = parts[1].data() + parts[1].size();
    auto [stop, ec] = std::from_chars(parts[1].data(), end, n);
    toml::array* stages = root["stage"].as_array();
    const int64_t count = stages ? int64_t(stages->size()) : 0;
    if (ec != std::errc() || stop != end || n < 1 || n > count)
      fail(at, "stage index '{}' is out of range: the deck has {} [[stage]] table(s), counted "
           "from 1", parts[1], count);
    if (!(f = find_field(stage_keys, parts[2])))
      fail(at, "{}", unknown_key(parts[2], "[[stage]]", stage_keys));
    if (!(t = stages->get(size_t(n - 1))->as_table()))
      fail(at, "stage {} in {} is not a table: write each stage as [[stage]]", n, org.name);
    key = fmt::format("stage[{}].{}", n, parts[2]);
  } else {
    if (parts.size() != 2) fail(at, "expected section.key=value or stage.N.key=value");
    auto sec = std::find_if(sections.begin(), sections.end(),
                            [&](const Section& x) { return parts[0] == x.name; });
    if (sec == sections.end())
      fail(at, "unknown section [{}] (known sections: {})", parts[0], section_list(dummy));
    if (!(f = find_field(sec->fields, parts[1])))
      fail(at, "{}", unknown_key(parts[1], "[" + parts[0] + "]", sec->fields));
    if (!root.contains(parts[0])) root.insert(parts[0], toml::table{});
    if (!(t = root[parts[0]].as_table())) fail(at, "[{}] in {} is not a table", parts[0], org.name);
    key = parts[0] + "." + parts[1];
  }

  std::optional<toml::table> parsed;
  try {
    const std::string doc = "v = " + value;
    parsed = toml::parse(std::string_view(doc), std::string_view("--set"));
  } catch (const toml::parse_error&) {
  }
  const bool string_key = is_text(f->ptr);
  if (parsed && (parsed->size() != 1 || !parsed->contains("v"))) parsed.reset();
  if (!parsed || (string_key && !(*parsed)["v"].is_string())) parsed.emplace().insert("v", value);
  t->insert_or_assign(parts.back(), std::move(*parsed->get("v")));
  org.set[key] = at;
}

}  // namespace longctx::deck
