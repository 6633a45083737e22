// hf_cli.cpp — the Hugging Face subcommands: import-hf, export-hf, and forward (per-token losses of a
// checkpoint, which tools/hf_check.py compares with transformers on the GPU node).
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <algorithm>
#include <charconv>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>

#include "longctx/backend/cpu.h"
#include "longctx/checkpoint.h"
#include "longctx/common.h"
#include "longctx/hf.h"
#include "longctx/log.h"
#include "longctx/model.h"
#include "longctx/preflight.h"

namespace longctx {

namespace {

// A checkpoint's model on this rank's CPU, its weights read, for one token sequence: forward()
// gives the N-1 per-position losses of any targets.
class CheckpointForward {
 public:
  CheckpointForward(const std::string& ckpt, const std::vector<int32_t>& tokens, double rope_theta) {
    cfg_.model = checkpoint_model_config(ckpt);
    const int64_t n = int64_t(tokens.size());
    CHECK_HINT(n >= 2, "give at least two tokens", "forward: {} token(s): nothing to predict", n);
    for (int32_t t : tokens)
      CHECK_HINT(t >= 0 && t < cfg_.model.vocab_size, "the tokens must come from the model's tokenizer",
                 "forward: token {} is outside the vocabulary (vocab_size {})", t, cfg_.model.vocab_size);
    layout_ = make_param_layout(cfg_.model);
    params_.resize(size_t(layout_.total));
    CheckpointIO io;
    io.layout = &layout_, io.params = params_.data();
    const TrainState st = read_checkpoint(ckpt, cfg_, io, false, MPI_COMM_SELF);
    theta_ = rope_theta > 0 ? rope_theta : st.rope_theta;
    model_ = std::make_unique<Model<Cpu>>(be_, cfg_.model, layout_, params_.data(), nullptr);
    model_->configure(1, n - 1, theta_);
    in_.assign(tokens.begin(), tokens.end() - 1);
  }
  int64_t rows() const { return int64_t(in_.size()); }
  int64_t vocab() const { return cfg_.model.vocab_size; }
  double theta() const { return theta_; }
  std::vector<float> losses(const std::vector<int32_t>& targets) {
    std::vector<float> loss(in_.size());
    std::vector<uint8_t> top1(in_.size());
    model_->forward(in_.data(), targets.data(), RowStats{top1.data(), loss.data()});
    return loss;
  }

