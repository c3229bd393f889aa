// gemm_int_neon.cpp — gemm_fn for every integer-dot dtype (q8_0, int4_32/64/128, int4a_32/64/128,
// mxint8, mxfp6, mxfp4, nl4_32, q5_0, q4_k, q6_k) × block_q8x activations with armv8.0 NEON (no SDOT: Raspberry Pi 4).
// The reference is gemm_<dtype>_ref; the tiling, decoders and accuracy are in gemm_q8x_arm.h and
// q8x_formats_arm.h. The block dot: SMULL + SMLAL2 put two products per int16 lane (|w|·|q| ≤ 128·127,
// two of them < 2^15, so never saturating or wrapping), SADDLP/SADALP widen to int32 exactly.
#include "arm.h"
#include "q8x_formats_arm.h"

namespace edge {
namespace arm {
namespace {

struct DotNeon {
    static int32x4_t dot4(const int8x16_t* w0, const int8x16_t* w1, int8x16_t a0, int8x16_t a1) {
        int32x4_t s[4];
        for (int r = 0; r < 4; ++r) {
            int16x8_t p = vmull_s8(vget_low_s8(w0[r]), vget_low_s8(a0));
            p = vmlal_high_s8(p, w0[r], a0);
            int16x8_t q = vmull_s8(vget_low_s8(w1[r]), vget_low_s8(a1));
            q = vmlal_high_s8(q, w1[r], a1);
            s[r] = vpadalq_s16(vpaddlq_s16(p), q);
        }
        return rows_sum4(s);
    }
    static void halves4(const int8x16_t* w0, const int8x16_t* w1, int8x16_t a0, int8x16_t a1, int32x4_t* lo,
                        int32x4_t* hi) {
        int32x4_t s0[4], s1[4];
        for (int r = 0; r < 4; ++r) {
            s0[r] = vpaddlq_s16(vmlal_high_s8(vmull_s8(vget_low_s8(w0[r]), vget_low_s8(a0)), w0[r], a0));
            s1[r] = vpaddlq_s16(vmlal_high_s8(vmull_s8(vget_low_s8(w1[r]), vget_low_s8(a1)), w1[r], a1));
        }
        *lo = rows_sum4(s0);
        *hi = rows_sum4(s1);
    }
};

}  // namespace
}  // namespace arm

EDGE_ARM_DEFINE_INT_GEMMS(neon, arm::DotNeon)

}  // namespace edge
