// eval.cpp — the needle-in-a-haystack evaluation (eval.h).
#include "longctx/eval.h"

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>

#include "longctx/backend/cpu.h"
#include "longctx/backend/cuda.h"
#include "longctx/bf16.h"
#include "longctx/checkpoint.h"
#include "longctx/comm.h"
#include "longctx/common.h"
#include "longctx/data.h"
#include "longctx/log.h"
#include "longctx/model.h"
#include "longctx/needle_prompt.h"
#include "longctx/params.h"
#include "longctx/preflight.h"
#include "longctx/rng.h"
#include "longctx/comm_mpi.h"
#include "longctx/groups.h"
#include "longctx/memory.h"
#include "longctx/train.h"

namespace fs = std::filesystem;

namespace longctx {
namespace {

constexpr uint64_t kEvalSalt = 0x6e6565646c65ULL;  // "needle": eval samples never repeat training's

void check_options(const Config& cfg, const EvalOptions& opt, const std::vector<int64_t>& lengths,
                   NeedlePrompt& prompt) {
  // Every rank sees the same deck and options: these errors are raised alike (printed once).
  constexpr const char* kOpts = "longctx eval --help lists the options";
  CHECK_ALIKE(cfg.model.vocab_size >= prompt.vocab_size(),
              opt.tokenizer.empty() ? "the needle task is byte-level text" : "the tokenizer of the model's data",
              "eval: model.vocab_size = {} is below the {} tokens of the needle prompts ({})",
              cfg.model.vocab_size, prompt.vocab_size(), prompt.describe());
  CHECK_ALIKE(opt.samples >= 1, kOpts, "eval: --samples {} must be at least 1", opt.samples);
  CHECK_ALIKE(!opt.depths.empty(), kOpts, "eval: no depths given");
  for (double d : opt.depths) CHECK_ALIKE(d >= 0.0 && d <= 1.0, kOpts, "eval: depth {} is not in [0, 1]", d);
  CHECK_ALIKE(std::isfinite(opt.rope_theta) && opt.rope_theta >= 0.0, kOpts,
              "eval: --rope-theta {} must be a positive number (or 0: the checkpoint's)", opt.rope_theta);
  for (int64_t n : lengths) CHECK_ALIKE(n > 0, kOpts, "eval: length {} must be positive", n);
  const int64_t mult = seq_len_multiple(cfg.parallel);
  DataConfig d = cfg.data;
  d.needle_depth = 0.0;
  const int64_t min_len = prompt.min_len(d) - 1;  // a sample is length + 1 tokens
  for (int64_t n : lengths) {
    CHECK_ALIKE(n % mult == 0, "pick lengths the layout can cut, or another parallel layout",
                "eval: length {} is not a multiple of {}, which parallel.sp = {} (ring \"{}\") and "
                "parallel.tp = {} ({}) require", n, mult, cfg.parallel.sp, cfg.parallel.ring,
                cfg.parallel.tp, cfg.parallel.tp_mode);
    CHECK_ALIKE(n >= min_len, "longer lengths (--lengths), or fewer data.key_digits",
                "eval: length {} cannot hold the needle and the question (at least {} tokens "
                "with data.key_digits = {})", n, min_len, cfg.data.key_digits);
  }
}


// The evaluation proper, on backend B: the checkpoint's weights, a forward-only model, the cells.
template <class B>
NeedleReport eval_on(const Config& cfg, const ProcessGroups& groups, const EvalOptions& opt,
                     const std::vector<int64_t>& lengths, NeedlePrompt* prompt) {
  using Param = typename B::Param;
  const Grid& grid = groups.grid();
  std::unique_ptr<B> own;  // the backend the groups chose: this rank's CPU, or its GPU
  if constexpr (B::kHostMemory) own = std::make_unique<B>();
  else own = std::make_unique<B>(CudaOptions{groups.device().gpu, cfg.run.deterministic});
  const B& be = *own;
  const ProcessGroups::Comms comms = B::kHostMemory ? groups.host() : groups.device_comms();
  const ParamLayout layout = make_param_layout(cfg.model, grid.tp_rank, grid.tp);
  const ModelParallel par{comms.tp, comms.sp, cfg.parallel.tp_mode, cfg.parallel.ring};
  {  // the memory plan: the weights and the largest length's activations, before allocating (on
     // the CPU the forward's op scratch is a few tiles per thread, left out; the backward's is never
     // taken); on a GPU the ranks sharing it, with the op scratch
    Model<B> probe(be, cfg.model, layout, nullptr, nullptr, par);
    std::vector<size_t> bytes;
    std::vector<std::string> names;
    size_t arena = 0, scratch = 0;  // neither shrinks: a length holds the largest before it
    for (int64_t n : lengths) {
      arena = std::max(arena, probe.arena_bytes(1, n));
      if constexpr (!B::kHostMemory) scratch = std::max(scratch, probe.op_scratch_bytes(1, n));
      bytes.push_back(arena + scratch), names.push_back(fmt::format("length {}", n));
    }
    const MemoryPool pool = B::kHostMemory ? host_pool(groups) : MemoryPool{&groups.gpu_peers(), "GPU", groups.device().gpu};
    check_memory_fits(groups, pool, StateBytes{Arena::round_up(size_t(layout.total) * sizeof(Param)), 0, 0}, bytes,
                      names, "eval");
  }
  // The weights: read as fp32 on the host (on a GPU then rounded to bf16, as training's parameters
  // are from their fp32 master, and uploaded once).
  std::vector<float> host(size_t(layout.total));
  typename B::Memory dev;
  Param* params = nullptr;
  if constexpr (B::kHostMemory) params = host.data();
  else dev = be.alloc(size_t(layout.total) * sizeof(Param)), params = static_cast<Param*>(dev.get());
  Model<B> model(be, cfg.model, layout, params, nullptr, par);  // forward only: no gradients

  // Rank 0 picks the file (as train --resume does) and every rank reads its blocks of it.
  std::string path = opt.checkpoint;
  if (grid.world_rank == 0 && path.empty()) path = latest_checkpoint(cfg.checkpoint.dir);
  path = broadcast_string(path, groups.mpi_all());
  CHECK_ALIKE(!path.empty(), "train first, or name a file with --checkpoint",
              "eval: no checkpoint in {}", cfg.checkpoint.dir);
  CheckpointIO io;
  io.layout = &layout, io.params = host.data();
  const TrainState st = read_checkpoint(path, cfg, io, /*with_optimizer=*/false, groups.mpi_all());
  if constexpr (!B::kHostMemory) {
    std::vector<bf16> b(host.size());
    for (size_t i = 0; i < host.size(); ++i) b[i] = bf16{bf16_bits(host[i])};
    be.upload(Tensor<bf16>(params, {layout.total}), b.data());
    std::vector<float>().swap(host);
  }

  NeedleReport rep;
  rep.checkpoint = path, rep.global_step = st.global_step;
  rep.stage = st.stage + 1, rep.checkpoint_theta = st.rope_theta;
  rep.rope_theta = opt.rope_theta > 0.0 ? opt.rope_theta : st.rope_theta;
  if (!opt.quiet && grid.world_rank == 0) {
    std::string head = fmt::format("{:>9}", "length");
    for (double d : opt.depths) head += fmt::format(" {:>7}", fmt::format("d={:.2g}", d));
    log_info("needle-in-a-haystack: {} (step {}), rope_theta {:g}, {} samples per cell\n"
             "retrieved = every key digit is the top-1 prediction; digits = digits right; nll = nats "
             "per key digit; tokens = all tokens right\n{}  | {:>6}  {:>7}  {:>8}  {:>7}",
             path, rep.global_step, rep.rope_theta, opt.samples, head, "all", "digits", "nll", "tokens");
  }
  const bool counts = grid.tp_rank == 0 && grid.sp_rank == 0;  // one rank of each replica tallies
  const uint64_t seed = hash64(cfg.run.seed, kEvalSalt);
  std::vector<int32_t> sample, tokens, targets;
  std::vector<uint8_t> top1;
  std::vector<float> loss;
  for (int64_t n : lengths) {
    model.configure(1, n, rep.rope_theta);
    const std::vector<int64_t> pos = model.seq().positions();
    const size_t Tl = size_t(model.seq().T_loc);
    sample.resize(size_t(n + 1)), tokens.resize(Tl), targets.resize(Tl), top1.resize(Tl), loss.resize(Tl);
    for (double depth : opt.depths) {
      DataConfig d = cfg.data;
      d.needle_depth = depth;
      // Samples are a function of (length, depth, index): the same cell draws the same samples
      // whatever else the command line asks for.
      const int64_t cell = int64_t(hash64(uint64_t(n), std::bit_cast<uint64_t>(depth)) >> 1);
      std::vector<double> tally(7, 0.0);  // samples, retrieved, digits, right, nll, tokens, right
      for (int64_t i = grid.dp_rank; i < opt.samples; i += grid.dp) {
        const NeedleInfo info = prompt->make(d, seed, cell, i, n + 1, sample.data());
        const int64_t k = int64_t(info.answer.size());  // the answer's tokens are scored
        for (int64_t j = 0; j < k; ++j)  // on every rank, before any collective
          CHECK(sample[size_t(info.answer_pos + j)] == info.answer[size_t(j)],
                "eval: the answer at position {} is not the key (generator and eval disagree)", info.answer_pos + j);
        for (size_t t = 0; t < Tl; ++t) {  // every position predicts the next token
          const int64_t p = pos[t];
          tokens[t] = sample[size_t(p)], targets[t] = sample[size_t(p + 1)];
        }
        model.forward(tokens.data(), targets.data(), RowStats{top1.data(), loss.data()});
        double s[5] = {};  // key digits: right, seen, nll; all tokens: right, seen
        for (size_t t = 0; t < Tl; ++t) {
          const int64_t next = pos[t] + 1;
          if (next >= info.answer_pos && next < info.answer_pos + k) s[0] += top1[t], s[1] += 1, s[2] += loss[t];
          s[3] += top1[t], s[4] += 1;
        }
        groups.sp().all_reduce_sum(s, 5);  // the answer may straddle sequence-parallel ranks (host group)
        CHECK(int64_t(s[1]) == k, "eval: {} answer digits found in a sample, expected {}", s[1], k);
        if (counts) {
          tally[0] += 1, tally[1] += s[0] == double(k), tally[2] += double(k), tally[3] += s[0];
          tally[4] += s[2], tally[5] += s[4], tally[6] += s[3];
        }
      }
      groups.all().all_reduce_sum(tally.data(), 7);
      NeedleCell c;
      c.length = n, c.depth = depth, c.samples = int64_t(tally[0]), c.retrieved = int64_t(tally[1]);
      c.digits = int64_t(tally[2]), c.digits_right = int64_t(tally[3]), c.digit_nll = tally[4];
      c.tokens = int64_t(tally[5]), c.tokens_right = int64_t(tally[6]);
      rep.cells.push_back(c);
    }
    if (!opt.quiet && grid.world_rank == 0) {
      std::string line = fmt::format("{:>9}", n);
      NeedleCell sum;
      for (auto c = rep.cells.end() - int64_t(opt.depths.size()); c != rep.cells.end(); ++c) {
        line += fmt::format(" {:>6.0f}%", 100.0 * double(c->retrieved) / double(c->samples));
        sum.retrieved += c->retrieved, sum.samples += c->samples, sum.digits_right += c->digits_right;
        sum.digits += c->digits, sum.digit_nll += c->digit_nll, sum.tokens += c->tokens;
        sum.tokens_right += c->tokens_right;
      }
      log_info("{}  | {:>5.0f}%  {:>6.1f}%  {:>8.3f}  {:>6.1f}%", line,
               100.0 * double(sum.retrieved) / double(sum.samples),
               100.0 * double(sum.digits_right) / double(sum.digits), sum.digit_nll / double(sum.digits),
               100.0 * double(sum.tokens_right) / double(sum.tokens));
    }
  }
  return rep;
}

}  // namespace

NeedleReport needle_eval(const Config& cfg_in, MPI_Comm world, const EvalOptions& opt_in) {
  Config cfg = cfg_in;
  cfg.model.recompute = true;  // forward only: one layer's activations at a time, whatever the length
  EvalOptions opt = opt_in;  // what the command line leaves out, the deck's [eval] gives
  if (opt.lengths.empty()) opt.lengths = cfg.eval.lengths;
  if (opt.depths.empty()) opt.depths = cfg.eval.depths;
  if (opt.samples == 0) opt.samples = cfg.eval.samples;
  std::vector<int64_t> lengths = opt.lengths;
  if (lengths.empty())
    for (const auto& s : cfg.stages)
      if (std::find(lengths.begin(), lengths.end(), s.seq_len) == lengths.end()) lengths.push_back(s.seq_len);
  const std::unique_ptr<NeedlePrompt> prompt = raised_alike([&] { return NeedlePrompt::create(opt.tokenizer); });
  check_options(cfg, opt, lengths, *prompt);

  const ProcessGroups groups(cfg, world);
  const Grid& grid = groups.grid();
  preflight_outputs(eval_outputs(cfg), groups.mpi_all());  // the results file writable before any work
  set_threads(cfg, grid.world_size);
#if defined(LONGCTX_CUDA)
  if (groups.device().device == Device::cuda) return eval_on<Cuda>(cfg, groups, opt, lengths, prompt.get());
#endif
  return eval_on<Cpu>(cfg, groups, opt, lengths, prompt.get());
}

int eval_main(const std::string& deck, const std::vector<std::string>& overrides, const EvalOptions& opt) {
  const Config cfg = load_config(deck, overrides, MPI_COMM_WORLD);
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  NeedleReport rep;
  try {
    rep = needle_eval(cfg, MPI_COMM_WORLD, opt);
  } catch (const std::exception& e) {  // any exception, not only Error, ends every rank with its cause
    abort_job(e);
  }
  if (rank != 0) return 0;
  const std::string png = write_needle_results(cfg, rep, "eval");
  log_info("results appended to {}; heatmap {}", (fs::path(cfg.run.out_dir) / "needle_eval.jsonl").string(), png);
  return 0;
}

}  // namespace longctx
