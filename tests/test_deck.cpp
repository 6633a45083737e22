// test_deck.cpp — the TOML deck: malformed decks are refused with file:line, key and range;
// valid decks, defaults, --set overrides and the to_toml round trip give the expected Config.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <string>
#include <vector>

#include "longctx/config.h"
#include "util.h"
#include "catch.h"

using longctx::Config;
using longctx::parse_deck_text;
using longctx::DataKind;
using longctx::Filler;
using longctx::Ring;
using longctx::Schedule;
using longctx::TpMode;
using longctx::test::error_of;

namespace {

// A valid stage to append after the sections under test (its lines come after theirs).
const std::string kStage = "\n[[stage]]\nseq_len = 64\nrope_theta = 10000.0\nsteps = 10\n";

std::string deck_error(const std::string& text, const std::vector<std::string>& overrides = {}) {
  return error_of([&] { parse_deck_text(text, "deck.toml", overrides); });
}

// The deck must be refused with a message that contains every one of `parts`.
void expect_error(const std::string& text, std::initializer_list<std::string> parts,
                  const std::vector<std::string>& overrides = {}) {
  const std::string msg = deck_error(text, overrides);
  INFO("deck:\n" << text << "\nmessage: " << msg);
  REQUIRE(!msg.empty());
  for (const auto& p : parts) CHECK(msg.find(p) != std::string::npos);
}

const std::string kFullDeck = R"(# every key set
[run]
name = "full-run.1"
out_dir = "out/here"
seed = 42
log_every = 5
threads = 2

[model]
vocab_size = 512
d_model = 256
n_layers = 3
n_heads = 8
n_kv_heads = 2
d_ff = 688
norm_eps = 1e-6
tie_embeddings = true
init_std = 0.01
recompute = true

[parallel]
dp = 2
tp = 2
sp = 2
tp_mode = "reduce_scatter"
ring = "contiguous"

[optim]
lr = 1e-3
min_lr = 1e-4
warmup_steps = 3
schedule = "constant"
weight_decay = 0.0
beta1 = 0.8
beta2 = 0.99
eps = 1e-6
grad_clip = 0

[data]
kind = "tokens"
path = "data/train.h5"
filler = "random_words"
needle_depth = 0.5
key_digits = 7

[checkpoint]
dir = "ckpt"
every = 10
keep = 2
init_from = "base.h5"

[[stage]]
seq_len = 1024
rope_theta = 500000
steps = 4
batch_accum = 8
micro_batch = 2

[[stage]]
seq_len = 4096
rope_theta = 2.5e6
steps = 6
)";

// Field-by-field equality (doubles exactly: the deck text must round-trip every bit).
void require_equal(const Config& a, const Config& b) {
  CHECK(a.deck_path == b.deck_path);
  CHECK(a.run.name == b.run.name);
  CHECK(a.run.out_dir == b.run.out_dir);
  CHECK(a.run.seed == b.run.seed);
  CHECK(a.run.log_every == b.run.log_every);
  CHECK(a.run.threads == b.run.threads);
  CHECK(a.model.vocab_size == b.model.vocab_size);
  CHECK(a.model.d_model == b.model.d_model);
  CHECK(a.model.n_layers == b.model.n_layers);
  CHECK(a.model.n_heads == b.model.n_heads);
  CHECK(a.model.n_kv_heads == b.model.n_kv_heads);
  CHECK(a.model.d_ff == b.model.d_ff);
  CHECK(a.model.norm_eps == b.model.norm_eps);
  CHECK(a.model.tie_embeddings == b.model.tie_embeddings);
  CHECK(a.model.init_std == b.model.init_std);
  CHECK(a.model.recompute == b.model.recompute);
  CHECK(a.parallel.dp == b.parallel.dp);
  CHECK(a.parallel.tp == b.parallel.tp);
  CHECK(a.parallel.sp == b.parallel.sp);
  CHECK(a.parallel.tp_mode == b.parallel.tp_mode);
  CHECK(a.parallel.ring == b.parallel.ring);
  CHECK(a.optim.lr == b.optim.lr);
  CHECK(a.optim.min_lr == b.optim.min_lr);
  CHECK(a.optim.warmup_steps == b.optim.warmup_steps);
  CHECK(a.optim.schedule == b.optim.schedule);
  CHECK(a.optim.weight_decay == b.optim.weight_decay);
  CHECK(a.optim.beta1 == b.optim.beta1);
  CHECK(a.optim.beta2 == b.optim.beta2);
  CHECK(a.optim.eps == b.optim.eps);
  CHECK(a.optim.grad_clip == b.optim.grad_clip);
  CHECK(a.data.kind == b.data.kind);
  CHECK(a.data.path == b.data.path);
  CHECK(a.data.filler == b.data.filler);
  CHECK(a.data.needle_depth == b.data.needle_depth);
  CHECK(a.data.key_digits == b.data.key_digits);
  CHECK(a.checkpoint.dir == b.checkpoint.dir);
  CHECK(a.checkpoint.every == b.checkpoint.every);
  CHECK(a.checkpoint.keep == b.checkpoint.keep);
  CHECK(a.checkpoint.init_from == b.checkpoint.init_from);
  REQUIRE(a.stages.size() == b.stages.size());
  for (size_t i = 0; i < a.stages.size(); i++) {
    INFO("stage " << i + 1);
    CHECK(a.stages[i].seq_len == b.stages[i].seq_len);
    CHECK(a.stages[i].rope_theta == b.stages[i].rope_theta);
    CHECK(a.stages[i].steps == b.stages[i].steps);
    CHECK(a.stages[i].batch_accum == b.stages[i].batch_accum);
    CHECK(a.stages[i].micro_batch == b.stages[i].micro_batch);
  }
}

