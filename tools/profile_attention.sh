#!/usr/bin/env bash
# Nsight Compute's full set on one launch of each flash-attention kernel at one shape (after the
# benchmark's warm-up), printed as text: what limits a kernel (tensor pipe vs shared-memory
# bandwidth vs stalls), for docs/PERFORMANCE.md. Run on the GPU node after a CUDA build:
#   tools/profile_attention.sh [HD] [T]        (default 64 16384; logs in $OUT or build/gpu-out)
# Kernels: the wgmma forward, the wgmma backward (kernel_hs64 or kernel_hs128), flash_delta.
set -uo pipefail
OUT=${OUT:-build/gpu-out}
hd=${1:-64}
T=${2:-16384}
mkdir -p "$OUT"
: > "$OUT/ncu_attention_hd$hd.txt"
for k in flash_fwd_wgmma_kernel kernel_hs flash_delta; do
  ncu --set full --import-source no --launch-count 1 --kernel-name regex:"$k" \
    build/bench_attention --T "$T" --hd "$hd" --iters 1 >> "$OUT/ncu_attention_hd$hd.txt" 2>> "$OUT/ncu_attention_hd$hd.err"
  echo "ncu $k rc=$?"
done
grep -E "^  [a-z_].*\(|Duration|Compute \(SM\) Throughput|Memory Throughput|L1/TEX Hit|Shared Memory|Registers Per|Achieved Occupancy|Issue Slots Busy|No Eligible|Warp Cycles Per Issued|Stall|Tensor|Executed Ipc" \
  "$OUT/ncu_attention_hd$hd.txt" | head -150
