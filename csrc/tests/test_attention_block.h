// test_attention_block.h — edge_test_kernels' checks of the blocked (prefill) attention slots
// (attention_block / _f16 / _q8, kernels.h), included by test_kernels.cpp only.
//
// Every level vs float64 attention on the cache as stored (f16 converted, int8 codes times their scale),
// row by row: |Δout| <= 1e-5 · max_p ||V_p||_inf over the row's range (kernels.h). Blocks of n_tok tokens ×
// n_head heads with the model's ranges (causal end pos + 1, window start), n_pos up to ~1000, head_dim 1 ..
// 256, unaligned q / out with row strides past the block, K lanes outside the union range NaN (f32 / f16;
// every V row outside it NaN), canaries around scratch and out. And two identities the backend relies on,
// each bit for bit per level: the block split into two calls (rows never depend on their block-mates) and
// the cache shifted by whole tiles (a ring's slot space gives the full cache's bits).
#pragma once

#include <algorithm>
#include <cinttypes>
#include <cmath>
#include <cstring>
#include <vector>

#include "common.h"
#include "kernels/kernels.h"
#include "test_levels.h"
#include "test_util.h"

namespace edge {
namespace test {

struct BlockCase {
    int64_t n_tok, n_head, Dh, pos0, window;
};

template <class T>
void block_case(Rng& g, const BlockCase& bc) {
    const int64_t Dh = bc.Dh, n_tok = bc.n_tok, n_head = bc.n_head, R = n_tok * n_head;
    std::vector<int64_t> pb((size_t)n_tok), pe((size_t)n_tok);
    for (int64_t t = 0; t < n_tok; ++t) {
        const int64_t pos = bc.pos0 + t;
        pb[(size_t)t] = bc.window > 0 ? std::max<int64_t>(0, pos - bc.window + 1) : 0;
        pe[(size_t)t] = pos + 1;
    }
    const int64_t lo = pb[0], hi = pe[(size_t)n_tok - 1];
    const int64_t shift = 2 * kKTile, n_slots = (hi + shift + kKTile - 1) / kKTile * kKTile + kKTile;
    const int64_t v_stride = Dh + g.range(0, 3), q_stride = n_head * Dh + g.range(0, 5), o_stride = n_head * Dh + g.range(0, 5);
    // the cache as stored (codes) and as values (kd, vd: positions 0..hi)
    const float nanf = std::nanf("");
    std::vector<float> kd((size_t)(hi * Dh)), vd((size_t)(hi * Dh)), ks((size_t)n_slots, nanf), vs((size_t)n_slots, nanf);
    std::vector<T> kt((size_t)(n_slots * Dh)), v((size_t)(n_slots * v_stride));
    T nan_code;
    if constexpr (sizeof(T) == 4) nan_code = nanf;
    else if constexpr (sizeof(T) == 2) nan_code = (T)0x7e00;
    else nan_code = (T)0;
    std::fill(kt.begin(), kt.end(), nan_code);
    std::fill(v.begin(), v.end(), nan_code);
    const float qs = 2.0f / std::sqrt((float)Dh);
    for (int64_t p = lo; p < hi; ++p) {
        const float dk = 0.01f + g.sym(0.005f) + 0.005f, dv = 0.03f + g.sym(0.01f) + 0.01f;
        ks[(size_t)p] = dk, vs[(size_t)p] = dv;
        for (int64_t i = 0; i < Dh; ++i) {
            T kc, vc;
            float kx, vx;
            if constexpr (sizeof(T) == 4) kc = kx = g.sym(qs), vc = vx = g.sym(4.0f);
            else if constexpr (sizeof(T) == 2) {
                kc = f32_to_f16(g.sym(qs)), vc = f32_to_f16(g.sym(4.0f));
                kx = f16_to_f32(kc), vx = f16_to_f32(vc);
            } else {
                kc = (T)g.range(-127, 127), vc = (T)g.range(-127, 127);
                kx = dk * (float)kc, vx = dv * (float)vc;
            }
            kt[(size_t)((p / kKTile) * kKTile * Dh + i * kKTile + p % kKTile)] = kc;
            v[(size_t)(p * v_stride + i)] = vc;
            kd[(size_t)(p * Dh + i)] = kx, vd[(size_t)(p * Dh + i)] = vx;
        }
    }
    // the same cache `shift` slots later (whole tiles)
    std::vector<T> kt2((size_t)(n_slots * Dh), nan_code), v2((size_t)(n_slots * v_stride), nan_code);
    std::vector<float> ks2((size_t)n_slots, nanf), vs2((size_t)n_slots, nanf);
    std::copy(kt.begin(), kt.end() - shift * Dh, kt2.begin() + shift * Dh);
    std::copy(v.begin(), v.end() - shift * v_stride, v2.begin() + shift * v_stride);
    std::copy(ks.begin(), ks.end() - shift, ks2.begin() + shift);
    std::copy(vs.begin(), vs.end() - shift, vs2.begin() + shift);
    std::vector<int64_t> pb2(pb), pe2(pe);
    for (int64_t t = 0; t < n_tok; ++t) pb2[(size_t)t] += shift, pe2[(size_t)t] += shift;
    std::vector<float> qv((size_t)(n_tok * q_stride) + 1);
    float* qp = qv.data() + 1;  // 4 bytes past the allocation's alignment
    for (auto& x : qv) x = g.sym(3.0f);
    // float64 per row
    std::vector<double> want((size_t)(R * Dh)), bound((size_t)R);
    for (int64_t r = 0; r < R; ++r) {
        const int64_t t = r / n_head, h = r % n_head;
        const float* qr = qp + t * q_stride + h * Dh;
        std::vector<double> s((size_t)hi);
        double m = -INFINITY, sum = 0, vmax = 0;
        for (int64_t p = pb[(size_t)t]; p < pe[(size_t)t]; ++p) {
            double d = 0;
            for (int64_t i = 0; i < Dh; ++i) d += (double)qr[i] * kd[(size_t)(p * Dh + i)];
            s[(size_t)p] = d / std::sqrt((double)Dh);
            m = std::max(m, s[(size_t)p]);
            for (int64_t i = 0; i < Dh; ++i) vmax = std::max(vmax, std::fabs((double)vd[(size_t)(p * Dh + i)]));
        }
        for (int64_t p = pb[(size_t)t]; p < pe[(size_t)t]; ++p) sum += (s[(size_t)p] = std::exp(s[(size_t)p] - m));
        for (int64_t p = pb[(size_t)t]; p < pe[(size_t)t]; ++p)
            for (int64_t i = 0; i < Dh; ++i) want[(size_t)(r * Dh + i)] += s[(size_t)p] / sum * vd[(size_t)(p * Dh + i)];
        bound[(size_t)r] = 1e-5 * vmax;
    }
    // calls fn on tokens [t0, t1) of (cache c, ranges b/e); out has o_stride per token, canaries around it
    auto run = [&](auto fn, int64_t t0, int64_t t1, const T* ktp, const T* vp, const float* ksp, const float* vsp,
                   const int64_t* b, const int64_t* e, std::vector<float>& out) {
        const int64_t rows = (t1 - t0) * n_head;
        std::vector<float> scratch((size_t)(rows * kAttnBlockRowFloats) + 2, -7.0f);
        float* op = out.data() + 1 + t0 * o_stride;
        if constexpr (sizeof(T) == 1)
            fn(qp + t0 * q_stride, q_stride, t1 - t0, n_head, b + t0, e + t0, ktp, ksp, vp, vsp, v_stride, Dh, scratch.data() + 1, op, o_stride);
        else
            fn(qp + t0 * q_stride, q_stride, t1 - t0, n_head, b + t0, e + t0, ktp, vp, v_stride, Dh, scratch.data() + 1, op, o_stride);
        return scratch.front() == -7.0f && scratch.back() == -7.0f;
    };
    auto check = [&](LevelRun& L, const char* name, auto fn) {
        const size_t on = (size_t)(n_tok * o_stride) + 2;
        std::vector<float> out(on, -7.0f), split(on, -7.0f), shifted(on, -7.0f);
        bool ok = run(fn, 0, n_tok, kt.data(), v.data(), ks.data(), vs.data(), pb.data(), pe.data(), out);
        const int64_t mid = n_tok / 2;
        if (mid > 0) ok = run(fn, 0, mid, kt.data(), v.data(), ks.data(), vs.data(), pb.data(), pe.data(), split) && ok;
        ok = run(fn, mid, n_tok, kt.data(), v.data(), ks.data(), vs.data(), pb.data(), pe.data(), split) && ok;
        ok = run(fn, 0, n_tok, kt2.data(), v2.data(), ks2.data(), vs2.data(), pb2.data(), pe2.data(), shifted) && ok;
        if (!ok) fail(L, "%s Dh=%" PRId64 " n_tok=%" PRId64 ": wrote outside scratch", name, Dh, n_tok);
        if (out.front() != -7.0f || out.back() != -7.0f) fail(L, "%s Dh=%" PRId64 " n_tok=%" PRId64 ": wrote outside out", name, Dh, n_tok);
        for (int64_t t = 0; t < n_tok; ++t)
            for (int64_t i = n_head * Dh; i < o_stride; ++i)
                if (out[(size_t)(1 + t * o_stride + i)] != -7.0f) {
                    fail(L, "%s: wrote into the gap between out rows", name);
                    t = n_tok;
                    break;
                }
        for (int64_t r = 0; r < R; ++r) {
            const int64_t t = r / n_head, h = r % n_head;
            for (int64_t i = 0; i < Dh; ++i) {
                const size_t k = (size_t)(1 + t * o_stride + h * Dh + i);
                const double err = std::fabs((double)out[k] - want[(size_t)(r * Dh + i)]);
                if (!(err <= bound[(size_t)r])) {
                    fail(L, "%s Dh=%" PRId64 " n_tok=%" PRId64 " n_head=%" PRId64 " pos0=%" PRId64 " window=%" PRId64
                         ": row %" PRId64 " out[%" PRId64 "] = %.9g, float64 %.9g, |d| = %.3g > %.3g",
                         name, Dh, n_tok, n_head, bc.pos0, bc.window, r, i, out[k], want[(size_t)(r * Dh + i)], err, bound[(size_t)r]);
                    return;
                }
                if (split[k] != out[k] || shifted[k] != out[k]) {
                    fail(L, "%s Dh=%" PRId64 " n_tok=%" PRId64 " row %" PRId64 ": %s %.9g != %.9g", name, Dh, n_tok, r,
                         split[k] != out[k] ? "split block" : "shifted cache", split[k] != out[k] ? split[k] : shifted[k], out[k]);
                    return;
                }
            }
        }
        L.checks++;
    };
    if constexpr (sizeof(T) == 4) for_each_distinct(&KernelTable::attention_block, [&](LevelRun& L, attention_block_fn f) { check(L, "attention_block", f); });
    else if constexpr (sizeof(T) == 2) for_each_distinct(&KernelTable::attention_block_f16, [&](LevelRun& L, attention_block_f16_fn f) { check(L, "attention_block_f16", f); });
    else for_each_distinct(&KernelTable::attention_block_q8, [&](LevelRun& L, attention_block_q8_fn f) { check(L, "attention_block_q8", f); });
}

inline void test_attention_block(Rng& g) {
    const BlockCase cases[] = {
        {1, 1, 64, 0, 0},     {1, 3, 64, 37, 0},    {2, 3, 64, 5, 0},      {7, 4, 64, 100, 0},  {16, 3, 64, 984, 0},
        {33, 1, 64, 40, 0},   {33, 3, 64, 950, 0},  {7, 3, 64, 300, 50},   {16, 4, 64, 900, 100}, {33, 1, 64, 20, 7},
        {33, 4, 64, 500, 33}, {5, 3, 1, 30, 0},     {7, 2, 17, 60, 9},     {16, 3, 80, 200, 0}, {3, 4, 128, 70, 20},
        {4, 1, 33, 18, 0},    {2, 3, 256, 40, 0},   {9, 2, 7, 15, 0},      {2, 1, 130, 1, 0},
    };
    for (const BlockCase& c : cases) {
        block_case<float>(g, c);
        block_case<uint16_t>(g, c);
        block_case<int8_t>(g, c);
    }
}

}  // namespace test
}  // namespace edge
