// edgert_train.cpp — `edgert train`: training steps of the C++ engine (csrc/train/, docs/TRAINING.md) on a
// board without Python, printing every step's loss — the cross-ISA proof of issue 10 (the same steps under
// qemu on aarch64 / riscv64 give the x86 losses: tests/test_train_cross.py).
//
//   edgert train MODEL.edge --data FILE.txt [--steps 4] [--batch 2] [--seq 32] [--method lora|bias|sparse|mezo]
//     [--rank 8] [--alpha 16] [--targets q,v] [--lr 1e-4] [--optimizer adamw|sgd] [--momentum 0] [--mezo-eps 1e-3]
//     [--seed 0] [-t THREADS] [--mem SIZE]
//
// Data: edgerun.train.data's plain-text windows — the whole file tokenized once (BOS first when the tokenizer
// adds one, special tokens not parsed), cut into consecutive windows of --seq tokens, the last one padded with
// EOS (0 without one); every next-token prediction inside a window is scored. Step k trains on windows
// (k·B + j) mod N, j < B, in file order (no shuffle, so the order needs no PRNG shared with Python).
// A step: lora / bias / sparse (sparse without a plan = lora + bias) forward_backward + optimizer_step; mezo
// one mezo_step with step seed = seed · 1000003 + k (as edgerun.train). --mem is the trainer's budget (its
// plan is checked before the first step; a refusal says what fits).
// Output (stdout): one line per step {"step": k, "loss": L, "scored": n} (L = the mean loss of the step's batch
// before its update, %.9g), then {"result": {"steps": N, "seconds": s, "tok_s": t, "kernels": level,
// "param_abs_sum": Σ|θ|}}. Errors: one line "edgert: ..." on stderr, exit 1 (a failed step / bad file) or 2
// (bad usage).
#include "edgert_train.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "../model.h"
#include "../train/trainer.h"
#include "cli_parse.h"

