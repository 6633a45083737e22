// print.cpp — to_toml: the resolved deck (every key, defaults filled in) as TOML text that
// parse_deck_text reads back to an equal Config; echoed in the log, stored in every checkpoint.
#include "deck_internal.h"

namespace longctx {
namespace deck {
namespace {

std::string quote(std::string_view s) {
  std::string out = "\"";
  for (char ch : s) {
    const bool control = static_cast<unsigned char>(ch) < 0x20 || ch == 0x7f;
    if (ch == '"' || ch == '\\') out += {'\\', ch};
    else if (control) out += fmt::format("\\u{:04x}", +ch);
    else out += ch;
  }
  return out + "\"";
}

// Shortest text that reads back as the same double, always with '.' or an exponent so that TOML
// reads it as a float.
std::string float_text(double x) {
  std::string s = fmt::format("{}", x);
  if (s.find_first_of(".eEn") == std::string::npos) s += ".0";
  return s;
}

}  // namespace

std::string value_text(const Ptr& ptr) {
  return std::visit(
      [](auto* p) -> std::string {
        using T = std::remove_pointer_t<decltype(p)>;
        if constexpr (std::is_same_v<T, bool>) return *p ? "true" : "false";
        else if constexpr (std::is_same_v<T, std::string>) return quote(*p);
        else if constexpr (Mode<T>) return quote(to_string(*p));
        else if constexpr (std::is_same_v<T, double>) return float_text(*p);
        else if constexpr (std::is_same_v<T, std::vector<double>> || std::is_same_v<T, std::vector<int64_t>>) {
          std::string s = "[";
          for (const auto& x : *p) {
            if constexpr (std::is_same_v<T, std::vector<double>>) s += (s.size() > 1 ? ", " : "") + float_text(x);
            else s += fmt::format("{}{}", s.size() > 1 ? ", " : "", x);
          }
          return s + "]";
        }
        else return fmt::format("{}", *p);
      },
      ptr);
}

}  // namespace deck

std::string to_toml(const Config& cfg) {
  Config c = cfg;  // the key table points into a mutable Config
  std::string out = "# longctx resolved deck: every key with its value after defaults and --set\n";
  for (const auto& sec : deck::sections_of(c)) {
    out += fmt::format("\n[{}]\n", sec.name);
    for (const auto& f : sec.fields)
      out += fmt::format("{} = {}\n", f.key, deck::value_text(f.ptr));
  }
  for (auto& s : c.stages) {
    out += "\n[[stage]]\n";
    for (const auto& f : deck::stage_fields(s)) {
      const auto* layout = std::get_if<int64_t*>(&f.ptr);  // dp/tp/sp of the stage: 0 = absent
      if (layout && **layout == 0 && (f.key == std::string_view("dp") || f.key == std::string_view("tp") ||
                                      f.key == std::string_view("sp")))
        continue;
      out += fmt::format("{} = {}\n", f.key, deck::value_text(f.ptr));
    }
  }
  return out;
}

}  // namespace longctx
