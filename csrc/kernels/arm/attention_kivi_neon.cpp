// attention_kivi_neon.cpp — attention_kivi_fn (kernels.h) for kivi4 / kivi2 with armv8.0 NEON: the loops of
// attention_kivi_avx2 in 4-lane vectors. Quantized part: a group of 32 positions per step, per channel one
// by-element FMA of q_i·d_i into the 8 vectors of its block's codes (ushl + and + uxtl + ucvtf, exact) and the
// scalar Σ_i q_i·m_i added to the group's scores (and q_ch times the f16 values of its K outlier channels); V per 32-channel block: Σ_p (a_p·d)·c, Σ_p a_p·m added at the
// end. The f16 parts — the sink group (kernels.h KiviHead n_sink, its own 32 slots) and the residual ring —
// through one tile / row loop over (buffers, range) pairs (kivi_parts.h): attention_f16_neon's, with the slot
// p % ring of each tile / row; softmax: its polynomial exp. Nothing quantized and no wrap: attention_f16_neon
// itself (bit for bit).
// Bound vs the reference: kernels.h attention_kivi_fn.
#include <cmath>
#include <cstring>

#include "../../common.h"
#include "../kivi_parts.h"
#include "arm.h"
#include "kivi_neon.h"
#include "neon_util.h"

namespace edge {

namespace {

inline float32x4_t f16x4(const uint16_t* p) { return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p))); }

template <class B>
inline void codes32(const B& b, float32x4_t* x) {
    arm::kivi_piece<B, 0>(b, x);
    arm::kivi_piece<B, 1>(b, x + 2);
    arm::kivi_piece<B, 2>(b, x + 4);
    arm::kivi_piece<B, 3>(b, x + 6);
}

template <class B>
void attention_kivi(const float* q, const KiviHead& c, int64_t p_begin, int64_t n_pos, int64_t Dh, float* scratch, float* out) {
    static_assert(kKTile == 16 && kKiviGroup == 32, "four vectors per tile row, eight per block");
    if (c.n_quant == 0 && n_pos <= c.ring) {
        attention_f16_neon(q, c.kr, c.vr, c.vr_stride, p_begin, n_pos, Dh, scratch, out);
        return;
    }
    const float scale = 1.0f / std::sqrt((float)Dh);
    const int64_t nq = c.n_quant < n_pos ? c.n_quant : n_pos;
    const B* kq = static_cast<const B*>(c.kq);
    const int64_t ns = c.n_sink < nq ? c.n_sink : nq, g0 = c.n_sink / kKiviGroup;
    KiviF16Part parts[2];  // the sink group and the residual ring
    kivi_f16_parts(c, p_begin, n_pos, parts);
    for (const KiviF16Part& f : parts) {  // K tiles of positions [from rounded down to a tile, to)
        for (int64_t p = f.from & ~(int64_t)15; p < f.to; p += 16) {
            const uint16_t* tile = f.k + (p % f.ring) * Dh;  // p and ring are multiples of 16
            float32x4_t a[4];
            for (int j = 0; j < 4; ++j) a[j] = vdupq_n_f32(0.0f);
            for (int64_t i = 0; i < Dh; ++i)
                for (int j = 0; j < 4; ++j) a[j] = vfmaq_n_f32(a[j], f16x4(tile + i * 16 + 4 * j), q[i]);
            float s[16];
            for (int j = 0; j < 4; ++j) vst1q_f32(s + 4 * j, a[j]);
            const int64_t k = f.to - p < 16 ? f.to - p : 16;
            for (int64_t j = 0; j < k; ++j) scratch[p + j] = s[j] * scale;
        }
    }
    for (int64_t g = (p_begin > ns ? p_begin : ns) / kKiviGroup; g * kKiviGroup < nq; ++g) {
        float32x4_t a[8], x[8];
        for (int j = 0; j < 8; ++j) a[j] = vdupq_n_f32(0.0f);
        float bias = 0.f;
        const B* blk = kq + (g - g0) * Dh;
        for (int64_t i = 0; i < Dh; ++i) {
            const float qd = q[i] * f16_to_f32(blk[i].d);
            bias += q[i] * f16_to_f32(blk[i].m);
            codes32(blk[i], x);
            for (int j = 0; j < 8; ++j) a[j] = vfmaq_n_f32(a[j], x[j], qd);
        }
        for (int64_t o = 0; o < c.n_out; ++o) {  // the outlier channels' f16 values (their blocks are zero)
            const KiviOutlier& e = c.ko[(g - g0) * c.n_out + o];
            for (int j = 0; j < 8; ++j) a[j] = vfmaq_n_f32(a[j], f16x4(e.v + 4 * j), q[e.ch]);
        }
        const float32x4_t vb = vdupq_n_f32(bias);
        for (int j = 0; j < 8; ++j) vst1q_f32(scratch + g * kKiviGroup + 4 * j, vmulq_n_f32(vaddq_f32(a[j], vb), scale));
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
        vst1q_f32(scratch + p, e);
    }
    if (p < n_pos) {
        float t[4] = {m, m, m, m};
        const int64_t k = n_pos - p;
        std::memcpy(t, scratch + p, (size_t)k * 4);
        vst1q_f32(t, arm::exp4(vsubq_f32(vld1q_f32(t), mx)));
        for (int64_t j = 0; j < k; ++j) tail_sum += t[j], scratch[p + j] = t[j];
    }
    const float inv = 1.0f / (vaddvq_f32(vsum) + tail_sum);
    const B* vq = static_cast<const B*>(c.vq);
    for (int64_t cb = 0; cb < Dh / kKiviGroup; ++cb) {
        float32x4_t o[8], x[8];
        for (int j = 0; j < 8; ++j) o[j] = vdupq_n_f32(0.0f);
        for (const KiviF16Part& f : parts) {  // the f16 rows, slot p % ring
            int64_t s = f.from % f.ring;
            for (int64_t pr = f.from; pr < f.to; ++pr) {
                const uint16_t* vp = f.v + s * c.vr_stride + cb * kKiviGroup;
                for (int j = 0; j < 8; ++j) o[j] = vfmaq_n_f32(o[j], f16x4(vp + 4 * j), scratch[pr]);
                if (++s == f.ring) s = 0;
            }
        }
        float msum = 0.f;
        for (int64_t pq = p_begin > ns ? p_begin : ns; pq < nq; ++pq) {
            const B& b = vq[(pq - c.n_sink) * c.vq_stride + cb];
            const float a = scratch[pq];
            msum += a * f16_to_f32(b.m);
            const float ad = a * f16_to_f32(b.d);
            codes32(b, x);
            for (int j = 0; j < 8; ++j) o[j] = vfmaq_n_f32(o[j], x[j], ad);
        }
        const float32x4_t ms = vdupq_n_f32(msum);
        for (int j = 0; j < 8; ++j) o[j] = vaddq_f32(o[j], ms);
        for (int j = 0; j < 8; ++j) vst1q_f32(out + cb * kKiviGroup + 4 * j, vmulq_n_f32(o[j], inv));
    }
}

}  // namespace

void attention_kivi4_neon(const float* q, const KiviHead& c, int64_t p_begin, int64_t n_pos, int64_t head_dim, float* scratch,
                          float* out) {
    attention_kivi<block_kivi4>(q, c, p_begin, n_pos, head_dim, scratch, out);
}

void attention_kivi2_neon(const float* q, const KiviHead& c, int64_t p_begin, int64_t n_pos, int64_t head_dim, float* scratch,
                          float* out) {
    attention_kivi<block_kivi2>(q, c, p_begin, n_pos, head_dim, scratch, out);
}

}  // namespace edge
