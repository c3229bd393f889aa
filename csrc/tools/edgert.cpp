// edgert.cpp — standalone CLI for boards without Python:
//   edgert generate MODEL.edge -p TEXT [-n 64] [-t threads] [--temp 0] [--seed 0] [--ids] [--mem SIZE]
//     greedy by default (a golden check across boards); --temp T > 0 samples with llama.cpp's other
//     defaults (SamplerParams: top-k 40, top-p 0.95, min-p 0.05, repetition penalty off).
//   edgert bench MODEL.edge [-t threads] [--prompt-tokens 256] [--gen-tokens 128] [--repeat 3] [--mem SIZE]
//     medians of --repeat rounds, each from an empty cache (as `edgerun bench`)
// --mem (e.g. 512MB, 1GB, 1.5GiB) is a hard budget for the whole process (ModelOptions::budget_covers_process).
//   edgert verify MODEL.edge
//   edgert kernels
//   edgert train MODEL.edge --data FILE.txt [...]   training steps of the C++ engine, one loss a line
//     (edgert_train.cpp: its options and output)
//   edgert --version      (pyproject.toml's version, passed in by CMakeLists.txt as EDGE_VERSION)
// Every option value is range-checked in parse() (one line "edgert: ...", exit 2; -n -1 = until EOS or the
// end of the context, as llama.cpp). Errors of a command print the Status message and exit with 1; nothing
// aborts on a bad file. Exit codes as edgerun's: 0 ok, 1 the command failed, 2 bad usage.
#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "cli_parse.h"
#include "edgert_train.h"
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

#ifndef EDGE_VERSION
#error "EDGE_VERSION is defined by CMakeLists.txt (pyproject.toml's version)"
#endif

int usage(FILE* out, int rc) {
    std::fprintf(out,
                 "usage: edgert generate MODEL -p TEXT [-n N] [-t THREADS] [--temp T] [--seed S] [--ids] [--mem SIZE]\n"
                 "         -n: tokens to generate (default 64; -1 = until the end of the text or of the context)\n"
                 "         --temp: 0 = greedy (default 0); > 0 samples with top-k 40, top-p 0.95, min-p 0.05, no\n"
                 "         repetition penalty (llama.cpp's defaults); --seed: the draw's seed (default 0)\n"
                 "         --ids: print token ids, one a line, instead of text (default: text)\n"
                 "       edgert bench MODEL [-t THREADS] [--prompt-tokens N (default 256)] [--gen-tokens N (default 128)]\n"
                 "         [--repeat N (rounds from an empty cache, medians; default 3)] [--mem SIZE]\n"
                 "       edgert verify MODEL\n"
                 "       edgert train MODEL --data FILE.txt [--steps 4] [--batch 2] [--seq 32] [--method lora|bias|sparse|mezo]\n"
                 "         [--rank 8] [--alpha 16] [--targets q,v] [--lr 1e-4] [--optimizer adamw|sgd] [--momentum 0]\n"
                 "         [--mezo-eps 1e-3] [--seed 0] [-t THREADS] [--mem SIZE]   (one JSON line per step: its mean loss)\n"
                 "       edgert kernels\n"
                 "       edgert --version\n"
                 "  -t/--threads: 1 to 4 x the CPUs (default: all CPUs); --mem: hard budget of the process, e.g. 1GB\n"
                 "  (default: none); --device cpu|cuda: where generate / bench run (default cpu; cuda loads the CUDA\n"
                 "  backend plugin libedge_cuda_backend.so from edgert's folder or $EDGE_CUDA_PLUGIN)\n"
                 "  --kv auto|f32|f16|q8|kivi4|kivi2: the KV cache's stored type (default auto: f16 on the CPU, f32 on cuda)\n"
                 "exit codes: 0 ok; 1 the command failed (a bad file, a failed check); 2 bad usage\n");
    return rc;
}

struct Args {
    std::string cmd, model, prompt;
    int n = 64, threads = 0, prompt_tokens = 256, gen_tokens = 128, repeat = 3;
    float temp = 0.f;
    uint64_t seed = 0;
    bool ids = false;  // print token ids instead of text (for cross-platform golden checks)
    int64_t mem = 0;   // --mem in bytes (0: none)
    std::string device = "cpu";  // --device cpu|cuda (the CUDA backend plugin next to edgert)
    std::string kv = "auto";     // --kv auto|f32|f16|q8|kivi4|kivi2: the KV cache's stored type (auto: f16 on the CPU)
};

