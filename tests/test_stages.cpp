// test_stages.cpp — per-stage layouts in the deck ([[stage]] dp/tp/sp), train's refusal to cross a
// layout change, `longctx stages` (decks, job scripts, submit script), the job scripts' syntax and
// directives, and threads per rank from the allocation.
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include "catch.h"
#include "longctx/config.h"
#include "longctx/train.h"
#include "util.h"

using namespace longctx;
using namespace longctx::test;
namespace fs = std::filesystem;

namespace {


const std::string kTwo = R"([model]
n_heads = 4
n_kv_heads = 2
[[stage]]
seq_len = 64
rope_theta = 1e4
steps = 2
[[stage]]
seq_len = 128
rope_theta = 4e4
steps = 2
)";

}  // namespace

TEST_CASE("deck: a stage may set its own dp/tp/sp; to_toml keeps them", "[deck]") {
  const Config c = parse_deck_text(kTwo + "sp = 4\ndp = 2\n", "s.toml");
  CHECK(c.stage_layout(0).sp == 1);
  CHECK(c.stage_layout(1).sp == 4);
  CHECK(c.stage_layout(1).dp == 2);
  CHECK(c.stage_layout(1).tp == 1);
  const std::string text = to_toml(c);
  CHECK(contains(text, "sp = 4\n"));
  const Config back = parse_deck_text(text, "back.toml");
  CHECK(back.stages[0].sp == 0);  // absent stays absent
  CHECK(back.stages[1].sp == 4);
  CHECK(back.stages[1].dp == 2);
  CHECK(to_toml(back) == text);
  CHECK(parse_deck_text(kTwo, "s.toml", {"stage.2.tp=2"}).stage_layout(1).tp == 2);
}

TEST_CASE("deck: a stage's layout is validated like [parallel]", "[deck]") {
  std::string e = error_of([&] { parse_deck_text(kTwo + "tp = 3\n", "s.toml"); });
  CHECK(contains(e, "s.toml:12"));
  CHECK(contains(e, "stage[2].tp = 3 must divide model.n_heads = 4"));
  e = error_of([&] { parse_deck_text(kTwo + "sp = 48\n", "s.toml"); });
  CHECK(contains(e, "stage[2].seq_len = 128 must be divisible by 96"));
  CHECK(contains(e, "stage[2].sp = 48"));
  e = error_of([&] { parse_deck_text(kTwo, "s.toml", {"stage.1.dp=0"}); });
  CHECK(contains(e, "stage[1].dp = 0 is out of range (allowed: 1..65536)"));
  e = error_of([&] { parse_deck_text(kTwo + "tp = 4\n", "s.toml"); });  // 4 is a multiple of 2 kv heads: fine
  CHECK(e.empty());
}

TEST_CASE("train refuses a job that would cross a stage's layout change", "[deck]") {
  const Config c = parse_deck_text(kTwo + "sp = 2\n", "s.toml");
  const std::string e = error_of([&] { check_one_layout(c, 0, 2); });
  CHECK(contains(e, "s.toml:12: stage 2 runs on dp×tp×sp = 1×1×2"));  // the line of stage 2's sp
  CHECK(contains(e, "[parallel] is 1×1×1"));
  CHECK(contains(error_of([&] {
                   try { check_one_layout(c, 0, 2); } catch (const Error& x) { throw Error(x.hint(), "", ""); }
                 }), "longctx stages s.toml --out DIR"));
  CHECK(error_of([&] { check_one_layout(c, 0, 1); }).empty());  // --stop-after-stage 1
  CHECK(error_of([&] { check_one_layout(parse_deck_text(kTwo + "sp = 1\n", "s.toml"), 0, 2); }).empty());
  const Config llama = parse_deck("input/llama3_8b_1m.toml");
  CHECK(contains(error_of([&] { check_one_layout(llama, 0, 4); }), "stage 2 runs on dp×tp×sp = 1×8×8"));
}

