// data.h — training data: the synthetic needle/passkey generator, HDF5 token files, pack-text.
//
// Byte-level vocabulary: ids 0..255 are bytes, then the specials below. A training sample is
// seq_len + 1 tokens (inputs are the first seq_len, targets the last seq_len). Every sample is a
// pure function of (seed, step, sample), where `sample` is its index in the global batch of that
// optimizer step, so any rank can produce any sample and resume needs no data state beyond the
// step counter.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "longctx/config.h"

namespace longctx {

constexpr int32_t kTokBos = 256;  // start of a document / sample
constexpr int32_t kTokEos = 257;  // end of a document
constexpr int32_t kTokPad = 258;  // padding (never produced by the generators today)
constexpr int64_t kByteVocab = 259;  // smallest vocab_size that byte-level data fits

// Where the generator put things in one needle sample (token positions in the sample).
struct NeedleInfo {
  std::string key;          // the pass key digits
  int64_t needle_pos = 0;   // first token of the needle sentence
  int64_t key_pos = 0;      // first token of the key inside the needle sentence
  int64_t answer_pos = 0;   // first token of the key in the answer (after the question)
  double depth = 0.0;       // needle_pos / (room for filler), the depth actually used
  std::vector<int32_t> answer;  // the answer's tokens at answer_pos (byte-level: the key digits)
};

// The needle task's text, for prompts built in another vocabulary (src/eval/needle_prompt.cpp).
// Sentence number i of the filler stream, without its trailing space (random_words draws from rng).
struct RandomStream;
std::string needle_filler_sentence(const DataConfig& d, int64_t i, RandomStream& rng);
// The key: d.key_digits digits, the first not 0, drawn first from rng.
std::string needle_key(const DataConfig& d, RandomStream& rng);

// Fills out[0..len) with one needle sample: BOS, filler, the needle sentence
// "The pass key is KEY. Remember it. KEY is the pass key." at the chosen depth, more filler, then
// "What is the pass key? The pass key is KEY." and EOS at the very end. Deterministic from
// (seed, step, sample). Throws Error when len is too short to hold question and needle.
NeedleInfo needle_sample(const DataConfig& d, uint64_t seed, int64_t step, int64_t sample,
                         int64_t len, int32_t* out);
// Shortest len needle_sample accepts for these settings.
int64_t needle_min_len(const DataConfig& d);

class DataSource {
 public:
  virtual ~DataSource() = default;
  // Sample `sample` of optimizer step `step`: `len` token ids into out, each < vocab_size.
  virtual void sample(int64_t step, int64_t sample, int64_t len, int32_t* out) = 0;
  virtual std::string describe() const = 0;
};

// Opens the data the deck names. kind = "tokens" checks the file now (exists, has a 1-D integer
// /tokens dataset, is long enough for the longest stage) and every window when it is read (a token
// id >= vocab_size is refused with its position).
std::unique_ptr<DataSource> open_data(const Config& cfg);

// `longctx pack-text FILES... -o OUT.h5`: each file becomes BOS, its bytes, EOS, appended to the
// uint32 dataset /tokens of OUT.h5 (written under a temporary name, renamed when complete).
// Returns the number of tokens written.
int64_t pack_text(const std::vector<std::string>& files, const std::string& out_path);

// pack-text with a Hugging Face tokenizer.json (`--tokenizer`, tokenizer.h): each file (UTF-8,
// read whole) becomes the post-processor's prefix (e.g. BOS, when the file's template has one),
// its ids, the suffix, then `eos` when given (an added token's text, e.g. "<|end_of_text|>").
// The file's attributes record vocab = "tokenizer", the tokenizer's path and vocab_size.
struct PackOptions {
  std::string tokenizer;  // "" = byte-level
  std::string eos;        // tokenizer only: a token appended to each document
  size_t block = size_t(16) << 20;  // tokenizer only: bytes read at a time (tests take small ones)
};
int64_t pack_text(const std::vector<std::string>& files, const std::string& out_path, const PackOptions& opt);

}  // namespace longctx

namespace longctx {
// The two kinds behind open_data (data_needle.cpp, data_tokens.cpp).
std::unique_ptr<DataSource> make_needle_source(const Config& cfg);
std::unique_ptr<DataSource> make_token_source(const Config& cfg);
}  // namespace longctx
