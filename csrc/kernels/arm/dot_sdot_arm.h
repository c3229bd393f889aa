// dot_sdot_arm.h — the SDOT dot policy of gemm_q8x_arm.h (armv8.2-a+dotprod): the dotprod level's block
// dot, and the i8mm level's single-column one. Include only from files built with +dotprod
// (*_dotprod.cpp, *_i8mm.cpp). Per row two SDOTs (4 int8 products per int32 lane, exact), then the
// 4-row pairwise-add tree: lane r = row r's exact block sum (halves4: the two 16-element halves apart).
#pragma once

#include "gemm_q8x_arm.h"

namespace edge {
namespace arm {
namespace {  // internal linkage on purpose: see neon_util.h

struct DotSdot {
    static int32x4_t dot4(const int8x16_t* w0, const int8x16_t* w1, int8x16_t a0, int8x16_t a1) {
        int32x4_t s[4];
        for (int r = 0; r < 4; ++r) s[r] = vdotq_s32(vdotq_s32(vdupq_n_s32(0), w0[r], a0), w1[r], a1);
        return rows_sum4(s);
    }
    static void halves4(const int8x16_t* w0, const int8x16_t* w1, int8x16_t a0, int8x16_t a1, int32x4_t* lo,
                        int32x4_t* hi) {
        int32x4_t s0[4], s1[4];
        for (int r = 0; r < 4; ++r) {
            s0[r] = vdotq_s32(vdupq_n_s32(0), w0[r], a0);
            s1[r] = vdotq_s32(vdupq_n_s32(0), w1[r], a1);
        }
        *lo = rows_sum4(s0);
        *hi = rows_sum4(s1);
    }
};

}  // namespace
}  // namespace arm
}  // namespace edge
