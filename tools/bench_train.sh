#!/usr/bin/env bash
# Training throughput on the GPU: longctx's step (input/gpu_134m.toml, input/gpu_1b.toml, --set for
# the sequence length and recompute), the median tok/s of the steps after the first two.
#   tools/bench_train.sh DECK T [recompute] [steps] [longctx options...]
#     e.g. tools/bench_train.sh input/gpu_134m.toml 65536 1
# Prints one line: "longctx DECK T=...: N tok/s (median of steps 3..), model TFLOP/s, gpu MiB".
# LONGCTX_LAUNCH runs it under a launcher (e.g. "mpirun -np 8"); the model TFLOP/s are then the
# whole job's, also given per rank.
set -uo pipefail
deck=$1 T=$2 rc=${3:-0} steps=${4:-10}
shift $(( $# < 4 ? $# : 4 ))
out=$(mktemp -d)
${LONGCTX_LAUNCH:-} build/longctx train "$deck" --fresh --set run.out_dir="$out" --set stage.1.seq_len="$T" \
  --set stage.1.steps="$steps" --set model.recompute=$([ "$rc" = 1 ] && echo true || echo false) \
  --set checkpoint.every=0 --set optim.warmup_steps=$(( steps < 3 ? 0 : 2 )) "$@" > "$out/log" 2>&1
status=$?
if [ $status -ne 0 ]; then echo "longctx $deck T=$T recompute=$rc: exit $status"; tail -5 "$out/log"; exit $status; fi
grep -m1 "^device: " "$out/log"
ranks=$(grep -m1 -o "([0-9]* ranks)" "$out/log" | tr -dc 0-9); ranks=${ranks:-1}
python3 - "$out/metrics.jsonl" "$deck" "$T" "$rc" "$ranks" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
rows = rows[2:] if len(rows) > 3 else rows[-1:]
tok = statistics.median(r["tok_per_s"] for r in rows)
fl = statistics.median(r["flop_per_s"] for r in rows)
gpu = max(r.get("gpu_mib", 0) for r in rows)
print(f"longctx {sys.argv[2]} T={sys.argv[3]} recompute={sys.argv[4]}: {tok:.0f} tok/s (median of {len(rows)} steps), "
      f"model {fl/1e12:.1f} TFLOP/s" + (f" ({fl/1e12/int(sys.argv[5]):.1f} per rank, {sys.argv[5]} ranks)" if int(sys.argv[5]) > 1 else "") +
      f", gpu {gpu:.0f} MiB, loss {rows[0]['loss']:.3f} -> {rows[-1]['loss']:.3f}")
PY
rm -rf "$out"
