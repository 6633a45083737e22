// tokenizer.h — Hugging Face tokenizer.json, byte-level BPE (Llama-3 / GPT-2 style), in C++.
//
// Encoding follows Hugging Face `tokenizers`:
//  1. added tokens (model-independent, e.g. <|begin_of_text|>) are split out of the text first:
//     leftmost match, longest at a position; they become their ids and are never pre-tokenized;
//  2. each stretch between them is pre-tokenized by the file's pre_tokenizer: Split (a regex,
//     behaviour "Isolated") and/or ByteLevel (add_prefix_space per piece; use_regex = GPT-2's
//     regex), alone or in a Sequence; the regexes run in PCRE2 (UTF, UCP, JIT) with \s and \S
//     spelled as Unicode White_Space, which is what the Rust crate's regex engine matches;
//  3. each piece's bytes go through BPE: with model.ignore_merges a piece that is a vocabulary
//     entry is that entry; else the bytes' tokens are merged lowest rank first (leftmost on a
//     tie), as the Rust crate does. Pieces shorter than 256 bytes are cached per Encoder;
//  4. with add_special, the post-processor's TemplateProcessing specials (e.g. BOS) are put
//     around the ids; a ByteLevel post-processor adds nothing.
// Vocabulary strings are read through GPT-2's byte-to-unicode table and kept as raw bytes, so
// decode() returns the exact bytes encode() saw (for ids cut mid-character: bytes that are not
// UTF-8; Hugging Face would show U+FFFD there).
// Anything else in the file (another model type, normalizer, pre-tokenizer, Split behaviour,
// added-token flag, post-processor) is refused by name when the file is loaded, never ignored.
// A Tokenizer is immutable after load and may be shared by threads; an Encoder (the word cache
// and the regex match state) belongs to one thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace longctx {

struct TokenizerData;  // the loaded file (src/io/tokenizer_impl.h)

class Tokenizer {
 public:
  // Reads tokenizer.json (the path names it in errors).
  static Tokenizer load(const std::string& path);
  // The same from text; `name` names it in errors.
  static Tokenizer parse(std::string_view json_text, const std::string& name);

  // Ids of `text` (one Encoder per call: use an Encoder for many calls).
  std::vector<int32_t> encode(std::string_view text, bool add_special = false) const;
  // The bytes the ids stand for (added tokens: their content). An id outside the vocabulary throws.
  std::string decode(const std::vector<int32_t>& ids) const;

  // Ids run 0..vocab_size()-1 (the model's and the added tokens'; the largest id + 1).
  int64_t vocab_size() const;
  // The id of a vocabulary entry or added token given as text (not byte-level spelled), or -1.
  int32_t token_id(std::string_view text) const;
  // The post-processor's ids before and after a sequence (TemplateProcessing "single"); empty for
  // a ByteLevel post-processor or none.
  const std::vector<int32_t>& prefix_ids() const;
  const std::vector<int32_t>& suffix_ids() const;
  // What was loaded, one line (model, sizes, pre-tokenizer), for logs.
  std::string describe() const;
  const std::string& name() const;

  const TokenizerData& data() const { return *data_; }

 private:
  std::shared_ptr<const TokenizerData> data_;
};

// The byte offset of the first invalid UTF-8 sequence of s (overlong forms and surrogates are
// invalid), or std::string_view::npos.
size_t invalid_utf8_at(std::string_view s);

// The per-thread state of encoding: the word cache and PCRE2's match data.
class Encoder {
 public:
  explicit Encoder(const Tokenizer& tok);
  ~Encoder();
  Encoder(const Encoder&) = delete;
  Encoder& operator=(const Encoder&) = delete;
  // Appends the ids of `text` to out (with add_special: the post-processor's prefix and suffix).
  void encode(std::string_view text, std::vector<int32_t>& out, bool add_special = false);
  // Streaming a long text in blocks: encodes the longest beginning of `text` whose ids no
  // continuation can change (it ends where a piece of the first pre-tokenizer step ends, before
  // any match that reached the end of `text`: PCRE2's partial matching says so), appends them and
  // returns its length; the caller puts the rest before the next block. With last = true (nothing
  // follows) all of it. The ids of all blocks are those of encode(whole text). Returns 0 before
  // `last` when the first pre-tokenizer step cannot stream (no regex, or ByteLevel's prefix space).
  size_t encode_prefix(std::string_view text, bool last, std::vector<int32_t>& out);
  bool streams() const;
  // Cache statistics (pieces looked up, found).
  int64_t lookups() const { return lookups_; }
  int64_t hits() const { return hits_; }

 private:
  struct State;
  // Added tokens split out, the rest pre-tokenized and merged; partial: streaming (encode_prefix),
  // the last stretch only as far as it is final. Return the length encoded.
  size_t encode_text(std::string_view text, std::vector<int32_t>& out, bool partial);
  size_t encode_plain(std::string_view text, std::vector<int32_t>& out, bool partial);  // no added tokens
  void encode_piece(std::string_view piece, std::vector<int32_t>& out);
  const Tokenizer& tok_;
  std::unique_ptr<State> st_;
  int64_t lookups_ = 0, hits_ = 0;
};

}  // namespace longctx
