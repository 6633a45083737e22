// test_hf.cpp — Hugging Face models in and out (include/longctx/hf.h): import -> export bit for bit
// (single file and shards, tied and untied, GQA), f16/f32 inputs converted as stated, the RoPE
// convention shared with transformers, every refusal with its message and no output, and the
// imported checkpoint trained one step (init_from), evaluated and run forward by the binary.
#include <bit>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <random>

#include "catch.h"
#include "longctx/bf16.h"
#include "longctx/checkpoint.h"
#include "longctx/hf.h"
#include "longctx/ops.h"
#include "longctx/safetensors.h"
#include "util.h"

using namespace longctx;
namespace fs = std::filesystem;
using Catch::Matchers::Contains;

namespace {

// A small GQA Llama: 4 query heads, 2 K/V heads, head size 8.
HfModel small_model(bool tied, int64_t vocab = 48) {
  HfModel h;
  h.model.vocab_size = vocab, h.model.d_model = 32, h.model.n_layers = 2, h.model.n_heads = 4;
  h.model.n_kv_heads = 2, h.model.d_ff = 40, h.model.norm_eps = 1e-5, h.model.tie_embeddings = tied;
  h.rope_theta = 500000.0, h.max_positions = 256;
  return h;
}

// The tensors of a Hugging Face model directory, as raw bytes, by HF name.
struct HfDir {
  std::string dir;
  std::map<std::string, std::vector<uint8_t>> bytes;
  std::map<std::string, std::vector<int64_t>> shapes;
  std::map<std::string, StDtype> dtypes;
};

// Writes config.json and random weights of `dtype` (finite values on a weight's scale) into a new
// directory (write_weights writes the files); `lm_head_when_tied` saves the tied head too.
HfDir write_hf(const std::string& tag, const HfModel& h, StDtype dtype, bool lm_head_when_tied = false) {
  HfDir d;
  d.dir = test::temp_dir(tag);
  std::mt19937_64 g(test::fresh_seed());
  std::normal_distribution<float> nd(0.0f, 0.5f);
  const ParamLayout layout = make_param_layout(h.model);
  for (const ParamTensor& t : layout.tensors) {
    const std::string n = hf_tensor_name(t.name);
    auto& b = d.bytes[n];
    b.resize(size_t(t.numel * st_dtype_size(dtype)));
    for (int64_t i = 0; i < t.numel; ++i) {
      const float x = nd(g);
      if (dtype == StDtype::F32) std::memcpy(&b[size_t(4 * i)], &x, 4);
      else {
        uint16_t v = dtype == StDtype::BF16 ? bf16_bits(x) : uint16_t(g() & 0x7bff) ^ uint16_t(g() & 0x8000);  // any finite half
        std::memcpy(&b[size_t(2 * i)], &v, 2);
      }
    }
    d.shapes[n] = t.shape, d.dtypes[n] = dtype;
  }
  if (h.model.tie_embeddings && lm_head_when_tied) {
    d.bytes["lm_head.weight"] = d.bytes["model.embed_tokens.weight"];
    d.shapes["lm_head.weight"] = d.shapes["model.embed_tokens.weight"], d.dtypes["lm_head.weight"] = dtype;
  }
  std::ofstream(d.dir + "/config.json") << json::dump(hf_config_json(h), 2);
  return d;
}

// (Re)writes the safetensors files of d (after a test changed its tensors).
void write_weights(const HfDir& d, int shards = 1) {
  std::vector<std::vector<StOut>> files(static_cast<size_t>(shards));
  json::Value map = json::Value::object();
  size_t k = 0;
  for (const auto& [n, b] : d.bytes) {
    const size_t s = k++ % size_t(shards);
    files[s].push_back(StOut{n, d.dtypes.at(n), d.shapes.at(n), b.data()});
    map.set(n, fmt::format("model-{:05d}-of-{:05d}.safetensors", s + 1, shards));
  }
  if (shards == 1) return write_safetensors(d.dir + "/model.safetensors", files[0]);
  for (size_t s = 0; s < files.size(); ++s)
    write_safetensors(d.dir + fmt::format("/model-{:05d}-of-{:05d}.safetensors", s + 1, shards), files[s]);
  json::Value idx = json::Value::object();
  idx.set("weight_map", map);
  std::ofstream(d.dir + "/model.safetensors.index.json") << json::dump(idx);
}

// Every tensor of an exported directory equals the input's bits; config.json carries the model.
void check_export_equals(const std::string& out, const HfDir& in, const HfModel& h) {
  const SafetensorsModel m(out);
  std::vector<std::string> want;
  for (const auto& [n, _] : in.bytes)
    if (!(h.model.tie_embeddings && n == "lm_head.weight")) want.push_back(n);
  CHECK(m.names() == want);
  for (const std::string& n : want) {
    const SafetensorsFile* f = nullptr;
    const StTensor* t = m.find(n, &f);
    REQUIRE(t);
    CHECK(t->dtype == StDtype::BF16);
    CHECK(t->shape == in.shapes.at(n));
    std::vector<uint16_t> bits(size_t(t->numel()));
    f->read_bf16(*t, bits.data());
    INFO(n);
    CHECK(std::memcmp(bits.data(), in.bytes.at(n).data(), bits.size() * 2) == 0);
  }
  const HfModel back = read_hf_config(json::parse_file(out + "/config.json"), out + "/config.json");
  CHECK(back.model.vocab_size == h.model.vocab_size);
  CHECK(back.model.n_kv_heads == h.model.n_kv_heads);
  CHECK(back.model.tie_embeddings == h.model.tie_embeddings);
  CHECK(back.model.norm_eps == h.model.norm_eps);
  CHECK(back.rope_theta == h.rope_theta);
  CHECK(back.max_positions == h.max_positions);
  const json::Value c = json::parse_file(out + "/config.json");
  CHECK(c.find("torch_dtype")->as_string() == "bfloat16");
  CHECK(c.find("architectures")->as_array()[0].as_string() == "LlamaForCausalLM");
}

// The weights of a checkpoint as read_checkpoint gives them (the fp32 master).
std::vector<float> checkpoint_weights(const std::string& path, const ModelConfig& m, TrainState* st = nullptr) {
  Config cfg;
  cfg.model = m;
  const ParamLayout layout = make_param_layout(m);
  std::vector<float> p(size_t(layout.total), NAN);
  CheckpointIO io;
  io.layout = &layout, io.params = p.data();
  const TrainState s = read_checkpoint(path, cfg, io, false, MPI_COMM_SELF);
  if (st) *st = s;
  return p;
}

}  // namespace

