// attention_kv_ref.cpp — one attention head over an f16 or int8 KV cache: the references of
// attention_f16_fn and attention_q8_fn (kernels.h). Same loops and order as attention_ref (f32, position
// order, expf); f16 elements are converted exactly, int8 codes are scaled per position as the contract says.
#include <cmath>

#include "../../common.h"
#include "ref.h"

namespace edge {

namespace {

// softmax over scratch[p_begin, n_pos) in place (f32, position order, expf); returns 1 / Σ.
float softmax_ref(float* scratch, int64_t p_begin, int64_t n_pos) {
    float m = -INFINITY;
    for (int64_t p = p_begin; p < n_pos; ++p) m = scratch[p] > m ? scratch[p] : m;
    float sum = 0.f;
    for (int64_t p = p_begin; p < n_pos; ++p) {
        scratch[p] = std::exp(scratch[p] - m);
        sum += scratch[p];
    }
    return 1.0f / sum;
}

}  // namespace

void attention_f16_ref(const float* q, const uint16_t* kt, const uint16_t* v, int64_t v_stride, int64_t p_begin,
                       int64_t n_pos, int64_t head_dim, float* scratch, float* out) {
    const float scale = 1.0f / std::sqrt((float)head_dim);
    for (int64_t p = p_begin; p < n_pos; ++p) {
        float s = 0.f;
        const uint16_t* tile = kt + (p / kKTile) * kKTile * head_dim + p % kKTile;
        for (int64_t i = 0; i < head_dim; ++i) s += q[i] * f16_to_f32(tile[i * kKTile]);
        scratch[p] = s * scale;
    }
    const float inv = softmax_ref(scratch, p_begin, n_pos);
    for (int64_t i = 0; i < head_dim; ++i) out[i] = 0.f;
    for (int64_t p = p_begin; p < n_pos; ++p) {
        const uint16_t* vp = v + p * v_stride;
        const float a = scratch[p] * inv;
        for (int64_t i = 0; i < head_dim; ++i) out[i] += a * f16_to_f32(vp[i]);
    }
}

void attention_q8_ref(const float* q, const int8_t* kt, const float* ks, const int8_t* v, const float* vs,
                      int64_t v_stride, int64_t p_begin, int64_t n_pos, int64_t head_dim, float* scratch, float* out) {
    const float scale = 1.0f / std::sqrt((float)head_dim);
    for (int64_t p = p_begin; p < n_pos; ++p) {
        float s = 0.f;
        const int8_t* tile = kt + (p / kKTile) * kKTile * head_dim + p % kKTile;
        for (int64_t i = 0; i < head_dim; ++i) s += q[i] * (float)tile[i * kKTile];
        scratch[p] = ks[p] * s * scale;
    }
    const float inv = softmax_ref(scratch, p_begin, n_pos);
    for (int64_t i = 0; i < head_dim; ++i) out[i] = 0.f;
    for (int64_t p = p_begin; p < n_pos; ++p) {
        const int8_t* vp = v + p * v_stride;
        const float a = scratch[p] * inv * vs[p];
        for (int64_t i = 0; i < head_dim; ++i) out[i] += a * (float)vp[i];
    }
}

}  // namespace edge
