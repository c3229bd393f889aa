// attention_kivi_rvv.cpp — attention_kivi_fn (kernels.h) for kivi4 / kivi2 with RVV 1.0 (any VLEN >= 128): the
// loops of attention_kivi_avx2 with a block's 32 lanes as four e32m2 pieces of 8 (vl = 8 fits every VLEN):
// codes by vle8 + vsrl + vand + vzext + vfcvt (exact), scores Σ_i (q_i·d_i)·c + Σ_i q_i·m_i (+ the K outlier
// channels' q_ch·v), V Σ_p (a_p·d)·c +
// Σ_p a_p·m. The f16 parts — the sink group (kernels.h KiviHead n_sink, its own 32 slots) and the residual ring —
// through one tile / row loop over (buffers, range) pairs (kivi_parts.h): attention_f16_rvv's (rvv_util.h f16_f32m2, exact) with
// the slot p % ring of each tile / row; softmax: its vfredmax, polynomial exp and unordered sum. Nothing quantized and no wrap:
// attention_f16_rvv itself (bit for bit). Scalars d, m through f16_f32s (no inline function of common.h:
// rvv_util.h says why). Bound vs the reference: kernels.h attention_kivi_fn.
#include <math.h>

#include "../kivi_parts.h"
#include "rvv.h"
#include "kivi_rvv.h"
#include "rvv_util.h"

