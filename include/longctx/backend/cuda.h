// backend/cuda.h — the CUDA backend: the contract of backend/cpu.h on one GPU, with
// bf16 activations and weights (Act = Param = bf16), fp32 gradients, master weights and moments,
// fp32 (O, LSE) ring partials and row statistics. Its ops are the kernels of cuda/ (cuda_ops.h),
// the flash attention of flash.h and the cuBLASLt products of cuda_gemm.h, all enqueued on the
// backend's one stream (compute() == comm(): the staged MPI transport synchronises that stream
// before it moves data; NcclComm runs the ring's exchanges on a communication stream of its own,
// ordered against this one by events, so they overlap the attention kernels: comm_nccl.h).
//
// Memory: alloc() is cudaMalloc, zeroed; the ops' working space (embedding and RMSNorm backward
// partials, reduction results) is one device buffer
// taken by reserve_scratch() at a stage's start, never in the step. Host scalars (the sums of
// squares, the LM head's loss sum) come back with one synchronising download each.
// Declared everywhere; defined only in CUDA builds (LONGCTX_CUDA): src/backend/cuda/backend.cpp.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "longctx/backend/cpu.h"
#include "longctx/comm.h"
#include "longctx/tensor.h"

namespace longctx {

namespace gpu {
class Blas;
}

// Which device a rank uses, and how its ops choose kernels.
struct CudaOptions {
  int device = 0;              // CUDA device ordinal (the node-local rank's GPU)
  bool deterministic = false;  // atomics-free kernels only (the mma.sync attention backward)
};

class Cuda {
 public:
  using Act = bf16;
  using Param = bf16;
  static constexpr const char* kName = "cuda";
  static constexpr bool kHostMemory = false;
  // The LM head's logits chunk (fp32 logits): 256 MiB, e.g. 2,097 rows of a 32,000-token vocabulary
  // per GEMM: large enough for the products to run near the ceiling.
  static constexpr size_t kLogitsBytes = size_t(256) << 20;

  explicit Cuda(const CudaOptions& o = {});
  ~Cuda();
  Cuda(const Cuda&) = delete;
  Cuda& operator=(const Cuda&) = delete;
  const CudaOptions& options() const { return opt_; }
  // "NVIDIA H200 (device 0, 139.8 GiB)"
  std::string describe() const;

  struct Free {
    void operator()(void* p) const;
  };
  using Memory = std::unique_ptr<void, Free>;
  Memory alloc(size_t bytes) const;  // zeroed, 256-byte aligned (cudaMalloc), null for 0 bytes

  // A function of the shapes alone (no device touched): the memory plan counts it for any rank.
  static size_t op_scratch_bytes(const ScratchShape& s);
  void reserve_scratch(size_t bytes) const;  // grows the working space (at a stage's start)

  Stream compute() const { return {stream_}; }
  Stream comm() const { return {stream_}; }
  void sync() const;  // waits for the stream
  // Device memory in use now (cudaMemGetInfo: total − free, every process on this GPU). Nothing is
  // allocated in the step loop, so after a stage's first step this is its peak.
  size_t device_bytes_used() const;

  // Copies n host tokens into `device` (at least n) and returns the view of them.
  Tensor<const int32_t> upload(Tensor<int32_t> device, const int32_t* host, int64_t n) const;
  template <class T>
  void upload(Tensor<T> dst, const T* host) const;   // dst.numel() elements, synchronous
  template <class T>
  void download(T* host, Tensor<const T> src) const;  // src.numel() elements, synchronous

  // ---- elementwise ----
  void fill(Tensor<float> x, float value) const;
  void fill(Tensor<bf16> x, float value) const;    // value rounded to bf16
  void fill(Tensor<double> x, float value) const;  // value 0 only
  template <class T>
  void copy(Tensor<T> dst, Tensor<const T> src) const;
  void cast(Tensor<bf16> out, Tensor<const float> in) const;  // round to nearest even
  void add(Tensor<bf16> out, Tensor<const bf16> a, Tensor<const bf16> b) const;
  void add(Tensor<float> out, Tensor<const float> a, Tensor<const float> b) const;
  void sum_squares(Tensor<double> out, Tensor<const float> x, float s = 1.0f) const;  // out (1) = Σ (x·s)²

