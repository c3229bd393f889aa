// attention_neon.cpp — attention_fn (kernels.h) with armv8.0 NEON: one head over the tiled, transposed
// K cache and V. Scores: a 16-position K tile per step (4 vectors), a by-element FMA per head dimension
// (two dimensions in flight: 8 accumulators), no horizontal sums; lanes of a tile before p_begin are
// computed into scratch (scratch[p] for p < n_pos is ours) and never read; lanes past n_pos are never
// stored. Softmax with the polynomial exp of neon_util.h (rel. err < 2e-7). Output: 16 (then 4, then 1)
// head dimensions per pass over the positions. Any head_dim ≥ 1, any alignment.
// Accuracy: f32 throughout, sums reordered vs the reference: |Δout| ≤ 1e-5 · max_p ||V_p||_inf.
#include <cmath>
#include <cstring>

#include "arm.h"
#include "neon_util.h"

namespace edge {

void attention_neon(const float* q, const float* kt, const float* v, int64_t v_stride, int64_t p_begin, int64_t n_pos,
                    int64_t head_dim, float* scratch, float* out) {
    static_assert(kKTile == 16, "four vectors per tile row");
    const int64_t Dh = head_dim;
    const float scale = 1.0f / std::sqrt((float)Dh);
    // scores
    for (int64_t p = p_begin & ~(int64_t)15; p < n_pos; p += 16) {
        const float* tile = kt + p * Dh;  // p is a multiple of 16
        float32x4_t a[4], b[4];
        for (int j = 0; j < 4; ++j) a[j] = b[j] = vdupq_n_f32(0.0f);
        int64_t i = 0;
        for (; i + 2 <= Dh; i += 2) {
            const float q0 = q[i], q1 = q[i + 1];
            for (int j = 0; j < 4; ++j) {
                a[j] = vfmaq_n_f32(a[j], vld1q_f32(tile + i * 16 + 4 * j), q0);
                b[j] = vfmaq_n_f32(b[j], vld1q_f32(tile + i * 16 + 16 + 4 * j), q1);
            }
        }
        if (i < Dh)
            for (int j = 0; j < 4; ++j) a[j] = vfmaq_n_f32(a[j], vld1q_f32(tile + i * 16 + 4 * j), q[i]);
        float s[16];
        for (int j = 0; j < 4; ++j) vst1q_f32(s + 4 * j, vmulq_n_f32(vaddq_f32(a[j], b[j]), scale));
        const int64_t k = n_pos - p < 16 ? n_pos - p : 16;
        std::memcpy(scratch + p, s, (size_t)k * 4);
    }
    float m = -INFINITY;
    for (int64_t p = p_begin; p < n_pos; ++p) m = scratch[p] > m ? scratch[p] : m;
    // softmax weights (unnormalised) and their sum
    const float32x4_t mx = vdupq_n_f32(m);
    float32x4_t vsum = vdupq_n_f32(0.0f);
    float tail_sum = 0.0f;
    int64_t p = p_begin;
    for (; p + 4 <= n_pos; p += 4) {
        const float32x4_t e = arm::exp4(vsubq_f32(vld1q_f32(scratch + p), mx));
        vst1q_f32(scratch + p, e);
        vsum = vaddq_f32(vsum, e);
    }
    if (p < n_pos) {
        float t[4] = {m, m, m, m};
        const int64_t k = n_pos - p;
        std::memcpy(t, scratch + p, (size_t)k * 4);
        vst1q_f32(t, arm::exp4(vsubq_f32(vld1q_f32(t), mx)));
        for (int64_t j = 0; j < k; ++j) scratch[p + j] = t[j], tail_sum += t[j];
    }
    const float inv = 1.0f / (vaddvq_f32(vsum) + tail_sum);
    // out = Σ_p w_p · V_p · inv
    int64_t i = 0;
    for (; i + 16 <= Dh; i += 16) {
        float32x4_t o[4], o2[4];
        for (int j = 0; j < 4; ++j) o[j] = o2[j] = vdupq_n_f32(0.0f);
        const float* vp = v + p_begin * v_stride + i;
        int64_t j = p_begin;
        for (; j + 2 <= n_pos; j += 2, vp += 2 * v_stride) {
            const float w0 = scratch[j], w1 = scratch[j + 1];
            for (int t = 0; t < 4; ++t) {
                o[t] = vfmaq_n_f32(o[t], vld1q_f32(vp + 4 * t), w0);
                o2[t] = vfmaq_n_f32(o2[t], vld1q_f32(vp + v_stride + 4 * t), w1);
            }
        }
        if (j < n_pos)
            for (int t = 0; t < 4; ++t) o[t] = vfmaq_n_f32(o[t], vld1q_f32(vp + 4 * t), scratch[j]);
        for (int t = 0; t < 4; ++t) vst1q_f32(out + i + 4 * t, vmulq_n_f32(vaddq_f32(o[t], o2[t]), inv));
    }
    for (; i + 4 <= Dh; i += 4) {
        float32x4_t o = vdupq_n_f32(0.0f);
        const float* vp = v + p_begin * v_stride + i;
        for (int64_t j = p_begin; j < n_pos; ++j, vp += v_stride) o = vfmaq_n_f32(o, vld1q_f32(vp), scratch[j]);
        vst1q_f32(out + i, vmulq_n_f32(o, inv));
    }
    for (; i < Dh; ++i) {
        float o = 0.0f;
        for (int64_t j = p_begin; j < n_pos; ++j) o += scratch[j] * v[j * v_stride + i];
        out[i] = o * inv;
    }
}

}  // namespace edge
