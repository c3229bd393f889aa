// quantize_q8x_rvv.cpp — f32 activations -> block_q8x with RVV (quantize_q8x_fn, kernels.h).
//
// x: n floats (n % 32 == 0, finite, any alignment); y: n/32 block_q8x (any alignment). Bit-exact with
// quantize_q8x_ref, step by step: amax = vfredmax of |x| (exact); d = amax / 127 and id = 1 / d as
// scalar IEEE divisions; q = vfcvt.x.f.v(x · id) — one vfmul, then the conversion in the dynamic
// rounding mode, round-to-nearest-even by default like nearbyintf — clamped to [-127, 127] and narrowed
// to int8; s = d · (float)Σq with Σq an int32 vredsum. No FMA anywhere.
// Each 32-value block goes in vsetvl(e32m4) steps (one step at VLEN >= 256, two at 128).
#include "rvv.h"
#include "rvv_util.h"

namespace edge {
namespace rvv {
namespace {

template <bool A>
void quantize_a(const float* x, uint8_t* y, int64_t n) {
    for (int64_t b = 0; b < n / 32; ++b, x += 32, y += 40) {
        vfloat32m1_t mx = __riscv_vfmv_v_f_f32m1(0.0f, 1);
        for (size_t i = 0, vl; i < 32; i += vl) {
            vl = __riscv_vsetvl_e32m4(32 - i);
            mx = __riscv_vfredmax_vs_f32m4_f32m1(__riscv_vfabs_v_f32m4(ld_f32m4<A>(x + i, vl), vl), mx, vl);
        }
        const float amax = __riscv_vfmv_f_s_f32m1_f32(mx);
        const float d = amax / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        vint32m1_t sum = __riscv_vmv_v_x_i32m1(0, 1);
        for (size_t i = 0, vl; i < 32; i += vl) {
            vl = __riscv_vsetvl_e32m4(32 - i);
            vint32m4_t q = __riscv_vfcvt_x_f_v_i32m4(__riscv_vfmul_vf_f32m4(ld_f32m4<A>(x + i, vl), id, vl), vl);
            q = __riscv_vmin_vx_i32m4(__riscv_vmax_vx_i32m4(q, -127, vl), 127, vl);
            sum = __riscv_vredsum_vs_i32m4_i32m1(q, sum, vl);
            const vint8m1_t q8 = __riscv_vncvt_x_x_w_i8m1(__riscv_vncvt_x_x_w_i16m2(q, vl), vl);
            __riscv_vse8_v_i8m1((int8_t*)(y + 8 + i), q8, vl);
        }
        st_f32s(y, d);
        st_f32s(y + 4, d * (float)__riscv_vmv_x_s_i32m1_i32(sum));
    }
}

}  // namespace
}  // namespace rvv

void quantize_q8x_rvv(const float* x, block_q8x* y, int64_t n) {
    if (rvv::aligned(x, 4)) rvv::quantize_a<true>(x, (uint8_t*)y, n);
    else rvv::quantize_a<false>(x, (uint8_t*)y, n);
}

}  // namespace edge
