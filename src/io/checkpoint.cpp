// checkpoint.cpp — writing and reading HDF5 checkpoints (file layout in checkpoint.h).
//
// Parallel HDF5 (H5_HAVE_PARALLEL, unless LONGCTX_CKPT_SERIAL=1): every rank opens the file with
// the MPI-IO driver, all create every object together and write their selections collectively
// (a rank with nothing to write takes part with an empty selection). Otherwise rank 0 creates the
// file and its objects, then the ranks write their selections one after another. Same file.
// A rank's part of a tensor is at most 2·N−1 blocks (flat_range_slabs), moved one H5Dwrite/H5Dread
// per block with a memory space of the block's shape (much faster in HDF5 1.10 than one union).
// bf16 is rounded here (to nearest even) and written as raw bits: HDF5 1.10's own float -> custom
// float conversion mis-rounds values whose mantissa carries into the exponent (0.99934 -> 0.5).
#include "longctx/checkpoint.h"

#include <hdf5.h>

#include <algorithm>
#include <bit>
#include <cstdlib>
#include <filesystem>
#include <utility>

#include "longctx/common.h"

namespace longctx {
namespace {

namespace fs = std::filesystem;

constexpr const char* kFormat = "longctx-checkpoint";
constexpr const char* kReadHint =
    "the file may be truncated or damaged (an interrupted copy?) or not a complete longctx "
    "checkpoint; `h5dump -H FILE` shows what it holds";
constexpr const char* kWriteHint = "check that the directory is writable and the disk not full";
constexpr const char* kModelKeys[] = {"vocab_size", "d_model", "n_layers",      "n_heads",
                                      "n_kv_heads", "d_ff",    "tie_embeddings"};
// The integer fields of TrainState, as /state attributes (rope_theta and seed are apart).
constexpr std::pair<const char*, int64_t TrainState::*> kStateInts[] = {
    {"stage", &TrainState::stage},
    {"stage_step", &TrainState::stage_step},
    {"global_step", &TrainState::global_step},
    {"tokens_seen", &TrainState::tokens_seen},
    {"samples_seen", &TrainState::samples_seen},
    {"seq_len", &TrainState::seq_len}};

// ---- HDF5 plumbing ----------------------------------------------------------------------------

// Owns one HDF5 id of any kind (file, group, dataset, space, type, property list).
class Hid {
 public:
  Hid() = default;
  explicit Hid(hid_t id) : id_(id) {}
  Hid(Hid&& o) noexcept : id_(o.id_) { o.id_ = -1; }
  Hid& operator=(Hid&& o) noexcept {
    std::swap(id_, o.id_);
    return *this;
  }
  ~Hid() {
    if (id_ >= 0) H5Idec_ref(id_);
  }
  operator hid_t() const { return id_; }
  hid_t release() { return std::exchange(id_, -1); }

