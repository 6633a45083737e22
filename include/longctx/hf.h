// hf.h — Hugging Face Llama models in and out: `longctx import-hf` and `longctx export-hf`.
//
// A model directory as transformers' save_pretrained writes it (config.json with
// "architectures": ["LlamaForCausalLM"], weights in model.safetensors or shards listed by
// model.safetensors.index.json) maps one to one onto a longctx checkpoint:
//
//   model.embed_tokens.weight                          embed            [V, C]
//   model.layers.{i}.input_layernorm.weight            layers/ii/attn_norm
//   model.layers.{i}.self_attn.{q,k,v,o}_proj.weight   layers/ii/{wq,wk,wv,wo}
//   model.layers.{i}.post_attention_layernorm.weight   layers/ii/mlp_norm
//   model.layers.{i}.mlp.{gate,up,down}_proj.weight    layers/ii/{w_gate,w_up,w_down}
//   model.norm.weight                                  norm
//   lm_head.weight                                     lm_head (absent, or equal to the embedding, when tied)
//
// Shapes are the same (both store W as [out, in]). RoPE: longctx rotates the pairs (i, i + HS/2) of
// each head (rotate-half, ops.h), which is what Hugging Face's Llama does (rotate_half in
// modeling_llama.py), so q_proj and k_proj are copied row for row, without the interleave
// permutation that Meta's original checkpoints need (convert_llama_weights_to_hf.py applies that one
// when it writes the HF format, so HF files are already in rotate-half order).
//
// Refused, each by name: other architectures, hidden_act other than silu, attention or MLP biases,
// rope_scaling / rope_parameters of any rope_type but "default" (llama3, linear, dynamic, yarn, ...),
// a head_dim other than hidden_size / num_attention_heads, missing or extra tensors, wrong shapes,
// dtypes other than BF16/F16/F32, and every malformed safetensors file (safetensors.h).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "longctx/config.h"
#include "longctx/json.h"

namespace longctx {

// What a config.json describes, in longctx's terms.
struct HfModel {
  ModelConfig model;
  double rope_theta = 10000.0;
  int64_t max_positions = 2048;  // max_position_embeddings
};

// Reads and checks config.json (path names it in messages). Defaults as transformers' LlamaConfig:
// num_key_value_heads = num_attention_heads, rms_norm_eps 1e-6, rope_theta 1e4,
// max_position_embeddings 2048, tie_word_embeddings false.
HfModel read_hf_config(const json::Value& config, const std::string& path);
// The config.json of a longctx model (LlamaForCausalLM, torch_dtype bfloat16).
json::Value hf_config_json(const HfModel& m);
// The Hugging Face name of a longctx tensor: "layers/03/wq" -> "model.layers.3.self_attn.q_proj.weight".
std::string hf_tensor_name(const std::string& longctx_name);

struct ImportResult {
  HfModel hf;
  int64_t tensors = 0;     // read from the model
  std::string dtypes;      // "BF16" or "BF16, F32": the dtypes found
};
// Reads MODEL_DIR and writes a checkpoint at out_h5 (via out_h5.tmp, through write_checkpoint, on
// this rank alone): /config holds the model and one stage {seq_len = max_position_embeddings,
// rope_theta}, /state that seq_len and rope_theta at step 0, /model the weights in bf16 and
// /optimizer/master the weights as read in fp32 (bf16 and f16 exactly; f32 as is), with zero moments.
// Every check runs before anything is written.
ImportResult import_hf(const std::string& model_dir, const std::string& out_h5);

struct ExportOptions {
  int64_t shard_bytes = 5'000'000'000;  // largest shard (transformers' "5GB"); a larger tensor gets one of its own
  bool force = false;                   // write into a non-empty directory
};
struct ExportResult {
  HfModel hf;
  int64_t shards = 0, bytes = 0;  // safetensors files written, tensor bytes in them
};
// Writes out_dir/config.json and the bf16 weights (model.safetensors, or model-0000k-of-0000n.safetensors
// with model.safetensors.index.json) of a checkpoint; max_position_embeddings is its seq_len and
// rope_theta its stage's. A non-empty out_dir is refused unless force (which first removes only the
// files export writes: config.json, model*.safetensors, model.safetensors.index.json).
ExportResult export_hf(const std::string& ckpt, const std::string& out_dir, const ExportOptions& opt);

// "5GB", "500MB", "10KiB", "123": bytes (KB/MB/GB decimal as transformers', KiB/MiB/GiB binary).
int64_t parse_byte_size(const std::string& s);

}  // namespace longctx

namespace longctx {
// The model of a longctx checkpoint, from its /config attributes.
ModelConfig checkpoint_model_config(const std::string& ckpt);

// Per-position losses of a checkpoint on a token sequence, on this rank's CPU (`longctx forward`):
// tokens t_0..t_{N-1}; loss[i] = -log p(t_{i+1} | t_0..t_i) for i < N-1, at RoPE base rope_theta
// (<= 0: the checkpoint's). Returns the N-1 losses.
std::vector<float> checkpoint_token_losses(const std::string& ckpt, const std::vector<int32_t>& tokens,
                                           double rope_theta, double* used_theta = nullptr);
// The whole next-token distributions of the same positions: (N-1) x V log-probabilities, row i
// log p(v | t_0..t_i) (`longctx forward --logprobs`: compared with transformers' log_softmax of
// its logits). One forward per vocabulary entry (the model never holds all V logits), so only for
// small models: vocab_size up to kLogProbsMaxVocab.
constexpr int64_t kLogProbsMaxVocab = 32768;
std::vector<float> checkpoint_log_probs(const std::string& ckpt, const std::vector<int32_t>& tokens, double rope_theta);

// The subcommands (src/cli/hf_cli.cpp): args as after `longctx CMD`; run on rank 0.
int import_hf_main(const std::vector<std::string>& args, int rank);
int export_hf_main(const std::vector<std::string>& args, int rank);
int forward_main(const std::vector<std::string>& args, int rank);
}  // namespace longctx
