// pretokenize.h — the regex pre-tokenizers of byte-level BPE, written out by hand.
//
// Each splits UTF-8 text into contiguous pieces exactly as the named regex does with find-all
// (leftmost match, alternatives tried in order, greedy quantifiers with backtracking), so that
// BPE merges never cross a piece boundary:
//   GPT2    's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//   SMOLLM  every \p{N} code point isolated first (HF Digits(individual_digits=true)), then GPT2 on
//           each remaining run — a run's end acts as the end of the text for (?!\S)
//   QWEN2   (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|
//           \s*[\r\n]+|\s+(?!\S)|\s+
//   LLAMA3  as QWEN2 with \p{N}{1,3} (numbers in groups of up to three digits)
// The case-insensitive contractions fold ASCII letters only (as llama.cpp does).
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
