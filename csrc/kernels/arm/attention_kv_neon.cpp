// attention_kv_neon.cpp — attention_f16_fn and attention_q8_fn (kernels.h) with armv8.0 NEON: the loops of
// attention_neon (a 16-position K tile per step as 4 vectors, a by-element FMA per head dimension, the
// polynomial exp of neon_util.h) with the cache's elements widened to f32 on load (fcvtl for f16, sxtl +
// scvtf for int8: both exact). q8 scales: the score of p times ks[p] (before the softmax scale), the
// softmax weight times vs[p] (after the sum of weights), as the reference groups them. Any head_dim ≥ 1,
// any alignment; lanes of a tile before p_begin are computed into scratch and never read, lanes past
// n_pos are never stored. Bound vs the reference: |Δout| ≤ 1e-5 · max_p ||V_p||_inf (sums reordered).
#include <cmath>
#include <cstring>

#include "../../common.h"
#include "arm.h"
#include "neon_util.h"

namespace edge {

namespace {

struct F16 {
    typedef uint16_t T;
    static float32x4_t load4(const uint16_t* p) { return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p))); }
    static float one(const uint16_t* p) { return f16_to_f32(*p); }
};
struct I8 {
    typedef int8_t T;
    static float32x4_t load4(const int8_t* p) {
        int8_t b[8] = {p[0], p[1], p[2], p[3], 0, 0, 0, 0};
        return vcvtq_f32_s32(vmovl_s16(vget_low_s16(vmovl_s8(vld1_s8(b)))));
    }
    // 16 codes at p as 4 vectors
    static void load16(const int8_t* p, float32x4_t* o) {
        const int8x16_t c = vld1q_s8(p);
        const int16x8_t lo = vmovl_s8(vget_low_s8(c)), hi = vmovl_s8(vget_high_s8(c));
        o[0] = vcvtq_f32_s32(vmovl_s16(vget_low_s16(lo)));
        o[1] = vcvtq_f32_s32(vmovl_s16(vget_high_s16(lo)));
        o[2] = vcvtq_f32_s32(vmovl_s16(vget_low_s16(hi)));
        o[3] = vcvtq_f32_s32(vmovl_s16(vget_high_s16(hi)));
    }
    static float one(const int8_t* p) { return (float)*p; }
};

template <class E>
inline void load16(const typename E::T* p, float32x4_t* o) {
    if constexpr (sizeof(typename E::T) == 1) {
        E::load16(p, o);
    } else {
        for (int j = 0; j < 4; ++j) o[j] = E::load4(p + 4 * j);
    }
}

// ks / vs: per-position scales (nullptr: none, the f16 cache).
template <class E>
void attention_kv(const float* q, const typename E::T* kt, const float* ks, const typename E::T* v, const float* vs,
                  int64_t v_stride, int64_t p_begin, int64_t n_pos, int64_t head_dim, float* scratch, float* out) {
    static_assert(kKTile == 16, "four vectors per tile row");
    const int64_t Dh = head_dim;
    const float scale = 1.0f / std::sqrt((float)Dh);
    for (int64_t p = p_begin & ~(int64_t)15; p < n_pos; p += 16) {
        const typename E::T* tile = kt + p * Dh;  // p is a multiple of 16
        float32x4_t a[4], x[4];
        for (int j = 0; j < 4; ++j) a[j] = vdupq_n_f32(0.0f);
        for (int64_t i = 0; i < Dh; ++i) {
            load16<E>(tile + i * 16, x);
            for (int j = 0; j < 4; ++j) a[j] = vfmaq_n_f32(a[j], x[j], q[i]);
        }
        float s[16];
        for (int j = 0; j < 4; ++j) vst1q_f32(s + 4 * j, a[j]);
        const int64_t k = n_pos - p < 16 ? n_pos - p : 16;
        for (int64_t j = 0; j < k; ++j) scratch[p + j] = (ks ? ks[p + j] * s[j] : s[j]) * scale;
    }
    float m = -INFINITY;
    for (int64_t p = p_begin; p < n_pos; ++p) m = scratch[p] > m ? scratch[p] : m;
    const float32x4_t mx = vdupq_n_f32(m);
    float32x4_t vsum = vdupq_n_f32(0.0f);
    float tail_sum = 0.0f;
    int64_t p = p_begin;
    for (; p + 4 <= n_pos; p += 4) {
        const float32x4_t e = arm::exp4(vsubq_f32(vld1q_f32(scratch + p), mx));
        vsum = vaddq_f32(vsum, e);
        vst1q_f32(scratch + p, vs ? vmulq_f32(e, vld1q_f32(vs + p)) : e);
    }
    if (p < n_pos) {
        float t[4] = {m, m, m, m};
        const int64_t k = n_pos - p;
        std::memcpy(t, scratch + p, (size_t)k * 4);
        vst1q_f32(t, arm::exp4(vsubq_f32(vld1q_f32(t), mx)));
        for (int64_t j = 0; j < k; ++j) tail_sum += t[j], scratch[p + j] = vs ? t[j] * vs[p + j] : t[j];
    }
    const float inv = 1.0f / (vaddvq_f32(vsum) + tail_sum);
    int64_t i = 0;
    for (; i + 16 <= Dh; i += 16) {
        float32x4_t o[4], x[4];
        for (int j = 0; j < 4; ++j) o[j] = vdupq_n_f32(0.0f);
        const typename E::T* vp = v + p_begin * v_stride + i;
        for (int64_t j = p_begin; j < n_pos; ++j, vp += v_stride) {
            load16<E>(vp, x);
            for (int t = 0; t < 4; ++t) o[t] = vfmaq_n_f32(o[t], x[t], scratch[j]);
        }
        for (int t = 0; t < 4; ++t) vst1q_f32(out + i + 4 * t, vmulq_n_f32(o[t], inv));
    }
    for (; i + 4 <= Dh; i += 4) {
        float32x4_t o = vdupq_n_f32(0.0f);
        const typename E::T* vp = v + p_begin * v_stride + i;
        for (int64_t j = p_begin; j < n_pos; ++j, vp += v_stride) o = vfmaq_n_f32(o, E::load4(vp), scratch[j]);
        vst1q_f32(out + i, vmulq_n_f32(o, inv));
    }
    for (; i < Dh; ++i) {
        float o = 0.0f;
        for (int64_t j = p_begin; j < n_pos; ++j) o += scratch[j] * E::one(v + j * v_stride + i);
        out[i] = o * inv;
    }
}

}  // namespace

void attention_f16_neon(const float* q, const uint16_t* kt, const uint16_t* v, int64_t v_stride, int64_t p_begin,
                        int64_t n_pos, int64_t head_dim, float* scratch, float* out) {
    attention_kv<F16>(q, kt, nullptr, v, nullptr, v_stride, p_begin, n_pos, head_dim, scratch, out);
}

void attention_q8_neon(const float* q, const int8_t* kt, const float* ks, const int8_t* v, const float* vs,
                       int64_t v_stride, int64_t p_begin, int64_t n_pos, int64_t head_dim, float* scratch, float* out) {
    attention_kv<I8>(q, kt, ks, v, vs, v_stride, p_begin, n_pos, head_dim, scratch, out);
}

}  // namespace edge
