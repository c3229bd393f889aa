// spm.cpp — model "llama": SentencePiece BPE (Llama-1/2, TinyLlama, Mistral-v0.1 style vocabularies).
//
// encode_text, for each fragment of ordinary text (llama.cpp's rule: every fragment that starts the text
// or follows a special token gets the dummy prefix):
//   1. "▁" + text with ' ' replaced by U+2581 "▁" (add_dummy_prefix, unless the spec's add_space_prefix
//      is false, as for Gemma; no other normalization)
//   2. one symbol per UTF-8 character (an invalid byte is a symbol of its own)
//   3. repeatedly merge the adjacent pair whose concatenation is a mergeable piece (type normal,
//      user-defined or unused) with the highest score, ties to the leftmost pair (max-heap, stale
//      entries skipped) — SentencePiece's bpe_model.cc
//   4. an unused piece is split back into the two pieces it was merged from; a symbol that is not a
//      piece becomes its UTF-8 bytes as <0xNN> tokens (byte fallback), or unk_id when a byte token is
//      missing (consecutive unknowns share one unk_id, as SentencePiece does).
// decode drops one leading space: the dummy prefix of the first non-empty piece (when there is one).
#include <algorithm>

#include "tokenizer_impl.h"
#include "unicode.h"

namespace edge {
namespace tok {

namespace {

const char kSpace[] = "\xe2\x96\x81";  // U+2581

struct Sym {
    uint32_t begin, len;  // bytes in the escaped buffer
    int32_t prev, next;
};

struct Pair {
    float score;
    int32_t left, right;
    uint32_t size;
    bool operator<(const Pair& o) const { return score != o.score ? score < o.score : left > o.left; }
};

class SpmTokenizer final : public TokenizerBase {
public:
    explicit SpmTokenizer(const TokenizerSpec& spec) : TokenizerBase(spec) {
        std::fill(byte_id_, byte_id_ + 256, -1);
        for (size_t i = 0; i < spec_.tokens.size(); ++i) {
            int32_t ty = type_of((int32_t)i);
            const std::string& t = spec_.tokens[i];
            if (ty == TOKEN_BYTE) {
                int b = parse_byte_token(t);
                if (byte_id_[b] < 0) byte_id_[b] = (int32_t)i;
            } else if ((ty == TOKEN_NORMAL || ty == TOKEN_UNDEFINED || ty == TOKEN_USER_DEFINED || ty == TOKEN_UNUSED) && !t.empty()) {
                pieces_.emplace(std::string_view(t), (int32_t)i);
            }
        }
        init_bytes();
    }

    Status check() const {
        bool all_bytes = std::all_of(byte_id_, byte_id_ + 256, [](int32_t id) { return id >= 0; });
        if (!all_bytes && spec_.unk_id < 0)
            return status_error(Code::INVALID_ARGUMENT,
                                "tokenizer: a llama (SentencePiece) vocabulary needs the 256 byte tokens <0x00>..<0xFF> or an unk_id");
        if (spec_.scores.size() != spec_.tokens.size())
            return status_error(Code::INVALID_ARGUMENT, "tokenizer: a llama (SentencePiece) vocabulary needs one score per token");
        return Status::ok();
    }

    std::string decode(const std::vector<int32_t>& ids, bool special) const override {
        std::string out;
        bool first = true;
        for (int32_t id : ids) {
            std::string b = token_bytes(id, special);
            if (b.empty()) continue;
            if (first && b[0] == ' ' && spec_.add_space_prefix)
                out.append(b, 1, std::string::npos);
            else
                out += b;
            first = false;
        }
        return out;
    }

protected:
    std::string normal_bytes(const std::string& text) const override {
        std::string out;
        for (size_t i = 0; i < text.size();) {
            if (text.compare(i, 3, kSpace) == 0) {
                out.push_back(' ');
                i += 3;
            } else {
                out.push_back(text[i++]);
            }
        }
        return out;
    }

