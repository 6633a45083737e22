// The tokenizer's command-line paths as a user runs them: `longctx tokenize`, `pack-text
// --tokenizer [--eos]`, `eval --tokenizer` (its refusal of a model smaller than the tokenizer).
#include <filesystem>
#include <fstream>
#include <sstream>

#include "catch.h"
#include "longctx/tokenizer.h"
#include "tokenizer_fixture.h"
#include "util.h"

using namespace longctx;
using namespace longctx::test;
namespace fs = std::filesystem;

TEST_CASE("longctx tokenize, pack-text --tokenizer and eval --tokenizer from the command line", "[e2e][tokenizer]") {
  REQUIRE(fs::exists(kBin));
  const std::string dir = temp_dir("tokenizer-cli");
  const std::string tj = dir + "/tokenizer.json", txt = dir + "/a.txt";
  write_small_tokenizer(tj, TokStyle::llama3, false);
  const std::string text = "It's 2024.\nThe quick brown fox: Привет, мир! <|eot_id|> 你好";
  std::ofstream(txt, std::ios::binary) << text;
  const Tokenizer tok = Tokenizer::load(tj);
  std::string out;

  // tokenize --ids prints the ids Tokenizer::encode gives.
  REQUIRE(run_command(std::string(kBin) + " tokenize " + tj + " " + txt + " --ids", &out) == 0);
  std::string want;
  for (int32_t id : tok.encode(text)) {
    if (!want.empty()) want += ' ';
    want += std::to_string(id);
  }
  INFO(out);
  CHECK(contains(out, "\n" + want + "\n"));
  CHECK(contains(out, "MB/s"));

  // pack-text --tokenizer --eos writes BOS + ids + EOS.
  CHECK(run_command(std::string(kBin) + " pack-text " + txt + " -o " + dir + "/d.h5 --tokenizer " + tj +
                        " --eos '<|eot_id|>'", &out) == 0);
  CHECK(contains(out, "wrote " + std::to_string(tok.encode(text).size() + 2) + " tokens"));
  CHECK(fs::exists(dir + "/d.h5"));
  CHECK(run_command(std::string(kBin) + " pack-text " + txt + " -o " + dir + "/e.h5 --eos '<|eot_id|>'", &out) != 0);
  CHECK(contains(out, "--eos without --tokenizer"));
  CHECK(run_command(std::string(kBin) + " pack-text " + txt + " -o " + dir + "/e.h5 --tokenizer", &out) != 0);
  CHECK(contains(out, "--tokenizer needs a value"));
  CHECK(!fs::exists(dir + "/e.h5"));

  // eval --tokenizer: input/tiny.toml's 264-token model cannot hold the tokenizer's ids.
  CHECK(run_command(std::string(kBin) + " eval input/tiny.toml --tokenizer " + tj + " --set run.out_dir=" + dir +
                        " --set checkpoint.dir=" + dir + "/ckpt", &out) != 0);
  CHECK(contains(out, "model.vocab_size = 264 is below the " + std::to_string(tok.vocab_size()) + " tokens"));
  CHECK(run_command(std::string(kBin) + " eval input/tiny.toml --tokenizer " + dir + "/none.json --set run.out_dir=" +
                        dir, &out) != 0);
  CHECK(contains(out, "none.json"));
}
