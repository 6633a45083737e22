#include "util.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <set>
#include <sstream>
#include <sys/wait.h>
#include <unistd.h>

namespace longctx::test {

uint64_t base_seed() {
  static const uint64_t base = [] {
    if (const char* s = std::getenv("LONGCTX_TEST_SEED")) return uint64_t(std::strtoull(s, nullptr, 10));
    return uint64_t(std::chrono::steady_clock::now().time_since_epoch().count());
  }();
  return base;
}

uint64_t fresh_seed() {
  static std::atomic<uint64_t> counter{0};
  return base_seed() + 0x9e3779b97f4a7c15ULL * counter++;
}

uint64_t seed_for(const std::string& what) {
  uint64_t h = 0xcbf29ce484222325ULL;  // FNV-1a of `what`, then a SplitMix64 finaliser with the base
  for (unsigned char c : what) h = (h ^ c) * 0x100000001b3ULL;
  uint64_t z = base_seed() ^ h;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return (z ^ (z >> 31)) % 100000;
}

std::string seed_note(uint64_t seed) {
  return "run.seed " + std::to_string(seed) + " (LONGCTX_TEST_SEED=" + std::to_string(base_seed()) +
         " reproduces it)";
}

std::vector<float> randn(size_t n, float scale) {
  std::mt19937_64 gen(fresh_seed());
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(gen);
  return v;
}

std::string temp_dir(const std::string& tag) {
  static std::atomic<int> n{0};
  namespace fs = std::filesystem;
  fs::path p = fs::path("build/tmp") / (tag + "-" + std::to_string(::getpid()) + "-" + std::to_string(n++));
  fs::remove_all(p);
  fs::create_directories(p);
  return p.string();
}

static std::set<std::string>& initial_env() {
  static std::set<std::string> names;
  return names;
}

static bool is_mpi_runtime_var(const std::string& name) {
  for (const char* p : {"OMPI_", "PMIX_", "ORTE_", "OPAL_"})
    if (name.starts_with(p)) return true;
  return false;
}

void remember_environment() {
  for (char** e = environ; *e; ++e) {
    const std::string kv = *e;
    initial_env().insert(kv.substr(0, kv.find('=')));
  }
}

int run_command(const std::string& cmd, std::string* output) {
  std::string unset;
  for (char** e = environ; *e; ++e) {
    const std::string kv = *e, name = kv.substr(0, kv.find('='));
    if (is_mpi_runtime_var(name) && !initial_env().count(name)) unset += " " + name;
  }
  std::string full = (unset.empty() ? "" : "unset" + unset + "; ") + "{ " + cmd + "; } 2>&1";
  FILE* f = popen(full.c_str(), "r");
  if (!f) return -1;
  std::array<char, 4096> buf;
  std::string out;
  size_t k;
  while ((k = fread(buf.data(), 1, buf.size(), f)) > 0) out.append(buf.data(), k);
  int status = pclose(f);
  if (output) *output = out;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

std::vector<std::pair<double, int32_t>> ranked_logits(const float* x, const float* W, int64_t n, int64_t C,
                                                      int64_t V) {
  std::vector<std::pair<double, int32_t>> z(static_cast<size_t>(V));
  for (int64_t v = 0; v < V; ++v) {
    double d = 0;
    for (int64_t c = 0; c < C; ++c) d += double(x[n * C + c]) * W[v * C + c];
    z[size_t(v)] = {d, int32_t(v)};
  }
  std::sort(z.begin(), z.end(), std::greater<>());
  return z;
}

std::string mpirun() {
  const char* m = std::getenv("LONGCTX_MPIRUN");
  return m ? m : "mpirun --oversubscribe";
}

std::string slurp(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::string quick(const std::string& dir) {
  return " --set run.out_dir=" + dir +
         " --set stage.1.steps=3 --set stage.2.steps=2 --set model.n_layers=1 --set run.log_every=1"
         " --set optim.warmup_steps=1";
}

}  // namespace longctx::test