int max_threads() {
    const unsigned n = std::thread::hardware_concurrency();
    return 4 * (int)(n ? n : 1);
}

ModelOptions model_options(const Args& a) {
    ModelOptions opt;
    opt.threads = a.threads;
    opt.mem_budget = a.mem;
    opt.budget_covers_process = true;
    opt.device = a.device;
    opt.kv_explicit = a.kv != "auto";
    if (opt.kv_explicit) kv_type_parse(a.kv, &opt.kv);  // checked in parse()
    return opt;
}

// Fills *a from argv; "" when every option is known and in range, else the one-line reason.
std::string parse(int argc, char** argv, Args* a) {
    if (argc < 2) return "no command";
    a->cmd = argv[1];
    constexpr long long kMaxTokens = 1LL << 24;
    for (int i = 2; i < argc; ++i) {
        const std::string s = argv[i];
        const char* v = nullptr;
        auto value = [&]() -> bool { return i + 1 < argc && (v = argv[++i]) != nullptr; };
        auto bad = [&](const char* want) { return s + " " + v + ": " + want; };
        long long n = 0;
        double f = 0;
        if (s == "-p" || s == "--prompt" || s == "-n" || s == "-t" || s == "--threads" || s == "--temp" ||
            s == "--seed" || s == "--prompt-tokens" || s == "--gen-tokens" || s == "--repeat" || s == "--mem" || s == "--device" || s == "--kv") {
            if (!value()) return "option " + s + " needs a value";
        }
        if (s == "-p" || s == "--prompt") a->prompt = v;
        else if (s == "-n") {
            if (!parse_int(v, -1, kMaxTokens, &n) || n == 0)
                return bad("must be >= 1, or -1 for 'until the end of the text or of the context'");
            a->n = (int)n;
        } else if (s == "-t" || s == "--threads") {
            if (!parse_int(v, 1, max_threads(), &n))
                return bad(("must be 1 to " + std::to_string(max_threads()) + " (4 x the CPUs)").c_str());
            a->threads = (int)n;
        } else if (s == "--temp") {
            if (!parse_float(v, 0.0, 1e6, &f)) return bad("must be a number >= 0 (0 = greedy)");
            a->temp = (float)f;
        } else if (s == "--seed") {
            errno = 0;
            char* end = nullptr;
            a->seed = std::strtoull(v, &end, 10);
            if (end == v || *end != '\0' || errno == ERANGE || v[0] == '-') return bad("must be an integer >= 0");
        } else if (s == "--prompt-tokens" || s == "--gen-tokens") {
            if (!parse_int(v, 1, kMaxTokens, &n)) return bad("must be >= 1");
            (s == "--gen-tokens" ? a->gen_tokens : a->prompt_tokens) = (int)n;
        } else if (s == "--repeat") {
            if (!parse_int(v, 1, 1000, &n)) return bad("must be 1 to 1000");
            a->repeat = (int)n;
        } else if (s == "--device") {
            if (std::string(v) != "cpu" && std::string(v) != "cuda") return bad("must be cpu or cuda");
            a->device = v;
        } else if (s == "--kv") {
            KvType t;
            if (std::string(v) != "auto" && !kv_type_parse(v, &t)) return bad("must be auto, f32, f16, q8, kivi4 or kivi2");
            a->kv = v;
        } else if (s == "--ids") a->ids = true;
        else if (s == "--mem") {
            if ((a->mem = parse_size(v)) < 0) return bad("must be a size > 0, e.g. 512MB, 1GB, 1.5GiB");
        } else if (a->model.empty() && !s.empty() && s[0] != '-') a->model = s;
        else return s[0] == '-' ? "unknown option " + s : "unexpected argument " + s;
    }
    return "";
}

// eval(tokens) then the next token by `sampler`: on the device for a one-token step where the model can
// (Model::eval_sample_device: only the id comes back), else eval into `logits` and Sampler::sample on the host.
Status eval_next(Model& m, const std::vector<int32_t>& tokens, Sampler& sampler, const std::vector<int32_t>& history,
                 std::vector<float>& logits, int32_t* next) {
    bool done = false;
    if (tokens.size() == 1) EDGE_TRY(m.eval_sample_device(tokens[0], sampler, history, next, &done));
    if (done) return Status::ok();
    EDGE_TRY(m.eval(tokens.data(), (int64_t)tokens.size(), false, logits.data()));
    *next = sampler.sample(logits.data(), (int64_t)logits.size(), history);
    return Status::ok();
}

