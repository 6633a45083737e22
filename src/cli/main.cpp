// main.cpp — the `longctx` command: train, eval, info, pack-text. Every error ends the whole job.
#include <mpi.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "longctx/checkpoint.h"
#include "longctx/common.h"
#include "longctx/data.h"
#include "longctx/eval.h"
#include "longctx/hf.h"
#include "longctx/job.h"
#include "longctx/log.h"
#include "longctx/memory.h"
#include "longctx/plan.h"
#include "longctx/signals.h"
#include "longctx/stages.h"
#include "longctx/tokenizer.h"
#include "longctx/train.h"

using namespace longctx;
namespace longctx {
int tokenize_main(const std::vector<std::string>& args, int rank);
}

// Each subcommand's usage (`longctx CMD --help`); all of them together are `longctx --help`.
struct Usage {
  const char* cmd;
  const char* text;
};
static const Usage kUsages[] = {
    {"train", R"(  longctx train DECK.toml [--set section.key=value]... [--resume | --fresh] [--stop-after-stage N]
      Train through the deck's stages. --set overrides a deck value (stage keys: stage.N.key,
      N from 1). --resume continues from the newest checkpoint in checkpoint.dir (or starts anew
      if there is none); --fresh deletes an earlier run's checkpoints and metrics first.
      --stop-after-stage N ends the job once stage N is done (one batch job per stage).)"},
    {"eval", R"(  longctx eval DECK.toml [--checkpoint FILE.h5] [--lengths N,...] [--depths D,...] [--samples N]
               [--rope-theta X] [--tokenizer tokenizer.json] [--set section.key=value]...
      Needle-in-a-haystack: the pass-key retrieval rate of a checkpoint (default: the newest in
      checkpoint.dir) by context length (default: the stages' lengths) and needle depth (default
      0,0.25,0.5,0.75,1), 8 samples per cell, at the checkpoint's rope_theta. Runs on the deck's
      layout; appends JSON lines to <run.out_dir>/needle_eval.jsonl. --tokenizer builds the prompts
      in that tokenizer's vocabulary and scores the answer's tokens (default: byte-level prompts).)"},
    {"plan", R"(  longctx plan DECK.toml [--memory SIZE] [--gpu-memory SIZE] [--ranks-per-node N] [--ranks-per-gpu N]
               [--set section.key=value]...
      The memory plan of every rank of the deck's layout, without training and without MPI (one
      process): per stage and rank, parameters, gradients, optimizer shard, activations with and
      without recompute, ring buffers, op scratch and the peak, for the CPU (fp32) and GPU (bf16)
      backends, with node and GPU totals; then the verdict train would reach against --memory per
      node (default: this machine's available memory) and --gpu-memory per GPU (default: this
      machine's GPU, else unknown). Ranks per node default to 8 for run.device = "cuda" decks (one
      per GPU, as `longctx stages` places them), else to all. Exits 1 when train would refuse.)"},
    {"info", R"(  longctx info [--no-verify] CHECKPOINT.h5
      Summarise a checkpoint and verify its data checksums (reads every dataset; --no-verify
      reads attributes only). h5dump -H shows the whole tree.)"},
    {"pack-text", R"(  longctx pack-text FILE... -o OUT.h5 [--tokenizer tokenizer.json [--eos TOKEN]]
      Tokens of text files into OUT.h5:/tokens for data.kind = "tokens": byte-level (BOS bytes EOS per
      file), or with a Hugging Face tokenizer.json (per file: the post-processor's BOS if it has one,
      the ids, then TOKEN if --eos names one, e.g. "<|end_of_text|>"). The file records vocab_size.)"},
    {"tokenize", R"(  longctx tokenize TOKENIZER.json FILE... [--ids]
      Encode text files with a Hugging Face tokenizer.json (byte-level BPE): tokens, bytes per token
      and throughput per file; --ids prints each file's ids on one line.)"},
    // ---- Hugging Face models (src/cli/hf_cli.cpp) ----
    {"import-hf", R"(  longctx import-hf MODEL_DIR -o OUT.h5
      Convert a Hugging Face LlamaForCausalLM directory (config.json, model.safetensors or sharded
      with model.safetensors.index.json; BF16, F16 or F32) into a checkpoint for checkpoint.init_from
      and eval: the model, rope_theta and max_position_embeddings as its stage. Nothing is written
      unless every check passes.)"},
    {"export-hf", R"(  longctx export-hf CHECKPOINT.h5 -o OUT_DIR [--shard-size 5GB] [--force]
      Write a checkpoint as a Hugging Face directory: config.json and bf16 safetensors (shards of at
      most --shard-size with model.safetensors.index.json when larger). A non-empty OUT_DIR is refused
      unless --force (which replaces only config.json and model*.safetensors files).)"},
    {"forward", R"(  longctx forward CHECKPOINT.h5 --tokens TOKENS.bin [--out LOSSES.bin] [--logprobs LP.bin]
               [--rope-theta X]
      Per-token losses of a checkpoint on one sequence (little-endian int32 tokens) on the CPU: prints
      the mean as a JSON line, --out writes the N-1 losses as float32; --logprobs writes the whole
      next-token log-probabilities, (N-1) x vocab_size float32 (small models: one forward per
      vocabulary entry). tools/hf_check.py compares both with transformers.)"},
    // ---- longctx stages (the scheduler chain, src/cli/stages.cpp) ----
    {"stages", R"(  longctx stages DECK.toml --out DIR --scheduler slurm|pbs [--set section.key=value]...
               [--ranks-per-node N] [--cpus-per-rank N] [--gpus-per-node N] [--time HH:MM:SS]
      One deck and one batch job per stage, each on its stage's layout ([[stage]] dp/tp/sp, else
      [parallel]), and DIR/submit.sh, which chains them with afterok dependencies: stage i resumes
      from the checkpoint stage i-1 left in checkpoint.dir. Ranks per node: 8 for run.device =
      "cuda" (one GPU each), else all on one node; GPUs are requested only for "cuda" runs.)"},
    // ---- end of longctx stages ----
    {"help", R"(  longctx help [COMMAND] | --help | --version
      This text, or one command's (also: longctx COMMAND --help).)"},
};
static const char* kUsageTail = "Run under MPI: mpirun -np N longctx train deck.toml (N = dp·tp·sp of the deck).";

