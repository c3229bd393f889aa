// kivi_neon.h — the KIVI block's codes (kernels.h block_kivi4 / block_kivi2, KiviBits) as NEON floats, shared by
// attention_kivi_neon.cpp and attention_block_neon.cpp. Exact: ushl + and + uxtl + ucvtf of integers < 16.
#pragma once

#include <arm_neon.h>

#include "../kernels.h"

namespace edge {
namespace arm {
namespace {  // internal linkage, as neon_util.h

// lanes 8k .. 8k+7 of block b as two vectors (the codes, not yet scaled)
template <class B, int k>
inline void kivi_piece(const B& b, float32x4_t* o) {
    typedef KiviBits<B> L;
    const uint8x8_t c = vand_u8(vshl_u8(vld1_u8(b.qs + L::off(k)), vdup_n_s8((int8_t)-L::shift(k))), vdup_n_u8((uint8_t)L::mask));
    const uint16x8_t w = vmovl_u8(c);
    o[0] = vcvtq_f32_u32(vmovl_u16(vget_low_u16(w)));
    o[1] = vcvtq_f32_u32(vmovl_u16(vget_high_u16(w)));
}

}  // namespace
}  // namespace arm
}  // namespace edge
