// log.h — what rank 0 tells the user: plain lines on stdout, one line per step, and the same
// numbers as JSON lines in <out_dir>/metrics.jsonl.
#pragma once

#include <cstdio>
#include <string>

#include <fmt/format.h>

#include "longctx/train.h"

namespace longctx {

template <class... A>
void log_info(fmt::format_string<A...> f, A&&... a) {
  std::fputs((fmt::format(f, std::forward<A>(a)...) + "\n").c_str(), stdout);
  std::fflush(stdout);
}
template <class... A>
void log_warn(fmt::format_string<A...> f, A&&... a) {
  std::fputs(("longctx: warning: " + fmt::format(f, std::forward<A>(a)...) + "\n").c_str(), stderr);
}

// Everything one step line shows.
struct StepLine {
  StepRecord r;
  size_t n_stages = 0;
  int64_t stage_steps = 0;  // steps of the current stage
  int64_t seq_len = 0;
  double rope_theta = 0.0;
  double tok_per_s = 0.0;   // this step
  double flop_per_s = 0.0;  // model FLOPs (fwd + bwd = 3 × fwd) per second, this step
  double eta_s = 0.0;
  double peak_rss_mib = 0.0;
  double elapsed_s = 0.0;
  double gpu_mib = 0.0;  // device memory in use (GPU runs; 0 on the CPU, then not shown)
};

void print_step_line(const StepLine& s);
// Opens the metrics file for appending. keep_through >= 0 (a resume): lines of steps after that
// global step (logged before an interruption) are dropped first, so the file has each step once.
FILE* open_metrics(const std::string& path, int64_t keep_through);
void write_metrics(FILE* f, const StepLine& s);
double peak_rss_mib();
std::string format_duration(double seconds);  // "1h02m", "3m05s", "12s"

}  // namespace longctx
