// checkpoint_info.cpp — `longctx info CKPT`: a short human summary of a checkpoint (format,
// model, state, tensors with shapes), read with the plain POSIX driver on one rank; and the data
// checksums verified: every dataset read in full, so HDF5 checks each chunk's Fletcher32 sum.
#include <filesystem>

#include "longctx/checkpoint.h"
#include <fmt/ranges.h>

#include "longctx/common.h"
#include "longctx/h5.h"

namespace longctx {
namespace fs = std::filesystem;

// ---- checksums --------------------------------------------------------------------------------

namespace {

struct Verified {
  int64_t datasets = 0, unguarded = 0;  // all read; of them, without a Fletcher32 filter
};

// Reads every dataset of `file` in full (blocks of rows of at most ~64 MiB): HDF5 verifies the
// Fletcher32 checksum of each chunk it reads, and a mismatch fails the read. Throws naming the
// dataset of the first failure.
Verified verify_datasets(hid_t file, const std::string& path) {
  std::vector<std::string> names;
  auto visit = [](hid_t, const char* name, const H5O_info_t* info, void* data) -> herr_t {
    if (info->type == H5O_TYPE_DATASET)
      static_cast<std::vector<std::string>*>(data)->push_back(std::string("/") + name);
    return 0;
  };
  const std::string hint =
      "the file is corrupt (a damaged disk or copy?): resume from an earlier checkpoint";
#if H5_VERSION_GE(1, 12, 0)
  H5_CHECK(H5Ovisit(file, H5_INDEX_NAME, H5_ITER_INC, visit, &names, H5O_INFO_BASIC), path, "",
           "list the datasets of", hint);
#else
  H5_CHECK(H5Ovisit(file, H5_INDEX_NAME, H5_ITER_INC, visit, &names), path, "",
           "list the datasets of", hint);
#endif
  Verified out;
  std::vector<unsigned char> buf;
  for (const auto& name : names) {
    const std::string what = "dataset " + name;
    auto corrupt = [&](herr_t rc) {  // a failed read of stored data: the checksum (or the file)
      CHECK_HINT(rc >= 0, hint, "{} is corrupt: dataset {} fails its Fletcher32 checksum or cannot "
                 "be read ({})", path, name, h5::error_stack());
    };
    h5::Handle ds(H5_CHECK(H5Dopen2(file, name.c_str(), H5P_DEFAULT), path, what, "open", hint));
    h5::Handle dcpl(H5_CHECK(H5Dget_create_plist(ds), path, what, "get the filters of", hint));
    bool guarded = false;
    for (int k = 0, n = H5Pget_nfilters(dcpl); k < n; ++k) {
      unsigned flags = 0, cd[8];
      size_t ncd = 8;
      guarded = guarded || H5Pget_filter2(dcpl, unsigned(k), &flags, &ncd, cd, 0, nullptr,
                                          nullptr) == H5Z_FILTER_FLETCHER32;
    }
    h5::Handle type(H5_CHECK(H5Dget_type(ds), path, what, "get the type of", hint));
    h5::Handle space(H5_CHECK(H5Dget_space(ds), path, what, "get the dataspace of", hint));
    const int nd = H5Sget_simple_extent_ndims(space);
    std::vector<hsize_t> dims(size_t(std::max(nd, 0)));
    H5Sget_simple_extent_dims(space, dims.data(), nullptr);
    const size_t elem = H5Tget_size(type);
    if (nd <= 0) {  // scalar (or empty): one read
      buf.resize(std::max<size_t>(elem, 1));
      corrupt(H5Dread(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf.data()));
    } else {
      size_t row = elem;  // bytes per index of dimension 0
      for (int d = 1; d < nd; ++d) row *= dims[size_t(d)];
      const hsize_t rows = std::max<hsize_t>(1, hsize_t((size_t(64) << 20) / std::max<size_t>(row, 1)));
      for (hsize_t r0 = 0; r0 < dims[0]; r0 += rows) {
        std::vector<hsize_t> start(dims.size(), 0), count = dims;
        count[0] = std::min(rows, dims[0] - r0), start[0] = r0;
        H5_CHECK(H5Sselect_hyperslab(space, H5S_SELECT_SET, start.data(), nullptr, count.data(),
                                     nullptr), path, what, "select rows of", hint);
        h5::Handle mem(H5_CHECK(H5Screate_simple(nd, count.data(), nullptr), path, what,
                                "make a memory space for", hint));
        buf.resize(size_t(count[0]) * row);
        corrupt(H5Dread(ds, type, mem, space, H5P_DEFAULT, buf.data()));
      }
    }
    ++out.datasets, out.unguarded += !guarded;
  }
  return out;
}

}  // namespace

// ---- longctx info -----------------------------------------------------------------------------

std::string checkpoint_summary(const std::string& path, bool verify) {
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
      outer += fmt::format(" {}[{}]", t.name, fmt::join(t.shape, ","));
    else if (t.name.starts_with("layers/00/"))
      layer += fmt::format(" {}[{}]", t.name.substr(10), fmt::join(t.shape, ","));
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
  if (!verify) {
    s += "  checksums NOT verified (--no-verify): attributes and shapes only, no data read\n";
    return s;
  }
  const Verified v = verify_datasets(file, path);
  s += fmt::format("  checksums verified: {} datasets read in full, Fletcher32 sums match", v.datasets);
  s += v.unguarded ? fmt::format(" ({} without a checksum filter: read only)\n", v.unguarded) : "\n";
  return s;
}

}  // namespace longctx
