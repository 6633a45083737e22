// test_slurm.cpp — the job scripts under a real (private, one-node) Slurm (slurm.h): the chain that
// `longctx stages` writes runs stage 2 on its own layout from stage 1's checkpoint; a failed stage 1
// keeps stage 2 from running (afterok); scancel --signal=TERM leaves the checkpoint of its step.
// Tagged [slurm]: where Slurm is not installed, tests/main.cpp leaves them out and names them.
#include <chrono>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

#include "catch.h"
#include "longctx/config.h"
#include "slurm.h"
#include "util.h"

using namespace longctx::test;
namespace fs = std::filesystem;

namespace {


std::string all_outputs(const std::string& dir) {  // every job log in dir, for messages
  std::string s;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().extension() == ".out") s += "==> " + e.path().string() + "\n" + slurp(e.path().string());
  return s;
}

// The job ids submit.sh printed ("stage N: job ID ..."), in order.
std::vector<std::string> submitted_ids(const std::string& out) {
  std::vector<std::string> ids;
  std::smatch m;
  for (auto it = out.cbegin(); std::regex_search(it, out.cend(), m, std::regex("stage [0-9]+: job ([0-9]+)"));
       it = m.suffix().first)
    ids.push_back(m[1]);
  return ids;
}

// Writes the two-stage chain of a tiny deck into dir/jobs (stage 2 on dp = 2) and submits it;
// returns the job ids.
std::vector<std::string> submit_chain(const std::string& dir, const std::string& env = "") {
  std::string out;
  int rc = run_command(std::string(kBin) + " stages input/tiny.toml --out " + dir + "/jobs --scheduler slurm" +
                           quick(dir) + " --set stage.2.dp=2 --time 00:10:00", &out);
  INFO(out);
  REQUIRE(rc == 0);
  REQUIRE(contains(out, "stage 2: seq_len 1024"));
  REQUIRE(contains(out, "dp×tp×sp 2×1×1 = 2 rank(s) on 1 node(s) × 2 task(s) × 1 CPU(s), 0 GPU(s)"));
  rc = run_command(env + " " + dir + "/jobs/submit.sh", &out);
  INFO(out);
  REQUIRE(rc == 0);
  const std::vector<std::string> ids = submitted_ids(out);
  REQUIRE(ids.size() == 2);
  return ids;
}

}  // namespace

TEST_CASE("slurm: the stages chain runs; stage 2 resumes from stage 1's checkpoint on its own layout",
          "[e2e][slurm]") {
  local_slurm();
  const std::string dir = fs::absolute(temp_dir("slurm-chain")).string();
  const auto ids = submit_chain(dir);
  const std::string s1 = wait_job_end(ids[0], 90), s2 = wait_job_end(ids[1], 90);
  INFO(all_outputs(dir + "/jobs"));
  CHECK(s1 == "COMPLETED");
  CHECK(s2 == "COMPLETED");
  CHECK(fs::exists(dir + "/checkpoints/ckpt_0000003.h5"));
  CHECK(fs::exists(dir + "/checkpoints/ckpt_0000005.h5"));
  const std::string log1 = slurp(dir + "/jobs/tiny-s1-" + ids[0] + ".out");
  const std::string log2 = slurp(dir + "/jobs/tiny-s2-" + ids[1] + ".out");
  CHECK(contains(log1, "launcher: srun --mpi=pmix --kill-on-bad-exit=1 --cpus-per-task=1"));
  CHECK(std::regex_search(log1, std::regex("revision [0-9a-f]{40}")));  // the checkout's commit
  CHECK(contains(log1, "stage 1 complete: stopping as asked"));
  CHECK(contains(log2, "resuming " + dir + " from " + dir + "/checkpoints/ckpt_0000003.h5"));
  CHECK(contains(log2, "grid: 2 ranks"));
  CHECK(contains(log2, "stage 2/2 step 2/2"));
  CHECK(!contains(log2, "stage 1/2 step"));
}

TEST_CASE("slurm: a failed stage 1 keeps stage 2 from running (afterok)", "[e2e][slurm]") {
  local_slurm();
  const std::string dir = fs::absolute(temp_dir("slurm-fail")).string();
  const auto ids = submit_chain(dir, "LONGCTX_FAIL_AT=0:2");  // stage 1 fails at its step 2
  const std::string s1 = wait_job_end(ids[0], 90), s2 = wait_job_end(ids[1], 30);
  INFO(all_outputs(dir + "/jobs"));
  CHECK(s1 == "FAILED");
  CHECK(s2 == "CANCELLED");  // --kill-on-invalid-dep=yes
  CHECK(job_field(ids[1], "Reason") == "DependencyNeverSatisfied");
  CHECK(!fs::exists(dir + "/jobs/tiny-s2-" + ids[1] + ".out"));  // never started
  CHECK(!fs::exists(dir + "/checkpoints/ckpt_0000005.h5"));
}