std::string write_file(const std::string& text) {
  const std::string path = longctx::test::temp_dir("deck") + "/deck.toml";
  std::ofstream(path) << text;
  return path;
}

}  // namespace

TEST_CASE("deck: keys, sections and types are checked", "[deck]") {
  SECTION("unknown key") {
    expect_error(
        "[model]\nd_model = 128\nbogus = 1\n" + kStage,
        {"deck.toml:3", "unknown key 'bogus' in [model]", "known keys: vocab_size, d_model"});
  }
  SECTION("unknown section") {
    expect_error("[run]\nseed = 1\n[modle]\nd_model = 128\n" + kStage,
                 {"deck.toml:3", "unknown section [modle]", "[model]"});
  }
  SECTION("unknown top-level key") {
    expect_error("seed = 1\n" + kStage, {"deck.toml:1", "'seed'", "top level"});
  }
  SECTION("string for an integer") {
    expect_error("[run]\nname = \"x\"\nseed = \"abc\"\n" + kStage,
                 {"deck.toml:3", "run.seed must be an integer", "string \"abc\""});
  }
  SECTION("float for an integer") {
    expect_error("[model]\nn_layers = 2.5\n" + kStage,
                 {"deck.toml:2", "model.n_layers", "float 2.5"});
  }
  SECTION("integer for a bool") {
    expect_error("[model]\nrecompute = 1\n" + kStage,
                 {"deck.toml:2", "model.recompute", "integer 1"});
  }
  SECTION("string for a bool") {
    expect_error("[model]\n\ntie_embeddings = \"true\"\n" + kStage,
                 {"deck.toml:3", "model.tie_embeddings", "boolean"});
  }
  SECTION("a section that is not a table") {
    expect_error("model = 3\n" + kStage, {"deck.toml:1", "model", "integer 3"});
  }
  SECTION("bad tp_mode choice") {
    expect_error(
        "[parallel]\ntp_mode = \"scatter\"\n" + kStage,
        {"deck.toml:2", "parallel.tp_mode", "\"scatter\"", "\"all_reduce\" | \"reduce_scatter\""});
  }
  SECTION("bad ring choice") {
    expect_error("[parallel]\nsp = 2\nring = \"spiral\"\n" + kStage,
                 {"deck.toml:3", "parallel.ring", "\"spiral\"", "\"zigzag\" | \"contiguous\""});
  }
  SECTION("bad run.name") {
    expect_error("[run]\nname = \"my run\"\n" + kStage,
                 {"deck.toml:2", "run.name", "\"my run\"", "A-Za-z0-9._-"});
  }
  SECTION("TOML syntax error") {
    expect_error("[model]\nd_model = 128\nn_heads = = 4\n" + kStage,
                 {"deck.toml:3:", "TOML syntax error"});
  }
}

