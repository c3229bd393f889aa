// tokenizer.h — text <-> token ids, built from the vocabulary stored in an .edge file.
//
// Two models:
//   "gpt2"  byte-level BPE (GPT-2, SmolLM2, Qwen2/3, Llama-3): a regex pre-tokenizer chosen by `pre`,
//           bytes mapped to printable unicode, then rank-ordered merges.
//   "llama" SentencePiece-style BPE (Llama-1/2, TinyLlama): spaces become U+2581, a leading U+2581 is
//           added, pieces are merged by score, unknown bytes fall back to <0xNN> byte tokens.
// Special tokens (type control or user-defined) are matched verbatim in the text when
// parse_special is true, as Hugging Face tokenizers do for added tokens.
// Equality with Hugging Face `tokenizers` on a corpus of tricky strings is tested in tests/.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "../common.h"

namespace edge {

struct TokenizerSpec {
    std::string model;  // "gpt2" | "llama"
    std::string pre;    // pre-tokenizer: "smollm", "qwen2", "llama3", "gpt2", "default", ... (gpt2 only)
    std::vector<std::string> tokens;
    std::vector<float> scores;       // may be empty for gpt2
    std::vector<int32_t> types;      // 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte
    std::vector<std::string> merges; // "left right", rank order (gpt2)
    int32_t bos_id = -1, eos_id = -1, unk_id = -1, pad_id = -1;
    bool add_bos = false;
    bool add_space_prefix = true;    // llama: the SentencePiece dummy prefix "▁" (Gemma: false)
};

class Tokenizer {
public:
    virtual ~Tokenizer() = default;
    // Validates the spec (ids in range, merges reference known tokens, ...) and builds the tokenizer.
    static Status create(const TokenizerSpec& spec, std::unique_ptr<Tokenizer>* out);

    // Encodes UTF-8 text. add_bos prepends bos_id when the spec has one. Invalid UTF-8 is
    // tokenized byte-wise, never rejected.
    virtual std::vector<int32_t> encode(const std::string& text, bool add_bos, bool parse_special) const = 0;
    // Raw bytes of one token as it appears in text (byte-level mapping undone, U+2581 → space,
    // <0xNN> → the byte). Control tokens decode to their text only if `special` is true.
    virtual std::string token_bytes(int32_t id, bool special) const = 0;
    // Concatenated token_bytes; for "llama" the leading space of the first piece is dropped.
    virtual std::string decode(const std::vector<int32_t>& ids, bool special) const = 0;

    virtual int32_t n_vocab() const = 0;
    virtual const TokenizerSpec& spec() const = 0;
};

}  // namespace edge
