// q8x_formats_arm.h — weight-block decoders (format policies of gemm_q8x_arm.h) for every integer-dot
// dtype, and EDGE_ARM_DEFINE_INT_GEMMS(level, Dot), which defines the eleven gemm_<dtype>_<level> functions
// of arm.h from a dot policy. armv8.0 NEON only (every level includes it).
//
// Each decoder turns 32 elements of a weight block into the reference's integer codes wc (gemm_int_ref.cpp)
// as signed bytes, in activation order (quant.h gives the byte layouts):
//   q8_0, mxint8   the int8 codes as stored (-128 included; the reference never emits it)
//   int4_B         u = q in 0..15 (the driver subtracts 8·Σx.q: K = 8); int4a_B: u = q, plus m·x.s.
//                  Split-half nibbles: each activation block is the low or the high nibbles of 16
//                  (B = 32) or 32 (B = 64, 128) consecutive bytes of the block (see Int4::load)
//   mxfp4          2·E2M1 from a 16-entry TBL: {0,1,2,3,4,6,8,12} and negatives
//   mxfp6          8·E2M3 from a 64-entry TBL (neon_util.h e2m3x8_codes32)
//   nl4_32      kNl4Values (quant.h, int8 in [-127, 113]) from a 16-entry TBL on the split-half nibbles
// Scales: f16 d (and int4a m) widened by FCVTL; E8M0 as 2^(e-127) times 1/64 (mxint8), 1/8 (mxfp6),
// 1/2 (mxfp4), the reference's sw.
#pragma once

#include "gemm_q8x_arm.h"

namespace edge {
namespace arm {
namespace {  // internal linkage on purpose: see neon_util.h

inline float32x4_t e8m0_gather4(const uint8_t* const* blk) {
    uint32x4_t e = vdupq_n_u32(0);
    e = vsetq_lane_u32(blk[0][0], e, 0);
    e = vsetq_lane_u32(blk[1][0], e, 1);
    e = vsetq_lane_u32(blk[2][0], e, 2);
    e = vsetq_lane_u32(blk[3][0], e, 3);
    return e8m0x4(e);
}

template <int kData, bool kMx>
struct Int8 {
    static constexpr int kBlock = 32;
    static constexpr int kBlockBytes = kData + 32;
    static constexpr bool kAsym = false;
    static constexpr int kKey = 0;
    template <int s>
    static void load(const uint8_t* blk, int8x16_t& w0, int8x16_t& w1) {
        w0 = vld1q_s8((const int8_t*)blk + kData);
        w1 = vld1q_s8((const int8_t*)blk + kData + 16);
    }
    static void scales(const uint8_t* const* blk, float32x4_t* sw, float32x4_t*) {
        *sw = kMx ? vmulq_n_f32(e8m0_gather4(blk), 0.015625f) : f16_gather4(blk);
    }
};

template <int B, bool A>
struct Int4 {
    static constexpr int kBlock = B;
    static constexpr int kData = A ? 4 : 2;  // bytes before the nibbles
    static constexpr int kBlockBytes = kData + B / 2;
    static constexpr bool kAsym = A;
    static constexpr int kKey = A ? 0 : 8;
    // Activation block s of the weight block: B = 32: low | high nibbles of the 16 bytes; B = 64: the
    // low (s = 0) or high (s = 1) nibbles of bytes 0..31; B = 128: bytes 32·(s & 1)..+31, high if s ≥ 2.
    template <int s>
    static void load(const uint8_t* blk, int8x16_t& w0, int8x16_t& w1) {
        const uint8x16_t m4 = vdupq_n_u8(0x0F);
        if (B == 32) {
            const uint8x16_t v = vld1q_u8(blk + kData);
            w0 = vreinterpretq_s8_u8(vandq_u8(v, m4));
            w1 = vreinterpretq_s8_u8(vshrq_n_u8(v, 4));
        } else {
            const uint8_t* p = blk + kData + (B == 128 && (s & 1) ? 32 : 0);
            const uint8x16_t v0 = vld1q_u8(p), v1 = vld1q_u8(p + 16);
            constexpr bool high = B == 64 ? s == 1 : s >= 2;
            w0 = vreinterpretq_s8_u8(high ? vshrq_n_u8(v0, 4) : vandq_u8(v0, m4));
            w1 = vreinterpretq_s8_u8(high ? vshrq_n_u8(v1, 4) : vandq_u8(v1, m4));
        }
    }
    static void scales(const uint8_t* const* blk, float32x4_t* sw, float32x4_t* m) {
        *sw = f16_gather4(blk);
        if (A) {
            const uint8_t* mp[4] = {blk[0] + 2, blk[1] + 2, blk[2] + 2, blk[3] + 2};
            *m = f16_gather4(mp);
        }
    }
};

struct MxFp4 {
    static constexpr int kBlock = 32;
    static constexpr int kBlockBytes = 17;
    static constexpr bool kAsym = false;
    static constexpr int kKey = 0;
    template <int s>
    static void load(const uint8_t* blk, int8x16_t& w0, int8x16_t& w1) {
        static const int8_t kLut[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};  // 2·E2M1
        const int8x16_t lut = vld1q_s8(kLut);
        const uint8x16_t v = vld1q_u8(blk + 1);
        w0 = vqtbl1q_s8(lut, vandq_u8(v, vdupq_n_u8(0x0F)));
        w1 = vqtbl1q_s8(lut, vshrq_n_u8(v, 4));
    }
    static void scales(const uint8_t* const* blk, float32x4_t* sw, float32x4_t*) {
        *sw = vmulq_n_f32(e8m0_gather4(blk), 0.5f);
    }
};

struct Nl4 {
    static constexpr int kBlock = 32;
    static constexpr int kBlockBytes = 18;
    static constexpr bool kAsym = false;
    static constexpr int kKey = 0;
    template <int s>
    static void load(const uint8_t* blk, int8x16_t& w0, int8x16_t& w1) {
        const int8x16_t lut = vld1q_s8(kNl4Values);
        const uint8x16_t v = vld1q_u8(blk + 2);
        w0 = vqtbl1q_s8(lut, vandq_u8(v, vdupq_n_u8(0x0F)));
        w1 = vqtbl1q_s8(lut, vshrq_n_u8(v, 4));
    }
    static void scales(const uint8_t* const* blk, float32x4_t* sw, float32x4_t*) { *sw = f16_gather4(blk); }
};

struct MxFp6 {
    static constexpr int kBlock = 32;
    static constexpr int kBlockBytes = 25;
    static constexpr bool kAsym = false;
    static constexpr int kKey = 0;
    template <int s>
    static void load(const uint8_t* blk, int8x16_t& w0, int8x16_t& w1) {
        const int8x16x4_t lut = {{vld1q_s8(kE2M3x8Table), vld1q_s8(kE2M3x8Table + 16), vld1q_s8(kE2M3x8Table + 32),
                                  vld1q_s8(kE2M3x8Table + 48)}};
        e2m3x8_codes32(lut, blk + 1, w0, w1);
    }
    static void scales(const uint8_t* const* blk, float32x4_t* sw, float32x4_t*) {
        *sw = vmulq_n_f32(e8m0_gather4(blk), 0.125f);
    }
};

}  // namespace
}  // namespace arm
}  // namespace edge

