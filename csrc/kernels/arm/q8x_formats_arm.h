// q8x_formats_arm.h — weight-block decoders (format policies of gemm_q8x_arm.h) for every integer-dot
// dtype, and EDGE_ARM_DEFINE_INT_GEMMS(level, Dot), which defines the fourteen gemm_<dtype>_<level> functions
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
//   nl4_32         kNl4Values (quant.h, int8 in [-127, 113]) from a 16-entry TBL on the split-half nibbles
//   q5_0           q - 16 in [-16, 15]: the split-half nibbles OR 0xF0 where the element's qh bit is clear
//                  (nibble - 16 as int8), the 32 qh bits spread to bytes by TBL + CMTST
//   q4_k           u = q in 0..15 (low or high nibbles of 32 bytes); sub-block scales d·sc_j and offsets
//                  -dmin·m_j of 4 rows decoded together (Q4K::scales: no per-lane scalar code)
//   q6_k           q - 32 in [-32, 31] (4 low bits from ql, 2 high bits from qh); the int8 scale of each
//                  16-element half through kHalves (Q6K::half_scales: one TBL transposes 4 rows' scales)
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

struct Q5_0 {
    static constexpr int kBlock = 32;
    static constexpr int kBlockBytes = 22;
    static constexpr bool kAsym = false;
    static constexpr int kKey = 0;
    template <int s>
    static void load(const uint8_t* blk, int8x16_t& w0, int8x16_t& w1) {
        static const uint8_t kSpread[32] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,
                                            2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3};
        static const uint8_t kBit[16] = {1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128};
        uint32_t qh;
        std::memcpy(&qh, blk + 2, 4);
        const uint8x16_t hb = vreinterpretq_u8_u32(vdupq_n_u32(qh));
        const uint8x16_t bit = vld1q_u8(kBit), f0 = vdupq_n_u8(0xF0);
        const uint8x16_t neg0 = vbicq_u8(f0, vtstq_u8(vqtbl1q_u8(hb, vld1q_u8(kSpread)), bit));  // 0xF0: bit clear
        const uint8x16_t neg1 = vbicq_u8(f0, vtstq_u8(vqtbl1q_u8(hb, vld1q_u8(kSpread + 16)), bit));
        const uint8x16_t v = vld1q_u8(blk + 6);
        w0 = vreinterpretq_s8_u8(vorrq_u8(vandq_u8(v, vdupq_n_u8(0x0F)), neg0));
        w1 = vreinterpretq_s8_u8(vorrq_u8(vshrq_n_u8(v, 4), neg1));
    }
    static void scales(const uint8_t* const* blk, float32x4_t* sw, float32x4_t*) { *sw = f16_gather4(blk); }
};

// The 16 bytes at p[r] (r < 4) as four u32 words each, transposed: out[t] lane r = word t of row r.
inline void words4x4(const uint8_t* const* p, uint32x4_t* out) {
    const uint32x4_t a = vreinterpretq_u32_u8(vld1q_u8(p[0])), b = vreinterpretq_u32_u8(vld1q_u8(p[1]));
    const uint32x4_t c = vreinterpretq_u32_u8(vld1q_u8(p[2])), d = vreinterpretq_u32_u8(vld1q_u8(p[3]));
    const uint64x2_t ab0 = vreinterpretq_u64_u32(vtrn1q_u32(a, b)), ab1 = vreinterpretq_u64_u32(vtrn2q_u32(a, b));
    const uint64x2_t cd0 = vreinterpretq_u64_u32(vtrn1q_u32(c, d)), cd1 = vreinterpretq_u64_u32(vtrn2q_u32(c, d));
    out[0] = vreinterpretq_u32_u64(vzip1q_u64(ab0, cd0));
    out[1] = vreinterpretq_u32_u64(vzip1q_u64(ab1, cd1));
    out[2] = vreinterpretq_u32_u64(vzip2q_u64(ab0, cd0));
    out[3] = vreinterpretq_u32_u64(vzip2q_u64(ab1, cd1));
}

struct Q4K {
    static constexpr int kBlock = 256;
    static constexpr int kBlockBytes = 144;
    static constexpr bool kAsym = true;
    static constexpr int kKey = 0;
    static constexpr int kScales = 8;
    // Activation block s = sub-block s: the low (s even) or high nibbles of qs[32·(s/2) ..+32).
    template <int s>
    static void load(const uint8_t* blk, int8x16_t& w0, int8x16_t& w1) {
        const uint8_t* p = blk + 16 + 32 * (s / 2);
        const uint8x16_t v0 = vld1q_u8(p), v1 = vld1q_u8(p + 16), m4 = vdupq_n_u8(0x0F);
        w0 = vreinterpretq_s8_u8((s & 1) ? vshrq_n_u8(v0, 4) : vandq_u8(v0, m4));
        w1 = vreinterpretq_s8_u8((s & 1) ? vshrq_n_u8(v1, 4) : vandq_u8(v1, m4));
    }
    // Words 1..3 of the block (scales[12]) hold, per byte lane j < 4: sc_j, m_j in the low 6 bits of words 1
    // and 2, the low 4 bits of sc_{j+4} / m_{j+4} in the nibbles of word 3, their top 2 bits in the top
    // 2 bits of words 1 / 2 (quant.h q4_k_scale_min): the rule applied to 4 rows' words at once.
    static void scales(const uint8_t* const* blk, float32x4_t* sw, float32x4_t* m) {
        uint32x4_t wd[4];
        words4x4(blk, wd);
        const float32x4_t d = vcvt_f32_f16(vreinterpret_f16_u16(vmovn_u32(wd[0])));
        const float32x4_t dmin = vcvt_f32_f16(vreinterpret_f16_u16(vshrn_n_u32(wd[0], 16)));
        const uint32x4_t m6 = vdupq_n_u32(0x3F3F3F3Fu), m4 = vdupq_n_u32(0x0F0F0F0Fu), m2 = vdupq_n_u32(0x30303030u);
        const uint32x4_t sc[2] = {vandq_u32(wd[1], m6),
                                  vorrq_u32(vandq_u32(wd[3], m4), vandq_u32(vshrq_n_u32(wd[1], 2), m2))};
        const uint32x4_t mn[2] = {vandq_u32(wd[2], m6),
                                  vorrq_u32(vandq_u32(vshrq_n_u32(wd[3], 4), m4), vandq_u32(vshrq_n_u32(wd[2], 2), m2))};
        const uint32x4_t ff = vdupq_n_u32(0xFF);
        for (int j = 0; j < 8; ++j) {
            const int32x4_t sh = vdupq_n_s32(-8 * (j % 4));
            sw[j] = vmulq_f32(d, vcvtq_f32_u32(vandq_u32(vshlq_u32(sc[j / 4], sh), ff)));
            m[j] = vnegq_f32(vmulq_f32(dmin, vcvtq_f32_u32(vandq_u32(vshlq_u32(mn[j / 4], sh), ff))));
        }
    }
};

