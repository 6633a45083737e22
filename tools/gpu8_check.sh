#!/usr/bin/env bash
# Issue 11 on one node of 8 GPUs, in as few device calls as the steps allow (each step's log in
# $OUT, default build/gpu-out). NVLink multicast stays off (NCCL_NVLS_ENABLE=0) in every launch.
#   tools/gpu8_check.sh [build] [correct] [fail] [ring] [scale] [llama8b]     (default: all)
# build    make with CUDA
# correct  the [gpu8] tests over NCCL: tp2×sp4, tp8, sp8, dp2×sp4, both tp modes, zigzag and
#          contiguous against one GPU; 20-step curves; a checkpoint resumed at another layout
# fail     a failure injected on rank 3 at step 2 (LONGCTX_FAIL_AT) must end all 8 ranks within
#          seconds, with a non-zero status (MPI_Abort ends the job; no rank waits in NCCL)
# ring     build/bench_ring at sp = 8, 8K and 32K tokens per GPU, hd 128 and 64, against the ideal,
#          then its compute-only bound on GPU 0 alone (--simulate 8), the prediction in the same call
# scale    one training step of the 134M at 4M tokens and the 1B at 1M (recompute), tok/s, MFU
# llama8b  longctx plan of the seed's schedule, then its first stage (64K) at tp = 8 for 3 steps
set -uo pipefail
OUT=${OUT:-build/gpu-out}
mkdir -p "$OUT"
steps=${*:-build correct fail ring scale llama8b}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1 NCCL_NVLS_ENABLE=0
MPI="mpirun --oversubscribe -np 8 -x NCCL_NVLS_ENABLE -x OPENBLAS_NUM_THREADS"
gpus=$(nvidia-smi -L | wc -l)
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | sort | uniq -c | tee "$OUT/gpu.txt"
nvidia-smi topo -m > "$OUT/topo.txt" 2>&1
if [ "$gpus" -lt 8 ]; then echo "gpu8_check: $gpus GPU(s) here; these steps need 8"; exit 1; fi
if [[ $steps == *build* ]]; then
  make -j"$(nproc)" CUDA=1 GPU_ARCH=${GPU_ARCH:-90} all build/longctx_tests build/bench_attention build/bench_ring \
    > "$OUT/build.log" 2>&1 || { tail -30 "$OUT/build.log"; exit 1; }
  echo "build: ok"
fi
if [[ $steps == *correct* ]]; then
  $MPI build/longctx_tests '[gpu8]' > "$OUT/gpu8_tests.log" 2>&1
  echo "[gpu8] tests over NCCL rc=$?"; tail -3 "$OUT/gpu8_tests.log"
  grep -A2 "warning:" "$OUT/gpu8_tests.log" | grep -v "^--" | head -40
fi
if [[ $steps == *fail* ]]; then
  t0=$(date +%s%N)
  LONGCTX_FAIL_AT=3:2 timeout 300 $MPI -x LONGCTX_FAIL_AT build/longctx train input/gpu_134m.toml --fresh \
    --set run.out_dir="$OUT/fail" --set stage.1.seq_len=65536 --set parallel.sp=8 --set stage.1.steps=6 \
    --set checkpoint.every=0 > "$OUT/fail.log" 2>&1
  rc=$?
  echo "failure injected on rank 3 at step 2: exit $rc after $(( ($(date +%s%N) - t0) / 1000000 )) ms (124: timed out, a hang)"
  grep -m3 -E "error|injected|Abort" "$OUT/fail.log"
fi
if [[ $steps == *ring* ]]; then
  {
    for hd in 128 64; do $MPI build/bench_ring --tloc 8192,32768 --hd $hd; done
    for hd in 128 64; do CUDA_VISIBLE_DEVICES=0 build/bench_ring --simulate 8 --tloc 8192,32768 --hd $hd; done
  } 2>&1 | tee "$OUT/ring.log"
fi
if [[ $steps == *scale* ]]; then
  {
    LONGCTX_LAUNCH=$MPI tools/bench_train.sh input/gpu_134m_4m_8gpu.toml 4194304 1 2
    LONGCTX_LAUNCH=$MPI tools/bench_train.sh input/gpu_1b_1m_8gpu.toml 1048576 1 2
  } 2>&1 | tee "$OUT/scale.log"
fi
if [[ $steps == *llama8b* ]]; then
  build/longctx plan input/llama3_8b_1m.toml --gpu-memory "$(nvidia-smi --query-gpu=memory.total --format=csv,noheader,nounits | head -1)M" \
    > "$OUT/plan_8b.txt" 2>&1; echo "plan (seed schedule) rc=$?"; grep -E "^== |GPU: |verdict" "$OUT/plan_8b.txt"
  LONGCTX_LAUNCH=$MPI tools/bench_train.sh input/llama3_8b_1m.toml 65536 1 3 --set stage.1.sp=1 --set parallel.sp=1 \
    --set stage.1.batch_accum=1 --set data.kind=needle --set checkpoint.init_from='""' --stop-after-stage 1 \
    2>&1 | tee "$OUT/llama8b.log"
fi
