// Tests of the needle/passkey generator (src/io/data_needle.cpp).
#include <algorithm>
#include <set>
#include <string>
#include <vector>

#include "longctx/data.h"
#include "util.h"
#include "catch.h"

using namespace longctx;

namespace {

struct Sample {
  std::vector<int32_t> tok;
  std::string text;  // one char per token; BOS and EOS shown as '^' and '$'
  NeedleInfo info;
};

Sample make(const DataConfig& d, uint64_t seed, int64_t len, int64_t step = 0, int64_t sample = 0) {
  Sample s;
  s.tok.assign(size_t(len), -1);
  s.info = needle_sample(d, seed, step, sample, len, s.tok.data());
  s.text.resize(size_t(len));
  for (int64_t i = 0; i < len; ++i) {
    int32_t t = s.tok[size_t(i)];
    s.text[size_t(i)] = t == kTokBos ? '^' : t == kTokEos ? '$' : char(t);
  }
  return s;
}

DataConfig data(const std::string& filler, double depth, int64_t digits = 5) {
  DataConfig d;
  d.filler = *mode_from_string<Filler>(filler);
  d.needle_depth = depth;
  d.key_digits = digits;
  return d;
}

std::string needle_of(const std::string& key) {
  return "The pass key is " + key + ". Remember it. " + key + " is the pass key. ";
}
std::string question_of(const std::string& key) {
  return "What is the pass key? The pass key is " + key + ".";
}

size_t count(const std::string& hay, const std::string& needle) {
  size_t n = 0;
  for (size_t p = hay.find(needle); p != std::string::npos; p = hay.find(needle, p + 1)) ++n;
  return n;
}

// Filler before and after the needle, and the room R for filler.
struct Parts {
  std::string before, after;
  int64_t room;
};
Parts parts(const Sample& s) {
  const auto& k = s.info.key;
  int64_t len = int64_t(s.tok.size());
  int64_t q = len - 1 - int64_t(question_of(k).size());
  int64_t e = s.info.needle_pos + int64_t(needle_of(k).size());
  return {s.text.substr(1, size_t(s.info.needle_pos - 1)), s.text.substr(size_t(e), size_t(q - e)),
          len - 2 - int64_t(needle_of(k).size() + question_of(k).size())};
}

// Longest complete filler sentence in a sample (sentences end in ". ").
int64_t longest_sentence(const Parts& p) {
  int64_t best = 0;
  for (const std::string& f : {p.before, p.after}) {
    size_t start = 0;
    for (size_t e = f.find(". "); e != std::string::npos; e = f.find(". ", start)) {
      best = std::max(best, int64_t(e + 2 - start));
      start = e + 2;
    }
  }
  return best;
}

// Everything the layout promises, for any settings.
void check_layout(const Sample& s, const DataConfig& d) {
  const auto& k = s.info.key;
  const int64_t len = int64_t(s.tok.size());
  REQUIRE(int64_t(k.size()) == d.key_digits);
  CHECK(k[0] != '0');
  CHECK(std::all_of(k.begin(), k.end(), [](char c) { return c >= '0' && c <= '9'; }));
  CHECK(s.tok.front() == kTokBos);
  CHECK(s.tok.back() == kTokEos);
  CHECK(std::all_of(s.tok.begin() + 1, s.tok.end() - 1, [](int32_t t) { return t >= 0 && t < 256; }));
  // The key digits where NeedleInfo says, in the needle and in the answer.
  CHECK(s.text.substr(size_t(s.info.key_pos), k.size()) == k);
  CHECK(s.text.substr(size_t(s.info.answer_pos), k.size()) == k);
  CHECK(s.text.substr(size_t(s.info.needle_pos), needle_of(k).size()) == needle_of(k));
  CHECK(s.info.key_pos == s.info.needle_pos + 16);
  // The question closes the sample; its answer follows "The pass key is ".
  const std::string q = question_of(k);
  CHECK(s.text.substr(size_t(len) - 1 - q.size()) == q + "$");
  CHECK(s.info.answer_pos == len - 2 - int64_t(k.size()));
  CHECK(count(s.text, needle_of(k)) == 1);
  CHECK(count(s.text, "pass key") == 4);
  // The needle sits at a sentence boundary: the filler before it is whole sentences.
  Parts p = parts(s);
  CHECK(int64_t(p.before.size() + p.after.size()) == p.room);
  CHECK((p.before.empty() || p.before.substr(p.before.size() - 2) == ". "));
  if (p.room > 0) CHECK(s.info.depth == Approx(double(p.before.size()) / double(p.room)));
}

}  // namespace

