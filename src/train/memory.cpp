// memory.cpp — the memory plan (memory.h): node memory, the sum of the node's ranks' needs, and the
// refusal that names what does not fit.
#include "longctx/memory.h"

#include "longctx/backend/cuda.h"

#include <cstdlib>
#include <fstream>
#include <limits>

#include "longctx/common.h"

namespace longctx {

namespace {

int64_t read_number(const std::string& path) {  // a file holding one number ("max" = none)
  std::ifstream f(path);
  std::string s;
  if (!(f >> s) || s == "max") return -1;
  char* end = nullptr;
  const long long v = std::strtoll(s.c_str(), &end, 10);
  return end && *end == '\0' && v >= 0 ? int64_t(v) : -1;
}

int64_t mem_available() {  // /proc/meminfo's MemAvailable, in bytes
  std::ifstream f("/proc/meminfo");
  std::string key, unit;
  int64_t kib = 0;
  while (f >> key >> kib >> unit)
    if (key == "MemAvailable:") return kib * 1024;
  return -1;
}

}  // namespace

int64_t parse_bytes(const std::string& s) {
  if (s.empty()) return -1;
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  if (end == s.c_str() || !(v > 0)) return -1;
  const std::string unit(end);
  double mult = 1;
  if (unit == "K" || unit == "k" || unit == "KiB") mult = 1024.0;
  else if (unit == "M" || unit == "MiB") mult = 1024.0 * 1024;
  else if (unit == "G" || unit == "GiB") mult = 1024.0 * 1024 * 1024;
  else if (unit == "T" || unit == "TiB") mult = 1024.0 * 1024 * 1024 * 1024;
  else if (!unit.empty() && unit != "B") return -1;
  const double b = v * mult;
  return b < 9.0e18 ? int64_t(b) : -1;
}

std::string format_bytes(double b) {
  if (b >= double(1ll << 30)) return fmt::format("{:.1f} GiB", b / double(1ll << 30));
  if (b >= double(1ll << 20)) return fmt::format("{:.1f} MiB", b / double(1ll << 20));
  if (b >= 1024.0) return fmt::format("{:.1f} KiB", b / 1024.0);
  return fmt::format("{:.0f} B", b);
}

int64_t available_memory(std::string* source) {
  if (const char* env = std::getenv("LONGCTX_MEMORY")) {
    const int64_t b = parse_bytes(env);
    CHECK_HINT(b > 0, "LONGCTX_MEMORY=64G, 512M or a number of bytes",
               "LONGCTX_MEMORY='{}' is not a size", env);
    if (source) *source = "LONGCTX_MEMORY";
    return b;
  }
  int64_t best = mem_available();
  std::string from = "MemAvailable";
  // cgroup v2, then v1: a job's limit less what the job already uses.
  int64_t limit = read_number("/sys/fs/cgroup/memory.max");
  int64_t used = read_number("/sys/fs/cgroup/memory.current");
  if (limit < 0) {
    limit = read_number("/sys/fs/cgroup/memory/memory.limit_in_bytes");
    used = read_number("/sys/fs/cgroup/memory/memory.usage_in_bytes");
  }
  if (limit >= 0 && limit < (int64_t(1) << 60) && used >= 0) {
    const int64_t left = std::max<int64_t>(0, limit - used);
    if (best < 0 || left < best) best = left, from = "the cgroup's memory limit";
  }
  if (source) *source = from;
  return best;
}

int64_t available_gpu_memory(int device, std::string* source) {
  if (const char* env = std::getenv("LONGCTX_GPU_MEMORY")) {
    const int64_t b = parse_bytes(env);
    CHECK_HINT(b > 0, "LONGCTX_GPU_MEMORY=80G, 512M or a number of bytes", "LONGCTX_GPU_MEMORY='{}' is not a size",
               env);
    if (source) *source = "LONGCTX_GPU_MEMORY";
    return b;
  }
  if (source) *source = "the GPU's free memory";
  return cuda_free_bytes(device);
}

MemoryPool host_pool(const ProcessGroups& g) { return MemoryPool{&g.node(), "node", -1}; }

void check_memory_fits(const ProcessGroups& g, const MemoryPool& pool, const StateBytes& state,
                       const std::vector<size_t>& stage_bytes, const std::vector<std::string>& stage_names,
                       const char* what, const ModelConfig* model) {
  const Comm& node = *pool.sharers;
  const bool gpu = pool.device >= 0;
  std::string source;
  // The pool's first rank reads for it.
  double avail = node.rank() == 0 ? double(gpu ? available_gpu_memory(pool.device, &source) : available_memory(&source))
                                  : 0.0;
  node.all_reduce_sum(&avail, 1);
  // Per check (0: the state alone; i: the state and stage i's arena): the node's total need.
  const size_t S = stage_bytes.size();
  std::vector<double> need(S + 1);
  need[0] = double(state.total());
  for (size_t i = 0; i < S; ++i) need[i + 1] = double(state.total() + stage_bytes[i]);
  node.all_reduce_sum(need.data(), int64_t(need.size()));
  // The first check that fails on any node (every rank learns the same index), then the figures
  // of the node that misses it by the most, so that every rank prints the same message.
  double first = double(S + 1);  // none
  for (size_t k = 0; k <= S && avail >= 0; ++k)
    if (need[k] > avail) {
      first = double(k);
      break;
    }
  double neg_first = -first;
  g.all().all_reduce_max(&neg_first, 1);
  const size_t k = size_t(-neg_first);
  if (k > S) return;
  const double mine_deficit = avail >= 0 ? need[k] - avail : -1e300;  // a node of unknown memory: none
  double deficit = mine_deficit;
  g.all().all_reduce_max(&deficit, 1);
  const bool worst = mine_deficit == deficit;  // ranks of the tightest node (ties: the same numbers)
  double fig[7] = {worst ? need[k] : -1, worst ? avail : -1, worst ? double(node.size()) : -1,
                   double(state.params), double(state.grads), double(state.optimizer),
                   k > 0 ? double(stage_bytes[k - 1]) : 0.0};
  g.all().all_reduce_max(fig, 7);
  const std::string from = gpu ? (std::getenv("LONGCTX_GPU_MEMORY") ? "LONGCTX_GPU_MEMORY" : "the GPU's free memory")
                               : std::getenv("LONGCTX_MEMORY") ? "LONGCTX_MEMORY" : "MemAvailable or the cgroup limit";
  const MemoryRefusal r = memory_refusal(what, pool.name, k == 0 ? "" : stage_names[k - 1], fig[0], fig[1], int(fig[2]),
                                         from, StateBytes{size_t(fig[3]), size_t(fig[4]), size_t(fig[5])}, fig[6], model);
  CHECK_ALIKE(false, r.hint, "{}", r.message);
}

MemoryRefusal memory_refusal(const char* what, const char* pool_name, const std::string& stage, double need,
                             double avail, int ranks, const std::string& from, const StateBytes& largest,
                             double activations, const ModelConfig* model) {
  const bool state_only = stage.empty();
  const std::string part = state_only ? "the parameters, gradients and optimizer state" : "activations of " + stage;
  MemoryRefusal r;
  r.hint = state_only ? "raise parallel.tp (each rank holds 1/tp of the weights) or dp·sp (the optimizer "
                        "state is sharded over them), or use more nodes"
                      : fmt::format("raise parallel.sp or parallel.tp (each cuts the activations per rank), {}"
                                    "lower micro_batch, or use more nodes",
                                    !model                        ? ""
                                    : !model->recompute           ? "set model.recompute = true, "
                                    : !model->recompute_attention ? "set model.recompute_attention = true, "
                                                                  : "");
  r.message = fmt::format("{}: {} do not fit: the {} rank{} of a {} need {} but {} is available ({}); per rank "
                          "(the largest): parameters {}, gradients {}, optimizer state {}{}", what, part, ranks,
                          ranks == 1 ? "" : "s", pool_name, format_bytes(need), format_bytes(avail), from,
                          format_bytes(double(largest.params)), format_bytes(double(largest.grads)),
                          format_bytes(double(largest.optimizer)),
                          state_only ? std::string() : ", activations " + format_bytes(activations));
  return r;
}

}  // namespace longctx
