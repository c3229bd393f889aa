// pretokenize.cpp — hand-written matchers for the pre-tokenizer regexes in pretokenize.h.
//
// The text is decoded once into code points with their class flags; each matcher returns the length
// (in code points) of the regex match that starts at i inside the segment [i, end). Every position
// matches some alternative, so pieces are contiguous.
#include "pretokenize.h"

#include <cstring>

#include "unicode.h"

namespace edge {
namespace tok {

namespace {

struct Cps {
    std::vector<uint32_t> cp;
    std::vector<uint8_t> fl;
    std::vector<uint32_t> off;  // byte offset of each code point, plus the end

    void decode(const char* s, size_t n) {
        cp.clear(), fl.clear(), off.clear();
        size_t i = 0;
        while (i < n) {
            uint32_t c;
            int len = utf8_decode(s + i, n - i, &c);
            cp.push_back(c);
            fl.push_back(unicode_flags(c));
            off.push_back((uint32_t)i);
            i += (size_t)len;
        }
        off.push_back((uint32_t)n);
    }
};

inline bool is_l(uint8_t f) { return f & UCP_LETTER; }
inline bool is_n(uint8_t f) { return f & UCP_NUMBER; }
inline bool is_s(uint8_t f) { return f & UCP_SPACE; }
// [^\s\p{L}\p{N}]
inline bool is_other(uint8_t f) { return !(f & (UCP_LETTER | UCP_NUMBER | UCP_SPACE)); }
inline bool is_nl(uint32_t c) { return c == '\r' || c == '\n'; }
// Case folding as Oniguruma's (?i:...) does for the letters of the contractions (s t r e v m l d):
// ASCII, plus U+017F LATIN SMALL LETTER LONG S, which folds to s; no other code point folds onto one
// of them (tests/test_tokenizer_hf.py checks every code point).
inline uint32_t fold_lower(uint32_t c) { return (c >= 'A' && c <= 'Z') ? c + 32 : c == 0x17F ? 's' : c; }

// 's|'t|'re|'ve|'m|'ll|'d at i (fold = case-insensitive); 0 if none.
size_t match_contraction(const Cps& t, size_t i, size_t end, bool fold) {
    if (t.cp[i] != '\'' || i + 1 >= end) return 0;
    uint32_t a = fold ? fold_lower(t.cp[i + 1]) : t.cp[i + 1];
    if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
    if (i + 2 >= end) return 0;
    uint32_t b = fold ? fold_lower(t.cp[i + 2]) : t.cp[i + 2];
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
    return 0;
}

// \s+(?!\S)|\s+ at i, where t.cp[i] is whitespace.
size_t match_trailing_space(const Cps& t, size_t i, size_t end) {
    size_t j = i;
    while (j < end && is_s(t.fl[j])) ++j;
    if (j == end) return j - i;       // the run reaches the end: (?!\S) holds
    return j - i >= 2 ? j - 1 - i : 1;  // leave the last space to the next piece; \s+ for a single one
}

size_t match_gpt2(const Cps& t, size_t i, size_t end) {
    if (size_t n = match_contraction(t, i, end, false)) return n;
    // ' ?\p{L}+', ' ?\p{N}+', ' ?[^\s\p{L}\p{N}]+'
    size_t s = (t.cp[i] == ' ' && i + 1 < end) ? i + 1 : i;
    uint8_t f = t.fl[s];
    size_t k = s;
    if (is_l(f)) {
        while (k < end && is_l(t.fl[k])) ++k;
        return k - i;
    }
    if (is_n(f)) {
        while (k < end && is_n(t.fl[k])) ++k;
        return k - i;
    }
    if (is_other(f)) {
        while (k < end && is_other(t.fl[k])) ++k;
        return k - i;
    }
    return match_trailing_space(t, i, end);
}

size_t match_llama3(const Cps& t, size_t i, size_t end, size_t max_digits) {
    if (size_t n = match_contraction(t, i, end, true)) return n;
    uint32_t c = t.cp[i];
    uint8_t f = t.fl[i];
    // [^\r\n\p{L}\p{N}]?\p{L}+
    size_t k = i;
    if (!is_l(f) && !is_n(f) && !is_nl(c) && i + 1 < end && is_l(t.fl[i + 1])) k = i + 1;
    if (is_l(t.fl[k])) {
        while (k < end && is_l(t.fl[k])) ++k;
        return k - i;
    }
    // \p{N}{1,max_digits}
    if (is_n(f)) {
        k = i + 1;
        while (k < end && k - i < max_digits && is_n(t.fl[k])) ++k;
        return k - i;
    }
    // ' ?[^\s\p{L}\p{N}]+[\r\n]*'
    k = (c == ' ' && i + 1 < end) ? i + 1 : i;
    if (is_other(t.fl[k])) {
        while (k < end && is_other(t.fl[k])) ++k;
        while (k < end && is_nl(t.cp[k])) ++k;
        return k - i;
    }
    // \s*[\r\n]+ : up to the last \r or \n of the whitespace run
    size_t j = i, last_nl = end;
    while (j < end && is_s(t.fl[j])) {
        if (is_nl(t.cp[j])) last_nl = j;
        ++j;
    }
    if (last_nl != end) return last_nl + 1 - i;
    return match_trailing_space(t, i, end);
}

void split_segment(PreTokenizer kind, const Cps& t, size_t i, size_t end, std::vector<Span>* out) {
    while (i < end) {
        size_t n;
        switch (kind) {
            case PreTokenizer::QWEN2: n = match_llama3(t, i, end, 1); break;
            case PreTokenizer::LLAMA3: n = match_llama3(t, i, end, 3); break;
            default: n = match_gpt2(t, i, end); break;
        }
        out->push_back(Span{t.off[i], t.off[i + n]});
        i += n;
    }
}

struct Alias {
    const char* name;
    PreTokenizer kind;
    bool ignore_merges;
};

// Names as llama.cpp's llama-vocab.cpp groups them (same regex); "default" is the GPT-2 pattern.
const Alias kAliases[] = {
    {"gpt2", PreTokenizer::GPT2, false},       {"gpt-2", PreTokenizer::GPT2, false},
    {"default", PreTokenizer::GPT2, false},    {"mpt", PreTokenizer::GPT2, false},
    {"olmo", PreTokenizer::GPT2, false},       {"jais", PreTokenizer::GPT2, false},
    {"phi-2", PreTokenizer::GPT2, false},      {"smollm", PreTokenizer::SMOLLM, false},
    {"starcoder", PreTokenizer::SMOLLM, false}, {"refact", PreTokenizer::SMOLLM, false},
    {"command-r", PreTokenizer::SMOLLM, false}, {"codeshell", PreTokenizer::SMOLLM, false},
    {"exaone", PreTokenizer::SMOLLM, false},   {"qwen2", PreTokenizer::QWEN2, false},
    {"stablelm2", PreTokenizer::QWEN2, false}, {"deepseek-r1-qwen", PreTokenizer::QWEN2, false},
    {"megrez", PreTokenizer::QWEN2, false},    {"llama3", PreTokenizer::LLAMA3, true},
    {"llama-v3", PreTokenizer::LLAMA3, true},  {"llama-bpe", PreTokenizer::LLAMA3, true},
    {"falcon3", PreTokenizer::LLAMA3, true},   {"dbrx", PreTokenizer::LLAMA3, false},
    {"smaug-bpe", PreTokenizer::LLAMA3, false},
};

}  // namespace

bool pretokenizer_from_name(const std::string& name, PreTokenizer* kind, bool* ignore_merges) {
    for (const Alias& a : kAliases) {
        if (name == a.name) {
            *kind = a.kind;
            *ignore_merges = a.ignore_merges;
            return true;
        }
    }
    return false;
}

const char* pretokenizer_names() {
    return "gpt2, gpt-2, default, mpt, olmo, jais, phi-2, smollm, starcoder, refact, command-r, codeshell, "
           "exaone, qwen2, stablelm2, deepseek-r1-qwen, megrez, llama3, llama-v3, llama-bpe, falcon3, dbrx, "
           "smaug-bpe";
}

void pretokenize(PreTokenizer kind, const char* text, size_t n, std::vector<Span>* out) {
    if (n == 0) return;
    Cps t;  // per call: encode may run on several threads at once
    t.decode(text, n);
    size_t m = t.cp.size();
    if (kind != PreTokenizer::SMOLLM) {
        split_segment(kind, t, 0, m, out);
        return;
    }
    size_t start = 0;  // Digits(individual_digits): every numeric code point is a piece of its own
    for (size_t i = 0; i < m; ++i) {
        if (!(t.fl[i] & UCP_NUMERIC)) continue;
        split_segment(PreTokenizer::GPT2, t, start, i, out);
        out->push_back(Span{t.off[i], t.off[i + 1]});
        start = i + 1;
    }
    split_segment(PreTokenizer::GPT2, t, start, m, out);
}

}  // namespace tok
}  // namespace edge