    void encode_text(const char* s, size_t n, std::vector<int32_t>* out) const override {
        std::string buf(spec_.add_space_prefix ? kSpace : "");
        buf.reserve(n + n / 4 + 8);
        for (size_t i = 0; i < n; ++i) {
            if (s[i] == ' ')
                buf += kSpace;
            else
                buf.push_back(s[i]);
        }
        std::vector<Sym> syms;
        for (size_t i = 0; i < buf.size();) {
            uint32_t cp;
            int len = utf8_decode(buf.data() + i, buf.size() - i, &cp);
            int32_t k = (int32_t)syms.size();
            syms.push_back(Sym{(uint32_t)i, (uint32_t)len, k - 1, -1});
            if (k > 0) syms[(size_t)k - 1].next = k;
            i += (size_t)len;
        }
        std::vector<Pair> heap;
        // merged text -> the two texts it was merged from; needed only to split unused pieces back
        std::unordered_map<std::string_view, std::pair<std::string_view, std::string_view>> rev;
        auto view = [&](uint32_t b, uint32_t len) { return std::string_view(buf.data() + b, len); };
        auto try_pair = [&](int32_t l, int32_t r) {
            if (l < 0 || r < 0) return;
            const Sym& L = syms[(size_t)l];
            const Sym& R = syms[(size_t)r];
            auto it = pieces_.find(view(L.begin, L.len + R.len));
            if (it == pieces_.end()) return;
            heap.push_back(Pair{spec_.scores[(size_t)it->second], l, r, L.len + R.len});
            std::push_heap(heap.begin(), heap.end());
            if (type_of(it->second) == TOKEN_UNUSED) rev[it->first] = {view(L.begin, L.len), view(R.begin, R.len)};
        };
        for (size_t i = 0; i + 1 < syms.size(); ++i) try_pair((int32_t)i, (int32_t)i + 1);
        while (!heap.empty()) {
            std::pop_heap(heap.begin(), heap.end());
            Pair p = heap.back();
            heap.pop_back();
            Sym& L = syms[(size_t)p.left];
            Sym& R = syms[(size_t)p.right];
            if (L.len == 0 || R.len == 0 || L.next != p.right || L.len + R.len != p.size) continue;  // stale
            L.len += R.len;
            R.len = 0;
            L.next = R.next;
            if (R.next >= 0) syms[(size_t)R.next].prev = p.left;
            try_pair(L.prev, p.left);
            try_pair(p.left, L.next);
        }
        bool prev_unk = false;
        for (int32_t i = 0; i >= 0 && !syms.empty(); i = syms[(size_t)i].next)
            emit(view(syms[(size_t)i].begin, syms[(size_t)i].len), rev, &prev_unk, out);
    }

private:
    void emit(std::string_view w, const std::unordered_map<std::string_view, std::pair<std::string_view, std::string_view>>& rev,
              bool* prev_unk, std::vector<int32_t>* out) const {
        auto it = pieces_.find(w);
        if (it != pieces_.end()) {
            auto r = type_of(it->second) == TOKEN_UNUSED ? rev.find(w) : rev.end();
            if (r != rev.end()) {
                emit(r->second.first, rev, prev_unk, out);
                emit(r->second.second, rev, prev_unk, out);
                return;
            }
            out->push_back(it->second);
            *prev_unk = false;
            return;
        }
        bool bytes_ok = true;
        for (char c : w) bytes_ok = bytes_ok && byte_id_[(unsigned char)c] >= 0;
        if (bytes_ok) {
            for (char c : w) out->push_back(byte_id_[(unsigned char)c]);
            *prev_unk = false;
            return;
        }
        if (!*prev_unk) out->push_back(spec_.unk_id);  // check() guarantees unk_id when bytes are missing
        *prev_unk = true;
    }

    std::unordered_map<std::string_view, int32_t> pieces_;  // mergeable pieces; first id wins
    int32_t byte_id_[256];
};

}  // namespace

Status spm_create(const TokenizerSpec& spec, std::unique_ptr<Tokenizer>* out) {
    std::unique_ptr<SpmTokenizer> t(new SpmTokenizer(spec));
    EDGE_TRY(t->check());
    *out = std::move(t);
    return Status::ok();
}

}  // namespace tok
}  // namespace edge
