// bpe.cpp — model "gpt2": byte-level BPE (GPT-2, SmolLM2, Qwen2/3, Llama-3).
//
// encode_text: regex pre-tokenizer (pretokenize.h) -> each piece's bytes become the byte-level tokens
// (GPT-2's bytes_to_unicode table: printable Latin-1 maps to itself, the other 68 bytes to U+0100..)
// -> merges applied lowest rank first, ties to the leftmost pair (a min-heap over the pairs of a
// linked list of symbols, stale entries skipped on pop): O(n log n) per piece, as Hugging Face's BPE.
// A piece whose whole text is a token is emitted as is when the pre-tokenizer says ignore_merges
// (Llama-3). A byte without a token (SmolLM2 has none for 0xC0, 0xC1, 0xF5..0xFF, bytes that never occur
// in UTF-8) becomes unk_id when that is a real unknown token, and is dropped otherwise: SmolLM2's unk_id
// is <|endoftext|>, a control token that must not appear in the middle of a prompt.
#include <algorithm>

#include "pretokenize.h"
#include "tokenizer_impl.h"
#include "unicode.h"

namespace edge {
namespace tok {

namespace {

// GPT-2 bytes_to_unicode: byte -> code point.
void byte_level_table(uint32_t cp_of[256]) {
    uint32_t next = 256;
    for (uint32_t b = 0; b < 256; ++b) {
        bool printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae);
        cp_of[b] = printable ? b : next++;
    }
}

struct Sym {
    int32_t id;  // token id, -1 when the byte has no token
    int32_t prev, next;
    bool dead;
};

struct Pair {
    int32_t rank, left, right, lid, rid, id;  // id: the merged token
    // std heap is a max-heap: "less" means lower priority = higher rank, then further right.
    bool operator<(const Pair& o) const { return rank != o.rank ? rank > o.rank : left > o.left; }
};

class BpeTokenizer final : public TokenizerBase {
public:
    explicit BpeTokenizer(const TokenizerSpec& spec) : TokenizerBase(spec) {
        byte_level_table(cp_of_byte_);
        std::fill(byte_of_cp_, byte_of_cp_ + 512, (int16_t)-1);
        for (int b = 0; b < 256; ++b) {
            utf8_append(cp_of_byte_[b], &char_of_byte_[b]);
            if (cp_of_byte_[b] < 512) byte_of_cp_[cp_of_byte_[b]] = (int16_t)b;
            auto it = vocab_.find(char_of_byte_[b]);
            byte_id_[b] = it == vocab_.end() ? -1 : it->second;
        }
        init_bytes();
    }

    Status init(PreTokenizer pre, bool ignore_merges) {
        pre_ = pre;
        ignore_merges_ = ignore_merges;
        merges_.reserve(spec_.merges.size());
        for (size_t r = 0; r < spec_.merges.size(); ++r) {
            const std::string& m = spec_.merges[r];
            size_t sp = m.find(' ', 1);
            if (sp == std::string::npos || sp + 1 >= m.size() || m.find(' ', sp + 1) != std::string::npos)
                return status_error(Code::INVALID_ARGUMENT,
                                    strfmt("tokenizer: merge %zu \"%s\" is not of the form \"left right\"", r, m.c_str()));
            std::string l = m.substr(0, sp), rt = m.substr(sp + 1), lr = l + rt;
            auto il = vocab_.find(l), ir = vocab_.find(rt), ilr = vocab_.find(lr);
            const std::string* missing = il == vocab_.end() ? &l : ir == vocab_.end() ? &rt : ilr == vocab_.end() ? &lr : nullptr;
            if (missing)
                return status_error(Code::INVALID_ARGUMENT, strfmt("tokenizer: merge %zu \"%s\" names \"%s\", which is not in the vocabulary",
                                                                   r, m.c_str(), missing->c_str()));
            // A duplicated pair keeps its first (lowest) rank, as llama.cpp does.
            merges_.emplace(key(il->second, ir->second), Merge{(int32_t)r, ilr->second});
        }
        return Status::ok();
    }

protected:
    std::string normal_bytes(const std::string& text) const override {
        // Undo the byte-level map; a token with a character outside it is kept verbatim (HF's ByteLevel
        // decoder does the same).
        std::string out;
        size_t i = 0;
        while (i < text.size()) {
            uint32_t cp;
            i += (size_t)utf8_decode(text.data() + i, text.size() - i, &cp);
            if (cp >= 512 || byte_of_cp_[cp] < 0) return text;
            out.push_back((char)byte_of_cp_[cp]);
        }
        return out;
    }

