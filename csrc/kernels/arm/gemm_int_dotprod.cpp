// gemm_int_dotprod.cpp — gemm_fn for every integer-dot dtype (q8_0, int4_32/64/128, int4a_32/64/128,
// mxint8, mxfp6, mxfp4, nl4_32) × block_q8x activations with SDOT (armv8.2-a+dotprod: Raspberry Pi 5). Built
// with -march=armv8.2-a+dotprod+fp16 and used only when AT_HWCAP has ASIMDDP (dispatch.cpp).
// The reference is gemm_<dtype>_ref; the tiling, decoders and accuracy are in gemm_q8x_arm.h and
// q8x_formats_arm.h. The block dot: two SDOTs per row (4 int8 products per int32 lane, exact).
#include "arm.h"
#include "q8x_formats_arm.h"

namespace edge {
namespace arm {
namespace {

struct DotSdot {
    static int32x4_t dot4(const int8x16_t* w0, const int8x16_t* w1, int8x16_t a0, int8x16_t a1) {
        int32x4_t s[4];
        for (int r = 0; r < 4; ++r) s[r] = vdotq_s32(vdotq_s32(vdupq_n_s32(0), w0[r], a0), w1[r], a1);
        return vpaddq_s32(vpaddq_s32(s[0], s[1]), vpaddq_s32(s[2], s[3]));
    }
};

}  // namespace
}  // namespace arm

EDGE_ARM_DEFINE_INT_GEMMS(dotprod, arm::DotSdot)

}  // namespace edge
