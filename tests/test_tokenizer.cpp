// Hermetic tests of the tokenizer (src/io/tokenizer*.cpp, bpe.cpp, pretokenize.cpp) on
// tokenizer.json files the tests write themselves (tokenizer_fixture.h, and hand-built ones).
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
using Catch::Matchers::Contains;
using json::Value;

namespace {

// A hand-built tokenizer: the 256 bytes (ids 0..255), then `extra` tokens (ids 256...), merges
// as given, GPT-2's ByteLevel pre-tokenizer without prefix space, added tokens after the model's.
Value hand_built(const std::vector<std::string>& extra, const std::vector<std::string>& merges, bool ignore_merges = false,
                 const std::vector<std::string>& added = {}) {
  Value vocab = Value::object(), ms = Value::array(), add = Value::array();
  for (int b = 0; b < 256; ++b) vocab.set(test::byte_level_spelling(std::string(1, char(b))), Value(int64_t(b)));
  for (size_t i = 0; i < extra.size(); ++i) vocab.set(test::byte_level_spelling(extra[i]), Value(int64_t(256 + i)));
  for (const auto& m : merges) ms.push(Value(m));
  for (size_t i = 0; i < added.size(); ++i) {
    Value a = Value::object();
    a.set("id", Value(int64_t(256 + extra.size() + i))), a.set("content", added[i]), a.set("special", true);
    add.push(std::move(a));
  }
  Value model = Value::object(), pre = Value::object(), root = Value::object();
  model.set("type", "BPE"), model.set("ignore_merges", ignore_merges), model.set("vocab", std::move(vocab));
  model.set("merges", std::move(ms));
  pre.set("type", "ByteLevel"), pre.set("add_prefix_space", false), pre.set("use_regex", true);
  root.set("added_tokens", std::move(add)), root.set("normalizer", Value()), root.set("pre_tokenizer", std::move(pre));
  root.set("model", std::move(model));
  return root;
}

Tokenizer make(const Value& root) { return Tokenizer::parse(json::dump(root), "test tokenizer.json"); }

std::string fixture(test::TokStyle style, bool pairs = false) {
  const std::string path = test::temp_dir("tokenizer") + "/" + test::tok_style_name(style) + ".json";
  test::write_small_tokenizer(path, style, pairs);
  return path;
}

std::string utf8(uint32_t cp) {
  std::string s;
  if (cp < 0x80) s += char(cp);
  else if (cp < 0x800) s += char(0xC0 | cp >> 6), s += char(0x80 | (cp & 0x3F));
  else if (cp < 0x10000) s += char(0xE0 | cp >> 12), s += char(0x80 | (cp >> 6 & 0x3F)), s += char(0x80 | (cp & 0x3F));
  else
    s += char(0xF0 | cp >> 18), s += char(0x80 | (cp >> 12 & 0x3F)), s += char(0x80 | (cp >> 6 & 0x3F)),
        s += char(0x80 | (cp & 0x3F));
  return s;
}

// Random UTF-8: code points from ranges of many scripts, white space and emoji, and specials.
std::string random_text(RandomStream& rng, const std::vector<std::string>& specials) {
  static const uint32_t ranges[][2] = {{0x20, 0x7E}, {0x09, 0x0D}, {0xA0, 0x24F}, {0x300, 0x36F}, {0x370, 0x3FF},
                                       {0x400, 0x4FF}, {0x590, 0x6FF}, {0x900, 0x97F}, {0x3000, 0x30FF},
                                       {0x4E00, 0x4FFF}, {0xAC00, 0xACFF}, {0x1F300, 0x1F6FF}, {0x2000, 0x206F}};
  std::string s;
  const uint64_t n = rng.below(60);
  for (uint64_t i = 0; i < n; ++i) {
    if (!specials.empty() && rng.below(20) == 0) {
      s += specials[rng.below(specials.size())];
      continue;
    }
    const auto& r = ranges[rng.below(sizeof ranges / sizeof ranges[0])];
    uint32_t cp = r[0] + uint32_t(rng.below(r[1] - r[0] + 1));
    if (rng.below(4) == 0) cp = 'a' + uint32_t(rng.below(26));  // words too
    s += utf8(cp);
  }
  return s;
}

// root with member `key` of object `obj` (a member of root) replaced by v.
Value with(const Value& root, const std::string& obj, const std::string& key, Value v) {
  Value r = root, o = *root.find(obj);
  o.set(key, std::move(v));
  r.set(obj, std::move(o));
  return r;
}

}  // namespace

