// data_needle.cpp — the synthetic needle/passkey generator (byte-level tokens).
//
// Layout of one sample of `len` tokens, with R = len - 2 - |needle| - |question| filler bytes:
//
//   BOS | filler[0, b) | needle | filler[b, R) | question | EOS
//
// The filler is one stream of whole sentences; b is the sentence boundary in [0, R] nearest to
// depth * R, so the needle always sits between two sentences, and only the last filler sentence
// (right before the question) may be cut short. depth 0 gives b = 0 (needle right after BOS);
// depth 1 gives the last boundary <= R (only a fragment of one sentence between needle and
// question). Every draw comes from Stream(hash64(seed, step, sample)) in a fixed order: the key
// digits, then the depth (if random), then the filler.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "longctx/common.h"
#include "longctx/data.h"
#include "longctx/rng.h"

namespace longctx {
namespace {

// The filler of the landmark-attention paper, one sentence per entry, cycled in order.
constexpr const char* kLandmark[] = {"The grass is green. ", "The sky is blue. ", "The sun is yellow. ",
                                     "Here we go. ", "There and back again. "};

// Common short English words (lower case) for the random_words filler.
constexpr const char* kWords[] = {
    "the",   "of",    "and",   "to",    "in",    "is",    "it",    "you",   "that",  "he",
    "was",   "for",   "on",    "are",   "with",  "as",    "his",   "they",  "be",    "at",
    "one",   "have",  "this",  "from",  "or",    "had",   "by",    "hot",   "word",  "but",
    "what",  "some",  "we",    "can",   "out",   "other", "were",  "all",   "there", "when",
    "up",    "use",   "your",  "how",   "said",  "an",    "each",  "she",   "which", "do",
    "their", "time",  "if",    "will",  "way",   "about", "many",  "then",  "them",  "write",
    "would", "like",  "so",    "these", "her",   "long",  "make",  "thing", "see",   "him",
    "two",   "has",   "look",  "more",  "day",   "could", "go",    "come",  "did",   "number",
    "sound", "no",    "most",  "people", "my",   "over",  "know",  "water", "than",  "call",
    "first", "who",   "may",   "down",  "side",  "been",  "now",   "find",  "any",   "new",
    "work",  "part",  "take",  "get",   "place", "made",  "live",  "where", "after", "back",
    "little", "only", "round", "man",   "year",  "came",  "show",  "every", "good",  "me",
    "give",  "our",   "under", "name",  "very",  "through", "just", "form", "great", "think",
    "say",   "help",  "low",   "line",  "before", "turn", "cause", "same",  "mean",  "move",
    "right", "boy",   "old",   "too",   "does",  "tell",  "set",   "three", "want",  "air",
    "well",  "also",  "play",  "small", "end",   "put",   "home",  "read",  "hand",  "port",
    "large", "spell", "add",   "even",  "land",  "here",  "must",  "big",   "high",  "such",
    "follow", "act",  "why",   "ask",   "men",   "change", "went", "light", "kind",  "off",
    "need",  "house", "picture", "try", "us",    "again", "animal", "point", "mother", "world",
    "near",  "build", "self",  "earth", "father", "head", "stand", "own",   "page",  "tree"};
constexpr uint64_t kNumWords = sizeof(kWords) / sizeof(kWords[0]);
static_assert(kNumWords == 200);

void check_settings(const DataConfig& d) {
  CHECK(d.filler == Filler::landmark || d.filler == Filler::random_words,
        "data.filler = '{}' is not known (expected \"landmark\" or \"random_words\")", d.filler);
  CHECK(d.key_digits >= 1, "data.key_digits = {} must be at least 1", d.key_digits);
  CHECK(d.needle_depth == -1.0 || (d.needle_depth >= 0.0 && d.needle_depth <= 1.0),
        "data.needle_depth = {} must be in [0, 1], or -1 for random", d.needle_depth);
}

std::string needle_text(const std::string& key) {
  return "The pass key is " + key + ". Remember it. " + key + " is the pass key. ";
}
constexpr const char* kQuestion = "What is the pass key? The pass key is ";
std::string question_text(const std::string& key) { return kQuestion + key + "."; }

// Appends the next filler sentence (number i of the stream) to s.
void add_sentence(bool landmark, int64_t i, RandomStream& rng, std::string& s) {
  if (landmark) {
    s += kLandmark[i % 5];
    return;
  }
  int64_t n = 4 + int64_t(rng.below(9));  // 4..12 words
  for (int64_t w = 0; w < n; ++w) {
    const char* word = kWords[rng.below(kNumWords)];
    size_t at = s.size();
    s += word;
    if (w == 0) s[at] = char(s[at] - 'a' + 'A');
    s += w + 1 < n ? " " : ". ";
  }
}

}  // namespace

std::string needle_filler_sentence(const DataConfig& d, int64_t i, RandomStream& rng) {
  std::string s;
  add_sentence(d.filler == Filler::landmark, i, rng, s);
  if (!s.empty() && s.back() == ' ') s.pop_back();
  return s;
}

std::string needle_key(const DataConfig& d, RandomStream& rng) {
  std::string key;
  for (int64_t i = 0; i < d.key_digits; ++i) key += char('0' + (i == 0 ? 1 + rng.below(9) : rng.below(10)));
  return key;
}

int64_t needle_min_len(const DataConfig& d) {
  std::string key(size_t(std::max<int64_t>(d.key_digits, 0)), '0');
  return 2 + int64_t(needle_text(key).size() + question_text(key).size());
}

NeedleInfo needle_sample(const DataConfig& d, uint64_t seed, int64_t step, int64_t sample,
                         int64_t len, int32_t* out) {
  check_settings(d);
  const int64_t min_len = needle_min_len(d);
  CHECK(len >= min_len,
        "a needle sample of {} tokens is too short: {}-digit keys need at least {} tokens "
        "(BOS, needle, question, EOS); use a longer stage seq_len (at least {})",
        len, d.key_digits, min_len, min_len - 1);

  RandomStream rng(hash64(seed, uint64_t(step), uint64_t(sample)));
  NeedleInfo info;
  info.key = needle_key(d, rng);
  const double depth = d.needle_depth < 0 ? rng.uniform() : d.needle_depth;
  const std::string needle = needle_text(info.key), question = question_text(info.key);
  const int64_t room = len - min_len;  // R filler bytes

  // Generate whole sentences until the filler covers the room, and take the boundary nearest to
  // depth * R among those <= R.
  const bool landmark = d.filler == Filler::landmark;
  const double target = depth * double(room);
  static thread_local std::string filler;  // reused: no allocation per sample once grown
  filler.clear();
  filler.reserve(size_t(room) + 128);
  int64_t b = 0;
  for (int64_t i = 0; int64_t(filler.size()) < room; ++i) {
    add_sentence(landmark, i, rng, filler);
    int64_t end = int64_t(filler.size());
    if (end <= room && std::abs(double(end) - target) < std::abs(double(b) - target)) b = end;
  }

  int64_t p = 0;
  auto put = [&](const char* s, int64_t n) {
    for (int64_t i = 0; i < n; ++i) out[p++] = int32_t(static_cast<unsigned char>(s[i]));
  };
  out[p++] = kTokBos;
  put(filler.data(), b);
  info.needle_pos = p;
  info.key_pos = p + 16;  // after "The pass key is "
  put(needle.data(), int64_t(needle.size()));
  put(filler.data() + b, room - b);
  info.answer_pos = p + int64_t(std::char_traits<char>::length(kQuestion));
  put(question.data(), int64_t(question.size()));
  out[p++] = kTokEos;
  CHECK(p == len, "needle sample: wrote {} tokens, expected {}", p, len);
  info.depth = room > 0 ? double(b) / double(room) : 0.0;
  for (char c : info.key) info.answer.push_back(int32_t(static_cast<unsigned char>(c)));
  return info;
}

namespace {

class NeedleSource : public DataSource {
 public:
  explicit NeedleSource(const Config& cfg) : data_(cfg.data), seed_(cfg.run.seed) {
    check_settings(data_);
    CHECK(cfg.model.vocab_size >= kByteVocab,
          "model.vocab_size = {} is too small for byte-level needle data (needs >= {})",
          cfg.model.vocab_size, kByteVocab);
    const int64_t min_len = needle_min_len(data_);
    for (size_t s = 0; s < cfg.stages.size(); ++s) {
      int64_t t = cfg.stages[s].seq_len;
      CHECK(t + 1 >= min_len,
            "stage {}: seq_len = {} is too short for needle data with {}-digit keys: a sample of "
            "seq_len + 1 tokens must hold at least {} (use seq_len >= {})",
            s + 1, t, data_.key_digits, min_len, min_len - 1);
    }
  }

  void sample(int64_t step, int64_t sample, int64_t len, int32_t* out) override {
    needle_sample(data_, seed_, step, sample, len, out);
  }

  std::string describe() const override {
    std::string depth =
        data_.needle_depth < 0 ? "random" : fmt::format("{}", data_.needle_depth);
    return fmt::format("needle/passkey, {} filler, {}-digit keys, depth {}", data_.filler,
                       data_.key_digits, depth);
  }

 private:
  DataConfig data_;
  uint64_t seed_;
};

}  // namespace

std::unique_ptr<DataSource> make_needle_source(const Config& cfg) {
  return std::make_unique<NeedleSource>(cfg);
}

}  // namespace longctx
