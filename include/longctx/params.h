// params.h — where every model parameter lives.
//
// All parameters of a rank sit in one flat fp32 buffer (cheap all-reduce, ZeRO shards by flat
// range, checkpoint slices). ParamLayout names each tensor, its full logical shape (Hugging Face
// convention, [out, in]) and the block of it that this rank holds: `start`/`count` per dimension
// (the whole tensor on one rank; a row or column block under tensor parallelism). Local tensors are
// row-major with shape `count`, stored at `offset` in the flat buffer.
//
// Order in the buffer: embed, then for each layer attn_norm wq wk wv wo mlp_norm w_gate w_up w_down,
// then norm, then lm_head (absent when tie_embeddings). Names are HDF5 paths under /model:
// "embed", "layers/07/wq", "norm", "lm_head".
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "longctx/config.h"
#include "longctx/tensor.h"

namespace longctx {

struct ParamTensor {
  std::string name;
  std::vector<int64_t> shape;  // full logical shape
  std::vector<int64_t> start;  // this rank's block: first index per dim
  std::vector<int64_t> count;  // this rank's block: extent per dim (local shape)
  int64_t offset = 0;          // first element in the flat buffer
  int64_t numel = 0;           // product of count
  bool decay = true;           // AdamW weight decay applies (false for norm weights)
  bool is_norm = false;        // RMSNorm weight: initialised to 1
  bool replica = false;        // another tensor-parallel rank holds the same block and writes it
};

struct ParamLayout {
  std::vector<ParamTensor> tensors;
  int64_t total = 0;  // floats in the flat buffer
  const ParamTensor& find(const std::string& name) const;  // throws Error if absent
};

// What tensor-parallel rank `rank` of `size` holds (size 1: everything). Query heads, d_ff and the
// vocabulary are split evenly; key/value heads too when NKV >= size, else each rank holds the one
// key/value head its query heads read (replicated on size/NKV ranks; the first of them owns it).
struct TpShard {
  int rank = 0, size = 1;
  int64_t NH, NKV, F, V;  // local counts
  int64_t head0;          // first local query head
  int64_t kv_head0;       // first local key/value head
  int64_t v0;             // first local vocabulary row
  bool kv_replica;        // this rank's K/V head block is a copy owned by another rank
};
TpShard tp_shard(const ModelConfig& m, int rank, int size);

// The layout of this rank's blocks: column-parallel wq wk wv w_gate w_up (rows split), row-parallel
// wo w_down (columns split), vocab-parallel embed and lm_head (rows split), norms replicated.
ParamLayout make_param_layout(const ModelConfig& m, int tp_rank = 0, int tp = 1);
// "layers/07/": the name prefix of layer l's tensors.
std::string layer_prefix(int64_t l);

// Deterministic initialisation, independent of the layout: element i (row-major index in the full
// tensor) of tensor `name` is init_std · N(0,1) drawn from (seed, name, i); norms are 1.
// Output projections (wo, w_down) are scaled by 1/sqrt(2·n_layers), as in GPT-2.
void init_params(const ModelConfig& m, const ParamLayout& layout, uint64_t seed, float* params);

// Typed views into a flat buffer for one layer / the whole model (parameters of any element type,
// gradients): each with its local shape (ParamTensor::count).
template <class T>
struct LayerView {
  Tensor<T> attn_norm, wq, wk, wv, wo, mlp_norm, w_gate, w_up, w_down;
};
template <class T>
struct ModelView {
  Tensor<T> embed;
  std::vector<LayerView<T>> layers;
  Tensor<T> norm;
  Tensor<T> lm_head;  // == embed when tied
};
template <class T>
ModelView<T> view_of(const ModelConfig& m, const ParamLayout& layout, T* buffer) {
  auto at = [&](const std::string& n) {
    const ParamTensor& t = layout.find(n);
    T* p = buffer ? buffer + t.offset : nullptr;  // a null buffer gives null views (no gradients)
    return t.count.size() == 1 ? Tensor<T>(p, {t.count[0]}) : Tensor<T>(p, {t.count[0], t.count[1]});
  };
  ModelView<T> v;
  v.embed = at("embed");
  for (int64_t i = 0; i < m.n_layers; ++i) {
    const std::string p = layer_prefix(i);
    v.layers.push_back({at(p + "attn_norm"), at(p + "wq"), at(p + "wk"), at(p + "wv"), at(p + "wo"),
                        at(p + "mlp_norm"), at(p + "w_gate"), at(p + "w_up"), at(p + "w_down")});
  }
  v.norm = at("norm");
  v.lm_head = m.tie_embeddings ? v.embed : at("lm_head");
  return v;
}

}  // namespace longctx
