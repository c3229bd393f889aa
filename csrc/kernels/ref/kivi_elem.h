// kivi_elem.h — one element of a KIVI cache view (kernels.h KiviHead) as the references read it: a code's value
// d · c + m in f32 (the f16 scale and min converted exactly; product, then sum), or the f16 sink / ring element
// converted exactly; a K outlier channel's f16 value added to its (zero) block. Shared by attention_kivi_ref.cpp and attention_block_ref.cpp (one definition of the form).
#pragma once

#include <cstdint>

#include "../../common.h"
#include "../kernels.h"

namespace edge {
namespace kivi_ref {

inline int code(const block_kivi4& b, int64_t j) { return j < 16 ? (b.qs[j] & 15) : (b.qs[j - 16] >> 4); }
inline int code(const block_kivi2& b, int64_t j) { return (b.qs[j % 8] >> (2 * (j / 8))) & 3; }

template <class B>
inline float dequant(const B& b, int64_t j) {
    return f16_to_f32(b.d) * (float)code(b, j) + f16_to_f32(b.m);
}

// K_p[i] of head_dim Dh
template <class B>
inline float k_elem(const KiviHead& c, int64_t p, int64_t i, int64_t Dh) {
    if (p < c.n_sink) return f16_to_f32(c.ks[(p / kKTile) * kKTile * Dh + i * kKTile + p % kKTile]);
    if (p < c.n_quant) {
        const int64_t g = (p - c.n_sink) / kKiviGroup, j = p % kKiviGroup;
        float x = dequant(static_cast<const B*>(c.kq)[g * Dh + i], j);
        for (int64_t o = 0; o < c.n_out; ++o)  // an outlier channel: its block is zero, its f16 value added
            if (c.ko[g * c.n_out + o].ch == i) x += f16_to_f32(c.ko[g * c.n_out + o].v[j]);
        return x;
    }
    const int64_t s = p % c.ring;
    return f16_to_f32(c.kr[(s / kKTile) * kKTile * Dh + i * kKTile + s % kKTile]);
}

// V_p[i]
template <class B>
inline float v_elem(const KiviHead& c, int64_t p, int64_t i) {
    if (p < c.n_sink) return f16_to_f32(c.vs[p * c.vr_stride + i]);
    if (p < c.n_quant) return dequant(static_cast<const B*>(c.vq)[(p - c.n_sink) * c.vq_stride + i / kKiviGroup], i % kKiviGroup);
    return f16_to_f32(c.vr[(p % c.ring) * c.vr_stride + i]);
}

}  // namespace kivi_ref
}  // namespace edge