TEST_CASE("deck: ranges are enforced, nothing clamped", "[deck]") {
  SECTION("negative steps") {
    expect_error("[[stage]]\nseq_len = 64\nrope_theta = 1e4\nsteps = -5\n",
                 {"deck.toml:4", "stage[1].steps = -5", "1..1000000000"});
  }
  SECTION("zero seq_len in the second stage") {
    expect_error(kStage + "\n[[stage]]\nseq_len = 0\nrope_theta = 1e4\nsteps = 1\n",
                 {"deck.toml:8", "stage[2].seq_len = 0", "2..2147483648"});
  }
  SECTION("rope_theta = 1") {
    expect_error("[[stage]]\nseq_len = 64\nrope_theta = 1\nsteps = 5\n",
                 {"deck.toml:3", "stage[1].rope_theta = 1", "(1, 1000000000000000]"});
  }
  SECTION("beta1 = 1") {
    expect_error("[optim]\nbeta1 = 1\n" + kStage, {"deck.toml:2", "optim.beta1 = 1", "[0, 1)"});
  }
  SECTION("lr = 0") {
    expect_error("[optim]\nlr = 0.0\n" + kStage, {"deck.toml:2", "optim.lr = 0", "(0, 1]"});
  }
  SECTION("init_std = 2") {
    expect_error("[model]\ninit_std = 2\n" + kStage,
                 {"deck.toml:2", "model.init_std = 2", "(0, 1]"});
  }
  SECTION("norm_eps = 0") {
    expect_error("[model]\nnorm_eps = 0\n" + kStage,
                 {"deck.toml:2", "model.norm_eps = 0", "(0, 0.1]"});
  }
  SECTION("nan is refused") {
    expect_error("[optim]\ngrad_clip = nan\n" + kStage, {"deck.toml:2", "optim.grad_clip"});
  }
  SECTION("key_digits = 19") {
    expect_error("[data]\nkey_digits = 19\n" + kStage,
                 {"deck.toml:2", "data.key_digits = 19", "1..18"});
  }
  SECTION("needle_depth between -1 and 0") {
    expect_error("[data]\nneedle_depth = -0.5\n" + kStage,
                 {"deck.toml:2", "data.needle_depth = -0.5", "-1"});
  }
}

TEST_CASE("deck: inconsistent values name both keys", "[deck]") {
  SECTION("n_heads does not divide d_model") {
    expect_error("[model]\nd_model = 128\nn_heads = 5\n" + kStage,
                 {"deck.toml:3", "model.n_heads = 5 must divide model.d_model = 128"});
  }
  SECTION("n_kv_heads does not divide n_heads") {
    expect_error("[model]\nn_heads = 4\nn_kv_heads = 3\n" + kStage,
                 {"deck.toml:3", "model.n_kv_heads = 3", "model.n_heads = 4"});
  }
  SECTION("n_kv_heads above n_heads") {
    expect_error("[model]\nn_heads = 4\nn_kv_heads = 8\n" + kStage,
                 {"deck.toml:3", "model.n_kv_heads = 8", "model.n_heads = 4"});
  }
  SECTION("odd head size") {
    expect_error("[model]\nd_model = 24\nn_heads = 8\n" + kStage,
                 {"deck.toml:3", "model.d_model", "model.n_heads", "= 3", "even"});
  }
  SECTION("tp does not divide n_heads") {
    expect_error("[parallel]\ntp = 3\n" + kStage,
                 {"deck.toml:2", "parallel.tp = 3", "model.n_heads = 4"});
  }
  SECTION("n_kv_heads >= tp but not divisible by it") {
    expect_error(
        "[model]\nd_model = 96\nn_heads = 6\nn_kv_heads = 3\n[parallel]\ntp = 2\n" + kStage,
        {"deck.toml:6", "parallel.tp = 2", "model.n_kv_heads = 3"});
  }
  SECTION("tokens kind without a path") {
    expect_error("[data]\nkind = \"tokens\"\n" + kStage,
                 {"deck.toml:2", "data.path", "data.kind = \"tokens\""});
  }
  SECTION("needle data with vocab_size 100") {
    expect_error("[model]\nvocab_size = 100\n" + kStage,
                 {"deck.toml:2", "model.vocab_size = 100", "data.kind = \"needle\"", "259"});
  }
  SECTION("min_lr above lr") {
    expect_error("[optim]\nlr = 1e-4\nmin_lr = 1e-3\n" + kStage,
                 {"deck.toml:3", "optim.min_lr = 0.001", "optim.lr = 0.0001"});
  }
  SECTION("warmup longer than the run") {
    expect_error("[optim]\nwarmup_steps = 11\n" + kStage,
                 {"deck.toml:2", "optim.warmup_steps = 11", "total steps", "10"});
  }
  SECTION("zigzag with sp = 2 and seq_len 6") {
    expect_error(
        "[parallel]\nsp = 2\n\n[[stage]]\nseq_len = 6\nrope_theta = 1e4\nsteps = 1\n",
        {"deck.toml:5", "stage[1].seq_len = 6", "divisible by 4", "parallel.sp = 2", "zigzag"});
  }
  SECTION("contiguous with sp = 4 and seq_len 6") {
    expect_error(
        "[parallel]\nsp = 4\nring = \"contiguous\"\n[[stage]]\nseq_len = 6\nrope_theta = "
        "1e4\nsteps = 1\n",
        {"deck.toml:5", "stage[1].seq_len = 6", "divisible by 4", "contiguous"});
  }
  SECTION("reduce_scatter needs seq_len divisible by tp * 2 * sp") {
    expect_error(
        "[parallel]\ntp = 2\nsp = 2\ntp_mode = \"reduce_scatter\"\n"
        "[[stage]]\nseq_len = 12\nrope_theta = 1e4\nsteps = 1\n",
        {"deck.toml:6", "stage[1].seq_len = 12", "divisible by 8", "parallel.tp = 2",
         "reduce_scatter"});
  }
}