  // ---- the model's ops: backend/cpu.h's names and shapes ----
  void linear_fwd(Tensor<bf16> out, Tensor<const bf16> in, Tensor<const bf16> W) const;
  void linear_fwd(Tensor<float> out, Tensor<const bf16> in, Tensor<const bf16> W) const;  // fp32 logits
  // din (bf16) = or += dout · W (an accumulation is summed in fp32 and rounded once); dW fp32 +=.
  void linear_bwd(Tensor<bf16> din, Tensor<float> dW, Tensor<const bf16> dout, Tensor<const bf16> in,
                  Tensor<const bf16> W, bool accumulate_din) const;
  void rmsnorm_fwd(Tensor<bf16> out, Tensor<float> rstd, Tensor<const bf16> in, Tensor<const bf16> w,
                   float eps) const;
  // din += (as the CPU), dw += (fp32, fixed order).
  void rmsnorm_bwd(Tensor<bf16> din, Tensor<float> dw, Tensor<const bf16> dout, Tensor<const bf16> in,
                   Tensor<const bf16> w, Tensor<const float> rstd) const;
  // The tables of cpu::rope_table (angles in double on the host), uploaded.
  void rope_table(Tensor<float> cos_t, Tensor<float> sin_t, std::span<const int64_t> pos, double theta) const;
  void rope_apply(Tensor<bf16> x, Tensor<const float> cos_t, Tensor<const float> sin_t, int sign) const;
  void swiglu_fwd(Tensor<bf16> out, Tensor<const bf16> gate, Tensor<const bf16> up) const;
  void swiglu_bwd(Tensor<bf16> dgate, Tensor<bf16> dup, Tensor<const bf16> dout, Tensor<const bf16> gate,
                  Tensor<const bf16> up) const;
  void embedding_fwd(Tensor<bf16> out, Tensor<const int32_t> tok, Tensor<const bf16> table, int64_t v0) const;
  void embedding_bwd(Tensor<float> dtable, Tensor<const bf16> dout, Tensor<const int32_t> tok, int64_t v0) const;

  // Flash attention of one block (flash.h), at the block's global offsets: HS 64 or 128.
  void attention_fwd(Tensor<float> o, Tensor<float> lse, Tensor<const bf16> q, Tensor<const bf16> k,
                     Tensor<const bf16> v, const cpu::AttnShape& s, bool merge) const;
  void attention_delta(Tensor<float> delta, Tensor<const bf16> o, Tensor<const bf16> dout,
                       const cpu::AttnShape& s) const;
  void attention_bwd(Tensor<float> dq, Tensor<float> dk, Tensor<float> dv, Tensor<const bf16> dout,
                     Tensor<const bf16> q, Tensor<const bf16> k, Tensor<const bf16> v,
                     Tensor<const float> lse, Tensor<const float> delta, const cpu::AttnShape& s,
                     bool accumulate_dkv = true) const;

  void xent_row_max(Tensor<float> mx, Tensor<const float> z) const;
  void xent_row_sum(Tensor<double> sum, Tensor<double> zt, Tensor<const float> z, Tensor<const float> mx,
                    Tensor<const int32_t> target, int64_t v0) const;
  void xent_rows(Tensor<float> loss, Tensor<uint8_t> top1, Tensor<const float> mx, Tensor<const double> sum,
                 Tensor<const double> zt, Tensor<const int32_t> target, Tensor<double> acc) const;
  void xent_grad(Tensor<float> z, Tensor<const float> mx, Tensor<const double> sum,
                 Tensor<const int32_t> target, int64_t v0, float scale) const;
  // The same gradient written as bf16 into dz (z unchanged): the LM head's products read it.
  void xent_grad(Tensor<bf16> dz, Tensor<const float> z, Tensor<const float> mx, Tensor<const double> sum,
                 Tensor<const int32_t> target, int64_t v0, float scale) const;

  void adamw(Tensor<float> p, Tensor<const float> g, Tensor<float> m, Tensor<float> v, float lr, float beta1,
             float beta2, float eps, float weight_decay, int64_t t, float g_mean = 1.0f, float g_clip = 1.0f,
             Tensor<Param> p_out = {}) const;

 private:
  void* scratch(size_t bytes) const;  // the reserved working space, refused when too small

  CudaOptions opt_;
  void* stream_ = nullptr;  // cudaStream_t
  std::unique_ptr<gpu::Blas> blas_;
  mutable Memory scratch_;
  mutable size_t scratch_bytes_ = 0;
};

// Defined in every build (src/backend/cuda/backend.cpp):
#if defined(LONGCTX_CUDA)
inline constexpr bool kCudaBuilt = true;
#else
inline constexpr bool kCudaBuilt = false;
#endif
#if defined(LONGCTX_NCCL)
inline constexpr bool kNcclBuilt = true;
#else
inline constexpr bool kNcclBuilt = false;
#endif
void cuda_set_device(int device);          // makes it this thread's current device (CUDA builds)
int cuda_device_count();                   // usable CUDA devices here (0 without CUDA or a GPU)
int64_t cuda_free_bytes(int device);       // free memory of that device (0 without CUDA)
bool cuda_supports_head_size(int64_t HS);  // a head size the flash kernels take (64 or 128)

}  // namespace longctx