TEST_CASE("import-hf -> export-hf is bit-exact for bf16 weights", "[hf]") {
  struct Case {
    bool tied;
    int in_shards;
    int64_t shard_bytes;
    bool lm_head_saved;
  };
  for (const Case c : {Case{false, 1, 5'000'000'000, false}, Case{true, 1, 5'000'000'000, false},
                       Case{true, 3, 9000, true}, Case{false, 2, 4000, false}}) {
    INFO("tied " << c.tied << ", input shards " << c.in_shards << ", shard size " << c.shard_bytes);
    const HfModel h = small_model(c.tied);
    const HfDir in = write_hf("hf-rt", h, StDtype::BF16, c.lm_head_saved);
    write_weights(in, c.in_shards);
    const std::string ckpt = in.dir + "/imported.h5";
    const ImportResult r = import_hf(in.dir, ckpt);
    CHECK(r.dtypes == "BF16");
    CHECK(r.hf.rope_theta == 500000.0);
    TrainState st;
    checkpoint_weights(ckpt, h.model, &st);
    CHECK((st.seq_len == 256 && st.rope_theta == 500000.0 && st.global_step == 0));
    const std::string out = in.dir + "/export";
    ExportOptions opt;
    opt.shard_bytes = c.shard_bytes;
    const ExportResult e = export_hf(ckpt, out, opt);
    CHECK(fs::exists(out + "/model.safetensors") == (e.shards == 1));
    CHECK(fs::exists(out + "/model.safetensors.index.json") == (e.shards > 1));
    if (c.shard_bytes < 10000) CHECK(e.shards > 1);
    for (const auto& f : fs::directory_iterator(out)) {
      CHECK_FALSE(f.path().string().ends_with(".tmp"));
      if (e.shards > 1 && f.path().extension() == ".safetensors")  // a shard overflows only with one tensor
        CHECK((SafetensorsFile(f.path().string()).tensors().size() == 1 || fs::file_size(f.path()) <= size_t(c.shard_bytes) + 4096));
    }
    check_export_equals(out, in, h);
  }
}