struct Q6K {
    static constexpr int kBlock = 256;
    static constexpr int kBlockBytes = 210;
    static constexpr bool kAsym = false;
    static constexpr int kKey = 0;
    static constexpr bool kHalves = true;
    // Activation block s = group g = s % 4 of half h = s / 4 (quant.h block_q6_k).
    template <int s>
    static void load(const uint8_t* blk, int8x16_t& w0, int8x16_t& w1) {
        constexpr int h = s / 4, g = s % 4;
        const uint8_t* ql = blk + 64 * h + 32 * (g & 1);
        const uint8_t* qh = blk + 128 + 32 * h;
        auto code = [&](int o) {
            const uint8x16_t l = vld1q_u8(ql + o), q = vld1q_u8(qh + o);
            const uint8x16_t lo = g < 2 ? vandq_u8(l, vdupq_n_u8(0x0F)) : vshrq_n_u8(l, 4);
            uint8x16_t hi;  // bits 2g, 2g + 1 of q moved to bits 4, 5
            if constexpr (g < 2) hi = vshlq_n_u8(q, 4 - 2 * g);
            else if constexpr (g == 2) hi = q;
            else hi = vshrq_n_u8(q, 2);
            return vsubq_s8(vreinterpretq_s8_u8(vorrq_u8(lo, vandq_u8(hi, vdupq_n_u8(0x30)))), vdupq_n_s8(32));
        };
        w0 = code(0);
        w1 = code(16);
    }
    static void scales(const uint8_t* const* blk, float32x4_t* sw, float32x4_t*) {
        const uint8_t* dp[4] = {blk[0] + 208, blk[1] + 208, blk[2] + 208, blk[3] + 208};
        *sw = f16_gather4(dp);
    }
    // hs[t] lane r = scales[t] of row r, t < 16: one 4-register TBL per 4 halves, then sign extension.
    static void half_scales(const uint8_t* const* blk, int32x4_t* hs) {
        static const uint8_t kIdx[64] = {
            0,  16, 32, 48, 1,  17, 33, 49, 2,  18, 34, 50, 3,  19, 35, 51, 4,  20, 36, 52, 5,  21,
            37, 53, 6,  22, 38, 54, 7,  23, 39, 55, 8,  24, 40, 56, 9,  25, 41, 57, 10, 26, 42, 58,
            11, 27, 43, 59, 12, 28, 44, 60, 13, 29, 45, 61, 14, 30, 46, 62, 15, 31, 47, 63};
        const int8x16x4_t t = {{vld1q_s8((const int8_t*)blk[0] + 192), vld1q_s8((const int8_t*)blk[1] + 192),
                                vld1q_s8((const int8_t*)blk[2] + 192), vld1q_s8((const int8_t*)blk[3] + 192)}};
        for (int q = 0; q < 4; ++q) {
            const int8x16_t b = vqtbl4q_s8(t, vld1q_u8(kIdx + 16 * q));  // halves 4q..4q+3 × rows 0..3
            const int16x8_t lo = vmovl_s8(vget_low_s8(b)), hi = vmovl_high_s8(b);
            hs[4 * q] = vmovl_s16(vget_low_s16(lo));
            hs[4 * q + 1] = vmovl_high_s16(lo);
            hs[4 * q + 2] = vmovl_s16(vget_low_s16(hi));
            hs[4 * q + 3] = vmovl_high_s16(hi);
        }
    }
};

}  // namespace
}  // namespace arm
}  // namespace edge

// The fourteen integer-dot gemm_fn of one level (arm.h), given its dot policy type.
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
    EDGE_ARM_GEMM_DEF(gemm_nl4_32_##level, arm::Nl4, Dot)                       \
    EDGE_ARM_GEMM_DEF(gemm_q5_0_##level, arm::Q5_0, Dot)                        \
    EDGE_ARM_GEMM_DEF(gemm_q4_k_##level, arm::Q4K, Dot)                         \
    EDGE_ARM_GEMM_DEF(gemm_q6_k_##level, arm::Q6K, Dot)
#define EDGE_ARM_COMMA ,
