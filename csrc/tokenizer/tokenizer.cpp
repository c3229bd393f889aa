// tokenizer.cpp — spec validation, special-token splitting and decoding shared by both models.
#include <algorithm>
#include <functional>

#include "tokenizer_impl.h"

namespace edge {

namespace tok {

int parse_byte_token(const std::string& s) {
    if (s.size() != 6 || s.compare(0, 3, "<0x") != 0 || s[5] != '>') return -1;
    int v = 0;
    for (int i = 3; i < 5; ++i) {
        char c = s[(size_t)i];
        int d = (c >= '0' && c <= '9') ? c - '0' : (c >= 'A' && c <= 'F') ? c - 'A' + 10 : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

TokenizerBase::TokenizerBase(const TokenizerSpec& spec) : spec_(spec) {
    // spec_ is final here: views into its strings stay valid for the object's life.
    vocab_.reserve(spec_.tokens.size());
    for (size_t i = 0; i < spec_.tokens.size(); ++i) {
        const std::string& t = spec_.tokens[i];
        if (t.empty()) continue;
        vocab_.emplace(std::string_view(t), (int32_t)i);
        int32_t ty = type_of((int32_t)i);
        if (ty == TOKEN_CONTROL || ty == TOKEN_USER_DEFINED) {
            if (special_.emplace(std::string_view(t), (int32_t)i).second) {
                auto& lens = special_lengths_[(unsigned char)t[0]];
                if (std::find(lens.begin(), lens.end(), (uint32_t)t.size()) == lens.end()) lens.push_back((uint32_t)t.size());
            }
        }
    }
    for (auto& lens : special_lengths_) std::sort(lens.begin(), lens.end(), std::greater<uint32_t>());
}

void TokenizerBase::init_bytes() {
    bytes_.resize(spec_.tokens.size());
    for (size_t i = 0; i < spec_.tokens.size(); ++i) {
        const std::string& t = spec_.tokens[i];
        switch (type_of((int32_t)i)) {
            case TOKEN_CONTROL:
            case TOKEN_USER_DEFINED: bytes_[i] = t; break;
            case TOKEN_BYTE: {
                int b = parse_byte_token(t);
                bytes_[i] = std::string(1, (char)b);  // validated in create
                break;
            }
            default: bytes_[i] = normal_bytes(t); break;
        }
    }
}

void TokenizerBase::split_special(const std::string& text, bool parse_special, std::vector<Fragment>* out) const {
    size_t n = text.size(), start = 0, i = 0;
    while (i < n) {
        const auto& lens = special_lengths_[(unsigned char)text[i]];
        int32_t hit = -1;
        size_t hit_len = 0;
        for (uint32_t len : lens) {
            if (i + len > n) continue;
            auto it = special_.find(std::string_view(text.data() + i, len));
            if (it == special_.end()) continue;
            if (!parse_special && type_of(it->second) == TOKEN_CONTROL) continue;
            hit = it->second, hit_len = len;
            break;
        }
        if (hit < 0) {
            ++i;
            continue;
        }
        if (i > start) out->push_back(Fragment{start, i, -1});
        out->push_back(Fragment{i, i + hit_len, hit});
        i += hit_len;
        start = i;
    }
    if (n > start) out->push_back(Fragment{start, n, -1});
}

std::vector<int32_t> TokenizerBase::encode(const std::string& text, bool add_bos, bool parse_special) const {
    std::vector<int32_t> out;
    out.reserve(text.size() / 3 + 2);
    if (add_bos && spec_.bos_id >= 0) out.push_back(spec_.bos_id);
    std::vector<Fragment> frags;
    split_special(text, parse_special, &frags);
    for (const Fragment& f : frags) {
        if (f.id >= 0)
            out.push_back(f.id);
        else
            encode_text(text.data() + f.begin, f.end - f.begin, &out);
    }
    return out;
}

std::string TokenizerBase::token_bytes(int32_t id, bool special) const {
    if (id < 0 || (size_t)id >= bytes_.size()) return std::string();
    int32_t ty = type_of(id);
    if (!special && (ty == TOKEN_CONTROL || ty == TOKEN_UNUSED)) return std::string();
    return bytes_[(size_t)id];
}

std::string TokenizerBase::decode(const std::vector<int32_t>& ids, bool special) const {
    std::string out;
    for (int32_t id : ids) out += token_bytes(id, special);
    return out;
}

namespace {

Status invalid(const std::string& msg) { return status_error(Code::INVALID_ARGUMENT, "tokenizer: " + msg); }

Status validate_common(const TokenizerSpec& s) {
    if (s.model != "gpt2" && s.model != "llama")
        return status_error(Code::UNSUPPORTED, "tokenizer: unknown model '" + s.model +
                                                   "' (supported: gpt2 = byte-level BPE, llama = SentencePiece BPE)");
    size_t n = s.tokens.size();
    if (n == 0) return invalid("the vocabulary is empty");
    if (n > (size_t)INT32_MAX) return invalid("the vocabulary has more than 2^31-1 tokens");
    if (!s.scores.empty() && s.scores.size() != n)
        return invalid(strfmt("%zu scores for %zu tokens (scores must be empty or one per token)", s.scores.size(), n));
    if (!s.types.empty() && s.types.size() != n)
        return invalid(strfmt("%zu token types for %zu tokens (types must be empty or one per token)", s.types.size(), n));
    for (size_t i = 0; i < s.types.size(); ++i) {
        int32_t t = s.types[i];
        if (t < TOKEN_UNDEFINED || t > TOKEN_BYTE)
            return invalid(strfmt("token %zu has type %d (valid: 0..6)", i, (int)t));
        if (t == TOKEN_BYTE && parse_byte_token(s.tokens[i]) < 0)
            return invalid(strfmt("token %zu is a byte token but its text is not <0xNN>", i));
        if ((t == TOKEN_CONTROL || t == TOKEN_USER_DEFINED) && s.tokens[i].empty())
            return invalid(strfmt("special token %zu is empty", i));
    }
    const struct {
        const char* name;
        int32_t id;
    } ids[] = {{"bos_id", s.bos_id}, {"eos_id", s.eos_id}, {"unk_id", s.unk_id}, {"pad_id", s.pad_id}};
    for (const auto& x : ids)
        if (x.id < -1 || x.id >= (int64_t)n)
            return invalid(strfmt("%s = %d is outside the vocabulary of %zu tokens (use -1 for none)", x.name, (int)x.id, n));
    if (s.add_bos && s.bos_id < 0) return invalid("add_bos is set but the spec has no bos_id");
    return Status::ok();
}

}  // namespace

}  // namespace tok

Status Tokenizer::create(const TokenizerSpec& spec, std::unique_ptr<Tokenizer>* out) {
    EDGE_TRY(tok::validate_common(spec));
    if (spec.model == "gpt2") return tok::bpe_create(spec, out);
    return tok::spm_create(spec, out);
}

}  // namespace edge
