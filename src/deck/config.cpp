// config.cpp — the TOML deck: parse (toml++), apply --set overrides, validate, resolve, print.
//
// Every key lives in one table (sections_of / stage_fields) that holds its type, its range or
// choices and where it is stored in Config; parsing, the range checks and to_toml all walk that
// table, so a new key is one line there (plus its cross-checks in check_consistency, if any).
#include "longctx/config.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <map>
#include <optional>
#include <variant>

#include <fmt/ranges.h>
#include <toml++/toml.h>

#include "longctx/common.h"
#include "longctx/data.h"

namespace longctx {

int64_t Config::total_steps() const {
  int64_t n = 0;
  for (const auto& s : stages) n += s.steps;
  return n;
}

namespace {

constexpr int64_t kMaxInt = std::numeric_limits<int64_t>::max();
constexpr double kInf = std::numeric_limits<double>::infinity();
const char* const kHint = "README.md (Deck reference) lists every key with its type, default and range";

// ---- the key table ----------------------------------------------------------------------------

using Ptr = std::variant<int64_t*, uint64_t*, int*, double*, bool*, std::string*>;

struct Field {
  const char* key;
  Ptr ptr;
  int64_t ilo = 0, ihi = 0;  // integers: inclusive range
  double flo = 0, fhi = 0;   // floats: range, ends open or closed as below
  bool lo_open = false, hi_open = false;
  std::vector<std::string> choices = {};  // strings: the allowed values (empty: any string)
};

Field I(const char* key, auto* p, int64_t lo, int64_t hi) { return {key, p, lo, hi}; }
// ends: "[]", "(]", "[)" or "()": which ends of [lo, hi] are open.
Field F(const char* key, double* p, const char* ends, double lo, double hi) {
  return {key, p, 0, 0, lo, hi, ends[0] == '(', ends[1] == ')'};
}
Field B(const char* key, bool* p) { return {key, p}; }
Field S(const char* key, std::string* p, std::vector<std::string> choices = {}) {
  return {key, p, 0, 0, 0, 0, false, false, std::move(choices)};
}

struct Section {
  const char* name;
  std::vector<Field> fields;
};

// The sections of a deck, with pointers into `c` (so the same table reads and writes a Config).
std::vector<Section> sections_of(Config& c) {
  // clang-format off
  auto& r = c.run; auto& m = c.model; auto& p = c.parallel;
  auto& o = c.optim; auto& d = c.data; auto& k = c.checkpoint;
  // clang-format on
  return {
      {"run",
       {S("name", &r.name), S("out_dir", &r.out_dir), I("seed", &r.seed, 0, kMaxInt),
        I("log_every", &r.log_every, 1, kMaxInt), I("threads", &r.threads, 0, 4096)}},
      {"model",
       {I("vocab_size", &m.vocab_size, 2, int64_t(1) << 24), I("d_model", &m.d_model, 8, 65536),
        I("n_layers", &m.n_layers, 1, 1024), I("n_heads", &m.n_heads, 1, 1024),
        I("n_kv_heads", &m.n_kv_heads, 1, 1024), I("d_ff", &m.d_ff, 1, int64_t(1) << 20),
        F("norm_eps", &m.norm_eps, "(]", 0, 0.1), B("tie_embeddings", &m.tie_embeddings),
        F("init_std", &m.init_std, "(]", 0, 1), B("recompute", &m.recompute)}},
      {"parallel",
       {I("dp", &p.dp, 1, 65536), I("tp", &p.tp, 1, 65536), I("sp", &p.sp, 1, 65536),
        S("tp_mode", &p.tp_mode, {"all_reduce", "reduce_scatter"}),
        S("ring", &p.ring, {"zigzag", "contiguous"})}},
      {"optim",
       {F("lr", &o.lr, "(]", 0, 1), F("min_lr", &o.min_lr, "[]", 0, 1),
        I("warmup_steps", &o.warmup_steps, 0, kMaxInt),
        S("schedule", &o.schedule, {"cosine", "constant"}),
        F("weight_decay", &o.weight_decay, "[]", 0, 10), F("beta1", &o.beta1, "[)", 0, 1),
        F("beta2", &o.beta2, "[)", 0, 1), F("eps", &o.eps, "()", 0, 1),
        F("grad_clip", &o.grad_clip, "[)", 0, kInf)}},
      {"data",
       {S("kind", &d.kind, {"needle", "tokens"}), S("path", &d.path),
        S("filler", &d.filler, {"landmark", "random_words"}),
        F("needle_depth", &d.needle_depth, "[]", -1, 1), I("key_digits", &d.key_digits, 1, 18)}},
      {"checkpoint",
       {S("dir", &k.dir), I("every", &k.every, 0, kMaxInt), I("keep", &k.keep, 0, kMaxInt),
        S("init_from", &k.init_from)}},
  };
}

std::vector<Field> stage_fields(StageConfig& s) {
  return {I("seq_len", &s.seq_len, 2, int64_t(1) << 31),
          F("rope_theta", &s.rope_theta, "(]", 1, 1e15), I("steps", &s.steps, 1, 1000000000),
          I("batch_accum", &s.batch_accum, 1, 1000000),
          I("micro_batch", &s.micro_batch, 1, 1000000)};
}

const Field* find_field(const std::vector<Field>& fields, std::string_view key) {
  for (const auto& f : fields)
    if (key == f.key) return &f;
  return nullptr;
}

std::string unknown_key(std::string_view key, const std::string& section,
                        const std::vector<Field>& fields) {
  std::string known;
  for (const auto& f : fields) known += (known.empty() ? "" : ", ") + std::string(f.key);
  return fmt::format("unknown key '{}' in {} (known keys: {})", key, section, known);
}

std::string section_list(Config& c) {
  std::string s;
  for (const auto& sec : sections_of(c)) s += fmt::format("[{}], ", sec.name);
  return s + "[[stage]]";
}

// ---- messages ---------------------------------------------------------------------------------

template <class... A>
[[noreturn]] void fail(const std::string& at, fmt::format_string<A...> f, A&&... args) {
  throw_error(LONGCTX_WHERE, at + ": " + fmt::format(f, std::forward<A>(args)...), kHint);
}

// A TOML value as a person would write it, with its type first: `string "abc"`, `float 1.5`.
std::string describe(const toml::node& v) {
  if (auto* s = v.as_string()) return fmt::format("string \"{}\"", s->get());
  if (auto* i = v.as_integer()) return fmt::format("integer {}", i->get());
  if (auto* x = v.as_floating_point()) return fmt::format("float {}", x->get());
  if (auto* b = v.as_boolean()) return fmt::format("boolean {}", b->get());
  if (v.is_table()) return "a table";
  if (v.is_array()) return "an array";
  return "a date/time";
}

std::string range_text(const Field& f, bool is_float) {
  if (!is_float)
    return f.ihi == kMaxInt ? fmt::format(">= {}", f.ilo) : fmt::format("{}..{}", f.ilo, f.ihi);
  if (std::isinf(f.fhi)) return fmt::format("{} {}", f.lo_open ? ">" : ">=", f.flo);
  return fmt::format("{}{}, {}{}", f.lo_open ? '(' : '[', f.flo, f.fhi, f.hi_open ? ')' : ']');
}

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

// ---- reading values ---------------------------------------------------------------------------

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
          std::string s = v.as_string()->get();
          if (!f.choices.empty() &&
              std::find(f.choices.begin(), f.choices.end(), s) == f.choices.end())
            fail(at, "{} = \"{}\" is not one of \"{}\"", key, s, fmt::join(f.choices, "\" | \""));
          *p = std::move(s);
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

// ---- --set overrides --------------------------------------------------------------------------

// "a.b.c" -> {"a", "b", "c"}, blanks around the whole trimmed.
std::vector<std::string> split_key(std::string s) {
  s.erase(0, s.find_first_not_of(" \t"));
  s.erase(s.find_last_not_of(" \t") + 1);
  std::vector<std::string> out(1);
  for (char ch : s) ch == '.' ? out.emplace_back() : out.back() += ch;
  return out;
}

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
  const bool string_key = std::holds_alternative<std::string*>(f->ptr);
  if (parsed && (parsed->size() != 1 || !parsed->contains("v"))) parsed.reset();
  if (!parsed || (string_key && !(*parsed)["v"].is_string())) parsed.emplace().insert("v", value);
  t->insert_or_assign(parts.back(), std::move(*parsed->get("v")));
  org.set[key] = at;
}

// ---- validation -------------------------------------------------------------------------------

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

void check_consistency(Config& c, const Origins& org) {
  auto& m = c.model;
  auto& p = c.parallel;
  auto name_char = [](char ch) {
    return std::isalnum(static_cast<unsigned char>(ch)) || ch == '.' || ch == '_' || ch == '-';
  };
  if (c.run.name.empty() || !std::all_of(c.run.name.begin(), c.run.name.end(), name_char))
    fail(org.first({"run.name"}), "run.name = \"{}\" must be non-empty and use only [A-Za-z0-9._-]",
         c.run.name);
  if (!org.has("model.n_kv_heads")) m.n_kv_heads = m.n_heads;
  const std::string heads_at = org.first({"model.n_kv_heads", "model.n_heads"});
  if (m.n_kv_heads > m.n_heads)
    fail(heads_at, "model.n_kv_heads = {} must be at most model.n_heads = {}", m.n_kv_heads,
         m.n_heads);
  if (m.n_heads % m.n_kv_heads != 0)
    fail(heads_at, "model.n_kv_heads = {} must divide model.n_heads = {}", m.n_kv_heads, m.n_heads);
  const std::string dm_at = org.first({"model.n_heads", "model.d_model"});
  if (m.d_model % m.n_heads != 0)
    fail(dm_at, "model.n_heads = {} must divide model.d_model = {}", m.n_heads, m.d_model);
  if (m.head_size() % 2 != 0)
    fail(dm_at, "head size model.d_model / model.n_heads = {} / {} = {} must be even (RoPE)",
         m.d_model, m.n_heads, m.head_size());

  const std::string tp_at = org.first({"parallel.tp"});
  const std::pair<const char*, int64_t> split_by_tp[] = {
      {"model.n_heads", m.n_heads}, {"model.d_ff", m.d_ff}, {"model.vocab_size", m.vocab_size}};
  for (auto [name, n] : split_by_tp)
    if (n % p.tp != 0) fail(tp_at, "parallel.tp = {} must divide {} = {}", p.tp, name, n);
  if (m.n_kv_heads >= p.tp && m.n_kv_heads % p.tp != 0)
    fail(tp_at, "parallel.tp = {} must divide model.n_kv_heads = {}", p.tp, m.n_kv_heads);
  if (m.n_kv_heads < p.tp && p.tp % m.n_kv_heads != 0)
    fail(tp_at, "parallel.tp = {} must be a multiple of model.n_kv_heads = {} (each K/V head is "
         "replicated over tp / n_kv_heads ranks)", p.tp, m.n_kv_heads);

  const auto& o = c.optim;
  if (o.min_lr > o.lr)
    fail(org.first({"optim.min_lr", "optim.lr"}), "optim.min_lr = {} must be at most optim.lr = {}",
         o.min_lr, o.lr);
  if (o.warmup_steps > c.total_steps())
    fail(org.first({"optim.warmup_steps"}), "optim.warmup_steps = {} must be at most the total "
         "steps of all stages ({}, the sum of stage[*].steps)", o.warmup_steps, c.total_steps());

  const auto& d = c.data;
  if (d.needle_depth != -1.0 && d.needle_depth < 0)
    fail(org.first({"data.needle_depth"}),
         "data.needle_depth = {} must be -1 (random) or in [0, 1]", d.needle_depth);
  if (d.kind == "tokens" && d.path.empty())
    fail(org.first({"data.path", "data.kind"}),
         "data.path must name an HDF5 token file when data.kind = \"tokens\"");
  if (d.kind == "needle" && m.vocab_size < kByteVocab)
    fail(org.first({"model.vocab_size", "data.kind"}), "model.vocab_size = {} is too small for "
         "data.kind = \"needle\": byte-level data needs model.vocab_size >= {} (256 bytes + BOS, "
         "EOS, PAD)", m.vocab_size, kByteVocab);

  // The sequence is cut into 2*sp chunks (zigzag) or sp chunks (contiguous); reduce_scatter
  // further splits each chunk over tp.
  const int64_t chunks = p.sp > 1 ? (p.ring == "zigzag" ? 2 * p.sp : p.sp) : 1;
  const bool rs = p.tp_mode == "reduce_scatter" && p.tp > 1;
  const int64_t div = seq_len_multiple(p);
  const std::string tp_split = fmt::format(
      ", and parallel.tp_mode = \"reduce_scatter\" splits each over parallel.tp = {}", p.tp);
  for (size_t i = 0; i < c.stages.size(); i++) {
    const std::string key = fmt::format("stage[{}].seq_len", i + 1);
    if (c.stages[i].seq_len % div != 0)
      fail(org.first({key}), "{} = {} must be divisible by {} (parallel.ring = \"{}\" with "
           "parallel.sp = {} cuts the sequence into {} chunks{})", key, c.stages[i].seq_len, div,
           p.ring, p.sp, chunks, rs ? tp_split : "");
  }

  if (c.run.out_dir.empty()) c.run.out_dir = "runs/" + c.run.name;
  if (c.checkpoint.dir.empty()) c.checkpoint.dir = c.run.out_dir + "/checkpoints";
}

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

// ---- printing ---------------------------------------------------------------------------------

std::string quote(const std::string& s) {
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

std::string value_text(const Ptr& ptr) {
  return std::visit(
      [](auto* p) -> std::string {
        using T = std::remove_pointer_t<decltype(p)>;
        if constexpr (std::is_same_v<T, bool>) return *p ? "true" : "false";
        else if constexpr (std::is_same_v<T, std::string>) return quote(*p);
        else if constexpr (std::is_same_v<T, double>) return float_text(*p);
        else return fmt::format("{}", *p);
      },
      ptr);
}

}  // namespace

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
  Origins org;
  org.name = name;
  for (const auto& ov : overrides) apply_override(root, ov, org);
  return build(root, org);
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

int64_t seq_len_multiple(const ParallelConfig& p) {
  const int64_t chunks = p.sp > 1 ? (p.ring == "zigzag" ? 2 * p.sp : p.sp) : 1;
  return chunks * (p.tp_mode == "reduce_scatter" && p.tp > 1 ? p.tp : 1);
}

std::string to_toml(const Config& cfg) {
  Config c = cfg;  // the key table points into a mutable Config
  std::string out = "# longctx resolved deck: every key with its value after defaults and --set\n";
  for (const auto& sec : sections_of(c)) {
    out += fmt::format("\n[{}]\n", sec.name);
    for (const auto& f : sec.fields) out += fmt::format("{} = {}\n", f.key, value_text(f.ptr));
  }
  for (auto& s : c.stages) {
    out += "\n[[stage]]\n";
    for (const auto& f : stage_fields(s)) out += fmt::format("{} = {}\n", f.key, value_text(f.ptr));
  }
  return out;
}

Config load_config(const std::string& path, const std::vector<std::string>& overrides,
                   MPI_Comm comm) {
  int rank = 0;
  CHECK(MPI_Comm_rank(comm, &rank) == MPI_SUCCESS, "MPI_Comm_rank failed");
  Config cfg;
  std::string text;
  if (rank == 0) {
    cfg = parse_deck(path, overrides);  // throws on rank 0 only; main aborts the job
    text = to_toml(cfg);
  }
  uint64_t len = text.size();  // the length, then the bytes
  CHECK(MPI_Bcast(&len, 1, MPI_UINT64_T, 0, comm) == MPI_SUCCESS, "MPI_Bcast(deck length) failed");
  CHECK(len < uint64_t(std::numeric_limits<int>::max()), "resolved deck too long: {} bytes", len);
  text.resize(len);
  CHECK(MPI_Bcast(text.data(), int(len), MPI_CHAR, 0, comm) == MPI_SUCCESS, "MPI_Bcast failed");
  if (rank != 0) {
    cfg = parse_deck_text(text, path);
    cfg.deck_path = path;
  }
  return cfg;
}

}  // namespace longctx
