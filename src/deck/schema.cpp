// schema.cpp — the deck's key table: every section and key with its type, range or choices and
// where it is stored in Config (the one list parse, --set and to_toml walk).
#include <fmt/format.h>

#include "deck_internal.h"

namespace longctx {

int64_t Config::total_steps() const {
  int64_t n = 0;
  for (const auto& s : stages) n += s.steps;
  return n;
}

ParallelConfig Config::stage_layout(size_t i) const {
  ParallelConfig p = parallel;
  const StageConfig& s = stages.at(i);
  if (s.dp > 0) p.dp = s.dp;
  if (s.tp > 0) p.tp = s.tp;
  if (s.sp > 0) p.sp = s.sp;
  return p;
}

namespace deck {
namespace {

Field I(const char* key, auto* p, int64_t lo, int64_t hi) { return {key, p, lo, hi}; }
// An array of integers, each in [lo, hi].
Field IA(const char* key, std::vector<int64_t>* p, int64_t lo, int64_t hi) { return {key, p, lo, hi}; }
// ends: "[]", "(]", "[)" or "()": which ends of [lo, hi] are open.
Field F(const char* key, double* p, const char* ends, double lo, double hi) {
  return {key, p, 0, 0, lo, hi, ends[0] == '(', ends[1] == ')'};
}
// An array of floats, each in the range of F.
Field FA(const char* key, std::vector<double>* p, const char* ends, double lo, double hi) {
  return {key, p, 0, 0, lo, hi, ends[0] == '(', ends[1] == ')'};
}
Field B(const char* key, bool* p) { return {key, p}; }
Field S(const char* key, std::string* p) { return {key, p}; }
// A key with a fixed set of values: its enum's name table (ModeNames) lists them.
template <Mode E>
Field M(const char* key, E* p) {
  return {key, p};
}

}  // namespace

bool is_text(const Ptr& p) {
  return std::visit(
      [](auto* q) {
        using T = std::remove_pointer_t<decltype(q)>;
        return std::is_same_v<T, std::string> || Mode<T>;
      },
      p);
}

std::vector<Section> sections_of(Config& c) {
  // clang-format off
  auto& r = c.run; auto& m = c.model; auto& p = c.parallel;
  auto& o = c.optim; auto& d = c.data; auto& k = c.checkpoint; auto& e = c.eval;
  // clang-format on
  return {
      {"run",
       {S("name", &r.name), S("out_dir", &r.out_dir), I("seed", &r.seed, 0, kMaxInt),
        I("log_every", &r.log_every, 1, kMaxInt), I("threads", &r.threads, 0, 4096),
        M("device", &r.device), B("deterministic", &r.deterministic)}},
      {"model",
       {I("vocab_size", &m.vocab_size, 2, int64_t(1) << 24), I("d_model", &m.d_model, 8, 65536),
        I("n_layers", &m.n_layers, 1, 1024), I("n_heads", &m.n_heads, 1, 1024),
        I("n_kv_heads", &m.n_kv_heads, 1, 1024), I("d_ff", &m.d_ff, 1, int64_t(1) << 20),
        F("norm_eps", &m.norm_eps, "(]", 0, 0.1), B("tie_embeddings", &m.tie_embeddings),
        F("init_std", &m.init_std, "(]", 0, 1), B("recompute", &m.recompute),
        B("recompute_attention", &m.recompute_attention),
        I("logits_chunk", &m.logits_chunk, 0, int64_t(1) << 31)}},
      {"parallel",
       {I("dp", &p.dp, 1, 65536), I("tp", &p.tp, 1, 65536), I("sp", &p.sp, 1, 65536),
        M("tp_mode", &p.tp_mode), M("ring", &p.ring), M("transport", &p.transport)}},
      {"optim",
       {F("lr", &o.lr, "(]", 0, 1), F("min_lr", &o.min_lr, "[]", 0, 1),
        I("warmup_steps", &o.warmup_steps, 0, kMaxInt), M("schedule", &o.schedule),
        F("weight_decay", &o.weight_decay, "[]", 0, 10), F("beta1", &o.beta1, "[)", 0, 1),
        F("beta2", &o.beta2, "[)", 0, 1), F("eps", &o.eps, "()", 0, 1),
        F("grad_clip", &o.grad_clip, "[)", 0, kInf)}},
      {"data",
       {M("kind", &d.kind), S("path", &d.path), M("filler", &d.filler),
        F("needle_depth", &d.needle_depth, "[]", -1, 1), I("key_digits", &d.key_digits, 1, 18)}},
      {"checkpoint",
       {S("dir", &k.dir), I("every", &k.every, 0, kMaxInt), I("keep", &k.keep, 0, kMaxInt),
        S("init_from", &k.init_from)}},
      {"eval",
       {B("after_each_stage", &e.after_each_stage), IA("lengths", &e.lengths, 2, int64_t(1) << 31),
        FA("depths", &e.depths, "[]", 0, 1), I("samples", &e.samples, 1, 1000000)}},
  };
}

std::vector<Field> stage_fields(StageConfig& s) {
  return {I("seq_len", &s.seq_len, 2, int64_t(1) << 31),
          F("rope_theta", &s.rope_theta, "(]", 1, 1e15), I("steps", &s.steps, 1, 1000000000),
          I("batch_accum", &s.batch_accum, 1, 1000000),
          I("micro_batch", &s.micro_batch, 1, 1000000),
          // the stage's own layout (to_toml leaves out the 0s: "as [parallel]")
          I("dp", &s.dp, 1, 65536), I("tp", &s.tp, 1, 65536), I("sp", &s.sp, 1, 65536)};
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

}  // namespace deck
}  // namespace longctx
