#!/bin/bash
# Submits one Slurm job per context-extension stage, each starting when the previous one ends, so
# every stage gets the node count it needs (longer sequences: more sequence-parallel ranks).
#   jobs/slurm_chain.sh DECK.toml NODES_STAGE1 NODES_STAGE2 ... [-- extra train options]
# e.g. jobs/slurm_chain.sh input/llama3_8b_1m.toml 2 4 16 32
# Stage i runs `longctx train DECK --resume --stop-after-stage i --set parallel.sp=S_i` where S_i
# is chosen so that dp·tp·S_i = nodes_i × 8 ranks (dp and tp from the deck). The checkpoint written
# at the end of stage i is read by stage i+1 under its own layout (checkpoints are layout-free).
# Dependencies are afterany: a job cut off by its time limit is followed by the next, which
# resumes from the newest checkpoint; resubmit the same stage if it did not finish.
set -euo pipefail
deck=${1:?usage: jobs/slurm_chain.sh DECK.toml NODES... [-- options]}
shift
nodes=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do nodes+=("$1"); shift; done
[ "${1:-}" = "--" ] && shift
ranks_per_node=${RANKS_PER_NODE:-8}
dp=$(sed -n 's/^dp *= *\([0-9]*\).*/\1/p' "$deck" | head -1); dp=${dp:-1}
tp=$(sed -n 's/^tp *= *\([0-9]*\).*/\1/p' "$deck" | head -1); tp=${tp:-1}
prev=""
for i in "${!nodes[@]}"; do
  stage=$((i + 1))
  ranks=$((nodes[i] * ranks_per_node))
  if [ $((ranks % (dp * tp))) -ne 0 ]; then
    echo "stage $stage: $ranks ranks are not a multiple of dp·tp = $((dp * tp))" >&2; exit 1
  fi
  sp=$((ranks / (dp * tp)))
  dep=${prev:+--dependency=afterany:$prev}
  prev=$(sbatch --parsable --nodes="${nodes[i]}" --ntasks-per-node="$ranks_per_node" \
         --job-name="longctx-s$stage" $dep jobs/slurm_train.sbatch "$deck" \
         --stop-after-stage "$stage" --set parallel.sp="$sp" "$@")
  echo "stage $stage: job $prev, ${nodes[i]} node(s), dp×sp×tp = ${dp}×${sp}×${tp}"
done
