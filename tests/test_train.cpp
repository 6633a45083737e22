// test_train.cpp — the training driver end to end, in process: the loss falls on needle data,
// a resumed run continues bit for bit, checkpoints land where the deck says.
#include <cstring>
#include <filesystem>
#include <fstream>

#include "catch.h"
#include "longctx/checkpoint.h"
#include "longctx/config.h"
#include "longctx/log.h"
#include "longctx/train.h"
#include "util.h"

using namespace longctx;
using namespace longctx::test;
namespace fs = std::filesystem;

namespace {

// A model small enough to train for tens of steps in seconds on one core. run.seed is
// seed_for("test_train"): fixed by LONGCTX_TEST_SEED, printed by the checks that depend on it.
Config small_deck(const std::string& dir, const std::string& extra = "") {
  const std::string text = fmt::format(R"(
[run]
name = "t"
out_dir = "{}"
seed = {}
[model]
vocab_size = 264
d_model = 64
n_layers = 2
n_heads = 4
n_kv_heads = 2
d_ff = 128
[optim]
lr = 3e-3
warmup_steps = 5
min_lr = 3e-4
[data]
kind = "needle"
{}
[[stage]]
seq_len = 128
rope_theta = 10000
steps = 6
batch_accum = 2
micro_batch = 2
[[stage]]
seq_len = 192
rope_theta = 40000
steps = 6
micro_batch = 2
)",
                                       dir, seed_for("test_train"), extra);
  return parse_deck_text(text, "small.toml");
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

}  // namespace

TEST_CASE("a short run on needle data lowers the loss", "[e2e]") {
  Config cfg = small_deck(temp_dir("train-loss"));
  cfg.stages.resize(1);
  cfg.stages[0].steps = 40;
  Trainer t(cfg, MPI_COMM_WORLD, TrainOptions{false, false, true});
  t.run();
  const auto& h = t.history();
  REQUIRE(h.size() == 40);
  double first = 0, last = 0;
  for (int i = 0; i < 5; ++i) first += h[i].loss / 5, last += h[h.size() - 1 - i].loss / 5;
  INFO("mean loss of the first 5 steps " << first << ", of the last 5 " << last << "; " << seed_note(cfg.run.seed));
  // Uniform guessing over 264 ids costs ln 264 = 5.58 nats; the landmark filler repeats a
  // 90-byte cycle, so a working model gets far below: asking for half is a loose floor.
  CHECK(first > 4.5);
  CHECK(last < 0.5 * first);
  for (const auto& r : h) CHECK(std::isfinite(r.grad_norm));
  // The stage's last step wrote a checkpoint.
  CHECK(fs::exists(checkpoint_path(cfg.checkpoint.dir, 40)));
}

TEST_CASE("a resumed run continues bit-identically", "[e2e]") {
  // Straight through: 12 steps over two stages, checkpoints only at stage ends.
  Config a_cfg = small_deck(temp_dir("resume-a"));
  Trainer a(a_cfg, MPI_COMM_WORLD, TrainOptions{false, false, true});
  a.run();
  REQUIRE(a.history().size() == 12);
  INFO(seed_note(a_cfg.run.seed));

  for (int64_t stop : {4, 6, 9}) {  // inside stage 1, at its end, inside stage 2
    DYNAMIC_SECTION("interrupted after step " << stop) {
      Config b_cfg = a_cfg;
      b_cfg.run.out_dir = temp_dir("resume-b");
      b_cfg.checkpoint.dir = b_cfg.run.out_dir + "/checkpoints";
      {
        Trainer b(b_cfg, MPI_COMM_WORLD, TrainOptions{false, false, true});
        b.run(stop);
        if (stop != 6) b.save(checkpoint_path(b_cfg.checkpoint.dir, stop));  // stage end saved itself
      }
      REQUIRE(latest_checkpoint(b_cfg.checkpoint.dir) == checkpoint_path(b_cfg.checkpoint.dir, stop));
      Trainer c(b_cfg, MPI_COMM_WORLD, TrainOptions{true, false, true});
      REQUIRE(c.state().global_step == stop);
      c.run();
      const auto& ha = a.history();
      const auto& hc = c.history();
      REQUIRE(hc.size() == size_t(12 - stop));
      for (size_t i = 0; i < hc.size(); ++i) {
        INFO("step " << hc[i].global_step);
        CHECK(hc[i].global_step == ha[stop + i].global_step);
        CHECK(hc[i].loss == ha[stop + i].loss);  // exact, not approximate
        CHECK(hc[i].grad_norm == ha[stop + i].grad_norm);
        CHECK(hc[i].lr == ha[stop + i].lr);
      }
      CHECK(same_bits(c.full_params(), a.full_params()));
      CHECK(c.state().tokens_seen == a.state().tokens_seen);
      CHECK(c.state().samples_seen == a.state().samples_seen);
    }
  }
}

