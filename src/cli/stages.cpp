// stages.cpp — `longctx stages` (stages.h): one deck, one job script per stage and a submit script
// that chains them with afterok dependencies.
//
// The hand-off between stages: every stage's deck names the same checkpoint.dir and its job runs
// `train --resume --stop-after-stage i`, so stage i continues from the checkpoint stage i-1 wrote at
// its end — optimizer moments, global step, LR schedule and data cursor included — exactly as one
// job through all stages would (bit for bit on the CPU when the layouts agree). checkpoint.init_from
// would instead restart the optimizer and the schedule at every stage. Each deck therefore holds
// the whole schedule, with [parallel] set to its stage's layout; the job runs only that stage.
#include "longctx/stages.h"

#include <sys/stat.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "longctx/common.h"
#include "longctx/config.h"
#include "longctx/log.h"
#include "longctx/preflight.h"

namespace fs = std::filesystem;

namespace longctx {

namespace {

constexpr const char* kHint = "longctx stages --help lists the options";

std::string absolute(const std::string& p) {
  return p.empty() ? p : fs::absolute(fs::path(p)).lexically_normal().string();
}

// Whole or not at all (write_whole_file: a .tmp beside it, then a rename), so a failed run of
// `stages` never leaves a truncated deck or job script where a scheduler could pick it up.
void write_file(const fs::path& path, const std::string& text, bool executable) {
  write_whole_file(path.string(), text);
  if (executable) ::chmod(path.c_str(), 0755);
}

struct Job {  // one stage's request to the scheduler
  int64_t ranks, nodes, per_node, cpus, gpus;
};

Job job_of(const ParallelConfig& q, const Config& cfg, const StagesOptions& opt, size_t i) {
  Job j;
  j.ranks = q.dp * q.tp * q.sp;
  const bool gpu = opt.gpus_per_node >= 0 ? opt.gpus_per_node > 0 : cfg.run.device == Device::cuda;
  j.per_node = opt.ranks_per_node > 0 ? opt.ranks_per_node : gpu ? std::min<int64_t>(8, j.ranks) : j.ranks;
  j.per_node = std::min(j.per_node, j.ranks);
  CHECK_HINT(j.ranks % j.per_node == 0, kHint,
             "stages: stage {} has dp×tp×sp = {}×{}×{} = {} ranks, not a multiple of --ranks-per-node {}",
             i + 1, q.dp, q.tp, q.sp, j.ranks, j.per_node);
  j.nodes = j.ranks / j.per_node;
  j.cpus = opt.cpus_per_rank;
  j.gpus = opt.gpus_per_node >= 0 ? opt.gpus_per_node : gpu ? j.per_node : 0;
  return j;
}

std::string slurm_script(const Config& c, const Job& j, size_t i, const std::string& out,
                         const std::string& home, const std::string& time, const std::string& name) {
  const StageConfig& s = c.stages[i];
  std::string t = fmt::format(
      "#!/bin/bash\n"
      "# Stage {0} of {1}: seq_len {2}, rope_theta {3:g}, {4} steps; dp×tp×sp = {5}×{6}×{7} = {8} ranks\n"
      "# on {9} node(s) × {10} task(s) × {11} CPU(s){12}. Written by `longctx stages`: submit the chain\n"
      "# with submit.sh (this job resumes from the checkpoint the previous stage left in checkpoint.dir).\n"
      "#SBATCH --job-name={13}-s{0}\n#SBATCH --nodes={9}\n#SBATCH --ntasks-per-node={10}\n"
      "#SBATCH --cpus-per-task={11}\n",
      i + 1, c.stages.size(), s.seq_len, s.rope_theta, s.steps, c.parallel.dp, c.parallel.tp, c.parallel.sp,
      j.ranks, j.nodes, j.per_node, j.cpus, j.gpus ? fmt::format(", {} GPU(s) per node", j.gpus) : ", no GPU",
      name);
  if (j.gpus > 0) t += fmt::format("#SBATCH --gpus-per-node={}\n", j.gpus);
  t += fmt::format(
      "#SBATCH --time={0}\n#SBATCH --signal=B:USR1@120\n#SBATCH --requeue\n#SBATCH --open-mode=append\n"
      "#SBATCH --output={1}/{2}-s{3}-%j.out\n"
      "export LONGCTX_HOME=${{LONGCTX_HOME:-{4}}}\n"
      "exec bash \"$LONGCTX_HOME/jobs/slurm_train.sbatch\" \"{1}/stage{3}.toml\" --stop-after-stage {3}\n",
      time, out, name, i + 1, home);
  return t;
}

std::string pbs_script(const Config& c, const Job& j, size_t i, const std::string& out,
                       const std::string& home, const std::string& time, const std::string& name) {
  const StageConfig& s = c.stages[i];
  const std::string gpu = j.gpus ? fmt::format(":ngpus={}", j.gpus) : "";
  return fmt::format(
      "#!/bin/bash\n"
      "# Stage {0} of {1}: seq_len {2}, rope_theta {3:g}, {4} steps; dp×tp×sp = {5}×{6}×{7} = {8} ranks.\n"
      "# Written by `longctx stages`: submit the chain with submit.sh.\n"
      "# Torque instead of PBS Pro: #PBS -l nodes={9}:ppn={10}{14} (no select/mpiprocs/ompthreads;\n"
      "# ppn = ranks per node, as Torque's $PBS_NODEFILE lists one line per ppn slot; -v OMP_NUM_THREADS={11}).\n"
      "#PBS -N {12}-s{0}\n#PBS -l select={9}:ncpus={13}:mpiprocs={10}:ompthreads={11}{15}\n"
      "#PBS -l walltime={16}\n#PBS -j oe\n#PBS -o {17}/{12}-s{0}.out\n#PBS -r y\n"
      "export LONGCTX_HOME=${{LONGCTX_HOME:-{18}}}\n"
      "export DECK=\"{17}/stage{0}.toml\" ARGS=\"--stop-after-stage {0}\"\n"
      "exec bash \"$LONGCTX_HOME/jobs/pbs_train.pbs\"\n",
      i + 1, c.stages.size(), s.seq_len, s.rope_theta, s.steps, c.parallel.dp, c.parallel.tp, c.parallel.sp,
      j.ranks, j.nodes, j.per_node, j.cpus, name, j.per_node * j.cpus,
      j.gpus ? fmt::format(":gpus={}", j.gpus) : "", gpu, time, out, home);
}

std::string submit_script(bool slurm, const std::vector<Job>& jobs, const std::string& deck) {
  std::string t = fmt::format(
      "#!/bin/bash\n"
      "# Submits the {} stage(s) of {} as a chain: each job starts only after the previous one ended\n"
      "# with status 0 ({}). A failed stage, or one interrupted (status 75) and not requeued, keeps the\n"
      "# later ones from running{}.\n",
      jobs.size(), deck, slurm ? "sbatch --dependency=afterok" : "qsub -W depend=afterok",
      slurm ? " (--kill-on-invalid-dep=yes cancels them)" : " (PBS deletes them)");
  const std::string tool = slurm ? "sbatch" : "qsub";
  t += fmt::format("#   submit.sh [--from N] [{0} options for every stage, e.g. {1}]\n"
                   "# --from N submits stages N.. only (after a stage failed or was stopped: each job resumes from\n"
                   "# the newest checkpoint in checkpoint.dir).\n",
                   tool, slurm ? "--partition=gpu --account=proj" : "-q gpu -A proj");
  if (slurm)
    t += "# Before submitting, each stage's request is compared with the cluster's largest node (sinfo), so a\n"
         "# job that could never start is refused here rather than left pending; LONGCTX_NO_CHECK=1 skips it.\n";
  t += "set -euo pipefail\nhere=$(cd \"$(dirname \"${BASH_SOURCE[0]}\")\" && pwd)\nfrom=1\n"
       "if [ \"${1:-}\" = --from ]; then from=${2:-}; shift 2 || true; fi\n"
       "for a in \"$@\"; do case $a in --from | --from=*) echo \"submit.sh: --from N goes first\" >&2; exit 1 ;; esac; done\n";
  t += fmt::format("if ! [[ $from =~ ^[0-9]+$ ]] || [ \"$from\" -lt 1 ] || [ \"$from\" -gt {0} ]; then\n"
                   "  echo \"submit.sh: --from '$from': the stages are 1..{0}\" >&2; exit 1\nfi\n",
                   jobs.size());
  if (slurm)
    t += "fits() {  # stage, CPUs per node, GPUs per node\n"
         "  [ \"${LONGCTX_NO_CHECK:-0}\" = 1 ] && return 0\n"
         "  [ \"$1\" -lt \"$from\" ] && return 0\n"
         "  command -v sinfo >/dev/null || return 0\n"
         "  local most; most=$(sinfo -h -o '%c' 2>/dev/null | tr -d '+' | sort -n | tail -n 1) || return 0\n"
         "  if [ -n \"$most\" ] && [ \"$2\" -gt \"$most\" ]; then\n"
         "    echo \"submit.sh: stage $1 asks for $2 CPUs per node (tasks per node × cpus-per-task), but the largest\" \\\n"
         "         \"node here has $most: it would wait forever. hint: longctx stages --cpus-per-rank N --ranks-per-node N\" >&2\n"
         "    exit 1\n  fi\n"
         "  if [ \"$3\" -gt 0 ] && ! sinfo -h -o '%G' | grep -q gpu; then\n"
         "    echo \"submit.sh: stage $1 asks for $3 GPUs per node, but no node here has GPUs (gres).\" \\\n"
         "         \"hint: run.device = \\\"cpu\\\" or longctx stages --gpus-per-node 0\" >&2\n"
         "    exit 1\n  fi\n}\n";
  for (size_t i = 0; i < jobs.size(); ++i)
    if (slurm) t += fmt::format("fits {} {} {}\n", i + 1, jobs[i].per_node * jobs[i].cpus, jobs[i].gpus);
  // submit STAGE DESCRIPTION: the stage's job, after the previous one submitted here ($prev).
  t += "prev=\"\"\nsubmit() {\n  local dep=() j\n";
  if (slurm)
    t += "  [ -n \"$prev\" ] && dep=(--dependency=afterok:\"$prev\" --kill-on-invalid-dep=yes)\n"
         "  j=$(sbatch --parsable ${dep[@]+\"${dep[@]}\"} ${opts[@]+\"${opts[@]}\"} \"$here/stage$1.sbatch\" | cut -d';' -f1)\n";
  else
    t += "  [ -n \"$prev\" ] && dep=(-W depend=afterok:\"$prev\")\n"
         "  j=$(qsub ${dep[@]+\"${dep[@]}\"} ${opts[@]+\"${opts[@]}\"} \"$here/stage$1.pbs\")\n";
  t += "  echo \"stage $1: job $j ($2)${prev:+, after $prev ends well}\"\n  prev=$j\n}\nopts=(\"$@\")\n";
  for (size_t i = 0; i < jobs.size(); ++i)
    t += fmt::format("[ \"$from\" -le {0} ] && submit {0} \"{1} node(s) × {2} rank(s), {3} GPU(s) per node\"\n", i + 1,
                     jobs[i].nodes, jobs[i].per_node, jobs[i].gpus);
  t += "exit 0\n";
  return t;
}

}  // namespace

void write_stages(const std::string& deck, const StagesOptions& opt) {
  CHECK_HINT(!opt.out.empty(), kHint, "stages: --out DIR is required");
  CHECK_HINT(opt.scheduler == "slurm" || opt.scheduler == "pbs", kHint,
             "stages: --scheduler '{}': expected slurm or pbs", opt.scheduler);
  CHECK_HINT(opt.cpus_per_rank >= 1 && opt.ranks_per_node >= 0, kHint,
             "stages: --cpus-per-rank and --ranks-per-node must be positive");
  const Config cfg = parse_deck(deck, opt.sets);
  const bool slurm = opt.scheduler == "slurm";
  std::error_code ec;
  fs::create_directories(opt.out, ec);
  CHECK_HINT(!ec, "check the path and its permissions", "stages: cannot create --out {}: {}", opt.out, ec.message());
  const std::string out = absolute(opt.out);
  // The repository of this binary (…/build/longctx): the job scripts run its build/longctx.
  const std::string home = fs::canonical("/proc/self/exe").parent_path().parent_path().string();
  std::string name = cfg.run.name.substr(0, 10);
  while (name.size() > 1 && (name.back() == '-' || name.back() == '.')) name.pop_back();
  std::vector<Job> jobs;
  log_info("{}: {} stage(s) -> {} ({} jobs chained with afterok)", deck, cfg.stages.size(), out, opt.scheduler);
  for (size_t i = 0; i < cfg.stages.size(); ++i) {
    Config c = cfg;
    c.parallel = cfg.stage_layout(i);
    // Absolute paths: a batch job starts in another directory (and on another machine).
    c.run.out_dir = absolute(c.run.out_dir), c.checkpoint.dir = absolute(c.checkpoint.dir);
    c.data.path = absolute(c.data.path), c.checkpoint.init_from = absolute(c.checkpoint.init_from);
    const Job j = job_of(c.parallel, c, opt, i);
    jobs.push_back(j);
    const fs::path deck_out = fs::path(out) / fmt::format("stage{}.toml", i + 1);
    write_file(deck_out, fmt::format("# stage {} of {} of {} (written by longctx stages): the whole schedule with\n"
                                     "# [parallel] = stage {}'s layout; its job runs `train --resume --stop-after-stage {}`.\n",
                                     i + 1, cfg.stages.size(), deck, i + 1, i + 1) + to_toml(c), false);
    const fs::path job_out = fs::path(out) / fmt::format("stage{}.{}", i + 1, slurm ? "sbatch" : "pbs");
    write_file(job_out, slurm ? slurm_script(c, j, i, out, home, opt.time, name) : pbs_script(c, j, i, out, home, opt.time, name),
               true);
    const StageConfig& s = cfg.stages[i];
    log_info("  stage {}: seq_len {} rope_theta {:g} steps {} | dp×tp×sp {}×{}×{} = {} rank(s) on {} node(s) × {} "
             "task(s) × {} CPU(s), {} GPU(s) per node | {} {}", i + 1, s.seq_len, s.rope_theta, s.steps,
             c.parallel.dp, c.parallel.tp, c.parallel.sp, j.ranks, j.nodes, j.per_node, j.cpus, j.gpus,
             deck_out.string(), job_out.string());
  }
  const fs::path submit = fs::path(out) / "submit.sh";
  write_file(submit, submit_script(slurm, jobs, deck), true);
  log_info("  checkpoints: {} (every stage resumes from the one before it)", absolute(cfg.checkpoint.dir));
  log_info("submit the chain: {}", submit.string());
}

int stages_main(const std::vector<std::string>& args, int rank) {
  std::string deck;
  StagesOptions opt;
  auto count = [](const std::string& name, const std::string& v, int64_t lo) {
    char* end = nullptr;
    const long long n = std::strtoll(v.c_str(), &end, 10);
    CHECK_ALIKE(!v.empty() && *end == 0 && n >= lo, kHint, "stages: {} '{}' is not a number >= {}", name, v, lo);
    return int64_t(n);
  };
  const std::vector<std::string> with_value = {"--out", "--scheduler", "--set", "--ranks-per-node",
                                               "--cpus-per-rank", "--gpus-per-node", "--time"};
  for (size_t i = 1; i < args.size(); ++i) {
    const std::string& a = args[i];
    const bool takes = std::find(with_value.begin(), with_value.end(), a) != with_value.end();
    CHECK_ALIKE(!takes || i + 1 < args.size(), kHint, "stages: {} needs a value", a);
    if (a == "--out") opt.out = args[++i];
    else if (a == "--scheduler") opt.scheduler = args[++i];
    else if (a == "--set") opt.sets.push_back(args[++i]);
    else if (a.starts_with("--set=")) opt.sets.push_back(a.substr(6));
    else if (a == "--ranks-per-node") opt.ranks_per_node = count(a, args[++i], 1);
    else if (a == "--cpus-per-rank") opt.cpus_per_rank = count(a, args[++i], 1);
    else if (a == "--gpus-per-node") opt.gpus_per_node = count(a, args[++i], 0);
    else if (a == "--time") opt.time = args[++i];
    else if (!a.starts_with("-") && deck.empty()) deck = a;
    else CHECK_ALIKE(false, kHint, "stages: unexpected argument '{}'", a);
  }
  CHECK_ALIKE(!deck.empty(), "longctx stages input/llama3_8b_1m.toml --out jobs/llama --scheduler slurm",
              "stages: no deck given");
  CHECK_ALIKE(!opt.out.empty(), kHint, "stages: --out DIR is required");
  CHECK_ALIKE(opt.scheduler == "slurm" || opt.scheduler == "pbs", kHint,
              "stages: --scheduler '{}': expected slurm or pbs", opt.scheduler);
  if (rank == 0) write_stages(deck, opt);
  return 0;
}

}  // namespace longctx
