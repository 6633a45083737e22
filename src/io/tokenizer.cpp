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
// Calls fn on each piece of s that regex r isolates: every match and every stretch between; returns
// the length handed out (all of s). With `partial` (streaming: more text may follow s), only pieces
// that no continuation can change are handed out: those before a match attempt that reached the
// end of s (PCRE2_PARTIAL_HARD reports it), never the stretch after the last match.
template <class F>
size_t split_isolated(const Regex& r, std::string_view s, pcre2_match_data* md, pcre2_match_context* mc, bool partial,
                      F&& fn) {
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(s.data());
  const uint32_t opts = PCRE2_NO_UTF_CHECK | (partial ? PCRE2_PARTIAL_HARD : 0);
  size_t pos = 0, last = 0;  // the next search start; the end of the last piece handed out
  while (pos < s.size()) {
    const int rc = pcre2_match(r.code, subject, s.size(), pos, opts, md, mc);
    if (rc == PCRE2_ERROR_NOMATCH || rc == PCRE2_ERROR_PARTIAL) break;
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
  if (partial) return last;
  if (last < s.size()) fn(s.substr(last));
  return s.size();
}
}  // namespace

size_t Encoder::encode_plain(std::string_view text, std::vector<int32_t>& out, bool partial) {
  const TokenizerData& d = tok_.data();
  State& st = *st_;
  size_t done = text.size();
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
    const size_t n = split_isolated(*s.regex, piece, st.md, st.mc, partial && k == 0,
                                    [&](std::string_view p) { self(self, k + 1, p); });
    if (k == 0) done = n;
  };
  step(step, 0, text);
  return done;
}

namespace {
void check_utf8(std::string_view text) {
  const size_t bad = invalid_utf8_at(text);
  CHECK_HINT(bad == std::string_view::npos, "tokenizers read UTF-8 text: convert it first (e.g. iconv -f LATIN1 -t UTF-8)",
             "tokenizer: the text is not valid UTF-8 at byte {} (0x{:02X})", bad,
             bad == std::string_view::npos ? 0 : static_cast<unsigned char>(text[bad]));
}
}  // namespace

size_t Encoder::encode_text(std::string_view text, std::vector<int32_t>& out, bool partial) {
  const TokenizerData& d = tok_.data();
  size_t from = 0;  // start of the stretch not yet encoded
  for (size_t i = 0; i < text.size() && !d.added.empty(); ++i) {
    for (int32_t c : d.added_by_byte[static_cast<unsigned char>(text[i])]) {
      const AddedToken& a = d.added[size_t(c)];  // longest first: the first that matches is the longest here
      if (text.compare(i, a.content.size(), a.content) != 0) continue;
      encode_plain(text.substr(from, i - from), out, false);
      out.push_back(a.id);
      i += a.content.size() - 1;
      from = i + 1;
      break;
    }
  }
  return from + encode_plain(text.substr(from), out, partial);
}

void Encoder::encode(std::string_view text, std::vector<int32_t>& out, bool add_special) {
  const TokenizerData& d = tok_.data();
  check_utf8(text);
  if (add_special) out.insert(out.end(), d.prefix.begin(), d.prefix.end());
  encode_text(text, out, false);
  if (add_special) out.insert(out.end(), d.suffix.begin(), d.suffix.end());
}

bool Encoder::streams() const {
  const auto& pre = tok_.data().pre;
  return !pre.empty() && pre[0].regex && !(pre[0].kind == PreStep::byte_level && pre[0].add_prefix_space);
}

size_t Encoder::encode_prefix(std::string_view text, bool last, std::vector<int32_t>& out) {
  if (last) return encode(text, out), text.size();
  if (!streams()) return 0;
  const TokenizerData& d = tok_.data();
  size_t cut = text.size();  // a character cut by the block's end waits for the rest of it
  for (size_t k = 1; k <= 3 && k <= cut; ++k) {
    const unsigned char c = static_cast<unsigned char>(text[cut - k]);
    if ((c & 0xC0) == 0x80) continue;
    if (c >= 0xC0 && size_t(c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2) > k) cut -= k;
    break;
  }
  // So does an added token that may begin before the cut and end after it: from the first
  // position whose rest is a proper beginning of one.
  size_t limit = cut;
  for (size_t q = cut >= d.added_max_len ? cut - d.added_max_len + 1 : 0; q < cut && limit == cut; ++q)
    for (int32_t c : d.added_by_byte[static_cast<unsigned char>(text[q])]) {
      const std::string& a = d.added[size_t(c)].content;
      if (a.size() > cut - q && a.compare(0, cut - q, text.substr(q, cut - q)) == 0) {
        limit = q;
        break;
      }
    }
  text = text.substr(0, limit);
  check_utf8(text);
  return encode_text(text, out, true);
}

}  // namespace longctx
