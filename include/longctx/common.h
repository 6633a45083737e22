// common.h — errors, checks and small helpers shared by every file.
//
// Error model: any failure throws longctx::Error carrying the message, the source location and a
// hint. main() catches it, prints it (on whichever rank raised it) and ends the whole job
// (abort_job, job.h), so a failure on one rank never leaves the others hanging. An error raised
// alike on every rank (a test of all-reduced or broadcast values: CHECK_ALIKE) is printed once.
// Tests catch Error directly.
#pragma once

#include <cstdint>
#include <cstddef>
#include <stdexcept>
#include <string>

#include <fmt/format.h>

namespace longctx {

class Error : public std::runtime_error {
 public:
  Error(std::string msg, std::string where, std::string hint, bool alike = false)
      : std::runtime_error(std::move(msg)), where_(std::move(where)), hint_(std::move(hint)),
        alike_(alike) {}
  const std::string& where() const { return where_; }
  const std::string& hint() const { return hint_; }
  // Every rank of the job raises this same error at the same point (the job prints it once).
  bool alike() const { return alike_; }
  // "error: <msg>\n  at <file:line>\n  hint: <hint>" — what a person sees.
  std::string report() const;

 private:
  std::string where_, hint_;
  bool alike_ = false;
};

[[noreturn]] void throw_error(const char* file, int line, std::string msg, std::string hint = {},
                              bool alike = false);

}  // namespace longctx

// LONGCTX_CHECK(cond, "format {}", args...) — always on, throws longctx::Error naming file:line.
// Source files use the short name CHECK; tests get Catch2's CHECK instead (tests/catch.h).
#define LONGCTX_WHERE __FILE__, __LINE__
#define LONGCTX_CHECK(cond, ...)                                                      \
  do {                                                                                \
    if (!(cond)) ::longctx::throw_error(LONGCTX_WHERE, ::fmt::format(__VA_ARGS__)); \
  } while (0)
#if !defined(CHECK)
#define CHECK LONGCTX_CHECK
#endif
// CHECK_HINT(cond, hint, "format {}", args...) — the same with a hint line for the user.
#define CHECK_HINT(cond, hint, ...)                                                          \
  do {                                                                                       \
    if (!(cond)) ::longctx::throw_error(LONGCTX_WHERE, ::fmt::format(__VA_ARGS__), (hint)); \
  } while (0)
// CHECK_ALIKE(cond, hint, "format {}", args...) — CHECK_HINT for a condition that every rank
// evaluates alike (on all-reduced or broadcast values, or the deck): printed once, on rank 0.
#define CHECK_ALIKE(cond, hint, ...)                                                               \
  do {                                                                                             \
    if (!(cond)) ::longctx::throw_error(LONGCTX_WHERE, ::fmt::format(__VA_ARGS__), (hint), true); \
  } while (0)
#define FAIL_ERROR(...) ::longctx::throw_error(LONGCTX_WHERE, ::fmt::format(__VA_ARGS__))
#define FAIL_HINT(hint, ...) ::longctx::throw_error(LONGCTX_WHERE, ::fmt::format(__VA_ARGS__), (hint))

namespace longctx {
inline constexpr const char* kVersion = "0.1.0";

// Runs fn, which every rank runs on the same input (the same checkpoint or data file): an Error it
// throws is rethrown marked alike, so the job prints it once (job.h: a rank alone in failing still
// ends the job).
template <class F>
auto raised_alike(F&& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const Error& e) {
    if (e.alike()) throw;
    throw Error(e.what(), e.where(), e.hint(), /*alike=*/true);
  }
}
}  // namespace longctx
