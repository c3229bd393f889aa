// test_backend.cpp — the CPU backend's ops (backend/backend.h contracts) against float64 references,
// and the planner (backend/planner.h).
//
//   edge_test_backend [--level NAME]     (default: every kernel level this CPU runs)
// Prints one line per check group and a final "N passed, N failed"; exit status 1 on any failure.
// Portable C++ (runs natively and under qemu).
//
// Checked, per kernel level, with 1 and 3 threads (results must be the same bits):
//   matmul     f32 weights, several matrices sharing one input, one with a LowRank term
//              (y = W·x + s·B·(A·x)); rows 1..33, n 1..67, T 1..5, rank 1..5; |Δ| <= 1e-5·Σ|terms|.
//   rmsnorm    weighted and unweighted, rows × n, in place; |Δ| <= 2e-6·|y| + 1e-7.
//   rope       angles + rotate-half for several positions and heads; |Δ| <= 2e-5 (f32 angle vs f64).
//   attention  kv_append of T tokens at pos0 then attention with window 0 / 3 vs a float64 softmax.
//   act_mul    relu exact; silu within kernels.h's bound.  add, add_bias: exact.
//   moe        route (top-k ties to the lower index, softmax / sigmoid + norm), gather, scatter,
//              combine in rank order: exact vs the same float sums.
//   embed      f32 and f16 tables: exact.
// Planner: per-kind totals, host vs device terms, binding, alignment, zero-fill, forget, re-allocate.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/planner.h"
#include "moe.h"
#include "quant.h"
#include "test_util.h"

using namespace edge;
using namespace edge::test;

