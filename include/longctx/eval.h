// eval.h — the needle-in-a-haystack (pass-key) evaluation of a checkpoint: does the model find a
// key hidden at a given depth of a context of a given length?
//
// For every (length, depth) cell, `samples` needle samples (data.h: BOS, filler, the needle
// "The pass key is KEY. ..." at that depth, filler, "What is the pass key? The pass key is KEY.")
// are drawn from a stream of their own (run.seed with a fixed eval salt, so never a training
// sample; a function of length, depth and index only) and run forward once each. A sample counts
// as retrieved when the model's most likely next token is right at every digit of the answer
// (teacher-forced: what greedy decoding would write, a tie for the top counting as right). Runs on
// any layout the deck allows (dp replicas take samples in turn; tp and sp ranks share a sample),
// with the weights of the checkpoint, on the backend run.device picks as train does: the CPU in
// fp32, or each rank's GPU with the weights rounded to bf16 (the memory plan then per GPU).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <mpi.h>

#include "longctx/config.h"

namespace longctx {

struct EvalOptions {
  std::string checkpoint;        // "" = the newest in checkpoint.dir
  std::vector<int64_t> lengths;  // empty = the deck's eval.lengths, and when those are empty the stages' lengths
  std::vector<double> depths;    // empty = the deck's eval.depths (default 0, 0.25, 0.5, 0.75, 1)
  int64_t samples = 0;           // per (length, depth); 0 = the deck's eval.samples (default 8)
  double rope_theta = 0.0;       // 0 = the checkpoint's
  bool quiet = false;            // no table on stdout (tests)
  std::string tokenizer;         // "" = byte-level prompts; else a tokenizer.json (needle_prompt.h):
                                 // retrieval scored on the answer's tokens
};

struct NeedleCell {
  int64_t length = 0;
  double depth = 0.0;
  int64_t samples = 0, retrieved = 0;  // samples with every key digit right
  int64_t digits = 0, digits_right = 0;
  double digit_nll = 0.0;  // summed cross-entropy (nats) of the key digits: progress before retrieval
  int64_t tokens = 0, tokens_right = 0;  // every position of the samples: top-1 right
};

struct NeedleReport {
  std::string checkpoint;
  int64_t global_step = 0;
  int64_t stage = 0;                // 1-based: the stage the checkpoint was written in
  double rope_theta = 0.0;          // the evaluation's
  double checkpoint_theta = 0.0;    // the checkpoint's stage's
  std::vector<NeedleCell> cells;  // length-major, depths in the given order
};

// Collective over world (dp·tp·sp ranks of cfg.parallel); every rank returns the same report.
NeedleReport needle_eval(const Config& cfg, MPI_Comm world, const EvalOptions& opt);

// Rank 0 (no collective): appends one JSON line per cell to <run.out_dir>/needle_eval.jsonl (one
// write; `source` is "eval" or "train", and "stage" the report's) and writes the report's heatmap
// beside it (heatmap.h), named after the checkpoint: needle_ckpt_0000180.png, with _theta<X> added
// when the evaluation's theta is not the checkpoint's. Returns the PNG's path.
std::string write_needle_results(const Config& cfg, const NeedleReport& rep, const char* source);

// `longctx eval DECK [options]`: prints the table, appends one JSON line per cell to
// <run.out_dir>/needle_eval.jsonl and writes the heatmap. Returns the process exit code.
int eval_main(const std::string& deck, const std::vector<std::string>& overrides, const EvalOptions& opt);

}  // namespace longctx
