// hf_config.cpp — Hugging Face config.json <-> longctx's model, and the tensor names (hf.h).
#include <charconv>
#include <cmath>

#include "longctx/common.h"
#include "longctx/hf.h"

namespace longctx {

namespace {
constexpr const char* kConfigHint =
    "longctx trains plain Llama models (LlamaForCausalLM: SiLU MLP, no biases, default RoPE)";

// rope_scaling or rope_parameters: only rope_type (or the older key type) "default" is the RoPE longctx has.
void check_rope_type(const json::Value& v, const std::string& key, const std::string& path) {
  if (v.is_null()) return;
  const std::string what = path + ": " + key;
  v.as_object(what);
  const json::Value* t = v.find("rope_type");
  if (!t) t = v.find("type");
  CHECK_HINT(t, kConfigHint, "{} has no rope_type", what);
  const std::string& type = t->as_string(what + ".rope_type");
  CHECK_HINT(type == "default",
             "longctx implements only the default RoPE (theta^(-2i/HS)); drop the scaling from config.json "
             "if the weights were trained without it, or convert to a model that has none",
             "{}: rope_type \"{}\" is not supported (only \"default\")", what, type);
}
}  // namespace

HfModel read_hf_config(const json::Value& c, const std::string& path) {
  c.as_object(path);
  auto get = [&](const char* key) { return c.find(key); };
  auto need_int = [&](const char* key) {
    const json::Value* v = get(key);
    CHECK_HINT(v, kConfigHint, "{}: no {}", path, key);
    const int64_t x = v->as_int(path + ": " + key);
    CHECK_HINT(x > 0, kConfigHint, "{}: {} = {} must be positive", path, key, x);
    return x;
  };
  if (const json::Value* a = get("architectures")) {
    const auto& arr = a->as_array(path + ": architectures");
    CHECK_HINT(arr.size() == 1 && arr[0].is_string() && arr[0].as_string() == "LlamaForCausalLM", kConfigHint,
               "{}: architectures = {} is not supported (only [\"LlamaForCausalLM\"])", path, json::dump(*a));
  } else {
    const json::Value* mt = get("model_type");
    CHECK_HINT(mt, kConfigHint, "{}: neither architectures nor model_type says what model this is", path);
  }
  if (const json::Value* mt = get("model_type"))
    CHECK_HINT(mt->as_string(path + ": model_type") == "llama", kConfigHint,
               "{}: model_type \"{}\" is not supported (only \"llama\")", path, mt->as_string());
  if (const json::Value* act = get("hidden_act"))
    CHECK_HINT(act->as_string(path + ": hidden_act") == "silu", kConfigHint,
               "{}: hidden_act \"{}\" is not supported (only \"silu\")", path, act->as_string());
  for (const char* bias : {"attention_bias", "mlp_bias"})
    if (const json::Value* b = get(bias))
      CHECK_HINT(!b->as_bool(path + ": " + bias), kConfigHint, "{}: {} = true is not supported (longctx has no biases)",
                 path, bias);
  if (const json::Value* rs = get("rope_scaling")) check_rope_type(*rs, "rope_scaling", path);

  HfModel h;
  ModelConfig& m = h.model;
  m.vocab_size = need_int("vocab_size");
  m.d_model = need_int("hidden_size");
  m.n_layers = need_int("num_hidden_layers");
  m.n_heads = need_int("num_attention_heads");
  m.d_ff = need_int("intermediate_size");
  m.n_kv_heads = get("num_key_value_heads") && !get("num_key_value_heads")->is_null()
                     ? need_int("num_key_value_heads") : m.n_heads;
  m.norm_eps = get("rms_norm_eps") ? get("rms_norm_eps")->as_double(path + ": rms_norm_eps") : 1e-6;
  m.tie_embeddings = get("tie_word_embeddings") && get("tie_word_embeddings")->as_bool(path + ": tie_word_embeddings");
  if (get("max_position_embeddings")) h.max_positions = need_int("max_position_embeddings");

  // rope_theta: top level (transformers <= 4) and/or rope_parameters.rope_theta (transformers 5).
  const json::Value* top = get("rope_theta");
  const json::Value* rp = get("rope_parameters");
  const json::Value* nested = rp && !rp->is_null() ? (check_rope_type(*rp, "rope_parameters", path), rp->find("rope_theta")) : nullptr;
  if (top) h.rope_theta = top->as_double(path + ": rope_theta");
  if (nested) {
    const double t = nested->as_double(path + ": rope_parameters.rope_theta");
    CHECK_HINT(!top || t == h.rope_theta, "make them agree", "{}: rope_theta = {} but rope_parameters.rope_theta = {}",
               path, h.rope_theta, t);
    h.rope_theta = t;
  }

  CHECK_HINT(m.norm_eps > 0 && std::isfinite(m.norm_eps), kConfigHint, "{}: rms_norm_eps = {} must be > 0", path, m.norm_eps);
  CHECK_HINT(h.rope_theta > 0 && std::isfinite(h.rope_theta), kConfigHint, "{}: rope_theta = {} must be > 0", path, h.rope_theta);
  CHECK_HINT(m.d_model % m.n_heads == 0, kConfigHint, "{}: num_attention_heads = {} must divide hidden_size = {}", path,
             m.n_heads, m.d_model);
  CHECK_HINT(m.head_size() % 2 == 0, kConfigHint, "{}: the head size hidden_size / num_attention_heads = {} must be even (RoPE)",
             path, m.head_size());
  CHECK_HINT(m.n_kv_heads <= m.n_heads && m.n_heads % m.n_kv_heads == 0, kConfigHint,
             "{}: num_key_value_heads = {} must divide num_attention_heads = {}", path, m.n_kv_heads, m.n_heads);
  if (const json::Value* hd = get("head_dim"); hd && !hd->is_null())
    CHECK_HINT(hd->as_int(path + ": head_dim") == m.head_size(),
               "longctx's head size is hidden_size / num_attention_heads",
               "{}: head_dim = {} is not hidden_size / num_attention_heads = {}", path, hd->as_int(), m.head_size());
  CHECK_HINT(h.max_positions >= 2 && h.max_positions <= (int64_t(1) << 31), kConfigHint,
             "{}: max_position_embeddings = {} must be in 2..2147483648", path, h.max_positions);
  return h;
}

json::Value hf_config_json(const HfModel& h) {
  const ModelConfig& m = h.model;
  json::Value c = json::Value::object();
  c.set("architectures", json::Value(json::Value::Array{"LlamaForCausalLM"}));
  c.set("model_type", "llama");
  c.set("vocab_size", m.vocab_size);
  c.set("hidden_size", m.d_model);
  c.set("intermediate_size", m.d_ff);
  c.set("num_hidden_layers", m.n_layers);
  c.set("num_attention_heads", m.n_heads);
  c.set("num_key_value_heads", m.n_kv_heads);
  c.set("head_dim", m.head_size());
  c.set("hidden_act", "silu");
  c.set("max_position_embeddings", h.max_positions);
  c.set("rms_norm_eps", m.norm_eps);
  c.set("rope_theta", h.rope_theta);
  c.set("rope_scaling", nullptr);
  c.set("attention_bias", false);
  c.set("attention_dropout", 0.0);
  c.set("mlp_bias", false);
  c.set("tie_word_embeddings", m.tie_embeddings);
  c.set("torch_dtype", "bfloat16");
  c.set("use_cache", true);
  return c;
}

std::string hf_tensor_name(const std::string& n) {
  if (n == "embed") return "model.embed_tokens.weight";
  if (n == "norm") return "model.norm.weight";
  if (n == "lm_head") return "lm_head.weight";
  CHECK(n.starts_with("layers/"), "hf_tensor_name: unknown tensor '{}'", n);
  const size_t slash = n.find('/', 7);
  CHECK(slash != std::string::npos, "hf_tensor_name: unknown tensor '{}'", n);
  int64_t layer = -1;
  std::from_chars(n.data() + 7, n.data() + slash, layer);
  const std::string leaf = n.substr(slash + 1);
  static const std::pair<const char*, const char*> kLeaves[] = {
      {"attn_norm", "input_layernorm"}, {"wq", "self_attn.q_proj"},          {"wk", "self_attn.k_proj"},
      {"wv", "self_attn.v_proj"},       {"wo", "self_attn.o_proj"},          {"mlp_norm", "post_attention_layernorm"},
      {"w_gate", "mlp.gate_proj"},      {"w_up", "mlp.up_proj"},             {"w_down", "mlp.down_proj"}};
  for (auto [ours, theirs] : kLeaves)
    if (leaf == ours) return fmt::format("model.layers.{}.{}.weight", layer, theirs);
  FAIL_ERROR("hf_tensor_name: unknown tensor '{}'", n);
}

int64_t parse_byte_size(const std::string& s) {
  int64_t n = 0;
  const auto r = std::from_chars(s.data(), s.data() + s.size(), n);
  const std::string unit(r.ptr, s.data() + s.size());
  static const std::pair<const char*, int64_t> kUnits[] = {
      {"", 1}, {"B", 1}, {"KB", 1000}, {"MB", 1000'000}, {"GB", 1000'000'000}, {"TB", 1000'000'000'000},
      {"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", int64_t(1) << 30}, {"TiB", int64_t(1) << 40}};
  for (auto [u, scale] : kUnits)
    if (r.ec == std::errc() && n > 0 && unit == u) {
      CHECK_HINT(n <= INT64_MAX / scale, "e.g. 5GB", "size '{}' is too large", s);
      return n * scale;
    }
  FAIL_HINT("a positive whole number of bytes, optionally with KB, MB, GB (decimal) or KiB, MiB, GiB", "'{}' is not a size", s);
}

}  // namespace longctx