TEST_CASE("slurm: scancel --signal=TERM stops the job at a step with its checkpoint, status 75", "[e2e][slurm]") {
  local_slurm();
  const std::string dir = fs::absolute(temp_dir("slurm-term")).string();
  std::string out;
  const int rc = run_command("sbatch --parsable --export=ALL,LONGCTX_REQUEUE=0 --output=" + dir +
                                 "/job.out jobs/slurm_train.sbatch input/tiny.toml --set run.out_dir=" + dir +
                                 " --set model.n_layers=1 --set run.log_every=1 --set stage.1.steps=1000",
                             &out);
  INFO(out);
  REQUIRE(rc == 0);
  const std::string id = out.substr(0, out.find_first_of(";\n"));
  REQUIRE(run_command("sbatch --parsable --dependency=afterok:" + id + " --kill-on-invalid-dep=yes --output=" + dir +
                          "/eval.out jobs/slurm_eval.sbatch input/tiny.toml --set run.out_dir=" + dir +
                          " --set model.n_layers=1 --lengths 256 --depths 0.5 --samples 1",
                      &out) == 0);
  const std::string eval_id = out.substr(0, out.find_first_of(";\n"));
  bool stepping = false;
  for (int i = 0; i < 600 && !stepping && job_field(id, "JobState") != "FAILED"; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    stepping = contains(slurp(dir + "/job.out"), "1/1000 | loss");
  }
  INFO(slurp(dir + "/job.out"));
  REQUIRE(stepping);
  REQUIRE(run_command("scancel --signal=TERM " + id) == 0);
  const std::string state = wait_job_end(id, 90);
  const std::string log = slurp(dir + "/job.out");
  INFO(log);
  CHECK(state == "FAILED");
  CHECK(job_field(id, "ExitCode") == "75:0");
  CHECK(contains(log, "interrupted (status 75)"));
  CHECK(wait_job_end(eval_id, 30) == "CANCELLED");  // not requeued: its afterok job never runs
  std::smatch m;
  REQUIRE(std::regex_search(log, m, std::regex("SIGTERM received: stopped at the step boundary after global step "
                                               "([0-9]+) .*checkpoint (\\S+) written")));
  CHECK(std::string(m[2]) == dir + "/checkpoints/ckpt_" + fmt::format("{:07d}", std::stol(m[1])) + ".h5");
  CHECK(fs::exists(std::string(m[2])));
}

TEST_CASE("slurm: the generic train job through mpirun on two ranks and the eval job after it", "[e2e][slurm]") {
  local_slurm();
  const std::string dir = fs::absolute(temp_dir("slurm-mpirun")).string();
  std::string out;
  // mpirun as root needs its flags; -x passes the thread count as the script's default would.
  int rc = run_command("LONGCTX_LAUNCHER=mpirun LONGCTX_MPIRUN_ARGS='--allow-run-as-root --oversubscribe -x "
                       "OMP_NUM_THREADS' sbatch --parsable --ntasks-per-node=2 --output=" + dir + "/train.out "
                       "jobs/slurm_train.sbatch input/tiny.toml" + quick(dir) + " --set parallel.dp=2", &out);
  INFO(out);
  REQUIRE(rc == 0);
  const std::string id = out.substr(0, out.find_first_of(";\n"));
  // One task of 2 CPUs: srun gets --cpus-per-task from the job (it does not inherit it), and the
  // rank runs 2 threads.
  // Submitted from jobs/ with a relative deck, as a user would (sbatch runs a spooled copy of the
  // script: it still finds build/longctx and the deck).
  rc = run_command("cd jobs && sbatch --parsable --cpus-per-task=2 --dependency=afterok:" + id + " --output=" + dir +
                   "/eval.out slurm_eval.sbatch ../input/tiny.toml" + quick(dir) + " --lengths 256 --depths 0.5 --samples 1", &out);
  REQUIRE(rc == 0);
  const std::string eval_id = out.substr(0, out.find_first_of(";\n"));
  const std::string s1 = wait_job_end(id, 90), s2 = wait_job_end(eval_id, 90);
  const std::string train = slurp(dir + "/train.out"), eval = slurp(dir + "/eval.out");
  INFO(train << "\n" << eval);
  CHECK(s1 == "COMPLETED");
  CHECK(s2 == "COMPLETED");
  CHECK(contains(train, "launcher: mpirun -np 2"));
  CHECK(contains(train, "grid: 2 ranks = 1 node(s) × 2 per node × 1 thread(s); dp×tp×sp = 2×1×1"));  // with --set
  CHECK(contains(train, "stage 2/2 step 2/2"));
  CHECK(contains(eval, "launcher: srun --mpi=pmix --kill-on-bad-exit=1 --cpus-per-task=2 (1 ranks)"));
  CHECK(contains(eval, "× 2 thread(s)"));
  CHECK(contains(eval, "needle-in-a-haystack: " + dir + "/checkpoints/ckpt_0000005.h5"));
}

