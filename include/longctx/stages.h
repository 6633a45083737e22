// stages.h — `longctx stages`: one deck and one batch job per context-extension stage, each with
// its own process grid ([[stage]] dp/tp/sp), chained so that stage i+1 starts only after stage i
// ended well (Slurm: sbatch --dependency=afterok; PBS: qsub -W depend=afterok).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace longctx {

struct StagesOptions {
  std::string out;                 // directory for the decks, the job scripts and submit.sh
  std::string scheduler;           // "slurm" | "pbs"
  std::vector<std::string> sets;   // --set overrides, applied to the deck before splitting
  int64_t ranks_per_node = 0;      // 0: 8 for GPU runs (one rank per GPU), else all ranks on one node
  int64_t cpus_per_rank = 1;       // CPU threads per rank (cpus-per-task, ompthreads)
  int64_t gpus_per_node = -1;      // -1: one per rank when run.device = "cuda", else none
  std::string time = "04:00:00";   // wall time per stage
};

// Writes OUT/stageN.toml, OUT/stageN.sbatch|.pbs and OUT/submit.sh; prints what it wrote.
// Single process (under MPI, rank 0 writes). Throws Error on a bad option or layout.
void write_stages(const std::string& deck, const StagesOptions& opt);
// `longctx stages DECK --out DIR --scheduler slurm|pbs [...]`: args[0] is "stages". Rank 0 writes.
int stages_main(const std::vector<std::string>& args, int rank);

}  // namespace longctx
