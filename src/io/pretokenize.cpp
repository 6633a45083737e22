// pretokenize.cpp — the pre-tokenizer regexes in PCRE2 (tokenizer.h).
//
// Compiled once per file with UTF (code points, not bytes) and UCP (\p{L}, \p{N}, \d, \w by
// Unicode properties), then JIT-compiled; the subject is validated once per encode call
// (invalid_utf8_at), so matches run with PCRE2_NO_UTF_CHECK. \s and \S are rewritten into Unicode
// White_Space classes before compiling: that is what Hugging Face's regex engine (Oniguruma)
// matches, while PCRE2's \s also takes U+180E.
#include <memory>

#include "longctx/common.h"
#include "tokenizer_impl.h"

namespace longctx {

const char* const kGpt2Pattern =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

namespace {

// Unicode White_Space (PropList.txt), as the inside of a character class.
constexpr const char* kWhiteSpace =
    "\\x{09}-\\x{0D}\\x{20}\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}";

std::string spell_white_space(const std::string& src, const std::string& what) {
  std::string out;
  bool in_class = false;
  size_t class_start = 0;  // where the current class's first member begins
  for (size_t i = 0; i < src.size(); ++i) {
    const char c = src[i];
    if (c == '\\' && i + 1 < src.size()) {
      const char e = src[i + 1];
      if (e == 's') out += in_class ? std::string(kWhiteSpace) : "[" + std::string(kWhiteSpace) + "]";
      else if (e == 'S') {
        CHECK_HINT(!in_class, "write the class without \\S", "{}: \\S inside a character class is not supported: {}",
                   what, src);
        out += "[^" + std::string(kWhiteSpace) + "]";
      } else out += c, out += e;
      ++i;
      continue;
    }
    if (!in_class && c == '[') {
      in_class = true;
      out += c;
      if (i + 1 < src.size() && src[i + 1] == '^') out += '^', ++i;
      class_start = i + 1;
      continue;
    }
    if (in_class && c == '[' && i + 1 < src.size() && src[i + 1] == ':') {  // [:alpha:]
      const size_t end = src.find(":]", i + 2);
      CHECK_HINT(end != std::string::npos, "check the pattern", "{}: unterminated [: in {}", what, src);
      out += src.substr(i, end + 2 - i);
      i = end + 1;
      continue;
    }
    if (in_class && c == ']' && i != class_start) in_class = false;
    out += c;
  }
  return out;
}

}  // namespace

std::shared_ptr<Regex> compile_regex(const std::string& source, const std::string& what) {
  auto r = std::make_shared<Regex>();
  r->source = source;
  r->pattern = spell_white_space(source, what);
  int err = 0;
  PCRE2_SIZE at = 0;
  r->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(r->pattern.data()), r->pattern.size(),
                          PCRE2_UTF | PCRE2_UCP | PCRE2_NO_UTF_CHECK, &err, &at, nullptr);
  if (!r->code) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(err, msg, sizeof msg);
    FAIL_HINT("the pattern must be a regex PCRE2 reads (Perl syntax)", "{}: PCRE2 cannot compile \"{}\" at offset {}: {}",
              what, source, size_t(at), reinterpret_cast<const char*>(msg));
  }
  // Both modes: whole texts, and blocks of a stream (PCRE2_PARTIAL_HARD, Encoder::encode_prefix).
  // Without JIT PCRE2 interprets the pattern: slower, the same matches.
  r->jit = pcre2_jit_compile(r->code, PCRE2_JIT_COMPLETE | PCRE2_JIT_PARTIAL_HARD) == 0;
  return r;
}

}  // namespace longctx
