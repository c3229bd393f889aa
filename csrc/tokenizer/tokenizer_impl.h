// tokenizer_impl.h — private to csrc/tokenizer/: the parts both models share.
//
// TokenizerBase owns a copy of the spec, the text -> id map, the per-token decoded bytes and the
// special-token matcher; a model only implements encode_text() (one fragment of ordinary text).
// Special-token matching: user-defined tokens (type 4) are always matched verbatim, control tokens
// (type 3) only when parse_special — llama.cpp's rule, and Hugging Face's for non-special added
// tokens. Where several match at one position the longest wins (leftmost-longest).
#pragma once

#include <string_view>
#include <unordered_map>
#include <vector>

#include "tokenizer.h"

namespace edge {
namespace tok {

enum TokenType : int32_t {
    TOKEN_UNDEFINED = 0,
    TOKEN_NORMAL = 1,
    TOKEN_UNKNOWN = 2,
    TOKEN_CONTROL = 3,
    TOKEN_USER_DEFINED = 4,
    TOKEN_UNUSED = 5,
    TOKEN_BYTE = 6,
};

// A piece of the input: ordinary text [begin, end) when id < 0, else a matched special token.
struct Fragment {
    size_t begin, end;
    int32_t id;
};

// Parses "<0xNN>" (upper- or lower-case hex); returns the byte or -1.
int parse_byte_token(const std::string& s);

class TokenizerBase : public Tokenizer {
public:
    std::vector<int32_t> encode(const std::string& text, bool add_bos, bool parse_special) const override;
    std::string token_bytes(int32_t id, bool special) const override;
    std::string decode(const std::vector<int32_t>& ids, bool special) const override;
    int32_t n_vocab() const override { return (int32_t)spec_.tokens.size(); }
    const TokenizerSpec& spec() const override { return spec_; }

protected:
    explicit TokenizerBase(const TokenizerSpec& spec);
    // Encodes ordinary text (no special tokens inside), appending ids.
    virtual void encode_text(const char* s, size_t n, std::vector<int32_t>* out) const = 0;
    // Fills bytes_[id] for a normal/unknown/unused token (model-specific unescaping).
    virtual std::string normal_bytes(const std::string& text) const = 0;
    // Call at the end of the derived constructor (uses normal_bytes).
    void init_bytes();
    void split_special(const std::string& text, bool parse_special, std::vector<Fragment>* out) const;
    int32_t type_of(int32_t id) const { return spec_.types.empty() ? TOKEN_NORMAL : spec_.types[(size_t)id]; }

    TokenizerSpec spec_;
    std::unordered_map<std::string_view, int32_t> vocab_;  // views into spec_.tokens; first id wins
    std::vector<std::string> bytes_;                        // token_bytes(id, special=true)

private:
    std::unordered_map<std::string_view, int32_t> special_;  // control + user-defined tokens
    std::vector<uint32_t> special_lengths_[256];             // by first byte, longest first
};

Status bpe_create(const TokenizerSpec& spec, std::unique_ptr<Tokenizer>* out);
Status spm_create(const TokenizerSpec& spec, std::unique_ptr<Tokenizer>* out);

}  // namespace tok
}  // namespace edge
