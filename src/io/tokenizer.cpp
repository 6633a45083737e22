// tokenizer.cpp — encoding and decoding with a loaded tokenizer.json (tokenizer.h): added tokens
// split out, the pre-tokenizer steps, the word cache in front of BPE.
#include "longctx/tokenizer.h"

#include <unordered_map>

#include "longctx/common.h"
#include "tokenizer_impl.h"

namespace longctx {

BpeScratch* new_bpe_scratch();
void delete_bpe_scratch(BpeScratch*);

namespace {
constexpr size_t kCacheMaxPiece = 256;         // longer pieces are not cached (as in HF's BPE)
constexpr size_t kCacheMaxEntries = 1u << 20;  // then the cache starts over
}  // namespace

// ---- Tokenizer ----------------------------------------------------------------------------------

int64_t Tokenizer::vocab_size() const { return data_->vocab_size; }
const std::vector<int32_t>& Tokenizer::prefix_ids() const { return data_->prefix; }
const std::vector<int32_t>& Tokenizer::suffix_ids() const { return data_->suffix; }
const std::string& Tokenizer::name() const { return data_->name; }

int32_t Tokenizer::token_id(std::string_view text) const {
  for (const AddedToken& a : data_->added)
    if (a.content == text) return a.id;
  const auto it = data_->vocab.find(std::string(text));
  return it == data_->vocab.end() ? -1 : it->second;
}

std::string Tokenizer::describe() const {
  const TokenizerData& d = *data_;
  return fmt::format("{}: byte-level BPE, {} tokens ({} in the model, {} merges, {} added), pre-tokenizer {}, "
                     "post-processor {}{}", d.name, d.vocab_size, d.vocab.size(), d.merges.size(), d.added.size(),
                     d.pre_desc, d.post_desc, d.ignore_merges ? ", ignore_merges" : "");
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special) const {
  std::vector<int32_t> out;
  Encoder(*this).encode(text, out, add_special);
  return out;
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids) const {
  const TokenizerData& d = *data_;
  std::string out;
  for (size_t i = 0; i < ids.size(); ++i) {
    const int32_t id = ids[i];
    CHECK_HINT(id >= 0 && size_t(id) < d.known.size() && d.known[size_t(id)], "ids come from this tokenizer's encode",
               "tokenizer {}: id {} (at {}) is not in the vocabulary of {} tokens", d.name, id, i, d.vocab_size);
    out += d.id_bytes[size_t(id)];
  }
  return out;
}

// ---- Encoder ------------------------------------------------------------------------------------

struct Encoder::State {
  pcre2_match_data* md = nullptr;
  pcre2_match_context* mc = nullptr;
  pcre2_jit_stack* js = nullptr;
  BpeScratch* bpe = nullptr;
  std::unordered_map<std::string, std::vector<int32_t>> cache;
  std::string key, prefixed;
  ~State() {
    pcre2_match_data_free(md);
    pcre2_match_context_free(mc);
    pcre2_jit_stack_free(js);
    delete_bpe_scratch(bpe);
  }
};

Encoder::Encoder(const Tokenizer& tok) : tok_(tok), st_(std::make_unique<State>()) {
  st_->md = pcre2_match_data_create(1, nullptr);
  st_->mc = pcre2_match_context_create(nullptr);
  st_->js = pcre2_jit_stack_create(32 * 1024, 8 * 1024 * 1024, nullptr);
  CHECK(st_->md && st_->mc && st_->js, "tokenizer: PCRE2 could not allocate its match state");
  pcre2_jit_stack_assign(st_->mc, nullptr, st_->js);
  st_->bpe = new_bpe_scratch();
  st_->cache.reserve(1 << 16);
}

Encoder::~Encoder() = default;

void Encoder::encode_piece(std::string_view piece, std::vector<int32_t>& out) {
  const TokenizerData& d = tok_.data();
  if (piece.empty()) return;
  ++lookups_;
  const bool cacheable = piece.size() < kCacheMaxPiece;
  if (cacheable) {
    st_->key.assign(piece);
    if (const auto it = st_->cache.find(st_->key); it != st_->cache.end()) {
      ++hits_;
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  const size_t at = out.size();
  const auto whole = d.ignore_merges ? d.vocab.find(std::string(piece)) : d.vocab.end();
  if (whole != d.vocab.end()) out.push_back(whole->second);
  else bpe_piece(d, piece, out, *st_->bpe);
  if (cacheable) {
    if (st_->cache.size() >= kCacheMaxEntries) st_->cache.clear();
    st_->cache.emplace(st_->key, std::vector<int32_t>(out.begin() + int64_t(at), out.end()));
  }
}

namespace {
// Calls fn on each piece of s that regex r isolates: every match and every stretch between.
template <class F>
void split_isolated(const Regex& r, std::string_view s, pcre2_match_data* md, pcre2_match_context* mc, F&& fn) {
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(s.data());
  size_t pos = 0, last = 0;  // the next search start; the end of the last piece handed out
  while (pos < s.size()) {
    const int rc = pcre2_match(r.code, subject, s.size(), pos, PCRE2_NO_UTF_CHECK, md, mc);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(rc, msg, sizeof msg);
      FAIL_HINT("a pathological input for this pattern; split the text", "tokenizer: PCRE2 match failed: {}",
                reinterpret_cast<const char*>(msg));
    }
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    const size_t b = ov[0], e = ov[1];
    if (e == b) {  // an empty match isolates nothing: search again one character on
      pos = b + 1;
      while (pos < s.size() && (static_cast<unsigned char>(s[pos]) & 0xC0) == 0x80) ++pos;
      continue;
    }
    if (b > last) fn(s.substr(last, b - last));
    fn(s.substr(b, e - b));
    last = pos = e;
  }
  if (last < s.size()) fn(s.substr(last));
}
}  // namespace

void Encoder::encode_plain(std::string_view text, std::vector<int32_t>& out) {
  const TokenizerData& d = tok_.data();
  State& st = *st_;
  // Step k of the pre-tokenizer on one piece; past the last step the piece goes to BPE.
  auto step = [&](auto& self, size_t k, std::string_view piece) -> void {
    if (piece.empty()) return;
    if (k == d.pre.size()) return encode_piece(piece, out);
    const PreStep& s = d.pre[k];
    std::string prefixed;
    if (s.kind == PreStep::byte_level && s.add_prefix_space && piece[0] != ' ') {
      prefixed.reserve(piece.size() + 1);
      prefixed += ' ', prefixed += piece;
      piece = prefixed;
    }
    if (!s.regex) return self(self, k + 1, piece);
    split_isolated(*s.regex, piece, st.md, st.mc, [&](std::string_view p) { self(self, k + 1, p); });
  };
  step(step, 0, text);
}

void Encoder::encode(std::string_view text, std::vector<int32_t>& out, bool add_special) {
  const TokenizerData& d = tok_.data();
  const size_t bad = invalid_utf8_at(text);
  CHECK_HINT(bad == std::string_view::npos, "tokenizers read UTF-8 text: convert it first (e.g. iconv -f LATIN1 -t UTF-8)",
             "tokenizer: the text is not valid UTF-8 at byte {} (0x{:02X})", bad,
             bad == std::string_view::npos ? 0 : static_cast<unsigned char>(text[bad]));
  if (add_special) out.insert(out.end(), d.prefix.begin(), d.prefix.end());
  size_t from = 0;  // start of the stretch not yet encoded
  if (!d.added.empty()) {
    for (size_t i = 0; i < text.size(); ++i) {
      const auto& cands = d.added_by_byte[static_cast<unsigned char>(text[i])];
      for (int32_t c : cands) {  // longest first: the first that matches is the longest here
        const AddedToken& a = d.added[size_t(c)];
        if (text.compare(i, a.content.size(), a.content) != 0) continue;
        encode_plain(text.substr(from, i - from), out);
        out.push_back(a.id);
        i += a.content.size() - 1;
        from = i + 1;
        break;
      }
    }
  }
  encode_plain(text.substr(from), out);
  if (add_special) out.insert(out.end(), d.suffix.begin(), d.suffix.end());
}

}  // namespace longctx