TEST_CASE("deck: stages are required and checked", "[deck]") {
  SECTION("no [[stage]]") { expect_error("[model]\nd_model = 128\n", {"deck.toml", "[[stage]]"}); }
  SECTION("empty stage array") { expect_error("stage = []\n", {"deck.toml", "[[stage]]"}); }
  SECTION("[stage] instead of [[stage]]") {
    expect_error("[stage]\nseq_len = 64\nrope_theta = 1e4\nsteps = 1\n",
                 {"deck.toml:1", "[[stage]]"});
  }
  SECTION("stage missing seq_len") {
    expect_error(kStage + "\n[[stage]]\nrope_theta = 1e5\nsteps = 3\n",
                 {"deck.toml:7", "stage[2]", "seq_len"});
  }
  SECTION("unknown key in a stage") {
    expect_error("[[stage]]\nseq_len = 64\nrope_theta = 1e4\nsteps = 1\nbatch = 2\n",
                 {"deck.toml:5", "unknown key 'batch'", "stage[1]", "batch_accum"});
  }
}

TEST_CASE("deck: --set overrides are checked", "[deck]") {
  SECTION("unknown key") {
    expect_error("[model]\nd_model = 128\n" + kStage,
                 {"--set model.bogus=1", "unknown key 'bogus' in [model]", "known keys"},
                 {"model.bogus=1"});
  }
  SECTION("unknown section") {
    expect_error(kStage, {"--set modle.d_model=1", "unknown section [modle]"}, {"modle.d_model=1"});
  }
  SECTION("stage index beyond the stages") {
    expect_error(kStage, {"--set stage.2.steps=7", "stage index '2'", "1 [[stage]]"},
                 {"stage.2.steps=7"});
  }
  SECTION("stage index 0 and not a number") {
    expect_error(kStage, {"--set stage.0.steps=7", "stage index '0'"}, {"stage.0.steps=7"});
    expect_error(kStage, {"--set stage.x.steps=7", "stage index 'x'"}, {"stage.x.steps=7"});
  }
  SECTION("unknown stage key") {
    expect_error(kStage, {"--set stage.1.step=7", "unknown key 'step'"}, {"stage.1.step=7"});
  }
  SECTION("wrong type") {
    expect_error(kStage, {"--set run.seed=abc", "run.seed must be an integer", "string \"abc\""},
                 {"run.seed=abc"});
    expect_error(kStage, {"--set model.n_layers=2.5", "model.n_layers", "float 2.5"},
                 {"model.n_layers=2.5"});
  }
  SECTION("out of range") {
    expect_error(kStage, {"--set stage.1.steps=0", "stage[1].steps = 0"}, {"stage.1.steps=0"});
  }
  SECTION("inconsistent with the file") {
    expect_error("[model]\nd_model = 128\n" + kStage,
                 {"--set model.n_heads=5", "model.n_heads = 5 must divide"}, {"model.n_heads=5"});
  }
  SECTION("no '='") {
    expect_error(kStage, {"--set model.d_model", "section.key=value"}, {"model.d_model"});
  }
}

