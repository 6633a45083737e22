// test_eval_stages.cpp — [eval] in the deck: its keys (arrays of lengths and depths) are checked
// like every other; with after_each_stage, `longctx train` evaluates each stage's final checkpoint
// at that stage's rope_theta, on one rank and under mpirun, appending rows with the stage to
// needle_eval.jsonl and writing one heatmap per evaluation.
#include <filesystem>
#include <fstream>

#include "longctx/config.h"
#include "longctx/heatmap.h"
#include "util.h"
#include "catch.h"

using namespace longctx;
using namespace longctx::test;
namespace fs = std::filesystem;

namespace {

const std::string kStage = "\n[[stage]]\nseq_len = 256\nrope_theta = 10000.0\nsteps = 10\n";

// The rows of needle_eval.jsonl that contain every one of `parts`.
int rows_with(const std::string& file, std::initializer_list<std::string> parts) {
  std::ifstream in(file);
  int n = 0;
  for (std::string l; std::getline(in, l);) {
    bool all = true;
    for (const auto& p : parts) all = all && contains(l, p);
    n += all;
  }
  return n;
}

// Two stages of input/tiny.toml, a few steps each, evaluated after each stage on 2 lengths × 2 depths.
std::string eval_run(const std::string& dir) {
  return " train input/tiny.toml" + quick(dir) +
         " --set eval.after_each_stage=true --set eval.lengths=[256,512] --set eval.depths=[0.0,1.0]"
         " --set eval.samples=2";
}

void check_stage_rows(const std::string& dir) {
  const std::string jl = dir + "/needle_eval.jsonl";
  REQUIRE(fs::exists(jl));
  INFO(slurp(jl));
  // Stage 1 ends at step 3 (theta 1e4), stage 2 at step 5 (theta 1.6e5): 2 lengths × 2 depths each.
  CHECK(rows_with(jl, {"\"step\":3,", "\"stage\":1,", "\"source\":\"train\"", "\"rope_theta\":10000,",
                       "\"samples\":2,", "\"digits\":10,", "ckpt_0000003.h5"}) == 4);
  CHECK(rows_with(jl, {"\"step\":5,", "\"stage\":2,", "\"source\":\"train\"", "\"rope_theta\":160000,",
                       "\"samples\":2,", "\"digits\":10,", "ckpt_0000005.h5"}) == 4);
  CHECK(rows_with(jl, {"\"length\":512,", "\"depth\":1,"}) == 2);
  CHECK(rows_with(jl, {"\"retrieved\":"}) == 8);
  for (const char* png : {"/needle_ckpt_0000003.png", "/needle_ckpt_0000005.png"}) {
    INFO(png);
    REQUIRE(fs::exists(dir + png));
    const Image img = read_png(dir + png);
    const HeatmapGeometry g = heatmap_geometry();
    CHECK(img.width >= g.x0 + 2 * g.cell_w);
    CHECK(img.height > g.y0 + 2 * g.cell_h);
  }
}

}  // namespace

TEST_CASE("deck: [eval] keys, arrays and their refusals", "[deck]") {
  const Config d = parse_deck_text(kStage, "deck.toml");
  CHECK(!d.eval.after_each_stage);
  CHECK(d.eval.lengths.empty());
  CHECK(d.eval.depths == std::vector<double>{0.0, 0.25, 0.5, 0.75, 1.0});
  CHECK(d.eval.samples == 8);
  const Config c = parse_deck_text("[eval]\nafter_each_stage = true\nlengths = [256, 1024]\ndepths = [0, 0.5, 1.0]\n"
                                   "samples = 3\n" + kStage, "deck.toml");
  CHECK(c.eval.after_each_stage);
  CHECK(c.eval.lengths == std::vector<int64_t>{256, 1024});
  CHECK(c.eval.depths == std::vector<double>{0.0, 0.5, 1.0});
  CHECK(c.eval.samples == 3);
  // The resolved deck reads back the same, and --set takes TOML arrays.
  const Config r = parse_deck_text(to_toml(c), "resolved.toml");
  CHECK(r.eval.lengths == c.eval.lengths);
  CHECK(r.eval.depths == c.eval.depths);
  CHECK(parse_deck_text(kStage, "deck.toml", {"eval.lengths=[512]"}).eval.lengths == std::vector<int64_t>{512});
  auto refused = [](const std::string& text, const std::string& part, std::vector<std::string> sets = {}) {
    const std::string msg = error_of([&] { parse_deck_text(text, "deck.toml", sets); });
    INFO(text << "\nmessage: " << msg);
    CHECK(contains(msg, part));
  };
  refused("[eval]\ndepths = [0, 1.5]\n" + kStage, "eval.depths[1] = 1.5 is out of range");
  refused("[eval]\ndepths = []\n" + kStage, "eval.depths is empty");
  refused("[eval]\nlengths = 256\n" + kStage, "eval.lengths must be an array");
  refused("[eval]\nlengths = [256, \"x\"]\n" + kStage, "eval.lengths[1] must be an integer");
  refused("[eval]\nsamples = 0\n" + kStage, "eval.samples = 0 is out of range");
  refused("[eval]\nafter_each_stage = true\nlengths = [64]\n" + kStage, "eval.lengths: 64 cannot hold the needle");
  refused("[parallel]\nsp = 2\n[eval]\nafter_each_stage = true\nlengths = [258]\n" + kStage,
          "eval.lengths: 258 is not a multiple of 4");
  refused("[eval]\nafter_each_stage = true\n\n[[stage]]\nseq_len = 64\nrope_theta = 1e4\nsteps = 1\n",
          "stage[1].seq_len = 64 cannot hold the needle");
  refused(kStage, "--set eval.bogus=1: unknown key 'bogus' in [eval]", {"eval.bogus=1"});
}

TEST_CASE("train with eval.after_each_stage: needle rows and a heatmap per stage", "[e2e]") {
  const std::string dir = temp_dir("eval-stages");
  std::string out;
  const int rc = run_command(std::string(kBin) + eval_run(dir), &out);
  INFO(out);
  REQUIRE(rc == 0);
  CHECK(contains(out, "stage 1 complete: needle evaluation of " + dir + "/checkpoints/ckpt_0000003.h5"));
  CHECK(contains(out, "rope_theta 10000, 2 samples per cell"));
  CHECK(contains(out, "rope_theta 160000, 2 samples per cell"));
  check_stage_rows(dir);
  // longctx eval appends to the same file, marked as its own, with its heatmap named by theta.
  REQUIRE(run_command(std::string(kBin) + " eval input/tiny.toml" + quick(dir) +
                          " --lengths 256 --depths 0.5 --samples 1 --rope-theta 20000", &out) == 0);
  CHECK(rows_with(dir + "/needle_eval.jsonl", {"\"source\":\"eval\"", "\"stage\":2,", "\"rope_theta\":20000,"}) == 1);
  CHECK(fs::exists(dir + "/needle_ckpt_0000005_theta20000.png"));
}

TEST_CASE("train with eval.after_each_stage under mpirun (dp 2, sp 2)", "[e2e]") {
  const std::string dir = temp_dir("eval-stages-mpi");
  std::string out;
  const int rc = run_command("timeout 300 " + mpirun() + " -np 4 " + kBin + eval_run(dir) +
                                 " --set parallel.dp=2 --set parallel.sp=2", &out);
  INFO(out);
  REQUIRE(rc == 0);
  check_stage_rows(dir);
}
