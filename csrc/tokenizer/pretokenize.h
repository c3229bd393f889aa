// pretokenize.h — the regex pre-tokenizers of byte-level BPE, written out by hand.
//
// Each splits UTF-8 text into contiguous pieces exactly as the named regex does with find-all
// (leftmost match, alternatives tried in order, greedy quantifiers with backtracking), so that
// BPE merges never cross a piece boundary:
//   GPT2    's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//   SMOLLM  every numeric code point isolated first (HF Digits(individual_digits=true), whose class is
//           Rust's char::is_numeric, not the regex engine's \p{N}: see unicode.h), then GPT2 on each
//           remaining run — a run's end acts as the end of the text for (?!\S), as in HF, where
//           ByteLevel's regex runs on each piece Digits left (so '   1.' is '   ', '1', '.')
//   QWEN2   (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|
//           \s*[\r\n]+|\s+(?!\S)|\s+
//   LLAMA3  as QWEN2 with \p{N}{1,3} (numbers in groups of up to three digits)
// The case-insensitive contractions fold as Oniguruma does (ASCII and U+017F ſ -> s; llama.cpp folds
// ASCII only). Character classes are HF tokenizers' own (unicode.h). The spec is HF tokenizers:
// tests/test_tokenizer_hf.py compares every pre-tokenizer with it line by line on a large corpus.
// Invalid UTF-8 bytes are single code points with no class (they fall in [^\s\p{L}\p{N}]).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace edge {
namespace tok {

enum class PreTokenizer { GPT2, SMOLLM, QWEN2, LLAMA3 };

// Maps a tokenizer.pre name (GGUF's tokenizer.ggml.pre spelling) to its pre-tokenizer, and says whether
// the BPE model uses a whole piece found in the vocabulary without merging (`ignore_merges`, Llama-3).
// Returns false for names we do not implement.
bool pretokenizer_from_name(const std::string& name, PreTokenizer* kind, bool* ignore_merges);
// Comma-separated list of accepted names, for error messages.
const char* pretokenizer_names();

struct Span {
    uint32_t begin, end;  // byte offsets, end exclusive
};

// Appends the pieces of text[0..n) to out, byte offsets relative to text. Pieces are non-empty,
// in order and cover the text exactly.
void pretokenize(PreTokenizer kind, const char* text, size_t n, std::vector<Span>* out);

}  // namespace tok
}  // namespace edge
