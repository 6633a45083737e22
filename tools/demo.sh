#!/usr/bin/env bash
# tools/demo.sh — `make run`: the context-extension demo on the CPU (docs/RESULTS.md).
#   1. import the shipped base model (input/demo_base/: 256 tokens, RoPE theta 1e4; `make demo-base`
#      trains it) and evaluate it at 256 .. 1024 tokens: it retrieves at 256, not at 1024;
#   2. extend it ×4 to 1024 tokens (1000 steps) with theta scaled ×16 (input/demo_extend.toml) and, beside it on
#      the other core, the same extension with theta held (input/demo_extend_theta_held.toml); each
#      evaluates its final checkpoint (eval.after_each_stage);
#   3. print the three needle tables and where the heatmaps are.
# Everything goes to runs/demo (removed first). About 11 minutes on 2 cores (638 s measured).
set -euo pipefail
cd "$(dirname "$0")/.."
B=build/longctx
D=runs/demo
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
rm -rf "$D"
mkdir -p "$D"
start=$(date +%s)
stamp() { echo "[$(( $(date +%s) - start )) s] $*"; }

stamp "1/3 the base model: input/demo_base/ -> $D/base.h5"
$B import-hf input/demo_base -o "$D/base.h5" > "$D/import.log" 2>&1 || { cat "$D/import.log"; exit 1; }
$B eval input/demo_extend.toml --checkpoint "$D/base.h5" --set run.out_dir="$D/base" > "$D/base.log" 2>&1 \
  || { cat "$D/base.log"; exit 1; }

stamp "2/3 extending to 1024 tokens: theta 1.6e5 ($D/extend.log) and theta held at 1e4 ($D/theta_held.log)"
$B train input/demo_extend.toml --fresh > "$D/extend.log" 2>&1 & scaled=$!
$B train input/demo_extend_theta_held.toml --fresh > "$D/theta_held.log" 2>&1 & held=$!
ok=0
wait $scaled || { ok=1; tail -n 20 "$D/extend.log"; }
wait $held || { ok=1; tail -n 20 "$D/theta_held.log"; }
[ $ok = 0 ] || exit 1

table() {  # the needle table of a log: the header line and the rows under it
  sed -n '/^needle-in-a-haystack:/,/^results appended\|^needle results appended/p' "$1" | grep -v '^results\|^needle results'
}
stamp "3/3 results (pass-key retrieval by context length and needle depth)"
echo; echo "BEFORE: the base model (trained at 256 tokens, theta 1e4)"; table "$D/base.log"
echo; echo "AFTER: extended to 1024 tokens, theta 1e4 -> 1.6e5"; table "$D/extend.log"
echo; echo "ABLATION: extended to 1024 tokens, theta held at 1e4"; table "$D/theta_held.log"
echo
echo "heatmaps:"; ls -1 "$D"/base/*.png "$D"/extend/*.png "$D"/theta_held/*.png
echo "needle results (JSON lines): $D/{base,extend,theta_held}/needle_eval.jsonl"
stamp "done"
