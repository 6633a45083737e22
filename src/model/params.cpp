// params.cpp — the flat parameter buffer's layout and the layout-independent initialisation.
#include "longctx/params.h"

#include <cmath>

#include "longctx/common.h"
#include "longctx/rng.h"

namespace longctx {

const ParamTensor& ParamLayout::find(const std::string& name) const {
  for (const auto& t : tensors)
    if (t.name == name) return t;
  FAIL_ERROR("no parameter named '{}' in this model", name);
}

TpShard tp_shard(const ModelConfig& m, int rank, int size) {
  CHECK(size >= 1 && rank >= 0 && rank < size, "tp rank {} of {}", rank, size);
  CHECK(m.n_heads % size == 0 && m.d_ff % size == 0 && m.vocab_size % size == 0,
        "parallel.tp = {} must divide model.n_heads = {}, model.d_ff = {} and model.vocab_size = {}",
        size, m.n_heads, m.d_ff, m.vocab_size);
  CHECK(m.n_kv_heads % size == 0 || size % m.n_kv_heads == 0,
        "parallel.tp = {} and model.n_kv_heads = {}: one must divide the other", size, m.n_kv_heads);
  TpShard s;
  s.rank = rank, s.size = size;
  s.NH = m.n_heads / size, s.F = m.d_ff / size, s.V = m.vocab_size / size;
  s.head0 = rank * s.NH, s.v0 = rank * s.V;
  if (m.n_kv_heads >= size) {
    s.NKV = m.n_kv_heads / size, s.kv_head0 = rank * s.NKV, s.kv_replica = false;
  } else {
    const int64_t ranks_per_kv = size / m.n_kv_heads;  // ranks sharing one key/value head
    s.NKV = 1, s.kv_head0 = rank / ranks_per_kv, s.kv_replica = rank % ranks_per_kv != 0;
  }
  return s;
}

namespace {
// A block of rows (dim 0) or columns (dim 1) of a [rows, cols] tensor, or the whole 1-D tensor.
struct Block {
  int dim = -1;  // -1: whole tensor
  int64_t start = 0, count = 0;
  bool replica = false;
};

void add(ParamLayout& l, std::string name, std::vector<int64_t> shape, bool norm, Block b = {}) {
  ParamTensor t;
  t.name = std::move(name);
  t.shape = shape;
  t.start.assign(shape.size(), 0);
  t.count = shape;
  if (b.dim >= 0) t.start[size_t(b.dim)] = b.start, t.count[size_t(b.dim)] = b.count;
  t.offset = l.total;
  t.numel = 1;
  for (auto d : t.count) t.numel *= d;
  t.decay = !norm;
  t.is_norm = norm;
  t.replica = b.replica;
  l.total += t.numel;
  l.tensors.push_back(std::move(t));
}
}  // namespace

ParamLayout make_param_layout(const ModelConfig& m, int tp_rank, int tp) {
  const int64_t C = m.d_model, HS = m.head_size(), NH = m.n_heads, NKV = m.n_kv_heads;
  const int64_t F = m.d_ff, V = m.vocab_size;
  const TpShard s = tp_shard(m, tp_rank, tp);
  const Block vocab{0, s.v0, s.V}, norm{-1, 0, 0, tp_rank != 0};
  const Block q_rows{0, s.head0 * HS, s.NH * HS}, q_cols{1, s.head0 * HS, s.NH * HS};
  const Block kv_rows{0, s.kv_head0 * HS, s.NKV * HS, s.kv_replica};
  const Block f_rows{0, tp_rank * s.F, s.F}, f_cols{1, tp_rank * s.F, s.F};
  ParamLayout l;
  add(l, "embed", {V, C}, false, vocab);
  for (int64_t i = 0; i < m.n_layers; ++i) {
    const std::string p = layer_prefix(i);
    add(l, p + "attn_norm", {C}, true, norm);
    add(l, p + "wq", {NH * HS, C}, false, q_rows);
    add(l, p + "wk", {NKV * HS, C}, false, kv_rows);
    add(l, p + "wv", {NKV * HS, C}, false, kv_rows);
    add(l, p + "wo", {C, NH * HS}, false, q_cols);
    add(l, p + "mlp_norm", {C}, true, norm);
    add(l, p + "w_gate", {F, C}, false, f_rows);
    add(l, p + "w_up", {F, C}, false, f_rows);
    add(l, p + "w_down", {C, F}, false, f_cols);
  }
  add(l, "norm", {C}, true, norm);
  if (!m.tie_embeddings) add(l, "lm_head", {V, C}, false, vocab);
  return l;
}

// Stable 64-bit name hash (FNV-1a), so a tensor's random stream depends only on its name.
static uint64_t name_key(const std::string& s) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ULL;
  return h;
}

void init_params(const ModelConfig& m, const ParamLayout& layout, uint64_t seed, float* params) {
  const double out_scale = 1.0 / std::sqrt(2.0 * double(m.n_layers));
  for (const auto& t : layout.tensors) {
    float* p = params + t.offset;
    if (t.is_norm) {
      for (int64_t i = 0; i < t.numel; ++i) p[i] = 1.0f;
      continue;
    }
    const bool is_out = t.name.ends_with("/wo") || t.name.ends_with("/w_down");
    const double stdev = m.init_std * (is_out ? out_scale : 1.0);
    const uint64_t key = hash64(seed, name_key(t.name));
    // Walk the local block in row-major order; `full` is the element's index in the full tensor.
    const int nd = int(t.shape.size());
    std::vector<int64_t> idx(nd, 0);
    for (int64_t i = 0; i < t.numel; ++i) {
      int64_t full = 0;
      for (int d = 0; d < nd; ++d) full = full * t.shape[d] + t.start[d] + idx[d];
      p[i] = float(stdev * normal_at(key, uint64_t(full)));
      for (int d = nd - 1; d >= 0; --d) {
        if (++idx[d] < t.count[d]) break;
        idx[d] = 0;
      }
    }
  }
}

std::string layer_prefix(int64_t l) { return fmt::format("layers/{:02d}/", l); }

}  // namespace longctx
