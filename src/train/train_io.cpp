// train_io.cpp — the trainer's checkpoints and run outputs: periodic saves and pruning, --fresh.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "longctx/common.h"
#include "longctx/log.h"
#include "longctx/signals.h"
#include "longctx/train.h"

namespace fs = std::filesystem;

namespace longctx {

constexpr const char* kFsHint = "check the path and its permissions";

void Trainer::save(const std::string& path) {
  write_checkpoint(path, cfg_, engine_->checkpoint_io(), st_, groups_->mpi_all());
}

void Trainer::maybe_checkpoint(bool stage_end) {
  const int64_t every = cfg_.checkpoint.every;
  if (!stage_end && !(every > 0 && st_.global_step % every == 0)) return;
  save_checkpoint(!opt_.quiet);
}

std::string Trainer::save_checkpoint(bool verbose) {
  const std::string path = checkpoint_path(cfg_.checkpoint.dir, st_.global_step);
  const double t0 = MPI_Wtime();
  save(path);
  saved_step_ = st_.global_step;
  if (groups_->grid().world_rank == 0) {
    if (verbose) log_info("checkpoint {} ({:.2f} s)", path, MPI_Wtime() - t0);
    if (cfg_.checkpoint.keep > 0) prune_checkpoints(cfg_);
  }
  return path;
}

void Trainer::stop_for_signal(int sig) {
  // The step boundary every rank agreed on: the checkpoint of this step (unless the run already
  // has it: saved at this step, or resumed from it), written as every checkpoint is (.tmp, then
  // rename). Further signals only bump a counter in the handler; nothing interrupts the write.
  const bool had = saved_step_ == st_.global_step;
  const std::string path = had ? checkpoint_path(cfg_.checkpoint.dir, st_.global_step) : save_checkpoint(true);
  interrupted_ = sig;
  if (groups_->grid().world_rank != 0) return;
  const StageConfig& s = cfg_.stages[size_t(std::min<int64_t>(st_.stage, int64_t(cfg_.stages.size()) - 1))];
  log_warn("{} received: stopped at the step boundary after global step {} (stage {}/{}, step {}/{}); "
           "checkpoint {} {}", signal_name(sig), st_.global_step, st_.stage + 1, cfg_.stages.size(),
           st_.stage_step, s.steps, path, had ? "(already there)" : "written");
  if (stop_signal_count() > 1)
    log_warn("{} stop signals arrived on rank 0; the later ones changed nothing (the save was not interrupted)", stop_signal_count());
  log_warn("interrupted: exit status {}; to continue, run the same command with --resume: longctx train {} --resume "
           "[the same --set options]", kExitInterrupted, cfg_.deck_path);
  // For the job scripts (jobs/common.sh): a launcher that was signalled itself may report another
  // status than its ranks' 75; this file says what the ranks did.
  if (const char* f = std::getenv("LONGCTX_STATUS_FILE"); f && *f) {
    std::FILE* out = std::fopen(f, "w");
    const bool ok = out && std::fprintf(out, "%d %s\n", kExitInterrupted, path.c_str()) > 0;
    if (out) std::fclose(out);
    if (!ok) log_warn("LONGCTX_STATUS_FILE '{}' could not be written: the job script sees the launcher's status only", f);
  }
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

namespace {
// Removes checkpoint.dir's unfinished checkpoints (ckpt_N.h5.tmp) and, with `finished` too, the
// complete ones; other files stay. `why` starts the messages ("--fresh: "). Returns what it removed.
std::vector<std::string> remove_checkpoint_files(const Config& cfg, bool finished, const char* why) {
  std::vector<std::string> removed;
  std::error_code ec;
  if (!fs::is_directory(cfg.checkpoint.dir, ec)) return removed;
  for (fs::directory_iterator it(cfg.checkpoint.dir, ec), end; !ec && it != end; it.increment(ec)) {
    std::string n = it->path().filename().string();
    const bool unfinished = n.ends_with(".tmp");  // an interrupted write
    if (unfinished) n.resize(n.size() - 4);
    if (checkpoint_step(n) < 0 || !(unfinished || finished)) continue;
    std::error_code rm;
    fs::remove(it->path(), rm);
    CHECK_HINT(!rm, kFsHint, "{}checkpoint.dir = '{}': cannot remove {}: {}", why, cfg.checkpoint.dir,
               it->path().string(), rm.message());
    removed.push_back(it->path().string());
  }
  CHECK_HINT(!ec, kFsHint, "{}checkpoint.dir = '{}': cannot list it: {}", why, cfg.checkpoint.dir, ec.message());
  return removed;
}
}  // namespace

void remove_run_outputs(const Config& cfg) {
  remove_checkpoint_files(cfg, /*finished=*/true, "--fresh: ");
  std::error_code ec;
  const fs::path metrics = fs::path(cfg.run.out_dir) / "metrics.jsonl";
  fs::remove(metrics, ec);
  CHECK_HINT(!ec, kFsHint, "--fresh: run.out_dir = '{}': cannot remove {}: {}",
             cfg.run.out_dir, metrics.string(), ec.message());
}

std::vector<std::string> remove_unfinished_checkpoints(const Config& cfg) {
  return remove_checkpoint_files(cfg, /*finished=*/false, "");
}

}  // namespace longctx
