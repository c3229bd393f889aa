// fuzz_tokenizer.cpp — libFuzzer target: the tokenizer on arbitrary bytes (seeds: tests/fuzz/corpus/tokenizer/).
//
// Two tokenizers are built once from tiny .edge files holding only tokenizer.* metadata
// (tests/fuzz/data/tok_gpt2.edge: byte-level BPE, 3 specials + 256 bytes + merges; tok_spm.edge:
// SentencePiece-style with <0xNN> byte fallback), found in $EDGE_FUZZ_DATA or the source tree.
// Byte 0 of the input picks what is fuzzed:
//   mode 0/1  encode the rest with tokenizer 0/1 under each pre-tokenizer flag set (add_bos, parse_special
//             from bits 2-3), then decode. Checked: every id is in the vocabulary; byte-level BPE without
//             special parsing is lossless (decode(encode(x)) == x for any bytes, invalid UTF-8 included).
//   mode 2    decode the rest read as int32 ids (any value, negative and out of range included) with both.
//   mode 3    a TokenizerSpec from the input (model and pre from byte 1, bos/eos/unk/pad from bytes 2-5,
//             then lines "<type digit><token>" and "M<left> <right>" merges until an empty line, the rest
//             is text): Tokenizer::create must refuse it with a Status or build a tokenizer that then
//             encodes and decodes the text within its vocabulary.
//   mode 4-7  pretokenize the rest with each pre-tokenizer: pieces non-empty, in order, covering it exactly.
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "format.h"
#include "fuzz_util.h"
#include "model.h"
#include "tokenizer/pretokenize.h"
#include "tokenizer/tokenizer.h"

using namespace edge;

#ifndef EDGE_FUZZ_DATA
#define EDGE_FUZZ_DATA "tests/fuzz/data"
#endif

namespace {

std::unique_ptr<Tokenizer> g_tok[2];

std::unique_ptr<Tokenizer> load(const char* name) {
    const char* dir = std::getenv("EDGE_FUZZ_DATA");
    const std::string path = std::string(dir ? dir : EDGE_FUZZ_DATA) + "/" + name;
    std::unique_ptr<EdgeFile> f;
    std::unique_ptr<Tokenizer> t;
    Status st = edge_file_open(path, &f);
    if (st.is_ok()) st = tokenizer_from_file(*f, &t);
    if (!st.is_ok() || !t) {
        std::fprintf(stderr, "fuzz_tokenizer: cannot build the tokenizer of %s: %s\n", path.c_str(), st.msg.c_str());
        std::abort();
    }
    return t;
}

void encode_decode(const Tokenizer& t, const std::string& text, bool add_bos, bool parse_special, bool lossless) {
    std::vector<int32_t> ids = t.encode(text, add_bos, parse_special);
    for (int32_t id : ids) FUZZ_CHECK(id >= 0 && id < t.n_vocab());
    std::string back = t.decode(ids, true);
    (void)t.decode(ids, false);
    if (lossless && !add_bos && !parse_special) FUZZ_CHECK(back == text);
}

void spec_from_input(edge_fuzz::Bytes& in) {
    TokenizerSpec s;
    const uint8_t b = in.u8();
    static const char* const pres[] = {"", "smollm", "qwen2", "llama3", "gpt2", "default", "nonesuch"};
    s.model = b & 1 ? "llama" : (b & 2 ? "gpt2" : "bert");
    s.pre = pres[(b >> 2) % 7];
    s.add_bos = b & 0x80;
    int32_t* ids[4] = {&s.bos_id, &s.eos_id, &s.unk_id, &s.pad_id};
    for (int32_t* id : ids) *id = (int8_t)in.u8();
    std::string body = in.rest();
    size_t at = 0;
    while (at < body.size()) {
        size_t nl = body.find('\n', at);
        if (nl == std::string::npos) nl = body.size();
        std::string line = body.substr(at, nl - at);
        at = nl + 1;
        if (line.empty()) break;
        if (line[0] == 'M') {
            s.merges.push_back(line.substr(1));
        } else {
            s.types.push_back((int32_t)(unsigned char)line[0] - '0');
            s.tokens.push_back(line.substr(1));
            s.scores.push_back((float)(s.tokens.size() % 7) - 3.0f);
        }
    }
    const std::string text = at < body.size() ? body.substr(at) : std::string("a b");
    std::unique_ptr<Tokenizer> t;
    Status st = Tokenizer::create(s, &t);
    FUZZ_CHECK(st.is_ok() == (t != nullptr));
    if (!st.is_ok()) {
        FUZZ_CHECK(!st.msg.empty());
        return;
    }
    FUZZ_CHECK(t->n_vocab() == (int32_t)s.tokens.size());
    encode_decode(*t, text, s.add_bos, b & 0x40, false);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    g_tok[0] = load("tok_gpt2.edge");
    g_tok[1] = load("tok_spm.edge");
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    edge_fuzz::Bytes in{data, size};
    const uint8_t mode = in.u8();
    switch (mode & 7) {
        case 0:
        case 1: {
            const std::string text = in.rest();
            encode_decode(*g_tok[mode & 1], text, mode & 4, mode & 8, (mode & 1) == 0);
            break;
        }
        case 2: {
            std::vector<int32_t> ids;
            while (in.left()) ids.push_back((int32_t)in.u32());
            for (auto& t : g_tok) (void)t->decode(ids, mode & 8);
            break;
        }
        case 3: spec_from_input(in); break;
        default: {
            const std::string text = in.rest();
            const tok::PreTokenizer kinds[] = {tok::PreTokenizer::GPT2, tok::PreTokenizer::SMOLLM, tok::PreTokenizer::QWEN2,
                                               tok::PreTokenizer::LLAMA3};
            std::vector<tok::Span> spans;
            tok::pretokenize(kinds[mode & 3], text.data(), text.size(), &spans);
            uint32_t at = 0;
            for (const tok::Span& sp : spans) {
                FUZZ_CHECK(sp.begin == at && sp.end > sp.begin);
                at = sp.end;
            }
            FUZZ_CHECK(at == text.size());
        }
    }
    return 0;
}
