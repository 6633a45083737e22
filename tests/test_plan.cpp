// test_plan.cpp — the memory plan (plan.h, `longctx plan`) against what training allocates: the
// arenas exactly (the same Arena passes count both), the peak RSS of a real run within a margin,
// and the refusal of a deck that does not fit, with the numbers train gives.
#include <mpi.h>

#include <cstring>
#include <fstream>
#include <regex>
#include <sstream>

#include "catch.h"
#include "longctx/config.h"
#include "longctx/engine.h"
#include "longctx/groups.h"
#include "longctx/plan.h"
#include "util.h"

using namespace longctx;
using namespace longctx::test;

namespace {

// Two stages whose second is shorter (the arena must not shrink) and a third longer one.
Config plan_deck(int dp, int tp, int sp, const char* tp_mode, bool recompute) {
  return parse_deck_text(fmt::format(R"(
[model]
vocab_size = 272
d_model = 32
n_layers = 2
n_heads = 4
n_kv_heads = 2
d_ff = 72
recompute = {}
[parallel]
dp = {}
tp = {}
sp = {}
tp_mode = "{}"
[[stage]]
seq_len = 256
rope_theta = 10000
steps = 1
micro_batch = 2
[[stage]]
seq_len = 128
rope_theta = 10000
steps = 1
[[stage]]
seq_len = 512
rope_theta = 40000
steps = 1
)", recompute ? "true" : "false", dp, tp, sp, tp_mode), "plan.toml");
}

// On this rank of `world`: the engine's model arena after each stage's configure() equals the
// plan's largest arena so far, for the rank's own grid coordinates. Returns the mismatches.
std::string compare_with_engine(const Config& cfg, MPI_Comm world) {
  const ProcessGroups g(cfg, world);
  const auto engine = StepEngine::create(cfg, g);  // its constructor checks the state arena against the plan
  const RankNeed need = count_rank(PlanBackend::cpu, cfg, g.grid().tp_rank, g.grid().sp_rank, g.dpsp().rank());
  std::string bad;
  size_t arena = 0;
  for (size_t i = 0; i < cfg.stages.size(); ++i) {
    const StageConfig& s = cfg.stages[i];
    engine->configure(s.micro_batch, s.seq_len, s.rope_theta);
    arena = std::max(arena, need.stages[i].arena());
    if (size_t(engine->activation_bytes()) != arena)
      bad += fmt::format("rank {} stage {}: model arena {} bytes, plan {}; ", g.grid().world_rank, i + 1,
                         engine->activation_bytes(), arena);
  }
  return bad;
}

}  // namespace

TEST_CASE("the plan's arenas are the ones one rank allocates, with and without recompute", "[plan]") {
  for (const bool rc : {false, true}) {
    const Config cfg = plan_deck(1, 1, 1, "all_reduce", rc);
    INFO("recompute " << rc);
    CHECK(compare_with_engine(cfg, MPI_COMM_SELF) == "");
    const RankNeed n = count_rank(PlanBackend::cpu, cfg, 0, 0, 0);
    // The backward's buffers are counted: a training arena is larger than activations alone
    // would be with recompute, and recompute shrinks the activations.
    CHECK(n.stages[0].activations_other != n.stages[0].activations);
    CHECK((n.stages[0].activations < n.stages[0].activations_other) == rc);
  }
}

TEST_CASE("the plan counts every rank of a layout as that rank allocates", "[mpi]") {
  int size = 0, rank = 0;
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  REQUIRE(size >= 8);
  struct L {
    int dp, tp, sp;
    const char* mode;
  };
  for (const L& l : {L{2, 2, 2, "reduce_scatter"}, L{1, 4, 2, "all_reduce"}, L{1, 2, 4, "reduce_scatter"}}) {
    for (const bool rc : {false, true}) {
      const Config cfg = plan_deck(l.dp, l.tp, l.sp, l.mode, rc);
      MPI_Comm sub;
      MPI_Comm_split(MPI_COMM_WORLD, rank < 8 ? 0 : MPI_UNDEFINED, rank, &sub);
      std::string bad = sub == MPI_COMM_NULL ? "" : compare_with_engine(cfg, sub);
      if (sub != MPI_COMM_NULL) MPI_Comm_free(&sub);
      int ok = bad.empty(), all = 0;
      MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
      INFO(l.dp << "x" << l.tp << "x" << l.sp << " " << l.mode << " recompute " << rc << ": " << bad);
      CHECK(all == 1);
    }
  }
}

TEST_CASE("plan refuses a 1M-token stage of an 8B model on 16 ranks of a small node, with train's numbers", "[e2e]") {
  // Llama-3-8B's shape on dp 1 × tp 8 × sp 2, all 16 ranks on one 64 GiB node.
  const std::string sets =
      " --set model.vocab_size=128256 --set model.d_model=4096 --set model.n_layers=32 --set model.n_heads=32"
      " --set model.n_kv_heads=8 --set model.d_ff=14336 --set parallel.tp=8 --set parallel.sp=2"
      " --set stage.1.seq_len=1048576 --set stage.2.seq_len=1048576 --set stage.1.micro_batch=1"
      " --set stage.2.micro_batch=1 --set run.device=cpu";
  std::string out;
  int rc = run_command(std::string(kBin) + " plan input/tiny.toml --memory 64G" + sets, &out);
  INFO(out);
  CHECK(rc != 0);
  CHECK(contains(out, "16 ranks: dp 1 × sp 2 × tp 8"));
  CHECK(contains(out, "DOES NOT FIT"));
  CHECK(contains(out, "train: the parameters, gradients and optimizer state do not fit: the 16 ranks of a node need"));
  CHECK(contains(out, "hint: raise parallel.tp"));
  // The activations alone, given enough memory for the state: the stage is named.
  rc = run_command(std::string(kBin) + " plan input/tiny.toml --memory 2T" + sets, &out);
  CHECK(rc != 0);
  CHECK(contains(out, "train: activations of stage 1 (seq_len 1048576, micro_batch 1) do not fit"));
  CHECK(contains(out, "set model.recompute = true"));
  // Under mpirun with more than one rank: refused on every rank, printed once, exit non-zero.
  rc = run_command(mpirun() + " -np 2 " + kBin + " plan input/tiny.toml", &out);
  CHECK(rc != 0);
  CHECK(contains(out, "plan: started as 2 MPI ranks"));
  // The same deck fits when the node is large enough, and plan exits 0.
  rc = run_command(std::string(kBin) + " plan input/tiny.toml --memory 64T --set model.recompute=true" + sets, &out);
  CHECK(rc == 0);
  CHECK(contains(out, "verdict (CPU backend, run.device = \"cpu\"): fits"));
}

TEST_CASE("the peak RSS of a real CPU run is within the stated margin of the plan", "[e2e]") {
  // The plan counts the arenas; the process holds more: the binary and its libraries, OpenBLAS's
  // per-thread GEMM buffers, Open MPI's shared-memory segments, HDF5's chunk cache while a
  // checkpoint is written, the allocator's own slack, the data sampler and the host copies of the
  // tokens. Those do not grow with the activations: measured 150-190 MiB on 2 cores (2026-12).
  // So: plan <= peak RSS <= plan + 320 MiB, and the growth of RSS between a small and a large
  // batch is the growth of the plan within 10% (the fixed part cancels).
  double rss[2] = {}, planned[2] = {};
  for (int k = 0; k < 2; ++k) {
    const std::string dir = temp_dir("plan-rss");
    const std::string sets = fmt::format(
        " --set run.out_dir={} --set run.threads=1 --set optim.warmup_steps=1 --set model.n_layers=2 --set stage.1.steps=1 --set stage.2.steps=1"
        " --set stage.1.micro_batch={} --set stage.2.micro_batch=1 --set stage.1.batch_accum=1 --set stage.2.batch_accum=1",
        dir, k == 0 ? 2 : 48);
    std::string out;
    REQUIRE(run_command(std::string(kBin) + " train input/tiny.toml --fresh" + sets, &out) == 0);
    std::ifstream m(dir + "/metrics.jsonl");
    std::string line;
    while (std::getline(m, line)) {
      const size_t at = line.find("\"peak_rss_mib\":");
      if (at != std::string::npos) rss[k] = std::max(rss[k], std::stod(line.substr(at + 15)) * 1048576.0);
    }
    std::vector<std::string> ov;
    std::istringstream ss(sets);
    for (std::string w; ss >> w;)
      if (w != "--set") ov.push_back(w);
    const Config cfg = parse_deck("input/tiny.toml", ov);
    const RankNeed n = count_rank(PlanBackend::cpu, cfg, 0, 0, 0);
    planned[k] = double(n.state.total() + n.peaks.back());
  }
  INFO("peak RSS " << rss[0] / 1048576 << " and " << rss[1] / 1048576 << " MiB, plan " << planned[0] / 1048576
                   << " and " << planned[1] / 1048576 << " MiB");
  for (int k = 0; k < 2; ++k) {
    CHECK(rss[k] >= planned[k]);
    CHECK(rss[k] <= planned[k] + 320.0 * 1048576);
  }
  const double grow_rss = rss[1] - rss[0], grow_plan = planned[1] - planned[0];
  CHECK(grow_plan > 200.0 * 1048576);  // the large batch is large enough to tell
  CHECK(std::abs(grow_rss - grow_plan) <= 0.10 * grow_plan);
}

TEST_CASE("plan counts a deck whose stages change the layout per layout, and names the stage that does not fit", "[e2e]") {
  // tiny.toml's stage 2 on sp 2 (the way `longctx stages` runs it: a job of its own), then at
  // 16M tokens, which 64 MiB cannot hold while stage 1 fits.
  const std::string sets = " --set run.device=cpu --set stage.2.sp=2";
  std::string out;
  int rc = run_command(std::string(kBin) + " plan input/tiny.toml --memory 64T" + sets, &out);
  INFO(out);
  CHECK(rc == 0);
  CHECK(contains(out, "2 layouts, one batch job each"));
  CHECK(contains(out, "== stage 1 | 1 ranks: dp 1 × sp 1 × tp 1"));
  CHECK(contains(out, "== stage 2 | 2 ranks: dp 1 × sp 2 × tp 1"));
  CHECK(contains(out, "      2       1024×2"));  // stage 2's row keeps its deck number
  CHECK(contains(out, "verdict (CPU backend, run.device = \"cpu\"): fits"));
  rc = run_command(std::string(kBin) + " plan input/tiny.toml --memory 1G --set stage.2.seq_len=16777216" + sets, &out);
  INFO(out);
  CHECK(rc != 0);
  CHECK(contains(out, "train: activations of stage 2 (seq_len 16777216, micro_batch 2) do not fit"));
  CHECK(contains(out, "verdict (CPU backend, run.device = \"cpu\"): does not fit (stage 2)"));
}

// The shipped schedule (input/llama3_8b_1m.toml, run.device = "cuda", 8 ranks per node as
// `longctx stages` places them): refused on GPUs too small for it and on a CPU node too small,
// with the numbers; accepted on 139 GiB GPUs.
TEST_CASE("plan refuses the shipped Llama-3-8B 1M deck on a machine too small for it, with the numbers", "[e2e]") {
  const std::string plan = std::string(kBin) + " plan input/llama3_8b_1m.toml";
  std::string out;
#if defined(LONGCTX_CUDA)
  int rc = run_command(plan + " --gpu-memory 8G", &out);
  INFO(out);
  CHECK(rc == 1);
  CHECK(contains(out, "8 ranks per node (one per GPU"));
  CHECK(contains(out, "GPU: DOES NOT FIT (train refuses it)"));
  CHECK(std::regex_search(out, std::regex("the 1 rank of a GPU need [0-9.]+ GiB but 8\\.0 GiB is available \\(--gpu-memory\\)")));
  CHECK(contains(out, "verdict (GPU backend, run.device = \"cuda\"): does not fit (stage 1, stage 2, stage 3, stage 4)"));
  CHECK(contains(out, "hint: raise parallel.sp or parallel.tp"));
  rc = run_command(plan + " --gpu-memory 139G", &out);
  CHECK(rc == 0);
  CHECK(contains(out, "verdict (GPU backend, run.device = \"cuda\"): fits"));
#else
  CHECK(run_command(plan + " --gpu-memory 8G", &out) == 0);  // nothing to check it against
  CHECK(contains(out, "GPU (bf16) backend: not in this build"));
#endif
  // On CPU nodes of 64 GiB, 8 ranks each: the state alone does not fit (the numbers, then the hint).
  const int rc_cpu = run_command(plan + " --set run.device=cpu --memory 64G --ranks-per-node 8", &out);
  INFO(out);
  CHECK(rc_cpu == 1);
  CHECK(std::regex_search(out, std::regex("the 8 ranks of a node need [0-9.]+ GiB but 64\\.0 GiB is available \\(--memory\\)")));
  CHECK(contains(out, "verdict (CPU backend, run.device = \"cpu\"): does not fit"));
}
