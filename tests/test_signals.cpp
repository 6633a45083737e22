// test_signals.cpp — SIGTERM/SIGUSR1 stop a running `longctx train` at a step boundary: it writes
// the checkpoint of that step, says so, exits with status 75, and --resume continues from it; under
// mpirun a signal that reaches one rank only stops both ranks at the same step, without a hang.
#include <chrono>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

#include "catch.h"
#include "longctx/signals.h"
#include "util.h"

using namespace longctx::test;
namespace fs = std::filesystem;

namespace {

// A file's contents without its trailing newlines (a pid or a status for the shell).
std::string slurp_trim(const std::string& path) {
  std::string s = slurp(path);
  while (!s.empty() && s.back() == '\n') s.pop_back();
  return s;
}

// Waits up to `seconds` for pred(); false on time out.
template <class P>
bool wait_for(P pred, double seconds) {
  for (auto t0 = std::chrono::steady_clock::now();
       std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() < seconds;) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return pred();
}

// Starts `cmd` in the background: its output goes to dir/log, its PID to dir/pid and, once it
// ends, its exit status to dir/rc.
void start_background(const std::string& dir, const std::string& cmd) {
  const std::string script = dir + "/run.sh";
  // The script first closes what it inherited beyond stdio (the test process's MPI singleton
  // keeps pipes that would otherwise hold this process until the run ends).
  std::ofstream(script) << "#!/bin/bash\nfor fd in /proc/$$/fd/*; do n=${fd##*/}; [ \"$n\" -gt 2 ] && "
                        << "eval \"exec $n>&-\" 2>/dev/null; done\n" << cmd << " > " << dir << "/log 2>&1 &\necho $! > " << dir
                        << "/pid.tmp\nmv " << dir << "/pid.tmp " << dir << "/pid\nwait $!\necho $? > " << dir
                        << "/rc.tmp\nmv " << dir << "/rc.tmp " << dir << "/rc\n";
  REQUIRE(run_command("bash " + script + " < /dev/null > /dev/null 2>&1 & :") == 0);
  REQUIRE(wait_for([&] { return fs::exists(dir + "/pid"); }, 30));
}

// The PID of the process whose environment has both lines (a rank of our mpirun), or -1.
long find_process(const std::string& a, const std::string& b) {
  for (const auto& e : fs::directory_iterator("/proc")) {
    const std::string name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream f(e.path() / "environ");
    bool has_a = false, has_b = false;
    for (std::string v; std::getline(f, v, '\0');) has_a |= v == a, has_b |= v == b;
    if (has_a && has_b) return std::stol(name);
  }
  return -1;
}

// The step line of the log's first step: "stage 1/2 step   1/1000 |".
bool stepping(const std::string& dir) { return contains(slurp_trim(dir + "/log"), "1/1000 | loss"); }

// Checks the message, the checkpoint and the exit status of an interrupted run; returns its step.
long check_interrupted(const std::string& dir, const std::string& signal_name) {
  REQUIRE(wait_for([&] { return fs::exists(dir + "/rc"); }, 120));
  const std::string log = slurp_trim(dir + "/log");
  INFO(log);
  CHECK(std::stoi(slurp_trim(dir + "/rc")) == longctx::kExitInterrupted);
  CHECK(contains(log, signal_name + " received: stopped at the step boundary after global step"));
  CHECK(contains(log, "--resume"));
  std::smatch m;
  REQUIRE(std::regex_search(log, m, std::regex("after global step ([0-9]+) .*checkpoint (\\S+) written")));
  const long step = std::stol(m[1]);
  CHECK(step >= 1);
  CHECK(m[2] == dir + "/checkpoints/ckpt_" + fmt::format("{:07d}", step) + ".h5");
  CHECK(fs::exists(std::string(m[2])));
  CHECK(!fs::exists(std::string(m[2]) + ".tmp"));
  return step;
}

// Resumes the interrupted run for two more steps of stage 1 and one of stage 2.
void check_resume(const std::string& dir, const std::string& launch, long step, const std::string& extra = "") {
  std::string out;
  const int rc = run_command(launch + " train input/tiny.toml --resume --set run.out_dir=" + dir +
                                 " --set model.n_layers=1 --set run.log_every=1 --set optim.warmup_steps=1" +
                                 fmt::format(" --set stage.1.steps={} --set stage.2.steps=1", step + 2) + extra,
                             &out);
  INFO(out);
  CHECK(rc == 0);
  CHECK(contains(out, "from " + dir + "/checkpoints/ckpt_" + fmt::format("{:07d}", step) + ".h5"));
  const std::string total = std::to_string(step + 2);
  CHECK(contains(out, fmt::format("stage 1/2 step {:>{}}/{} |", step + 1, total.size(), total)));
  CHECK(contains(out, "stage 2/2 step 1/1 |"));
}

const std::string kLong = " --set model.n_layers=1 --set run.log_every=1 --set optim.warmup_steps=1"
                          " --set stage.1.steps=1000";

}  // namespace

