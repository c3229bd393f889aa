// test_kivi_cases.h — edge_test_kernels' checks of attention_kivi4 / attention_kivi2 and of their blocked (prefill)
// forms attention_block_kivi4 / _kivi2 (kernels.h), included by test_kernels.cpp. A KIVI cache view (KiviCache:
// the sink group, quantized groups, a ring that may wrap, unused ring slots NaN, V rows with a stride) is built
// from random K (per-channel offsets, as real K has) and V, and every level is checked against float64 attention
// on the dequantized cache within the declared bound |Δout| <= 1e-5 · Vmax · max(1, S) (kernels.h
// attention_kivi_fn), per query (per row for the blocked form, over its own range).
// Per token: n_pos 1, 31, 32, 33, 127, 128, 129, 1000, head_dim 32, 64, 96, n_quant from 0 to the most whole groups,
// p_begin 0 / inside a group / inside the ring, with and without the sink group (a large first position) and K
// outlier channels (kernels.h KiviOutlier: chosen by kv_kivi_outlier_channels from channels made large),
// unaligned q / scratch / out; with nothing quantized and no wrap each level must equal its own attention_f16 bit
// for bit. Blocked: blocks of n_tok tokens × n_head heads with the model's ranges (causal end, window start),
// every row also within the bound of the same level's per-token kernel, the block split in two calls bit for bit
// (rows never depend on their block-mates), unaligned q / out with row strides past the block, canaries.
#pragma once

#include "backend/backend.h"
#include "backend/cpu/float_ops.h"

namespace edge {
namespace test {

template <class B>
struct KiviCache {
    static constexpr int levels = KiviBits<B>::levels;
    int64_t Dh, n_pos, n_quant, ring, vr_stride, ns, n_out;
    std::vector<float> kd, vd;  // the dequantized cache, [n_pos][Dh]
    std::vector<B> kq, vq;
    std::vector<KiviOutlier> ko;
    std::vector<uint16_t> ksink, vsink, kr, vr;
    KiviHead c;

