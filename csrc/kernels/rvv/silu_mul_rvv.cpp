// silu_mul_rvv.cpp — silu_mul_fn (kernels.h) with RVV: y = g / (1 + e^-g) · u per lane, vl from vsetvl
// (no scalar tail), the polynomial exp of rvv_util.h (rel. err < 2e-7) and one IEEE division, so
// |Δy| ≤ 1e-6·|g·u| + 1e-30 vs silu_mul_ref. y may alias g or u (each step loads before it stores).
// Any alignment (vle32 when all three pointers are 4-aligned, else the byte path).
#include "rvv.h"
#include "rvv_util.h"

namespace edge {
namespace rvv {
namespace {

template <bool A>
void silu_mul_a(const float* g, const float* u, int64_t n, float* y) {
    for (int64_t i = 0; i < n;) {
        const size_t vl = __riscv_vsetvl_e32m2((size_t)(n - i));
        const vfloat32m2_t gv = ld_f32m2<A>(g + i, vl), uv = ld_f32m2<A>(u + i, vl);
        const vfloat32m2_t den = __riscv_vfadd_vf_f32m2(exp_f32m2(__riscv_vfneg_v_f32m2(gv, vl), vl), 1.0f, vl);
        st_f32m2<A>(y + i, __riscv_vfmul_vv_f32m2(__riscv_vfdiv_vv_f32m2(gv, den, vl), uv, vl), vl);
        i += (int64_t)vl;
    }
}

}  // namespace
}  // namespace rvv

void silu_mul_rvv(const float* g, const float* u, int64_t n, float* y) {
    if (rvv::aligned(g, 4) && rvv::aligned(u, 4) && rvv::aligned(y, 4)) rvv::silu_mul_a<true>(g, u, n, y);
    else rvv::silu_mul_a<false>(g, u, n, y);
}

}  // namespace edge