namespace edge {

namespace {

struct TrainArgs {
    std::string model, data;
    int64_t steps = 4;
    TrainOptions t;
    int threads = 0;
};

int bad_usage(const std::string& why) {
    std::fprintf(stderr, "edgert: train: %s (edgert --help shows the usage)\n", why.c_str());
    return 2;
}

int failed(const Status& st) {
    std::fprintf(stderr, "edgert: %s\n", st.msg.c_str());
    return 1;
}

std::vector<std::string> split_commas(const std::string& s) {
    std::vector<std::string> out;
    std::stringstream ss(s);
    std::string item;
    while (std::getline(ss, item, ',')) out.push_back(item);
    return out;
}

// "" when every option is known and in range, else the one-line reason.
std::string parse(int argc, char** argv, TrainArgs* a) {
    a->t.batch = 2, a->t.seq = 32;
    const int max_threads = 4 * (int)(std::thread::hardware_concurrency() ? std::thread::hardware_concurrency() : 1);
    for (int i = 0; i < argc; ++i) {
        const std::string s = argv[i];
        if (!s.empty() && s[0] != '-') {
            if (!a->model.empty()) return "unexpected argument " + s;
            a->model = s;
            continue;
        }
        if (i + 1 >= argc) return "option " + s + " needs a value";
        const char* v = argv[++i];
        auto bad = [&](const char* want) { return s + " " + v + ": " + want; };
        long long n = 0;
        double f = 0;
        if (s == "--data") a->data = v;
        else if (s == "--steps") {
            if (!parse_int(v, 1, 1LL << 30, &n)) return bad("must be >= 1");
            a->steps = n;
        } else if (s == "--batch" || s == "--seq" || s == "--rank") {
            if (!parse_int(v, s == "--seq" ? 2 : 1, 1LL << 20, &n)) return bad(s == "--seq" ? "must be >= 2" : "must be >= 1");
            (s == "--batch" ? a->t.batch : s == "--seq" ? a->t.seq : a->t.rank) = n;
        } else if (s == "--alpha" || s == "--lr") {
            if (!parse_float(v, 1e-30, 1e30, &f)) return bad("must be a number > 0");
            (s == "--alpha" ? a->t.alpha : a->t.lr) = (float)f;
        } else if (s == "--mezo-eps") {
            if (!parse_float(v, 1e-30, 1e30, &f)) return bad("must be a number > 0");
            a->t.mezo_eps = (float)f;
        } else if (s == "--momentum") {
            if (!parse_float(v, 0.0, 0.999999, &f)) return bad("must be in [0, 1)");
            a->t.momentum = (float)f;
        } else if (s == "--method") {
            if (std::strcmp(v, "lora") && std::strcmp(v, "bias") && std::strcmp(v, "sparse") && std::strcmp(v, "mezo"))
                return bad("must be lora, bias, sparse or mezo");
            a->t.method = v;
        } else if (s == "--optimizer") {
            if (std::strcmp(v, "adamw") && std::strcmp(v, "sgd")) return bad("must be adamw or sgd");
            a->t.optimizer = v;
        } else if (s == "--targets") {
            a->t.targets = split_commas(v);
            if (a->t.targets.empty()) return bad("must name targets, e.g. q,v");
        } else if (s == "--seed") {
            if (!parse_int(v, 0, 1LL << 62, &n)) return bad("must be an integer >= 0");
            a->t.seed = (uint64_t)n;
        } else if (s == "-t" || s == "--threads") {
            if (!parse_int(v, 1, max_threads, &n)) return bad(("must be 1 to " + std::to_string(max_threads)).c_str());
            a->threads = (int)n;
        } else if (s == "--mem") {
            if ((a->t.mem_budget = parse_size(v)) < 0) return bad("must be a size > 0, e.g. 512MB, 1GB");
        } else {
            return "unknown option " + s;
        }
    }
    if (a->model.empty()) return "needs a MODEL file";
    if (a->data.empty()) return "needs --data FILE.txt";
    return "";
}

// The plain-text windows of edgerun.train.data (tokens [N, S], mask [N, S]).
Status text_windows(const Model& m, const std::string& path, int64_t S, std::vector<int32_t>* toks,
                    std::vector<uint8_t>* mask, int64_t* n_windows) {
    std::ifstream f(path, std::ios::binary);
    if (!f) return status_error(Code::IO_ERROR, path + ": cannot be read");
    std::stringstream ss;
    ss << f.rdbuf();
    if (!m.tokenizer()) return status_error(Code::UNSUPPORTED, m.file().path() + " has no tokenizer");
    const Tokenizer& tok = *m.tokenizer();
    const bool bos = tok.spec().add_bos && tok.spec().bos_id >= 0;
    const std::vector<int32_t> ids = tok.encode(ss.str(), bos, false);
    const int64_t n = (int64_t)ids.size();
    if (n < 2) return status_error(Code::INVALID_ARGUMENT, strfmt("%s: needs at least 2 tokens of text, got %lld", path.c_str(), (long long)n));
    const int64_t N = (n - 1 + S - 1) / S;
    const int32_t pad = tok.spec().eos_id >= 0 ? tok.spec().eos_id : 0;
    toks->assign((size_t)(N * S), pad);
    mask->assign((size_t)(N * S), 0);
    for (int64_t w = 0; w < N; ++w) {
        const int64_t len = std::min(S, n - w * S);
        for (int64_t t = 0; t < len; ++t) (*toks)[(size_t)(w * S + t)] = ids[(size_t)(w * S + t)];
        for (int64_t t = 0; t + 1 < len; ++t) (*mask)[(size_t)(w * S + t)] = 1;
    }
    *n_windows = N;
    return Status::ok();
}

double now_s() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

int edgert_train(int argc, char** argv) {
    TrainArgs a;
    const std::string err = parse(argc, argv, &a);
    if (!err.empty()) return bad_usage(err);
    ModelOptions mo;
    mo.threads = a.threads;
    std::unique_ptr<Model> m;
    Status st = Model::load(a.model, mo, &m);
    if (!st.is_ok()) return failed(st);
    std::vector<int32_t> toks;
    std::vector<uint8_t> mask;
    int64_t N = 0;
    const int64_t B = a.t.batch, S = a.t.seq;
    st = text_windows(*m, a.data, S, &toks, &mask, &N);
    if (!st.is_ok()) return failed(st);
    a.t.threads = a.threads;
    std::unique_ptr<Trainer> tr;
    st = Trainer::create(m.get(), a.t, &tr);
    if (!st.is_ok()) return failed(st);
    std::vector<int32_t> bt((size_t)(B * S));
    std::vector<uint8_t> bm((size_t)(B * S));
    const double t0 = now_s();
    for (int64_t k = 0; k < a.steps; ++k) {
        for (int64_t j = 0; j < B; ++j) {
            const int64_t w = (k * B + j) % N;
            std::memcpy(&bt[(size_t)(j * S)], &toks[(size_t)(w * S)], (size_t)S * sizeof(int32_t));
            std::memcpy(&bm[(size_t)(j * S)], &mask[(size_t)(w * S)], (size_t)S);
        }
        double loss = 0;
        int64_t n = 0;
        if (a.t.method == "mezo") {
            st = tr->mezo_step(bt.data(), bm.data(), B, S, a.t.lr, a.t.seed * 1000003ULL + (uint64_t)k, &loss);
            for (int64_t i = 0; i < B * S; ++i) n += bm[(size_t)i] && i % S != S - 1;
        } else {
            st = tr->forward_backward(bt.data(), bm.data(), B, S, &loss, &n);
            if (st.is_ok()) st = tr->optimizer_step(a.t.lr);
            if (n > 0) loss /= (double)n;
        }
        if (!st.is_ok()) return failed(st);
        std::printf("{\"step\": %lld, \"loss\": %.17g, \"scored\": %lld}\n", (long long)k, loss, (long long)n);
        std::fflush(stdout);
    }
    const double dt = now_s() - t0;
    double abs_sum = 0;
    for (int64_t i = 0; i < tr->n_elements(); ++i) abs_sum += std::fabs((double)tr->param_data()[i]);
    std::printf("{\"result\": {\"steps\": %lld, \"seconds\": %.3f, \"tok_s\": %.2f, \"kernels\": \"%s\", \"param_abs_sum\": %.17g}}\n",
                (long long)a.steps, dt, (double)(a.steps * B * S) / (dt > 0 ? dt : 1e-9), m->kernels().level, abs_sum);
    return 0;
}

}  // namespace edge
