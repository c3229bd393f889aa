// quantize_q8x_neon.cpp — f32 activations -> block_q8x with armv8.0 NEON (quantize_q8x_fn, kernels.h).
//
// x: n floats (n % 32 == 0, finite, any alignment); y: n/32 block_q8x (any alignment). Bit-exact with
// quantize_q8x_ref: amax by an exact max of |x| (FMAXV); d = amax / 127 and id = 1 / d as scalar IEEE
// divisions (never FRECPE); q = FCVTNS(x * id), i.e. round to nearest with ties to even as nearbyintf in
// the default mode, clamped to [-127, 127]; s = d * (float)Σq with Σq in int32. No FMA anywhere here.
#include <cstring>

#include "arm.h"
#include "neon_util.h"

namespace edge {

void quantize_q8x_neon(const float* x, block_q8x* y, int64_t n) {
    const int32x4_t lo = vdupq_n_s32(-127), hi = vdupq_n_s32(127);
    uint8_t* out = (uint8_t*)y;
    for (int64_t b = 0; b < n / 32; ++b, out += sizeof(block_q8x)) {
        const float* xb = x + b * 32;
        float32x4_t v[8];
        for (int i = 0; i < 8; ++i) v[i] = vld1q_f32(xb + 4 * i);
        float32x4_t m = vabsq_f32(v[0]);
        for (int i = 1; i < 8; ++i) m = vmaxq_f32(m, vabsq_f32(v[i]));
        const float amax = vmaxvq_f32(m);
        const float d = amax / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        int32x4_t q[8];
        int32x4_t sum = vdupq_n_s32(0);
        for (int i = 0; i < 8; ++i) {
            q[i] = vminq_s32(vmaxq_s32(vcvtnq_s32_f32(vmulq_n_f32(v[i], id)), lo), hi);
            sum = vaddq_s32(sum, q[i]);
        }
        // int32 -> int8 (the values are already in [-127, 127]; plain narrowing)
        int16x8_t h[4];
        for (int i = 0; i < 4; ++i) h[i] = vcombine_s16(vmovn_s32(q[2 * i]), vmovn_s32(q[2 * i + 1]));
        vst1q_s8((int8_t*)out + 8, vcombine_s8(vmovn_s16(h[0]), vmovn_s16(h[1])));
        vst1q_s8((int8_t*)out + 24, vcombine_s8(vmovn_s16(h[2]), vmovn_s16(h[3])));
        const float s = d * (float)vaddvq_s32(sum);
        std::memcpy(out, &d, 4);
        std::memcpy(out + 4, &s, 4);
    }
}

}  // namespace edge
