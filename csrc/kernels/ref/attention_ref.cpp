// attention_ref.cpp — one attention head over cached f32 K (tiled, transposed) and V: the reference of
// attention_fn (kernels.h). Scores, softmax and the weighted sum of V are f32, in position order, with expf.
#include <cmath>

#include "ref.h"

namespace edge {

void attention_ref(const float* q, const float* kt, const float* v, int64_t v_stride, int64_t p_begin, int64_t n_pos,
                   int64_t head_dim, float* scratch, float* out) {
    const float scale = 1.0f / std::sqrt((float)head_dim);
    float m = -INFINITY;
    for (int64_t p = p_begin; p < n_pos; ++p) {
        float s = 0.f;
        const float* tile = kt + (p / kKTile) * kKTile * head_dim + p % kKTile;
        for (int64_t i = 0; i < head_dim; ++i) s += q[i] * tile[i * kKTile];
        scratch[p] = s * scale;
        m = scratch[p] > m ? scratch[p] : m;
    }
    float sum = 0.f;
    for (int64_t p = p_begin; p < n_pos; ++p) {
        scratch[p] = std::exp(scratch[p] - m);
        sum += scratch[p];
    }
    const float inv = 1.0f / sum;
    for (int64_t i = 0; i < head_dim; ++i) out[i] = 0.f;
    for (int64_t p = p_begin; p < n_pos; ++p) {
        const float* vp = v + p * v_stride;
        const float a = scratch[p] * inv;
        for (int64_t i = 0; i < head_dim; ++i) out[i] += a * vp[i];
    }
}

}  // namespace edge
