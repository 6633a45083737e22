// checkpoint_info.cpp — checkpoint names, the newest one in a directory, `longctx info`, and the
// flat-range -> blocks mapping that places ZeRO shards in the full tensors.
#include <hdf5.h>

#include <charconv>
#include <filesystem>

#include "longctx/checkpoint.h"
#include "longctx/common.h"

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

// ---- flat range -> slabs ----------------------------------------------------------------------

namespace {
// Elements [lo, hi) of the sub-array shape[d..] whose leading indices are fixed to `prefix`.
void slabs_of(const std::vector<int64_t>& shape, size_t d, int64_t lo, int64_t hi,
              std::vector<int64_t>& prefix, std::vector<Slab>& out) {
  if (lo >= hi) return;
  const size_t nd = shape.size();
  auto emit = [&](int64_t first, int64_t n) {  // rows [first, first + n) of dimension d, whole
    Slab s{prefix, std::vector<int64_t>(d, 1)};
    s.start.push_back(first), s.count.push_back(n);
    for (size_t k = d + 1; k < nd; ++k) s.start.push_back(0), s.count.push_back(shape[k]);
    out.push_back(std::move(s));
  };
  if (d + 1 == nd) return emit(lo, hi - lo);
  int64_t inner = 1;  // elements per index of dimension d
  for (size_t k = d + 1; k < nd; ++k) inner *= shape[k];
  auto sub = [&](int64_t row, int64_t a, int64_t b) {  // part [a, b) of one row
    prefix.push_back(row);
    slabs_of(shape, d + 1, a, b, prefix, out);
    prefix.pop_back();
  };
  int64_t r0 = lo / inner;
  const int64_t r1 = hi / inner;
  if (r0 == (hi - 1) / inner && (lo % inner != 0 || hi % inner != 0))
    return sub(r0, lo - r0 * inner, hi - r0 * inner);     // inside one row
  if (lo % inner != 0) sub(r0, lo % inner, inner), ++r0;  // partial leading row
  if (r1 > r0) emit(r0, r1 - r0);                         // whole rows
  if (hi % inner != 0) sub(r1, 0, hi % inner);            // partial trailing row
}
}  // namespace

std::vector<Slab> flat_range_slabs(const std::vector<int64_t>& shape, int64_t lo, int64_t hi) {
  CHECK(!shape.empty(), "flat_range_slabs: a tensor needs at least one dimension");
  int64_t n = 1;
  for (int64_t d : shape) {
    CHECK(d > 0, "flat_range_slabs: empty dimension in shape [{}]", shape_str(shape));
    n *= d;
  }
  CHECK(0 <= lo && lo <= hi && hi <= n, "flat_range_slabs: range [{}, {}) outside [0, {})", lo, hi,
        n);
  std::vector<Slab> out;
  std::vector<int64_t> prefix;
  slabs_of(shape, 0, lo, hi, prefix, out);
  return out;
}

// ---- names ------------------------------------------------------------------------------------

std::string checkpoint_path(const std::string& dir, int64_t global_step) {
  CHECK(global_step >= 0, "checkpoint_path: negative step {}", global_step);
  return (fs::path(dir) / fmt::format("ckpt_{:07d}.h5", global_step)).string();
}

int64_t checkpoint_step(const std::string& name) {
  // ckpt_<digits>.h5 exactly: PATH.tmp (being written) and anything else are not checkpoints.
  if (!name.starts_with("ckpt_") || !name.ends_with(".h5") || name.size() <= 8) return -1;
  const char *first = name.data() + 5, *last = name.data() + name.size() - 3;
  int64_t step = -1;
  auto [p, err] = std::from_chars(first, last, step);
  return err == std::errc() && p == last && step >= 0 ? step : -1;
}

std::string latest_checkpoint(const std::string& dir) {
  std::error_code ec;
  if (dir.empty() || !fs::is_directory(dir, ec)) return "";
  std::string best;
  int64_t best_step = -1;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const int64_t step = checkpoint_step(e.path().filename().string());
    if (step < 0 || !e.is_regular_file(ec)) continue;
    if (step > best_step) best_step = step, best = e.path().string();
  }
  return best;
}

// ---- longctx info -----------------------------------------------------------------------------

std::string checkpoint_summary(const std::string& path) {
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  std::error_code ec;
  CHECK_HINT(fs::is_regular_file(path, ec), "check the path", "checkpoint {} does not exist", path);
  CHECK_HINT(H5Fis_hdf5(path.c_str()) > 0, "is this the right file?", "{} is not an HDF5 file",
             path);
  const hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  CHECK_HINT(file >= 0, "the file may be truncated or damaged", "HDF5 could not open {}", path);
  struct Closer {
    hid_t f;
    ~Closer() { H5Fclose(f); }
  } closer{file};

  // Attribute `name` of object `obj`, read as mem_type into v; false when absent or unreadable.
  auto attr = [&](const char* obj, const char* name, hid_t mem_type, void* v) {
    if (H5Aexists_by_name(file, obj, name, H5P_DEFAULT) <= 0) return false;
    const hid_t a = H5Aopen_by_name(file, obj, name, H5P_DEFAULT, H5P_DEFAULT);
    const bool ok = a >= 0 && H5Aread(a, mem_type, v) >= 0;
    if (a >= 0) H5Aclose(a);
    return ok;
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
    const hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, s.size());
    const bool ok = attr("/", name, t, s.data());
    H5Tclose(t);
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