// Inside a chain: an eval job waits on it with submit.sh's afterok and --kill-on-invalid-dep=yes;
// the requeue (status 75 is not 0) must not cancel it, and it runs once the resumed job completes.
TEST_CASE("slurm: SIGUSR1 before the time limit requeues the job, its next start resumes, its afterok job waits",
          "[e2e][slurm]") {
  local_slurm();
  const std::string dir = fs::absolute(temp_dir("slurm-requeue")).string();
  std::string out;
  const int rc = run_command("sbatch --parsable --output=" + dir + "/job.out jobs/slurm_train.sbatch input/tiny.toml"
                             " --set run.out_dir=" + dir + " --set model.n_layers=1 --set run.log_every=1"
                             " --set stage.1.steps=40 --set stage.2.steps=1", &out);
  INFO(out);
  REQUIRE(rc == 0);
  const std::string id = out.substr(0, out.find_first_of(";\n"));
  REQUIRE(run_command("sbatch --parsable --dependency=afterok:" + id + " --kill-on-invalid-dep=yes --output=" + dir +
                          "/eval.out jobs/slurm_eval.sbatch input/tiny.toml --set run.out_dir=" + dir +
                          " --set model.n_layers=1 --lengths 256 --depths 0.5 --samples 1",
                      &out) == 0);
  const std::string eval_id = out.substr(0, out.find_first_of(";\n"));
  bool stepping = false;
  for (int i = 0; i < 600 && !stepping; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    stepping = contains(slurp(dir + "/job.out"), " 1/40 | loss");
  }
  REQUIRE(stepping);
  REQUIRE(run_command("scancel --batch --signal=USR1 " + id) == 0);  // as --signal=B:USR1@120: the batch shell
  // The first start ends (status 75, requeued); the second resumes and finishes.
  // Slurm holds a requeued job for a while (its BeginTime, about 3 minutes here): start it as soon
  // as the node is idle again and the first start's step has let go of its PMIx socket (a second
  // start before that fails to bind it).
  bool resumed = false, hurried = false;
  std::string node, dependant_while_requeued;
  for (int i = 0; i < 900 && !resumed; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    const std::string log = slurp(dir + "/job.out");
    if (!hurried && contains(log, "requeueing job") && job_field(id, "JobState") == "PENDING" &&
        run_command("sinfo -h -o %T", &node) == 0 && node == "idle\n" &&
        !fs::exists(local_slurm() + "/spool/stepd.slurm.pmix." + id + ".0")) {
      std::this_thread::sleep_for(std::chrono::seconds(1));
      dependant_while_requeued = job_field(eval_id, "JobState") + " " + job_field(eval_id, "Reason");
      hurried = run_command("scontrol update JobId=" + id + " StartTime=now") == 0;
    }
    resumed = contains(log, "stage 2/2 step 1/1");
  }
  CHECK(hurried);
  const std::string state = wait_job_end(id, 60);
  const std::string log = slurp(dir + "/job.out");
  INFO(log);
  CHECK(resumed);
  CHECK(state == "COMPLETED");
  CHECK(job_field(id, "Restarts") == "1");
  std::smatch m;
  REQUIRE(std::regex_search(log, m, std::regex("SIGUSR1 received: stopped at the step boundary after global step ([0-9]+)")));
  CHECK(contains(log, "SIGUSR1: passing it on to the ranks"));
  CHECK(contains(log, "requeueing job " + id));
  CHECK(contains(log, "from " + dir + "/checkpoints/ckpt_" + fmt::format("{:07d}", std::stol(m[1])) + ".h5"));
  CHECK(dependant_while_requeued == "PENDING Dependency");
  CHECK(wait_job_end(eval_id, 90) == "COMPLETED");
  CHECK(contains(slurp(dir + "/eval.out"), "needle-in-a-haystack: " + dir + "/checkpoints/"));
}