    KiviCache(Rng& g, int64_t Dh_, int64_t n_pos_, int64_t n_quant_, int64_t ring_, bool sink, int64_t n_out_ = 0)
        : Dh(Dh_), n_pos(n_pos_), n_quant(n_quant_), ring(ring_), vr_stride(Dh_ + 3), ns(sink ? kKiviGroup : 0), n_out(n_out_) {
        const int64_t nb = Dh / kKiviGroup, groups = n_quant / kKiviGroup, g0 = ns / kKiviGroup;
        kd.resize((size_t)(n_pos * Dh)), vd.resize((size_t)(n_pos * Dh));
        kq.resize((size_t)((groups - g0) * Dh + 1)), vq.resize((size_t)((n_quant - ns) * nb + 1));
        ko.resize((size_t)((groups - g0) * n_out + 1));
        ksink.assign((size_t)(ns * Dh), 0), vsink.assign((size_t)(ns * vr_stride), 0x7e00);
        kr.assign((size_t)(ring * Dh), 0x7e00), vr.assign((size_t)(ring * vr_stride), 0x7e00);  // unused: NaN
        const float ks = 2.0f / std::sqrt((float)Dh);
        std::vector<float> kraw((size_t)(n_pos * Dh)), vraw((size_t)(n_pos * Dh)), x(kKiviGroup);
        for (int64_t i = 0; i < Dh; ++i) {
            const float off = g.sym(ks);  // a per-channel offset, as real K has
            for (int64_t p = 0; p < n_pos; ++p) kraw[(size_t)(p * Dh + i)] = off + g.sym(ks);
        }
        for (auto& e : vraw) e = g.sym(4.0f);
        if (n_out)  // a few channels of large magnitude, as real K has (the outliers' candidates)
            for (int64_t k = 0; k < n_out + 1; ++k) {
                const int64_t i = g.range(0, (int)Dh - 1);
                for (int64_t p = 0; p < n_pos; ++p) kraw[(size_t)(p * Dh + i)] *= 6.0f;
            }
        if (sink)  // the attention sink the model makes: a large first position
            for (int64_t i = 0; i < Dh; ++i) kraw[(size_t)i] *= 20.0f, vraw[(size_t)i] *= 8.0f;
        std::vector<float> xg((size_t)(Dh * kKiviGroup));
        for (int64_t gi = g0; gi < groups; ++gi) {  // as kivi_cache.cpp: from the f16 values, outliers kept in f16
            for (int64_t i = 0; i < Dh; ++i)
                for (int64_t j = 0; j < kKiviGroup; ++j)
                    xg[(size_t)(i * kKiviGroup + j)] = f16_to_f32(f32_to_f16(kraw[(size_t)((gi * kKiviGroup + j) * Dh + i)]));
            kv_quantize_kivi_k_group(xg.data(), Dh, n_out, &kq[(size_t)((gi - g0) * Dh)], &ko[(size_t)((gi - g0) * n_out)]);
            for (int64_t i = 0; i < Dh; ++i)
                for (int64_t j = 0; j < kKiviGroup; ++j) kd[(size_t)((gi * kKiviGroup + j) * Dh + i)] = lane(kq[(size_t)((gi - g0) * Dh + i)], j);
            for (int64_t o = 0; o < n_out; ++o) {  // an outlier channel: its f16 values, its block all zero
                const KiviOutlier& e = ko[(size_t)((gi - g0) * n_out + o)];
                for (int64_t j = 0; j < kKiviGroup; ++j) kd[(size_t)((gi * kKiviGroup + j) * Dh + e.ch)] = f16_to_f32(e.v[j]);
            }
        }
        for (int64_t p = 0; p < ns; ++p)
            for (int64_t i = 0; i < Dh; ++i) {
                uint16_t& kh = ksink[(size_t)((p / kKTile) * kKTile * Dh + i * kKTile + p % kKTile)];
                kh = f32_to_f16(kraw[(size_t)(p * Dh + i)]);
                kd[(size_t)(p * Dh + i)] = f16_to_f32(kh);
                uint16_t& vh = vsink[(size_t)(p * vr_stride + i)];
                vh = f32_to_f16(vraw[(size_t)(p * Dh + i)]);
                vd[(size_t)(p * Dh + i)] = f16_to_f32(vh);
            }
        for (int64_t p = ns; p < n_quant; ++p)
            for (int64_t cb = 0; cb < nb; ++cb) {
                B& b = vq[(size_t)((p - ns) * nb + cb)];
                quant(vraw.data() + p * Dh + cb * kKiviGroup, &b);
                for (int64_t j = 0; j < kKiviGroup; ++j) vd[(size_t)(p * Dh + cb * kKiviGroup + j)] = lane(b, j);
            }
        for (int64_t p = n_quant; p < n_pos; ++p) {
            const int64_t s = p % ring;  // the ring's slot of p (wraps where n_quant % ring + the residual > ring)
            for (int64_t i = 0; i < Dh; ++i) {
                uint16_t& kh = kr[(size_t)((s / kKTile) * kKTile * Dh + i * kKTile + s % kKTile)];
                kh = f32_to_f16(kraw[(size_t)(p * Dh + i)]);
                kd[(size_t)(p * Dh + i)] = f16_to_f32(kh);
                uint16_t& vh = vr[(size_t)(s * vr_stride + i)];
                vh = f32_to_f16(vraw[(size_t)(p * Dh + i)]);
                vd[(size_t)(p * Dh + i)] = f16_to_f32(vh);
            }
        }
        c.kq = kq.data();
        c.vq = vq.data();
        c.vq_stride = nb;
        c.n_quant = n_quant;
        c.kr = kr.data();
        c.vr = vr.data();
        c.vr_stride = vr_stride;
        c.ring = ring;
        c.ks = sink ? ksink.data() : nullptr;
        c.vs = sink ? vsink.data() : nullptr;
        c.n_sink = ns;
        c.ko = n_out ? ko.data() : nullptr;
        c.n_out = n_out;
    }
    static float lane(const B& b, int64_t j) {
        const int k = (int)(j / 8);
        const int code = (b.qs[KiviBits<B>::off(k) + j % 8] >> KiviBits<B>::shift(k)) & KiviBits<B>::mask;
        return f16_to_f32(b.d) * (float)code + f16_to_f32(b.m);
    }
    static void quant(const float* v, B* b) {
        if constexpr (sizeof(B) == sizeof(block_kivi4)) kv_quantize_kivi4(v, b);
        else kv_quantize_kivi2(v, b);
    }
    // kernels.h's bound for query q over positions [pb, pe): 1e-5 · Vmax · max(1, S)
    double bound(const float* q, int64_t pb, int64_t pe) const {
        double S = 0, vmax = 0;
        for (int64_t p = pb; p < pe; ++p) {
            if (p >= ns && p < n_quant) {
                for (int64_t cb = 0; cb < Dh / kKiviGroup; ++cb) {
                    const B& b = vq[(size_t)((p - ns) * (Dh / kKiviGroup) + cb)];
                    vmax = std::max(vmax, (double)std::fabs(f16_to_f32(b.d)) * levels + std::fabs(f16_to_f32(b.m)));
                }
                if (p % kKiviGroup && p != pb) continue;  // S: once per group
                double s = 0;
                const int64_t gg = p / kKiviGroup - ns / kKiviGroup;
                for (int64_t i = 0; i < Dh; ++i) {
                    const B& b = kq[(size_t)(gg * Dh + i)];
                    s += std::fabs(q[i]) * (std::fabs(f16_to_f32(b.d)) * levels + std::fabs(f16_to_f32(b.m)));
                }
                for (int64_t o = 0; o < n_out; ++o) {  // an outlier channel: its f16 values' magnitude
                    const KiviOutlier& e = ko[(size_t)(gg * n_out + o)];
                    double vm = 0;
                    for (int64_t j = 0; j < kKiviGroup; ++j) vm = std::max(vm, (double)std::fabs(f16_to_f32(e.v[j])));
                    s += std::fabs(q[e.ch]) * vm;
                }
                S = std::max(S, s / std::sqrt((double)Dh));
            } else {
                for (int64_t i = 0; i < Dh; ++i) vmax = std::max(vmax, (double)std::fabs(vd[(size_t)(p * Dh + i)]));
            }
        }
        return 1e-5 * vmax * std::max(1.0, S);
    }
    // float64 attention of q over [pb, pe) of the dequantized cache into want[Dh]
    void attend64(const float* q, int64_t pb, int64_t pe, double* want) const {
        std::vector<double> s((size_t)pe);
        double m = -INFINITY, sum = 0;
        for (int64_t p = pb; p < pe; ++p) {
            double d = 0;
            for (int64_t i = 0; i < Dh; ++i) d += (double)q[i] * kd[(size_t)(p * Dh + i)];
            s[(size_t)p] = d / std::sqrt((double)Dh);
            m = std::max(m, s[(size_t)p]);
        }
        for (int64_t p = pb; p < pe; ++p) sum += (s[(size_t)p] = std::exp(s[(size_t)p] - m));
        for (int64_t i = 0; i < Dh; ++i) want[i] = 0;
        for (int64_t p = pb; p < pe; ++p)
            for (int64_t i = 0; i < Dh; ++i) want[i] += s[(size_t)p] / sum * vd[(size_t)(p * Dh + i)];
    }
};

template <class B>
void kivi_case(Rng& g, int64_t Dh, int64_t n_pos, int64_t n_quant, int64_t p_begin, int64_t ring, bool sink, int64_t n_out) {
    const char* name = KiviBits<B>::levels == 15 ? "attention_kivi4" : "attention_kivi2";
    std::vector<float> q((size_t)Dh + 1);
    float* qp = q.data() + 1;
    for (int64_t i = 0; i < Dh; ++i) qp[i] = g.sym(3.0f);
    const KiviCache<B> kc(g, Dh, n_pos, n_quant, ring, sink, n_out);
    std::vector<double> want((size_t)Dh);
    kc.attend64(qp, p_begin, n_pos, want.data());
    const double bound = kc.bound(qp, p_begin, n_pos);
    const bool plain = n_quant == 0 && n_pos <= ring;
    for_each_distinct(KiviBits<B>::levels == 15 ? &KernelTable::attention_kivi4 : &KernelTable::attention_kivi2, [&](LevelRun& L, attention_kivi_fn f) {
        std::vector<float> scratch((size_t)n_pos + 9, -7.0f), out((size_t)Dh + 9, -7.0f);
        f(qp, kc.c, p_begin, n_pos, Dh, scratch.data() + 1, out.data() + 1);
        if (scratch[0] != -7.0f || scratch[(size_t)n_pos + 1] != -7.0f) fail(L, "%s n_pos=%" PRId64 ": wrote outside scratch", name, n_pos);
        if (out[0] != -7.0f || out[(size_t)Dh + 1] != -7.0f) fail(L, "%s Dh=%" PRId64 ": wrote outside out", name, Dh);
        for (int64_t i = 0; i < Dh; ++i) {
            const double err = std::fabs((double)out[(size_t)i + 1] - want[(size_t)i]);
            if (!(err <= bound)) {
                fail(L, "%s Dh=%" PRId64 " n_pos=%" PRId64 " n_quant=%" PRId64 " p_begin=%" PRId64 " ring=%" PRId64
                        " sink=%d n_out=%" PRId64 ": out[%" PRId64 "] = %.9g, float64 %.9g, |d| = %.3g > %.3g",
                     name, Dh, n_pos, n_quant, p_begin, ring, (int)sink, n_out, i, out[(size_t)i + 1], want[(size_t)i], err, bound);
                break;
            }
        }
        if (plain) {  // nothing quantized, no wrap: this level's attention_f16, bit for bit
            std::vector<float> s2((size_t)n_pos), o2((size_t)Dh);
            L.t->attention_f16.fn(qp, kc.kr.data(), kc.vr.data(), kc.vr_stride, p_begin, n_pos, Dh, s2.data(), o2.data());
            if (std::memcmp(o2.data(), out.data() + 1, (size_t)Dh * 4))
                fail(L, "%s Dh=%" PRId64 " n_pos=%" PRId64 ": not attention_f16 bit for bit", name, Dh, n_pos);
        }
        L.checks++;
    });
}

void test_attention_kivi(Rng& g) {
    const int64_t dims[] = {32, 64, 96};
    const int64_t npos_list[] = {1, 31, 32, 33, 127, 128, 129, 1000};
    for (int64_t Dh : dims)
        for (int64_t n_pos : npos_list) {
            if (Dh != 64 && n_pos == 1000) continue;
            std::vector<int64_t> quants = {0};
            for (int64_t nq : {(int64_t)32, n_pos / 2 / 32 * 32, n_pos / 32 * 32})
                if (nq > 0 && nq <= n_pos && std::find(quants.begin(), quants.end(), nq) == quants.end()) quants.push_back(nq);
            for (int64_t nq : quants) {
                const int64_t res = n_pos - nq, tight = std::max<int64_t>(kKTile, (res + kKTile - 1) / kKTile * kKTile);
                for (int64_t ring : {tight, tight + 48}) {
                    std::vector<int64_t> begins = {0};
                    if (n_pos > 1) begins.push_back(n_pos - 1 - (n_pos - 1) % 7);  // inside the ring (or a group)
                    if (nq > 40) begins.push_back(37);                              // inside a quantized group
                    for (int64_t pb : begins) {
                        for (bool sink : {false, true}) {
                            // the sink cases on one ring and not from inside the ring (qemu's time in CI)
                            if (sink && (nq == 0 || ring != tight || pb >= nq)) continue;
                            kivi_case<block_kivi4>(g, Dh, n_pos, nq, pb, ring, sink, 0);
                            kivi_case<block_kivi2>(g, Dh, n_pos, nq, pb, ring, sink, 0);
                            if (nq == 0 || ring != tight) continue;  // K outlier channels (kivi2's, any count)
                            kivi_case<block_kivi2>(g, Dh, n_pos, nq, pb, ring, sink, kKiviOutliers2);
                            kivi_case<block_kivi4>(g, Dh, n_pos, nq, pb, ring, sink, 3);
                        }
                    }
                }
            }
        }
}

// ---------------------------------------------------------------- blocked (prefill) form

struct KiviBlockCase {
    int64_t n_tok, n_head, Dh, pos0, n_quant, ring_extra, window;
    bool sink;
    int64_t n_out;  // K outlier channels per group
};

template <class B>
void kivi_block_case(Rng& g, const KiviBlockCase& bc) {
    const bool k4 = KiviBits<B>::levels == 15;
    const char* name = k4 ? "attention_block_kivi4" : "attention_block_kivi2";
    const int64_t Dh = bc.Dh, n_tok = bc.n_tok, n_head = bc.n_head, R = n_tok * n_head, hi = bc.pos0 + n_tok;
    const int64_t tight = (hi - bc.n_quant + kKTile - 1) / kKTile * kKTile, ring = tight + bc.ring_extra;
    std::vector<int64_t> pb((size_t)n_tok), pe((size_t)n_tok);
    for (int64_t t = 0; t < n_tok; ++t) {
        const int64_t pos = bc.pos0 + t;
        pb[(size_t)t] = bc.window > 0 ? std::max<int64_t>(0, pos - bc.window + 1) : 0;
        pe[(size_t)t] = pos + 1;
    }
    const int64_t q_stride = n_head * Dh + g.range(0, 5), o_stride = n_head * Dh + g.range(0, 5);
    std::vector<float> qv((size_t)(n_tok * q_stride) + 1);
    float* qp = qv.data() + 1;  // 4 bytes past the allocation's alignment
    for (auto& x : qv) x = g.sym(3.0f);
    const KiviCache<B> kc(g, Dh, hi, bc.n_quant, ring, bc.sink, bc.n_out);
    auto qr = [&](int64_t r) { return qp + (r / n_head) * q_stride + (r % n_head) * Dh; };
    std::vector<double> want((size_t)(R * Dh)), bound((size_t)R);
    for (int64_t r = 0; r < R; ++r) {
        const int64_t t = r / n_head;
        kc.attend64(qr(r), pb[(size_t)t], pe[(size_t)t], want.data() + r * Dh);
        bound[(size_t)r] = kc.bound(qr(r), pb[(size_t)t], pe[(size_t)t]);
    }
    auto run = [&](attention_block_kivi_fn fn, int64_t t0, int64_t t1, std::vector<float>& out) {
        std::vector<float> scratch((size_t)((t1 - t0) * n_head * kAttnBlockRowFloats + kAttnBlockKiviTileFloats * Dh) + 2, -7.0f);
        fn(qp + t0 * q_stride, q_stride, t1 - t0, n_head, pb.data() + t0, pe.data() + t0, kc.c, Dh, scratch.data() + 1,
           out.data() + 1 + t0 * o_stride, o_stride);
        return scratch.front() == -7.0f && scratch.back() == -7.0f;
    };
    for_each_distinct(k4 ? &KernelTable::attention_block_kivi4 : &KernelTable::attention_block_kivi2, [&](LevelRun& L, attention_block_kivi_fn f) {
        const size_t on = (size_t)(n_tok * o_stride) + 2;
        std::vector<float> out(on, -7.0f), split(on, -7.0f);
        bool ok = run(f, 0, n_tok, out);
        const int64_t mid = n_tok / 2;
        if (mid > 0) ok = run(f, 0, mid, split) && ok;
        ok = run(f, mid, n_tok, split) && ok;
        if (!ok) fail(L, "%s Dh=%" PRId64 " n_tok=%" PRId64 ": wrote outside scratch", name, Dh, n_tok);
        if (out.front() != -7.0f || out.back() != -7.0f) fail(L, "%s n_tok=%" PRId64 ": wrote outside out", name, n_tok);
        for (int64_t t = 0; t < n_tok; ++t)
            for (int64_t i = n_head * Dh; i < o_stride; ++i)
                if (out[(size_t)(1 + t * o_stride + i)] != -7.0f) {
                    fail(L, "%s: wrote into the gap between out rows", name);
                    t = n_tok;
                    break;
                }
        const attention_kivi_fn one = (L.t->*(k4 ? &KernelTable::attention_kivi4 : &KernelTable::attention_kivi2)).fn;
        std::vector<float> sc((size_t)hi), o1((size_t)Dh);
        for (int64_t r = 0; r < R; ++r) {
            const int64_t t = r / n_head, h = r % n_head;
            one(qr(r), kc.c, pb[(size_t)t], pe[(size_t)t], Dh, sc.data(), o1.data());  // this level's per-token form
            for (int64_t i = 0; i < Dh; ++i) {
                const size_t k = (size_t)(1 + t * o_stride + h * Dh + i);
                const double err = std::fabs((double)out[k] - want[(size_t)(r * Dh + i)]);
                const double err1 = std::fabs((double)out[k] - o1[(size_t)i]);
                if (!(err <= bound[(size_t)r]) || !(err1 <= bound[(size_t)r])) {
                    fail(L, "%s Dh=%" PRId64 " n_tok=%" PRId64 " n_head=%" PRId64 " pos0=%" PRId64 " n_quant=%" PRId64
                            " ring=%" PRId64 " window=%" PRId64 " sink=%d n_out=%" PRId64 ": row %" PRId64 " out[%" PRId64
                            "] = %.9g, float64 %.9g, per-token %.9g, bound %.3g",
                         name, Dh, n_tok, n_head, bc.pos0, bc.n_quant, ring, bc.window, (int)bc.sink, bc.n_out, r, i, out[k],
                         want[(size_t)(r * Dh + i)], o1[(size_t)i], bound[(size_t)r]);
                    return;
                }
                if (split[k] != out[k]) {
                    fail(L, "%s Dh=%" PRId64 " n_tok=%" PRId64 " row %" PRId64 ": split block %.9g != %.9g", name, Dh, n_tok, r,
                         split[k], out[k]);
                    return;
                }
            }
        }
        if (bc.n_quant == 0 && hi <= ring && L.name == "ref") {  // the reference is attention_block_f16_ref, bit for bit
            std::vector<float> o2(on, -7.0f), s2((size_t)(R * kAttnBlockRowFloats));
            L.t->attention_block_f16.fn(qp, q_stride, n_tok, n_head, pb.data(), pe.data(), kc.kr.data(), kc.vr.data(), kc.vr_stride,
                                        Dh, s2.data(), o2.data() + 1, o_stride);
            if (o2 != out) fail(L, "%s: not attention_block_f16_ref bit for bit with nothing quantized", name);
        }
        L.checks++;
    });
}

void test_attention_block_kivi(Rng& g) {
    const KiviBlockCase cases[] = {
        {16, 3, 64, 1000, 864, 0, 0, true, 4}, {16, 3, 64, 1000, 864, 48, 0, true, 0}, {7, 2, 32, 200, 64, 0, 0, false, 3},
        {32, 1, 64, 300, 160, 16, 0, true, 0}, {1, 1, 64, 40, 32, 0, 0, true, 4},      {5, 4, 96, 130, 96, 0, 0, false, 1},
        {9, 3, 64, 400, 256, 0, 100, true, 4}, {3, 2, 128, 70, 32, 32, 20, true, 0},   {16, 3, 64, 100, 0, 16, 0, false, 4},
        {21, 3, 64, 530, 384, 0, 0, true, 4},  {2, 9, 32, 33, 32, 0, 0, true, 0},      {11, 1, 32, 45, 32, 0, 7, false, 2},
        {16, 3, 64, 530, 384, 0, 0, true, 0},
    };
    for (const KiviBlockCase& c : cases) {
        kivi_block_case<block_kivi4>(g, c);
        kivi_block_case<block_kivi2>(g, c);
    }
}

}  // namespace test
}  // namespace edge
