// tokenizer_fixture.h — small byte-level BPE tokenizer.json files the tests write themselves: 256
// byte tokens plus a few hundred merges learned here from a short multilingual text, in three
// styles (GPT-2's ByteLevel regex with and without add_prefix_space; Llama-3's Split + ByteLevel
// with ignore_merges and a BOS template), merges as "a b" strings or [a, b] pairs.
#pragma once

#include <string>
#include <vector>

namespace longctx::test {

enum class TokStyle { gpt2, gpt2_prefix, llama3 };
std::string tok_style_name(TokStyle s);
// The Llama-3 pre-tokenizer regex, as tokenizer.json spells it.
extern const char* const kLlama3Regex;
// GPT-2's spelling of a byte string (each byte as its code point in the byte-to-unicode table).
std::string byte_level_spelling(const std::string& bytes);
// Writes a tokenizer.json; returns nothing, throws on I/O failure. `merges` > 0 limits the
// learned merges. Added tokens: <|endoftext|> (gpt2 styles) or <|begin_of_text|>, <|eot_id|>
// (llama3), after the model's ids.
// `training` replaces the built-in training text when not empty.
void write_small_tokenizer(const std::string& path, TokStyle style, bool pair_merges, int merges = 400,
                           const std::string& training = "");

}  // namespace longctx::test
