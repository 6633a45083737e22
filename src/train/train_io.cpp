// train_io.cpp — the trainer's checkpoints and run outputs: periodic saves and pruning, --fresh.
#include <algorithm>
#include <filesystem>

#include "longctx/common.h"
#include "longctx/log.h"
#include "longctx/train.h"

namespace fs = std::filesystem;

namespace longctx {

void Trainer::save(const std::string& path) {
  write_checkpoint(path, cfg_, engine_->checkpoint_io(), st_, groups_->mpi_all());
}

void Trainer::maybe_checkpoint(bool stage_end) {
  const int64_t every = cfg_.checkpoint.every;
  if (!stage_end && !(every > 0 && st_.global_step % every == 0)) return;
  const std::string path = checkpoint_path(cfg_.checkpoint.dir, st_.global_step);
  const double t0 = MPI_Wtime();
  save(path);
  if (groups_->grid().world_rank == 0) {
    if (!opt_.quiet) log_info("checkpoint {} ({:.2f} s)", path, MPI_Wtime() - t0);
    if (cfg_.checkpoint.keep > 0) prune_checkpoints(cfg_);
  }
}

void prune_checkpoints(const Config& cfg) {
  std::vector<int64_t> ends;
  int64_t sum = 0;
  for (const auto& s : cfg.stages) ends.push_back(sum += s.steps);
  std::vector<std::pair<int64_t, fs::path>> found;
  for (const auto& e : fs::directory_iterator(cfg.checkpoint.dir)) {
    const int64_t step = checkpoint_step(e.path().filename().string());
    if (step >= 0) found.emplace_back(step, e.path());
  }
  std::sort(found.rbegin(), found.rend());
  int64_t kept = 0;
  for (const auto& [step, path] : found) {
    if (std::find(ends.begin(), ends.end(), step) != ends.end()) continue;
    if (++kept > cfg.checkpoint.keep) fs::remove(path);
  }
}

void remove_run_outputs(const Config& cfg) {
  std::error_code ec;
  if (fs::is_directory(cfg.checkpoint.dir, ec))
    for (const auto& e : fs::directory_iterator(cfg.checkpoint.dir)) {
      std::string n = e.path().filename().string();
      if (n.ends_with(".tmp")) n.resize(n.size() - 4);  // an interrupted write
      if (checkpoint_step(n) >= 0) fs::remove(e.path());
    }
  fs::remove(fs::path(cfg.run.out_dir) / "metrics.jsonl", ec);
}

}  // namespace longctx
