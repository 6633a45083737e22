// The needle evaluation on prompts built in a tokenizer's vocabulary (src/eval/needle_prompt.cpp,
// `longctx eval --tokenizer`).
#include <algorithm>
#include <string>
#include <vector>

#include "catch.h"
#include "longctx/checkpoint.h"
#include "longctx/config.h"
#include "longctx/eval.h"
#include "longctx/needle_prompt.h"
#include "longctx/tokenizer.h"
#include "longctx/train.h"
#include "tokenizer_fixture.h"
#include "util.h"

using namespace longctx;
using Catch::Matchers::Contains;

namespace {

// A Llama-3-style tokenizer (BOS template) that learned words, never digits: every key digit is
// one token, so an answer " KEY" is 1 + key_digits tokens.
std::string word_tokenizer(const std::string& dir) {
  const std::string path = dir + "/tokenizer.json";
  test::write_small_tokenizer(path, test::TokStyle::llama3, false, 300,
                              " The pass key is. Remember it. is the pass key. What is the pass key? The pass key is"
                              " The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again."
                              " the of and to in is it you that he was for on are with as his they be at one have");
  return path;
}

size_t count(const std::string& hay, const std::string& needle) {
  size_t n = 0;
  for (size_t p = hay.find(needle); p != std::string::npos; p = hay.find(needle, p + 1)) ++n;
  return n;
}

}  // namespace

TEST_CASE("needle prompts in a tokenizer's vocabulary: exact length, needle at the depth, answer tokens",
          "[tokenizer][data]") {
  const std::string dir = test::temp_dir("needle-tokenizer");
  const std::string path = word_tokenizer(dir);
  const Tokenizer tok = Tokenizer::load(path);
  const auto prompt = NeedlePrompt::create(path);
  CHECK(prompt->vocab_size() == tok.vocab_size());
  const int32_t bos = tok.token_id("<|begin_of_text|>");
  const uint64_t seed = test::fresh_seed();
  INFO("seed " << seed);
  for (const char* filler : {"landmark", "random_words"}) {
    DataConfig d;
    d.filler = *mode_from_string<Filler>(filler);
    d.key_digits = 5;
    const int64_t m = prompt->min_len(d);
    for (double depth : {0.0, 0.25, 0.5, 0.75, 1.0}) {
      for (int64_t len : {m, m + 1, int64_t(300), int64_t(2049)}) {
        d.needle_depth = depth;
        INFO("filler " << filler << " depth " << depth << " len " << len);
        std::vector<int32_t> out(size_t(len) + 1, -7);
        const NeedleInfo info = prompt->make(d, seed, 3, int64_t(len), len, out.data());
        CHECK(out[size_t(len)] == -7);  // nothing past the end
        out.pop_back();
        CHECK(std::all_of(out.begin(), out.end(), [&](int32_t t) { return t >= 0 && t < tok.vocab_size(); }));
        CHECK(out[0] == bos);
        const std::string& key = info.key;
        REQUIRE(key.size() == 5);
        // The answer: " KEY" in the tokenizer's ids, one per digit plus the space, right before ".".
        const std::vector<int32_t> answer = tok.encode(" " + key);
        CHECK(answer.size() == 6);
        CHECK(info.answer == answer);
        const std::vector<int32_t> dot = tok.encode(".");
        CHECK(info.answer_pos == len - int64_t(dot.size() + answer.size()));
        CHECK(std::equal(answer.begin(), answer.end(), out.begin() + info.answer_pos));
        // The needle's tokens where the info says, its key at key_pos.
        const std::vector<int32_t> needle = tok.encode(" The pass key is " + key + ". Remember it. " + key + " is the pass key.");
        REQUIRE(info.needle_pos + int64_t(needle.size()) <= len);
        CHECK(std::equal(needle.begin(), needle.end(), out.begin() + info.needle_pos));
        CHECK(std::equal(answer.begin(), answer.end(), out.begin() + info.key_pos));
        // The text: needle once, the question and answer last.
        const std::string text = tok.decode(out);
        CHECK(count(text, "The pass key is " + key + ". Remember it.") == 1);
        const std::string q = " What is the pass key? The pass key is " + key + ".";
        CHECK(text.substr(text.size() - q.size()) == q);
        // At the depth: the needle at the sentence boundary nearest depth·room (within a sentence).
        const int64_t room = len - m;
        if (depth == 0.0) CHECK(info.needle_pos == 1);
        if (room > 0) {
          CHECK(info.depth == Approx(double(info.needle_pos - 1) / double(room)));
          // Within one filler sentence: at most 12 words of <= 7 letters, a space each and ".": <= 97
          // bytes, so <= 97 tokens (the nearest boundary; at depth 1 the last one that fits).
          CHECK(std::abs(double(info.needle_pos - 1) - depth * double(room)) <= 97.0);
        }
      }
    }
  }
  SECTION("too short a length is refused with the numbers") {
    DataConfig d;
    d.needle_depth = 0.5;
    std::vector<int32_t> out(64);
    CHECK_THAT(test::error_of([&] { prompt->make(d, seed, 0, 0, 10, out.data()); }),
               Contains("10 tokens cannot hold the needle"));
  }
}

TEST_CASE("needle evaluation with --tokenizer scores the answer's tokens", "[tokenizer]") {
  const std::string dir = test::temp_dir("eval-tokenizer");
  const std::string path = word_tokenizer(dir);
  const Tokenizer tok = Tokenizer::load(path);
  const std::string text = fmt::format(R"(
[run]
out_dir = "{}"
seed = {}
[model]
vocab_size = {}
d_model = 32
n_layers = 2
n_heads = 4
n_kv_heads = 2
d_ff = 64
[optim]
lr = 2e-3
[[stage]]
seq_len = 128
rope_theta = 10000
steps = 2
batch_accum = 1
micro_batch = 1
)", dir, test::seed_for("eval-tokenizer"), tok.vocab_size() + 3);
  const Config cfg = parse_deck_text(text, "eval-tokenizer.toml");
  {  // a random model, briefly trained: only the structure of the evaluation is under test
    Trainer t(cfg, MPI_COMM_SELF, TrainOptions{false, false, true});
    t.run();
    t.save(checkpoint_path(dir + "/checkpoints", 2));
  }
  EvalOptions opt;
  opt.lengths = {128, 256}, opt.depths = {0.0, 1.0}, opt.samples = 2, opt.quiet = true;
  opt.tokenizer = path;
  const NeedleReport rep = needle_eval(cfg, MPI_COMM_SELF, opt);
  REQUIRE(rep.cells.size() == 4);
  for (const NeedleCell& c : rep.cells) {
    CHECK(c.samples == 2);
    CHECK(c.digits == 2 * 6);  // the answer's tokens: " " and 5 digits, not the 5 key bytes
    CHECK(c.tokens == 2 * c.length);
    CHECK(std::isfinite(c.digit_nll));
    CHECK(c.digit_nll > 0.0);
  }
  opt.tokenizer.clear();  // byte-level prompts on the same checkpoint: the 5 digits
  const NeedleReport bytes = needle_eval(cfg, MPI_COMM_SELF, opt);
  CHECK(bytes.cells.at(0).digits == 2 * 5);

  SECTION("a model smaller than the tokenizer's vocabulary is refused") {
    Config small = cfg;
    small.model.vocab_size = 270;  // below the tokenizer's 288: refused before the checkpoint is read
    opt.tokenizer = path;
    CHECK_THAT(test::error_of([&] { needle_eval(small, MPI_COMM_SELF, opt); }),
               Contains("below the " + std::to_string(tok.vocab_size()) + " tokens of the needle prompts"));
  }
}
