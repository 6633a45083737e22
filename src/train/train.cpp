// train.cpp — the training driver (see train.h): stages, the data of each micro-batch, the step
// loop and its log; the step engine (engine.h) does forward+backward, the reductions into ZeRO-1
// shards, clipping, AdamW and the all-gather.
#include "longctx/train.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include "longctx/common.h"
#include "longctx/log.h"
#include "longctx/comm_mpi.h"
#include "longctx/eval.h"
#include "longctx/optim.h"
#include "longctx/preflight.h"
#include "longctx/signals.h"

namespace fs = std::filesystem;

namespace longctx {

namespace {
// A positive thread count from the environment variable `name`, or 0 when it is unset or empty
// (`make run` empties OMP_NUM_THREADS); anything else is refused rather than ignored.
int env_threads(const char* name) {
  const char* v = std::getenv(name);
  if (!v || !*v) return 0;
  char* end = nullptr;
  const long n = std::strtol(v, &end, 10);
  CHECK_HINT(*end == 0 && n >= 1 && n <= 4096, "unset it, or give a thread count in 1..4096",
             "{}='{}' is not a thread count (run.threads = 0 takes it from there)", name, v);
  return int(n);
}
}  // namespace

std::string set_threads(const Config& cfg, int world_size) {
  int n = cfg.run.threads;
  std::string why = "run.threads";
  // run.threads = 0: the allocation decides when it says (a job script's OMP_NUM_THREADS, Slurm's
  // --cpus-per-task), else all cores for one rank and 1 per rank under MPI.
  for (const char* var : {"OMP_NUM_THREADS", "SLURM_CPUS_PER_TASK"})
    if (n == 0 && (n = env_threads(var)) > 0) why = var;
  if (n == 0) {
    n = world_size > 1 ? 1 : int(std::max(1u, std::thread::hardware_concurrency()));
    why = world_size > 1 ? "run.threads = 0 with several ranks" : "run.threads = 0: all cores";
  }
  openblas_set_num_threads(n);
  omp_set_num_threads(n);
  return fmt::format("{} thread{} per rank ({})", n, n == 1 ? "" : "s", why);
}

Trainer::Trainer(const Config& cfg, MPI_Comm world, const TrainOptions& opt)
    : cfg_(cfg), opt_(opt), groups_(std::make_unique<ProcessGroups>(cfg, world)) {
  const Grid& grid = groups_->grid();
  const std::string threads = set_threads(cfg_, grid.world_size);
  CHECK_ALIKE(opt_.stop_after_stage <= int64_t(cfg_.stages.size()), "stages count from 1",
              "{}: --stop-after-stage {}, but the deck has {} stage(s)", cfg_.deck_path,
              opt_.stop_after_stage, cfg_.stages.size());
  const int64_t n_stages = int64_t(cfg_.stages.size()), last = opt_.stop_after_stage > 0 ? opt_.stop_after_stage : n_stages;
  if (!opt_.resume) check_one_layout(cfg_, 0, last);  // a new run starts at stage 1: refuse before any work
  // The inputs first (data, the memory plan, the checkpoint to start from), then the outputs: a run
  // refused for its input creates no directory; every output is proved writable before any step.
  data_ = open_data(cfg_);
  engine_ = StepEngine::create(cfg_, *groups_);
  st_.seed = cfg_.run.seed;
  if (const char* f = std::getenv("LONGCTX_FAIL_AT")) {  // "rank:step[:std]", a test hook
    int end = 0;
    CHECK(std::sscanf(f, "%ld:%ld%n", &fail_rank_, &fail_step_, &end) == 2 &&
              (f[end] == 0 || std::string(f + end) == ":std"),
          "LONGCTX_FAIL_AT='{}': expected rank:step or rank:step:std", f);
  }
  std::string from;
  load_start(from);
  {  // the stages this job runs must all have its layout (deck stages may set their own: `longctx stages`)
    const int64_t done = st_.stage < n_stages && st_.stage_step >= cfg_.stages[size_t(st_.stage)].steps;
    check_one_layout(cfg_, st_.stage + done, last);
  }
  preflight_outputs(train_outputs(cfg_), groups_->mpi_all());

  if (grid.world_rank == 0) {
    create_directories_for("run.out_dir", cfg_.run.out_dir);
    const std::string metrics = (fs::path(cfg_.run.out_dir) / "metrics.jsonl").string();
    metrics_ = open_metrics(metrics, from.empty() ? -1 : st_.global_step);
    if (!opt_.quiet) {
      log_info("longctx {} | {} | {} parameters ({} on this rank, ZeRO-1 shard {}) | data: {}",
               kVersion, grid.describe(), make_param_layout(cfg_.model).total, engine_->layout().total,
               engine_->shard_size(), data_->describe());
      log_info("device: {} ({}) | {}", engine_->describe_device(), groups_->device().why, threads);
      if (!groups_->device().gpu_map.empty()) log_info("{}", groups_->device().gpu_map);
      if (from.empty()) log_info("starting a new run in {}", cfg_.run.out_dir);
      else log_info("resuming {} from {}", cfg_.run.out_dir, from);
    }
  }
  started_ = MPI_Wtime();
}

void Trainer::load_start(std::string& from) {
  const bool root = groups_->grid().world_rank == 0;
  // Rank 0 alone looks at the checkpoint directory and tells the others (on a shared file system
  // other nodes may see a stale listing): every rank then reads the same file, or none.
  if (root) {
    if (opt_.fresh) remove_run_outputs(cfg_);
    for (const std::string& f : remove_unfinished_checkpoints(cfg_))
      log_warn("removed {}, a checkpoint an earlier job did not finish writing", f);
    from = latest_checkpoint(cfg_.checkpoint.dir);
  }
  from = broadcast_string(from, groups_->mpi_all());
  CHECK_ALIKE(opt_.resume || from.empty(),
             "pass --resume to continue that run, or --fresh to delete its checkpoints and metrics",
             "{} already holds checkpoints of a run ({})", cfg_.checkpoint.dir, from);
  const CheckpointIO io = engine_->checkpoint_io();
  if (!from.empty()) {
    st_ = read_checkpoint(from, cfg_, io, /*with_optimizer=*/true, groups_->mpi_all());
    engine_->loaded(true);
    saved_step_ = st_.global_step;
    CHECK_ALIKE(st_.stage < int64_t(cfg_.stages.size()), "resume with the deck that wrote it",
               "{}: checkpoint {} is in stage {}, but the deck has {} stage(s)", cfg_.deck_path,
               from, st_.stage + 1, cfg_.stages.size());
    // The data of every step is drawn from the seed: another seed would not continue the run.
    CHECK_ALIKE(st_.seed == cfg_.run.seed, "resume with the seed the run started with",
               "{}: checkpoint {} was written with run.seed = {}, the deck has {}", cfg_.deck_path,
               from, st_.seed, cfg_.run.seed);
  } else if (!cfg_.checkpoint.init_from.empty()) {
    const TrainState src = read_checkpoint(cfg_.checkpoint.init_from, cfg_, io, false, groups_->mpi_all());
    engine_->loaded(false);
    if (root)
      log_info("initialised from {} (global step {}, seq_len {}, rope_theta {:g}); fresh optimizer",
               cfg_.checkpoint.init_from, src.global_step, src.seq_len, src.rope_theta);
  } else {
    engine_->init_params(cfg_.run.seed);
  }
}

Trainer::~Trainer() {
  if (metrics_) std::fclose(metrics_);
  engine_.reset();
  groups_.reset();
}

void Trainer::start_stage() {
  const StageConfig& s = cfg_.stages[size_t(st_.stage)];
  engine_->configure(s.micro_batch, s.seq_len, s.rope_theta);
  positions_ = engine_->seq().positions();
  const int64_t Tl = engine_->seq().T_loc;
  sample_.resize(size_t(s.seq_len + 1));
  tokens_.resize(size_t(s.micro_batch * Tl));
  targets_.resize(tokens_.size());
  configured_stage_ = st_.stage;
  st_.seq_len = s.seq_len, st_.rope_theta = s.rope_theta;
  if (groups_->grid().world_rank == 0 && !opt_.quiet)
    log_info("stage {}/{}: seq_len {} rope_theta {:g} steps {} batch {}×{}×{} | {} tokens "
             "of each sequence on a rank | activations {:.1f} MiB",
             st_.stage + 1, cfg_.stages.size(), s.seq_len, s.rope_theta, s.steps, groups_->grid().dp,
             s.batch_accum, s.micro_batch, Tl, double(engine_->activation_bytes()) / (1 << 20));
}

LossSum Trainer::accumulate_gradient() {
  if (configured_stage_ != st_.stage) start_stage();
  const StageConfig& s = cfg_.stages[size_t(st_.stage)];
  const Grid& grid = groups_->grid();
  if (st_.global_step + 1 == fail_step_ && grid.world_rank == fail_rank_) {
    if (std::string(std::getenv("LONGCTX_FAIL_AT")).ends_with(":std"))  // not a longctx::Error
      throw std::runtime_error(fmt::format("injected std::runtime_error on rank {} at step {} (LONGCTX_FAIL_AT)",
                                           fail_rank_, fail_step_));
    FAIL_ERROR("injected failure on rank {} at step {} (LONGCTX_FAIL_AT)", fail_rank_, fail_step_);
  }
  const int64_t Tl = engine_->seq().T_loc;
  engine_->zero_grad();
  LossSum tot;
  for (int64_t a = 0; a < s.batch_accum; ++a) {
    for (int64_t b = 0; b < s.micro_batch; ++b) {  // sample index in the step's global batch
      const int64_t g = (grid.dp_rank * s.batch_accum + a) * s.micro_batch + b;
      data_->sample(st_.global_step, g, s.seq_len + 1, sample_.data());
      for (int64_t t = 0; t < Tl; ++t) {
        tokens_[size_t(b * Tl + t)] = sample_[size_t(positions_[size_t(t)])];
        targets_[size_t(b * Tl + t)] = sample_[size_t(positions_[size_t(t)] + 1)];
      }
    }
    const LossSum r = engine_->micro_batch(tokens_.data(), targets_.data());
    tot.sum += r.sum, tot.count += r.count;
  }
  return engine_->reduce(tot);
}

double Trainer::compute_gradient() {
  const LossSum r = accumulate_gradient();
  return r.sum / double(r.count);
}

StepRecord Trainer::step() {
  const StageConfig& s = cfg_.stages[size_t(st_.stage)];
  const double t0 = MPI_Wtime();
  const LossSum tot = accumulate_gradient();
  const double gnorm = engine_->grad_norm();
  CHECK_ALIKE(std::isfinite(gnorm), "lower optim.lr or raise optim.warmup_steps",  // all-reduced: every rank
             "step {}: the gradient norm is {} (loss {})", st_.global_step + 1, gnorm,
             tot.sum / double(tot.count));
  const double lr = lr_at(cfg_.optim, st_.global_step, cfg_.total_steps());
  engine_->update(lr, st_.global_step + 1, gnorm);

  st_.stage_step += 1, st_.global_step += 1;
  st_.tokens_seen += tot.count;
  st_.samples_seen += groups_->grid().dp * s.batch_accum * s.micro_batch;
  return {st_.stage + 1, st_.stage_step, st_.global_step, tot.sum / double(tot.count), gnorm, lr,
          tot.count, MPI_Wtime() - t0};
}

void Trainer::run(int64_t max_steps) {
  int64_t taken = 0;
  while (st_.stage < int64_t(cfg_.stages.size())) {
    const StageConfig& s = cfg_.stages[size_t(st_.stage)];
    if (st_.stage_step >= s.steps) {  // stage complete: go on to the next one
      if (opt_.stop_after_stage == st_.stage + 1) {
        if (groups_->grid().world_rank == 0 && !opt_.quiet)
          log_info("stage {} complete: stopping as asked (--stop-after-stage)", st_.stage + 1);
        return;
      }
      st_.stage += 1, st_.stage_step = 0;
      continue;
    }
    // A step boundary: every rank learns whether any rank got SIGTERM/SIGUSR1 (one tiny
    // all-reduce), so all stop at the same step, or none does.
    if (const int sig = stop_signal_any(groups_->mpi_all())) return stop_for_signal(sig);
    if (max_steps >= 0 && taken >= max_steps) return;
    const StepRecord r = step();
    ++taken;
    history_.push_back(r);
    log_step(r);
    maybe_checkpoint(st_.stage_step == s.steps);
    if (st_.stage_step == s.steps && cfg_.eval.after_each_stage) evaluate_stage();
  }
  if (groups_->grid().world_rank == 0 && !opt_.quiet)
    log_info("done: {} steps, {} tokens, {:.1f} s", st_.global_step, st_.tokens_seen,
             MPI_Wtime() - started_);
}

void Trainer::evaluate_stage() {
  // The stage's final checkpoint was just written (maybe_checkpoint at a stage end always writes);
  // the evaluation reads it on every rank at its rope_theta, the stage's.
  EvalOptions o;
  o.checkpoint = checkpoint_path(cfg_.checkpoint.dir, st_.global_step);
  o.quiet = opt_.quiet;
  const bool root = groups_->grid().world_rank == 0;
  if (root && !opt_.quiet) log_info("stage {} complete: needle evaluation of {}", st_.stage + 1, o.checkpoint);
  const NeedleReport rep = needle_eval(cfg_, groups_->mpi_all(), o);
  if (!root) return;
  const std::string png = write_needle_results(cfg_, rep, "train");
  if (!opt_.quiet)
    log_info("needle results appended to {}; heatmap {}",
             (fs::path(cfg_.run.out_dir) / "needle_eval.jsonl").string(), png);
}

void Trainer::log_step(const StepRecord& r) {
  if (groups_->grid().world_rank != 0) return;
  const double rate = double(r.tokens) / std::max(r.seconds, 1e-9);
  tok_per_s_ = tok_per_s_ == 0.0 ? rate : 0.8 * tok_per_s_ + 0.2 * rate;
  // Remaining tokens of the schedule over the smoothed rate (longer stages cost more per token).
  double left = 0.0;
  for (size_t i = size_t(st_.stage); i < cfg_.stages.size(); ++i) {
    const auto& s = cfg_.stages[i];
    const int64_t steps = s.steps - (int64_t(i) == st_.stage ? st_.stage_step : 0);
    left += double(steps) * double(groups_->grid().dp) * double(s.batch_accum) * double(s.micro_batch) *
            double(s.seq_len) * double(s.seq_len) / double(cfg_.stages[size_t(st_.stage)].seq_len);
  }
  StepLine line{r, cfg_.stages.size(), cfg_.stages[size_t(st_.stage)].steps, st_.seq_len,
                st_.rope_theta, rate, engine_->flops_per_token_fwd() * 3.0 * rate,
                left / std::max(tok_per_s_, 1e-9), peak_rss_mib(), MPI_Wtime() - started_,
                engine_->device_mib()};
  if (!opt_.quiet && (r.global_step % cfg_.run.log_every == 0 || r.stage_step == line.stage_steps))
    print_step_line(line);
  write_metrics(metrics_, line);
}

int train_main(const std::string& deck, const std::vector<std::string>& overrides,
               const TrainOptions& opt) {
  install_stop_handlers();  // first: a signal during start-up stops the run at its first step boundary
  const Config cfg = load_config(deck, overrides, MPI_COMM_WORLD);
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  if (rank == 0) log_info("resolved deck ({}):\n{}", deck, to_toml(cfg));
  Trainer t(cfg, MPI_COMM_WORLD, opt);  // what it throws reaches main, which ends the job alike
  try {
    t.run();
  } catch (const std::exception& e) {
    // Any exception (not only Error: a filesystem error, bad_alloc) ends the job from here, before
    // ~Trainer frees communicators (collective in MPI) while the other ranks wait in a collective.
    abort_job(e);
  }
  return t.interrupted() ? kExitInterrupted : 0;
}

}  // namespace longctx
