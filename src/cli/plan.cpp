// plan.cpp — `longctx plan DECK` (plan.h): the memory plan of every rank of each of the deck's layouts,
// counted in one process as each rank's StepEngine counts it before allocating, per stage and per
// backend, with node and GPU totals and the verdict train would reach.
#include "longctx/plan.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include "longctx/backend/cuda.h"
#include "longctx/common.h"
#include "longctx/log.h"
#include "longctx/memory.h"
#include "longctx/params.h"

namespace longctx {

namespace {

struct Verdict {
  bool known = false, fits = true;
  std::string text;  // what to print
};

// The pools (nodes, GPUs) are runs of `per` consecutive ranks, as mpirun places them by slot.
// Follows check_memory_fits: the first check (state alone, then state + each stage) that fails on
// some pool, the figures of the pool that misses it by the most, and the same message.
Verdict judge(const std::vector<RankNeed>& ranks, int64_t per, double avail, const std::string& from,
              const char* pool_name, const Config& cfg, size_t first) {
  const size_t S = cfg.stages.size(), R = ranks.size(), P = (R + size_t(per) - 1) / size_t(per);
  std::vector<std::vector<double>> need(P, std::vector<double>(S + 1, 0.0));
  for (size_t r = 0; r < R; ++r) {
    const double st = double(ranks[r].state.total());
    need[r / size_t(per)][0] += st;
    for (size_t i = 0; i < S; ++i) need[r / size_t(per)][i + 1] += st + double(ranks[r].peaks[i]);
  }
  double top = 0.0;
  for (const auto& n : need) top = std::max(top, *std::max_element(n.begin(), n.end()));
  Verdict v;
  const std::string pool = fmt::format("{} ({} rank{})", pool_name, std::min<int64_t>(per, int64_t(R)),
                                       per == 1 ? "" : "s");
  if (avail < 0) {
    v.text = fmt::format("{} memory unknown ({}): not checked; the largest {} needs {}", pool_name, from, pool,
                         format_bytes(top));
    return v;
  }
  v.known = true;
  size_t k = S + 1;
  for (size_t c = 0; c <= S && k > S; ++c)
    for (const auto& n : need)
      if (n[c] > avail) {
        k = c;
        break;
      }
  if (k > S) {
    v.text = fmt::format("fits: the largest {} needs {} of {} available ({}, {:.0f}%)", pool, format_bytes(top),
                         format_bytes(avail), from, 100.0 * top / avail);
    return v;
  }
  size_t worst = 0;
  for (size_t p = 1; p < P; ++p)
    if (need[p][k] - avail > need[worst][k] - avail) worst = p;
  StateBytes largest;
  double act = 0.0;
  for (const RankNeed& r : ranks) {
    largest.params = std::max(largest.params, r.state.params), largest.grads = std::max(largest.grads, r.state.grads);
    largest.optimizer = std::max(largest.optimizer, r.state.optimizer);
    if (k > 0) act = std::max(act, double(r.peaks[k - 1]));
  }
  const int in_pool = int(std::min<size_t>(size_t(per), R - worst * size_t(per)));
  const MemoryRefusal m = memory_refusal("train", pool_name, k == 0 ? "" : stage_names(cfg, first)[k - 1], need[worst][k],
                                         avail, in_pool, from, largest, act, &cfg.model);
  v.fits = false;
  v.text = fmt::format("DOES NOT FIT (train refuses it):\n  {}\n  hint: {}", m.message, m.hint);
  return v;
}

// The breakdown of one backend: the largest rank's figures per stage, the pool totals, the verdict.
// cfg holds the stages of one layout, the first of them the deck's stage first + 1.
Verdict report(PlanBackend b, const Config& cfg, size_t first, int64_t per, double avail, const std::string& from,
               const char* pool_name) {
  const ParallelConfig& p = cfg.parallel;
  const int64_t world = p.dp * p.sp * p.tp;
  std::vector<RankNeed> ranks;
  size_t big = 0;
  for (int64_t r = 0; r < world; ++r) {  // the grid's order: tp fastest, then sp, then dp
    const int tp_r = int(r % p.tp), sp_r = int(r / p.tp % p.sp), dp_r = int(r / (p.tp * p.sp));
    ranks.push_back(count_rank(b, cfg, tp_r, sp_r, int(dp_r * p.sp + sp_r)));
    auto total = [&](size_t i) { return ranks[i].state.total() + (ranks[i].peaks.empty() ? 0 : ranks[i].peaks.back()); };
    if (total(size_t(r)) > total(big)) big = size_t(r);
  }
  const RankNeed& w = ranks[big];
  std::string out = fmt::format(
      "\n{} backend, per rank: the largest, rank {} (tp rank {}, sp rank {}, dp·sp shard {}); the ranks of a layout "
      "differ only by their tp and dp·sp shard sizes\n", describe(b), big, w.tp_rank, w.sp_rank, w.dpsp_rank);
  out += fmt::format("  parameters {} | gradients {} | optimizer shard {} (master, m, v{}) | state {}\n",
                     format_bytes(double(w.state.params)), format_bytes(double(w.state.grads)),
                     format_bytes(double(w.state.optimizer)),
                     p.dp * p.sp > 1 ? ", reduced gradient" : "; the gradients are the reduced shard",
                     format_bytes(double(w.state.total())));
  const char* other = cfg.model.recompute ? "no recompute" : "recompute";
  out += fmt::format("  {:>5} {:>12} {:>12} {:>14} {:>12} {:>10} {:>11} {:>11} {:>13}\n", "stage", "seq_len×mb",
                     "activations", fmt::format("({})", other), "ring K/V,dKV", "LM head", "op scratch", "rank peak",
                     fmt::format("{} peak", pool_name));
  for (size_t i = 0; i < cfg.stages.size(); ++i) {
    const StageNeed& n = w.stages[i];
    double pool_peak = 0.0;
    for (size_t q = 0; q < ranks.size(); q += size_t(per)) {
      double sum = 0.0;
      for (size_t r = q; r < std::min(ranks.size(), q + size_t(per)); ++r)
        sum += double(ranks[r].state.total() + ranks[r].peaks[i]);
      pool_peak = std::max(pool_peak, sum);
    }
    out += fmt::format("  {:>5} {:>12} {:>12} {:>14} {:>12} {:>10} {:>11} {:>11} {:>13}\n", first + i + 1,
                       fmt::format("{}×{}", cfg.stages[i].seq_len, cfg.stages[i].micro_batch),
                       format_bytes(double(n.activations)), format_bytes(double(n.activations_other)),
                       format_bytes(double(n.ring)), format_bytes(double(n.head)), format_bytes(double(n.scratch)),
                       format_bytes(double(w.state.total() + w.peaks[i])), format_bytes(pool_peak));
  }
  out += "  (peak: the state plus the largest arena and op scratch of the stages so far: neither shrinks)\n";
  Verdict v = judge(ranks, per, avail, from, pool_name, cfg, first);
  v.text = out + "  " + pool_name + ": " + v.text + "\n";
  return v;
}


// The deck's stages in runs of one process grid (each run is one job: `longctx stages` writes one
// per stage), as configs of their own: [parallel] set to the run's layout, only its stages.
struct LayoutGroup {
  size_t first = 0;  // the deck's index of the group's first stage
  Config cfg;
};
std::vector<LayoutGroup> layout_groups(const Config& deck) {
  std::vector<LayoutGroup> groups;
  for (size_t i = 0; i < deck.stages.size(); ++i) {
    const ParallelConfig p = deck.stage_layout(i);
    if (groups.empty() || !same_grid(groups.back().cfg.parallel, p)) {
      LayoutGroup g{i, deck};
      g.cfg.parallel = p, g.cfg.stages.clear();
      groups.push_back(std::move(g));
    }
    groups.back().cfg.stages.push_back(deck.stages[i]);
  }
  return groups;
}

std::string describe_layout(const ParallelConfig& p) {
  return fmt::format("{} ranks: dp {} × sp {} × tp {} (tp_mode {})", p.dp * p.sp * p.tp, p.dp, p.sp, p.tp,
                     to_string(p.tp_mode));
}

}  // namespace

int plan_main(const std::string& deck, const std::vector<std::string>& overrides, const PlanOptions& opt) {
  int size = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  CHECK_ALIKE(size == 1, "run `longctx plan DECK` as one process, without mpirun: it counts every rank itself",
              "plan: started as {} MPI ranks; it computes every rank of the deck's layout in one process", size);
  const Config cfg = load_config(deck, overrides, MPI_COMM_WORLD);
  CHECK_HINT(opt.ranks_per_gpu >= 1, "--ranks-per-gpu N, N >= 1", "plan: --ranks-per-gpu {}", opt.ranks_per_gpu);
  const std::vector<LayoutGroup> groups = layout_groups(cfg);
  const int64_t n_params = make_param_layout(cfg.model).total;
  // Ranks per node: as given, else as `longctx stages` places them (8 for "cuda" runs: one per GPU).
  const bool cuda_run = cfg.run.device == Device::cuda;
  const int64_t ranks_per_node = opt.ranks_per_node > 0 ? opt.ranks_per_node : cuda_run ? 8 : 0;
  const std::string per_node_text = opt.ranks_per_node > 0 ? fmt::format("{} ranks per node", opt.ranks_per_node)
                                    : cuda_run ? std::string("8 ranks per node (one per GPU; --ranks-per-node N)")
                                               : std::string("every rank on one node");
  if (groups.size() == 1)
    std::printf("plan: %s | %s | %lld parameters | %s, %lld per GPU\n", deck.c_str(),
                describe_layout(cfg.parallel).c_str(), (long long)n_params, per_node_text.c_str(),
                (long long)opt.ranks_per_gpu);
  else
    std::printf("plan: %s | %lld parameters | %zu layouts, one batch job each (`longctx stages` writes them) | %s, "
                "%lld per GPU\n", deck.c_str(), (long long)n_params, groups.size(), per_node_text.c_str(),
                (long long)opt.ranks_per_gpu);

  std::string host_from = "--memory";
  double host = double(opt.memory);
  if (opt.memory < 0) host = double(available_memory(&host_from)), host_from += " of this machine";
  const bool gpu_built = plan_backend_available(PlanBackend::cuda);
  std::string gpu_from = "--gpu-memory";
  double dev = double(opt.gpu_memory);
  if (gpu_built && opt.gpu_memory < 0 && (std::getenv("LONGCTX_GPU_MEMORY") || cuda_device_count() > 0))
    dev = double(available_gpu_memory(0, &gpu_from)), gpu_from += " (device 0)";
  else if (opt.gpu_memory < 0)
    gpu_from = "no --gpu-memory and no GPU here";

  // Per layout, both backends; the verdict is that of the backend the run would use: run.device,
  // or for "auto" the GPU when its memory is known (given, or a GPU here) and its kernels take the
  // model, else the CPU.
  const bool on_gpu = cfg.run.device == Device::cuda ||
                      (cfg.run.device == Device::automatic && gpu_built && dev >= 0 &&
                       cuda_supports_head_size(cfg.model.head_size()));
  bool known = true, fits = true;
  std::string failed;  // the stages whose layout does not fit
  for (const LayoutGroup& g : groups) {
    const Config& c = g.cfg;
    const int64_t world = c.parallel.dp * c.parallel.sp * c.parallel.tp;
    const int64_t per_node = ranks_per_node > 0 ? std::min(ranks_per_node, world) : world;
    const std::string stages = c.stages.size() == 1 ? fmt::format("stage {}", g.first + 1)
                                                    : fmt::format("stages {}-{}", g.first + 1, g.first + c.stages.size());
    if (groups.size() > 1) std::printf("\n== %s | %s\n", stages.c_str(), describe_layout(c.parallel).c_str());
    const Verdict cpu = report(PlanBackend::cpu, c, g.first, per_node, host, host_from, "node");
    std::fputs(cpu.text.c_str(), stdout);
    Verdict gpu;
    if (gpu_built) {
      gpu = report(PlanBackend::cuda, c, g.first, std::min(opt.ranks_per_gpu, world), dev, gpu_from, "GPU");
      std::fputs(gpu.text.c_str(), stdout);
    }
    const Verdict& used = on_gpu ? gpu : cpu;
    known = known && used.known;
    if (used.known && !used.fits) fits = false, failed += (failed.empty() ? "" : ", ") + stages;
  }
  if (!gpu_built) std::printf("\nGPU (bf16) backend: not in this build (make with CUDA=1): not planned\n");
  else if (!cuda_supports_head_size(cfg.model.head_size()))
    std::printf("  (the GPU kernels take head sizes 64 and 128; this model's is %lld: run.device = \"auto\" "
                "trains it on the CPU)\n", (long long)cfg.model.head_size());
  std::printf("\nverdict (%s backend, run.device = \"%s\"): %s\n", on_gpu ? "GPU" : "CPU",
              std::string(to_string(cfg.run.device)).c_str(),
              !fits ? fmt::format("does not fit ({})", failed).c_str()
                    : known ? "fits" : "memory unknown: not checked");
  std::fflush(stdout);
  return fits ? 0 : 1;
}

}  // namespace longctx
