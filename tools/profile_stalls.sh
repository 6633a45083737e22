#!/usr/bin/env bash
# Why the warps of the flash-attention kernels wait: Nsight Compute's stall reasons (cycles per
# issued instruction, by reason) for one launch of each kernel at one shape, sorted.
#   tools/profile_stalls.sh [HD] [T]     (default 64 16384; log in $OUT or build/gpu-out)
set -uo pipefail
OUT=${OUT:-build/gpu-out}
hd=${1:-64}
T=${2:-16384}
mkdir -p "$OUT"
for k in flash_fwd_wgmma_kernel kernel_hs; do
  ncu --launch-count 1 --kernel-name regex:"$k" --csv --page raw \
    --metrics regex:'smsp__average_warps_issue_stalled_.*_per_issue_active\.ratio' \
    build/bench_attention --T "$T" --hd "$hd" --iters 1 > "$OUT/stalls_$k.csv" 2> "$OUT/stalls_$k.err"
  echo "== $k (hd $hd, T $T): stall cycles per issued instruction, by reason"
  python3 - "$OUT/stalls_$k.csv" <<'PY'
import csv, sys
rows = [r for r in csv.reader(open(sys.argv[1])) if r]
i = next(n for n, r in enumerate(rows) if "Kernel Name" in r)
head, vals = rows[i], rows[i + 2]
out = []
for h, v in zip(head, vals):
    if h.startswith("smsp__average_warps_issue_stalled_"):
        try: out.append((float(v.replace(",", "")), h[len("smsp__average_warps_issue_stalled_"):-len("_per_issue_active.ratio")]))
        except ValueError: pass
for v, name in sorted(out, reverse=True)[:12]: print(f"  {name:28s} {v:6.2f}")
PY
done
