// fuzz_edge_file.cpp — libFuzzer target: the input is an .edge file (seeds: tests/fuzz/corpus/edge_file/).
//
// It goes through everything that reads the file's bytes before and during a run: edge_file_open
// (header, metadata, tensor table, overlap checks), EdgeFile::verify (CRCs), tokenizer_from_file, and
// Model::load (layout keys, hyper-parameters, tensor shapes and dtypes, MoE config and expert blob table,
// memory plan under a 256 MiB budget); a model that loads evaluates three tokens (expert blobs are read
// and decoded, their scales validated) and its tokenizer encodes and decodes a string.
// Each input runs as it is and once more with its checksums recomputed (run_with_checksums_fixed).
// Contract under test: every outcome is a Status — no crash, leak, hang or sanitizer report — and a
// Status that is not OK carries a message.
#include <cstring>
#include <memory>
#include <vector>

#include "format.h"
#include "fuzz_util.h"
#include "model.h"

using namespace edge;

namespace {

void run(const uint8_t* data, size_t size);

// Mutants of a file almost never keep its checksums right, and the reader checks them before parsing, so
// each input also runs with file_size and the header / metadata / table CRC-32s recomputed over its own
// bytes: the metadata and tensor-table parsers and the loader see the mutated bytes themselves.
void run_with_checksums_fixed(const uint8_t* data, size_t size) {
    if (size < kEdgeHeaderSize || std::memcmp(data, kEdgeMagic, 8) != 0) return;
    std::vector<uint8_t> b(data, data + size);
    auto u64 = [&](size_t at) { uint64_t v; std::memcpy(&v, b.data() + at, 8); return v; };
    auto put32 = [&](size_t at, uint32_t v) { std::memcpy(b.data() + at, &v, 4); };
    const uint64_t file_size = size;
    std::memcpy(b.data() + 16, &file_size, 8);
    const uint64_t mo = u64(24), ms = u64(32), to = u64(40), ts = u64(48);
    if (mo <= size && ms <= size - mo) put32(60, crc32_update(0, b.data() + mo, (size_t)ms));
    if (to <= size && ts <= size - to) put32(64, crc32_update(0, b.data() + to, (size_t)ts));
    put32(68, crc32_update(0, b.data(), 68));
    if (std::memcmp(b.data(), data, size) != 0) run(b.data(), b.size());
}

void run(const uint8_t* data, size_t size) {
    const std::string path = edge_fuzz::memfile_write(data, size);
    std::unique_ptr<EdgeFile> f;
    Status st = edge_file_open(path, &f);
    FUZZ_CHECK(st.is_ok() == (f != nullptr));
    if (!st.is_ok()) {
        FUZZ_CHECK(!st.msg.empty());
        return;
    }
    std::string report;
    (void)f->verify(&report);
    std::unique_ptr<Tokenizer> tok;
    if (tokenizer_from_file(*f, &tok).is_ok() && tok) {
        std::vector<int32_t> ids = tok->encode("Hello <|im_start|> world\xff!", true, true);
        for (int32_t id : ids) FUZZ_CHECK(id >= 0 && id < tok->n_vocab());
        (void)tok->decode(ids, true);
    }
    f.reset();

    ModelOptions opt;
    opt.threads = 1;
    opt.ctx = 16;
    opt.batch = 2;
    opt.io_threads = 1;
    opt.mem_budget = 256ll << 20;
    std::unique_ptr<Model> m;
    st = Model::load(path, opt, &m);
    if (!st.is_ok()) {
        FUZZ_CHECK(!st.msg.empty() && !m);
        return;
    }
    const int32_t vocab = (int32_t)m->config().vocab;
    const int32_t tokens[3] = {0, vocab / 2, vocab - 1};
    std::vector<float> logits((size_t)vocab);
    (void)m->eval(tokens, 3, false, logits.data());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    run(data, size);
    run_with_checksums_fixed(data, size);
    return 0;
}