TEST_CASE("import-hf: q/k rows land unpermuted; longctx's RoPE is transformers' rotate_half", "[hf]") {
  const HfModel h = small_model(false);
  const HfDir in = write_hf("hf-rows", h, StDtype::BF16);
  write_weights(in);
  import_hf(in.dir, in.dir + "/c.h5");
  const std::vector<float> p = checkpoint_weights(in.dir + "/c.h5", h.model);
  const ParamLayout layout = make_param_layout(h.model);
  for (const char* n : {"layers/01/wq", "layers/01/wk"}) {
    const ParamTensor& t = layout.find(n);
    const auto& b = in.bytes.at(hf_tensor_name(n));
    for (int64_t i = 0; i < t.numel; ++i) {  // row r of q_proj is row r of wq, element for element
      uint16_t v;
      std::memcpy(&v, &b[size_t(2 * i)], 2);
      if (p[size_t(t.offset + i)] != bf16_to_float(v)) FAIL(n << " element " << i << " moved");
    }
  }
  // transformers' apply_rotary_pos_emb: q * cos(cat(f, f)) + rotate_half(q) * sin(cat(f, f)),
  // rotate_half(x) = cat(-x[HS/2:], x[:HS/2]), f_i = p · theta^(-2i/HS); written here from that.
  const int64_t T = 5, H = 3, HS = 8, H2 = HS / 2;
  std::vector<float> x = test::randn(size_t(T * H * HS)), ref(x.size());
  for (int64_t t = 0; t < T; ++t)
    for (int64_t hh = 0; hh < H; ++hh)
      for (int64_t j = 0; j < HS; ++j) {
        const float* v = &x[size_t((t * H + hh) * HS)];
        const double a = double(t) * std::pow(h.rope_theta, -double(2 * (j % H2)) / double(HS));
        const double rot = j < H2 ? -v[j + H2] : v[j - H2];
        ref[size_t((t * H + hh) * HS + j)] = float(v[j] * std::cos(a) + rot * std::sin(a));
      }
  std::vector<float> cos_t(size_t(T * H2)), sin_t(size_t(T * H2));
  std::vector<int64_t> pos = {0, 1, 2, 3, 4};
  cpu::rope_table(cos_t.data(), sin_t.data(), pos.data(), T, HS, h.rope_theta);
  cpu::rope_apply(x.data(), cos_t.data(), sin_t.data(), 1, T, H, HS, +1);
  for (size_t i = 0; i < x.size(); ++i)
    CHECK(std::fabs(x[i] - ref[i]) <= 1e-6f + 1e-6f * std::fabs(ref[i]));  // fp32 cos/sin tables vs double
}

TEST_CASE("import-hf: f16 and f32 weights convert as stated", "[hf]") {
  for (StDtype dt : {StDtype::F16, StDtype::F32}) {
    INFO(st_dtype_name(dt));
    const HfModel h = small_model(true);
    const HfDir in = write_hf("hf-conv", h, dt);
    write_weights(in);
    CHECK(import_hf(in.dir, in.dir + "/c.h5").dtypes == st_dtype_name(dt));
    // /optimizer/master (what training continues from) holds the values exactly: f16 -> fp32 is
    // exact, f32 is kept; export writes them rounded to nearest-even bf16 (bf16.h), as /model holds them.
    const std::vector<float> p = checkpoint_weights(in.dir + "/c.h5", h.model);
    const ParamLayout layout = make_param_layout(h.model);
    export_hf(in.dir + "/c.h5", in.dir + "/out", {});
    const SafetensorsModel out(in.dir + "/out");
    for (const ParamTensor& t : layout.tensors) {
      const auto& b = in.bytes.at(hf_tensor_name(t.name));
      const SafetensorsFile* f = nullptr;
      const StTensor* st = out.find(hf_tensor_name(t.name), &f);
      std::vector<uint16_t> bits(size_t(t.numel));
      f->read_bf16(*st, bits.data());
      for (int64_t i = 0; i < t.numel; ++i) {
        float x;
        if (dt == StDtype::F32) std::memcpy(&x, &b[size_t(4 * i)], 4);
        else {
          uint16_t v;
          std::memcpy(&v, &b[size_t(2 * i)], 2);
          x = f16_to_float(v);
        }
        if (std::bit_cast<uint32_t>(p[size_t(t.offset + i)]) != std::bit_cast<uint32_t>(x)) FAIL(t.name << " " << i);
        if (bits[size_t(i)] != bf16_bits(x)) FAIL(t.name << " exported " << i);
      }
    }
  }
}