 private:
  hid_t id_ = -1;
};

// The innermost messages of HDF5's error stack ("truncated file: eof = ...", ...).
std::string h5_detail() {
  std::string out;
  auto walk = [](unsigned n, const H5E_error2_t* e, void* data) -> herr_t {
    auto* s = static_cast<std::string*>(data);
    if (n < 2 && e->desc && *e->desc) *s += (s->empty() ? "" : "; ") + std::string(e->desc);
    return 0;
  };
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, walk, &out);
  return out.empty() ? "no detail from HDF5" : out;
}

// Files being written are named PATH.tmp; that picks the hint.
template <class T>
T h5_check(T rc, const char* file, int line, const std::string& path, const std::string& obj,
           const char* what) {
  if (rc >= 0) return rc;
  const std::string target = obj.empty() ? path : fmt::format("{} in {}", obj, path);
  throw_error(file, line, fmt::format("HDF5 could not {} {} ({})", what, target, h5_detail()),
              path.ends_with(".tmp") ? kWriteHint : kReadHint);
}
// H5_CHECK(call, path, object, "what failed") — returns call's value, throws Error if negative.
#define H5_CHECK(call, path, obj, what) h5_check((call), LONGCTX_WHERE, (path), (obj), (what))

// bf16 as an HDF5 float: IEEE single's sign and exponent with 7 mantissa bits, 2 bytes.
Hid bf16_type() {
  Hid t(H5Tcopy(H5T_IEEE_F32LE));
  const bool ok = t >= 0 && H5Tset_fields(t, 15, 7, 8, 0, 7) >= 0 && H5Tset_precision(t, 16) >= 0 &&
                  H5Tset_offset(t, 0) >= 0 && H5Tset_size(t, 2) >= 0 && H5Tset_ebias(t, 127) >= 0;
  CHECK(ok, "HDF5 could not build the bf16 type ({})", h5_detail());
  return t;
}

uint16_t to_bf16(float x) {  // round to nearest even; NaN stays NaN
  uint32_t u = std::bit_cast<uint32_t>(x);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40u);
  return uint16_t((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}
float from_bf16(uint16_t b) { return std::bit_cast<float>(uint32_t(b) << 16); }

// Parallel HDF5 when the library has it, unless LONGCTX_CKPT_SERIAL is set (and not "0").
bool use_parallel() {
  const char* s = std::getenv("LONGCTX_CKPT_SERIAL");
  const bool force_serial = s && *s && std::string(s) != "0";
#ifdef H5_HAVE_PARALLEL
  return !force_serial;
#else
  return !force_serial && false;
#endif
}

// File access: MPI-IO over comm when parallel, else the default (POSIX) driver.
Hid file_access(bool parallel, MPI_Comm comm, const std::string& path) {
  Hid fapl(H5_CHECK(H5Pcreate(H5P_FILE_ACCESS), path, "a file access list", "create"));
  H5_CHECK(H5Pset_libver_bounds(fapl, H5F_LIBVER_V18, H5F_LIBVER_LATEST), path, "the file",
           "set format bounds for");
#ifdef H5_HAVE_PARALLEL
  if (parallel)
    H5_CHECK(H5Pset_fapl_mpio(fapl, comm, MPI_INFO_NULL), path, "the file", "set MPI-IO for");
#endif
  return fapl;
}
Hid transfer_list(bool parallel, const std::string& path) {
  Hid dxpl(H5_CHECK(H5Pcreate(H5P_DATASET_XFER), path, "a transfer list", "create"));
#ifdef H5_HAVE_PARALLEL
  if (parallel)
    H5_CHECK(H5Pset_dxpl_mpio(dxpl, H5FD_MPIO_COLLECTIVE), path, "the transfer", "make collective");
#endif
  return dxpl;
}

// ---- attributes -------------------------------------------------------------------------------

void put_attr(hid_t obj, const std::string& name, hid_t file_type, hid_t mem_type, const void* v,
              const std::string& path) {
  Hid space(H5_CHECK(H5Screate(H5S_SCALAR), path, name, "create a dataspace for"));
  Hid a(H5_CHECK(H5Acreate2(obj, name.c_str(), file_type, space, H5P_DEFAULT, H5P_DEFAULT), path,
                 "attribute " + name, "create"));
  H5_CHECK(H5Awrite(a, mem_type, v), path, "attribute " + name, "write");
}
void put_i64(hid_t obj, const std::string& name, int64_t v, const std::string& path) {
  put_attr(obj, name, H5T_STD_I64LE, H5T_NATIVE_INT64, &v, path);
}
void put_u64(hid_t obj, const std::string& name, uint64_t v, const std::string& path) {
  put_attr(obj, name, H5T_STD_U64LE, H5T_NATIVE_UINT64, &v, path);
}
void put_f64(hid_t obj, const std::string& name, double v, const std::string& path) {
  put_attr(obj, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &v, path);
}
void put_str(hid_t obj, const std::string& name, const std::string& v, const std::string& path) {
  Hid t(H5_CHECK(H5Tcopy(H5T_C_S1), path, name, "make a string type for"));
  H5_CHECK(H5Tset_size(t, v.size() + 1), path, name, "size the string type for");
  put_attr(obj, name, t, t, v.c_str(), path);
}

std::string attr_name(const std::string& where, const std::string& name) {
  return fmt::format("attribute {} of {}", name, where.empty() ? "/" : where);
}
Hid open_attr(hid_t obj, const std::string& where, const std::string& name,
              const std::string& path) {
  CHECK_HINT(H5Aexists(obj, name.c_str()) > 0, kReadHint, "checkpoint {} has no {}", path,
             attr_name(where, name));
  return Hid(
      H5_CHECK(H5Aopen(obj, name.c_str(), H5P_DEFAULT), path, attr_name(where, name), "open"));
}
template <class T>
T get_num(hid_t obj, const std::string& where, const std::string& name, hid_t mem_type,
          const std::string& path) {
  Hid a = open_attr(obj, where, name, path);
  T v{};
  H5_CHECK(H5Aread(a, mem_type, &v), path, attr_name(where, name), "read");
  return v;
}
int64_t get_i64(hid_t obj, const std::string& where, const std::string& name,
                const std::string& path) {
  return get_num<int64_t>(obj, where, name, H5T_NATIVE_INT64, path);
}
std::string get_str(hid_t obj, const std::string& where, const std::string& name,
                    const std::string& path) {
  Hid a = open_attr(obj, where, name, path);
  Hid t(H5_CHECK(H5Aget_type(a), path, attr_name(where, name), "get the type of"));
  CHECK_HINT(H5Tget_class(t) == H5T_STRING && H5Tis_variable_str(t) == 0, kReadHint,
             "{}: {} is not a fixed-length string", path, attr_name(where, name));
  std::string out(H5Tget_size(t), '\0');
  H5_CHECK(H5Aread(a, t, out.data()), path, attr_name(where, name), "read");
  return out.substr(0, out.find('\0'));
}

// ---- datasets and selections ------------------------------------------------------------------

std::vector<hsize_t> hs(const std::vector<int64_t>& v) { return {v.begin(), v.end()}; }
template <class T>
std::string shape_str(const std::vector<T>& v) {  // "[264, 32]"
  std::string s;
  for (T x : v) {
    if (!s.empty()) s += ", ";
    s += std::to_string(x);
  }
  return "[" + s + "]";
}

// Chunks of at most ~1 MiB, whole trailing dimensions (rows) where they fit.
std::vector<hsize_t> chunk_dims(const std::vector<int64_t>& shape, size_t elem_size) {
  int64_t budget = std::max<int64_t>(1, int64_t((1 << 20) / elem_size));
  std::vector<hsize_t> c(shape.size(), 1);
  for (size_t d = shape.size(); d-- > 0;) {
    c[d] = hsize_t(std::max<int64_t>(1, std::min(shape[d], budget)));
    budget = shape[d] <= budget ? budget / shape[d] : 1;
  }
  return c;
}

void create_dataset(hid_t file, const std::string& name, const std::vector<int64_t>& shape,
                    hid_t type, const std::string& path) {
  for (int64_t d : shape) CHECK(d > 0, "{}: tensor {} has an empty dimension", path, name);
  const auto dims = hs(shape);
  const auto chunk = chunk_dims(shape, H5Tget_size(type));
  Hid space(H5_CHECK(H5Screate_simple(int(dims.size()), dims.data(), nullptr), path, name,
                     "make the dataspace of"));
  Hid dcpl(H5_CHECK(H5Pcreate(H5P_DATASET_CREATE), path, name, "make the creation list of"));
  H5_CHECK(H5Pset_chunk(dcpl, int(chunk.size()), chunk.data()), path, name, "chunk");
  H5_CHECK(H5Pset_fletcher32(dcpl), path, name, "add the Fletcher32 filter to");
  Hid lcpl(H5_CHECK(H5Pcreate(H5P_LINK_CREATE), path, name, "make the link list of"));
  H5_CHECK(H5Pset_create_intermediate_group(lcpl, 1), path, name, "allow parent groups for");
  Hid ds(H5_CHECK(H5Dcreate2(file, name.c_str(), type, space, lcpl, dcpl, H5P_DEFAULT), path, name,
                  "create dataset"));
}

// One dataset's part of a transfer: the union of `slabs` (full-tensor coordinates) in the file,
// `n` contiguous floats at `mem`. No slabs: this rank only takes part (collective I/O).
struct Job {
  Job(std::string d, const ParamTensor* p) : dset(std::move(d)), t(p) {}
  std::string dset;
  const ParamTensor* t = nullptr;
  std::vector<Slab> slabs;
  float* mem = nullptr;
  int64_t n = 0;
};

// The transfers of one checkpoint, in the same order on every rank: each tensor's block of the
// weights under `weights` ("/model" or "/optimizer/master"; an empty selection unless `own`),
// then with `opt` the rank's shard [shard_lo, shard_hi) of master, m and v, cut along the tensors.
// Writing, a block another rank also holds and writes (ParamTensor::replica) is left to it.
std::vector<Job> make_jobs(const CheckpointIO& io, const std::string& weights, bool own, bool opt,
                           bool writing) {
  std::vector<Job> jobs;
  for (const auto& t : io.layout->tensors) {
    Job j(weights + "/" + t.name, &t);
    if (own && !(writing && t.replica))
      j.slabs = {Slab{t.start, t.count}}, j.mem = io.params + t.offset, j.n = t.numel;
    jobs.push_back(std::move(j));
  }
  if (!opt) return jobs;
  const std::pair<const char*, float*> bufs[] = {{"master", io.master}, {"m", io.m}, {"v", io.v}};
  for (auto [which, buf] : bufs) {
    for (const auto& t : io.layout->tensors) {
      Job j(fmt::format("/optimizer/{}/{}", which, t.name), &t);
      const int64_t a = std::max(io.shard_lo, t.offset);
      const int64_t b = std::min(io.shard_hi, t.offset + t.numel);
      if (a < b && !(writing && t.replica)) {
        j.slabs = flat_range_slabs(t.count, a - t.offset, b - t.offset);
        for (auto& s : j.slabs)
          for (size_t d = 0; d < s.start.size(); ++d) s.start[d] += t.start[d];
        j.mem = buf + (a - io.shard_lo), j.n = b - a;
      }
      jobs.push_back(std::move(j));
    }
  }
  return jobs;
}

// Writes (or reads) one job, one slab per H5Dwrite with a memory space of the slab's shape: HDF5
// 1.10 maps selections to chunks element by element unless memory and file selections have the
// same shape (4x slower overall). Collective transfers make 2·N−1 calls on every rank (the most
// slabs a tensor of N dimensions can take), with empty selections where a rank has fewer.
void transfer(hid_t file, const Job& j, hid_t dxpl, bool collective, hid_t bf16, bool write,
              const std::string& path) {
  CHECK_HINT(H5Lexists(file, j.dset.c_str(), H5P_DEFAULT) > 0 || write, kReadHint,
             "checkpoint {} has no dataset {}", path, j.dset);
  Hid ds(H5_CHECK(H5Dopen2(file, j.dset.c_str(), H5P_DEFAULT), path, j.dset, "open dataset"));
  Hid fspace(H5_CHECK(H5Dget_space(ds), path, j.dset, "get the dataspace of"));
  const int nd = int(j.t->shape.size());
  std::vector<hsize_t> dims(static_cast<size_t>(nd));
  CHECK_HINT(H5Sget_simple_extent_ndims(fspace) == nd, kReadHint,
             "{}: dataset {} has the wrong rank", path, j.dset);
  H5Sget_simple_extent_dims(fspace, dims.data(), nullptr);
  CHECK_HINT(dims == hs(j.t->shape), kReadHint, "{}: dataset {} has shape {}, the model needs {}",
             path, j.dset, shape_str(dims), shape_str(j.t->shape));
  Hid ftype(H5_CHECK(H5Dget_type(ds), path, j.dset, "get the type of"));
  const bool is_bf16 = H5Tequal(ftype, bf16) > 0;  // else fp32 (HDF5 converts other float types)
  const hid_t mtype = is_bf16 ? hid_t(bf16) : H5T_NATIVE_FLOAT;
  std::vector<uint16_t> bits(is_bf16 ? size_t(j.n) : 0);
  if (is_bf16 && write)
    for (int64_t i = 0; i < j.n; ++i) bits[size_t(i)] = to_bf16(j.mem[i]);

  const size_t rounds = collective ? size_t(2 * nd - 1) : j.slabs.size();
  int64_t done = 0;  // elements of the job before this slab
  for (size_t k = 0; k < rounds; ++k) {
    hsize_t one = 1;
    Hid mspace;
    if (k < j.slabs.size()) {
      const auto start = hs(j.slabs[k].start), count = hs(j.slabs[k].count);
      H5_CHECK(
          H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start.data(), nullptr, count.data(), nullptr),
          path, j.dset, "select a block of");
      mspace = Hid(H5_CHECK(H5Screate_simple(nd, count.data(), nullptr), path, j.dset,
                            "make a memory space for"));
    } else {
      H5_CHECK(H5Sselect_none(fspace), path, j.dset, "select nothing in");
      mspace = Hid(
          H5_CHECK(H5Screate_simple(1, &one, nullptr), path, j.dset, "make a memory space for"));
      H5_CHECK(H5Sselect_none(mspace), path, j.dset, "select nothing in");
    }
    const int64_t n = H5Sget_select_npoints(mspace);
    CHECK(done + n <= j.n, "{}: the blocks of {} hold more than {} elements", path, j.dset, j.n);
    uint16_t dummy = 0;  // HDF5 wants a buffer even for an empty selection
    void* buf = n == 0    ? static_cast<void*>(&dummy)
                : is_bf16 ? static_cast<void*>(bits.data() + done)
                          : static_cast<void*>(j.mem + done);
    if (write)
      H5_CHECK(H5Dwrite(ds, mtype, mspace, fspace, dxpl, buf), path, j.dset, "write");
    else
      H5_CHECK(H5Dread(ds, mtype, mspace, fspace, dxpl, buf), path, j.dset, "read");
    done += n;
  }
  CHECK(done == j.n, "{}: the blocks of {} hold {} elements, expected {}", path, j.dset, done, j.n);
  if (is_bf16 && !write)
    for (int64_t i = 0; i < j.n; ++i) j.mem[i] = from_bf16(bits[size_t(i)]);
}

// ---- the file's objects -----------------------------------------------------------------------

void create_objects(hid_t file, const Config& cfg, const ParamLayout& layout, const TrainState& st,
                    hid_t bf16, const std::string& path) {
  Hid root(H5_CHECK(H5Gopen2(file, "/", H5P_DEFAULT), path, "/", "open group"));
  put_str(root, "format", kFormat, path);
  put_i64(root, "format_version", kCheckpointFormatVersion, path);
  put_str(root, "software_version", kVersion, path);

  Hid conf(H5_CHECK(H5Gcreate2(file, "/config", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), path,
                    "/config", "create group"));
  const ModelConfig& m = cfg.model;
  put_str(conf, "deck", to_toml(cfg), path);
  const int64_t vals[] = {m.vocab_size, m.d_model, m.n_layers,      m.n_heads,
                          m.n_kv_heads, m.d_ff,    m.tie_embeddings};
  for (size_t k = 0; k < std::size(kModelKeys); ++k) put_i64(conf, kModelKeys[k], vals[k], path);
  put_f64(conf, "norm_eps", m.norm_eps, path);

  Hid state(H5_CHECK(H5Gcreate2(file, "/state", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), path,
                     "/state", "create group"));
  for (auto [name, field] : kStateInts) put_i64(state, name, st.*field, path);
  put_f64(state, "rope_theta", st.rope_theta, path);
  put_u64(state, "seed", st.seed, path);

  for (const auto& t : layout.tensors)
    create_dataset(file, "/model/" + t.name, t.shape, bf16, path);
  for (const char* which : {"master", "m", "v"})
    for (const auto& t : layout.tensors)
      create_dataset(file, fmt::format("/optimizer/{}/{}", which, t.name), t.shape, H5T_IEEE_F32LE,
                     path);
}

void check_io(const CheckpointIO& io, bool need_optimizer) {
  CHECK(io.layout && io.params, "checkpoint: CheckpointIO needs a layout and a params buffer");
  CHECK(0 <= io.shard_lo && io.shard_lo <= io.shard_hi && io.shard_hi <= io.layout->total,
        "checkpoint: shard [{}, {}) is outside the flat buffer of {} floats", io.shard_lo,
        io.shard_hi, io.layout->total);
  CHECK(!need_optimizer || io.shard_lo == io.shard_hi || (io.master && io.m && io.v),
        "checkpoint: optimizer buffers missing for shard [{}, {})", io.shard_lo, io.shard_hi);
}

}  // namespace