TEST_CASE("the schedule decks: Llama-3-8B to 1M tokens and its theta = 1M ablation", "[deck]") {
  const Config a = parse_deck("input/llama3_8b_1m.toml"), b = parse_deck("input/llama3_8b_1m_theta1m.toml");
  const int64_t T[] = {65536, 131072, 524288, 1048576}, acc[] = {32, 32, 16, 8}, sp[] = {4, 8, 32, 64};
  const double theta[] = {22.4e6, 80e6, 1e9, 3.6e9};
  REQUIRE(a.stages.size() == 4);
  REQUIRE(b.stages.size() == 4);
  for (size_t i = 0; i < 4; ++i) {
    for (const Config* c : {&a, &b}) {
      CHECK(c->stages[i].seq_len == T[i]);
      CHECK(c->stages[i].steps == 10);
      CHECK(c->stages[i].batch_accum == acc[i]);
      CHECK(c->stages[i].micro_batch == 1);
      CHECK(c->stage_layout(i).sp == sp[i]);
      CHECK(c->stage_layout(i).tp == 8);
    }
    CHECK(a.stages[i].rope_theta == theta[i]);
    CHECK(b.stages[i].rope_theta == 1e6);
  }
  CHECK(a.model.n_layers == 32);
  CHECK(a.model.d_model == 4096);
  CHECK(a.model.n_heads == 32);
  CHECK(a.model.n_kv_heads == 8);
  CHECK(a.model.d_ff == 14336);
  CHECK(a.model.vocab_size == 128256);
  CHECK(a.model.recompute);
  CHECK(a.run.device == Device::cuda);
}

TEST_CASE("threads per rank: run.threads else OMP_NUM_THREADS else SLURM_CPUS_PER_TASK", "[deck]") {
  Config c = parse_deck_text(kTwo, "s.toml");
  const char* had_omp = std::getenv("OMP_NUM_THREADS");
  const std::string keep = had_omp ? had_omp : "";
  ::setenv("OMP_NUM_THREADS", "3", 1);
  ::setenv("SLURM_CPUS_PER_TASK", "5", 1);
  CHECK(set_threads(c, 4) == "3 threads per rank (OMP_NUM_THREADS)");  // was: 1 per rank under MPI
  ::setenv("OMP_NUM_THREADS", "", 1);  // empty counts as unset (make run empties it)
  CHECK(set_threads(c, 4) == "5 threads per rank (SLURM_CPUS_PER_TASK)");
  ::unsetenv("SLURM_CPUS_PER_TASK");
  CHECK(set_threads(c, 4) == "1 thread per rank (run.threads = 0 with several ranks)");
  c.run.threads = 2;
  ::setenv("OMP_NUM_THREADS", "3", 1);
  CHECK(set_threads(c, 4) == "2 threads per rank (run.threads)");  // the deck's explicit value wins
  c.run.threads = 0;
  ::setenv("OMP_NUM_THREADS", "many", 1);
  CHECK(contains(error_of([&] { set_threads(c, 1); }), "OMP_NUM_THREADS='many' is not a thread count"));
  had_omp ? ::setenv("OMP_NUM_THREADS", keep.c_str(), 1) : ::unsetenv("OMP_NUM_THREADS");
  c.run.threads = 1;
  set_threads(c, 1);
}

TEST_CASE("train on a deck whose stages change the layout points at longctx stages", "[e2e]") {
  const std::string dir = temp_dir("stages-refuse");
  std::string out;
  CHECK(run_command(std::string(kBin) + " train input/tiny.toml" + quick(dir) + " --set stage.2.sp=2", &out) != 0);
  CHECK(contains(out, "--set stage.2.sp=2: stage 2 runs on dp×tp×sp = 1×1×2"));
  CHECK(contains(out, "longctx stages input/tiny.toml --out DIR"));
  CHECK(!fs::exists(dir + "/checkpoints"));  // refused before any output
  CHECK(run_command(std::string(kBin) + " train input/tiny.toml" + quick(dir) + " --set stage.2.sp=2 --stop-after-stage 1",
                    &out) == 0);
  INFO(out);
  CHECK(contains(out, "stage 1 complete: stopping as asked"));
}