// n one-token steps from *tok (each feeding the last pick), *tok = the last pick. Pipelined where the model can
// (Model::eval_sample_device_launch: step i + 1 is launched before step i's token is read), else eval_next.
Status decode_steps(Model& m, int32_t* tok, int n, Sampler& sampler, const std::vector<int32_t>& history,
                    std::vector<float>& logits) {
    bool launched = false;
    if (n > 0 && m.pipelined_sampling(sampler)) EDGE_TRY(m.eval_sample_device_launch(*tok, sampler, &launched));
    if (!launched) {
        for (int i = 0; i < n; ++i) EDGE_TRY(eval_next(m, {*tok}, sampler, history, logits, tok));
        return Status::ok();
    }
    for (int i = 0; i < n; ++i) {
        bool more = false;  // the next step, fed by this one's pick on the device
        if (i + 1 < n) EDGE_TRY(m.eval_sample_device_launch(Model::kTokenFromPick, sampler, &more));
        EDGE_TRY(m.eval_sample_device_wait(tok));
        if (i + 1 < n && !more) return decode_steps(m, tok, n - i - 1, sampler, history, logits);
    }
    return Status::ok();
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
    for (int i = 0; a.n < 0 || i < a.n; ++i) {  // -n -1: until EOS or the end of the context
        if (m->n_past() + (int64_t)feed.size() > m->ctx()) break;
        int32_t next = -1;
        st = eval_next(*m, feed, sampler, history, logits, &next);
        if (!st.is_ok()) return fail(st);
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
    SamplerParams gp;
    gp.temperature = 0.f;  // greedy: argmax, on the device where the model samples there
    Sampler greedy(gp);
    const std::vector<int32_t> no_history;
    // --repeat rounds from an empty cache, medians reported (as `edgerun bench`): the first round also pays
    // for first touches (page faults, an expert cache filling, a device's lazy uploads).
    std::vector<double> prefill, decode;
    for (int r = 0; r < a.repeat; ++r) {
        m->reset();
        double t0 = now_s();
        int32_t tok = -1;
        st = eval_next(*m, prompt, greedy, no_history, logits, &tok);
        if (!st.is_ok()) return fail(st);
        double t1 = now_s();
        st = decode_steps(*m, &tok, a.gen_tokens, greedy, no_history, logits);
        if (!st.is_ok()) return fail(st);
        prefill.push_back(a.prompt_tokens / (t1 - t0));
        decode.push_back(a.gen_tokens / (now_s() - t1));
    }
    auto median = [](std::vector<double> v) {
        std::sort(v.begin(), v.end());
        return v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
    };
    std::printf("{\"prefill_tok_s\": %.2f, \"decode_tok_s\": %.2f, \"repeat\": %d, \"threads\": %d, \"kernels\": \"%s\"}\n",
                median(prefill), median(decode), a.repeat, m->threads(), m->kernels().level);
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
    if (argc >= 2 && (!std::strcmp(argv[1], "--version") || !std::strcmp(argv[1], "-V"))) {
        std::printf("edgert %s\n", EDGE_VERSION);
        return 0;
    }
    if (argc >= 2 && (!std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h"))) return usage(stdout, 0);
    if (argc >= 2 && !std::strcmp(argv[1], "train")) return edgert_train(argc - 2, argv + 2);
    Args a;
    const std::string err = parse(argc, argv, &a);
    const bool known = a.cmd == "generate" || a.cmd == "bench" || a.cmd == "verify" || a.cmd == "kernels";
    std::string why = !err.empty() ? err : !known ? "unknown command '" + a.cmd + "'"
                    : a.cmd != "kernels" && a.model.empty() ? a.cmd + " needs a MODEL file" : "";
    if (!why.empty()) {
        std::fprintf(stderr, "edgert: %s (edgert --help shows the usage)\n", why.c_str());
        return 2;
    }
    if (a.cmd == "kernels") return cmd_kernels();
    if (a.cmd == "generate") return cmd_generate(a);
    if (a.cmd == "bench") return cmd_bench(a);
    return cmd_verify(a);
}