 private:
  Config cfg_;
  ParamLayout layout_;
  std::vector<float> params_;
  double theta_ = 0;
  const Cpu be_{};
  std::unique_ptr<Model<Cpu>> model_;
  std::vector<int32_t> in_;
};

}  // namespace

std::vector<float> checkpoint_token_losses(const std::string& ckpt, const std::vector<int32_t>& tokens,
                                           double rope_theta, double* used_theta) {
  CheckpointForward f(ckpt, tokens, rope_theta);
  if (used_theta) *used_theta = f.theta();
  return f.losses(std::vector<int32_t>(tokens.begin() + 1, tokens.end()));
}

std::vector<float> checkpoint_log_probs(const std::string& ckpt, const std::vector<int32_t>& tokens,
                                        double rope_theta) {
  CheckpointForward f(ckpt, tokens, rope_theta);
  const int64_t T = f.rows(), V = f.vocab();
  CHECK_HINT(V <= kLogProbsMaxVocab, "use --out (per-token losses) for large vocabularies",
             "forward --logprobs: vocab_size {} is above {}: it runs one forward per vocabulary entry", V,
             kLogProbsMaxVocab);
  std::vector<float> lp(size_t(T * V));
  std::vector<int32_t> targets(static_cast<size_t>(T), 0);
  for (int64_t v = 0; v < V; ++v) {
    std::fill(targets.begin(), targets.end(), int32_t(v));
    const std::vector<float> loss = f.losses(targets);
    for (int64_t i = 0; i < T; ++i) lp[size_t(i * V + v)] = -loss[size_t(i)];
  }
  return lp;
}

namespace {
#define ARG_CHECK(cond, hint, ...) CHECK_ALIKE(cond, hint, __VA_ARGS__)

struct Parsed {
  std::vector<std::string> positional;
  std::map<std::string, std::string> values;
  bool force = false;
};
Parsed parse(const std::vector<std::string>& args, const char* cmd, const std::vector<std::string>& with_value) {
  Parsed p;
  for (size_t i = 1; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (std::find(with_value.begin(), with_value.end(), a) != with_value.end()) {
      ARG_CHECK(i + 1 < args.size(), fmt::format("longctx {} --help", cmd), "{}: {} needs a value", cmd, a);
      p.values[a] = args[++i];
    } else if (a == "--force" && std::string(cmd) == "export-hf") {
      p.force = true;
    } else {
      ARG_CHECK(!a.starts_with("-"), fmt::format("longctx {} --help lists the options", cmd), "{}: unexpected argument '{}'", cmd, a);
      p.positional.push_back(a);
    }
  }
  return p;
}
}  // namespace

int import_hf_main(const std::vector<std::string>& args, int rank) {
  const Parsed p = parse(args, "import-hf", {"-o"});
  ARG_CHECK(p.positional.size() == 1 && p.values.count("-o"), "longctx import-hf MODEL_DIR -o OUT.h5",
            "import-hf: need one model directory and -o OUT.h5");
  if (rank != 0) return 0;
  const std::string& out = p.values.at("-o");
  const ImportResult r = import_hf(p.positional[0], out);
  const ModelConfig& m = r.hf.model;
  log_info("import-hf: {} tensors ({}) from {} -> {}: vocab {}, d_model {}, {} layers, {} heads ({} K/V), d_ff {}, "
           "{}tied, rope_theta {:g}, seq_len {}",
           r.tensors, r.dtypes, p.positional[0], out, m.vocab_size, m.d_model, m.n_layers, m.n_heads, m.n_kv_heads, m.d_ff,
           m.tie_embeddings ? "" : "un", r.hf.rope_theta, r.hf.max_positions);
  return 0;
}

int export_hf_main(const std::vector<std::string>& args, int rank) {
  const Parsed p = parse(args, "export-hf", {"-o", "--shard-size"});
  ARG_CHECK(p.positional.size() == 1 && p.values.count("-o"), "longctx export-hf CKPT.h5 -o OUT_DIR",
            "export-hf: need one checkpoint and -o OUT_DIR");
  ExportOptions opt;
  opt.force = p.force;
  if (p.values.count("--shard-size")) opt.shard_bytes = parse_byte_size(p.values.at("--shard-size"));
  if (rank != 0) return 0;
  const std::string& out = p.values.at("-o");
  const ExportResult r = export_hf(p.positional[0], out, opt);
  log_info("export-hf: {} -> {}: {} bytes of bf16 weights in {} file(s), rope_theta {:g}, max_position_embeddings {}",
           p.positional[0], out, r.bytes, r.shards, r.hf.rope_theta, r.hf.max_positions);
  return 0;
}

int forward_main(const std::vector<std::string>& args, int rank) {
  const Parsed p = parse(args, "forward", {"--tokens", "--out", "--logprobs", "--rope-theta"});
  ARG_CHECK(p.positional.size() == 1 && p.values.count("--tokens"), "longctx forward CKPT.h5 --tokens TOKENS.bin",
            "forward: need one checkpoint and --tokens FILE");
  double theta = 0;
  if (p.values.count("--rope-theta")) {
    const std::string& v = p.values.at("--rope-theta");
    const auto r = std::from_chars(v.data(), v.data() + v.size(), theta);
    ARG_CHECK(r.ec == std::errc() && r.ptr == v.data() + v.size() && theta > 0, "e.g. --rope-theta 500000",
              "forward: --rope-theta '{}' is not a positive number", v);
  }
  if (rank != 0) return 0;
  const std::string& path = p.values.at("--tokens");
  std::ifstream f(path, std::ios::binary);
  CHECK_HINT(f.good(), "check the path", "forward: cannot open {}", path);
  std::vector<char> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  CHECK_HINT(bytes.size() % 4 == 0, "the file holds little-endian int32 token ids",
             "forward: {} has {} bytes, not a whole number of int32 tokens", path, bytes.size());
  std::vector<int32_t> tokens(bytes.size() / 4);
  std::memcpy(tokens.data(), bytes.data(), bytes.size());
  double used = 0;
  const std::vector<float> loss = checkpoint_token_losses(p.positional[0], tokens, theta, &used);
  double sum = 0;
  for (float l : loss) sum += l;
  // Everything is computed before anything is written (a refused --logprobs leaves no --out
  // behind), and each file appears whole: written as FILE.tmp, then renamed.
  std::vector<float> lp;
  if (p.values.count("--logprobs")) lp = checkpoint_log_probs(p.positional[0], tokens, theta);  // (N-1) x V
  auto write_f32 = [](const std::string& out, const std::vector<float>& x) {
    write_whole_file(out, std::string_view(reinterpret_cast<const char*>(x.data()), x.size() * sizeof(float)));
  };
  if (p.values.count("--out")) write_f32(p.values.at("--out"), loss);
  if (p.values.count("--logprobs")) write_f32(p.values.at("--logprobs"), lp);
  std::printf("{\"tokens\": %zu, \"targets\": %zu, \"loss\": %.9g, \"rope_theta\": %.17g}\n", tokens.size(), loss.size(),
              sum / double(loss.size()), used);
  return 0;
}

}  // namespace longctx
