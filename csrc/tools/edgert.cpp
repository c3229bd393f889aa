// edgert.cpp — standalone CLI for boards without Python:
//   edgert generate MODEL.edge -p TEXT [-n 64] [-t threads] [--temp 0] [--seed 0] [--ids] [--mem SIZE]
//     greedy by default (a golden check across boards); --temp T > 0 samples with llama.cpp's other
//     defaults (SamplerParams: top-k 40, top-p 0.95, min-p 0.05, repetition penalty off).
//   edgert bench MODEL.edge [-t threads] [--prompt-tokens 256] [--gen-tokens 128] [--mem SIZE]
// --mem (e.g. 512MB, 1GB, 1.5GiB) is a hard budget for the whole process (ModelOptions::budget_covers_process).
//   edgert verify MODEL.edge
//   edgert kernels
// Errors print the Status message and exit with 1; nothing aborts on a bad file.
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "kernels/kernels.h"
#include "model.h"
#include "sampler.h"

using namespace edge;

namespace {

double now_s() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

int fail(const Status& st) {
    std::fprintf(stderr, "edgert: %s\n", st.msg.c_str());
    return 1;
}

int usage() {
    std::fprintf(stderr,
                 "usage: edgert generate MODEL -p TEXT [-n N] [-t THREADS] [--temp T] [--seed S] [--ids] [--mem SIZE]\n"
                 "         --temp: 0 = greedy (default); > 0 samples with top-k 40, top-p 0.95, min-p 0.05, no\n"
                 "         repetition penalty (llama.cpp's defaults); --seed: the draw's seed (default 0)\n"
                 "       edgert bench MODEL [-t THREADS] [--prompt-tokens N] [--gen-tokens N] [--mem SIZE]\n"
                 "       edgert verify MODEL\n"
                 "       edgert kernels\n");
    return 2;
}

struct Args {
    std::string cmd, model, prompt;
    int n = 64, threads = 0, prompt_tokens = 256, gen_tokens = 128;
    float temp = 0.f;
    uint64_t seed = 0;
    bool ids = false;  // print token ids instead of text (for cross-platform golden checks)
    int64_t mem = 0;   // --mem in bytes (0: none)
};

// "1GB" = 1e9, "1GiB" = 2^30, "512MB", "4096" (bytes); -1 if malformed.
int64_t parse_size(const char* s) {
    char* end = nullptr;
    const double v = std::strtod(s, &end);
    if (end == s || !(v > 0)) return -1;
    std::string u(end);
    for (char& ch : u) ch = (char)std::toupper((unsigned char)ch);
    static const struct { const char* unit; double mult; } kUnits[] = {
        {"", 1}, {"B", 1}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"KIB", 1024.0}, {"MIB", 1048576.0}, {"GIB", 1073741824.0},
        {"K", 1024.0}, {"M", 1048576.0}, {"G", 1073741824.0}};
    for (const auto& k : kUnits)
        if (u == k.unit) return (int64_t)(v * k.mult);
    return -1;
}

ModelOptions model_options(const Args& a) {
    ModelOptions opt;
    opt.threads = a.threads;
    opt.mem_budget = a.mem;
    opt.budget_covers_process = true;
    return opt;
}

bool parse(int argc, char** argv, Args* a) {
    if (argc < 2) return false;
    a->cmd = argv[1];
    for (int i = 2; i < argc; ++i) {
        std::string s = argv[i];
        auto next = [&](void) -> const char* { return i + 1 < argc ? argv[++i] : nullptr; };
        const char* v = nullptr;
        if (s == "-p" || s == "--prompt") { if (!(v = next())) return false; a->prompt = v; }
        else if (s == "-n") { if (!(v = next())) return false; a->n = std::atoi(v); }
        else if (s == "-t" || s == "--threads") { if (!(v = next())) return false; a->threads = std::atoi(v); }
        else if (s == "--temp") { if (!(v = next())) return false; a->temp = (float)std::atof(v); }
        else if (s == "--seed") { if (!(v = next())) return false; a->seed = std::strtoull(v, nullptr, 10); }
        else if (s == "--prompt-tokens") { if (!(v = next())) return false; a->prompt_tokens = std::atoi(v); }
        else if (s == "--gen-tokens") { if (!(v = next())) return false; a->gen_tokens = std::atoi(v); }
        else if (s == "--ids") a->ids = true;
        else if (s == "--mem") { if (!(v = next()) || (a->mem = parse_size(v)) < 0) return false; }
        else if (a->model.empty() && s[0] != '-') a->model = s;
        else return false;
    }
    return true;
}

