// needle_prompt.h — the prompts of the needle evaluation: byte-level (data.h's generator) or built
// in a tokenizer's vocabulary (`longctx eval --tokenizer tokenizer.json`).
//
// In a tokenizer's vocabulary, a prompt of `len` tokens is
//
//   prefix | filler[0, b) | needle | filler[b, R) | question | answer | tail | suffix
//
// prefix/suffix: the tokenizer's post-processor ids (e.g. BOS); each filler sentence, the needle
// " The pass key is KEY. Remember it. KEY is the pass key.", the question " What is the pass key?
// The pass key is", the answer " KEY" and the tail "." are tokenized as pieces that start with a
// space, so their concatenation is the tokenization of the whole text wherever the pre-tokenizer
// starts a piece at a space-word (Llama-3's and GPT-2's regexes do). R is the room left for
// filler; b is the sentence boundary (in tokens) nearest depth·R; only the last filler sentence
// may be cut. The answer's tokens are what the evaluation scores (top-1 of each given the prefix).
// Draws: key digits, then random_words filler, from Stream(hash64(seed, step, sample)).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "longctx/config.h"
#include "longctx/data.h"

namespace longctx {

class NeedlePrompt {
 public:
  virtual ~NeedlePrompt() = default;
  // Byte-level when `tokenizer` is empty, else that tokenizer.json's vocabulary.
  static std::unique_ptr<NeedlePrompt> create(const std::string& tokenizer);
  // Fills out[0, len) with one prompt at depth d.needle_depth (in [0, 1]).
  virtual NeedleInfo make(const DataConfig& d, uint64_t seed, int64_t step, int64_t sample, int64_t len,
                          int32_t* out) = 0;
  // The shortest len make accepts (no filler), the vocabulary the ids come from, a description.
  virtual int64_t min_len(const DataConfig& d) = 0;
  virtual int64_t vocab_size() const = 0;
  virtual std::string describe() const = 0;
};

}  // namespace longctx
