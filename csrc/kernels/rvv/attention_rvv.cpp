// attention_rvv.cpp — attention_fn (kernels.h) with RVV: one head over the tiled, transposed f32 K cache.
//
//   out[0..Dh) = Σ_p softmax_p(q·K_p / sqrt(Dh)) · V_p,  p_begin <= p < n_pos
// Scores: one K tile (kKTile = 16 positions) per step as one e32m4 vector (>= 16 lanes since
// VLEN >= 128), a broadcast-FMA (vfmacc.vf) per head dimension, no horizontal sums; vl = the tile's
// positions below n_pos, so lanes past n_pos are never loaded. Lanes of the first tile before p_begin
// are computed into scratch and never read. Softmax: vfredmax, the polynomial exp of rvv_util.h
// (rel. err < 2e-7), an unordered sum. Output: vl head dimensions at a time, two accumulators over
// the positions. Any head_dim >= 1, n_pos >= 1; any alignment (vle32 when kt, v, scratch and out are
// 4-aligned, else the byte path). Bound vs attention_ref: |Δout| ≤ 1e-5 · max_p ||V_p||_inf.
#include <math.h>

#include "rvv.h"
#include "rvv_util.h"

namespace edge {
namespace rvv {
namespace {

template <bool A>
void attention_a(const float* q, const float* kt, const float* v, int64_t v_stride, int64_t p_begin, int64_t n_pos,
                 int64_t head_dim, float* scratch, float* out) {
    static_assert(kKTile == 16, "one e32m4 vector per tile row");
    const float scale = 1.0f / sqrtf((float)head_dim);
    for (int64_t p = p_begin & ~(int64_t)(kKTile - 1); p < n_pos; p += kKTile) {
        const size_t vl = __riscv_vsetvl_e32m4((size_t)(n_pos - p < kKTile ? n_pos - p : kKTile));
        const float* tile = kt + p * head_dim;  // p is a multiple of kKTile
        vfloat32m4_t a0 = __riscv_vfmv_v_f_f32m4(0.0f, vl), a1 = a0;
        int64_t i = 0;
        for (; i + 2 <= head_dim; i += 2) {
            a0 = __riscv_vfmacc_vf_f32m4(a0, q[i], ld_f32m4<A>(tile + i * kKTile, vl), vl);
            a1 = __riscv_vfmacc_vf_f32m4(a1, q[i + 1], ld_f32m4<A>(tile + (i + 1) * kKTile, vl), vl);
        }
        if (i < head_dim) a0 = __riscv_vfmacc_vf_f32m4(a0, q[i], ld_f32m4<A>(tile + i * kKTile, vl), vl);
        st_f32m4<A>(scratch + p, __riscv_vfmul_vf_f32m4(__riscv_vfadd_vv_f32m4(a0, a1, vl), scale, vl), vl);
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
        st_f32m2<A>(scratch + p, e, vl);
        vsum = __riscv_vfadd_vv_f32m2_tu(vsum, vsum, e, vl);
        p += (int64_t)vl;
    }
    const float sum = __riscv_vfmv_f_s_f32m1_f32(
        __riscv_vfredusum_vs_f32m2_f32m1(vsum, __riscv_vfmv_v_f_f32m1(0.0f, 1), vlmax));
    const float inv = 1.0f / sum;
    for (int64_t i = 0; i < head_dim;) {
        const size_t vl = __riscv_vsetvl_e32m2((size_t)(head_dim - i));
        vfloat32m2_t o0 = __riscv_vfmv_v_f_f32m2(0.0f, vl), o1 = o0;
        const float* vp = v + p_begin * v_stride + i;
        int64_t p = p_begin;
        for (; p + 2 <= n_pos; p += 2, vp += 2 * v_stride) {
            o0 = __riscv_vfmacc_vf_f32m2(o0, scratch[p], ld_f32m2<A>(vp, vl), vl);
            o1 = __riscv_vfmacc_vf_f32m2(o1, scratch[p + 1], ld_f32m2<A>(vp + v_stride, vl), vl);
        }
        if (p < n_pos) o0 = __riscv_vfmacc_vf_f32m2(o0, scratch[p], ld_f32m2<A>(vp, vl), vl);
        st_f32m2<A>(out + i, __riscv_vfmul_vf_f32m2(__riscv_vfadd_vv_f32m2(o0, o1, vl), inv, vl), vl);
        i += (int64_t)vl;
    }
}

}  // namespace
}  // namespace rvv

void attention_rvv(const float* q, const float* kt, const float* v, int64_t v_stride, int64_t p_begin, int64_t n_pos,
                   int64_t head_dim, float* scratch, float* out) {
    // q is read one scalar at a time; the vector loads/stores need kt, v (and its stride), scratch, out.
    const bool a = rvv::aligned(kt, 4) && rvv::aligned(v, 4) && rvv::aligned(scratch, 4) && rvv::aligned(out, 4);
    if (a) rvv::attention_a<true>(q, kt, v, v_stride, p_begin, n_pos, head_dim, scratch, out);
    else rvv::attention_a<false>(q, kt, v, v_stride, p_begin, n_pos, head_dim, scratch, out);
}

}  // namespace edge