TEST_CASE("tokenizer: merges apply by rank, lowest first, leftmost on a tie", "[tokenizer]") {
  const Tokenizer ab_first = make(hand_built({"ab", "bc"}, {"a b", "b c"}));
  const Tokenizer bc_first = make(hand_built({"ab", "bc", "abc"}, {"b c", "a b", "a bc"}));
  CHECK(ab_first.encode("abc") == std::vector<int32_t>{256, 'c'});
  CHECK(bc_first.encode("abc") == std::vector<int32_t>{258});  // b c, then a bc
  CHECK(bc_first.encode("ab") == std::vector<int32_t>{256});
  const Tokenizer aa = make(hand_built({"aa", "aaaa"}, {"a a", "aa aa"}));
  CHECK(aa.encode("aaa") == std::vector<int32_t>{256, 'a'});  // the leftmost pair first
  CHECK(aa.encode("aaaaa") == std::vector<int32_t>{257, 'a'});
  CHECK(aa.encode("aaaaaa") == std::vector<int32_t>{257, 256});
  // Merges never cross pre-tokenizer pieces: " " starts the next GPT-2 piece.
  CHECK(ab_first.encode("a b") == std::vector<int32_t>{'a', ' ', 'b'});
  CHECK(ab_first.vocab_size() == 258);
}

TEST_CASE("tokenizer: ignore_merges takes a whole piece that is a vocabulary entry", "[tokenizer]") {
  CHECK(make(hand_built({"xy", "xyz"}, {"x y"}, true)).encode("xyz") == std::vector<int32_t>{257});
  CHECK(make(hand_built({"xy", "xyz"}, {"x y"}, false)).encode("xyz") == std::vector<int32_t>{256, 'z'});
}

TEST_CASE("tokenizer: added tokens are split out first, longest match", "[tokenizer]") {
  const Tokenizer t = make(hand_built({"ab"}, {"a b"}, false, {"<x>", "<x><y>", "<|eot|>"}));
  CHECK(t.vocab_size() == 260);
  CHECK(t.encode("ab<x>ab") == std::vector<int32_t>{256, 257, 256});
  CHECK(t.encode("<x><y>") == std::vector<int32_t>{258});
  CHECK(t.encode("<x><x>") == std::vector<int32_t>{257, 257});
  CHECK(t.encode("<|eot|") == std::vector<int32_t>{'<', '|', 'e', 'o', 't', '|'});  // cut: plain text
  CHECK(t.encode("<|eot|><|eot|>") == std::vector<int32_t>{259, 259});
  CHECK(t.token_id("<|eot|>") == 259);
  CHECK(t.decode({256, 259, 258}) == "ab<|eot|><x><y>");

  SECTION("the post-processor's BOS only with add_special") {
    const Tokenizer l = Tokenizer::load(fixture(test::TokStyle::llama3));
    const int32_t bos = l.token_id("<|begin_of_text|>");
    REQUIRE(bos > 255);
    CHECK(l.prefix_ids() == std::vector<int32_t>{bos});
    CHECK(l.suffix_ids().empty());
    const auto plain = l.encode("Hello there"), with = l.encode("Hello there", true);
    REQUIRE(with.size() == plain.size() + 1);
    CHECK(with[0] == bos);
    CHECK(std::equal(plain.begin(), plain.end(), with.begin() + 1));
    CHECK(Tokenizer::load(fixture(test::TokStyle::gpt2)).prefix_ids().empty());
  }
}

TEST_CASE("tokenizer: bytes never seen in training fall back to their byte tokens", "[tokenizer]") {
  const Tokenizer t = Tokenizer::load(fixture(test::TokStyle::gpt2));
  CHECK(t.encode("\x01") == std::vector<int32_t>{1});
  CHECK(t.encode("\x7f") == std::vector<int32_t>{0x7f});
  CHECK(t.encode("🦀") == std::vector<int32_t>{0xF0, 0x9F, 0xA6, 0x80});  // no emoji in the training text
  CHECK(t.decode(t.encode("ÿ\x01🦀 ok")) == "ÿ\x01🦀 ok");
}