TEST_CASE("starting over a finished run is refused unless --resume or --fresh", "[e2e]") {
  Config cfg = small_deck(temp_dir("refuse"));
  cfg.stages.resize(1);
  cfg.stages[0].steps = 2;
  { Trainer t(cfg, MPI_COMM_WORLD, TrainOptions{false, false, true}); t.run(); }
  const std::string msg = error_of([&] { Trainer t(cfg, MPI_COMM_WORLD, TrainOptions{false, false, true}); });
  CHECK(msg.find("already holds checkpoints") != std::string::npos);
  {  // resuming with another seed would not continue the run: refused, naming the key
    Config other = cfg;
    other.run.seed += 1;
    const std::string m = error_of([&] { Trainer t(other, MPI_COMM_WORLD, TrainOptions{true, false, true}); });
    CHECK(m.find("run.seed") != std::string::npos);
  }
  {  // --resume of a finished run does nothing more
    Trainer t(cfg, MPI_COMM_WORLD, TrainOptions{true, false, true});
    t.run();
    CHECK(t.history().empty());
    CHECK(t.state().global_step == 2);
  }
  {  // --fresh starts again from step 0
    Trainer t(cfg, MPI_COMM_WORLD, TrainOptions{false, true, true});
    CHECK(t.state().global_step == 0);
    t.run();
    CHECK(t.history().size() == 2);
  }
}

TEST_CASE("periodic checkpoints are pruned to checkpoint.keep, stage ends kept", "[e2e]") {
  Config cfg = small_deck(temp_dir("keep"));
  cfg.checkpoint.every = 2;
  cfg.checkpoint.keep = 1;
  Trainer t(cfg, MPI_COMM_WORLD, TrainOptions{false, false, true});
  t.run();
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(cfg.checkpoint.dir)) names.push_back(e.path().filename());
  std::sort(names.begin(), names.end());
  // Steps 2 4 6 8 10 12 were written; 6 and 12 end stages; of the rest only the newest (10) stays.
  CHECK(names == std::vector<std::string>{"ckpt_0000006.h5", "ckpt_0000010.h5", "ckpt_0000012.h5"});
}

TEST_CASE("resume keeps each metrics line once and drops lines cut short by a crash", "[e2e]") {
  const std::string dir = temp_dir("metrics");
  const std::string path = dir + "/metrics.jsonl";
  {
    std::ofstream f(path);
    f << "{\"stage\":1,\"global_step\":1,\"loss\":5.5}\n"
      << "{\"stage\":1,\"global_step\":2,\"loss\":5.1}\n"
      << "{\"stage\":1,\"global_step\":3,\"loss\":4.9}\n"  // after the checkpoint: dropped
      << "{\"stage\":1,\"global_step\":";                   // cut short: dropped, not fatal
  }
  FILE* f = open_metrics(path, 2);
  REQUIRE(f);
  std::fclose(f);
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string l; std::getline(in, l);) lines.push_back(l);
  CHECK(lines == std::vector<std::string>{"{\"stage\":1,\"global_step\":1,\"loss\":5.5}",
                                          "{\"stage\":1,\"global_step\":2,\"loss\":5.1}"});
}

TEST_CASE("checkpoint pruning ignores files that only look like checkpoints", "[e2e]") {
  Config cfg = small_deck(temp_dir("prune-names"));
  cfg.checkpoint.keep = 1;
  fs::create_directories(cfg.checkpoint.dir);
  for (const char* n : {"ckpt_release.h5", "ckpt_12abcde.h5", "ckpt_0000002.h5", "ckpt_0000004.h5",
                        "ckpt_123456789.h5", "notes.txt"})
    std::ofstream(cfg.checkpoint.dir + "/" + n) << "x";
  prune_checkpoints(cfg);
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(cfg.checkpoint.dir)) names.push_back(e.path().filename());
  std::sort(names.begin(), names.end());
  // Steps 2 and 4 and 123456789 are checkpoints (none ends a stage of this deck): the newest stays.
  CHECK(names == std::vector<std::string>{"ckpt_123456789.h5", "ckpt_12abcde.h5", "ckpt_release.h5", "notes.txt"});
}
