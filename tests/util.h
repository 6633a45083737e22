// util.h — helpers shared by the tests: fresh random inputs, error capture, temp dirs, subprocesses.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace longctx::test {

// Fresh random values (normal * scale) from a seed that differs per call site and per run of the
// suite (LONGCTX_TEST_SEED fixes it to reproduce a failure; the seed is printed on failure).
std::vector<float> randn(size_t n, float scale = 1.0f);
// Row n of the logits x·Wᵀ (x: (N, C), W: (V, C)) in double, as (logit, token) pairs, largest first.
std::vector<std::pair<double, int32_t>> ranked_logits(const float* x, const float* W, int64_t n, int64_t C,
                                                      int64_t V);
// The first call returns the base seed itself (printed by tests/main.cpp).
uint64_t fresh_seed();
// The suite's base seed: LONGCTX_TEST_SEED when set, else from the clock.
uint64_t base_seed();
// A seed in [0, 100000) (e.g. a deck's run.seed) that depends on the base seed and `what` only,
// not on which tests ran before: LONGCTX_TEST_SEED=<base> reproduces it in any selection of tests.
// Checks whose outcome depends on it print it (seed_note).
uint64_t seed_for(const std::string& what);
std::string seed_note(uint64_t seed);  // "run.seed S (LONGCTX_TEST_SEED=B reproduces it)"

// The message of the longctx::Error that fn throws, or "" if it throws none.
template <class F>
std::string error_of(F&& fn);

// A new empty directory under build/tmp (kept for inspection; `make clean` removes it).
std::string temp_dir(const std::string& tag);
// The whole contents of a file (empty when it cannot be read).
std::string slurp(const std::string& path);

// Runs a shell command; returns its exit status and fills `output` with stdout+stderr.
// Variables that MPI_Init of this (singleton) test process added to the environment are removed
// for the command: inherited, they make a nested mpirun fail silently.
int run_command(const std::string& cmd, std::string* output = nullptr);
// Call before MPI_Init: notes which MPI-runtime variables the environment had to begin with.
void remember_environment();

// ---- end-to-end runs of the binary ----
inline constexpr const char* kBin = "build/longctx";
inline bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }
// The mpirun command line of the suite: LONGCTX_MPIRUN (make test sets it), else mpirun --oversubscribe.
std::string mpirun();
// Overrides that make input/tiny.toml a few-second run writing into `dir`.
std::string quick(const std::string& dir);

}  // namespace longctx::test

#include "longctx/common.h"
template <class F>
std::string longctx::test::error_of(F&& fn) {
  try {
    fn();
  } catch (const longctx::Error& e) {
    return std::string(e.what());
  }
  return "";
}
