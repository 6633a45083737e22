// checkpoint_read.cpp — read_checkpoint: format and model checks, the /state counters (validated,
// checkpoint_state.cpp), then this rank's blocks of the weights and optimizer state. Every rank
// reads the same file, so its errors are raised alike (printed once; raised_alike, common.h).
#include <filesystem>

#include "checkpoint_internal.h"

namespace longctx {

using namespace ckpt;

namespace {
TrainState read_on_every_rank(const std::string& path, const Config& cfg, const CheckpointIO& io,
                              bool with_optimizer, MPI_Comm comm) {
  namespace fs = std::filesystem;
  h5::quiet();
  check_io(io, with_optimizer);
  std::error_code ec;
  CHECK_HINT(fs::is_regular_file(path, ec), "check the path (latest: `ls CHECKPOINT_DIR`)",
              "checkpoint {} does not exist", path);
  CHECK_HINT(H5Fis_hdf5(path.c_str()) > 0, "is this the right file? checkpoints are ckpt_NNNNNNN.h5",
              "{} is not an HDF5 file (or is damaged)", path);
  const bool parallel = use_parallel();
  Handle fapl = file_access(parallel, comm, path);
  Handle file(CK_CHECK(H5Fopen(path.c_str(), H5F_ACC_RDONLY, fapl), path, "", "open checkpoint"));

  Handle root(CK_CHECK(H5Gopen2(file, "/", H5P_DEFAULT), path, "/", "open group"));
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
  Handle conf(CK_CHECK(H5Gopen2(file, "/config", H5P_DEFAULT), path, "/config", "open group"));
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
  Handle sg(CK_CHECK(H5Gopen2(file, "/state", H5P_DEFAULT), path, "/state", "open group"));
  TrainState st;
  for (auto [name, field] : kStateInts) st.*field = get_i64(sg, "/state", name, path);
  st.rope_theta = get_num<double>(sg, "/state", "rope_theta", H5T_NATIVE_DOUBLE, path);
  st.seed = get_num<uint64_t>(sg, "/state", "seed", H5T_NATIVE_UINT64, path);
  validate_state(st, cfg, with_optimizer, path, file);

  // Weights: exact fp32 from /optimizer/master when present, else the bf16 /model.
  const bool has_master = H5Lexists(file, "/optimizer", H5P_DEFAULT) > 0 &&
                          H5Lexists(file, "/optimizer/master", H5P_DEFAULT) > 0;
  CHECK_HINT(!with_optimizer || has_master,
             "use it with checkpoint.init_from (weights only) instead",
             "checkpoint {} holds no optimizer state, which resuming needs", path);
  const auto jobs =
      make_jobs(io, has_master ? "/optimizer/master" : "/model", true, with_optimizer, false);
  Handle bf16 = bf16_type();
  Handle dxpl = transfer_list(parallel, path);
  for (const auto& j : jobs) transfer(file, j, dxpl, parallel, bf16, false, path);
  return st;
}

}  // namespace

TrainState read_checkpoint(const std::string& path, const Config& cfg, const CheckpointIO& io,
                           bool with_optimizer, MPI_Comm comm) {
  return raised_alike([&] { return read_on_every_rank(path, cfg, io, with_optimizer, comm); });
}

}  // namespace longctx
