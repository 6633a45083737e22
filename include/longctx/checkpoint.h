// checkpoint.h — HDF5 checkpoints: full logical tensors, any layout in, any layout out.
//
// File layout (see README "Checkpoints"):
//   /              attrs format="longctx-checkpoint", format_version, software_version
//   /config        attr deck (the resolved deck, TOML text) and each value as an attribute
//   /state         attrs stage, stage_step, global_step, tokens_seen, samples_seen, seq_len,
//                  rope_theta, seed (AdamW's step count is global_step)
//   /model/...     bf16 (an HDF5 float type with bf16's bit layout), names from ParamLayout
//   /optimizer/{master,m,v}/...   fp32, same tree
// Every dataset is chunked with the Fletcher32 checksum filter. Written to PATH.tmp and renamed
// to PATH only when complete, so a crash never leaves a half-written PATH.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <mpi.h>

#include "longctx/config.h"
#include "longctx/params.h"

namespace longctx {

constexpr int kCheckpointFormatVersion = 1;

// Counters that, with the weights and optimizer moments, make a run resumable bit for bit.
struct TrainState {
  int64_t stage = 0;        // index into cfg.stages of the stage in progress
  int64_t stage_step = 0;   // optimizer steps completed in that stage
  int64_t global_step = 0;  // optimizer steps completed in the run (AdamW's t, the LR schedule)
  int64_t tokens_seen = 0;  // target tokens trained on so far (all ranks)
  int64_t samples_seen = 0; // data cursor: samples drawn so far (all ranks)
  int64_t seq_len = 0;      // of the stage in progress
  double rope_theta = 0.0;  // of the stage in progress
  uint64_t seed = 0;        // run.seed: with the counters above, the whole RNG state
};

// What this rank contributes to (or takes from) a checkpoint.
struct CheckpointIO {
  const ParamLayout* layout = nullptr;  // this rank's tensor blocks
  float* params = nullptr;       // layout->total floats: this rank's blocks of every tensor
  bool owns_params = true;       // this rank writes its blocks of /model (one replica per block)
  // Optimizer state: this rank's range [shard_lo, shard_hi) of the flat buffer (ZeRO-1).
  int64_t shard_lo = 0, shard_hi = 0;
  float *master = nullptr, *m = nullptr, *v = nullptr;  // (shard_hi - shard_lo) floats each
};

// Collective over comm. Writes path (via path.tmp). Ranks write their blocks with parallel HDF5
// when the library has it, else one after another; the file is the same either way.
void write_checkpoint(const std::string& path, const Config& cfg, const CheckpointIO& io,
                      const TrainState& st, MPI_Comm comm);

// Collective over comm. Checks the format and that the model shapes match cfg.model (a mismatch
// names the key), then fills io.params with this rank's blocks: from /optimizer/master when the
// file has it (exact fp32), else from /model (bf16). With with_optimizer, also fills master/m/v
// with this rank's shard. Returns the stored state.
TrainState read_checkpoint(const std::string& path, const Config& cfg, const CheckpointIO& io,
                           bool with_optimizer, MPI_Comm comm);

// The step of a checkpoint file name (ckpt_<digits>.h5), or -1 for any other name.
int64_t checkpoint_step(const std::string& filename);
// The newest complete checkpoint (highest global_step) in dir, or "" if none.
std::string latest_checkpoint(const std::string& dir);
// File name for a checkpoint after `global_step` steps: dir/ckpt_0000120.h5.
std::string checkpoint_path(const std::string& dir, int64_t global_step);

// `longctx info CKPT`: a short human summary (format, config, state, tensors with shapes). With
// verify, every dataset is read in full so that HDF5 checks its Fletcher32 checksums; a dataset
// that fails throws Error naming it and calling the file corrupt. Without, the summary says that
// only attributes were read.
std::string checkpoint_summary(const std::string& path, bool verify = true);

// A rectangular block of an N-D array: first index and extent per dimension.
struct Slab {
  std::vector<int64_t> start, count;
};
// Elements [lo, hi) (row-major order) of an array of shape `shape`, as at most 2·N−1 blocks listed
// in row-major order: partial leading rows, whole rows, partial trailing rows. This is how a ZeRO
// shard of the flat buffer lands in each tensor it crosses.
std::vector<Slab> flat_range_slabs(const std::vector<int64_t>& shape, int64_t lo, int64_t hi);

}  // namespace longctx
