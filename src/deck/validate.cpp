// validate.cpp — the checks between keys (heads, tp divisibility, learning rates, data, sequence
// lengths under the parallel layout) and the resolved defaults (run.out_dir, checkpoint.dir).
#include <algorithm>
#include <cctype>

#include "deck_internal.h"
#include "longctx/data.h"

namespace longctx {
namespace deck {

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

  // [parallel], then each stage that sets a layout of its own: the same rules, named by the key
  // that sets the value ("stage[2].tp" where the stage sets it, else "parallel.tp").
  auto check_tp = [&](const ParallelConfig& q, const std::string& tp_key, const std::string& tp_at) {
    const std::pair<const char*, int64_t> split_by_tp[] = {
        {"model.n_heads", m.n_heads}, {"model.d_ff", m.d_ff}, {"model.vocab_size", m.vocab_size}};
    for (auto [name, n] : split_by_tp)
      if (n % q.tp != 0) fail(tp_at, "{} = {} must divide {} = {}", tp_key, q.tp, name, n);
    if (m.n_kv_heads >= q.tp && m.n_kv_heads % q.tp != 0)
      fail(tp_at, "{} = {} must divide model.n_kv_heads = {}", tp_key, q.tp, m.n_kv_heads);
    if (m.n_kv_heads < q.tp && q.tp % m.n_kv_heads != 0)
      fail(tp_at, "{} = {} must be a multiple of model.n_kv_heads = {} (each K/V head is "
           "replicated over tp / n_kv_heads ranks)", tp_key, q.tp, m.n_kv_heads);
  };
  check_tp(p, "parallel.tp", org.first({"parallel.tp"}));
  auto layout_key = [&](size_t i, const char* k, int64_t v) {
    return v > 0 ? fmt::format("stage[{}].{}", i + 1, k) : fmt::format("parallel.{}", k);
  };
  for (size_t i = 0; i < c.stages.size(); i++) {
    StageConfig& st = c.stages[i];
    if (st.dp > 0 || st.tp > 0 || st.sp > 0)
      st.layout_at = org.first({fmt::format("stage[{}].dp", i + 1), fmt::format("stage[{}].tp", i + 1),
                                fmt::format("stage[{}].sp", i + 1)});
  }
  for (size_t i = 0; i < c.stages.size(); i++)
    if (c.stages[i].tp > 0) {
      const std::string key = layout_key(i, "tp", c.stages[i].tp);
      check_tp(c.stage_layout(i), key, org.first({key}));
    }

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
  if (d.kind == DataKind::tokens && d.path.empty())
    fail(org.first({"data.path", "data.kind"}),
         "data.path must name an HDF5 token file when data.kind = \"tokens\"");
  if (d.kind == DataKind::needle && m.vocab_size < kByteVocab)
    fail(org.first({"model.vocab_size", "data.kind"}), "model.vocab_size = {} is too small for "
         "data.kind = \"needle\": byte-level data needs model.vocab_size >= {} (256 bytes + BOS, "
         "EOS, PAD)", m.vocab_size, kByteVocab);

  // The sequence is cut into 2*sp chunks (zigzag) or sp chunks (contiguous); reduce_scatter
  // further splits each chunk over tp. Each stage under its own layout.
  for (size_t i = 0; i < c.stages.size(); i++) {
    const ParallelConfig q = c.stage_layout(i);
    const StageConfig& st = c.stages[i];
    const int64_t chunks = q.sp > 1 ? (q.ring == Ring::zigzag ? 2 * q.sp : q.sp) : 1;
    const bool rs = q.tp_mode == TpMode::reduce_scatter && q.tp > 1;
    const int64_t div = seq_len_multiple(q);
    const std::string sp_key = layout_key(i, "sp", st.sp), tp_key = layout_key(i, "tp", st.tp);
    const std::string tp_split = fmt::format(
        ", and parallel.tp_mode = \"reduce_scatter\" splits each over {} = {}", tp_key, q.tp);
    const std::string key = fmt::format("stage[{}].seq_len", i + 1);
    if (st.seq_len % div != 0)
      fail(org.first({key, sp_key}), "{} = {} must be divisible by {} (parallel.ring = \"{}\" with "
           "{} = {} cuts the sequence into {} chunks{})", key, st.seq_len, div, q.ring, sp_key, q.sp,
           chunks, rs ? tp_split : "");
  }

  // [eval]: what train's evaluation after each stage needs is refused before the first step.
  const auto& e = c.eval;
  if (e.depths.empty())
    fail(org.first({"eval.depths"}), "eval.depths is empty: give at least one depth in [0, 1]");
  if (e.after_each_stage) {
    const std::string at = org.first({"eval.after_each_stage", "eval.lengths"});
    if (m.vocab_size < kByteVocab)
      fail(at, "eval.after_each_stage: the needle evaluation is byte-level text, which needs "
           "model.vocab_size >= {} (it is {})", kByteVocab, m.vocab_size);
    DataConfig nd = d;
    nd.needle_depth = 0.0;
    const int64_t min_len = needle_min_len(nd) - 1, mult = seq_len_multiple(p);
    for (int64_t n : e.lengths) {
      if (n % mult != 0)
        fail(org.first({"eval.lengths"}), "eval.lengths: {} is not a multiple of {}, which "
             "parallel.sp = {} and parallel.tp = {} require", n, mult, p.sp, p.tp);
      if (n < min_len)
        fail(org.first({"eval.lengths"}), "eval.lengths: {} cannot hold the needle and the question "
             "(at least {} tokens with data.key_digits = {})", n, min_len, d.key_digits);
    }
    if (e.lengths.empty())
      for (size_t i = 0; i < c.stages.size(); i++)
        if (c.stages[i].seq_len < min_len)
          fail(at, "eval.after_each_stage evaluates at the stages' lengths (eval.lengths = []), but "
               "stage[{}].seq_len = {} cannot hold the needle and the question (at least {} tokens): "
               "set eval.lengths", i + 1, c.stages[i].seq_len, min_len);
  }

  if (c.run.out_dir.empty()) c.run.out_dir = "runs/" + c.run.name;
  if (c.checkpoint.dir.empty()) c.checkpoint.dir = c.run.out_dir + "/checkpoints";
}

}  // namespace deck

void check_one_layout(const Config& c, int64_t first, int64_t last) {
  for (int64_t i = first; i < last && i < int64_t(c.stages.size()); ++i) {
    const ParallelConfig q = c.stage_layout(size_t(i));
    CHECK_ALIKE(same_grid(q, c.parallel),
                fmt::format("one job runs one layout: `longctx stages {} --out DIR --scheduler slurm|pbs` "
                            "writes one deck and job script per stage (chained with afterok){}", c.deck_path,
                            i > first ? fmt::format(", or stop before it with --stop-after-stage {}", i) : ""),
                "{}: stage {} runs on dp×tp×sp = {}×{}×{} (its [[stage]] dp/tp/sp), but this job's layout "
                "[parallel] is {}×{}×{}: train cannot change the layout between stages",
                c.stages[size_t(i)].layout_at.empty() ? c.deck_path : c.stages[size_t(i)].layout_at, i + 1, q.dp, q.tp, q.sp, c.parallel.dp, c.parallel.tp, c.parallel.sp);
  }
}

int64_t seq_len_multiple(const ParallelConfig& p) {
  const int64_t chunks = p.sp > 1 ? (p.ring == Ring::zigzag ? 2 * p.sp : p.sp) : 1;
  return chunks * (p.tp_mode == TpMode::reduce_scatter && p.tp > 1 ? p.tp : 1);
}

}  // namespace longctx