    void encode_text(const char* s, size_t n, std::vector<int32_t>* out) const override {
        std::vector<Span> pieces;
        pretokenize(pre_, s, n, &pieces);
        std::vector<Sym> syms;
        std::vector<Pair> heap;
        std::string mapped;
        for (const Span& p : pieces) {
            const unsigned char* b = reinterpret_cast<const unsigned char*>(s) + p.begin;
            size_t len = p.end - p.begin;
            if (ignore_merges_ && len > 1) {
                mapped.clear();
                for (size_t i = 0; i < len; ++i) mapped += char_of_byte_[b[i]];
                auto it = vocab_.find(mapped);
                if (it != vocab_.end()) {
                    out->push_back(it->second);
                    continue;
                }
            }
            bpe_piece(b, len, &syms, &heap, out);
        }
    }

private:
    struct Merge {
        int32_t rank, id;
    };
    static uint64_t key(int32_t a, int32_t b) { return (uint64_t)(uint32_t)a << 32 | (uint32_t)b; }

    void emit(int32_t id, std::vector<int32_t>* out) const {
        if (id >= 0)
            out->push_back(id);
        else if (spec_.unk_id >= 0 && type_of(spec_.unk_id) != TOKEN_CONTROL)
            out->push_back(spec_.unk_id);
    }

    void try_pair(std::vector<Sym>& syms, std::vector<Pair>& heap, int32_t l, int32_t r) const {
        if (l < 0 || r < 0) return;
        int32_t a = syms[(size_t)l].id, b = syms[(size_t)r].id;
        if (a < 0 || b < 0) return;
        auto it = merges_.find(key(a, b));
        if (it == merges_.end()) return;
        heap.push_back(Pair{it->second.rank, l, r, a, b, it->second.id});
        std::push_heap(heap.begin(), heap.end());
    }

    void bpe_piece(const unsigned char* b, size_t n, std::vector<Sym>* syms_, std::vector<Pair>* heap_,
                   std::vector<int32_t>* out) const {
        if (n == 1) {
            emit(byte_id_[b[0]], out);
            return;
        }
        std::vector<Sym>& syms = *syms_;
        std::vector<Pair>& heap = *heap_;
        syms.resize(n);
        heap.clear();
        for (size_t i = 0; i < n; ++i)
            syms[i] = Sym{byte_id_[b[i]], (int32_t)i - 1, i + 1 < n ? (int32_t)i + 1 : -1, false};
        for (size_t i = 0; i + 1 < n; ++i) try_pair(syms, heap, (int32_t)i, (int32_t)i + 1);
        while (!heap.empty()) {
            std::pop_heap(heap.begin(), heap.end());
            Pair p = heap.back();
            heap.pop_back();
            Sym& L = syms[(size_t)p.left];
            Sym& R = syms[(size_t)p.right];
            if (L.dead || R.dead || L.next != p.right || L.id != p.lid || R.id != p.rid) continue;  // stale
            L.id = p.id;
            R.dead = true;
            L.next = R.next;
            if (R.next >= 0) syms[(size_t)R.next].prev = p.left;
            try_pair(syms, heap, L.prev, p.left);
            try_pair(syms, heap, p.left, L.next);
        }
        for (int32_t i = 0; i >= 0; i = syms[(size_t)i].next) emit(syms[(size_t)i].id, out);
    }

    PreTokenizer pre_ = PreTokenizer::GPT2;
    bool ignore_merges_ = false;
    uint32_t cp_of_byte_[256];
    std::string char_of_byte_[256];
    int16_t byte_of_cp_[512];
    int32_t byte_id_[256];
    std::unordered_map<uint64_t, Merge> merges_;
};

}  // namespace

Status bpe_create(const TokenizerSpec& spec, std::unique_ptr<Tokenizer>* out) {
    PreTokenizer pre;
    bool ignore_merges;
    if (!pretokenizer_from_name(spec.pre, &pre, &ignore_merges))
        return status_error(Code::UNSUPPORTED, "tokenizer: unknown pre-tokenizer '" + spec.pre + "' for model gpt2 (supported: " +
                                                   pretokenizer_names() + ")");
    std::unique_ptr<BpeTokenizer> t(new BpeTokenizer(spec));
    EDGE_TRY(t->init(pre, ignore_merges));
    *out = std::move(t);
    return Status::ok();
}

}  // namespace tok
}  // namespace edge
