// test_cli.cpp — the `longctx` binary as a user runs it (from the repository root, after make):
// bad input ends with a message and a non-zero exit; a short real run trains, checkpoints, and
// `longctx info` (and, where h5dump is installed, `h5dump -H`) read the checkpoint.
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "catch.h"
#include "util.h"

using namespace longctx::test;
namespace fs = std::filesystem;

TEST_CASE("the binary refuses bad input with a message and a non-zero exit", "[e2e]") {
  REQUIRE(fs::exists(kBin));
  std::string out;
  CHECK(run_command(std::string(kBin) + " train input/tiny.toml --set model.bogus=1", &out) != 0);
  CHECK(contains(out, "bogus"));
  CHECK(run_command(std::string(kBin) + " train no/such/deck.toml", &out) != 0);
  CHECK(contains(out, "no/such/deck.toml"));
  CHECK(run_command(std::string(kBin) + " train input/tiny.toml --set stage.9.steps=1", &out) != 0);
  CHECK(contains(out, "stage"));
  CHECK(run_command(std::string(kBin) + " frobnicate", &out) != 0);
  CHECK(contains(out, "unknown command"));
  CHECK(run_command(std::string(kBin) + " info build/no-such-checkpoint.h5", &out) != 0);
  CHECK(contains(out, "no-such-checkpoint.h5"));
  CHECK(run_command(std::string(kBin) + " --help", &out) == 0);
  CHECK(contains(out, "longctx train"));
}

TEST_CASE("a deck error under mpirun ends every rank, with the message", "[e2e]") {
  std::string out;
  const int rc = run_command("timeout 60 " + mpirun() + " -np 2 " + kBin +
                                 " train input/tiny.toml --set model.n_heads=3", &out);
  CHECK(rc != 0);
  INFO(out);
  CHECK(rc != 124);  // 124 = killed by timeout: a hang
  CHECK(contains(out, "n_heads"));
}

TEST_CASE("train, checkpoint, info: the user's path", "[e2e]") {
  const std::string dir = temp_dir("cli-run");
  std::string out;
  const int rc = run_command(std::string(kBin) + " train input/tiny.toml" + quick(dir), &out);
  INFO(out);
  REQUIRE(rc == 0);
  CHECK(contains(out, "[run]"));  // the resolved deck is echoed
  CHECK(contains(out, "stage 2/2 step 2/2"));
  CHECK(contains(out, "loss"));
  const std::string ckpt = dir + "/checkpoints/ckpt_0000005.h5";
  REQUIRE(fs::exists(ckpt));
  std::ifstream metrics(dir + "/metrics.jsonl");
  int lines = 0;
  for (std::string l; std::getline(metrics, l);) lines += contains(l, "\"loss\":");
  CHECK(lines == 5);
  CHECK(run_command(std::string(kBin) + " info " + ckpt, &out) == 0);
  CHECK(contains(out, "V=264"));
  // Running again without --resume is refused; with --resume there is nothing left to do.
  CHECK(run_command(std::string(kBin) + " train input/tiny.toml" + quick(dir), &out) != 0);
  CHECK(contains(out, "--resume"));
  CHECK(run_command(std::string(kBin) + " train input/tiny.toml --resume" + quick(dir), &out) == 0);
}

// Tagged [h5dump]: where h5dump is not on PATH, tests/main.cpp leaves it out and reports it skipped.
TEST_CASE("h5dump reads the checkpoint the binary wrote", "[e2e][h5dump]") {
  const std::string dir = temp_dir("cli-h5dump");
  std::string out;
  REQUIRE(run_command(std::string(kBin) + " train input/tiny.toml" + quick(dir), &out) == 0);
  const std::string ckpt = dir + "/checkpoints/ckpt_0000005.h5";
  CHECK(run_command("h5dump -H " + ckpt, &out) == 0);
  CHECK(contains(out, "GROUP \"model\""));
  CHECK(contains(out, "DATASET \"wq\""));
  CHECK(run_command("h5dump -d /model/norm " + ckpt, &out) == 0);
}

TEST_CASE("eval: the needle table of a run's newest checkpoint; bad options are refused", "[e2e]") {
  const std::string dir = temp_dir("cli-eval");
  const std::string eval = std::string(kBin) + " eval input/tiny.toml" + quick(dir);
  std::string out;
  CHECK(run_command(eval, &out) != 0);  // nothing trained yet
  CHECK(contains(out, "no checkpoint in " + dir + "/checkpoints"));
  REQUIRE(run_command(std::string(kBin) + " train input/tiny.toml" + quick(dir), &out) == 0);
  const int rc = run_command(eval + " --lengths 256,512 --depths 0,0.5,1 --samples 3", &out);
  INFO(out);
  REQUIRE(rc == 0);
  CHECK(contains(out, "ckpt_0000005.h5 (step 5), rope_theta 160000, 3 samples per cell"));  // stage 2's theta
  CHECK(contains(out, "      256 "));
  CHECK(contains(out, "      512 "));
  std::ifstream jl(dir + "/needle_eval.jsonl");
  int cells = 0;
  for (std::string l; std::getline(jl, l);)
    cells += contains(l, "\"samples\":3,") && contains(l, "\"digits\":15,") && contains(l, "\"step\":5,");
  CHECK(cells == 6);
  CHECK(run_command(eval + " --depths 0,1.5", &out) != 0);
  CHECK(contains(out, "depth 1.5 is not in [0, 1]"));
  CHECK(run_command(eval + " --lengths 40", &out) != 0);
  CHECK(contains(out, "length 40 cannot hold the needle"));
  CHECK(run_command(eval + " --samples many", &out) != 0);
  CHECK(contains(out, "--samples 'many' is not a number"));
  CHECK(run_command(eval + " --lengths 256,", &out) != 0);
  CHECK(contains(out, "--lengths '256,' has an empty entry"));
  CHECK(run_command(eval + " --samples", &out) != 0);
  CHECK(contains(out, "--samples needs a value"));
  CHECK(run_command(eval + " --checkpoint " + dir + "/nothing.h5", &out) != 0);
  CHECK(contains(out, "nothing.h5"));
  // The model the deck describes must be the checkpoint's.
  CHECK(run_command(eval + " --set model.d_model=48", &out) != 0);
  CHECK(contains(out, "d_model"));
}

