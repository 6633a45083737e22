// eval_output.cpp — where an evaluation's results go (eval.h): the JSON lines of
// <run.out_dir>/needle_eval.jsonl and the heatmap PNG beside it.
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "longctx/common.h"
#include "longctx/eval.h"
#include "longctx/heatmap.h"
#include "longctx/json.h"
#include "longctx/preflight.h"

namespace fs = std::filesystem;

namespace longctx {

std::string write_needle_results(const Config& cfg, const NeedleReport& rep, const char* source) {
  const std::string name = json::dump(json::Value(rep.checkpoint));  // quoted and escaped
  auto num = [](double x) { return std::isfinite(x) ? fmt::format("{}", x) : std::string("null"); };
  std::string lines;  // all cells, appended with one write: a failure leaves at most one cut line
  for (const NeedleCell& c : rep.cells)
    lines += fmt::format("{{\"checkpoint\":{},\"step\":{},\"stage\":{},\"source\":\"{}\",\"rope_theta\":{},"
                         "\"length\":{},\"depth\":{},\"samples\":{},\"retrieved\":{},\"digits\":{},"
                         "\"digits_right\":{},\"nll_per_digit\":{},\"tokens\":{},\"tokens_right\":{}}}\n",
                         name, rep.global_step, rep.stage, source, num(rep.rope_theta), c.length, c.depth,
                         c.samples, c.retrieved, c.digits, c.digits_right, num(c.digit_nll / double(c.digits)),
                         c.tokens, c.tokens_right);
  create_directories_for("run.out_dir", cfg.run.out_dir);
  const std::string out = (fs::path(cfg.run.out_dir) / "needle_eval.jsonl").string();
  FILE* f = std::fopen(out.c_str(), "a");
  CHECK_HINT(f, "check run.out_dir and its permissions", "eval: cannot open {} for appending: {}", out,
             std::strerror(errno));
  const bool wrote = std::fwrite(lines.data(), 1, lines.size(), f) == lines.size();
  const bool closed = std::fclose(f) == 0;
  CHECK(wrote && closed, "eval: writing {} failed", out);

  std::string png = "needle_" + fs::path(rep.checkpoint).stem().string();
  if (rep.rope_theta != rep.checkpoint_theta) png += fmt::format("_theta{:g}", rep.rope_theta);
  png = (fs::path(cfg.run.out_dir) / (png + ".png")).string();
  HeatmapData h = heatmap_data(rep);
  h.title = fmt::format("needle retrieval  step {}  stage {}  theta {:g}", rep.global_step, rep.stage, rep.rope_theta);
  write_png(png, draw_heatmap(h));
  return png;
}

}  // namespace longctx
