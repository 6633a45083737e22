// train_io.cpp — the trainer's checkpoints and run outputs: what each rank contributes to a
// checkpoint (its tensor blocks, its ZeRO-1 shard), periodic saves and pruning, --fresh, and the
// assembly of whole-model vectors from shards (tests compare layouts with it).
#include <algorithm>
#include <filesystem>

#include "longctx/common.h"
#include "longctx/log.h"
#include "longctx/train.h"

namespace fs = std::filesystem;

namespace longctx {

constexpr const char* kFsHint = "check the path and its permissions";

CheckpointIO Trainer::checkpoint_io() {
  CheckpointIO io;
  io.layout = &layout_;
  io.params = params_.data();
  io.owns_params = dpsp_->rank() == 0;  // one replica of each tensor block writes /model
  io.shard_lo = shard_lo_, io.shard_hi = shard_hi_;
  io.master = master_.data(), io.m = m_.data(), io.v = v_.data();
  return io;
}

void Trainer::save(const std::string& path) {
  write_checkpoint(path, cfg_, checkpoint_io(), st_, topo_.cart);
}

void Trainer::maybe_checkpoint(bool stage_end) {
  const int64_t every = cfg_.checkpoint.every;
  if (!stage_end && !(every > 0 && st_.global_step % every == 0)) return;
  const std::string path = checkpoint_path(cfg_.checkpoint.dir, st_.global_step);
  const double t0 = MPI_Wtime();
  save(path);
  if (topo_.world_rank == 0) {
    if (!opt_.quiet) log_info("checkpoint {} ({:.2f} s)", path, MPI_Wtime() - t0);
    if (cfg_.checkpoint.keep > 0) prune_checkpoints(cfg_);
  }
}

std::vector<float> Trainer::gather_full(const std::vector<float>& shard) const {
  const ParamLayout full = make_param_layout(cfg_.model);
  std::vector<float> out(size_t(full.total), 0.0f);
  for (const auto& t : layout_.tensors) {
    if (t.replica) continue;  // its owner contributes the block
    const ParamTensor& f = full.find(t.name);
    const int64_t b = std::max(shard_lo_, t.offset), e = std::min(shard_hi_, t.offset + t.numel);
    const int64_t cols = t.count.size() == 2 ? t.count[1] : t.numel;
    for (int64_t i = b; i < e; ++i) {
      const int64_t li = i - t.offset, r = li / cols, c = li % cols;
      const int64_t fi = t.shape.size() == 2 ? (t.start[0] + r) * t.shape[1] + t.start[1] + c : t.start[0] + li;
      out[size_t(f.offset + fi)] = shard[size_t(i - shard_lo_)];
    }
  }
  world_->all_reduce_sum(out.data(), full.total);
  return out;
}

void prune_checkpoints(const Config& cfg) {
  std::vector<int64_t> ends;
  int64_t sum = 0;
  for (const auto& s : cfg.stages) ends.push_back(sum += s.steps);
  std::vector<std::pair<int64_t, fs::path>> found;
  std::error_code ec;
  for (fs::directory_iterator it(cfg.checkpoint.dir, ec), end; !ec && it != end; it.increment(ec)) {
    const int64_t step = checkpoint_step(it->path().filename().string());
    if (step >= 0) found.emplace_back(step, it->path());
  }
  CHECK_HINT(!ec, kFsHint, "checkpoint.dir = '{}': cannot list it to prune old checkpoints (checkpoint.keep = {}): {}",
             cfg.checkpoint.dir, cfg.checkpoint.keep, ec.message());
  std::sort(found.rbegin(), found.rend());
  int64_t kept = 0;
  for (const auto& [step, path] : found) {
    if (std::find(ends.begin(), ends.end(), step) != ends.end()) continue;
    if (++kept <= cfg.checkpoint.keep) continue;
    fs::remove(path, ec);
    CHECK_HINT(!ec, kFsHint, "checkpoint.dir = '{}': cannot remove old checkpoint {} (checkpoint.keep = {}): {}",
               cfg.checkpoint.dir, path.string(), cfg.checkpoint.keep, ec.message());
  }
}

void remove_run_outputs(const Config& cfg) {
  std::error_code ec;
  if (fs::is_directory(cfg.checkpoint.dir, ec)) {
    for (fs::directory_iterator it(cfg.checkpoint.dir, ec), end; !ec && it != end; it.increment(ec)) {
      std::string n = it->path().filename().string();
      if (n.ends_with(".tmp")) n.resize(n.size() - 4);  // an interrupted write
      std::error_code rm;
      if (checkpoint_step(n) >= 0) fs::remove(it->path(), rm);
      CHECK_HINT(!rm, kFsHint, "--fresh: checkpoint.dir = '{}': cannot remove {}: {}", cfg.checkpoint.dir,
                 it->path().string(), rm.message());
    }
    CHECK_HINT(!ec, kFsHint, "--fresh: checkpoint.dir = '{}': cannot list it: {}", cfg.checkpoint.dir, ec.message());
  }
  const fs::path metrics = fs::path(cfg.run.out_dir) / "metrics.jsonl";
  fs::remove(metrics, ec);
  CHECK_HINT(!ec, kFsHint, "--fresh: run.out_dir = '{}': cannot remove {}: {}",
             cfg.run.out_dir, metrics.string(), ec.message());
}

}  // namespace longctx
