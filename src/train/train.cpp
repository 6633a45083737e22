// train.cpp — the training driver (see train.h): one optimizer step is batch_accum micro-batches of
// forward+backward, the gradient reduced over dp×sp into ZeRO-1 shards and normalised by the
// number of target tokens, clipped, then AdamW on the shard and the parameters all-gathered.
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
#include "longctx/optim.h"

namespace fs = std::filesystem;

namespace longctx {

void set_threads(const Config& cfg, int world_size) {
  int n = cfg.run.threads;
  if (n == 0) n = world_size > 1 ? 1 : int(std::max(1u, std::thread::hardware_concurrency()));
  openblas_set_num_threads(n);
  omp_set_num_threads(n);
}

Trainer::Trainer(const Config& cfg, MPI_Comm world, const TrainOptions& opt)
    : cfg_(cfg), opt_(opt), topo_(Topology::create(cfg, world)) {
  set_threads(cfg_, topo_.world_size);
  CHECK_HINT(opt_.stop_after_stage <= int64_t(cfg_.stages.size()), "stages count from 1",
             "{}: --stop-after-stage {}, but the deck has {} stage(s)", cfg_.deck_path,
             opt_.stop_after_stage, cfg_.stages.size());
  tp_ = std::make_unique<MpiComm>(topo_.tp_comm);
  sp_ = std::make_unique<MpiComm>(topo_.sp_comm);
  dpsp_ = std::make_unique<MpiComm>(topo_.dpsp_comm);
  world_ = std::make_unique<MpiComm>(topo_.cart);
  layout_ = make_param_layout(cfg_.model, topo_.tp_rank, topo_.tp);
  const int64_t D = dpsp_->size();
  shard_n_ = (layout_.total + D - 1) / D;
  shard_lo_ = std::min(layout_.total, dpsp_->rank() * shard_n_);
  shard_hi_ = std::min(layout_.total, shard_lo_ + shard_n_);
  params_.assign(size_t(D * shard_n_), 0.0f), grads_.assign(params_.size(), 0.0f);
  for (auto* v : {&master_, &m_, &v_, &gshard_}) v->assign(size_t(shard_n_), 0.0f);
  data_ = open_data(cfg_);
  st_.seed = cfg_.run.seed;
  if (const char* f = std::getenv("LONGCTX_FAIL_AT"))  // "rank:step", a test hook
    CHECK(std::sscanf(f, "%ld:%ld", &fail_rank_, &fail_step_) == 2, "LONGCTX_FAIL_AT='{}': expected rank:step", f);

  const bool root = topo_.world_rank == 0;
  // Rank 0 alone looks at the checkpoint directory and tells the others (on a shared file system
  // other nodes may see a stale listing): every rank then reads the same file, or none.
  std::string from;
  if (root) {
    if (opt_.fresh) remove_run_outputs(cfg_);
    from = latest_checkpoint(cfg_.checkpoint.dir);
  }
  from = broadcast_string(from, topo_.cart);
  CHECK_HINT(opt_.resume || from.empty(),
             "pass --resume to continue that run, or --fresh to delete its checkpoints and metrics",
             "{} already holds checkpoints of a run ({})", cfg_.checkpoint.dir, from);
  CheckpointIO io = checkpoint_io();
  if (!from.empty()) {
    st_ = read_checkpoint(from, cfg_, io, /*with_optimizer=*/true, topo_.cart);
    CHECK_HINT(st_.stage < int64_t(cfg_.stages.size()), "resume with the deck that wrote it",
               "{}: checkpoint {} is in stage {}, but the deck has {} stage(s)", cfg_.deck_path,
               from, st_.stage + 1, cfg_.stages.size());
    // The data of every step is drawn from the seed: another seed would not continue the run.
    CHECK_HINT(st_.seed == cfg_.run.seed, "resume with the seed the run started with",
               "{}: checkpoint {} was written with run.seed = {}, the deck has {}", cfg_.deck_path,
               from, st_.seed, cfg_.run.seed);
  } else if (!cfg_.checkpoint.init_from.empty()) {
    const TrainState src = read_checkpoint(cfg_.checkpoint.init_from, cfg_, io, false, topo_.cart);
    std::copy(params_.begin() + shard_lo_, params_.begin() + shard_hi_, master_.begin());
    if (root)
      log_info("initialised from {} (global step {}, seq_len {}, rope_theta {:g}); fresh optimizer",
               cfg_.checkpoint.init_from, src.global_step, src.seq_len, src.rope_theta);
  } else {
    init_params(cfg_.model, layout_, cfg_.run.seed, params_.data());
    std::copy(params_.begin() + shard_lo_, params_.begin() + shard_hi_, master_.begin());
  }
  adamw_ = std::make_unique<AdamW>(cfg_.optim, layout_, shard_lo_, shard_hi_);
  const ModelParallel par{tp_.get(), sp_.get(), cfg_.parallel.tp_mode == TpMode::reduce_scatter,
                          cfg_.parallel.ring == Ring::zigzag};
  model_ = std::make_unique<Model>(cfg_.model, layout_, params_.data(), grads_.data(), par);
  if (cfg_.model.n_kv_heads < topo_.tp) {  // K/V heads replicated over the tp ranks sharing one
    const TpShard s = tp_shard(cfg_.model, topo_.tp_rank, topo_.tp);
    MPI_Comm_split(topo_.tp_comm, int(s.kv_head0), topo_.tp_rank, &kv_group_mpi_);
    kv_group_ = std::make_unique<MpiComm>(kv_group_mpi_);
    for (const auto& t : layout_.tensors)
      if (t.name.ends_with("/wk") || t.name.ends_with("/wv")) kv_blocks_.push_back({t.offset, t.numel});
  }

  if (root) {
    fs::create_directories(cfg_.run.out_dir);
    const std::string metrics = (fs::path(cfg_.run.out_dir) / "metrics.jsonl").string();
    metrics_ = open_metrics(metrics, from.empty() ? -1 : st_.global_step);
    if (!opt_.quiet) {
      log_info("longctx {} | {} | {} parameters ({} on this rank, ZeRO-1 shard {}) | data: {}",
               kVersion, topo_.describe(), make_param_layout(cfg_.model).total, layout_.total,
               shard_n_, data_->describe());
      if (from.empty()) log_info("starting a new run in {}", cfg_.run.out_dir);
      else log_info("resuming {} from {}", cfg_.run.out_dir, from);
    }
  }
  started_ = MPI_Wtime();
}

Trainer::~Trainer() {
  if (metrics_) std::fclose(metrics_);
  model_.reset();
  tp_.reset(), sp_.reset(), dpsp_.reset(), world_.reset(), kv_group_.reset();
  if (kv_group_mpi_ != MPI_COMM_NULL) MPI_Comm_free(&kv_group_mpi_);
  topo_.free();
}

void Trainer::start_stage() {
  const StageConfig& s = cfg_.stages[size_t(st_.stage)];
  model_->configure(s.micro_batch, s.seq_len, s.rope_theta);
  positions_ = model_->seq().positions();
  const int64_t Tl = model_->seq().T_loc;
  sample_.resize(size_t(s.seq_len + 1));
  tokens_.resize(size_t(s.micro_batch * Tl));
  targets_.resize(tokens_.size());
  configured_stage_ = st_.stage;
  st_.seq_len = s.seq_len, st_.rope_theta = s.rope_theta;
  if (topo_.world_rank == 0 && !opt_.quiet)
    log_info("stage {}/{}: seq_len {} rope_theta {:g} steps {} batch {}×{}×{} | {} tokens "
             "of each sequence on a rank | activations {:.1f} MiB",
             st_.stage + 1, cfg_.stages.size(), s.seq_len, s.rope_theta, s.steps, topo_.dp,
             s.batch_accum, s.micro_batch, Tl, double(model_->activation_bytes()) / (1 << 20));
}

LossSum Trainer::accumulate_gradient() {
  if (configured_stage_ != st_.stage) start_stage();
  const StageConfig& s = cfg_.stages[size_t(st_.stage)];
  if (st_.global_step + 1 == fail_step_ && topo_.world_rank == fail_rank_)
    FAIL_ERROR("injected failure on rank {} at step {} (LONGCTX_FAIL_AT)", fail_rank_, fail_step_);
  const int64_t Tl = model_->seq().T_loc;
  std::fill(grads_.begin(), grads_.end(), 0.0f);
  LossSum tot;
  for (int64_t a = 0; a < s.batch_accum; ++a) {
    for (int64_t b = 0; b < s.micro_batch; ++b) {  // sample index in the step's global batch
      const int64_t g = (topo_.dp_rank * s.batch_accum + a) * s.micro_batch + b;
      data_->sample(st_.global_step, g, s.seq_len + 1, sample_.data());
      for (int64_t t = 0; t < Tl; ++t) {
        tokens_[size_t(b * Tl + t)] = sample_[size_t(positions_[size_t(t)])];
        targets_[size_t(b * Tl + t)] = sample_[size_t(positions_[size_t(t)] + 1)];
      }
    }
    const LossSum r = model_->forward_backward(tokens_.data(), targets_.data());
    tot.sum += r.sum, tot.count += r.count;
  }
  // Tensor-parallel fix-ups: blocks held by several tp ranks get the sum of their partials.
  if (model_->norm_grads_partial())
    for (const auto& t : layout_.tensors)
      if (t.is_norm) tp_->all_reduce_sum(grads_.data() + t.offset, t.numel);
  // Replicated K/V heads: each replica added its own query heads' part; sum over the replicas.
  for (const auto& [offset, n] : kv_blocks_) kv_group_->all_reduce_sum(grads_.data() + offset, n);
  // Data and sequence parallel: sum over dp×sp, each rank keeping its ZeRO-1 shard.
  dpsp_->reduce_scatter_sum(grads_.data(), gshard_.data(), shard_n_);
  double stats[2] = {tot.sum, double(tot.count)};
  dpsp_->all_reduce_sum(stats, 2);
  tot.sum = stats[0], tot.count = int64_t(stats[1]);
  CHECK(tot.count > 0, "step {}: no target tokens in the batch", st_.global_step + 1);
  const float inv = float(1.0 / double(tot.count));
  for (auto& g : gshard_) g *= inv;
  return tot;
}

double Trainer::compute_gradient() {
  const LossSum r = accumulate_gradient();
  return r.sum / double(r.count);
}

StepRecord Trainer::step() {
  const StageConfig& s = cfg_.stages[size_t(st_.stage)];
  const double t0 = MPI_Wtime();
  const LossSum tot = accumulate_gradient();
  // Global gradient norm: each logical element counted once (replicas skipped), summed everywhere.
  double ss = 0.0;
  for (const auto& t : layout_.tensors) {
    const int64_t b = std::max(shard_lo_, t.offset), e = std::min(shard_hi_, t.offset + t.numel);
    if (b < e && !t.replica) ss += sum_squares(gshard_.data() + (b - shard_lo_), e - b);
  }
  world_->all_reduce_sum(&ss, 1);
  const double gnorm = std::sqrt(ss);
  CHECK_HINT(std::isfinite(gnorm), "lower optim.lr or raise optim.warmup_steps",
             "step {}: the gradient norm is {} (loss {})", st_.global_step + 1, gnorm,
             tot.sum / double(tot.count));
  if (cfg_.optim.grad_clip > 0.0 && gnorm > cfg_.optim.grad_clip) {
    const float c = float(cfg_.optim.grad_clip / gnorm);
    for (auto& g : gshard_) g *= c;
  }
  const double lr = lr_at(cfg_.optim, st_.global_step, cfg_.total_steps());
  adamw_->step(master_.data(), gshard_.data(), m_.data(), v_.data(), lr, st_.global_step + 1);
  dpsp_->all_gather(master_.data(), params_.data(), shard_n_);

  st_.stage_step += 1, st_.global_step += 1;
  st_.tokens_seen += tot.count;
  st_.samples_seen += topo_.dp * s.batch_accum * s.micro_batch;
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
    left += double(steps) * double(topo_.dp) * double(s.batch_accum) * double(s.micro_batch) *
            double(s.seq_len) * double(s.seq_len) / double(cfg_.stages[size_t(st_.stage)].seq_len);
  }
  StepLine line{r, cfg_.stages.size(), cfg_.stages[size_t(st_.stage)].steps, st_.seq_len,
                st_.rope_theta, rate, model_->flops_per_token_fwd() * 3.0 * rate,
                left / std::max(tok_per_s_, 1e-9), peak_rss_mib(), MPI_Wtime() - started_};
  if (!opt_.quiet && (r.global_step % cfg_.run.log_every == 0 || r.stage_step == line.stage_steps))
    print_step_line(line);
  write_metrics(metrics_, line);
}

int train_main(const std::string& deck, const std::vector<std::string>& overrides,
               const TrainOptions& opt) {
  const Config cfg = load_config(deck, overrides, MPI_COMM_WORLD);
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  if (rank == 0) log_info("resolved deck ({}):\n{}", deck, to_toml(cfg));
  Trainer t(cfg, MPI_COMM_WORLD, opt);
  try {
    t.run();
  } catch (const Error& e) {
    // End the job from here, before ~Trainer frees communicators (collective in MPI) while the
    // other ranks wait in a collective of the step.
    abort_job(e);
  }
  return 0;
}

}  // namespace longctx