// (add_prefix_space adds a space to the text by design: its own test is below.)
TEST_CASE("tokenizer: decode(encode(x)) == x on random UTF-8", "[tokenizer]") {
  const uint64_t seed = test::fresh_seed();
  INFO("seed " << seed);
  RandomStream rng(seed);
  for (const auto style : {test::TokStyle::gpt2, test::TokStyle::llama3}) {
    const Tokenizer t = Tokenizer::load(fixture(style));
    const std::vector<std::string> specials = style == test::TokStyle::llama3
                                                  ? std::vector<std::string>{"<|begin_of_text|>", "<|eot_id|>"}
                                                  : std::vector<std::string>{"<|endoftext|>"};
    Encoder enc(t);
    int bad = 0;
    for (int i = 0; i < 400; ++i) {
      const std::string x = random_text(rng, specials);
      std::vector<int32_t> ids;
      enc.encode(x, ids);
      for (int32_t id : ids) bad += id < 0 || id >= t.vocab_size();
      const std::string back = t.decode(ids);
      if (back != x) {
        ++bad;
        UNSCOPED_INFO(test::tok_style_name(style) << ": " << json::dump(Value(x)) << " came back as "
                                                  << json::dump(Value(back)));
      }
    }
    CHECK(bad == 0);
    CHECK(enc.hits() > 0);  // the cache serves repeated pieces
  }
}

TEST_CASE("tokenizer: add_prefix_space adds one space before a piece that has none", "[tokenizer]") {
  const Tokenizer plain = Tokenizer::load(fixture(test::TokStyle::gpt2));
  const Tokenizer prefix = Tokenizer::load(fixture(test::TokStyle::gpt2_prefix));
  CHECK(prefix.encode("Hello world") == plain.encode(" Hello world"));
  CHECK(prefix.encode(" Hello world") == plain.encode(" Hello world"));
  CHECK(prefix.decode(prefix.encode("the dog")) == " the dog");
  // After an added token the text starts a new piece, which gets its space too.
  const int32_t eot = prefix.token_id("<|endoftext|>");
  std::vector<int32_t> want = plain.encode(" a");
  want.push_back(eot);
  const auto b = plain.encode(" b");
  want.insert(want.end(), b.begin(), b.end());
  CHECK(prefix.encode("a<|endoftext|>b") == want);
}

TEST_CASE("tokenizer: merges as \"a b\" strings and as [a, b] pairs give the same ids", "[tokenizer]") {
  const Tokenizer s = Tokenizer::load(fixture(test::TokStyle::llama3, false));
  const std::string dir = test::temp_dir("tokenizer-pairs");
  test::write_small_tokenizer(dir + "/p.json", test::TokStyle::llama3, true);
  const Tokenizer p = Tokenizer::load(dir + "/p.json");
  const std::string text = "The quick brown fox: it's 12345 things, and then there are these. Привет, мир!";
  CHECK(s.encode(text) == p.encode(text));
  CHECK(double(s.encode(text).size()) < 0.7 * double(text.size()));  // the merges did merge
}

TEST_CASE("tokenizer: unsupported files are refused by name", "[tokenizer]") {
  const Value ok = json::parse_file(fixture(test::TokStyle::llama3));
  REQUIRE_NOTHROW(make(ok));
  auto refused = [&](const Value& v) { return test::error_of([&] { make(v); }); };
  CHECK_THAT(refused(with(ok, "model", "type", "WordPiece")), Contains("model.type \"WordPiece\" is not supported"));
  Value nfc = Value::object();
  nfc.set("type", "NFC");
  Value r = ok;
  r.set("normalizer", nfc);
  CHECK_THAT(refused(r), Contains("normalizer \"NFC\" is not supported"));
  Value ws = Value::object();
  ws.set("type", "Whitespace");
  r = ok, r.set("pre_tokenizer", ws);
  CHECK_THAT(refused(r), Contains("pre_tokenizer type \"Whitespace\" is not supported"));
  Value split = ok.find("pre_tokenizer")->find("pretokenizers")->as_array()[0];
  split.set("behavior", "Removed");
  Value seq = *ok.find("pre_tokenizer");
  seq.set("pretokenizers", Value(Value::Array{split}));
  r = ok, r.set("pre_tokenizer", seq);
  CHECK_THAT(refused(r), Contains("Split behavior \"Removed\" is not supported"));
  Value::Array added = ok.find("added_tokens")->as_array();
  added[0].set("lstrip", true);
  r = ok, r.set("added_tokens", Value(added));
  CHECK_THAT(refused(r), Contains("lstrip = true is not supported"));
  Value dec = Value::object();
  dec.set("type", "Metaspace");
  r = ok, r.set("decoder", dec);
  CHECK_THAT(refused(r), Contains("decoder type \"Metaspace\" is not supported"));
  Value rob = Value::object();
  rob.set("type", "RobertaProcessing");
  r = ok, r.set("post_processor", rob);
  CHECK_THAT(refused(r), Contains("post_processor type \"RobertaProcessing\" is not supported"));
  CHECK_THAT(refused(with(ok, "model", "dropout", Value(0.1))), Contains("dropout = 0.1 is not supported"));
  // A merge naming a token the vocabulary lacks, and a vocabulary without every byte.
  Value::Array ms = ok.find("model")->find("merges")->as_array();
  ms[0] = Value("Ġ nosuchtoken");
  CHECK_THAT(refused(with(ok, "model", "merges", Value(ms))), Contains("nosuchtoken is not in model.vocab"));
  Value::Object vocab = ok.find("model")->find("vocab")->as_object();
  vocab.erase(vocab.begin());  // byte 0x00 (spelled Ā)
  CHECK_THAT(refused(with(ok, "model", "vocab", Value(vocab))), Contains("has no token for byte 0x00"));
  CHECK_THAT(test::error_of([] { Tokenizer::load("build/tmp/no-such-tokenizer.json"); }), Contains("cannot open"));
}

