// log.cpp — step lines, the JSON-lines metrics file, resource figures.
#include "longctx/log.h"

#include <sys/resource.h>

#include <charconv>
#include <fstream>
#include <vector>

#include "longctx/common.h"

namespace longctx {

std::string format_duration(double s) {
  const int64_t t = int64_t(s + 0.5);
  if (t >= 3600) return fmt::format("{}h{:02d}m", t / 3600, (t % 3600) / 60);
  if (t >= 60) return fmt::format("{}m{:02d}s", t / 60, t % 60);
  return fmt::format("{}s", t);
}

static std::string si(double x) {
  if (x >= 1e12) return fmt::format("{:.2f}T", x / 1e12);
  if (x >= 1e9) return fmt::format("{:.2f}G", x / 1e9);
  if (x >= 1e6) return fmt::format("{:.2f}M", x / 1e6);
  if (x >= 1e3) return fmt::format("{:.1f}k", x / 1e3);
  return fmt::format("{:.0f}", x);
}

void print_step_line(const StepLine& s) {
  log_info("stage {}/{} step {:>{}}/{} | loss {:.4f} | gnorm {:.3f} | lr {:.2e} | {} tok/s | "
           "{}FLOP/s | rss {:.0f} MiB{} | ETA {}",
           s.r.stage, s.n_stages, s.r.stage_step, fmt::formatted_size("{}", s.stage_steps),
           s.stage_steps, s.r.loss, s.r.grad_norm, s.r.lr, si(s.tok_per_s), si(s.flop_per_s),
           s.peak_rss_mib, s.gpu_mib > 0 ? fmt::format(" | gpu {:.0f} MiB", s.gpu_mib) : std::string(),
           format_duration(s.eta_s));
}

FILE* open_metrics(const std::string& path, int64_t keep_through) {
  if (keep_through >= 0) {
    std::vector<std::string> keep;
    std::ifstream in(path);
    int64_t dropped = 0;
    for (std::string line; std::getline(in, line);) {
      // Keep whole records of steps up to the checkpoint; a line cut short by a crash is dropped.
      const auto k = line.find("\"global_step\":");
      int64_t step = -1;
      if (k != std::string::npos && line.ends_with("}")) {
        const char* p = line.data() + k + 14;
        if (std::from_chars(p, line.data() + line.size(), step).ec != std::errc()) step = -1;
      }
      if (step >= 0 && step <= keep_through) keep.push_back(line);
      else if (step < 0) ++dropped;
    }
    if (dropped) log_warn("{}: dropped {} unreadable line(s)", path, dropped);
    in.close();
    FILE* f = std::fopen(path.c_str(), "w");
    CHECK(f, "cannot write the metrics file {}", path);
    for (const auto& l : keep) std::fprintf(f, "%s\n", l.c_str());
    return f;
  }
  FILE* f = std::fopen(path.c_str(), "w");
  CHECK(f, "cannot write the metrics file {}", path);
  return f;
}

void write_metrics(FILE* f, const StepLine& s) {
  if (!f) return;
  fmt::print(f,
             "{{\"stage\":{},\"stage_step\":{},\"global_step\":{},\"loss\":{},\"grad_norm\":{},"
             "\"lr\":{},\"tokens\":{},\"tok_per_s\":{:.1f},\"flop_per_s\":{:.4g},\"seq_len\":{},"
             "\"rope_theta\":{},\"step_s\":{:.4f},\"elapsed_s\":{:.3f},\"peak_rss_mib\":{:.1f}{}}}\n",
             s.r.stage, s.r.stage_step, s.r.global_step, s.r.loss, s.r.grad_norm, s.r.lr,
             s.r.tokens, s.tok_per_s, s.flop_per_s, s.seq_len, s.rope_theta, s.r.seconds,
             s.elapsed_s, s.peak_rss_mib, s.gpu_mib > 0 ? fmt::format(",\"gpu_mib\":{:.1f}", s.gpu_mib) : std::string());
  std::fflush(f);
}

double peak_rss_mib() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return double(u.ru_maxrss) / 1024.0;  // Linux: KiB
}

}  // namespace longctx
