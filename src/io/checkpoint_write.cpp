// checkpoint_write.cpp — write_checkpoint (file layout in checkpoint.h).
//
// Parallel HDF5 (H5_HAVE_PARALLEL, unless LONGCTX_CKPT_SERIAL=1): every rank opens the file with
// the MPI-IO driver, all create every object together and write their selections collectively
// (a rank with nothing to write takes part with an empty selection). Otherwise rank 0 creates the
// file and its objects, then the ranks write their selections one after another. Same file.
#include <filesystem>

#include "checkpoint_internal.h"

namespace longctx {
namespace {

namespace fs = std::filesystem;
using namespace ckpt;

void create_objects(hid_t file, const Config& cfg, const ParamLayout& layout, const TrainState& st,
                    hid_t bf16, const std::string& path) {
  const std::string hint = hint_for(path);
  Handle root(CK_CHECK(H5Gopen2(file, "/", H5P_DEFAULT), path, "/", "open group"));
  h5::put_str(root, "format", kFormat, path, hint);
  h5::put_i64(root, "format_version", kCheckpointFormatVersion, path, hint);
  h5::put_str(root, "software_version", kVersion, path, hint);

  Handle conf(CK_CHECK(H5Gcreate2(file, "/config", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), path,
                       "/config", "create group"));
  const ModelConfig& m = cfg.model;
  h5::put_str(conf, "deck", to_toml(cfg), path, hint);
  const int64_t vals[] = {m.vocab_size, m.d_model, m.n_layers,      m.n_heads,
                          m.n_kv_heads, m.d_ff,    m.tie_embeddings};
  for (size_t k = 0; k < std::size(kModelKeys); ++k)
    h5::put_i64(conf, kModelKeys[k], vals[k], path, hint);
  h5::put_f64(conf, "norm_eps", m.norm_eps, path, hint);

  Handle state(CK_CHECK(H5Gcreate2(file, "/state", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), path,
                        "/state", "create group"));
  for (auto [name, field] : kStateInts) h5::put_i64(state, name, st.*field, path, hint);
  h5::put_f64(state, "rope_theta", st.rope_theta, path, hint);
  h5::put_u64(state, "seed", st.seed, path, hint);

  for (const auto& t : layout.tensors)
    create_dataset(file, "/model/" + t.name, t.shape, bf16, path);
  for (const char* which : {"master", "m", "v"})
    for (const auto& t : layout.tensors)
      create_dataset(file, fmt::format("/optimizer/{}/{}", which, t.name), t.shape, H5T_IEEE_F32LE,
                     path);
}

}  // namespace

namespace {
void write_tmp(const std::string& path, const std::string& tmp, const Config& cfg, const CheckpointIO& io,
               const TrainState& st, MPI_Comm comm);
}

void write_checkpoint(const std::string& path, const Config& cfg, const CheckpointIO& io,
                      const TrainState& st, MPI_Comm comm) {
  const std::string tmp = path + ".tmp";
  try {
    write_tmp(path, tmp, cfg, io, st, comm);
  } catch (...) {  // a failing rank leaves no half-written file behind (idempotent on every rank;
    std::error_code ec;  // a killed job's is removed when the next starts: remove_unfinished_checkpoints)
    fs::remove(tmp, ec);
    throw;
  }
}

namespace {
void write_tmp(const std::string& path, const std::string& tmp, const Config& cfg, const CheckpointIO& io,
               const TrainState& st, MPI_Comm comm) {
  h5::quiet();
  check_io(io, true);
  int rank = 0, size = 1;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
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
  Handle bf16 = bf16_type();
  const std::vector<Job> jobs = make_jobs(io, "/model", io.owns_params, true, true);
  bool has_data = false;
  for (const auto& j : jobs) has_data = has_data || j.n > 0;

  if (parallel) {  // every rank creates every object and writes, collectively
    Handle fapl = file_access(true, comm, tmp);
    Handle file(
        CK_CHECK(H5Fcreate(tmp.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl), tmp, "", "create"));
    create_objects(file, cfg, *io.layout, st, bf16, tmp);
    Handle dxpl = transfer_list(true, tmp);
    for (const auto& j : jobs) transfer(file, j, dxpl, true, bf16, true, tmp);
    CK_CHECK(H5Fclose(file.release()), tmp, "", "close");
  } else {  // rank 0 creates the objects; then the ranks take turns, passing a token
    int token = 0;
    if (rank > 0) MPI_Recv(&token, 1, MPI_INT, rank - 1, 0, comm, MPI_STATUS_IGNORE);
    if (rank == 0 || has_data) {
      Handle fapl = file_access(false, comm, tmp);
      Handle file(rank == 0 ? CK_CHECK(H5Fcreate(tmp.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl),
                                       tmp, "", "create")
                            : CK_CHECK(H5Fopen(tmp.c_str(), H5F_ACC_RDWR, fapl), tmp, "", "open"));
      if (rank == 0) create_objects(file, cfg, *io.layout, st, bf16, tmp);
      for (const auto& j : jobs)
        if (j.n > 0) transfer(file, j, H5P_DEFAULT, false, bf16, true, tmp);
      CK_CHECK(H5Fclose(file.release()), tmp, "", "close");
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

}  // namespace

}  // namespace longctx