int cmd_generate(const Args& a) {
    const ModelOptions opt = model_options(a);
    std::unique_ptr<Model> m;
    Status st = Model::load(a.model, opt, &m);
    if (!st.is_ok()) return fail(st);
    if (!m->tokenizer()) return fail(status_error(Code::UNSUPPORTED, a.model + " has no tokenizer"));
    const Tokenizer& tok = *m->tokenizer();
    std::vector<int32_t> history = tok.encode(a.prompt, tok.spec().add_bos, true);
    if (history.empty()) return fail(status_error(Code::INVALID_ARGUMENT, "empty prompt"));
    SamplerParams sp;  // llama.cpp's defaults, except the temperature (greedy unless --temp)
    sp.temperature = a.temp;
    sp.seed = a.seed;
    Sampler sampler(sp);
    std::vector<float> logits((size_t)m->config().vocab);
    std::vector<int32_t> feed = history;
    for (int i = 0; i < a.n; ++i) {
        if (m->n_past() + (int64_t)feed.size() > m->ctx()) break;
        st = m->eval(feed.data(), (int64_t)feed.size(), false, logits.data());
        if (!st.is_ok()) return fail(st);
        int32_t next = sampler.sample(logits.data(), (int64_t)logits.size(), history);
        history.push_back(next);
        if (a.ids) std::printf("%d\n", next);
        if (next == tok.spec().eos_id) break;
        if (!a.ids) {
            std::string piece = tok.token_bytes(next, false);
            std::fwrite(piece.data(), 1, piece.size(), stdout);
            std::fflush(stdout);
        }
        feed.assign(1, next);
    }
    if (!a.ids) std::printf("\n");
    return 0;
}

int cmd_bench(const Args& a) {
    const ModelOptions opt = model_options(a);
    std::unique_ptr<Model> m;
    Status st = Model::load(a.model, opt, &m);
    if (!st.is_ok()) return fail(st);
    std::mt19937 rng(0);
    std::vector<int32_t> prompt((size_t)a.prompt_tokens);
    for (int32_t& t : prompt) t = (int32_t)(rng() % (uint32_t)m->config().vocab);
    std::vector<float> logits((size_t)m->config().vocab);
    double t0 = now_s();
    st = m->eval(prompt.data(), (int64_t)prompt.size(), false, logits.data());
    if (!st.is_ok()) return fail(st);
    double t1 = now_s();
    int32_t tok = 0;
    for (int i = 0; i < a.gen_tokens; ++i) {
        st = m->eval(&tok, 1, false, logits.data());
        if (!st.is_ok()) return fail(st);
        tok = (int32_t)(std::max_element(logits.begin(), logits.end()) - logits.begin());
    }
    double t2 = now_s();
    std::printf("{\"prefill_tok_s\": %.2f, \"decode_tok_s\": %.2f, \"threads\": %d, \"kernels\": \"%s\"}\n",
                a.prompt_tokens / (t1 - t0), a.gen_tokens / (t2 - t1), m->threads(), m->kernels().level);
    return 0;
}

int cmd_verify(const Args& a) {
    std::unique_ptr<EdgeFile> f;
    Status st = edge_file_open(a.model, &f);
    if (!st.is_ok()) return fail(st);
    std::string report;
    st = f->verify(&report);
    if (!st.is_ok()) return fail(st);
    std::printf("%s: %s\n", a.model.c_str(), report.c_str());
    return 0;
}

int cmd_kernels() {
    const char* names[16];
    int n = kernels_levels(names, 16);
    std::printf("levels:");
    for (int i = 0; i < n; ++i) std::printf(" %s", names[i]);
    const KernelTable* t = kernels_default();
    std::printf("\ndefault: %s\nquantize_q8x: %s\n", t->level, t->quantize_q8x.impl);
    for (uint32_t d = 0; d < EDGE_DTYPE_COUNT; ++d)
        std::printf("%-10s gemm=%-12s dequant=%s\n", dtype_traits(d).name, t->gemm[d].fn ? t->gemm[d].impl : "none",
                    t->dequant[d].fn ? t->dequant[d].impl : "none");
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    Args a;
    if (!parse(argc, argv, &a)) return usage();
    if (a.cmd == "kernels") return cmd_kernels();
    if (a.model.empty()) return usage();
    if (a.cmd == "generate") return cmd_generate(a);
    if (a.cmd == "bench") return cmd_bench(a);
    if (a.cmd == "verify") return cmd_verify(a);
    return usage();
}
