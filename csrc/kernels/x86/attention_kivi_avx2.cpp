// attention_kivi_avx2.cpp — attention_kivi_fn (kernels.h) for kivi4 / kivi2 with AVX2+FMA+F16C. Quantized
// part: a group of 32 positions per step, per channel i one broadcast FMA of q_i·d_i into the four 8-lane
// pieces of its block's codes (vpmovzxbd + vcvtdq2ps, exact) and the scalar Σ_i q_i·m_i added to all 32
// scores, plus q_ch times the f16 values of the group's K outlier channels; V per 32-channel block: Σ_p (a_p·d)·c into four accumulators, Σ_p a_p·m added at the end. The f16
// parts — the sink group (kernels.h KiviHead n_sink, its own 32 slots) and the residual ring — through one tile /
// row loop over (buffers, range) pairs (kivi_parts.h): attention_f16_avx2's, with the slot p % ring of each tile / row. Softmax:
// that kernel's (polynomial exp). Nothing quantized and no wrap: attention_f16_avx2 itself (kernels.h: bit for bit).
// Bound vs the reference: kernels.h attention_kivi_fn.
#include <immintrin.h>

#include <cmath>

#include "../kivi_parts.h"
#include "avx2_util.h"
#include "kivi_avx2.h"
#include "x86.h"

namespace edge {

namespace {

inline __m256i tail_mask(int64_t left) {
    const int64_t n = left >= 8 ? 8 : left;
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

inline __m256 f16x8_load(const uint16_t* p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i*)p)); }

