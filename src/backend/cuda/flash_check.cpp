// flash_check.cpp — host-side checks and errors of the GPU attention launchers (cuda/flash_*.cu),
// compiled by the host compiler so that the .cu files need no fmt. Builds without CUDA too.
#include "longctx/flash_check.h"

#include <cstdint>

#include "longctx/common.h"

namespace longctx::gpu {

void cuda_fail(const char* call, const char* error, const char* file, int line) {
  throw_error(file, line, fmt::format("{} failed: {}", call, error),
              "run the failing command under compute-sanitizer to find the first bad access");
}

void flash_require(bool ok, const char* what) { CHECK(ok, "flash attention: {}", what); }

FlashShape flash_shape(int64_t B, int64_t Tq, int64_t Tk, int64_t NH, int64_t NKV, int64_t HS,
                       Mask mask, int64_t q_pos0, int64_t k_pos0) {
  FlashShape s;
  s.B = B, s.Tq = Tq, s.Tk = Tk, s.NH = NH, s.NKV = NKV, s.HS = HS;
  s.q_st = NH * HS, s.q_sh = HS, s.q_sb = Tq * NH * HS;
  s.k_st = NKV * HS, s.k_sh = HS, s.k_sb = Tk * NKV * HS;
  s.q_pos0 = q_pos0, s.k_pos0 = k_pos0, s.mask = mask;
  return s;
}

void check_flash_shape(const FlashShape& s) {
  CHECK(s.HS == 64 || s.HS == 128, "flash attention: head size {} (supported: 64, 128)", s.HS);
  CHECK(s.B > 0 && s.Tq > 0 && s.Tk > 0 && s.NH > 0 && s.NKV > 0,
        "flash attention: empty shape B={} Tq={} Tk={} NH={} NKV={}", s.B, s.Tq, s.Tk, s.NH, s.NKV);
  CHECK(s.NH % s.NKV == 0, "flash attention: NKV = {} must divide NH = {}", s.NKV, s.NH);
  for (int64_t st : {s.q_sb, s.q_st, s.q_sh, s.k_sb, s.k_st, s.k_sh})
    CHECK(st % 8 == 0, "flash attention: stride {} is not a multiple of 8 elements (16 bytes)", st);
  CHECK(s.NH < 65536 && s.B < 65536, "flash attention: grid too large (NH = {}, B = {})", s.NH, s.B);
  CHECK(s.Tq < (int64_t(1) << 31) / 16, "flash attention: Tq = {} is too long for one launch", s.Tq);
  // The wgmma backward counts a key block's (query head, 64-row tile) steps in an int.
  CHECK((s.Tq + 63) / 64 * (s.NH / s.NKV) < (int64_t(1) << 31),
        "flash attention: Tq = {} with {} query heads per KV head is too long for one launch", s.Tq, s.NH / s.NKV);
}

void check_flash_align(const void* p, int bytes, const char* name) {
  CHECK_HINT(reinterpret_cast<uintptr_t>(p) % uintptr_t(bytes) == 0,
             "pass tensors that start on a multiple of 16 bytes (cudaMalloc's are), offset by whole rows",
             "flash attention: {} = {} is not {}-byte aligned", name, p, bytes);
}

}  // namespace longctx::gpu
