// hf_import.cpp — `longctx import-hf`: a Hugging Face Llama directory -> a longctx checkpoint (hf.h).
//
// RoPE: q_proj/k_proj rows are copied as they are. longctx pairs (i, i + HS/2) within a head
// (rotate-half), as Hugging Face's Llama does (rotate_half), so no permutation is needed; the test
// "import-hf: rows land unpermuted" holds it to that.
#include <algorithm>
#include <cstring>
#include <filesystem>
#include <set>

#include "longctx/checkpoint.h"
#include "longctx/common.h"
#include "longctx/hf.h"
#include "longctx/log.h"
#include "longctx/safetensors.h"

namespace longctx {
namespace fs = std::filesystem;

namespace {
constexpr const char* kTensorHint =
    "the weights do not match config.json: is the directory complete, and config.json the one saved with "
    "these weights?";

// "a, b, c (and 7 more)"
std::string some_of(const std::vector<std::string>& names) {
  std::string s;
  for (size_t i = 0; i < names.size() && i < 5; ++i) s += (i ? ", " : "") + names[i];
  if (names.size() > 5) s += fmt::format(" (and {} more)", names.size() - 5);
  return s;
}
}  // namespace

ImportResult import_hf(const std::string& dir, const std::string& out_h5) {
  const std::string config_path = (fs::path(dir) / "config.json").string();
  std::error_code ec;
  CHECK_HINT(fs::is_directory(dir, ec), "pass the directory save_pretrained wrote", "model directory {} does not exist", dir);
  CHECK_HINT(fs::is_regular_file(config_path, ec), "pass the directory save_pretrained wrote (it holds config.json)",
             "{} has no config.json", dir);
  ImportResult res;
  res.hf = read_hf_config(json::parse_file(config_path), config_path);
  const ModelConfig& m = res.hf.model;
  const SafetensorsModel st(dir);

  const ParamLayout layout = make_param_layout(m);
  std::vector<float> params(size_t(layout.total));
  std::set<std::string> used, dtypes;
  std::vector<std::string> missing;
  for (const ParamTensor& p : layout.tensors) {
    const std::string name = hf_tensor_name(p.name);
    const SafetensorsFile* file = nullptr;
    const StTensor* t = st.find(name, &file);
    if (!t) {
      missing.push_back(name);
      continue;
    }
    CHECK_HINT(t->shape == p.shape, kTensorHint, "{}: tensor '{}' has shape {}, config.json's model needs {}",
               file->path(), name, shape_string(t->shape), shape_string(p.shape));
    file->read_f32(*t, params.data() + p.offset);  // q_proj/k_proj too: rotate-half on both sides
    used.insert(name);
    dtypes.insert(st_dtype_name(t->dtype));
  }
  CHECK_HINT(missing.empty(),
             m.tie_embeddings ? kTensorHint : "config.json says tie_word_embeddings = false: an untied model needs lm_head.weight",
             "{}: missing tensor(s) {}", st.description(), some_of(missing));
  if (m.tie_embeddings) {  // lm_head.weight may be saved too; then it must be the embedding
    const SafetensorsFile* file = nullptr;
    if (const StTensor* t = st.find("lm_head.weight", &file)) {
      const ParamTensor& e = layout.find("embed");
      CHECK_HINT(t->shape == e.shape, kTensorHint, "{}: tensor 'lm_head.weight' has shape {}, the embedding {}",
                 file->path(), shape_string(t->shape), shape_string(e.shape));
      std::vector<float> head(size_t(e.numel));
      file->read_f32(*t, head.data());
      CHECK_HINT(std::memcmp(head.data(), params.data() + e.offset, head.size() * sizeof(float)) == 0,
                 "set tie_word_embeddings = false in config.json if the head is a separate matrix",
                 "{}: config.json says tie_word_embeddings = true, but lm_head.weight differs from "
                 "model.embed_tokens.weight", file->path());
      used.insert(t->name);
    }
  }
  std::vector<std::string> extra, skipped;
  for (const std::string& n : st.names()) {
    if (used.count(n)) continue;
    // Rotary tables that old transformers versions saved: derived from rope_theta, not weights.
    if (n.ends_with(".self_attn.rotary_emb.inv_freq")) skipped.push_back(n);
    else extra.push_back(n);
  }
  CHECK_HINT(extra.empty(), "longctx imports plain Llama models; these tensors have no place in one",
             "{}: unexpected tensor(s) {} (not part of a LlamaForCausalLM of config.json's shape)", st.description(),
             some_of(extra));
  if (!skipped.empty()) log_warn("import-hf: ignored {} rotary inv_freq table(s) (recomputed from rope_theta)", skipped.size());
  for (const auto& d : dtypes) res.dtypes += (res.dtypes.empty() ? "" : ", ") + d;
  res.tensors = int64_t(used.size());

  // Everything checked: write (write_checkpoint goes through out_h5.tmp and removes it on failure).
  Config cfg;
  cfg.run.name = "hf-import";
  cfg.model = m;
  cfg.stages = {StageConfig{res.hf.max_positions, res.hf.rope_theta, 1, 1, 1}};
  TrainState state;
  state.seq_len = res.hf.max_positions, state.rope_theta = res.hf.rope_theta, state.seed = cfg.run.seed;
  std::vector<float> zeros(params.size(), 0.0f);  // the AdamW moments of a fresh start
  const CheckpointIO io{&layout, params.data(), true, 0, layout.total, params.data(), zeros.data(), zeros.data()};
  write_checkpoint(out_h5, cfg, io, state, MPI_COMM_SELF);
  return res;
}

}  // namespace longctx