namespace edge {
namespace rvv {
namespace {

template <bool A, class B>
void attention_kivi(const float* q, const KiviHead& c, int64_t p_begin, int64_t n_pos, int64_t Dh, float* scratch, float* out) {
    const float scale = 1.0f / sqrtf((float)Dh);
    const int64_t nq = c.n_quant < n_pos ? c.n_quant : n_pos;
    const B* kq = static_cast<const B*>(c.kq);
    const int64_t ns = c.n_sink < nq ? c.n_sink : nq, g0 = c.n_sink / kKiviGroup;
    KiviF16Part parts[2];  // the sink group and the residual ring
    kivi_f16_parts(c, p_begin, n_pos, parts);
    for (const KiviF16Part& f : parts) {  // K tiles of positions [from rounded down to a tile, to)
        for (int64_t p = f.from & ~(int64_t)(kKTile - 1); p < f.to; p += kKTile) {
            const int64_t k = f.to - p < kKTile ? f.to - p : kKTile;
            const uint16_t* tile = f.k + (p % f.ring) * Dh;  // p and ring are multiples of kKTile
            for (int64_t off = 0; off < k;) {
                const size_t vl = __riscv_vsetvl_e32m2((size_t)(k - off));
                vfloat32m2_t a = __riscv_vfmv_v_f_f32m2(0.0f, vl);
                for (int64_t i = 0; i < Dh; ++i)
                    a = __riscv_vfmacc_vf_f32m2(a, q[i], f16_f32m2(ld_u16_u32m2<A>(tile + i * kKTile + off, vl), vl), vl);
                st_f32m2<A>(scratch + p + off, __riscv_vfmul_vf_f32m2(a, scale, vl), vl);
                off += (int64_t)vl;
            }
        }
    }
    for (int64_t g = (p_begin > ns ? p_begin : ns) / kKiviGroup; g * kKiviGroup < nq; ++g) {
        vfloat32m2_t a0 = __riscv_vfmv_v_f_f32m2(0.0f, 8), a1 = a0, a2 = a0, a3 = a0;
        float bias = 0.f;
        const B* blk = kq + (g - g0) * Dh;
        for (int64_t i = 0; i < Dh; ++i) {
            const float qd = q[i] * f16_f32s(ld_u16s(&blk[i].d));
            bias += q[i] * f16_f32s(ld_u16s(&blk[i].m));
            a0 = __riscv_vfmacc_vf_f32m2(a0, qd, kivi_codes(blk[i], 0, 8), 8);
            a1 = __riscv_vfmacc_vf_f32m2(a1, qd, kivi_codes(blk[i], 1, 8), 8);
            a2 = __riscv_vfmacc_vf_f32m2(a2, qd, kivi_codes(blk[i], 2, 8), 8);
            a3 = __riscv_vfmacc_vf_f32m2(a3, qd, kivi_codes(blk[i], 3, 8), 8);
        }
        for (int64_t o = 0; o < c.n_out; ++o) {  // the outlier channels' f16 values (their blocks are zero)
            const KiviOutlier& e = c.ko[(g - g0) * c.n_out + o];
            const float qo = q[e.ch];
            a0 = __riscv_vfmacc_vf_f32m2(a0, qo, f16_f32m2(ld_u16_u32m2<true>(e.v, 8), 8), 8);
            a1 = __riscv_vfmacc_vf_f32m2(a1, qo, f16_f32m2(ld_u16_u32m2<true>(e.v + 8, 8), 8), 8);
            a2 = __riscv_vfmacc_vf_f32m2(a2, qo, f16_f32m2(ld_u16_u32m2<true>(e.v + 16, 8), 8), 8);
            a3 = __riscv_vfmacc_vf_f32m2(a3, qo, f16_f32m2(ld_u16_u32m2<true>(e.v + 24, 8), 8), 8);
        }
        float* s = scratch + g * kKiviGroup;
        st_f32m2<A>(s, __riscv_vfmul_vf_f32m2(__riscv_vfadd_vf_f32m2(a0, bias, 8), scale, 8), 8);
        st_f32m2<A>(s + 8, __riscv_vfmul_vf_f32m2(__riscv_vfadd_vf_f32m2(a1, bias, 8), scale, 8), 8);
        st_f32m2<A>(s + 16, __riscv_vfmul_vf_f32m2(__riscv_vfadd_vf_f32m2(a2, bias, 8), scale, 8), 8);
        st_f32m2<A>(s + 24, __riscv_vfmul_vf_f32m2(__riscv_vfadd_vf_f32m2(a3, bias, 8), scale, 8), 8);
    }
    vfloat32m1_t mx = __riscv_vfmv_v_f_f32m1(-INFINITY, 1);
    for (int64_t p = p_begin; p < n_pos;) {
        const size_t vl = __riscv_vsetvl_e32m2((size_t)(n_pos - p));
        mx = __riscv_vfredmax_vs_f32m2_f32m1(ld_f32m2<A>(scratch + p, vl), mx, vl);
        p += (int64_t)vl;
    }
    const float m = __riscv_vfmv_f_s_f32m1_f32(mx);
    const size_t vlmax = __riscv_vsetvlmax_e32m2();
    vfloat32m2_t vsum = __riscv_vfmv_v_f_f32m2(0.0f, vlmax);
    for (int64_t p = p_begin; p < n_pos;) {
        const size_t vl = __riscv_vsetvl_e32m2((size_t)(n_pos - p));
        const vfloat32m2_t e = exp_f32m2(__riscv_vfsub_vf_f32m2(ld_f32m2<A>(scratch + p, vl), m, vl), vl);
        vsum = __riscv_vfadd_vv_f32m2_tu(vsum, vsum, e, vl);
        st_f32m2<A>(scratch + p, e, vl);
        p += (int64_t)vl;
    }
    const float inv = 1.0f / __riscv_vfmv_f_s_f32m1_f32(__riscv_vfredusum_vs_f32m2_f32m1(vsum, __riscv_vfmv_v_f_f32m1(0.0f, 1), vlmax));
    const B* vq = static_cast<const B*>(c.vq);
    for (int64_t cb = 0; cb < Dh / kKiviGroup; ++cb) {
        vfloat32m2_t o0 = __riscv_vfmv_v_f_f32m2(0.0f, 8), o1 = o0, o2 = o0, o3 = o0;
        for (const KiviF16Part& f : parts) {  // the f16 rows, slot p % ring
            int64_t s = f.from % f.ring;
            for (int64_t p = f.from; p < f.to; ++p) {
                const uint16_t* vp = f.v + s * c.vr_stride + cb * kKiviGroup;
                const float a = scratch[p];
                o0 = __riscv_vfmacc_vf_f32m2(o0, a, f16_f32m2(ld_u16_u32m2<A>(vp, 8), 8), 8);
                o1 = __riscv_vfmacc_vf_f32m2(o1, a, f16_f32m2(ld_u16_u32m2<A>(vp + 8, 8), 8), 8);
                o2 = __riscv_vfmacc_vf_f32m2(o2, a, f16_f32m2(ld_u16_u32m2<A>(vp + 16, 8), 8), 8);
                o3 = __riscv_vfmacc_vf_f32m2(o3, a, f16_f32m2(ld_u16_u32m2<A>(vp + 24, 8), 8), 8);
                if (++s == f.ring) s = 0;
            }
        }
        float msum = 0.f;
        for (int64_t p = p_begin > ns ? p_begin : ns; p < nq; ++p) {
            const B& b = vq[(p - c.n_sink) * c.vq_stride + cb];
            const float a = scratch[p];
            const float ad = a * f16_f32s(ld_u16s(&b.d));
            msum += a * f16_f32s(ld_u16s(&b.m));
            o0 = __riscv_vfmacc_vf_f32m2(o0, ad, kivi_codes(b, 0, 8), 8);
            o1 = __riscv_vfmacc_vf_f32m2(o1, ad, kivi_codes(b, 1, 8), 8);
            o2 = __riscv_vfmacc_vf_f32m2(o2, ad, kivi_codes(b, 2, 8), 8);
            o3 = __riscv_vfmacc_vf_f32m2(o3, ad, kivi_codes(b, 3, 8), 8);
        }
        o0 = __riscv_vfadd_vf_f32m2(o0, msum, 8), o1 = __riscv_vfadd_vf_f32m2(o1, msum, 8);
        o2 = __riscv_vfadd_vf_f32m2(o2, msum, 8), o3 = __riscv_vfadd_vf_f32m2(o3, msum, 8);
        float* op = out + cb * kKiviGroup;
        st_f32m2<A>(op, __riscv_vfmul_vf_f32m2(o0, inv, 8), 8);
        st_f32m2<A>(op + 8, __riscv_vfmul_vf_f32m2(o1, inv, 8), 8);
        st_f32m2<A>(op + 16, __riscv_vfmul_vf_f32m2(o2, inv, 8), 8);
        st_f32m2<A>(op + 24, __riscv_vfmul_vf_f32m2(o3, inv, 8), 8);
    }
}

template <class B>
void attention_kivi_entry(const float* q, const KiviHead& c, int64_t p_begin, int64_t n_pos, int64_t head_dim, float* scratch,
                          float* out) {
    if (c.n_quant == 0 && n_pos <= c.ring) {
        attention_f16_rvv(q, c.kr, c.vr, c.vr_stride, p_begin, n_pos, head_dim, scratch, out);
        return;
    }
    const bool a = aligned(c.kr, 2) && aligned(c.vr, 2) && aligned(c.ks, 2) && aligned(c.vs, 2) && aligned(scratch, 4) && aligned(out, 4);
    if (a) attention_kivi<true, B>(q, c, p_begin, n_pos, head_dim, scratch, out);
    else attention_kivi<false, B>(q, c, p_begin, n_pos, head_dim, scratch, out);
}

}  // namespace
}  // namespace rvv

void attention_kivi4_rvv(const float* q, const KiviHead& c, int64_t p_begin, int64_t n_pos, int64_t head_dim, float* scratch,
                         float* out) {
    rvv::attention_kivi_entry<block_kivi4>(q, c, p_begin, n_pos, head_dim, scratch, out);
}

void attention_kivi2_rvv(const float* q, const KiviHead& c, int64_t p_begin, int64_t n_pos, int64_t head_dim, float* scratch,
                         float* out) {
    rvv::attention_kivi_entry<block_kivi2>(q, c, p_begin, n_pos, head_dim, scratch, out);
}

}  // namespace edge