namespace {

int g_pass = 0, g_fail = 0;

void check(bool ok, const std::string& what) {
    if (ok) {
        ++g_pass;
    } else {
        ++g_fail;
        std::printf("FAIL %s\n", what.c_str());
    }
}

std::vector<float> rand_vec(Rng& rng, size_t n, float a = 1.f) {
    std::vector<float> v(n);
    for (float& x : v) x = rng.sym(a);
    return v;
}

Matrix f32_matrix(const std::vector<float>& w, int64_t rows, int64_t cols) {
    return Matrix{reinterpret_cast<const uint8_t*>(w.data()), EDGE_DTYPE_F32, rows, cols, (size_t)cols * sizeof(float)};
}

// A CPU backend that calls its memory device memory: the planner must count it as a device term.
class FakeDevice : public CpuBackend {
public:
    using CpuBackend::CpuBackend;
    Device device() const override { return Device::CUDA; }
};

void test_matmul(CpuBackend& be, const char* tag, Rng& rng, std::vector<float>* bits) {
    const int64_t shapes[][4] = {{1, 1, 1, 1}, {3, 5, 2, 1}, {17, 31, 3, 4}, {33, 67, 5, 5}, {16, 64, 4, 2}};
    bool ok = true;
    for (const auto& s : shapes) {
        const int64_t rows = s[0], n = s[1], T = s[2], r = s[3];
        std::vector<float> w0 = rand_vec(rng, (size_t)(rows * n)), w1 = rand_vec(rng, (size_t)((rows + 2) * n)), x = rand_vec(rng, (size_t)(T * n));
        std::vector<float> a = rand_vec(rng, (size_t)(r * n)), b = rand_vec(rng, (size_t)(rows * r));
        const float scale = 0.75f;
        Matrix m0 = f32_matrix(w0, rows, n), m1 = f32_matrix(w1, rows + 2, n);
        std::vector<float> y0((size_t)(T * rows)), y1((size_t)(T * (rows + 2)));
        const Matrix* ws[2] = {&m0, &m1};
        float* ys[2] = {y0.data(), y1.data()};
        LowRank lr{a.data(), b.data(), r, scale};
        const LowRank* ads[2] = {&lr, nullptr};
        be.matmul(ws, ys, 2, x.data(), T, ads);
        for (int mi = 0; mi < 2; ++mi) {
            const bool first = mi == 0;  // matrix 0 has the LowRank term, matrix 1 none
            const int64_t R = first ? rows : rows + 2;
            for (int64_t t = 0; t < T; ++t)
                for (int64_t o = 0; o < R; ++o) {
                    const float* wr = first ? &w0[(size_t)(o * n)] : &w1[(size_t)(o * n)];
                    const float* xt = &x[(size_t)(t * n)];
                    double ref = 0, mag = 0;
                    for (int64_t i = 0; i < n; ++i) ref += (double)wr[i] * xt[i], mag += std::fabs((double)wr[i] * xt[i]);
                    for (int64_t j = 0; first && j < r; ++j) {
                        double ax = 0, axm = 0;
                        for (int64_t i = 0; i < n; ++i) ax += (double)a[(size_t)(j * n + i)] * xt[i], axm += std::fabs((double)a[(size_t)(j * n + i)] * xt[i]);
                        ref += scale * (double)b[(size_t)(o * r + j)] * ax;
                        mag += std::fabs(scale * (double)b[(size_t)(o * r + j)]) * axm;
                    }
                    const double got = first ? y0[(size_t)(t * R + o)] : y1[(size_t)(t * R + o)];
                    if (!(std::fabs(got - ref) <= 1e-5 * mag + 1e-30)) {
                        if (ok) std::printf("  matmul %d rows %lld n %lld T %lld r %lld: y[%lld][%lld] = %g, float64 %g\n", mi, (long long)R,
                                            (long long)n, (long long)T, (long long)r, (long long)t, (long long)o, got, ref);
                        ok = false;
                    }
                }
        }
        bits->insert(bits->end(), y0.begin(), y0.end());
        bits->insert(bits->end(), y1.begin(), y1.end());
    }
    check(ok, std::string(tag) + " matmul + LowRank vs float64");
}

void test_elementwise(CpuBackend& be, const char* tag, Rng& rng, std::vector<float>* bits) {
    // rmsnorm, weighted and not, in place
    const int64_t rows = 5, n = 37;
    std::vector<float> x = rand_vec(rng, (size_t)(rows * n), 3.f), w = rand_vec(rng, (size_t)n), y((size_t)(rows * n)), yi = x;
    bool ok = true;
    for (int weighted = 0; weighted < 2; ++weighted) {
        be.rmsnorm(x.data(), weighted ? w.data() : nullptr, 1e-6f, rows, n, y.data());
        for (int64_t r = 0; r < rows; ++r) {
            double ss = 0;
            for (int64_t i = 0; i < n; ++i) ss += (double)x[(size_t)(r * n + i)] * x[(size_t)(r * n + i)];
            const double sc = 1.0 / std::sqrt(ss / (double)n + 1e-6);
            for (int64_t i = 0; i < n; ++i) {
                const double ref = x[(size_t)(r * n + i)] * sc * (weighted ? w[(size_t)i] : 1.0);
                if (!(std::fabs(y[(size_t)(r * n + i)] - ref) <= 2e-6 * std::fabs(ref) + 1e-7)) ok = false;
            }
        }
        bits->insert(bits->end(), y.begin(), y.end());
    }
    be.rmsnorm(yi.data(), w.data(), 1e-6f, rows, n, yi.data());  // aliasing: same bits as out of place
    check(ok && std::memcmp(yi.data(), y.data(), y.size() * sizeof(float)) == 0, std::string(tag) + " rmsnorm");

    // add, add_bias: exact
    std::vector<float> a = rand_vec(rng, 12), b = rand_vec(rng, 12), bias = rand_vec(rng, 4), a0 = a;
    be.add(a.data(), b.data(), 12);
    bool exact = true;
    for (int i = 0; i < 12; ++i) exact &= a[(size_t)i] == a0[(size_t)i] + b[(size_t)i];
    std::vector<float> c = a;
    be.add_bias(c.data(), bias.data(), 3, 4);
    for (int i = 0; i < 12; ++i) exact &= c[(size_t)i] == a[(size_t)i] + bias[(size_t)(i % 4)];
    check(exact, std::string(tag) + " add / add_bias");

    // act_mul: relu exact, silu bound
    std::vector<float> g = rand_vec(rng, 41, 6.f), u = rand_vec(rng, 41, 2.f), gr = g, gs = g;
    be.act_mul(gr.data(), u.data(), 41, Act::RELU);
    be.act_mul(gs.data(), u.data(), 41, Act::SILU);
    bool act_ok = true;
    for (int i = 0; i < 41; ++i) {
        act_ok &= gr[(size_t)i] == (g[(size_t)i] > 0.f ? g[(size_t)i] : 0.f) * u[(size_t)i];
        const double s = (double)g[(size_t)i] / (1.0 + std::exp(-(double)g[(size_t)i])) * u[(size_t)i];
        act_ok &= std::fabs(gs[(size_t)i] - s) <= 1e-6 * std::fabs((double)g[(size_t)i] * u[(size_t)i]) + 2e-7 * std::fabs(s) + 1e-30;
    }
    check(act_ok, std::string(tag) + " act_mul relu / silu");
    bits->insert(bits->end(), gs.begin(), gs.end());

    // rope
    const int64_t T = 3, H = 2, Dh = 8, half = Dh / 2, pos0 = 5;
    std::vector<float> inv((size_t)half), cs((size_t)(T * half)), sn((size_t)(T * half));
    for (int64_t i = 0; i < half; ++i) inv[(size_t)i] = (float)(1.0 / std::pow(10000.0, (double)(2 * i) / (double)Dh));
    std::vector<float> q = rand_vec(rng, (size_t)(T * H * Dh)), q0 = q;
    be.rope_angles(pos0, T, inv.data(), half, cs.data(), sn.data());
    be.rope(q.data(), T, H, Dh, cs.data(), sn.data());
    bool rope_ok = true;
    for (int64_t t = 0; t < T; ++t)
        for (int64_t h = 0; h < H; ++h)
            for (int64_t i = 0; i < half; ++i) {
                const double ang = (double)(pos0 + t) * inv[(size_t)i];
                const float* v = &q0[(size_t)((t * H + h) * Dh)];
                const double r0 = v[i] * std::cos(ang) - v[i + half] * std::sin(ang), r1 = v[i + half] * std::cos(ang) + v[i] * std::sin(ang);
                rope_ok &= std::fabs(q[(size_t)((t * H + h) * Dh + i)] - r0) <= 2e-5 && std::fabs(q[(size_t)((t * H + h) * Dh + i + half)] - r1) <= 2e-5;
            }
    check(rope_ok, std::string(tag) + " rope_angles + rope vs float64");

    // embed: f32 exact, f16 exact (the f16 values themselves)
    std::vector<float> tab = rand_vec(rng, 4 * 6);
    std::vector<uint16_t> tab16(24);
    for (size_t i = 0; i < tab16.size(); ++i) tab16[i] = f32_to_f16(tab[i]);
    const int32_t toks[3] = {3, 0, 3};
    std::vector<float> e((size_t)(3 * 6)), e16((size_t)(3 * 6));
    be.embed(f32_matrix(tab, 4, 6), toks, 3, e.data());
    be.embed(Matrix{reinterpret_cast<const uint8_t*>(tab16.data()), EDGE_DTYPE_F16, 4, 6, 12}, toks, 3, e16.data());
    bool emb = true;
    for (int t = 0; t < 3; ++t)
        for (int i = 0; i < 6; ++i)
            emb &= e[(size_t)(t * 6 + i)] == tab[(size_t)(toks[t] * 6 + i)] && e16[(size_t)(t * 6 + i)] == f16_to_f32(tab16[(size_t)(toks[t] * 6 + i)]);
    check(emb, std::string(tag) + " embed f32 / f16");
}

void test_attention(CpuBackend& be, const char* tag, Rng& rng, std::vector<float>* bits) {
    const int64_t H = 4, Hkv = 2, Dh = 6, ctx = 40, Dkv = Hkv * Dh, Dq = H * Dh;
    const int64_t stride = (ctx + kKTile - 1) / kKTile * kKTile * Dh;
    std::vector<float> kc((size_t)(stride * Hkv)), vc((size_t)(ctx * Dkv));
    KvLayer kv{kc.data(), vc.data(), stride};
    bool ok = true;
    std::vector<float> allk, allv;
    int64_t pos0 = 0;
    for (int64_t T : {1, 17, 3}) {  // appends crossing a tile edge
        std::vector<float> k = rand_vec(rng, (size_t)(T * Dkv)), v = rand_vec(rng, (size_t)(T * Dkv)), q = rand_vec(rng, (size_t)(T * Dq), 2.f);
        allk.insert(allk.end(), k.begin(), k.end());
        allv.insert(allv.end(), v.begin(), v.end());
        be.kv_append(kv, k.data(), v.data(), T, pos0, Hkv, Dh);
        for (int64_t window : {0, 3}) {
            std::vector<float> out((size_t)(T * Dq));
            be.attention(q.data(), kv, T, pos0, H, Hkv, Dh, window, out.data());
            for (int64_t t = 0; t < T; ++t)
                for (int64_t h = 0; h < H; ++h) {
                    const int64_t pos = pos0 + t, kvh = h / (H / Hkv), pb = window ? std::max<int64_t>(0, pos - window + 1) : 0;
                    std::vector<double> s;
                    double mx = -1e300, sum = 0, vmax = 0;
                    for (int64_t p = pb; p <= pos; ++p) {
                        double d = 0;
                        for (int64_t i = 0; i < Dh; ++i) d += (double)q[(size_t)(t * Dq + h * Dh + i)] * allk[(size_t)(p * Dkv + kvh * Dh + i)];
                        s.push_back(d / std::sqrt((double)Dh));
                        mx = std::max(mx, s.back());
                    }
                    for (double& x : s) sum += (x = std::exp(x - mx));
                    for (int64_t i = 0; i < Dh; ++i) {
                        double ref = 0;
                        for (int64_t p = pb; p <= pos; ++p) {
                            ref += s[(size_t)(p - pb)] / sum * allv[(size_t)(p * Dkv + kvh * Dh + i)];
                            vmax = std::max(vmax, std::fabs((double)allv[(size_t)(p * Dkv + kvh * Dh + i)]));
                        }
                        if (!(std::fabs(out[(size_t)(t * Dq + h * Dh + i)] - ref) <= 1e-5 * vmax + 1e-6)) ok = false;
                    }
                }
            bits->insert(bits->end(), out.begin(), out.end());
        }
        pos0 += T;
    }
    check(ok, std::string(tag) + " kv_append + attention (window 0 / 3) vs float64");
}

void test_moe(CpuBackend& be, const char* tag, Rng& rng) {
    MoeConfig c;
    c.n_experts = 6;
    c.n_used = 2;
    const int64_t T = 3, E = 6, k = 2, D = 5;
    const float logits[T * E] = {1, 3, 3, 0, -1, 2, /**/ 0, 0, 0, 0, 0, 0, /**/ -5, 4, -1, 4.5f, 2, 1};
    int32_t idx[T * k];
    float w[T * k];
    be.moe_route(c, logits, T, k, idx, w);
    bool ok = idx[0] == 1 && idx[1] == 2 && idx[2] == 0 && idx[3] == 1 && idx[4] == 3 && idx[5] == 1;
    double z = 0;
    for (int e = 0; e < E; ++e) z += std::exp(logits[e] - 3.0);
    ok &= std::fabs(w[0] - 1.0 / z) < 1e-6 && w[0] == w[1];
    c.gating_softmax = false;
    c.norm_topk = true;
    be.moe_route(c, logits, T, k, idx, w);
    ok &= std::fabs(w[4] + w[5] - 1.0) < 1e-6 && w[4] > w[5];
    check(ok, std::string(tag) + " moe_route softmax / sigmoid+norm, ties to the lower index");

    std::vector<float> xn = rand_vec(rng, (size_t)(T * D)), dst(4 * (size_t)D), yk((size_t)(T * k * D), -1.f), x = rand_vec(rng, (size_t)(T * D)), x0 = x;
    const int32_t routes[4] = {5, 0, 3, 2};  // route r = t·k + j
    be.moe_gather(xn.data(), D, routes, 4, k, dst.data());
    bool ex = true;
    for (int i = 0; i < 4; ++i)
        for (int d = 0; d < D; ++d) ex &= dst[(size_t)(i * D + d)] == xn[(size_t)((routes[i] / k) * D + d)];
    std::vector<float> ye = rand_vec(rng, 4 * (size_t)D);
    be.moe_scatter(ye.data(), D, routes, 4, yk.data());
    for (int i = 0; i < 4; ++i)
        for (int d = 0; d < D; ++d) ex &= yk[(size_t)(routes[i] * D + d)] == ye[(size_t)(i * D + d)];
    for (float& v : yk)
        if (v == -1.f) v = rng.sym(1.f);
    be.moe_combine(yk.data(), w, T, k, D, x.data());
    for (int64_t t = 0; t < T; ++t)
        for (int64_t d = 0; d < D; ++d) {
            float acc = w[t * k] * yk[(size_t)(t * k * D + d)];
            for (int64_t j = 1; j < k; ++j) acc += w[t * k + j] * yk[(size_t)((t * k + j) * D + d)];
            ex &= x[(size_t)(t * D + d)] == x0[(size_t)(t * D + d)] + acc;
        }
    check(ex, std::string(tag) + " moe_gather / scatter / combine (rank order)");
}

void test_planner(const KernelTable* kt) {
    CpuBackend cpu(kt, 1);
    FakeDevice dev(kt, 1);
    bool ok = true;
#define OK(cond) do { if (!(cond)) { std::printf("  planner: %s failed (line %d)\n", #cond, __LINE__); ok = false; } } while (0)
    {
        Planner p;
        float *a = nullptr, *b = nullptr, *d = nullptr;
        uint8_t* io = nullptr;
        int32_t* h = nullptr;
        p.count("weights", MemKind::WEIGHTS, Device::CPU, 1000);
        p.add("a", MemKind::SCRATCH, &cpu, 100, &a);
        p.add("b", MemKind::KV_CACHE, &cpu, 10, &b, false);
        p.add("io", MemKind::IO_BUFFERS, nullptr, 5000, &io, false, 4096);
        p.add("h", MemKind::SCRATCH, nullptr, 7, &h);
        p.add("d", MemKind::ACTIVATIONS, &dev, 64, &d);
        OK(p.total(MemKind::SCRATCH) == 400 + 28 && p.total(MemKind::KV_CACHE) == 40 && p.host_total() == 1000 + 428 + 40 + 5000);
        OK(p.device_total() == 256 && p.total(MemKind::ACTIVATIONS) == 0);
        MemoryPlan mp = p.plan();
        OK(mp.resident == 1000 && mp.scratch == 428 && mp.kv_cache == 40 && mp.io_buffers == 5000 && mp.device == 256 &&
              mp.total() == p.host_total() && mp.entries.size() == 6);
        OK(a == nullptr);  // nothing allocated before allocate()
        OK(p.allocate().is_ok());
        OK(a && b && io && h && d && (uintptr_t)io % 4096 == 0 && (uintptr_t)a % 64 == 0);
        bool zero = true;
        for (int i = 0; i < 100; ++i) zero &= a[i] == 0.f;
        for (int i = 0; i < 7; ++i) zero &= h[i] == 0;
        OK(zero);
        float* more = nullptr;
        float* a_before = a;
        p.add("more", MemKind::SCRATCH, &cpu, 3, &more);
        p.forget(MemKind::SCRATCH);  // drops only what is not yet allocated
        OK(p.total(MemKind::SCRATCH) == 428);
        p.add("more", MemKind::SCRATCH, &cpu, 3, &more);
        OK(p.allocate().is_ok() && more && a == a_before && p.total(MemKind::SCRATCH) == 440);
    }
    {
        Planner p;
        float* huge = nullptr;
        p.add("huge", MemKind::SCRATCH, &cpu, int64_t(1) << 58, &huge);  // 1 EiB: refused, not thrown
        Status st = p.allocate();
        OK(st.code == Code::OUT_OF_MEMORY && st.msg.find("huge") != std::string::npos && huge == nullptr);
    }
#undef OK
    check(ok, "planner: totals, device terms, binding, alignment, zero-fill, forget, re-allocate, OOM status");
}

}  // namespace

