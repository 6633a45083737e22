// checkpoint_info.cpp — `longctx info CKPT`: a short human summary of a checkpoint (format,
// model, state, tensors with shapes), read with the plain POSIX driver on one rank.
#include <filesystem>

#include "longctx/checkpoint.h"
#include "longctx/common.h"
#include "longctx/h5.h"

namespace longctx {
namespace fs = std::filesystem;

static std::string shape_str(const std::vector<int64_t>& v) {  // "264,32"
  std::string s;
  for (int64_t x : v) {
    if (!s.empty()) s += ',';
    s += std::to_string(x);
  }
  return s;
}

// ---- longctx info -----------------------------------------------------------------------------

std::string checkpoint_summary(const std::string& path) {
  h5::quiet();
  std::error_code ec;
  CHECK_HINT(fs::is_regular_file(path, ec), "check the path", "checkpoint {} does not exist", path);
  CHECK_HINT(H5Fis_hdf5(path.c_str()) > 0, "is this the right file?", "{} is not an HDF5 file",
             path);
  const h5::Handle file(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT));
  CHECK_HINT(file.valid(), "the file may be truncated or damaged", "HDF5 could not open {}", path);

  // Attribute `name` of object `obj`, read as mem_type into v; false when absent or unreadable.
  auto attr = [&](const char* obj, const char* name, hid_t mem_type, void* v) {
    return h5::try_read_attr(file, obj, name, mem_type, v);
  };
  auto i64 = [&](const char* obj, const char* name) {
    int64_t v = -1;
    CHECK_HINT(attr(obj, name, H5T_NATIVE_INT64, &v), "is this a longctx checkpoint?",
               "{} has no readable attribute {} of {}", path, name, obj);
    return v;
  };
  auto f64 = [&](const char* obj, const char* name) {
    double v = 0.0;
    CHECK_HINT(attr(obj, name, H5T_NATIVE_DOUBLE, &v), "is this a longctx checkpoint?",
               "{} has no readable attribute {} of {}", path, name, obj);
    return v;
  };
  auto str = [&](const char* name) {  // fixed-length string attribute of the root group
    std::string s(4096, '\0');
    const h5::Handle t(H5Tcopy(H5T_C_S1));
    H5Tset_size(t, s.size());
    const bool ok = attr("/", name, t, s.data());
    return ok ? s.substr(0, s.find('\0')) : std::string("?");
  };

  ModelConfig m;
  m.vocab_size = i64("/config", "vocab_size"), m.d_model = i64("/config", "d_model");
  m.n_layers = i64("/config", "n_layers"), m.n_heads = i64("/config", "n_heads");
  m.n_kv_heads = i64("/config", "n_kv_heads"), m.d_ff = i64("/config", "d_ff");
  m.tie_embeddings = i64("/config", "tie_embeddings") != 0;
  m.norm_eps = f64("/config", "norm_eps");
  CHECK_HINT(m.n_heads > 0 && m.n_layers >= 0, "is this a longctx checkpoint?",
             "{}: its model config is damaged", path);
  const ParamLayout layout = make_param_layout(m);
  int64_t found = 0, params = 0;
  std::string outer, layer;  // shapes of the tensors outside the layers, and of layer 00's
  for (const auto& t : layout.tensors) {
    if (H5Lexists(file, "/model", H5P_DEFAULT) <= 0 ||
        H5Lexists(file, ("/model/" + t.name).c_str(), H5P_DEFAULT) <= 0)
      continue;
    ++found, params += t.numel;
    if (!t.name.starts_with("layers/"))
      outer += fmt::format(" {}[{}]", t.name, shape_str(t.shape));
    else if (t.name.starts_with("layers/00/"))
      layer += fmt::format(" {}[{}]", t.name.substr(10), shape_str(t.shape));
  }
  const bool has_opt = H5Lexists(file, "/optimizer", H5P_DEFAULT) > 0;
  uint64_t seed = 0;
  attr("/state", "seed", H5T_NATIVE_UINT64, &seed);

  std::string s = fmt::format("checkpoint {} ({:.2f} MiB)\n", path,
                              double(fs::file_size(path, ec)) / double(1 << 20));
  s += fmt::format("  format   {} v{}, written by longctx {}\n", str("format"),
                   i64("/", "format_version"), str("software_version"));
  s += fmt::format("  model    V={} C={} L={} NH={} NKV={} F={} tied={} norm_eps={:g}\n",
                   m.vocab_size, m.d_model, m.n_layers, m.n_heads, m.n_kv_heads, m.d_ff,
                   m.tie_embeddings ? "yes" : "no", m.norm_eps);
  s += fmt::format(
      "  state    stage {} (step {} in it), global_step {}, tokens {}, samples {}, seq_len {}, "
      "rope_theta {:g}, seed {}\n",
      i64("/state", "stage") + 1, i64("/state", "stage_step"), i64("/state", "global_step"),
      i64("/state", "tokens_seen"), i64("/state", "samples_seen"), i64("/state", "seq_len"),
      f64("/state", "rope_theta"), seed);
  s += fmt::format("  tensors  {} of {} ({} parameters); optimizer state: {}\n", found,
                   layout.tensors.size(), params, has_opt ? "fp32 master, m, v" : "none");
  s += fmt::format("  shapes  {}; each of the {} layers:{}\n", outer, m.n_layers, layer);
  return s;
}

}  // namespace longctx
