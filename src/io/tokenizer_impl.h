// tokenizer_impl.h — what a loaded tokenizer.json holds (shared by src/io/tokenizer*.cpp,
// bpe.cpp and pretokenize.cpp; not part of the public API).
#pragma once

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace longctx {

// A compiled pre-tokenizer regex (UTF, UCP, JIT); shared read-only by every thread.
struct Regex {
  std::string source;     // as the file gives it
  std::string pattern;    // as compiled (\s and \S spelled as White_Space)
  pcre2_code* code = nullptr;
  bool jit = false;
  ~Regex() { pcre2_code_free(code); }
};

// One pre-tokenizer step, applied to every piece the steps before it produced.
struct PreStep {
  enum Kind { split, byte_level } kind = split;
  std::shared_ptr<Regex> regex;  // split: the file's; byte_level with use_regex: GPT-2's
  bool add_prefix_space = false;  // byte_level only
};

struct AddedToken {
  std::string content;  // raw UTF-8 (not byte-level spelled)
  int32_t id = 0;
  bool special = false;
};

struct TokenizerData {
  std::string name;  // the file, for messages
  // The model's vocabulary, keyed by the raw bytes a token stands for.
  std::unordered_map<std::string, int32_t> vocab;
  std::array<int32_t, 256> byte_id{};  // the token of each single byte
  // Merges: (left id << 32 | right id) -> (rank, merged id).
  std::unordered_map<uint64_t, std::pair<int32_t, int32_t>> merges;
  bool ignore_merges = false;
  // id -> the bytes it decodes to (model tokens and added tokens); known[id] = 0 for gaps.
  std::vector<std::string> id_bytes;
  std::vector<uint8_t> known;
  std::vector<AddedToken> added;
  std::array<std::vector<int32_t>, 256> added_by_byte;  // indices into added, longest first
  size_t added_max_len = 0;
  std::vector<PreStep> pre;
  std::vector<int32_t> prefix, suffix;  // the post-processor's
  int64_t vocab_size = 0;
  std::string pre_desc, post_desc;
};

// GPT-2's byte <-> unicode table (bpe.cpp): the code point that spells each byte in vocab and
// merges, and the inverse (-1 for a code point that spells no byte).
const std::array<uint32_t, 256>& byte_to_unicode();
int unicode_to_byte(uint32_t cp);
// The raw bytes of a byte-level spelled string; false when a character spells no byte.
bool byte_level_to_bytes(const std::string& spelled, std::string& out);

// Compiles a pre-tokenizer regex (pretokenize.cpp); `what` names it in errors.
std::shared_ptr<Regex> compile_regex(const std::string& source, const std::string& what);
// GPT-2's pre-tokenizer regex (ByteLevel with use_regex).
extern const char* const kGpt2Pattern;


}  // namespace longctx

namespace longctx {
// The BPE merge loop on one piece's bytes (bpe.cpp): appends the ids to out. `scratch` is the
// caller's, reused between calls.
struct BpeScratch;
void bpe_piece(const TokenizerData& d, std::string_view piece, std::vector<int32_t>& out, BpeScratch& scratch);
}  // namespace longctx
