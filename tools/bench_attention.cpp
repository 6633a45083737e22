// bench_attention.cpp — forward and backward TFLOP/s of longctx's GPU flash attention, in the
// format of shared/bench/torch_reference.py so the two print side by side (run both in one call:
// tools/gpu_check.sh). Not a test: numbers go to docs/PERFORMANCE.md with date, GPU and peer.
//   build/bench_attention [--T 4096,16384,65536] [--hd 128,64] [--heads 16] [--tokens 16384]
//                         [--noncausal] [--iters 10] [--fwd auto|mma|wgmma] [--bwd auto|mma|wgmma]
// B = max(1, tokens / T). FLOPs: fwd 4·B·H·T²·hd (halved when causal); bwd 2.5 × fwd.
// Inputs random normal (never zeros); medians of CUDA-event timings after 3 warm-up runs.
// --fwd / --bwd pick the kernel, passed to each flash_fwd / flash_bwd call (default auto: wgmma
// on Hopper, mma.sync elsewhere); the bwd time includes flash_delta.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "longctx/common.h"
#include "bench_args.h"
#include "longctx/flash.h"

using namespace longctx;

namespace {

// "auto", "mma" or "wgmma" (as FwdKernel or BwdKernel).
template <class K>
K kernel_named(const std::string& name, const char* option) {
  if (name == "auto") return K::kAuto;
  if (name == "mma") return K::kMmaSync;
  if (name == "wgmma") return K::kWgmma;
  std::fprintf(stderr, "%s '%s': expected auto, mma or wgmma\n", option, name.c_str());
  std::exit(2);
}

void ok(cudaError_t e, const char* what) {
  CHECK(e == cudaSuccess, "{}: {}", what, cudaGetErrorString(e));
}

template <class F>
double median_ms(F&& fn, int iters) {
  cudaEvent_t a, b;
  ok(cudaEventCreate(&a), "event"), ok(cudaEventCreate(&b), "event");
  for (int i = 0; i < 3; ++i) fn();
  std::vector<float> t;
  for (int i = 0; i < iters; ++i) {
    ok(cudaEventRecord(a), "record");
    fn();
    ok(cudaEventRecord(b), "record");
    ok(cudaEventSynchronize(b), "sync");
    float ms = 0;
    ok(cudaEventElapsedTime(&ms, a, b), "elapsed");
    t.push_back(ms);
  }
  cudaEventDestroy(a), cudaEventDestroy(b);
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<int64_t> Ts = {4096, 16384, 65536}, hds = {128, 64};
  int64_t H = 16, tokens = 16384;
  int iters = 10;
  bool causal = true;
  std::string fwd_name = "auto", bwd_name = "auto";
  try {
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      auto next = [&]() -> std::string {
        if (i + 1 >= argc) throw std::invalid_argument(a + " needs a value");
        return argv[++i];
      };
      if (a == "--T") Ts = bench::int_list(a, next());
      else if (a == "--hd") hds = bench::int_list(a, next());
      else if (a == "--heads") H = bench::integer(a, next());
      else if (a == "--tokens") tokens = bench::integer(a, next());
      else if (a == "--iters") iters = int(bench::integer(a, next()));
      else if (a == "--noncausal") causal = false;
      else if (a == "--fwd") fwd_name = next();
      else if (a == "--bwd") bwd_name = next();
      else throw std::invalid_argument("unknown option " + a + " (see the file's header)");
    }
  } catch (const std::invalid_argument& e) {
    std::fprintf(stderr, "bench_attention: %s\n", e.what());
    return 2;
  }
  const auto fwd_kernel = kernel_named<gpu::FwdKernel>(fwd_name, "--fwd");
  const auto bwd_kernel = kernel_named<gpu::BwdKernel>(bwd_name, "--bwd");  // mma: deterministic
  try {
    cudaDeviceProp prop{};
    ok(cudaGetDeviceProperties(&prop, 0), "cudaGetDeviceProperties");
    std::printf("longctx flash attention on %s (forward: %s, backward: %s)\n", prop.name, fwd_name.c_str(),
                bwd_name.c_str());
    for (int64_t hd : hds)
      for (int64_t T : Ts) {
        const int64_t B = std::max<int64_t>(1, tokens / T), n = B * T * H * hd;
        uint16_t *q, *k, *v, *o, *dout;
        float *lse, *delta, *dq, *dk, *dv;
        for (uint16_t** p : {&q, &k, &v, &o, &dout}) ok(cudaMalloc(p, size_t(n) * 2), "cudaMalloc");
        for (float** p : {&dq, &dk, &dv}) ok(cudaMalloc(p, size_t(n) * 4), "cudaMalloc");
        ok(cudaMalloc(&lse, size_t(B * T * H) * 4), "cudaMalloc"), ok(cudaMalloc(&delta, size_t(B * T * H) * 4), "cudaMalloc");
        uint64_t seed = 1;
        for (uint16_t* p : {q, k, v, dout}) gpu::fill_normal_bf16(p, n, seed++);
        const auto s = gpu::flash_shape(B, T, T, H, H, hd, causal ? gpu::Mask::kCausal : gpu::Mask::kFull);
        const double fwd_flops = 4.0 * B * H * double(T) * T * hd / (causal ? 2 : 1);
        const double ms_f = median_ms([&] { gpu::flash_fwd(s, q, k, v, o, nullptr, lse, nullptr, fwd_kernel); }, iters);
        const double ms_b = median_ms([&] {
          gpu::flash_delta(s, o, dout, delta);
          gpu::flash_bwd(s, q, k, v, dout, lse, delta, dq, dk, dv, nullptr, bwd_kernel);
        }, iters);
        std::printf("longctx %s hd=%ld H=%ld B=%ld T=%ld: fwd %.0f TFLOP/s (%.3f ms), bwd %.0f TFLOP/s (%.3f ms)\n",
                    causal ? "causal" : "full", long(hd), long(H), long(B), long(T), fwd_flops / ms_f / 1e9, ms_f,
                    2.5 * fwd_flops / ms_b / 1e9, ms_b);
        std::fflush(stdout);
        for (void* p : {(void*)q, (void*)k, (void*)v, (void*)o, (void*)dout, (void*)lse, (void*)delta, (void*)dq,
                        (void*)dk, (void*)dv})
          cudaFree(p);
      }
  } catch (const Error& e) {
    std::fprintf(stderr, "%s\n", e.report().c_str());
    return 1;
  }
  return 0;
}
