// memory.cpp — the memory plan (memory.h): node memory, the sum of the node's ranks' needs, and the
// refusal that names what does not fit.
#include "longctx/memory.h"

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

void check_memory_fits(const ProcessGroups& g, const StateBytes& state, const std::vector<size_t>& stage_bytes,
                       const std::vector<std::string>& stage_names, const char* what) {
  std::string source;
  const Comm& node = g.node();
  const double mine = double(available_memory(&source));
  double avail = node.rank() == 0 ? mine : 0.0;  // node rank 0's reading stands for the node
  node.all_reduce_sum(&avail, 1);
  const bool known = avail >= 0;
  // Per stage: the node's total need; then the worst over nodes (max need, min memory).
  const size_t S = stage_bytes.size();
  std::vector<double> need(S + 1);
  for (size_t i = 0; i < S; ++i) need[i] = double(state.total() + stage_bytes[i]);
  need[S] = double(state.total());
  node.all_reduce_sum(need.data(), int64_t(need.size()));
  double worst = -1;  // the first stage whose need exceeds some node's memory (S: the state alone)
  for (size_t i = 0; i <= S && known; ++i) {
    const size_t k = i == 0 ? S : i - 1;  // the state alone first, then the stages in order
    if (need[k] > avail) {
      worst = double(k);
      break;
    }
  }
  double flags[2] = {worst < 0 ? 0.0 : 1.0, worst < 0 ? -1.0 : -worst};  // any failure; first one
  g.all().all_reduce_max(flags, 2);
  if (flags[0] == 0.0) return;
  const size_t k = size_t(-flags[1]);
  // The figures of the tightest node, and this grid's largest per-rank parts.
  double fig[6] = {need[k], -avail, double(state.params), double(state.grads), double(state.optimizer),
                   k < S ? double(stage_bytes[k]) : 0.0};
  g.all().all_reduce_max(fig, 6);
  const int ranks = node.size();
  const std::string part = k == S ? "the parameters, gradients and optimizer state" : "activations of " + stage_names[k];
  const char* hint = k == S ? "raise parallel.tp (each rank holds 1/tp of the weights) or dp·sp (the optimizer "
                              "state is sharded over them), or use more nodes"
                            : "raise parallel.sp or parallel.tp (each cuts the activations per rank), set "
                              "model.recompute = true, lower micro_batch, or use more nodes";
  CHECK_ALIKE(false, hint, "{}: {} do not fit: the {} rank{} of a node need {} but {} is available ({}); per rank: "
            "parameters {}, gradients {}, optimizer state {}{}", what, part, ranks, ranks == 1 ? "" : "s",
            format_bytes(fig[0]), format_bytes(-fig[1]), source.empty() ? "node memory" : source,
            format_bytes(fig[2]), format_bytes(fig[3]), format_bytes(fig[4]),
            k < S ? ", activations " + format_bytes(fig[5]) : std::string());
}

}  // namespace longctx
