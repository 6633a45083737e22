// test_flash_check.cpp — the host-side argument checks of the GPU attention (flash_check.h): they
// run before any launch and need no GPU, so CI exercises them. Shapes and pointers the kernels
// cannot take must be refused with a message naming the cause; valid ones must pass.
#include <cstdint>
#include <string>

#include "catch.h"
#include "longctx/flash_check.h"
#include "util.h"

using namespace longctx;
using Catch::Matchers::Contains;
using test::error_of;

TEST_CASE("flash_shape gives the strides of contiguous (B, T, H, HS) tensors", "[op]") {
  const auto s = gpu::flash_shape(2, 300, 200, 8, 2, 128, gpu::Mask::kCausal, 600, 400);
  CHECK(s.q_sh == 128);
  CHECK(s.q_st == 8 * 128);
  CHECK(s.q_sb == 300 * 8 * 128);
  CHECK(s.k_sh == 128);
  CHECK(s.k_st == 2 * 128);
  CHECK(s.k_sb == 200 * 2 * 128);
  CHECK(s.q_pos0 == 600);
  CHECK(s.k_pos0 == 400);
  CHECK(error_of([&] { gpu::check_flash_shape(s); }).empty());
}

TEST_CASE("flash attention refuses shapes its kernels cannot take, naming the cause", "[op]") {
  auto refused = [](gpu::FlashShape s) { return error_of([&] { gpu::check_flash_shape(s); }); };
  const auto ok = gpu::flash_shape(1, 64, 64, 4, 2, 64, gpu::Mask::kFull);
  CHECK(refused(ok).empty());
  auto s = ok;
  s.HS = 96;
  CHECK_THAT(refused(s), Contains("head size 96"));
  s = ok, s.NKV = 3;
  CHECK_THAT(refused(s), Contains("NKV = 3 must divide NH = 4"));
  s = ok, s.Tk = 0;
  CHECK_THAT(refused(s), Contains("empty shape"));
  s = ok, s.q_st = 4 * 64 + 4;  // a row stride of 260 elements: rows would start off 16 bytes
  CHECK_THAT(refused(s), Contains("stride 260 is not a multiple of 8"));
  s = ok, s.NH = 70000, s.NKV = 70000;
  CHECK_THAT(refused(s), Contains("grid too large"));
  s = ok, s.Tq = int64_t(1) << 26, s.NH = 4096, s.NKV = 1;  // 2^20 query tiles x 4096 heads per KV head
  CHECK_THAT(refused(s), Contains("with 4096 query heads per KV head is too long"));
}

TEST_CASE("flash attention refuses misaligned tensors, naming them", "[op]") {
  alignas(16) static float buf[8];
  const unsigned char* base = reinterpret_cast<const unsigned char*>(buf);
  CHECK(error_of([&] { gpu::check_flash_align(base, 16, "q"); }).empty());
  CHECK(error_of([&] { gpu::check_flash_align(nullptr, 16, "o"); }).empty());  // an absent output
  CHECK(error_of([&] { gpu::check_flash_align(base + 8, 8, "dq"); }).empty());
  const std::string off8 = error_of([&] { gpu::check_flash_align(base + 8, 16, "k"); });
  CHECK_THAT(off8, Contains("k = "));
  CHECK_THAT(off8, Contains("is not 16-byte aligned"));
  CHECK_THAT(error_of([&] { gpu::check_flash_align(base + 4, 8, "dv"); }), Contains("dv = "));
  CHECK_THAT(error_of([&] { gpu::flash_require(false, "flash_fwd: no output"); }), Contains("no output"));
}