TEST_CASE("slurm: submit.sh refuses a stage no node can hold instead of leaving it pending", "[e2e][slurm]") {
  local_slurm();
  const std::string dir = fs::absolute(temp_dir("slurm-fits")).string();
  std::string out;
  const std::string stages = std::string(kBin) + " stages input/tiny.toml --scheduler slurm" + quick(dir);
  REQUIRE(run_command(stages + " --out " + dir + "/cpus --cpus-per-rank 64", &out) == 0);
  CHECK(run_command(dir + "/cpus/submit.sh", &out) != 0);
  CHECK(contains(out, "stage 1 asks for 64 CPUs per node"));
  CHECK(contains(out, "it would wait forever"));
  REQUIRE(run_command(stages + " --out " + dir + "/gpus --gpus-per-node 1", &out) == 0);
  CHECK(contains(slurp(dir + "/gpus/stage1.sbatch"), "#SBATCH --gpus-per-node=1\n"));
  CHECK(run_command(dir + "/gpus/submit.sh", &out) != 0);
  CHECK(contains(out, "no node here has GPUs"));
  CHECK(run_command("squeue -h | wc -l", &out) == 0);
  CHECK(out == "0\n");  // nothing was submitted
}

// The seed's Llama-3-8B schedule as `longctx stages` writes it, against a controller that has a
// real cluster's shape (64 nodes × 8 GPUs, slurm.h): each stage deck holds the seed's seq_len and
// rope_theta at its stage and that stage's layout; sbatch --test-only accepts every script, and
// submit.sh queues the four jobs chained with afterok. They never run (the nodes are CLOUD ones
// that do not exist); the test cancels them.
TEST_CASE("slurm: a 64-node GPU cluster accepts the Llama-3-8B 1M chain as longctx stages writes it",
          "[e2e][slurm]") {
  const std::string conf = gpu_cluster_conf(), dir = fs::absolute(temp_dir("slurm-8b")).string();
  const std::string env = "SLURM_CONF=" + conf + " ";
  std::string out;
  REQUIRE(run_command(std::string(kBin) + " stages input/llama3_8b_1m.toml --out " + dir + " --scheduler slurm",
                      &out) == 0);
  const int64_t T[] = {65536, 131072, 524288, 1048576}, sp[] = {4, 8, 32, 64}, nodes[] = {4, 8, 32, 64};
  const double theta[] = {22.4e6, 80e6, 1e9, 3.6e9};
  for (int i = 0; i < 4; ++i) {
    const std::string n = std::to_string(i + 1);
    const longctx::Config c = longctx::parse_deck(dir + "/stage" + n + ".toml");
    INFO("stage " << n);
    REQUIRE(c.stages.size() == 4);
    CHECK(c.stages[size_t(i)].seq_len == T[i]);
    CHECK(c.stages[size_t(i)].rope_theta == theta[i]);
    CHECK(c.parallel.sp == sp[i]);
    CHECK(c.parallel.tp == 8);
    const std::string job = slurp(dir + "/stage" + n + ".sbatch");
    CHECK(contains(job, "#SBATCH --nodes=" + std::to_string(nodes[i]) + "\n"));
    CHECK(contains(job, "#SBATCH --gpus-per-node=8\n"));
    CHECK(contains(job, "--stop-after-stage " + n));
    const int rc = run_command(env + "sbatch --test-only " + dir + "/stage" + n + ".sbatch 2>&1", &out);
    INFO(out);
    CHECK(rc == 0);
    CHECK(contains(out, "to start at"));
    CHECK(contains(out, "using " + std::to_string(nodes[i] * 8) + " processors"));
  }
  const int rc = run_command(env + dir + "/submit.sh", &out);
  INFO(out);
  REQUIRE(rc == 0);
  const std::vector<std::string> ids = submitted_ids(out);
  REQUIRE(ids.size() == 4);
  std::string q;
  REQUIRE(run_command(env + "squeue -h -o '%i %D %b %E %T' --sort=i", &q) == 0);
  INFO(q);
  std::string all_ids;
  for (size_t i = 0; i < 4; ++i) {
    std::string want = ids[i] + " " + std::to_string(nodes[i]) + " gres:gpu:8 " +
                       (i == 0 ? std::string("(null)") : "afterok:" + ids[i - 1] + "(unfulfilled)");
    CHECK(contains(q, want));
    all_ids += " " + ids[i];
  }
  CHECK(run_command(env + "scancel" + all_ids) == 0);
}