// Prints the usage of `cmd` (all commands when cmd is empty or unknown) on rank 0.
static void print_usage(const std::string& cmd, int rank, FILE* to = stdout) {
  if (rank != 0) return;
  std::string text = "usage:\n";
  bool one = false;
  for (const Usage& u : kUsages)
    if (cmd == u.cmd) text += std::string(u.text) + "\n", one = true;
  if (!one)
    for (const Usage& u : kUsages) text += std::string(u.text) + "\n";
  std::fputs((text + kUsageTail + "\n").c_str(), to);
}

static bool is_help(const std::string& a) { return a == "--help" || a == "-h"; }

// Argument checks: every rank parses the same command line, so they are raised alike (printed once).
#define CHECK_ARG(cond, hint, ...) CHECK_ALIKE(cond, hint, __VA_ARGS__)

static int dispatch(const std::vector<std::string>& args, int rank) {
  if (args.empty() || is_help(args[0]) || args[0] == "help") {
    print_usage(args.size() > 1 && args[0] == "help" ? args[1] : "", rank, args.empty() ? stderr : stdout);
    return args.empty() ? 2 : 0;
  }
  const std::string& cmd = args[0];
  const bool known = std::any_of(std::begin(kUsages), std::end(kUsages), [&](const Usage& u) { return cmd == u.cmd; });
  if (known && std::any_of(args.begin() + 1, args.end(), is_help)) {  // longctx CMD --help
    print_usage(cmd, rank);
    return 0;
  }
  if (cmd == "--version") {
    if (rank == 0) std::printf("longctx %s\n", kVersion);
    return 0;
  }
  if (cmd == "train") {
    std::string deck;
    std::vector<std::string> sets;
    TrainOptions opt;
    for (size_t i = 1; i < args.size(); ++i) {
      const std::string& a = args[i];
      if (a == "--set" && i + 1 < args.size()) sets.push_back(args[++i]);
      else if (a.starts_with("--set=")) sets.push_back(a.substr(6));
      else if (a == "--resume") opt.resume = true;
      else if (a == "--fresh") opt.fresh = true;
      else if (a == "--stop-after-stage" && i + 1 < args.size()) {
        const std::string& v = args[++i];
        const auto r = std::from_chars(v.data(), v.data() + v.size(), opt.stop_after_stage);
        CHECK_ARG(r.ec == std::errc() && r.ptr == v.data() + v.size() && opt.stop_after_stage > 0,
                   "stages count from 1", "train: --stop-after-stage '{}' is not a stage number", v);
      }
      else if (!a.starts_with("-") && deck.empty()) deck = a;
      else CHECK_ARG(false, "longctx train --help lists the options", "train: unexpected argument '{}'", a);
    }
    CHECK_ARG(!deck.empty(), "longctx train input/tiny.toml", "train: no deck given");
    CHECK_ARG(!(opt.resume && opt.fresh), "choose one", "train: --resume and --fresh contradict");
    return train_main(deck, sets, opt);
  }
  if (cmd == "eval") {
    std::string deck;
    std::vector<std::string> sets;
    EvalOptions opt;
    auto number = [](const std::string& opt_name, const std::string& v, auto& out) {
      const auto r = std::from_chars(v.data(), v.data() + v.size(), out);
      CHECK_ARG(r.ec == std::errc() && r.ptr == v.data() + v.size(), "longctx eval --help lists the options",
                 "eval: {} '{}' is not a number", opt_name, v);
    };
    auto list = [&](const std::string& opt_name, const std::string& v, auto& out) {
      out.clear();
      for (size_t at = 0; at <= v.size();) {
        const size_t end = std::min(v.find(',', at), v.size());
        CHECK_ARG(end > at, "a comma-separated list such as 256,1024", "eval: {} '{}' has an empty entry",
                   opt_name, v);
        out.emplace_back();
        number(opt_name, v.substr(at, end - at), out.back());
        at = end + 1;
      }
    };
    const std::vector<std::string> with_value = {"--set", "--checkpoint", "--lengths", "--depths", "--samples",
                                                  "--rope-theta", "--tokenizer"};
    for (size_t i = 1; i < args.size(); ++i) {
      const std::string& a = args[i];
      CHECK_ARG(i + 1 < args.size() || std::find(with_value.begin(), with_value.end(), a) == with_value.end(),
                 "longctx eval --help lists the options", "eval: {} needs a value", a);
      if (a == "--set") sets.push_back(args[++i]);
      else if (a.starts_with("--set=")) sets.push_back(a.substr(6));
      else if (a == "--checkpoint") opt.checkpoint = args[++i];
      else if (a == "--lengths") list(a, args[++i], opt.lengths);
      else if (a == "--depths") list(a, args[++i], opt.depths);
      else if (a == "--samples") number(a, args[++i], opt.samples);
      else if (a == "--rope-theta") number(a, args[++i], opt.rope_theta);
      else if (a == "--tokenizer") opt.tokenizer = args[++i];
      else if (!a.starts_with("-") && deck.empty()) deck = a;
      else CHECK_ARG(false, "longctx eval --help lists the options", "eval: unexpected argument '{}'", a);
    }
    CHECK_ARG(!deck.empty(), "longctx eval input/tiny.toml", "eval: no deck given");
    return eval_main(deck, sets, opt);
  }
  if (cmd == "plan") {  // the memory plan (src/cli/plan.cpp)
    std::string deck;
    std::vector<std::string> sets;
    PlanOptions opt;
    auto size = [](const std::string& name, const std::string& v) {
      const int64_t b = parse_bytes(v);
      CHECK_ARG(b > 0, "a size such as 64G, 512M or a number of bytes", "plan: {} '{}' is not a size", name, v);
      return b;
    };
    auto count = [](const std::string& name, const std::string& v) {
      int64_t n = 0;
      const auto r = std::from_chars(v.data(), v.data() + v.size(), n);
      CHECK_ARG(r.ec == std::errc() && r.ptr == v.data() + v.size() && n >= 1, "a positive whole number",
                "plan: {} '{}' is not a rank count", name, v);
      return n;
    };
    for (size_t i = 1; i < args.size(); ++i) {
      const std::string& a = args[i];
      const bool valued = a == "--set" || a == "--memory" || a == "--gpu-memory" || a == "--ranks-per-node" ||
                          a == "--ranks-per-gpu";
      CHECK_ARG(!valued || i + 1 < args.size(), "longctx plan --help lists the options", "plan: {} needs a value", a);
      if (a == "--set") sets.push_back(args[++i]);
      else if (a.starts_with("--set=")) sets.push_back(a.substr(6));
      else if (a == "--memory") opt.memory = size(a, args[++i]);
      else if (a == "--gpu-memory") opt.gpu_memory = size(a, args[++i]);
      else if (a == "--ranks-per-node") opt.ranks_per_node = count(a, args[++i]);
      else if (a == "--ranks-per-gpu") opt.ranks_per_gpu = count(a, args[++i]);
      else if (!a.starts_with("-") && deck.empty()) deck = a;
      else CHECK_ARG(false, "longctx plan --help lists the options", "plan: unexpected argument '{}'", a);
    }
    CHECK_ARG(!deck.empty(), "longctx plan input/tiny.toml", "plan: no deck given");
    return plan_main(deck, sets, opt);
  }
  if (cmd == "stages") return stages_main(args, rank);  // src/cli/stages.cpp
  if (cmd == "info") {
    std::vector<std::string> paths;
    bool verify = true;
    for (size_t i = 1; i < args.size(); ++i) {
      if (args[i] == "--no-verify") verify = false;
      else paths.push_back(args[i]);
    }
    CHECK_ARG(paths.size() == 1, "longctx info [--no-verify] runs/tiny/checkpoints/ckpt_0000200.h5",
               "info: expected one checkpoint path");
    if (rank == 0) std::fputs(checkpoint_summary(paths[0], verify).c_str(), stdout);
    return 0;
  }
  if (cmd == "pack-text") {
    std::vector<std::string> files;
    std::string out;
    PackOptions opt;
    for (size_t i = 1; i < args.size(); ++i) {
      const bool valued = args[i] == "-o" || args[i] == "--tokenizer" || args[i] == "--eos";
      CHECK_ARG(!valued || i + 1 < args.size(), "longctx pack-text --help", "pack-text: {} needs a value", args[i]);
      if (args[i] == "-o") out = args[++i];
      else if (args[i] == "--tokenizer") opt.tokenizer = args[++i];
      else if (args[i] == "--eos") opt.eos = args[++i];
      else if (args[i].starts_with("--")) CHECK_ARG(false, "longctx pack-text --help", "pack-text: unknown option {}", args[i]);
      else files.push_back(args[i]);
    }
    CHECK_ARG(!out.empty() && !files.empty(), "longctx pack-text a.txt b.txt -o data.h5",
               "pack-text: need input files and -o OUT.h5");
    if (rank == 0) {
      if (!opt.tokenizer.empty()) log_info("pack-text: {}", Tokenizer::load(opt.tokenizer).describe());
      const int64_t n = pack_text(files, out, opt);
      log_info("wrote {} tokens from {} file(s) to {}:/tokens", n, files.size(), out);
    }
    return 0;
  }
  // ---- Hugging Face models (src/cli/hf_cli.cpp) ----
  if (cmd == "import-hf") return import_hf_main(args, rank);
  if (cmd == "tokenize") return tokenize_main(args, rank);  // src/cli/tokenize_cli.cpp
  if (cmd == "export-hf") return export_hf_main(args, rank);
  if (cmd == "forward") return forward_main(args, rank);
  print_usage("", rank, stderr);
  CHECK_ARG(false, "longctx --help lists the commands", "unknown command '{}'", cmd);
  return 2;
}

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  int rc = 0;
  try {
    rc = dispatch(std::vector<std::string>(argv + 1, argv + argc), rank);
  } catch (const std::exception& e) {  // longctx::Error or any other: the job ends with its cause
    // One rank failing must end them all: the others may be waiting in a collective.
    if (size > 1) abort_job(e);
    std::fprintf(stderr, "%s\n", error_report(e).c_str());
    rc = 1;
  }
  std::fflush(stdout);
  std::fflush(stderr);
  // An interrupted run (every rank stopped at the same step boundary) leaves normally, status 75.
  if (rc != 0 && rc != kExitInterrupted && size > 1) MPI_Abort(MPI_COMM_WORLD, rc);
  MPI_Finalize();
  return rc;
}