TEST_CASE("SIGTERM stops train at a step boundary with a checkpoint; --resume continues", "[e2e]") {
  const std::string dir = fs::absolute(temp_dir("signal-1")).string();
  start_background(dir, std::string(kBin) + " train input/tiny.toml --set run.out_dir=" + dir + kLong);
  REQUIRE(wait_for([&] { return stepping(dir) || fs::exists(dir + "/rc"); }, 120));
  REQUIRE(!fs::exists(dir + "/rc"));
  REQUIRE(run_command("kill -TERM " + slurp_trim(dir + "/pid")) == 0);
  // A second signal while it saves changes nothing (the handler only counts it).
  run_command("sleep 0.05; kill -USR1 " + slurp_trim(dir + "/pid") + " 2>/dev/null");
  const long step = check_interrupted(dir, "SIGTERM");
  check_resume(dir, kBin, step);
}

TEST_CASE("SIGUSR1 to one rank of two stops both at the same step and nothing hangs", "[e2e]") {
  const std::string dir = fs::absolute(temp_dir("signal-2")).string();
  const std::string tag = "LONGCTX_SIGNAL_TEST=" + dir;
  const std::string launch = "OPENBLAS_NUM_THREADS=1 timeout 120 " + mpirun() + " -np 2 " + kBin;
  start_background(dir, tag + " " + launch + " train input/tiny.toml --set parallel.dp=2 --set run.out_dir=" + dir + kLong);
  REQUIRE(wait_for([&] { return stepping(dir) || fs::exists(dir + "/rc"); }, 120));
  REQUIRE(!fs::exists(dir + "/rc"));
  const long rank1 = find_process(tag, "OMPI_COMM_WORLD_RANK=1");
  REQUIRE(rank1 > 0);
  REQUIRE(run_command("kill -USR1 " + std::to_string(rank1)) == 0);  // rank 1 only; rank 0 prints
  const long step = check_interrupted(dir, "SIGUSR1");
  CHECK(std::stoi(slurp_trim(dir + "/rc")) != 124);  // 124: timeout, a hang
  check_resume(dir, launch, step, " --set parallel.dp=2");
}

// jobs/pbs_train.pbs as a PBS Pro MoM would run it (no PBS server is packaged for Debian): the
// environment PBS gives a job (PBS_JOBID, PBS_O_WORKDIR, a PBS_NODEFILE with one line per rank,
// OMP_NUM_THREADS from ompthreads) and a stand-in qrerun on PATH that records its arguments.
// SIGTERM to the batch shell and to mpirun itself (PBS's time limit signals the job's whole
// session): the ranks write the checkpoint, mpirun returns its own status (1 after SIGTERM), the
// script reads the ranks' 75 from LONGCTX_STATUS_FILE, exits 75 and asks qrerun to queue it again.
TEST_CASE("PBS: the train job takes its ranks from PBS_NODEFILE; SIGTERM checkpoints and asks qrerun", "[e2e]") {
  const std::string dir = fs::absolute(temp_dir("signal-pbs")).string();
  fs::create_directories(dir + "/bin");
  std::ofstream(dir + "/bin/qrerun") << "#!/bin/bash\necho \"$@\" >> " << dir << "/qrerun.log\n";
  fs::permissions(dir + "/bin/qrerun", fs::perms::owner_all);
  std::ofstream(dir + "/nodes") << "localhost\nlocalhost\n";
  const std::string env = "PATH=" + dir + "/bin:$PATH PBS_JOBID=7.pbsfake PBS_O_WORKDIR=" + fs::current_path().string() +
                          " PBS_NODEFILE=" + dir + "/nodes OMP_NUM_THREADS=1 DECK=input/tiny.toml"
                          " LONGCTX_MPIRUN_ARGS='--allow-run-as-root --oversubscribe -x OMP_NUM_THREADS'"
                          " ARGS='--set run.out_dir=" + dir + kLong + " --set parallel.dp=2'";
  start_background(dir, env + " bash jobs/pbs_train.pbs");
  REQUIRE(wait_for([&] { return stepping(dir) || fs::exists(dir + "/rc"); }, 120));
  REQUIRE(!fs::exists(dir + "/rc"));
  const std::string pid = slurp_trim(dir + "/pid");
  REQUIRE(run_command("kill -TERM " + pid + "; pkill -TERM -P " + pid) == 0);  // the shell and mpirun
  // The ranks get SIGTERM from mpirun and SIGUSR1 from the script: whichever came first is named.
  const long step = check_interrupted(dir, "");
  const std::string log = slurp_trim(dir + "/log");
  INFO(log);
  CHECK(contains(log, "grid: 2 ranks = 1 node(s) × 2 per node × 1 thread(s); dp×tp×sp = 2×1×1"));
  CHECK(contains(log, "launcher: mpirun -np 2 --hostfile " + dir + "/nodes"));
  CHECK(contains(log, "job 7.pbsfake on "));
  CHECK(contains(log, "rerunning job 7.pbsfake with qrerun"));
  CHECK(!fs::exists(fs::current_path() / ".longctx-status.7.pbsfake"));  // read, then removed
  CHECK(slurp_trim(dir + "/qrerun.log") == "7.pbsfake");
  CHECK(step >= 1);
}