TEST_CASE("import-hf: config.json of transformers 4 and 5; refusals by name", "[hf]") {
  auto cfg = [](const std::string& extra) {
    return json::parse(R"({"architectures":["LlamaForCausalLM"],"model_type":"llama","hidden_size":64,
      "num_hidden_layers":2,"num_attention_heads":4,"intermediate_size":96,"vocab_size":100)" + extra + "}", "config.json");
  };
  auto error = [&](const std::string& extra) { return test::error_of([&] { read_hf_config(cfg(extra), "config.json"); }); };
  const HfModel d = read_hf_config(cfg(""), "config.json");  // LlamaConfig's defaults
  CHECK((d.model.n_kv_heads == 4 && d.model.norm_eps == 1e-6 && d.rope_theta == 10000.0));
  CHECK((d.max_positions == 2048 && !d.model.tie_embeddings));
  const HfModel v5 = read_hf_config(
      cfg(R"(,"rope_parameters":{"rope_theta":1000000.0,"rope_type":"default"},"num_key_value_heads":2,"tie_word_embeddings":true,"rms_norm_eps":1e-05,"max_position_embeddings":8192,"head_dim":16,"rope_scaling":null)"),
      "config.json");
  CHECK((v5.rope_theta == 1e6 && v5.model.n_kv_heads == 2 && v5.model.tie_embeddings && v5.max_positions == 8192));
  CHECK(read_hf_config(cfg(R"(,"rope_theta":5e5,"rope_scaling":{"rope_type":"default"})"), "c").rope_theta == 5e5);
  const std::pair<std::string, std::string> cases[] = {
      {R"(,"rope_scaling":{"rope_type":"llama3","factor":8.0})", "rope_scaling: rope_type \"llama3\" is not supported"},
      {R"(,"rope_scaling":{"type":"linear","factor":2.0})", "rope_type \"linear\" is not supported"},
      {R"(,"rope_parameters":{"rope_theta":5e5,"rope_type":"yarn"})", "rope_parameters: rope_type \"yarn\" is not supported"},
      {R"(,"rope_theta":1e4,"rope_parameters":{"rope_theta":5e5,"rope_type":"default"})", "rope_theta = 10000 but rope_parameters.rope_theta = 500000"},
      {R"(,"hidden_act":"gelu")", "hidden_act \"gelu\" is not supported"},
      {R"(,"attention_bias":true)", "attention_bias = true is not supported"},
      {R"(,"mlp_bias":true)", "mlp_bias = true is not supported"},
      {R"(,"head_dim":32)", "head_dim = 32 is not hidden_size / num_attention_heads = 16"},
      {R"(,"num_key_value_heads":3)", "num_key_value_heads = 3 must divide num_attention_heads = 4"},
      {R"(,"max_position_embeddings":1)", "max_position_embeddings = 1 must be in"},
      {R"(,"rope_theta":"big")", "rope_theta must be a number, not string"},
      {R"(,"rope_theta":-1.0)", "rope_theta = -1 must be > 0"},
      {R"(,"rms_norm_eps":0)", "rms_norm_eps = 0 must be > 0"},
      {R"(,"rope_scaling":{"factor":8.0})", "rope_scaling has no rope_type"},
  };
  for (const auto& [extra, message] : cases) {
    INFO(extra);
    CHECK_THAT(error(extra), Contains("config.json") && Contains(message));
  }
  CHECK_THAT(test::error_of([] {
               read_hf_config(json::parse(R"({"architectures":["MistralForCausalLM"],"model_type":"mistral"})", "c"), "c");
             }),
             Contains("architectures = [\"MistralForCausalLM\"] is not supported"));
  CHECK_THAT(test::error_of([] { read_hf_config(json::parse(R"({"model_type":"llama","hidden_size":64})", "c"), "c"); }),
             Contains("c: no vocab_size"));
  auto bare = [](const std::string& body) {
    return test::error_of([&] { read_hf_config(json::parse("{\"model_type\":\"llama\",\"vocab_size\":100,\"intermediate_size\":96,\"num_hidden_layers\":2," + body + "}", "c"), "c"); });
  };
  CHECK_THAT(bare(R"("hidden_size":64,"num_attention_heads":5)"), Contains("num_attention_heads = 5 must divide hidden_size = 64"));
  CHECK_THAT(bare(R"("hidden_size":60,"num_attention_heads":20)"), Contains("head size hidden_size / num_attention_heads = 3 must be even"));
  CHECK_THAT(bare(R"("hidden_size":0,"num_attention_heads":4)"), Contains("hidden_size = 0 must be positive"));
  CHECK_THAT(test::error_of([] { read_hf_config(json::parse(R"({"hidden_size":64})", "c"), "c"); }),
             Contains("neither architectures nor model_type"));
  CHECK_THAT(test::error_of([] { read_hf_config(json::parse(R"({"model_type":"mistral"})", "c"), "c"); }),
             Contains("model_type \"mistral\" is not supported"));
}

