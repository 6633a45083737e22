// train.cpp — the training driver (see train.h): one optimizer step is batch_accum micro-batches of
// forward+backward, the gradient reduced and normalised by the number of target tokens, clipped,
// then AdamW on this rank's shard and the parameters refreshed from the master weights.
#include "longctx/train.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <thread>

#include "longctx/common.h"
#include "longctx/log.h"
#include "longctx/optim.h"

namespace fs = std::filesystem;

namespace longctx {

static void prune_checkpoints(const Config& cfg);
static void remove_run_outputs(const Config& cfg);

static void set_threads(const Config& cfg, int world_size) {
  int n = cfg.run.threads;
  if (n == 0) n = world_size > 1 ? 1 : int(std::max(1u, std::thread::hardware_concurrency()));
  openblas_set_num_threads(n);
  omp_set_num_threads(n);
}

Trainer::Trainer(const Config& cfg, MPI_Comm world, const TrainOptions& opt)
    : cfg_(cfg), opt_(opt), topo_(Topology::create(cfg, world)) {
  CHECK_HINT(topo_.world_size == 1, "run it on one rank with [parallel] dp = tp = sp = 1",
             "{}: parallel layouts other than 1×1×1 are not implemented yet", cfg.deck_path);
  set_threads(cfg_, topo_.world_size);
  layout_ = make_param_layout(cfg_.model);
  const auto n = size_t(layout_.total);
  params_.assign(n, 0.0f), grads_.assign(n, 0.0f);
  master_.assign(n, 0.0f), m_.assign(n, 0.0f), v_.assign(n, 0.0f);
  data_ = open_data(cfg_);
  st_.seed = cfg_.run.seed;

  const bool root = topo_.world_rank == 0;
  if (opt_.fresh && root) remove_run_outputs(cfg_);
  MPI_Barrier(topo_.cart);
  std::string from = latest_checkpoint(cfg_.checkpoint.dir);
  CHECK_HINT(opt_.resume || from.empty(),
             "pass --resume to continue that run, or --fresh to delete its checkpoints and metrics",
             "{} already holds checkpoints of a run ({})", cfg_.checkpoint.dir, from);
  CheckpointIO io{&layout_, params_.data(), true, 0, layout_.total, master_.data(), m_.data(),
                  v_.data()};
  if (!from.empty()) {
    st_ = read_checkpoint(from, cfg_, io, /*with_optimizer=*/true, topo_.cart);
    CHECK_HINT(st_.stage < int64_t(cfg_.stages.size()), "resume with the deck that wrote it",
               "{}: checkpoint {} is in stage {}, but the deck has {} stage(s)", cfg_.deck_path,
               from, st_.stage + 1, cfg_.stages.size());
    if (st_.seed != cfg_.run.seed && root)
      log_warn("checkpoint seed {} differs from run.seed {}; continuing with the checkpoint's",
               st_.seed, cfg_.run.seed);
    std::copy(master_.begin(), master_.end(), params_.begin());
  } else if (!cfg_.checkpoint.init_from.empty()) {
    const TrainState src = read_checkpoint(cfg_.checkpoint.init_from, cfg_, io, false, topo_.cart);
    std::copy(params_.begin(), params_.end(), master_.begin());
    if (root)
      log_info("initialised from {} (global step {}, seq_len {}, rope_theta {:g}); fresh optimizer",
               cfg_.checkpoint.init_from, src.global_step, src.seq_len, src.rope_theta);
  } else {
    init_params(cfg_.model, layout_, cfg_.run.seed, params_.data());
    std::copy(params_.begin(), params_.end(), master_.begin());
  }
  adamw_ = std::make_unique<AdamW>(cfg_.optim, layout_, 0, layout_.total);
  model_ = std::make_unique<Model>(cfg_.model, layout_, params_.data(), grads_.data());

  if (root) {
    fs::create_directories(cfg_.run.out_dir);
    const std::string metrics = (fs::path(cfg_.run.out_dir) / "metrics.jsonl").string();
    metrics_ = open_metrics(metrics, from.empty() ? -1 : st_.global_step);
    if (!opt_.quiet) {
      log_info("longctx {} | {} | {} parameters | data: {}", kVersion, topo_.describe(),
               layout_.total, data_->describe());
      if (from.empty()) log_info("starting a new run in {}", cfg_.run.out_dir);
      else log_info("resuming {} from {}", cfg_.run.out_dir, from);
    }
  }
  started_ = MPI_Wtime();
}

Trainer::~Trainer() {
  if (metrics_) std::fclose(metrics_);
  topo_.free();
}

void Trainer::start_stage() {
  const StageConfig& s = cfg_.stages[size_t(st_.stage)];
  std::vector<int64_t> pos(size_t(s.seq_len));
  for (int64_t t = 0; t < s.seq_len; ++t) pos[size_t(t)] = t;
  model_->configure(s.micro_batch, s.seq_len, pos, s.rope_theta);
  sample_.resize(size_t(s.seq_len + 1));
  tokens_.resize(size_t(s.micro_batch * s.seq_len));
  targets_.resize(tokens_.size());
  configured_stage_ = st_.stage;
  st_.seq_len = s.seq_len, st_.rope_theta = s.rope_theta;
  if (topo_.world_rank == 0 && !opt_.quiet)
    log_info("stage {}/{}: seq_len {} rope_theta {:g} steps {} batch {}×{} | activations {:.1f} MiB",
             st_.stage + 1, cfg_.stages.size(), s.seq_len, s.rope_theta, s.steps, s.batch_accum,
             s.micro_batch, double(model_->activation_bytes()) / (1 << 20));
}

StepRecord Trainer::step() {
  const StageConfig& s = cfg_.stages[size_t(st_.stage)];
  const double t0 = MPI_Wtime();
  const int64_t T = s.seq_len;
  std::fill(grads_.begin(), grads_.end(), 0.0f);
  LossSum tot;
  for (int64_t a = 0; a < s.batch_accum; ++a) {
    for (int64_t b = 0; b < s.micro_batch; ++b) {
      data_->sample(st_.global_step, a * s.micro_batch + b, T + 1, sample_.data());
      std::copy_n(sample_.begin(), T, tokens_.begin() + b * T);
      std::copy_n(sample_.begin() + 1, T, targets_.begin() + b * T);
    }
    const LossSum r = model_->forward_backward(tokens_.data(), targets_.data());
    tot.sum += r.sum, tot.count += r.count;
  }
  CHECK(tot.count > 0, "step {}: no target tokens in the batch", st_.global_step + 1);
  const float inv = float(1.0 / double(tot.count));
  for (auto& g : grads_) g *= inv;
  const double gnorm = std::sqrt(sum_squares(grads_.data(), layout_.total));
  CHECK_HINT(std::isfinite(gnorm), "lower optim.lr or raise optim.warmup_steps",
             "step {}: the gradient norm is {} (loss {})", st_.global_step + 1, gnorm,
             tot.sum / double(tot.count));
  if (cfg_.optim.grad_clip > 0.0 && gnorm > cfg_.optim.grad_clip) {
    const float c = float(cfg_.optim.grad_clip / gnorm);
    for (auto& g : grads_) g *= c;
  }
  const double lr = lr_at(cfg_.optim, st_.global_step, cfg_.total_steps());
  adamw_->step(master_.data(), grads_.data(), m_.data(), v_.data(), lr, st_.global_step + 1);
  std::copy(master_.begin(), master_.end(), params_.begin());

  st_.stage_step += 1, st_.global_step += 1;
  st_.tokens_seen += tot.count;
  st_.samples_seen += s.batch_accum * s.micro_batch;
  return {st_.stage + 1, st_.stage_step, st_.global_step, tot.sum / double(tot.count), gnorm, lr,
          tot.count, MPI_Wtime() - t0};
}

void Trainer::run(int64_t max_steps) {
  int64_t taken = 0;
  while (st_.stage < int64_t(cfg_.stages.size())) {
    const StageConfig& s = cfg_.stages[size_t(st_.stage)];
    if (st_.stage_step >= s.steps) {  // stage complete: go on to the next one
      if (opt_.stop_after_stage == st_.stage + 1) {
        if (topo_.world_rank == 0 && !opt_.quiet)
          log_info("stage {} complete: stopping as asked (--stop-after-stage)", st_.stage + 1);
        return;
      }
      st_.stage += 1, st_.stage_step = 0;
      continue;
    }
    if (max_steps >= 0 && taken >= max_steps) return;
    if (configured_stage_ != st_.stage) start_stage();
    const StepRecord r = step();
    ++taken;
    history_.push_back(r);
    log_step(r);
    maybe_checkpoint(st_.stage_step == s.steps);
  }
  if (topo_.world_rank == 0 && !opt_.quiet)
    log_info("done: {} steps, {} tokens, {:.1f} s", st_.global_step, st_.tokens_seen,
             MPI_Wtime() - started_);
}

void Trainer::log_step(const StepRecord& r) {
  if (topo_.world_rank != 0) return;
  const double rate = double(r.tokens) / std::max(r.seconds, 1e-9);
  tok_per_s_ = tok_per_s_ == 0.0 ? rate : 0.8 * tok_per_s_ + 0.2 * rate;
  // Remaining tokens of the schedule over the smoothed rate (longer stages cost more per token).
  double left = 0.0;
  for (size_t i = size_t(st_.stage); i < cfg_.stages.size(); ++i) {
    const auto& s = cfg_.stages[i];
    const int64_t steps = s.steps - (int64_t(i) == st_.stage ? st_.stage_step : 0);
    left += double(steps * s.batch_accum * s.micro_batch * s.seq_len) * double(s.seq_len) /
            double(cfg_.stages[size_t(st_.stage)].seq_len);
  }
  StepLine line{r, cfg_.stages.size(), cfg_.stages[size_t(st_.stage)].steps, st_.seq_len,
                st_.rope_theta, rate, model_->flops_per_token_fwd() * 3.0 * rate,
                left / std::max(tok_per_s_, 1e-9), peak_rss_mib(), MPI_Wtime() - started_};
  if (!opt_.quiet && (r.global_step % cfg_.run.log_every == 0 || r.stage_step == line.stage_steps))
    print_step_line(line);
  write_metrics(metrics_, line);
}

void Trainer::save(const std::string& path) {
  CheckpointIO io{&layout_, params_.data(), true, 0, layout_.total, master_.data(), m_.data(),
                  v_.data()};
  write_checkpoint(path, cfg_, io, st_, topo_.cart);
}

// Keeps the newest checkpoint.keep checkpoints, and always the one at the end of each stage.
static void prune_checkpoints(const Config& cfg) {
  std::vector<int64_t> ends;
  int64_t sum = 0;
  for (const auto& s : cfg.stages) ends.push_back(sum += s.steps);
  std::vector<std::pair<int64_t, fs::path>> found;
  for (const auto& e : fs::directory_iterator(cfg.checkpoint.dir)) {
    const std::string n = e.path().filename().string();
    if (n.size() == 15 && n.starts_with("ckpt_") && n.ends_with(".h5"))
      found.emplace_back(std::stoll(n.substr(5, 7)), e.path());
  }
  std::sort(found.rbegin(), found.rend());
  int64_t kept = 0;
  for (const auto& [step, path] : found) {
    if (std::find(ends.begin(), ends.end(), step) != ends.end()) continue;
    if (++kept > cfg.checkpoint.keep) fs::remove(path);
  }
}

// --fresh: the checkpoints and metrics of an earlier run of this deck go away.
static void remove_run_outputs(const Config& cfg) {
  std::error_code ec;
  if (fs::is_directory(cfg.checkpoint.dir, ec))
    for (const auto& e : fs::directory_iterator(cfg.checkpoint.dir)) {
      const std::string n = e.path().filename().string();
      if (n.starts_with("ckpt_") && (n.ends_with(".h5") || n.ends_with(".h5.tmp"))) fs::remove(e.path());
    }
  fs::remove(fs::path(cfg.run.out_dir) / "metrics.jsonl", ec);
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

int train_main(const std::string& deck, const std::vector<std::string>& overrides,
               const TrainOptions& opt) {
  const Config cfg = load_config(deck, overrides, MPI_COMM_WORLD);
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  if (rank == 0) log_info("resolved deck ({}):\n{}", deck, to_toml(cfg));
  Trainer t(cfg, MPI_COMM_WORLD, opt);
  t.run();
  return 0;
}

}  // namespace longctx
