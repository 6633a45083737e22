// tokenizer_load.cpp — reads a Hugging Face tokenizer.json into TokenizerData (tokenizer.h says
// what is supported; everything else is refused here, by name).
#include <algorithm>
#include <fstream>
#include <sstream>

#include "longctx/common.h"
#include "longctx/json.h"
#include "longctx/tokenizer.h"
#include "tokenizer_impl.h"

namespace longctx {
namespace {

using json::Value;

constexpr const char* kHint =
    "longctx reads byte-level BPE tokenizers (Llama-3, GPT-2 style); README.md, section Tokenizer";

const char* type_of(const Value& v, const std::string& what) {
  const Value* t = v.find("type");
  CHECK_HINT(t && t->is_string(), kHint, "{}: {} has no \"type\"", what, "object");
  return t->as_string().c_str();
}

// A member that must be absent, null, false or an empty string: the features longctx lacks.
void refuse_set(const Value& obj, const char* key, const std::string& what) {
  const Value* v = obj.find(key);
  const bool unset = !v || v->is_null() || (v->is_bool() && !v->as_bool()) ||
                     (v->is_string() && v->as_string().empty());
  CHECK_HINT(unset, kHint, "{}: {} = {} is not supported", what, key, v ? json::dump(*v) : "");
}

bool flag(const Value& obj, const char* key, bool dflt, const std::string& what) {
  const Value* v = obj.find(key);
  if (!v || v->is_null()) return dflt;
  return v->as_bool(what + ": " + key);
}

void load_model(const Value& root, TokenizerData& d) {
  const std::string& n = d.name;
  const Value* m = root.find("model");
  CHECK_HINT(m && m->is_object(), kHint, "{}: no \"model\" object", n);
  const std::string type = type_of(*m, n + ": model");
  CHECK_HINT(type == "BPE", kHint, "{}: model.type \"{}\" is not supported (only \"BPE\")", n, type);
  for (const char* k : {"dropout", "continuing_subword_prefix", "end_of_word_suffix"})
    refuse_set(*m, k, n + ": model");
  d.ignore_merges = flag(*m, "ignore_merges", false, n + ": model");
  // byte_fallback (<0x..> tokens) can never be reached: every byte has a token (checked below).
  const Value* vocab = m->find("vocab");
  CHECK_HINT(vocab && vocab->is_object(), kHint, "{}: model.vocab is not an object", n);
  std::vector<std::string> spelled;  // id -> the file's string, for merges
  std::string bytes;
  for (const auto& [tok, idv] : vocab->as_object()) {
    const int64_t id = idv.as_int(n + ": model.vocab[\"" + tok + "\"]");
    CHECK_HINT(id >= 0 && id < (int64_t(1) << 31) - 1, kHint, "{}: model.vocab[\"{}\"] = {} is not a valid id", n,
               tok, id);
    if (size_t(id) >= d.id_bytes.size()) d.id_bytes.resize(size_t(id) + 1), d.known.resize(size_t(id) + 1, 0);
    if (spelled.size() <= size_t(id)) spelled.resize(size_t(id) + 1);
    CHECK_HINT(!d.known[size_t(id)], kHint, "{}: model.vocab gives id {} twice (\"{}\", \"{}\")", n, id,
               spelled[size_t(id)], tok);
    d.known[size_t(id)] = 1, spelled[size_t(id)] = tok;
    // A string that spells no bytes is kept for decode (as its text) but BPE never makes it.
    if (byte_level_to_bytes(tok, bytes)) d.vocab.emplace(bytes, int32_t(id)), d.id_bytes[size_t(id)] = bytes;
    else d.id_bytes[size_t(id)] = tok;
  }
  for (int b = 0; b < 256; ++b) {
    const auto it = d.vocab.find(std::string(1, char(b)));
    CHECK_HINT(it != d.vocab.end(), kHint,
               "{}: model.vocab has no token for byte 0x{:02X} (\"{}\" in byte-level spelling): a byte-level "
               "BPE vocabulary holds all 256 bytes", n, b, std::string(1, char(b)));
    d.byte_id[size_t(b)] = it->second;
  }
  const Value* merges = m->find("merges");
  CHECK_HINT(merges && merges->is_array(), kHint, "{}: model.merges is not an array", n);
  const auto& ms = merges->as_array();
  d.merges.reserve(ms.size());
  std::unordered_map<std::string, int32_t> by_spelling;  // the file's strings -> id
  by_spelling.reserve(spelled.size());
  for (size_t id = 0; id < spelled.size(); ++id)
    if (d.known[id]) by_spelling.emplace(spelled[id], int32_t(id));
  for (size_t r = 0; r < ms.size(); ++r) {
    std::string a, b;
    const std::string what = fmt::format("{}: model.merges[{}]", n, r);
    if (ms[r].is_string()) {  // "a b"
      const std::string& s = ms[r].as_string();
      const size_t sp = s.find(' ');
      CHECK_HINT(sp != std::string::npos && sp > 0 && sp + 1 < s.size() && s.find(' ', sp + 1) == std::string::npos,
                 kHint, "{} = \"{}\" is not two tokens separated by one space", what, s);
      a = s.substr(0, sp), b = s.substr(sp + 1);
    } else {  // ["a", "b"]
      const auto& pair = ms[r].as_array(what);
      CHECK_HINT(pair.size() == 2, kHint, "{} has {} entries, expected a pair", what, pair.size());
      a = pair[0].as_string(what), b = pair[1].as_string(what);
    }
    const auto ia = by_spelling.find(a), ib = by_spelling.find(b), ic = by_spelling.find(a + b);
    CHECK_HINT(ia != by_spelling.end() && ib != by_spelling.end() && ic != by_spelling.end(), kHint,
               "{} (\"{}\" + \"{}\"): {} is not in model.vocab", what, a, b,
               ia == by_spelling.end() ? a : ib == by_spelling.end() ? b : a + b);
    const uint64_t key = uint64_t(uint32_t(ia->second)) << 32 | uint32_t(ib->second);
    d.merges.emplace(key, std::pair<int32_t, int32_t>(int32_t(r), ic->second));  // a repeat keeps its first rank
  }
}

void load_added(const Value& root, TokenizerData& d) {
  const std::string& n = d.name;
  const Value* added = root.find("added_tokens");
  if (!added || added->is_null()) return;
  for (const Value& t : added->as_array(n + ": added_tokens")) {
    AddedToken a;
    a.content = t.find("content") ? t.find("content")->as_string(n + ": added_tokens content") : "";
    a.id = int32_t(t.find("id") ? t.find("id")->as_int(n + ": added_tokens id") : -1);
    const std::string what = fmt::format("{}: added token \"{}\"", n, a.content);
    CHECK_HINT(!a.content.empty() && a.id >= 0, kHint, "{}: needs a content and an id >= 0", what);
    for (const char* k : {"single_word", "lstrip", "rstrip"}) refuse_set(t, k, what);
    a.special = flag(t, "special", false, what);
    if (size_t(a.id) >= d.id_bytes.size()) d.id_bytes.resize(size_t(a.id) + 1), d.known.resize(size_t(a.id) + 1, 0);
    // An added token may repeat a vocabulary entry (same id); another id for it is a conflict.
    d.id_bytes[size_t(a.id)] = a.content, d.known[size_t(a.id)] = 1;
    d.added.push_back(a);
  }
  for (size_t i = 0; i < d.added.size(); ++i) {
    d.added_by_byte[uint8_t(d.added[i].content[0])].push_back(int32_t(i));
    d.added_max_len = std::max(d.added_max_len, d.added[i].content.size());
  }
  for (auto& list : d.added_by_byte)
    std::stable_sort(list.begin(), list.end(),
                     [&](int32_t x, int32_t y) { return d.added[size_t(x)].content.size() > d.added[size_t(y)].content.size(); });
}

void load_pre(const Value* p, TokenizerData& d, std::vector<std::string>& desc) {
  const std::string& n = d.name;
  if (!p || p->is_null()) return;
  const std::string type = type_of(*p, n + ": pre_tokenizer");
  if (type == "Sequence") {
    const Value* list = p->find("pretokenizers");
    CHECK_HINT(list, kHint, "{}: pre_tokenizer Sequence has no \"pretokenizers\"", n);
    for (const Value& q : list->as_array(n + ": pretokenizers")) load_pre(&q, d, desc);
    return;
  }
  PreStep s;
  if (type == "Split") {
    const Value* pat = p->find("pattern");
    CHECK_HINT(pat && pat->is_object(), kHint, "{}: Split has no \"pattern\" object", n);
    const Value* re = pat->find("Regex");
    CHECK_HINT(re && re->is_string(), kHint, "{}: Split pattern {} is not supported (only {{\"Regex\": ...}})", n,
               json::dump(*pat));
    const Value* beh = p->find("behavior");
    const std::string b = beh ? beh->as_string(n + ": Split behavior") : "";
    CHECK_HINT(b == "Isolated", kHint, "{}: Split behavior \"{}\" is not supported (only \"Isolated\")", n, b);
    CHECK_HINT(!flag(*p, "invert", false, n + ": Split"), kHint, "{}: Split with invert = true is not supported", n);
    s.kind = PreStep::split;
    s.regex = compile_regex(re->as_string(), n + ": Split pattern");
    desc.push_back("Split(regex, Isolated)");
  } else if (type == "ByteLevel") {
    s.kind = PreStep::byte_level;
    s.add_prefix_space = flag(*p, "add_prefix_space", true, n + ": ByteLevel");
    if (flag(*p, "use_regex", true, n + ": ByteLevel")) s.regex = compile_regex(kGpt2Pattern, "GPT-2 regex");
    desc.push_back(fmt::format("ByteLevel(add_prefix_space={}, use_regex={})", s.add_prefix_space, bool(s.regex)));
  } else {
    FAIL_HINT(kHint, "{}: pre_tokenizer type \"{}\" is not supported (Sequence, Split, ByteLevel are)", n, type);
  }
  d.pre.push_back(std::move(s));
}

int32_t special_id(const Value& tpl, const std::string& name, const TokenizerData& d) {
  const Value* st = tpl.find("special_tokens");
  const Value* e = st ? st->find(name) : nullptr;
  const Value* ids = e ? e->find("ids") : nullptr;
  CHECK_HINT(ids && ids->as_array().size() == 1, kHint,
             "{}: TemplateProcessing special token \"{}\" needs one id in special_tokens", d.name, name);
  return int32_t(ids->as_array()[0].as_int(d.name + ": special_tokens ids"));
}

void load_post(const Value* p, TokenizerData& d, std::vector<std::string>& desc) {
  const std::string& n = d.name;
  if (!p || p->is_null()) return;
  const std::string type = type_of(*p, n + ": post_processor");
  if (type == "Sequence") {
    const Value* list = p->find("processors");
    CHECK_HINT(list, kHint, "{}: post_processor Sequence has no \"processors\"", n);
    for (const Value& q : list->as_array(n + ": processors")) load_post(&q, d, desc);
  } else if (type == "ByteLevel") {
    desc.push_back("ByteLevel");  // offsets only: the ids are unchanged
  } else if (type == "TemplateProcessing") {
    const Value* single = p->find("single");
    CHECK_HINT(single, kHint, "{}: TemplateProcessing has no \"single\"", n);
    bool seen_a = false;
    for (const Value& piece : single->as_array(n + ": single")) {
      if (const Value* sp = piece.find("SpecialToken")) {
        const int32_t id = special_id(*p, sp->find("id")->as_string(n + ": SpecialToken id"), d);
        (seen_a ? d.suffix : d.prefix).push_back(id);
      } else if (const Value* sq = piece.find("Sequence")) {
        const std::string which = sq->find("id") ? sq->find("id")->as_string() : "";
        CHECK_HINT(which == "A" && !seen_a, kHint, "{}: TemplateProcessing single must hold sequence A once", n);
        seen_a = true;
      } else {
        FAIL_HINT(kHint, "{}: TemplateProcessing piece {} is not supported", n, json::dump(piece));
      }
    }
    CHECK_HINT(seen_a, kHint, "{}: TemplateProcessing single has no sequence A", n);
    desc.push_back(fmt::format("TemplateProcessing({} before, {} after)", d.prefix.size(), d.suffix.size()));
  } else {
    FAIL_HINT(kHint, "{}: post_processor type \"{}\" is not supported (ByteLevel, TemplateProcessing, Sequence are)",
              n, type);
  }
}

}  // namespace

Tokenizer Tokenizer::parse(std::string_view text, const std::string& name) {
  const Value root = json::parse(text, name);
  CHECK_HINT(root.is_object(), kHint, "{}: not a JSON object", name);
  auto d = std::make_shared<TokenizerData>();
  d->name = name;
  const Value* norm = root.find("normalizer");
  CHECK_HINT(!norm || norm->is_null(), kHint, "{}: normalizer \"{}\" is not supported (only null: none)", name,
             norm && norm->is_object() && norm->find("type") ? norm->find("type")->as_string() : json::dump(*norm));
  if (const Value* dec = root.find("decoder"); dec && !dec->is_null()) {
    const std::string t = type_of(*dec, name + ": decoder");
    CHECK_HINT(t == "ByteLevel", kHint, "{}: decoder type \"{}\" is not supported (only ByteLevel)", name, t);
  }
  load_model(root, *d);
  load_added(root, *d);
  std::vector<std::string> pre, post;
  load_pre(root.find("pre_tokenizer"), *d, pre);
  CHECK_HINT(!d->pre.empty(), kHint, "{}: no pre_tokenizer: a byte-level BPE needs one (ByteLevel or Split)", name);
  load_post(root.find("post_processor"), *d, post);
  for (int32_t id : d->prefix) CHECK_HINT(size_t(id) < d->known.size() && d->known[size_t(id)], kHint, "{}: post-processor id {} is not in the vocabulary", name, id);
  for (int32_t id : d->suffix) CHECK_HINT(size_t(id) < d->known.size() && d->known[size_t(id)], kHint, "{}: post-processor id {} is not in the vocabulary", name, id);
  d->vocab_size = int64_t(d->id_bytes.size());
  auto join = [](const std::vector<std::string>& v) {
    std::string s;
    for (const auto& x : v) s += (s.empty() ? "" : " + ") + x;
    return s.empty() ? std::string("none") : s;
  };
  d->pre_desc = join(pre), d->post_desc = join(post);
  Tokenizer t;
  t.data_ = std::move(d);
  return t;
}

Tokenizer Tokenizer::load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  CHECK_HINT(in, "check the path (a Hugging Face model directory has tokenizer.json)",
             "tokenizer: cannot open {}", path);
  std::ostringstream ss;
  ss << in.rdbuf();
  CHECK_HINT(!in.bad(), "is it a readable file?", "tokenizer: error reading {}", path);
  return parse(ss.str(), path);
}

}  // namespace longctx