TEST_CASE("import-hf: bad models are refused with their message and nothing written", "[hf]") {
  const HfModel h = small_model(false);
  struct Case {
    const char* what;
    std::function<void(HfDir&)> spoil;
    std::string message;
  };
  const std::string q = "model.layers.1.self_attn.q_proj.weight";
  const Case cases[] = {
      {"missing", [&](HfDir& d) { d.bytes.erase(q); }, "missing tensor(s) " + q},
      {"missing head", [&](HfDir& d) { d.bytes.erase("lm_head.weight"); }, "missing tensor(s) lm_head.weight"},
      {"extra", [&](HfDir& d) { d.bytes["model.layers.1.self_attn.q_proj.bias"] = std::vector<uint8_t>(64); d.shapes["model.layers.1.self_attn.q_proj.bias"] = {32}; d.dtypes["model.layers.1.self_attn.q_proj.bias"] = StDtype::BF16; },
       "unexpected tensor(s) model.layers.1.self_attn.q_proj.bias"},
      {"shape", [&](HfDir& d) { d.shapes["model.norm.weight"] = {2, 16}; }, "tensor 'model.norm.weight' has shape [2, 16], config.json's model needs [32]"},
      {"transposed", [&](HfDir& d) { d.shapes["model.layers.0.mlp.down_proj.weight"] = {40, 32}; }, "has shape [40, 32], config.json's model needs [32, 40]"},
  };
  for (const Case& c : cases) {
    INFO(c.what);
    HfDir d = write_hf("hf-bad", h, StDtype::BF16);
    c.spoil(d);
    write_weights(d, 2);
    const std::string out = d.dir + "/out.h5";
    CHECK_THAT(test::error_of([&] { import_hf(d.dir, out); }), Contains(c.message));
    CHECK_FALSE(fs::exists(out));
    CHECK_FALSE(fs::exists(out + ".tmp"));
  }
  // Files spoiled on disk: a dtype refused by name, a truncated shard, a lying header length, bad JSON.
  auto spoiled = [&](const std::function<void(const std::string&)>& spoil) {
    HfDir d = write_hf("hf-bad-file", h, StDtype::BF16);
    write_weights(d);
    spoil(d.dir);
    const std::string out = d.dir + "/out.h5";
    const std::string e = test::error_of([&] { import_hf(d.dir, out); });
    CHECK_FALSE(fs::exists(out));
    CHECK_FALSE(fs::exists(out + ".tmp"));
    return e;
  };
  auto edit = [](const std::string& path, const std::function<void(std::string&)>& f) {
    std::ifstream in(path, std::ios::binary);
    std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    in.close();
    f(s);
    std::ofstream(path, std::ios::binary | std::ios::trunc) << s;
  };
  CHECK_THAT(spoiled([&](const std::string& dir) {
               edit(dir + "/model.safetensors", [](std::string& s) { s.replace(s.find("\"BF16\""), 6, "\"F64\" "); });
             }),
             Contains("dtype F64 is not supported"));
  CHECK_THAT(spoiled([&](const std::string& dir) { edit(dir + "/model.safetensors", [](std::string& s) { s.resize(s.size() - 10); }); }),
             Contains("model.safetensors: tensor '") && Contains("run past the data section"));
  CHECK_THAT(spoiled([&](const std::string& dir) { edit(dir + "/model.safetensors", [](std::string& s) { s[0] = char(s[0] + 8); }); }),
             Contains("model.safetensors (header): invalid JSON"));
  CHECK_THAT(spoiled([&](const std::string& dir) { edit(dir + "/model.safetensors", [](std::string& s) { s[5] = 1; }); }),
             Contains("runs past the end of the file"));
  CHECK_THAT(spoiled([&](const std::string& dir) { edit(dir + "/config.json", [](std::string& s) { s.pop_back(); }); }),
             Contains("config.json: invalid JSON at byte"));
  CHECK_THAT(spoiled([&](const std::string& dir) { fs::remove(dir + "/config.json"); }), Contains("has no config.json"));
  CHECK_THAT(spoiled([&](const std::string& dir) { fs::remove(dir + "/model.safetensors"); }),
             Contains("holds neither model.safetensors nor model.safetensors.index.json"));
  // Tied, with a saved lm_head.weight that is not the embedding.
  HfDir t = write_hf("hf-bad-tied", small_model(true), StDtype::BF16, true);
  t.bytes["lm_head.weight"][7] ^= 1;
  write_weights(t);
  CHECK_THAT(test::error_of([&] { import_hf(t.dir, t.dir + "/o.h5"); }),
             Contains("tie_word_embeddings = true, but lm_head.weight differs from model.embed_tokens.weight"));
  CHECK_FALSE(fs::exists(t.dir + "/o.h5"));
}