TEST_CASE("stages: one deck and job per stage and a submit script; GPUs only for cuda runs", "[e2e]") {
  const std::string dir = fs::absolute(temp_dir("stages-write")).string();
  std::string out;
  REQUIRE(run_command(std::string(kBin) + " stages input/llama3_8b_1m.toml --out " + dir + "/slurm --scheduler slurm", &out) == 0);
  INFO(out);
  const int64_t nodes[] = {4, 8, 32, 64};
  for (int i = 1; i <= 4; ++i) {
    const std::string job = slurp(fmt::format("{}/slurm/stage{}.sbatch", dir, i));
    CHECK(contains(job, fmt::format("#SBATCH --nodes={}\n", nodes[i - 1])));
    CHECK(contains(job, "#SBATCH --ntasks-per-node=8\n"));
    CHECK(contains(job, "#SBATCH --gpus-per-node=8\n"));
    CHECK(contains(job, "#SBATCH --signal=B:USR1@120\n"));
    CHECK(contains(job, fmt::format("stage{}.toml\" --stop-after-stage {}", i, i)));
    const Config c = parse_deck(fmt::format("{}/slurm/stage{}.toml", dir, i));
    CHECK(c.parallel.sp == int64_t(nodes[i - 1]));  // 8 ranks per node = tp: sp = nodes
    CHECK(fs::path(c.checkpoint.dir).is_absolute());
    CHECK(fs::path(c.data.path).is_absolute());
    check_one_layout(c, i - 1, i);  // its job's stage runs on its [parallel]
  }
  const std::string submit = slurp(dir + "/slurm/submit.sh");
  CHECK(contains(submit, "dep=(--dependency=afterok:\"$prev\" --kill-on-invalid-dep=yes)"));  // run: see below
  CHECK(run_command("bash -n " + dir + "/slurm/submit.sh") == 0);
  REQUIRE(run_command(std::string(kBin) + " stages input/tiny.toml --out " + dir + "/pbs --scheduler pbs --set stage.2.dp=2"
                      " --cpus-per-rank 2", &out) == 0);
  const std::string pbs = slurp(dir + "/pbs/stage2.pbs");
  CHECK(contains(pbs, "#PBS -l select=1:ncpus=4:mpiprocs=2:ompthreads=2\n"));  // CPU deck: no ngpus
  CHECK(contains(slurp(dir + "/pbs/submit.sh"), "dep=(-W depend=afterok:\"$prev\")"));
  for (const char* f : {"stage1.pbs", "stage2.pbs", "submit.sh"}) CHECK(run_command("bash -n " + dir + "/pbs/" + f) == 0);
  REQUIRE(run_command(std::string(kBin) + " stages input/tiny.toml --out " + dir + "/cpu --scheduler slurm", &out) == 0);
  CHECK(!contains(slurp(dir + "/cpu/stage1.sbatch"), "gpus"));
  // Refusals.
  CHECK(run_command(std::string(kBin) + " stages input/tiny.toml --out " + dir + "/x --scheduler lsf", &out) != 0);
  CHECK(contains(out, "--scheduler 'lsf': expected slurm or pbs"));
  CHECK(run_command(std::string(kBin) + " stages input/tiny.toml --scheduler slurm", &out) != 0);
  CHECK(contains(out, "--out DIR is required"));
  CHECK(run_command(std::string(kBin) + " stages input/tiny.toml --out " + dir + "/y --scheduler slurm --set stage.2.dp=3"
                    " --ranks-per-node 2", &out) != 0);
  CHECK(contains(out, "3 ranks, not a multiple of --ranks-per-node 2"));
  CHECK(run_command(std::string(kBin) + " stages input/tiny.toml --out " + dir + "/z --scheduler slurm --cpus-per-rank 0",
                    &out) != 0);
  CHECK(contains(out, "--cpus-per-rank '0' is not a number >= 1"));
  // A file that cannot be written (here stage2.toml is a directory; root ignores permissions):
  // the message names it, the files before it are whole and no .tmp is left behind.
  fs::create_directories(dir + "/w/stage2.toml");
  CHECK(run_command(std::string(kBin) + " stages input/tiny.toml --out " + dir + "/w --scheduler slurm", &out) != 0);
  CHECK(contains(out, "cannot write " + dir + "/w/stage2.toml"));
  CHECK(parse_deck(dir + "/w/stage1.toml").stages.size() == 2);
  CHECK(run_command("bash -n " + dir + "/w/stage1.sbatch") == 0);
  for (const auto& e : fs::directory_iterator(dir + "/w")) CHECK(e.path().extension() != ".tmp");
  CHECK(!fs::exists(dir + "/w/submit.sh"));
}

TEST_CASE("job scripts: bash syntax and directives (no PBS server is packaged for Debian)", "[e2e]") {
  for (const char* f : {"jobs/slurm_train.sbatch", "jobs/slurm_eval.sbatch", "jobs/pbs_train.pbs", "jobs/pbs_eval.pbs",
                        "jobs/common.sh"}) {
    INFO(f);
    CHECK(run_command(std::string("bash -n ") + f) == 0);
    const std::string s = slurp(f);
    // No GPU request in a directive (a gres line fails on clusters without GPUs).
    CHECK(!std::regex_search(s, std::regex("^#SBATCH +--(gres|gpus)", std::regex::multiline)));
    CHECK(!std::regex_search(s, std::regex("^#PBS .*(ngpus|gpus=)", std::regex::multiline)));
    // The binary by absolute path: $LONGCTX_HOME/build/longctx, never a path relative to the cwd.
    CHECK(!std::regex_search(s, std::regex("^[ \\t]*(exec[ \\t]+)?(\\./)?build/longctx", std::regex::multiline)));
    CHECK(!std::regex_search(s, std::regex("(srun|mpirun)[^#\\n]*[ \\t](\\./)?build/longctx")));
  }
  CHECK(contains(slurp("jobs/common.sh"), "LONGCTX_BIN=\"$LONGCTX_HOME/build/longctx\""));
  for (const char* f : {"jobs/slurm_train.sbatch", "jobs/slurm_eval.sbatch"}) {
    const std::string s = slurp(f);
    CHECK(contains(s, "#SBATCH --cpus-per-task="));
    CHECK(!contains(s, "#SBATCH --gpus"));
    CHECK(contains(s, "---- site setup"));
  }
  CHECK(contains(slurp("jobs/slurm_train.sbatch"), "#SBATCH --signal=B:USR1@120"));
  CHECK(contains(slurp("jobs/slurm_train.sbatch"), "#SBATCH --requeue"));
  for (const char* f : {"jobs/pbs_train.pbs", "jobs/pbs_eval.pbs"}) {
    const std::string s = slurp(f);
    CHECK(contains(s, "#PBS -l select=1:ncpus=1:mpiprocs=1:ompthreads=1"));
    CHECK(contains(s, "#PBS -l walltime="));
    CHECK(contains(s, "Torque"));
    CHECK(contains(s, "---- site setup"));
  }
  CHECK(contains(slurp("jobs/common.sh"), "srun --mpi=pmix"));
}

