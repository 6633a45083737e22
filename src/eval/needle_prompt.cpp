// needle_prompt.cpp — needle prompts byte-level or in a tokenizer's vocabulary (needle_prompt.h).
#include "longctx/needle_prompt.h"

#include <cmath>
#include <unordered_map>

#include "longctx/common.h"
#include "longctx/rng.h"
#include "longctx/tokenizer.h"

namespace longctx {
namespace {

class BytePrompt final : public NeedlePrompt {
 public:
  NeedleInfo make(const DataConfig& d, uint64_t seed, int64_t step, int64_t sample, int64_t len,
                  int32_t* out) override {
    return needle_sample(d, seed, step, sample, len, out);
  }
  int64_t min_len(const DataConfig& d) override { return needle_min_len(d); }
  int64_t vocab_size() const override { return kByteVocab; }
  std::string describe() const override { return "byte-level prompts"; }
};

class TokenPrompt final : public NeedlePrompt {
 public:
  explicit TokenPrompt(const std::string& path) : tok_(Tokenizer::load(path)), enc_(tok_) {}

  NeedleInfo make(const DataConfig& d, uint64_t seed, int64_t step, int64_t sample, int64_t len,
                  int32_t* out) override {
    CHECK(d.needle_depth >= 0.0 && d.needle_depth <= 1.0, "needle prompt: depth {} is not in [0, 1]", d.needle_depth);
    RandomStream rng(hash64(seed, uint64_t(step), uint64_t(sample)));
    NeedleInfo info;
    info.key = needle_key(d, rng);
    const Parts p = parts(info.key);
    const int64_t fixed = int64_t(tok_.prefix_ids().size() + p.needle.size() + p.question.size() + p.answer.size() +
                                  p.tail.size() + tok_.suffix_ids().size());
    CHECK_HINT(len >= fixed, "longer lengths (--lengths), or fewer data.key_digits",
               "needle prompt: {} tokens cannot hold the needle, question and answer ({} tokens of {})", len, fixed,
               tok_.name());
    const int64_t room = len - fixed;
    // Whole sentences until the filler covers the room; b: the boundary nearest depth·room.
    filler_.clear();
    const double target = d.needle_depth * double(room);
    int64_t b = 0;
    for (int64_t i = 0; int64_t(filler_.size()) < room; ++i) {
      sentence_.assign(1, ' ');  // (not " " + ...: GCC 12 warns falsely on that)
      sentence_ += needle_filler_sentence(d, i, rng);
      const std::vector<int32_t>& s = piece(sentence_);
      CHECK(!s.empty(), "needle prompt: a filler sentence has no tokens");
      filler_.insert(filler_.end(), s.begin(), s.end());
      const int64_t end = int64_t(filler_.size());
      if (end <= room && std::abs(double(end) - target) < std::abs(double(b) - target)) b = end;
    }
    int64_t at = 0;
    auto put = [&](const int32_t* v, size_t n) {
      for (size_t i = 0; i < n; ++i) out[at++] = v[i];
    };
    put(tok_.prefix_ids().data(), tok_.prefix_ids().size());
    put(filler_.data(), size_t(b));
    info.needle_pos = at;
    info.key_pos = at + p.key_offset;
    put(p.needle.data(), p.needle.size());
    put(filler_.data() + b, size_t(room - b));
    put(p.question.data(), p.question.size());
    info.answer_pos = at;
    put(p.answer.data(), p.answer.size());
    put(p.tail.data(), p.tail.size());
    put(tok_.suffix_ids().data(), tok_.suffix_ids().size());
    CHECK(at == len, "needle prompt: wrote {} tokens, expected {}", at, len);
    info.depth = room > 0 ? double(b) / double(room) : 0.0;
    info.answer = p.answer;
    return info;
  }

  int64_t min_len(const DataConfig& d) override {
    const Parts p = parts(std::string(size_t(std::max<int64_t>(d.key_digits, 1)), '9'));  // the widest digits
    return int64_t(tok_.prefix_ids().size() + p.needle.size() + p.question.size() + p.answer.size() + p.tail.size() +
                   tok_.suffix_ids().size());
  }
  int64_t vocab_size() const override { return tok_.vocab_size(); }
  std::string describe() const override { return "prompts in the vocabulary of " + tok_.describe(); }

 private:
  struct Parts {
    std::vector<int32_t> needle, question, answer, tail;
    int64_t key_offset = 0;  // of the key's tokens in the needle
  };
  // Ids of a piece, cached (the landmark filler repeats five sentences).
  const std::vector<int32_t>& piece(const std::string& text) {
    auto it = cache_.find(text);
    if (it != cache_.end()) return it->second;
    if (cache_.size() > 4096) cache_.clear();
    std::vector<int32_t> ids;
    enc_.encode(text, ids);
    return cache_.emplace(text, std::move(ids)).first->second;
  }
  Parts parts(const std::string& key) {
    Parts p;
    p.answer = piece(" " + key);
    auto add = [&](std::vector<int32_t>& v, const std::vector<int32_t>& x) { v.insert(v.end(), x.begin(), x.end()); };
    add(p.needle, piece(" The pass key is"));
    p.key_offset = int64_t(p.needle.size());
    add(p.needle, p.answer);
    add(p.needle, piece(". Remember it."));
    add(p.needle, p.answer);
    add(p.needle, piece(" is the pass key."));
    add(p.question, piece(" What is the pass key? The pass key is"));
    add(p.tail, piece("."));
    return p;
  }

  Tokenizer tok_;
  Encoder enc_;
  std::unordered_map<std::string, std::vector<int32_t>> cache_;
  std::vector<int32_t> filler_;
  std::string sentence_;
};

}  // namespace

std::unique_ptr<NeedlePrompt> NeedlePrompt::create(const std::string& tokenizer) {
  if (tokenizer.empty()) return std::make_unique<BytePrompt>();
  return std::make_unique<TokenPrompt>(tokenizer);
}

}  // namespace longctx
