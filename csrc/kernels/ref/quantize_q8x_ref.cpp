// quantize_q8x_ref.cpp — f32 activations -> block_q8x, the reference every ISA matches bit for bit.
//
// x: n floats (n % 32 == 0, finite); y: n/32 block_q8x. For each block of 32 values x[0..32):
//   amax = max_i |x_i|                                   (exact)
//   d    = amax / 127.0f                                 (one f32 division, round-to-nearest-even)
//   id   = d != 0 ? 1.0f / d : 0.0f                      (one f32 division)
//   q_i  = clamp((int)nearbyintf(x_i * id), -127, 127)   (one f32 multiply, then round half to even
//                                                         in the default rounding mode)
//   s    = d * (float)Σ q_i                              (Σ in int32, exact; one f32 multiply)
// Why these steps exactly: each is one correctly rounded IEEE operation, so SIMD versions (vdivps,
// vmulps, cvtps2dq in round-to-nearest-even; never rcpps or FMA here) give the same bytes at every
// level. Multiplying by id (not dividing by d) is part of the spec: x*id and x/d differ in the last
// bit for some inputs. An all-zero block gives d = 0, s = 0, q = 0.
// Domain: finite x, and each block's amax either 0 or >= 2^-120 (else 1/d overflows to inf and the
// codes are unspecified); RMSNorm-ed activations are far inside it.
// The numpy twin is edgeconv.quant.quantize_q8x.
#include <cmath>

#include "ref.h"

namespace edge {

void quantize_q8x_ref(const float* x, block_q8x* y, int64_t n) {
    for (int64_t b = 0; b < n / 32; ++b) {
        const float* xb = x + b * 32;
        float amax = 0.0f;
        for (int i = 0; i < 32; ++i) {
            float a = std::fabs(xb[i]);
            amax = a > amax ? a : amax;
        }
        float d = amax / 127.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        int sum = 0;
        for (int i = 0; i < 32; ++i) {
            int q = (int)std::nearbyintf(xb[i] * id);
            q = q < -127 ? -127 : (q > 127 ? 127 : q);
            y[b].q[i] = (int8_t)q;
            sum += q;
        }
        y[b].d = d;
        y[b].s = d * (float)sum;
    }
}

}  // namespace edge