TEST_CASE("needle: layout, key positions and question for both fillers", "[data]") {
  for (const char* filler : {"landmark", "random_words"}) {
    for (double depth : {-1.0, 0.0, 0.25, 0.5, 1.0}) {
      for (int64_t digits : {1, 5, 12}) {
        DataConfig d = data(filler, depth, digits);
        const int64_t m = needle_min_len(d);
        CHECK(m == 90 + 3 * digits);
        for (int64_t len : {m, m + 1, m + 7, int64_t(300), int64_t(4097)}) {
          uint64_t seed = test::fresh_seed();
          INFO("filler " << filler << " depth " << depth << " digits " << digits << " len " << len
                         << " seed " << seed);
          check_layout(make(d, seed, len, 3, 7), d);
        }
      }
    }
  }
}

TEST_CASE("needle: depth 0, 0.5 and 1", "[data]") {
  for (const char* filler : {"landmark", "random_words"}) {
    uint64_t seed = test::fresh_seed();
    INFO("filler " << filler << " seed " << seed);
    for (int64_t len : {int64_t(500), int64_t(3001), int64_t(20000)}) {
      // Depth 0: the needle right after BOS.
      Sample s0 = make(data(filler, 0.0), seed, len);
      CHECK(s0.info.needle_pos == 1);
      CHECK(s0.info.depth == 0.0);
      // Depth 1: after the needle only the start of one sentence (no full sentence), then the
      // question.
      Sample s1 = make(data(filler, 1.0), seed, len);
      Parts p1 = parts(s1);
      CHECK(p1.after.find(". ") == std::string::npos);
      CHECK((p1.after.empty() || (p1.after[0] >= 'A' && p1.after[0] <= 'Z')));
      // Depth 0.5: within one sentence length of the middle of the room.
      Sample s5 = make(data(filler, 0.5), seed, len);
      Parts p5 = parts(s5);
      double off = double(s5.info.needle_pos - 1) - 0.5 * double(p5.room);
      CHECK(std::abs(off) <= double(longest_sentence(p5)));
      CHECK(std::abs(s5.info.depth - 0.5) <= double(longest_sentence(p5)) / double(p5.room));
    }
  }
  // Landmark filler with a room of whole cycles (90 bytes each): depth 1 leaves no filler between
  // the needle and the question.
  DataConfig d = data("landmark", 1.0);
  Sample s = make(d, test::fresh_seed(), needle_min_len(d) + 90 * 10);
  CHECK(parts(s).after.empty());
  CHECK(s.info.depth == 1.0);
}

TEST_CASE("needle: random depth covers both halves", "[data]") {
  for (const char* filler : {"landmark", "random_words"}) {
    uint64_t seed = test::fresh_seed();
    INFO("filler " << filler << " seed " << seed);
    int low = 0, high = 0;
    for (int64_t i = 0; i < 200; ++i) {
      Sample s = make(data(filler, -1.0), seed, 4096, 1, i);
      (s.info.depth < 0.5 ? low : high) += 1;
      CHECK((s.info.depth >= 0.0 && s.info.depth <= 1.0));
    }
    CHECK(low > 60);
    CHECK(high > 60);
  }
}

TEST_CASE("needle: deterministic, and varies with step and sample", "[data]") {
  for (const char* filler : {"landmark", "random_words"}) {
    DataConfig d = data(filler, -1.0);
    uint64_t seed = test::fresh_seed();
    INFO("filler " << filler << " seed " << seed);
    Sample a = make(d, seed, 2000, 5, 9), b = make(d, seed, 2000, 5, 9);
    CHECK(a.tok == b.tok);
    CHECK(a.info.key == b.info.key);
    CHECK(a.info.needle_pos == b.info.needle_pos);
    CHECK(make(d, seed, 2000, 6, 9).tok != a.tok);
    CHECK(make(d, seed, 2000, 5, 10).tok != a.tok);
    CHECK(make(d, seed + 1, 2000, 5, 9).tok != a.tok);
    std::set<std::string> keys;
    for (int64_t i = 0; i < 50; ++i) keys.insert(make(d, seed, 300, 2, i).info.key);
    CHECK(keys.size() >= 45);
  }
}

