// attention_kivi_ref.cpp — one attention head over a KIVI KV cache (kernels.h attention_kivi_fn): the
// references attention_kivi4_ref / attention_kivi2_ref. Each K / V element is dequantized as the block
// formula says (kivi_elem.h: d · c + m in f32 with the f16 scale and min converted exactly) or converted from the
// f16 sink group / residual ring, and then everything is computed as attention_f16_ref: f32, position order, expf.
#include <cmath>

#include "../../common.h"
#include "kivi_elem.h"
#include "ref.h"

namespace edge {

namespace {

using kivi_ref::k_elem;
using kivi_ref::v_elem;

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