// The eleven integer-dot gemm_fn of one level (arm.h), given its dot policy type.
#define EDGE_ARM_GEMM_DEF(fn, Fmt, Dot)                                                                   \
    void fn(const void* W, int64_t ws, int64_t rows, int64_t n, const void* X, int64_t xs, int64_t ncols, \
            float* Y, int64_t ldy) {                                                                      \
        arm::gemm_q8x<Fmt, Dot>(W, ws, rows, n, X, xs, ncols, Y, ldy);                                    \
    }
#define EDGE_ARM_DEFINE_INT_GEMMS(level, Dot)                                    \
    EDGE_ARM_GEMM_DEF(gemm_q8_0_##level, arm::Int8<2 EDGE_ARM_COMMA false>, Dot)   \
    EDGE_ARM_GEMM_DEF(gemm_mxint8_##level, arm::Int8<1 EDGE_ARM_COMMA true>, Dot)  \
    EDGE_ARM_GEMM_DEF(gemm_int4_32_##level, arm::Int4<32 EDGE_ARM_COMMA false>, Dot)   \
    EDGE_ARM_GEMM_DEF(gemm_int4_64_##level, arm::Int4<64 EDGE_ARM_COMMA false>, Dot)   \
    EDGE_ARM_GEMM_DEF(gemm_int4_128_##level, arm::Int4<128 EDGE_ARM_COMMA false>, Dot) \
    EDGE_ARM_GEMM_DEF(gemm_int4a_32_##level, arm::Int4<32 EDGE_ARM_COMMA true>, Dot)   \
    EDGE_ARM_GEMM_DEF(gemm_int4a_64_##level, arm::Int4<64 EDGE_ARM_COMMA true>, Dot)   \
    EDGE_ARM_GEMM_DEF(gemm_int4a_128_##level, arm::Int4<128 EDGE_ARM_COMMA true>, Dot) \
    EDGE_ARM_GEMM_DEF(gemm_mxfp6_##level, arm::MxFp6, Dot)                       \
    EDGE_ARM_GEMM_DEF(gemm_mxfp4_##level, arm::MxFp4, Dot)                       \
    EDGE_ARM_GEMM_DEF(gemm_nl4_32_##level, arm::Nl4, Dot)
#define EDGE_ARM_COMMA ,
