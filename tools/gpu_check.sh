#!/usr/bin/env bash
# On the GPU node, in one call: build with CUDA, run the [gpu] tests (optionally under
# compute-sanitizer), then the attention benchmark beside shared/bench/torch_reference.py on the
# same GPU. Logs go to $OUT (default build/gpu-out).
#   tools/gpu_check.sh [build] [test] [sanitize] [bench]      (default: build test bench)
set -uo pipefail
OUT=${OUT:-build/gpu-out}
mkdir -p "$OUT"
steps=${*:-build test bench}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader | tee "$OUT/gpu.txt"
if [[ $steps == *build* ]]; then
  t0=$(date +%s)
  make -j16 CUDA=1 GPU_ARCH=${GPU_ARCH:-90} all build/longctx_tests build/bench_attention NVCC_EXTRA="-Xptxas -v" \
    > "$OUT/build.log" 2>&1 || { tail -40 "$OUT/build.log"; exit 1; }
  echo "build: $(( $(date +%s) - t0 )) s"; head -1 "$OUT/build.log"
  grep -E "registers|spill" "$OUT/build.log" | paste - - | sed 's/ptxas info *: //' | sort | uniq -c | head -20
fi
if [[ $steps == *test* ]]; then
  build/longctx_tests '[gpu]' > "$OUT/gpu_tests.log" 2>&1; echo "gpu tests rc=$?"; tail -4 "$OUT/gpu_tests.log"
  grep -B2 -A8 FAILED "$OUT/gpu_tests.log" | head -60
fi
if [[ $steps == *sanitize* ]]; then
  for tool in memcheck racecheck; do
    compute-sanitizer --tool $tool --error-exitcode 9 build/longctx_tests '[gpu]' > "$OUT/sanitize_$tool.log" 2>&1
    echo "compute-sanitizer $tool rc=$?"; tail -3 "$OUT/sanitize_$tool.log"
  done
fi
if [[ $steps == *bench* ]]; then
  ref=shared/bench/torch_reference.py; [ -f $ref ] || ref=../shared/bench/torch_reference.py
  {
    build/bench_attention --fwd mma --bwd mma --T 16384 --hd 128,64 | sed 's/^longctx/longctx(mma.sync)/'
    build/bench_attention --T 4096 --tokens 16384 --hd 128,64
    build/bench_attention --T 16384,65536 --tokens 16384 --hd 128,64
    build/bench_attention --T 16384 --hd 128 --noncausal
    if [ -f "$ref" ]; then
      python3 $ref --what ceilings
      python3 $ref --what attention --T 4096 --batch 4 --hd 128,64
      python3 $ref --what attention --T 16384,65536 --batch 1 --hd 128,64
      python3 $ref --what attention --T 16384 --batch 1 --hd 128 --noncausal
    else echo "torch_reference.py not found"; fi
  } 2>&1 | grep -v Warning | tee "$OUT/bench.log"
fi
