// catch.h — one include for Catch2 v2 (Debian 12: catch2/catch.hpp) and v3 (split headers).
#pragma once
// longctx/common.h may have defined CHECK as LONGCTX_CHECK: tests mean Catch2's.
#undef CHECK
#if defined(LONGCTX_CATCH3)
#include <catch2/catch_approx.hpp>
#include <catch2/catch_session.hpp>
#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>
using Catch::Approx;
namespace Catch::Matchers {  // v2's name for ContainsSubstring
inline StringContainsMatcher Contains(const std::string& s, CaseSensitive cs = CaseSensitive::Yes) {
  return ContainsSubstring(s, cs);
}
}  // namespace Catch::Matchers
#else
#include <catch2/catch.hpp>
#endif

