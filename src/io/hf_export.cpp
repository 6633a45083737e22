// hf_export.cpp — `longctx export-hf`: a longctx checkpoint -> a Hugging Face Llama directory (hf.h).
#include <filesystem>

#include "checkpoint_internal.h"
#include "longctx/bf16.h"
#include "longctx/hf.h"
#include "longctx/preflight.h"
#include "longctx/safetensors.h"

namespace longctx {
namespace fs = std::filesystem;
using namespace ckpt;

namespace {

// The model a checkpoint holds, from its /config attributes (read_checkpoint checks the rest).
}  // namespace

ModelConfig checkpoint_model_config(const std::string& path) {
  h5::quiet();
  std::error_code ec;
  CHECK_HINT(fs::is_regular_file(path, ec), "check the path", "checkpoint {} does not exist", path);
  CHECK_HINT(H5Fis_hdf5(path.c_str()) > 0, "pass a checkpoint written by longctx", "{} is not an HDF5 file (or is damaged)", path);
  Handle file(CK_CHECK(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), path, "", "open checkpoint"));
  Handle root(CK_CHECK(H5Gopen2(file, "/", H5P_DEFAULT), path, "/", "open group"));
  CHECK_HINT(get_str(root, "", "format", path) == kFormat, "pass a checkpoint written by longctx",
             "{} is not a longctx checkpoint", path);
  CHECK_HINT(H5Lexists(file, "/config", H5P_DEFAULT) > 0, kReadHint, "checkpoint {} has no /config", path);
  Handle conf(CK_CHECK(H5Gopen2(file, "/config", H5P_DEFAULT), path, "/config", "open group"));
  ModelConfig m;
  int64_t* fields[] = {&m.vocab_size, &m.d_model, &m.n_layers, &m.n_heads, &m.n_kv_heads, &m.d_ff};
  for (size_t k = 0; k < std::size(fields); ++k) *fields[k] = get_i64(conf, "/config", kModelKeys[k], path);
  m.tie_embeddings = get_i64(conf, "/config", "tie_embeddings", path) != 0;
  m.norm_eps = get_num<double>(conf, "/config", "norm_eps", H5T_NATIVE_DOUBLE, path);
  return m;
}

namespace {

bool export_file(const fs::path& p) {  // a file export-hf writes (and --force replaces)
  const std::string n = p.filename().string();
  return n == "config.json" || n == "model.safetensors.index.json" ||
         (n.starts_with("model") && n.ends_with(".safetensors"));
}

}  // namespace

ExportResult export_hf(const std::string& ckpt, const std::string& out_dir, const ExportOptions& opt) {
  CHECK_HINT(opt.shard_bytes > 0, "e.g. --shard-size 5GB", "export-hf: the shard size must be positive");
  ExportResult res;
  Config cfg;
  cfg.model = checkpoint_model_config(ckpt);
  const ParamLayout layout = make_param_layout(cfg.model);
  std::vector<float> params(size_t(layout.total));
  CheckpointIO io;
  io.layout = &layout, io.params = params.data();
  // The fp32 master when the file has it, rounded here as /model was (bf16.h), else /model itself.
  const TrainState st = read_checkpoint(ckpt, cfg, io, /*with_optimizer=*/false, MPI_COMM_SELF);
  res.hf = HfModel{cfg.model, st.rope_theta, st.seq_len};

  std::error_code ec;
  const fs::path dir(out_dir);
  if (fs::exists(dir, ec)) {
    CHECK_HINT(fs::is_directory(dir, ec), "name a directory", "export-hf: {} exists and is not a directory", out_dir);
    const bool empty = fs::directory_iterator(dir, ec) == fs::directory_iterator();
    CHECK_HINT(empty || opt.force, "pass --force to replace its config.json and model*.safetensors, or name a new directory",
               "export-hf: {} exists and is not empty", out_dir);
    for (const auto& e : fs::directory_iterator(dir, ec))
      if (export_file(e.path())) fs::remove(e.path(), ec);
  }
  fs::create_directories(dir, ec);
  CHECK_HINT(!ec, "check the path and its permissions", "export-hf: cannot create {}: {}", out_dir, ec.message());

  // bf16 bits per tensor, in layout order; shards filled in that order up to shard_bytes.
  std::vector<std::vector<uint16_t>> bits(layout.tensors.size());
  std::vector<std::vector<StOut>> shards(1);
  int64_t in_shard = 0;
  for (size_t i = 0; i < layout.tensors.size(); ++i) {
    const ParamTensor& t = layout.tensors[i];
    bits[i].resize(size_t(t.numel));
    for (int64_t k = 0; k < t.numel; ++k) bits[i][size_t(k)] = bf16_bits(params[size_t(t.offset + k)]);
    const int64_t bytes = 2 * t.numel;
    if (in_shard > 0 && in_shard + bytes > opt.shard_bytes) shards.emplace_back(), in_shard = 0;
    shards.back().push_back(StOut{hf_tensor_name(t.name), StDtype::BF16, t.shape, bits[i].data()});
    in_shard += bytes, res.bytes += bytes;
  }
  res.shards = int64_t(shards.size());
  std::vector<fs::path> written;
  try {
    json::Value weight_map = json::Value::object();
    std::map<std::string, std::string> file_of;
    for (size_t s = 0; s < shards.size(); ++s) {
      const std::string name = shards.size() == 1 ? "model.safetensors"
                                                  : fmt::format("model-{:05d}-of-{:05d}.safetensors", s + 1, shards.size());
      written.push_back(dir / name);
      write_safetensors((dir / name).string(), shards[s]);
      for (const StOut& t : shards[s]) file_of[t.name] = name;
    }
    if (shards.size() > 1) {
      for (const auto& [t, f] : file_of) weight_map.set(t, f);  // in name order
      json::Value meta = json::Value::object();
      meta.set("total_size", res.bytes);
      json::Value index = json::Value::object();
      index.set("metadata", meta);
      index.set("weight_map", weight_map);
      written.push_back(dir / "model.safetensors.index.json");
      write_whole_file((dir / "model.safetensors.index.json").string(), json::dump(index, 2) + "\n");
    }
    written.push_back(dir / "config.json");
    write_whole_file((dir / "config.json").string(), json::dump(hf_config_json(res.hf), 2) + "\n");
  } catch (...) {  // no half-exported directory: remove what this call wrote
    for (const auto& p : written) fs::remove(p, ec), fs::remove(p.string() + ".tmp", ec);
    throw;
  }
  return res;
}

}  // namespace longctx