TEST_CASE("deck: a missing file names the path and the reason", "[deck]") {
  const std::string path = "/nonexistent-dir/no-such-deck.toml";
  const std::string msg = error_of([&] { longctx::parse_deck(path); });
  INFO(msg);
  CHECK(msg.find(path) != std::string::npos);
  CHECK(msg.find("No such file or directory") != std::string::npos);
}

TEST_CASE("deck: a full deck gives the expected values", "[deck]") {
  const Config c = parse_deck_text(kFullDeck, "full.toml");
  CHECK(c.deck_path == "full.toml");
  CHECK(c.run.name == "full-run.1");
  CHECK(c.run.out_dir == "out/here");
  CHECK(c.run.seed == 42);
  CHECK(c.run.log_every == 5);
  CHECK(c.run.threads == 2);
  CHECK(c.model.vocab_size == 512);
  CHECK(c.model.d_model == 256);
  CHECK(c.model.n_layers == 3);
  CHECK(c.model.n_heads == 8);
  CHECK(c.model.n_kv_heads == 2);
  CHECK(c.model.d_ff == 688);
  CHECK(c.model.norm_eps == 1e-6);
  CHECK(c.model.tie_embeddings);
  CHECK(c.model.init_std == 0.01);
  CHECK(c.model.recompute);
  CHECK(c.parallel.dp == 2);
  CHECK(c.parallel.tp == 2);
  CHECK(c.parallel.sp == 2);
  CHECK(c.parallel.tp_mode == TpMode::reduce_scatter);
  CHECK(c.parallel.ring == Ring::contiguous);
  CHECK(c.optim.lr == 1e-3);
  CHECK(c.optim.min_lr == 1e-4);
  CHECK(c.optim.warmup_steps == 3);
  CHECK(c.optim.schedule == Schedule::constant);
  CHECK(c.optim.weight_decay == 0.0);
  CHECK(c.optim.beta1 == 0.8);
  CHECK(c.optim.beta2 == 0.99);
  CHECK(c.optim.eps == 1e-6);
  CHECK(c.optim.grad_clip == 0.0);
  CHECK(c.data.kind == DataKind::tokens);
  CHECK(c.data.path == "data/train.h5");
  CHECK(c.data.filler == Filler::random_words);
  CHECK(c.data.needle_depth == 0.5);
  CHECK(c.data.key_digits == 7);
  CHECK(c.checkpoint.dir == "ckpt");
  CHECK(c.checkpoint.every == 10);
  CHECK(c.checkpoint.keep == 2);
  CHECK(c.checkpoint.init_from == "base.h5");
  REQUIRE(c.stages.size() == 2);
  CHECK(c.stages[0].seq_len == 1024);
  CHECK(c.stages[0].rope_theta == 500000.0);  // an integer where a float is expected
  CHECK(c.stages[0].steps == 4);
  CHECK(c.stages[0].batch_accum == 8);
  CHECK(c.stages[0].micro_batch == 2);
  CHECK(c.stages[1].seq_len == 4096);
  CHECK(c.stages[1].rope_theta == 2.5e6);
  CHECK(c.stages[1].steps == 6);
  CHECK(c.stages[1].batch_accum == 1);
  CHECK(c.stages[1].micro_batch == 1);
  CHECK(c.total_steps() == 10);
}

