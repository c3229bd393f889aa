// kivi_rvv.h — the KIVI block's codes (kernels.h block_kivi4 / block_kivi2, KiviBits) as RVV floats, shared by
// attention_kivi_rvv.cpp and attention_block_rvv.cpp. Exact: vle8 + vsrl + vand + vzext + vfcvt of integers < 16.
// Internal linkage, as rvv_util.h (which says why).
#pragma once

#include <riscv_vector.h>

#include "../kernels.h"

namespace edge {
namespace rvv {
namespace {

// lanes 8k .. 8k + vl - 1 (vl <= 8) of block b: the codes, not yet scaled
template <class B>
inline vfloat32m2_t kivi_codes(const B& b, int k, size_t vl) {
    typedef KiviBits<B> L;
    vuint8mf2_t c = __riscv_vle8_v_u8mf2(b.qs + L::off(k), vl);
    c = __riscv_vand_vx_u8mf2(__riscv_vsrl_vx_u8mf2(c, (size_t)L::shift(k), vl), (uint8_t)L::mask, vl);
    return __riscv_vfcvt_f_xu_v_f32m2(__riscv_vzext_vf4_u32m2(c, vl), vl);
}

}  // namespace
}  // namespace rvv
}  // namespace edge