TEST_CASE("needle: fillers", "[data]") {
  uint64_t seed = test::fresh_seed();
  INFO("seed " << seed);
  // random_words: only letters, spaces and ". ", sentences of 4..12 capitalised words.
  Sample r = make(data("random_words", 0.0), seed, 5000);
  Parts pr = parts(r);
  const std::string& f = pr.after;
  for (size_t i = 0; i < f.size(); ++i) {
    char c = f[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == ' ' ||
              (c == '.' && (i + 1 == f.size() || f[i + 1] == ' '));
    REQUIRE(ok);
  }
  size_t start = 0;
  for (size_t e = f.find(". "); e != std::string::npos; e = f.find(". ", start)) {
    std::string sentence = f.substr(start, e - start);
    CHECK((sentence[0] >= 'A' && sentence[0] <= 'Z'));
    int64_t words = 1 + std::count(sentence.begin(), sentence.end(), ' ');
    CHECK((words >= 4 && words <= 12));
    start = e + 2;
  }
  // landmark: the five sentences in order, repeated.
  const std::string cycle =
      "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again. ";
  Sample l = make(data("landmark", 1.0), seed, 5000);
  Parts pl = parts(l);
  std::string all = pl.before + pl.after, expect;
  while (expect.size() < all.size()) expect += cycle;
  CHECK(all == expect.substr(0, all.size()));
}

TEST_CASE("needle: too short a sample is refused with the minimum", "[data]") {
  DataConfig d = data("landmark", -1.0, 5);
  const int64_t m = needle_min_len(d);
  std::vector<int32_t> out(static_cast<size_t>(m));
  std::string msg = test::error_of([&] { needle_sample(d, 1, 0, 0, m - 1, out.data()); });
  CHECK(msg.find(std::to_string(m)) != std::string::npos);
  CHECK(msg.find("seq_len") != std::string::npos);
  CHECK(test::error_of([&] { needle_sample(d, 1, 0, 0, m, out.data()); }).empty());
  CHECK(!test::error_of([&] { needle_sample(data("lorem", 0.0), 1, 0, 0, m, out.data()); }).empty());
  CHECK(!test::error_of([&] { needle_sample(data("landmark", 1.5), 1, 0, 0, m, out.data()); }).empty());
}

TEST_CASE("needle: a sample of 2^20 + 1 tokens", "[data]") {
  const int64_t len = (int64_t(1) << 20) + 1;
  for (const char* filler : {"landmark", "random_words"}) {
    DataConfig d = data(filler, -1.0);
    uint64_t seed = test::fresh_seed();
    INFO("filler " << filler << " seed " << seed);
    Sample s = make(d, seed, len, 100, 3);
    check_layout(s, d);
  }
}

TEST_CASE("needle: data source", "[data]") {
  Config cfg;
  cfg.run.seed = test::fresh_seed();
  cfg.data = data("random_words", 0.5, 7);
  cfg.stages = {StageConfig{}, StageConfig{}};
  cfg.stages[0].seq_len = 256;
  cfg.stages[1].seq_len = 1024;
  auto src = make_needle_source(cfg);
  CHECK(src->describe() == "needle/passkey, random_words filler, 7-digit keys, depth 0.5");
  cfg.data.needle_depth = -1.0;
  cfg.data.filler = Filler::landmark;
  cfg.data.key_digits = 5;
  src = make_needle_source(cfg);
  CHECK(src->describe() == "needle/passkey, landmark filler, 5-digit keys, depth random");
  std::vector<int32_t> a(1025), b(1025);
  src->sample(4, 2, 1025, a.data());
  needle_sample(cfg.data, cfg.run.seed, 4, 2, 1025, b.data());
  CHECK(a == b);

  Config small = cfg;
  small.model.vocab_size = 258;
  CHECK(test::error_of([&] { make_needle_source(small); }).find("vocab_size") != std::string::npos);
  Config short_stage = cfg;
  short_stage.stages[1].seq_len = 50;
  std::string msg = test::error_of([&] { make_needle_source(short_stage); });
  CHECK(msg.find("stage 2") != std::string::npos);
  CHECK(msg.find("50") != std::string::npos);
  CHECK(msg.find(std::to_string(needle_min_len(cfg.data))) != std::string::npos);
}