int main(int argc, char** argv) {
    const char* only = nullptr;
    for (int i = 1; i < argc; ++i) {
        if (std::strcmp(argv[i], "--level") == 0 && i + 1 < argc) {
            only = argv[++i];
        } else {
            std::fprintf(stderr, "usage: edge_test_backend [--level NAME]\n");
            return 2;
        }
    }
    const char* names[16];
    const int n = kernels_levels(names, 16);
    for (int li = 0; li < n; ++li) {
        if (only && std::strcmp(only, names[li]) != 0) continue;
        const KernelTable* kt = kernels_for(names[li]);
        std::vector<float> bits[2];
        for (int ti = 0; ti < 2; ++ti) {
            CpuBackend be(kt, ti == 0 ? 1 : 3);
            Planner scratch;  // the backend's own scratch comes from a planner, as in a model
            StepShape shape;
            shape.tokens = 32, shape.ctx = 64, shape.max_width = 128, shape.max_rank = 8, shape.n_experts = 6, shape.n_used = 2;
            be.plan_scratch(shape, &scratch);
            if (!scratch.allocate().is_ok()) return 1;
            Rng rng{42};
            std::string tag = std::string(names[li]) + (ti == 0 ? " 1 thread" : " 3 threads");
            test_matmul(be, tag.c_str(), rng, &bits[ti]);
            test_elementwise(be, tag.c_str(), rng, &bits[ti]);
            test_attention(be, tag.c_str(), rng, &bits[ti]);
            test_moe(be, tag.c_str(), rng);
        }
        check(bits[0].size() == bits[1].size() && std::memcmp(bits[0].data(), bits[1].data(), bits[0].size() * sizeof(float)) == 0,
              std::string(names[li]) + ": 1 and 3 threads give the same bits");
        std::printf("level %s: checked\n", names[li]);
    }
    test_planner(kernels_for("ref"));
    std::printf("%d passed, %d failed\n", g_pass, g_fail);
    return g_fail ? 1 : 0;
}
