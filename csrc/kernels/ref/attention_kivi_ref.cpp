// attention_kivi_ref.cpp — one attention head over a KIVI KV cache (kernels.h attention_kivi_fn): the
// references attention_kivi4_ref / attention_kivi2_ref. Each K / V element is dequantized as the block
// formula says (d · c + m in f32 with the f16 scale and min converted exactly) or converted from the f16
// sink group / residual ring, and then everything is computed as attention_f16_ref: f32, position order, expf.
#include <cmath>

#include "../../common.h"
#include "ref.h"

namespace edge {

namespace {

inline int code(const block_kivi4& b, int64_t j) { return j < 16 ? (b.qs[j] & 15) : (b.qs[j - 16] >> 4); }
inline int code(const block_kivi2& b, int64_t j) { return (b.qs[j % 8] >> (2 * (j / 8))) & 3; }

template <class B>
inline float dequant(const B& b, int64_t j) {
    return f16_to_f32(b.d) * (float)code(b, j) + f16_to_f32(b.m);
}

template <class B>
float k_elem(const KiviHead& c, int64_t p, int64_t i, int64_t Dh) {
    if (p < c.n_sink) return f16_to_f32(c.ks[(p / kKTile) * kKTile * Dh + i * kKTile + p % kKTile]);
    if (p < c.n_quant)
        return dequant(static_cast<const B*>(c.kq)[((p - c.n_sink) / kKiviGroup) * Dh + i], p % kKiviGroup);
    const int64_t s = p % c.ring;
    return f16_to_f32(c.kr[(s / kKTile) * kKTile * Dh + i * kKTile + s % kKTile]);
}

template <class B>
float v_elem(const KiviHead& c, int64_t p, int64_t i) {
    if (p < c.n_sink) return f16_to_f32(c.vs[p * c.vr_stride + i]);
    if (p < c.n_quant)
        return dequant(static_cast<const B*>(c.vq)[(p - c.n_sink) * c.vq_stride + i / kKiviGroup], i % kKiviGroup);
    return f16_to_f32(c.vr[(p % c.ring) * c.vr_stride + i]);
}

template <class B>
void attention_kivi(const float* q, const KiviHead& c, int64_t p_begin, int64_t n_pos, int64_t head_dim, float* scratch,
                    float* out) {
    const float scale = 1.0f / std::sqrt((float)head_dim);
    for (int64_t p = p_begin; p < n_pos; ++p) {
        float s = 0.f;
        for (int64_t i = 0; i < head_dim; ++i) s += q[i] * k_elem<B>(c, p, i, head_dim);
        scratch[p] = s * scale;
    }
    float m = -INFINITY;
    for (int64_t p = p_begin; p < n_pos; ++p) m = scratch[p] > m ? scratch[p] : m;
    float sum = 0.f;
    for (int64_t p = p_begin; p < n_pos; ++p) {
        scratch[p] = std::exp(scratch[p] - m);
        sum += scratch[p];
    }
    const float inv = 1.0f / sum;
    for (int64_t i = 0; i < head_dim; ++i) out[i] = 0.f;
    for (int64_t p = p_begin; p < n_pos; ++p) {
        const float a = scratch[p] * inv;
        for (int64_t i = 0; i < head_dim; ++i) out[i] += a * v_elem<B>(c, p, i);
    }
}

}  // namespace

void attention_kivi4_ref(const float* q, const KiviHead& c, int64_t p_begin, int64_t n_pos, int64_t head_dim, float* scratch,
                         float* out) {
    attention_kivi<block_kivi4>(q, c, p_begin, n_pos, head_dim, scratch, out);
}

void attention_kivi2_ref(const float* q, const KiviHead& c, int64_t p_begin, int64_t n_pos, int64_t head_dim, float* scratch,
                         float* out) {
    attention_kivi<block_kivi2>(q, c, p_begin, n_pos, head_dim, scratch, out);
}

}  // namespace edge