// ---- write ------------------------------------------------------------------------------------

void write_checkpoint(const std::string& path, const Config& cfg, const CheckpointIO& io,
                      const TrainState& st, MPI_Comm comm) {
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  check_io(io, true);
  int rank = 0, size = 1;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  const std::string tmp = path + ".tmp";
  if (rank == 0) {
    std::error_code ec;
    const fs::path parent = fs::path(path).parent_path();
    if (!parent.empty()) fs::create_directories(parent, ec);
    CHECK_HINT(!ec, "check the checkpoint.dir setting and its permissions",
               "cannot create directory {} for checkpoint {}: {}", parent.string(), path,
               ec.message());
    fs::remove(tmp, ec);
  }
  MPI_Barrier(comm);

  const bool parallel = use_parallel();
  Hid bf16 = bf16_type();
  const std::vector<Job> jobs = make_jobs(io, "/model", io.owns_params, true, true);
  bool has_data = false;
  for (const auto& j : jobs) has_data = has_data || j.n > 0;

  if (parallel) {  // every rank creates every object and writes, collectively
    Hid fapl = file_access(true, comm, tmp);
    Hid file(H5_CHECK(H5Fcreate(tmp.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl), tmp, "", "create"));
    create_objects(file, cfg, *io.layout, st, bf16, tmp);
    Hid dxpl = transfer_list(true, tmp);
    for (const auto& j : jobs) transfer(file, j, dxpl, true, bf16, true, tmp);
    H5_CHECK(H5Fclose(file.release()), tmp, "", "close");
  } else {  // rank 0 creates the objects; then the ranks take turns, passing a token
    int token = 0;
    if (rank > 0) MPI_Recv(&token, 1, MPI_INT, rank - 1, 0, comm, MPI_STATUS_IGNORE);
    if (rank == 0 || has_data) {
      Hid fapl = file_access(false, comm, tmp);
      Hid file(rank == 0 ? H5_CHECK(H5Fcreate(tmp.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl), tmp,
                                    "", "create")
                         : H5_CHECK(H5Fopen(tmp.c_str(), H5F_ACC_RDWR, fapl), tmp, "", "open"));
      if (rank == 0) create_objects(file, cfg, *io.layout, st, bf16, tmp);
      for (const auto& j : jobs)
        if (j.n > 0) transfer(file, j, H5P_DEFAULT, false, bf16, true, tmp);
      H5_CHECK(H5Fclose(file.release()), tmp, "", "close");
    }
    if (rank + 1 < size) MPI_Send(&token, 1, MPI_INT, rank + 1, 0, comm);
  }
  MPI_Barrier(comm);
  if (rank == 0) {
    std::error_code ec;
    fs::rename(tmp, path, ec);
    CHECK_HINT(!ec, kWriteHint, "cannot rename {} to {}: {}", tmp, path, ec.message());
  }
  MPI_Barrier(comm);
}