template <class B>
void attention_kivi(const float* q, const KiviHead& c, int64_t p_begin, int64_t n_pos, int64_t Dh, float* scratch, float* out) {
    static_assert(kKTile == 16 && kKiviGroup == 32, "two ymm per tile row, four per block");
    if (c.n_quant == 0 && n_pos <= c.ring) {
        attention_f16_avx2(q, c.kr, c.vr, c.vr_stride, p_begin, n_pos, Dh, scratch, out);
        return;
    }
    const float scale = 1.0f / std::sqrt((float)Dh);
    const __m256 vscale = _mm256_set1_ps(scale);
    const int64_t nq = c.n_quant < n_pos ? c.n_quant : n_pos;
    const B* kq = static_cast<const B*>(c.kq);
    const int64_t ns = c.n_sink < nq ? c.n_sink : nq, g0 = c.n_sink / kKiviGroup;
    KiviF16Part parts[2];  // the sink group and the residual ring
    kivi_f16_parts(c, p_begin, n_pos, parts);
    for (const KiviF16Part& f : parts) {  // K tiles of positions [from rounded down to a tile, to)
        for (int64_t p = f.from & ~(int64_t)15; p < f.to; p += 16) {
            const uint16_t* tile = f.k + (p % f.ring) * Dh;  // p and ring are multiples of 16
            __m256 a0 = _mm256_setzero_ps(), a1 = a0;
            for (int64_t i = 0; i < Dh; ++i) {
                __m256 qi = _mm256_set1_ps(q[i]);
                a0 = _mm256_fmadd_ps(qi, f16x8_load(tile + i * 16), a0);
                a1 = _mm256_fmadd_ps(qi, f16x8_load(tile + i * 16 + 8), a1);
            }
            _mm256_maskstore_ps(scratch + p, tail_mask(f.to - p), _mm256_mul_ps(a0, vscale));
            if (f.to - p > 8) _mm256_maskstore_ps(scratch + p + 8, tail_mask(f.to - p - 8), _mm256_mul_ps(a1, vscale));
        }
    }
    for (int64_t g = (p_begin > ns ? p_begin : ns) / kKiviGroup; g * kKiviGroup < nq; ++g) {
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        float bias = 0.f;
        const B* blk = kq + (g - g0) * Dh;
        for (int64_t i = 0; i < Dh; ++i) {
            const __m256 qd = _mm256_set1_ps(q[i] * _cvtsh_ss(blk[i].d));
            bias += q[i] * _cvtsh_ss(blk[i].m);
            a0 = _mm256_fmadd_ps(qd, x86::kivi_piece<B, 0>(blk[i]), a0);
            a1 = _mm256_fmadd_ps(qd, x86::kivi_piece<B, 1>(blk[i]), a1);
            a2 = _mm256_fmadd_ps(qd, x86::kivi_piece<B, 2>(blk[i]), a2);
            a3 = _mm256_fmadd_ps(qd, x86::kivi_piece<B, 3>(blk[i]), a3);
        }
        for (int64_t o = 0; o < c.n_out; ++o) {  // the outlier channels' f16 values (their blocks are zero)
            const KiviOutlier& e = c.ko[(g - g0) * c.n_out + o];
            const __m256 qo = _mm256_set1_ps(q[e.ch]);
            a0 = _mm256_fmadd_ps(qo, f16x8_load(e.v), a0);
            a1 = _mm256_fmadd_ps(qo, f16x8_load(e.v + 8), a1);
            a2 = _mm256_fmadd_ps(qo, f16x8_load(e.v + 16), a2);
            a3 = _mm256_fmadd_ps(qo, f16x8_load(e.v + 24), a3);
        }
        const __m256 vb = _mm256_set1_ps(bias);
        float* s = scratch + g * kKiviGroup;  // the whole group is below nq <= n_pos
        _mm256_storeu_ps(s, _mm256_mul_ps(_mm256_add_ps(a0, vb), vscale));
        _mm256_storeu_ps(s + 8, _mm256_mul_ps(_mm256_add_ps(a1, vb), vscale));
        _mm256_storeu_ps(s + 16, _mm256_mul_ps(_mm256_add_ps(a2, vb), vscale));
        _mm256_storeu_ps(s + 24, _mm256_mul_ps(_mm256_add_ps(a3, vb), vscale));
    }
    float m = -INFINITY;
    for (int64_t p = p_begin; p < n_pos; ++p) m = scratch[p] > m ? scratch[p] : m;
    const __m256 mx = _mm256_set1_ps(m);
    __m256 vsum = _mm256_setzero_ps();
    for (int64_t p = p_begin; p < n_pos; p += 8) {
        __m256i mk = tail_mask(n_pos - p);
        __m256 e = _mm256_and_ps(x86::exp8(_mm256_sub_ps(_mm256_maskload_ps(scratch + p, mk), mx)), _mm256_castsi256_ps(mk));
        _mm256_maskstore_ps(scratch + p, mk, e);
        vsum = _mm256_add_ps(vsum, e);
    }
    const float inv = 1.0f / hsum(vsum);
    const B* vq = static_cast<const B*>(c.vq);
    for (int64_t cb = 0; cb < Dh / kKiviGroup; ++cb) {
        __m256 o0 = _mm256_setzero_ps(), o1 = o0, o2 = o0, o3 = o0;
        for (const KiviF16Part& f : parts) {  // the f16 rows, slot p % ring
            int64_t s = f.from % f.ring;
            for (int64_t p = f.from; p < f.to; ++p) {
                const uint16_t* vp = f.v + s * c.vr_stride + cb * kKiviGroup;
                const __m256 a = _mm256_set1_ps(scratch[p]);
                o0 = _mm256_fmadd_ps(a, f16x8_load(vp), o0);
                o1 = _mm256_fmadd_ps(a, f16x8_load(vp + 8), o1);
                o2 = _mm256_fmadd_ps(a, f16x8_load(vp + 16), o2);
                o3 = _mm256_fmadd_ps(a, f16x8_load(vp + 24), o3);
                if (++s == f.ring) s = 0;
            }
        }
        float msum = 0.f;
        for (int64_t p = p_begin > ns ? p_begin : ns; p < nq; ++p) {
            const B& b = vq[(p - c.n_sink) * c.vq_stride + cb];
            const float a = scratch[p];
            const __m256 ad = _mm256_set1_ps(a * _cvtsh_ss(b.d));
            msum += a * _cvtsh_ss(b.m);
            o0 = _mm256_fmadd_ps(ad, x86::kivi_piece<B, 0>(b), o0);
            o1 = _mm256_fmadd_ps(ad, x86::kivi_piece<B, 1>(b), o1);
            o2 = _mm256_fmadd_ps(ad, x86::kivi_piece<B, 2>(b), o2);
            o3 = _mm256_fmadd_ps(ad, x86::kivi_piece<B, 3>(b), o3);
        }
        const __m256 ms = _mm256_set1_ps(msum);
        o0 = _mm256_add_ps(o0, ms), o1 = _mm256_add_ps(o1, ms), o2 = _mm256_add_ps(o2, ms), o3 = _mm256_add_ps(o3, ms);
        const __m256 vi = _mm256_set1_ps(inv);
        float* op = out + cb * kKiviGroup;
        _mm256_storeu_ps(op, _mm256_mul_ps(o0, vi));
        _mm256_storeu_ps(op + 8, _mm256_mul_ps(o1, vi));
        _mm256_storeu_ps(op + 16, _mm256_mul_ps(o2, vi));
        _mm256_storeu_ps(op + 24, _mm256_mul_ps(o3, vi));
    }
}

}  // namespace

void attention_kivi4_avx2(const float* q, const KiviHead& c, int64_t p_begin, int64_t n_pos, int64_t head_dim, float* scratch,
                          float* out) {
    attention_kivi<block_kivi4>(q, c, p_begin, n_pos, head_dim, scratch, out);
}

void attention_kivi2_avx2(const float* q, const KiviHead& c, int64_t p_begin, int64_t n_pos, int64_t head_dim, float* scratch,
                          float* out) {
    attention_kivi<block_kivi2>(q, c, p_begin, n_pos, head_dim, scratch, out);
}

}  // namespace edge
