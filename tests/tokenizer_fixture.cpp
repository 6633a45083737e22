// tokenizer_fixture.cpp — see tokenizer_fixture.h. The BPE trainer is the textbook one: words are
// the training text cut before each space, the most frequent adjacent pair (ties: the smallest
// pair of ids) is merged, repeatedly.
#include "tokenizer_fixture.h"

#include <fstream>
#include <map>
#include <stdexcept>

#include "longctx/json.h"

namespace longctx::test {

const char* const kLlama3Regex =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|"
    "\\s+(?!\\S)|\\s+";

namespace {
constexpr const char* kTraining =
    "The quick brown fox jumps over the lazy dog. The dog sleeps; the fox runs. There is the other "
    "thing, and then there are these things. It's what they're saying, and we'll see what I'd do. "
    "def tokenize(text):\n    return [t for t in text.split() if t]\n\nfor i in range(10):\n    print(i)\n"
    "int main() { return 0; }  // the end\n1234567890 2024 3.14159 100000 42 7 "
    "Über die Brücke gehen wir. Straße und größer. Привет, мир! Это тест токенизатора. "
    "Καλημέρα κόσμε. 你好，世界。今天天气很好。こんにちは世界。 مرحبا بالعالم नमस्ते दुनिया "
    "the the the then there these those this that than thanks thinking through thoroughly";

std::string utf8(uint32_t cp) {
  std::string s;
  if (cp < 0x80) s += char(cp);
  else if (cp < 0x800) s += char(0xC0 | cp >> 6), s += char(0x80 | (cp & 0x3F));
  else s += char(0xE0 | cp >> 12), s += char(0x80 | (cp >> 6 & 0x3F)), s += char(0x80 | (cp & 0x3F));
  return s;
}
}  // namespace

std::string tok_style_name(TokStyle s) {
  return s == TokStyle::gpt2 ? "gpt2" : s == TokStyle::gpt2_prefix ? "gpt2-prefix-space" : "llama3";
}

std::string byte_level_spelling(const std::string& bytes) {
  std::string out;
  for (unsigned char b : bytes) {
    // GPT-2: printable Latin-1 bytes spell themselves; the others, in order, 256, 257, ...
    auto printable = [](unsigned v) { return (v >= 33 && v <= 126) || (v >= 161 && v <= 172) || (v >= 174 && v <= 255); };
    uint32_t cp = b;
    if (!printable(b)) {
      cp = 256;
      for (unsigned v = 0; v < b; ++v) cp += !printable(v);
    }
    out += utf8(cp);
  }
  return out;
}

void write_small_tokenizer(const std::string& path, TokStyle style, bool pair_merges, int merges,
                           const std::string& training) {
  // Words: the text cut before each space (the space starts the next word).
  std::vector<std::vector<int>> words;
  std::vector<std::string> tok;  // id -> bytes
  for (int b = 0; b < 256; ++b) tok.push_back(std::string(1, char(b)));
  const std::string text = training.empty() ? std::string(kTraining) : training;
  for (size_t i = 0; i < text.size();) {
    size_t j = text.find(' ', i + 1);
    if (j == std::string::npos) j = text.size();
    words.emplace_back();
    for (size_t k = i; k < j; ++k) words.back().push_back(static_cast<unsigned char>(text[k]));
    i = j;
  }
  std::vector<std::pair<int, int>> learned;
  for (int m = 0; m < merges; ++m) {
    std::map<std::pair<int, int>, int> count;
    for (const auto& w : words)
      for (size_t k = 0; k + 1 < w.size(); ++k) ++count[{w[k], w[k + 1]}];
    std::pair<int, int> best{-1, -1};
    int best_n = 1;  // a pair seen once is not worth a merge
    for (const auto& [p, n] : count)
      if (n > best_n) best = p, best_n = n;
    if (best.first < 0) break;
    const int id = int(tok.size());
    tok.push_back(tok[size_t(best.first)] + tok[size_t(best.second)]);
    learned.push_back(best);
    for (auto& w : words) {
      std::vector<int> v;
      for (size_t k = 0; k < w.size(); ++k) {
        if (k + 1 < w.size() && w[k] == best.first && w[k + 1] == best.second) v.push_back(id), ++k;
        else v.push_back(w[k]);
      }
      w = std::move(v);
    }
  }
  using json::Value;
  Value vocab = Value::object(), ms = Value::array();
  for (size_t id = 0; id < tok.size(); ++id) vocab.set(byte_level_spelling(tok[id]), Value(int64_t(id)));
  for (const auto& [a, b] : learned) {
    const std::string sa = byte_level_spelling(tok[size_t(a)]), sb = byte_level_spelling(tok[size_t(b)]);
    if (pair_merges) ms.push(Value(Value::Array{Value(sa), Value(sb)}));
    else ms.push(Value(sa + " " + sb));
  }
  const bool llama = style == TokStyle::llama3;
  Value model = Value::object();
  model.set("type", "BPE"), model.set("dropout", Value()), model.set("unk_token", Value());
  model.set("continuing_subword_prefix", Value()), model.set("end_of_word_suffix", Value());
  model.set("fuse_unk", false), model.set("byte_fallback", false), model.set("ignore_merges", llama);
  model.set("vocab", std::move(vocab)), model.set("merges", std::move(ms));
  Value added = Value::array();
  const std::vector<std::string> specials =
      llama ? std::vector<std::string>{"<|begin_of_text|>", "<|eot_id|>"} : std::vector<std::string>{"<|endoftext|>"};
  for (size_t i = 0; i < specials.size(); ++i) {
    Value a = Value::object();
    a.set("id", Value(int64_t(tok.size() + i))), a.set("content", specials[i]), a.set("single_word", false);
    a.set("lstrip", false), a.set("rstrip", false), a.set("normalized", false), a.set("special", true);
    added.push(std::move(a));
  }
  auto byte_level = [](bool prefix, bool regex) {
    Value b = Value::object();
    b.set("type", "ByteLevel"), b.set("add_prefix_space", prefix), b.set("trim_offsets", true), b.set("use_regex", regex);
    return b;
  };
  Value pre, post;
  if (llama) {
    Value split = Value::object(), pat = Value::object();
    pat.set("Regex", kLlama3Regex);
    split.set("type", "Split"), split.set("pattern", std::move(pat)), split.set("behavior", "Isolated");
    split.set("invert", false);
    pre = Value::object();
    pre.set("type", "Sequence"), pre.set("pretokenizers", Value(Value::Array{std::move(split), byte_level(false, false)}));
    // Llama-3.1's post-processor: ByteLevel, then BOS before the sequence.
    Value tpl = Value::object(), st = Value::object(), bos = Value::object(), sp = Value::object(), seq = Value::object();
    sp.set("id", "<|begin_of_text|>"), sp.set("type_id", 0);
    Value spw = Value::object(), seqw = Value::object();
    spw.set("SpecialToken", std::move(sp));
    seq.set("id", "A"), seq.set("type_id", 0);
    seqw.set("Sequence", std::move(seq));
    bos.set("id", "<|begin_of_text|>"), bos.set("ids", Value(Value::Array{Value(int64_t(tok.size()))}));
    bos.set("tokens", Value(Value::Array{Value("<|begin_of_text|>")}));
    st.set("<|begin_of_text|>", std::move(bos));
    tpl.set("type", "TemplateProcessing"), tpl.set("single", Value(Value::Array{std::move(spw), std::move(seqw)}));
    tpl.set("pair", Value(Value::Array{})), tpl.set("special_tokens", std::move(st));
    post = Value::object();
    post.set("type", "Sequence"), post.set("processors", Value(Value::Array{byte_level(true, false), std::move(tpl)}));
  } else {
    pre = byte_level(style == TokStyle::gpt2_prefix, true);
    post = byte_level(true, true);
  }
  Value root = Value::object();
  root.set("version", "1.0"), root.set("truncation", Value()), root.set("padding", Value());
  root.set("added_tokens", std::move(added)), root.set("normalizer", Value());
  root.set("pre_tokenizer", std::move(pre)), root.set("post_processor", std::move(post));
  root.set("decoder", byte_level(true, true)), root.set("model", std::move(model));
  std::ofstream(path, std::ios::binary) << json::dump(root, 1);
  if (!std::ofstream(path, std::ios::app)) throw std::runtime_error("cannot write " + path);
}

}  // namespace longctx::test