TEST_CASE("pack-text, then train on the token file; bad token files are refused", "[e2e]") {
  const std::string dir = temp_dir("cli-tokens");
  {
    std::ofstream a(dir + "/a.txt"), b(dir + "/b.txt");
    for (int i = 0; i < 400; ++i) a << "All work and no play makes Jack a dull boy. ";
    for (int i = 0; i < 300; ++i) b << "It was the best of times, it was the worst of times. ";
  }
  std::string out;
  REQUIRE(run_command(std::string(kBin) + " pack-text " + dir + "/a.txt " + dir + "/b.txt -o " + dir +
                          "/data.h5", &out) == 0);
  const std::string tokens = " --set data.kind=tokens --set data.path=" + dir + "/data.h5";
  const int rc = run_command(std::string(kBin) + " train input/tiny.toml" + quick(dir + "/run") + tokens, &out);
  INFO(out);
  CHECK(rc == 0);
  // vocab_size 100: lower-case letters (97..122) are out of range, refused with their position.
  CHECK(run_command(std::string(kBin) + " train input/tiny.toml" + quick(dir + "/run2") + tokens +
                        " --set model.vocab_size=100", &out) != 0);
  CHECK(contains(out, "vocab_size"));
  CHECK(run_command(std::string(kBin) + " train input/tiny.toml" + quick(dir + "/run3") +
                        " --set data.kind=tokens --set data.path=" + dir + "/missing.h5", &out) != 0);
  CHECK(contains(out, "missing.h5"));
}

TEST_CASE("a failure on one rank ends every rank, with its message, never a hang", "[e2e]") {
  const std::string dir = temp_dir("cli-fail");
  std::string out;
  // Rank 3 of 4 throws at step 2 while the others are inside collectives of that step.
  int rc = run_command("LONGCTX_FAIL_AT=3:2 timeout 120 " + mpirun() + " -x LONGCTX_FAIL_AT -np 4 " + kBin +
                           " train input/tiny_tp2_sp2.toml" + quick(dir), &out);
  INFO(out);
  CHECK(rc != 0);
  CHECK(rc != 124);  // 124: timeout killed it, i.e. the other ranks hung
  CHECK(contains(out, "[rank 3]"));
  CHECK(contains(out, "injected failure on rank 3 at step 2"));
  // A layout that does not match the number of ranks is refused before any work, naming every factor.
  rc = run_command("timeout 120 " + mpirun() + " -np 3 " + kBin + " train input/tiny_tp2_sp2.toml" +
                       quick(dir + "/b"), &out);
  CHECK(rc != 0);
  CHECK(rc != 124);
  CHECK(contains(out, "1 × 2 × 2 = 4, but there are 3 MPI ranks"));
  // A data file that fails on open is reported and ends all ranks too.
  rc = run_command("timeout 120 " + mpirun() + " -np 4 " + kBin + " train input/tiny_tp2_sp2.toml" +
                       quick(dir + "/c") + " --set data.kind=tokens --set data.path=" + dir + "/none.h5", &out);
  CHECK(rc != 0);
  CHECK(rc != 124);
  CHECK(contains(out, "none.h5"));
}

TEST_CASE("the 4-rank example deck trains like the 1-rank one", "[e2e]") {
  const std::string dir = temp_dir("cli-tp2sp2");
  std::string one, four;
  REQUIRE(run_command(std::string(kBin) + " train input/tiny.toml" + quick(dir + "/one"), &one) == 0);
  const int rc = run_command("timeout 300 " + mpirun() + " -np 4 " + kBin + " train input/tiny_tp2_sp2.toml" +
                                 quick(dir + "/four"), &four);
  INFO(four);
  REQUIRE(rc == 0);
  CHECK(contains(four, "process grid dp×sp×tp = 1×2×2 (4 ranks)"));
  // The same 5 step lines, loss to the printed 4 decimals (fp32 rounding differs far below that).
  auto losses = [](const std::string& log) {
    std::vector<std::string> v;
    for (size_t at = log.find("| loss "); at != std::string::npos; at = log.find("| loss ", at + 1))
      v.push_back(log.substr(at + 7, 6));
    return v;
  };
  CHECK(losses(one).size() == 5);
  CHECK(losses(one) == losses(four));
}