TEST_CASE("deck: defaults fill in and directories resolve", "[deck]") {
  const Config c = parse_deck_text("[model]\nn_heads = 8\n" + kStage, "d.toml");
  Config want;
  want.deck_path = "d.toml";
  want.model.n_heads = 8;
  want.model.n_kv_heads = 8;  // n_kv_heads defaults to n_heads
  want.run.out_dir = "runs/longctx";
  want.checkpoint.dir = "runs/longctx/checkpoints";
  want.stages = {{64, 10000.0, 10, 1, 1}};
  require_equal(c, want);

  const Config d =
      parse_deck_text("[run]\nname = \"abc\"\n[checkpoint]\ndir = \"\"\n" + kStage, "d.toml");
  CHECK(d.run.out_dir == "runs/abc");
  CHECK(d.checkpoint.dir == "runs/abc/checkpoints");
  const Config e = parse_deck_text("[run]\nout_dir = \"/scratch/r\"\n" + kStage, "d.toml");
  CHECK(e.checkpoint.dir == "/scratch/r/checkpoints");
}

TEST_CASE("deck: --set overrides change values", "[deck]") {
  const std::vector<std::string> sets = {"stage.2.steps=7",       "data.kind=tokens",
                                         "data.path=x.h5",        "optim.lr=0.002",
                                         "run.name=\"quoted\"",   "model.recompute=true",
                                         "stage.1.micro_batch=4", "checkpoint.every = 3"};
  const Config c = parse_deck_text(kStage + kStage, "o.toml", sets);
  REQUIRE(c.stages.size() == 2);
  CHECK(c.stages[0].steps == 10);
  CHECK(c.stages[1].steps == 7);
  CHECK(c.stages[0].micro_batch == 4);
  CHECK(c.data.kind == DataKind::tokens);
  CHECK(c.data.path == "x.h5");
  CHECK(c.optim.lr == 0.002);
  CHECK(c.run.name == "quoted");
  CHECK(c.run.out_dir == "runs/quoted");
  CHECK(c.model.recompute);
  CHECK(c.checkpoint.every == 3);
  CHECK(c.total_steps() == 17);

  // A string key takes the text as it is when it reads as another TOML type.
  const Config e = parse_deck_text(kStage, "o.toml", {"run.name=2024-01-01", "data.path=123"});
  CHECK(e.run.name == "2024-01-01");
  CHECK(e.data.path == "123");

  // An override replaces a value given in the file; later overrides win.
  const Config d =
      parse_deck_text(kFullDeck, "full.toml", {"model.d_model=512", "model.d_model=1024"});
  CHECK(d.model.d_model == 1024);
}

TEST_CASE("deck: to_toml round-trips exactly", "[deck]") {
  SECTION("full deck") {
    const Config c = parse_deck_text(kFullDeck, "full.toml");
    require_equal(parse_deck_text(longctx::to_toml(c), "full.toml"), c);
  }
  SECTION("defaults") {
    const Config c = parse_deck_text(kStage, "d.toml");
    const std::string text = longctx::to_toml(c);
    INFO(text);
    CHECK(text.find("[[stage]]") != std::string::npos);
    CHECK(text.find("out_dir = \"runs/longctx\"") != std::string::npos);
    require_equal(parse_deck_text(text, "d.toml"), c);
  }
  SECTION("awkward floats and strings") {
    const Config c =
        parse_deck_text(kStage, "d.toml",
                        {"optim.lr=0.30000000000000004", "model.init_std=0.3333333333333333",
                         "stage.1.rope_theta=1e15", "optim.grad_clip=1e300",
                         "data.path=\"a \\\"b\\\" \\\\ c\\té\"", "checkpoint.init_from=\"\""});
    CHECK(c.data.path == "a \"b\" \\ c\té");
    const std::string text = longctx::to_toml(c);
    INFO(text);
    require_equal(parse_deck_text(text, "d.toml"), c);
    CHECK(longctx::to_toml(parse_deck_text(text, "d.toml")) == text);  // stable
  }
}

TEST_CASE("deck: parse_deck and load_config read a file", "[deck]") {
  const std::string path = write_file(kFullDeck);
  const Config a = longctx::parse_deck(path);
  CHECK(a.deck_path == path);
  const Config b = longctx::load_config(path, {"optim.lr=0.005"}, MPI_COMM_WORLD);
  CHECK(b.optim.lr == 0.005);
  Config want = a;
  want.optim.lr = 0.005;
  require_equal(b, want);
  const std::string msg = error_of([&] { longctx::parse_deck(path, {"model.n_heads=5"}); });
  CHECK(msg.find("--set model.n_heads=5") != std::string::npos);
}