TEST_CASE("export-hf: refusals; --force replaces only what export writes", "[hf]") {
  const HfModel h = small_model(true);
  const HfDir in = write_hf("hf-exp", h, StDtype::BF16);
  write_weights(in);
  import_hf(in.dir, in.dir + "/c.h5");
  const std::string out = in.dir + "/out";
  fs::create_directories(out);
  std::ofstream(out + "/tokenizer.json") << "{}";
  std::ofstream(out + "/model-00001-of-00009.safetensors") << "stale";
  CHECK_THAT(test::error_of([&] { export_hf(in.dir + "/c.h5", out, {}); }), Contains(out + " exists and is not empty"));
  CHECK_FALSE(fs::exists(out + "/config.json"));
  ExportOptions force;
  force.force = true;
  export_hf(in.dir + "/c.h5", out, force);
  CHECK(fs::exists(out + "/tokenizer.json"));
  CHECK_FALSE(fs::exists(out + "/model-00001-of-00009.safetensors"));
  check_export_equals(out, in, h);
  CHECK_THAT(test::error_of([&] { export_hf(in.dir + "/none.h5", in.dir + "/o2", {}); }), Contains("does not exist"));
  CHECK_THAT(test::error_of([&] { export_hf(in.dir + "/config.json", in.dir + "/o2", {}); }), Contains("is not an HDF5 file"));
  CHECK_FALSE(fs::exists(in.dir + "/o2"));
  std::ofstream(in.dir + "/afile") << "x";
  CHECK_THAT(test::error_of([&] { export_hf(in.dir + "/c.h5", in.dir + "/afile", {}); }), Contains("exists and is not a directory"));
  ExportOptions zero;
  zero.shard_bytes = 0;
  CHECK_THAT(test::error_of([&] { export_hf(in.dir + "/c.h5", in.dir + "/o3", zero); }), Contains("the shard size must be positive"));
  CHECK_THAT(test::error_of([&] { import_hf(in.dir + "/no-such-dir", in.dir + "/x.h5"); }), Contains("model directory " + in.dir + "/no-such-dir does not exist"));
  CHECK_THAT(test::error_of([&] { checkpoint_token_losses(in.dir + "/c.h5", {5}, 0); }), Contains("1 token(s): nothing to predict"));
  CHECK(parse_byte_size("5GB") == 5'000'000'000);
  CHECK(parse_byte_size("2MiB") == 2 << 20);
  CHECK(parse_byte_size("123") == 123);
  for (const char* bad : {"", "0", "-1", "5 GB", "5gb", "1.5GB", "99999999999999GB"})
    CHECK_THAT(test::error_of([&] { parse_byte_size(bad); }), Contains("is not a size") || Contains("too large"));
}

TEST_CASE("import-hf, then train one step from it, eval it, run it forward", "[e2e]") {
  using test::contains, test::run_command, test::kBin;
  HfModel h = small_model(false, 264);  // byte-level needle data: vocab >= 259
  h.model.n_layers = 1, h.rope_theta = 10000.0;
  const HfDir in = write_hf("hf-e2e", h, StDtype::BF16);
  write_weights(in);
  const std::string ckpt = in.dir + "/imported.h5";
  std::string out;
  REQUIRE(run_command(std::string(kBin) + " import-hf " + in.dir + " -o " + ckpt, &out) == 0);
  CHECK(contains(out, "import-hf: 12 tensors (BF16)"));
  const std::string model = " --set model.vocab_size=264 --set model.d_model=32 --set model.n_heads=4 --set model.n_kv_heads=2"
                            " --set model.d_ff=40 --set model.norm_eps=1e-5";
  const std::string run = in.dir + "/run";
  const int rc = run_command(std::string(kBin) + " train input/tiny.toml" + test::quick(run) + model +
                                 " --set checkpoint.init_from=" + ckpt + " --set stage.1.steps=1 --set stage.2.steps=1",
                             &out);
  INFO(out);
  REQUIRE(rc == 0);
  CHECK(contains(out, "initialised from " + ckpt + " (global step 0, seq_len 256, rope_theta 10000); fresh optimizer"));
  REQUIRE(run_command(std::string(kBin) + " eval input/tiny.toml" + test::quick(run) + model + " --checkpoint " + ckpt +
                          " --lengths 128 --depths 0.5 --samples 1",
                      &out) == 0);
  CHECK(contains(out, "imported.h5 (step 0), rope_theta 10000"));
  // forward: the loss of a token sequence, and its per-token losses
  std::vector<int32_t> toks = {256, 72, 101, 108, 108, 111, 257, 3};
  std::ofstream(in.dir + "/t.bin", std::ios::binary).write(reinterpret_cast<const char*>(toks.data()), 32);
  REQUIRE(run_command(std::string(kBin) + " forward " + ckpt + " --tokens " + in.dir + "/t.bin --out " + in.dir + "/l.bin", &out) == 0);
  CHECK(contains(out, "\"tokens\": 8, \"targets\": 7, \"loss\": "));
  CHECK(fs::file_size(in.dir + "/l.bin") == 7 * 4);
  const std::vector<float> l = checkpoint_token_losses(ckpt, toks, 0);
  double mean = 0;
  for (float x : l) mean += x / 7.0;
  CHECK((std::isfinite(mean) && mean > 0));
  // --logprobs: every row a distribution (its probabilities sum to 1: fp32 softmax, 264 terms,
  // 1e-5), whose entry at the sequence's next token is minus that token's loss (the same forward
  // with other targets: equal to fp32 rounding, 1e-5 relative).
  REQUIRE(run_command(std::string(kBin) + " forward " + ckpt + " --tokens " + in.dir + "/t.bin --logprobs " + in.dir +
                          "/lp.bin", &out) == 0);
  REQUIRE(fs::file_size(in.dir + "/lp.bin") == 7 * 264 * 4);
  const std::vector<float> lp = checkpoint_log_probs(ckpt, toks, 0);
  std::vector<float> lp_file(lp.size());
  std::ifstream(in.dir + "/lp.bin", std::ios::binary).read(reinterpret_cast<char*>(lp_file.data()), 7 * 264 * 4);
  CHECK(lp_file == lp);
  for (size_t i = 0; i < 7; ++i) {
    double p = 0;
    for (size_t v = 0; v < 264; ++v) p += std::exp(double(lp[i * 264 + v]));
    CHECK(std::abs(p - 1.0) < 1e-5);
    CHECK(std::abs(-lp[i * 264 + size_t(toks[i + 1])] - l[i]) <= 1e-5 * std::max(1.0f, l[i]));
  }
  toks[2] = 264;
  std::ofstream(in.dir + "/t.bin", std::ios::binary).write(reinterpret_cast<const char*>(toks.data()), 32);
  CHECK(run_command(std::string(kBin) + " forward " + ckpt + " --tokens " + in.dir + "/t.bin", &out) != 0);
  CHECK(contains(out, "token 264 is outside the vocabulary (vocab_size 264)"));
  std::ofstream(in.dir + "/odd.bin", std::ios::binary) << "abcde";
  CHECK(run_command(std::string(kBin) + " forward " + ckpt + " --tokens " + in.dir + "/odd.bin", &out) != 0);
  CHECK(contains(out, "has 5 bytes, not a whole number of int32 tokens"));
  CHECK(run_command(std::string(kBin) + " forward " + ckpt + " --tokens " + in.dir + "/t.bin --rope-theta -5", &out) != 0);
  CHECK(contains(out, "--rope-theta '-5' is not a positive number"));
  CHECK(run_command(std::string(kBin) + " forward " + ckpt + " --tokens", &out) != 0);
  CHECK(contains(out, "forward: --tokens needs a value"));
  CHECK(run_command(std::string(kBin) + " import-hf " + in.dir + " -o x.h5 --bogus", &out) != 0);
  CHECK(contains(out, "import-hf: unexpected argument '--bogus'"));
  // the command line: refusals print their message and fail
  CHECK(run_command(std::string(kBin) + " import-hf " + in.dir, &out) != 0);
  CHECK(contains(out, "import-hf: need one model directory and -o OUT.h5"));
  CHECK(run_command(std::string(kBin) + " export-hf " + ckpt + " -o " + in.dir + " --shard-size 1.5GB", &out) != 0);
  CHECK(contains(out, "'1.5GB' is not a size"));
  CHECK(run_command(std::string(kBin) + " export-hf " + ckpt + " -o " + in.dir, &out) != 0);
  CHECK(contains(out, "exists and is not empty"));
}

TEST_CASE("import-hf: the tensor names are transformers' LlamaForCausalLM names", "[hf]") {
  // Written out from modeling_llama.py's module tree, not from hf.h's table.
  const std::pair<const char*, const char*> names[] = {
      {"embed", "model.embed_tokens.weight"},
      {"layers/00/attn_norm", "model.layers.0.input_layernorm.weight"},
      {"layers/07/wq", "model.layers.7.self_attn.q_proj.weight"},
      {"layers/07/wk", "model.layers.7.self_attn.k_proj.weight"},
      {"layers/07/wv", "model.layers.7.self_attn.v_proj.weight"},
      {"layers/07/wo", "model.layers.7.self_attn.o_proj.weight"},
      {"layers/12/mlp_norm", "model.layers.12.post_attention_layernorm.weight"},
      {"layers/12/w_gate", "model.layers.12.mlp.gate_proj.weight"},
      {"layers/12/w_up", "model.layers.12.mlp.up_proj.weight"},
      {"layers/123/w_down", "model.layers.123.mlp.down_proj.weight"},
      {"norm", "model.norm.weight"},
      {"lm_head", "lm_head.weight"},
  };
  for (auto [ours, theirs] : names) CHECK(hf_tensor_name(ours) == theirs);
  CHECK(hf_tensor_name(layer_prefix(123) + "w_down") == "model.layers.123.mlp.down_proj.weight");
  CHECK_THAT(test::error_of([] { hf_tensor_name("layers/01/bogus"); }), Contains("unknown tensor"));
}