TEST_CASE("tokenizer: invalid UTF-8 and unknown ids are refused with their position", "[tokenizer]") {
  const Tokenizer t = Tokenizer::load(fixture(test::TokStyle::gpt2));
  CHECK_THAT(test::error_of([&] { t.encode(std::string("ok \xff here")); }), Contains("not valid UTF-8 at byte 3"));
  CHECK_THAT(test::error_of([&] { t.encode(std::string("\xed\xa0\x80")); }), Contains("at byte 0"));  // a surrogate
  CHECK_THAT(test::error_of([&] { t.decode({1, int32_t(t.vocab_size())}); }), Contains("is not in the vocabulary"));
}

namespace {
// Encodes `text` as a stream of blocks of random sizes (1..max_block bytes), the way pack-text
// reads a file: each block after what the previous call left.
std::vector<int32_t> streamed(Encoder& enc, const std::string& text, RandomStream& rng, size_t max_block) {
  std::vector<int32_t> ids;
  std::string buf;
  for (size_t at = 0; at < text.size();) {
    const size_t n = std::min(text.size() - at, size_t(1 + rng.below(max_block)));
    buf.append(text, at, n);
    at += n;
    const size_t used = enc.encode_prefix(buf, at == text.size(), ids);
    buf.erase(0, used);
  }
  if (!buf.empty() || text.empty()) enc.encode_prefix(buf, true, ids);
  return ids;
}
}  // namespace

TEST_CASE("tokenizer: a text encoded in blocks of any size gives the ids of the whole", "[tokenizer]") {
  const uint64_t seed = test::fresh_seed();
  INFO("seed " << seed);
  RandomStream rng(seed);
  for (const auto style : {test::TokStyle::gpt2, test::TokStyle::llama3}) {
    const Tokenizer t = Tokenizer::load(fixture(style));
    Encoder whole(t), blocks(t);
    REQUIRE(blocks.streams());
    const std::vector<std::string> specials = style == test::TokStyle::llama3
                                                  ? std::vector<std::string>{"<|begin_of_text|>", "<|eot_id|>"}
                                                  : std::vector<std::string>{"<|endoftext|>"};
    int bad = 0, consumed_early = 0;
    for (int i = 0; i < 300; ++i) {
      std::string x;  // random UTF-8 with runs of white space, contractions and specials cut anywhere
      for (int p = 0; p < 4; ++p) {
        x += random_text(rng, specials);
        const char* extra[] = {"   \n\n  ", "\r\n", "'s 'LL", " 12345678 ", "\t\t ", "...\n", "<|eot", "<|", " "};
        x += extra[rng.below(9)];
      }
      std::vector<int32_t> want;
      whole.encode(x, want);
      const auto got = streamed(blocks, x, rng, 1 + rng.below(40));
      if (got != want) {
        ++bad;
        UNSCOPED_INFO(test::tok_style_name(style) << ": " << json::dump(Value(x)));
      }
      std::vector<int32_t> part;
      consumed_early += blocks.encode_prefix(x, false, part) > 0;
    }
    CHECK(bad == 0);
    CHECK(consumed_early > 250);  // streaming does encode before the end
  }
  SECTION("a first step without a regex cannot stream: nothing before the end") {
    Value r = hand_built({}, {});
    Value pre = Value::object();
    pre.set("type", "ByteLevel"), pre.set("add_prefix_space", false), pre.set("use_regex", false);
    r.set("pre_tokenizer", pre);
    const Tokenizer t = make(r);
    Encoder enc(t);
    std::vector<int32_t> ids;
    CHECK(!enc.streams());
    CHECK(enc.encode_prefix("some text", false, ids) == 0);
    CHECK(ids.empty());
  }
}
