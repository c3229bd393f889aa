// attention_kv_rvv.cpp — attention_f16_fn and attention_q8_fn (kernels.h) with RVV 1.0 (no Zvfh: f16 is
// widened with integer ops, rvv_util.h f16_f32m2, exact; int8 with vsext + vfcvt, exact). The loops of
// attention_rvv: scores a K tile (kKTile = 16 positions) at a time in e32m2 pieces of vl lanes (vl = the
// tile's positions below n_pos, so lanes past n_pos are never loaded or stored), a broadcast-FMA per head
// dimension; q8: each score times ks[p] before the softmax scale, each weight times vs[p] after the sum
// of weights (the reference's grouping). Softmax: vfredmax, the polynomial exp of rvv_util.h, an unordered
// sum. Output: vl head dimensions at a time, one pass over the positions. Any head_dim >= 1, n_pos >= 1,
// any alignment (vle16 / vle32 when the pointers are aligned, else the byte path).
// Bound vs the reference: |Δout| ≤ 1e-5 · max_p ||V_p||_inf.
#include <math.h>

#include "rvv.h"
#include "rvv_util.h"

namespace edge {
namespace rvv {
namespace {

struct F16 {
    typedef uint16_t T;
    template <bool A>
    static vfloat32m2_t ld(const uint16_t* p, size_t vl) { return f16_f32m2(ld_u16_u32m2<A>(p, vl), vl); }
};
struct I8 {
    typedef int8_t T;
    template <bool A>
    static vfloat32m2_t ld(const int8_t* p, size_t vl) {
        return __riscv_vfcvt_f_x_v_f32m2(__riscv_vsext_vf4_i32m2(__riscv_vle8_v_i8mf2(p, vl), vl), vl);
    }
};

template <bool A, class E>
void attention_kv(const float* q, const typename E::T* kt, const float* ks, const typename E::T* v, const float* vs,
                  int64_t v_stride, int64_t p_begin, int64_t n_pos, int64_t head_dim, float* scratch, float* out) {
    const float scale = 1.0f / sqrtf((float)head_dim);
    for (int64_t p = p_begin & ~(int64_t)(kKTile - 1); p < n_pos; p += kKTile) {
        const int64_t k = n_pos - p < kKTile ? n_pos - p : kKTile;
        const typename E::T* tile = kt + p * head_dim;  // p is a multiple of kKTile
        for (int64_t off = 0; off < k;) {
            const size_t vl = __riscv_vsetvl_e32m2((size_t)(k - off));
            vfloat32m2_t a = __riscv_vfmv_v_f_f32m2(0.0f, vl);
            for (int64_t i = 0; i < head_dim; ++i)
                a = __riscv_vfmacc_vf_f32m2(a, q[i], E::template ld<A>(tile + i * kKTile + off, vl), vl);
            if (ks) a = __riscv_vfmul_vv_f32m2(ld_f32m2<A>(ks + p + off, vl), a, vl);
            st_f32m2<A>(scratch + p + off, __riscv_vfmul_vf_f32m2(a, scale, vl), vl);
            off += (int64_t)vl;
        }
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
        st_f32m2<A>(scratch + p, vs ? __riscv_vfmul_vv_f32m2(e, ld_f32m2<A>(vs + p, vl), vl) : e, vl);
        p += (int64_t)vl;
    }
    const float sum = __riscv_vfmv_f_s_f32m1_f32(
        __riscv_vfredusum_vs_f32m2_f32m1(vsum, __riscv_vfmv_v_f_f32m1(0.0f, 1), vlmax));
    const float inv = 1.0f / sum;
    for (int64_t i = 0; i < head_dim;) {
        const size_t vl = __riscv_vsetvl_e32m2((size_t)(head_dim - i));
        vfloat32m2_t o = __riscv_vfmv_v_f_f32m2(0.0f, vl);
        const typename E::T* vp = v + p_begin * v_stride + i;
        for (int64_t p = p_begin; p < n_pos; ++p, vp += v_stride)
            o = __riscv_vfmacc_vf_f32m2(o, scratch[p], E::template ld<A>(vp, vl), vl);
        st_f32m2<A>(out + i, __riscv_vfmul_vf_f32m2(o, inv, vl), vl);
        i += (int64_t)vl;
    }
}

}  // namespace
}  // namespace rvv

void attention_f16_rvv(const float* q, const uint16_t* kt, const uint16_t* v, int64_t v_stride, int64_t p_begin,
                       int64_t n_pos, int64_t head_dim, float* scratch, float* out) {
    const bool a = rvv::aligned(kt, 2) && rvv::aligned(v, 2) && rvv::aligned(scratch, 4) && rvv::aligned(out, 4);
    if (a) rvv::attention_kv<true, rvv::F16>(q, kt, nullptr, v, nullptr, v_stride, p_begin, n_pos, head_dim, scratch, out);
    else rvv::attention_kv<false, rvv::F16>(q, kt, nullptr, v, nullptr, v_stride, p_begin, n_pos, head_dim, scratch, out);
}

void attention_q8_rvv(const float* q, const int8_t* kt, const float* ks, const int8_t* v, const float* vs,
                      int64_t v_stride, int64_t p_begin, int64_t n_pos, int64_t head_dim, float* scratch, float* out) {
    const bool a = rvv::aligned(ks, 4) && rvv::aligned(vs, 4) && rvv::aligned(scratch, 4) && rvv::aligned(out, 4);
    if (a) rvv::attention_kv<true, rvv::I8>(q, kt, ks, v, vs, v_stride, p_begin, n_pos, head_dim, scratch, out);
    else rvv::attention_kv<false, rvv::I8>(q, kt, ks, v, vs, v_stride, p_begin, n_pos, head_dim, scratch, out);
}

}  // namespace edge
