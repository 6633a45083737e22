// flash_check.h — host-side argument checks of the GPU attention entry points (flash.h), in
// src/backend/cuda/flash_check.cpp. Every launcher runs them before its kernels, so a shape or pointer the
// kernels cannot take ends with a longctx::Error naming it instead of a fault on the device.
// Built with or without CUDA, and tested on the CPU (tests/test_flash_check.cpp).
#pragma once

#include "longctx/flash.h"

namespace longctx::gpu {
// Throws unless the kernels handle this shape: HS 64 or 128, a non-empty shape, NKV dividing NH,
// strides in multiples of 8 elements (16 bytes), grid and index limits.
void check_flash_shape(const FlashShape& s);
// Throws unless p is a multiple of `bytes` (a null pointer passes): 16 for the bf16 tensors read
// in 16-byte copies, 8 for the fp32 outputs written as float2, 4 for the per-row fp32 vectors.
void check_flash_align(const void* p, int bytes, const char* name);
// Throws with `what` when !ok.
void flash_require(bool ok, const char* what);
}  // namespace longctx::gpu
