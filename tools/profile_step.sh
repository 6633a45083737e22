#!/usr/bin/env bash
# GPU time per kernel of a training step (Nsight Compute, clocks left alone): runs DECK for
# STEPS steps (default 2) at T under ncu, one metric (gpu__time_duration), and prints the kernels
# by total time per step with their share. Host gaps do not show here: compare the sum with the
# step's time.
#   [STEPS=1] tools/profile_step.sh DECK T [more --set ...]   e.g. tools/profile_step.sh input/gpu_134m.toml 8192
# ncu replays every kernel, so the time grows with the launches: the 1B's two steps ran past 300 s
# (session 8). STEPS=1 halves it; --set model.n_layers=4 cuts the per-layer kernels 4× (the LM head
# and the optimizer stay whole: scale the layers' rows by n_layers / 4 when reading the table).
set -uo pipefail
deck=$1 T=$2; shift 2
steps=${STEPS:-2}
out=$(mktemp -d)
ncu --clock-control none --metrics gpu__time_duration.sum --csv --print-units base \
  build/longctx train "$deck" --fresh --set run.out_dir="$out" --set stage.1.seq_len="$T" \
  --set stage.1.steps="$steps" --set checkpoint.every=0 "$@" > "$out/ncu.csv" 2> "$out/err" || { tail "$out/err"; exit 1; }
python3 - "$out/ncu.csv" "$steps" <<'PY'
import csv, sys, collections, re
steps = int(sys.argv[2])
rows = [r for r in csv.reader(l for l in open(sys.argv[1]) if l.startswith('"'))]
hdr = rows[0]; rows = rows[1:]
ki, vi = hdr.index("Kernel Name"), hdr.index("Metric Value")
tot = collections.Counter(); cnt = collections.Counter()
for r in rows:
    name = re.sub(r"\(.*", "", r[ki])[:70]
    tot[name] += float(r[vi].replace(",", "")) / (1e6 * steps)  # ns over the steps -> ms per step
    cnt[name] += 1.0 / steps
s = sum(tot.values())
print(f"GPU kernel time per step: {s:.2f} ms over {int(sum(cnt.values()))} launches")
for k, v in tot.most_common(25):
    print(f"{v:8.3f} ms {100*v/s:5.1f}%  x{cnt[k]:<6g} {k}")
PY
rm -rf "$out"