// ---- read -------------------------------------------------------------------------------------

TrainState read_checkpoint(const std::string& path, const Config& cfg, const CheckpointIO& io,
                           bool with_optimizer, MPI_Comm comm) {
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  check_io(io, with_optimizer);
  std::error_code ec;
  CHECK_HINT(fs::is_regular_file(path, ec), "check the path (latest: `ls CHECKPOINT_DIR`)",
             "checkpoint {} does not exist", path);
  CHECK_HINT(H5Fis_hdf5(path.c_str()) > 0,
             "is this the right file? checkpoints are ckpt_NNNNNNN.h5",
             "{} is not an HDF5 file (or is damaged)", path);
  const bool parallel = use_parallel();
  Hid fapl = file_access(parallel, comm, path);
  Hid file(H5_CHECK(H5Fopen(path.c_str(), H5F_ACC_RDONLY, fapl), path, "", "open checkpoint"));

  Hid root(H5_CHECK(H5Gopen2(file, "/", H5P_DEFAULT), path, "/", "open group"));
  const std::string format = get_str(root, "", "format", path);
  CHECK_HINT(format == kFormat, "pass a checkpoint written by longctx",
             "{} is not a longctx checkpoint (format = '{}')", path, format);
  const int64_t version = get_i64(root, "", "format_version", path);
  CHECK_HINT(version >= 1 && version <= kCheckpointFormatVersion,
             "use the longctx version that wrote it",
             "{} has checkpoint format version {}, this longctx reads versions 1 to {}", path,
             version, kCheckpointFormatVersion);

  CHECK_HINT(H5Lexists(file, "/config", H5P_DEFAULT) > 0, kReadHint, "checkpoint {} has no /config",
             path);
  Hid conf(H5_CHECK(H5Gopen2(file, "/config", H5P_DEFAULT), path, "/config", "open group"));
  const ModelConfig& m = cfg.model;
  const int64_t deck[] = {m.vocab_size, m.d_model, m.n_layers,      m.n_heads,
                          m.n_kv_heads, m.d_ff,    m.tie_embeddings};
  for (size_t k = 0; k < std::size(kModelKeys); ++k) {
    const int64_t have = get_i64(conf, "/config", kModelKeys[k], path);
    CHECK_HINT(
        have == deck[k],
        fmt::format(
            "a checkpoint loads only into the model that wrote it: set model.{} = {} in the deck",
            kModelKeys[k], have),
        "checkpoint {} has model.{} = {}, deck {} has {}", path, kModelKeys[k], have,
        cfg.deck_path.empty() ? "(in memory)" : cfg.deck_path, deck[k]);
  }

  CHECK_HINT(H5Lexists(file, "/state", H5P_DEFAULT) > 0, kReadHint, "checkpoint {} has no /state",
             path);
  Hid sg(H5_CHECK(H5Gopen2(file, "/state", H5P_DEFAULT), path, "/state", "open group"));
  TrainState st;
  for (auto [name, field] : kStateInts) st.*field = get_i64(sg, "/state", name, path);
  st.rope_theta = get_num<double>(sg, "/state", "rope_theta", H5T_NATIVE_DOUBLE, path);
  st.seed = get_num<uint64_t>(sg, "/state", "seed", H5T_NATIVE_UINT64, path);

  // Weights: exact fp32 from /optimizer/master when present, else the bf16 /model.
  const bool has_master = H5Lexists(file, "/optimizer", H5P_DEFAULT) > 0 &&
                          H5Lexists(file, "/optimizer/master", H5P_DEFAULT) > 0;
  CHECK_HINT(!with_optimizer || has_master,
             "use it with checkpoint.init_from (weights only) instead",
             "checkpoint {} holds no optimizer state, which resuming needs", path);
  const auto jobs =
      make_jobs(io, has_master ? "/optimizer/master" : "/model", true, with_optimizer, false);
  Hid bf16 = bf16_type();
  Hid dxpl = transfer_list(parallel, path);
  for (const auto& j : jobs) transfer(file, j, dxpl, parallel, bf16, false, path);
  return st;
}

}  // namespace longctx
