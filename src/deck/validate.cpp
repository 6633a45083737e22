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
  if (d.kind == DataKind::tokens && d.path.empty())
    fail(org.first({"data.path", "data.kind"}),
         "data.path must name an HDF5 token file when data.kind = \"tokens\"");
  if (d.kind == DataKind::needle && m.vocab_size < kByteVocab)
    fail(org.first({"model.vocab_size", "data.kind"}), "model.vocab_size = {} is too small for "
         "data.kind = \"needle\": byte-level data needs model.vocab_size >= {} (256 bytes + BOS, "
         "EOS, PAD)", m.vocab_size, kByteVocab);

  // The sequence is cut into 2*sp chunks (zigzag) or sp chunks (contiguous); reduce_scatter
  // further splits each chunk over tp.
  const int64_t chunks = p.sp > 1 ? (p.ring == Ring::zigzag ? 2 * p.sp : p.sp) : 1;
  const bool rs = p.tp_mode == TpMode::reduce_scatter && p.tp > 1;
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

}  // namespace deck

int64_t seq_len_multiple(const ParallelConfig& p) {
  const int64_t chunks = p.sp > 1 ? (p.ring == Ring::zigzag ? 2 * p.sp : p.sp) : 1;
  return chunks * (p.tp_mode == TpMode::reduce_scatter && p.tp > 1 ? p.tp : 1);
}

}  // namespace longctx
