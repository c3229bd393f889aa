// test_kivi_cases.h — edge_test_kernels' check of attention_kivi4 / attention_kivi2 (kernels.h), included by
// test_kernels.cpp. Every level vs float64 attention on the dequantized cache within the declared bound
// |Δout| <= 1e-5 · Vmax · max(1, S) (kernels.h attention_kivi_fn), at n_pos 1, 31, 32, 33, 127, 128, 129, 1000,
// head_dim 32, 64, 96, n_quant from 0 to the most whole groups, p_begin 0 / inside a group / inside the
// ring, rings that wrap, unaligned q / scratch / out, unused ring slots NaN, with and without the sink group
// (KiviHead n_sink: positions 0..31 f16 in their own buffer, a large first position). With nothing quantized
// and no wrap each level must equal its own attention_f16 bit for bit.
#pragma once

#include "backend/cpu/float_ops.h"

namespace edge {
namespace test {

template <class B>
void kivi_case(Rng& g, int64_t Dh, int64_t n_pos, int64_t n_quant, int64_t p_begin, int64_t ring, bool sink) {
    constexpr int levels = KiviBits<B>::levels;
    const char* name = levels == 15 ? "attention_kivi4" : "attention_kivi2";
    const int64_t nb = Dh / kKiviGroup, groups = n_quant / kKiviGroup, g0 = sink ? 1 : 0, ns = g0 * kKiviGroup;
    std::vector<float> q((size_t)Dh + 1), kd((size_t)(n_pos * Dh)), vd((size_t)(n_pos * Dh)), x(kKiviGroup);
    std::vector<B> kq((size_t)((groups - g0) * Dh + 1)), vq((size_t)((n_quant - ns) * nb + 1));
    const int64_t vr_stride = Dh + 3;  // V rows with a stride, as the model's rows of Dkv
    std::vector<uint16_t> ksink((size_t)(ns * Dh)), vsink((size_t)(ns * vr_stride), 0x7e00);
    std::vector<uint16_t> kr((size_t)(ring * Dh), 0x7e00), vr((size_t)(ring * vr_stride), 0x7e00);  // unused: NaN
    float* qp = q.data() + 1;
    for (int64_t i = 0; i < Dh; ++i) qp[i] = g.sym(3.0f);
    const float ks = 2.0f / std::sqrt((float)Dh);
    std::vector<float> kraw((size_t)(n_pos * Dh)), vraw((size_t)(n_pos * Dh));
    for (int64_t i = 0; i < Dh; ++i) {
        const float off = g.sym(ks);  // a per-channel offset, as real K has
        for (int64_t p = 0; p < n_pos; ++p) kraw[(size_t)(p * Dh + i)] = off + g.sym(ks);
    }
    for (auto& e : vraw) e = g.sym(4.0f);
    if (sink)  // the attention sink the model makes: a large first position
        for (int64_t i = 0; i < Dh; ++i) kraw[(size_t)i] *= 20.0f, vraw[(size_t)i] *= 8.0f;
    auto lane = [](const B& b, int64_t j) {
        const int k = (int)(j / 8);
        const int c = (b.qs[KiviBits<B>::off(k) + j % 8] >> KiviBits<B>::shift(k)) & KiviBits<B>::mask;
        return f16_to_f32(b.d) * (float)c + f16_to_f32(b.m);
    };
    auto quant = [](const float* v, B* b) {
        if constexpr (sizeof(B) == sizeof(block_kivi4)) kv_quantize_kivi4(v, b);
        else kv_quantize_kivi2(v, b);
    };
    double S = 0, vmax = 0;
    for (int64_t gi = g0; gi < groups; ++gi)
        for (int64_t i = 0; i < Dh; ++i) {
            const size_t bi = (size_t)((gi - g0) * Dh + i);
            for (int64_t j = 0; j < kKiviGroup; ++j) x[(size_t)j] = kraw[(size_t)((gi * kKiviGroup + j) * Dh + i)];
            quant(x.data(), &kq[bi]);
            for (int64_t j = 0; j < kKiviGroup; ++j) kd[(size_t)((gi * kKiviGroup + j) * Dh + i)] = lane(kq[bi], j);
        }
    for (int64_t p = 0; p < ns; ++p)
        for (int64_t i = 0; i < Dh; ++i) {
            uint16_t& kh = ksink[(size_t)((p / kKTile) * kKTile * Dh + i * kKTile + p % kKTile)];
            kh = f32_to_f16(kraw[(size_t)(p * Dh + i)]);
            kd[(size_t)(p * Dh + i)] = f16_to_f32(kh);
            uint16_t& vh = vsink[(size_t)(p * vr_stride + i)];
            vh = f32_to_f16(vraw[(size_t)(p * Dh + i)]);
            vd[(size_t)(p * Dh + i)] = f16_to_f32(vh);
            if (p >= p_begin) vmax = std::max(vmax, (double)std::fabs(vd[(size_t)(p * Dh + i)]));
        }
    for (int64_t gi = std::max(p_begin, ns) / kKiviGroup; gi < groups; ++gi) {
        double s = 0;
        for (int64_t i = 0; i < Dh; ++i) {
            const B& b = kq[(size_t)((gi - g0) * Dh + i)];
            s += std::fabs(qp[i]) * (std::fabs(f16_to_f32(b.d)) * levels + std::fabs(f16_to_f32(b.m)));
        }
        S = std::max(S, s / std::sqrt((double)Dh));
    }
    for (int64_t p = ns; p < n_quant; ++p)
        for (int64_t c = 0; c < nb; ++c) {
            B& b = vq[(size_t)((p - ns) * nb + c)];
            quant(vraw.data() + p * Dh + c * kKiviGroup, &b);
            for (int64_t j = 0; j < kKiviGroup; ++j) vd[(size_t)(p * Dh + c * kKiviGroup + j)] = lane(b, j);
            if (p >= p_begin) vmax = std::max(vmax, (double)std::fabs(f16_to_f32(b.d)) * levels + std::fabs(f16_to_f32(b.m)));
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
            if (p >= p_begin) vmax = std::max(vmax, (double)std::fabs(vd[(size_t)(p * Dh + i)]));
        }
    }
    std::vector<double> s((size_t)n_pos), want((size_t)Dh, 0.0);
    double m = -INFINITY, sum = 0;
    for (int64_t p = p_begin; p < n_pos; ++p) {
        double d = 0;
        for (int64_t i = 0; i < Dh; ++i) d += (double)qp[i] * kd[(size_t)(p * Dh + i)];
        s[(size_t)p] = d / std::sqrt((double)Dh);
        m = std::max(m, s[(size_t)p]);
    }
    for (int64_t p = p_begin; p < n_pos; ++p) sum += (s[(size_t)p] = std::exp(s[(size_t)p] - m));
    for (int64_t p = p_begin; p < n_pos; ++p)
        for (int64_t i = 0; i < Dh; ++i) want[(size_t)i] += s[(size_t)p] / sum * vd[(size_t)(p * Dh + i)];
    const double bound = 1e-5 * vmax * std::max(1.0, S);
    KiviHead c;
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
    const bool plain = n_quant == 0 && n_pos <= ring;
    for_each_distinct(levels == 15 ? &KernelTable::attention_kivi4 : &KernelTable::attention_kivi2, [&](LevelRun& L, attention_kivi_fn f) {
        std::vector<float> scratch((size_t)n_pos + 9, -7.0f), out((size_t)Dh + 9, -7.0f);
        f(qp, c, p_begin, n_pos, Dh, scratch.data() + 1, out.data() + 1);
        if (scratch[0] != -7.0f || scratch[(size_t)n_pos + 1] != -7.0f) fail(L, "%s n_pos=%" PRId64 ": wrote outside scratch", name, n_pos);
        if (out[0] != -7.0f || out[(size_t)Dh + 1] != -7.0f) fail(L, "%s Dh=%" PRId64 ": wrote outside out", name, Dh);
        for (int64_t i = 0; i < Dh; ++i) {
            const double err = std::fabs((double)out[(size_t)i + 1] - want[(size_t)i]);
            if (!(err <= bound)) {
                fail(L, "%s Dh=%" PRId64 " n_pos=%" PRId64 " n_quant=%" PRId64 " p_begin=%" PRId64 " ring=%" PRId64
                        " sink=%d: out[%" PRId64 "] = %.9g, float64 %.9g, |d| = %.3g > %.3g",
                     name, Dh, n_pos, n_quant, p_begin, ring, (int)sink, i, out[(size_t)i + 1], want[(size_t)i], err, bound);
                break;
            }
        }
        if (plain) {  // nothing quantized, no wrap: this level's attention_f16, bit for bit
            std::vector<float> s2((size_t)n_pos), o2((size_t)Dh);
            L.t->attention_f16.fn(qp, kr.data(), vr.data(), vr_stride, p_begin, n_pos, Dh, s2.data(), o2.data());
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
                            kivi_case<block_kivi4>(g, Dh, n_pos, nq, pb, ring, sink);
                            kivi_case<block_kivi2>(g, Dh, n_pos, nq, pb, ring, sink);
                        }
                    }
                }
            }
        }
}

}  // namespace test
}  // namespace edge