// submit.sh against stand-in qsub and sbatch on PATH that record their arguments and answer job
// ids: the options given to submit.sh reach every submission, each stage depends on the one before
// it (afterok), and --from N submits stages N.. with no dependency on the first.
TEST_CASE("stages: submit.sh passes its options to qsub/sbatch, chains afterok, and --from N starts at stage N",
          "[e2e]") {
  const std::string dir = fs::absolute(temp_dir("stages-submit")).string();
  fs::create_directories(dir + "/bin");
  for (const char* tool : {"qsub", "sbatch"}) {
    // Job ids 101, 102, ... (sbatch --parsable prints "id;cluster" on federated clusters: "id" here).
    std::ofstream(dir + "/bin/" + tool) << "#!/bin/bash\nn=$(( $(wc -l < " << dir << "/calls 2>/dev/null || echo 0) + 101 ))\n"
                                        << "echo \"" << tool << " $*\" >> " << dir << "/calls\necho $n"
                                        << (std::string(tool) == "qsub" ? ".pbsfake" : "") << "\n";
    fs::permissions(dir + "/bin/" + tool, fs::perms::owner_all);
  }
  const std::string path = "PATH=" + dir + "/bin:$PATH LONGCTX_NO_CHECK=1 ";
  std::string out;
  for (const char* sched : {"pbs", "slurm"}) {
    INFO(sched);
    const bool pbs = std::string(sched) == "pbs";
    const std::string jobs = dir + "/" + sched, ext = pbs ? ".pbs" : ".sbatch";
    REQUIRE(run_command(std::string(kBin) + " stages input/llama3_8b_1m.toml --out " + jobs + " --scheduler " + sched,
                        &out) == 0);
    const std::string opts = pbs ? "-q gpu -A proj" : "--partition=gpu --account=proj";
    fs::remove(dir + "/calls");
    int rc = run_command(path + jobs + "/submit.sh " + opts, &out);
    INFO(out);
    REQUIRE(rc == 0);
    const std::string id = pbs ? ".pbsfake" : "";
    std::string want;
    for (int i = 1; i <= 4; ++i) {
      const std::string dep = i == 1 ? ""
                              : pbs  ? fmt::format("-W depend=afterok:{}{} ", 99 + i, id)
                                     : fmt::format("--dependency=afterok:{} --kill-on-invalid-dep=yes ", 99 + i);
      want += fmt::format("{} {}{}{} {}/stage{}{}\n", pbs ? "qsub" : "sbatch", pbs ? "" : "--parsable ", dep, opts, jobs, i,
                          ext);
    }
    CHECK(slurp(dir + "/calls") == want);
    CHECK(contains(out, fmt::format("stage 4: job 104{} (64 node(s) × 8 rank(s), 8 GPU(s) per node), after 103{} ends well",
                                    id, id)));
    fs::remove(dir + "/calls");
    rc = run_command(path + jobs + "/submit.sh --from 3 " + opts, &out);
    REQUIRE(rc == 0);
    CHECK(slurp(dir + "/calls") ==
          fmt::format("{0} {1}{2} {3}/stage3{4}\n{0} {1}{5}{2} {3}/stage4{4}\n", pbs ? "qsub" : "sbatch",
                      pbs ? "" : "--parsable ", opts, jobs, ext,
                      pbs ? "-W depend=afterok:101.pbsfake " : "--dependency=afterok:101 --kill-on-invalid-dep=yes "));
    CHECK(run_command(path + jobs + "/submit.sh --from 5", &out) != 0);
    CHECK(contains(out, "submit.sh: --from '5': the stages are 1..4"));
  }
}
