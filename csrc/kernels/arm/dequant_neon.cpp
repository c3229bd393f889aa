// dequant_neon.cpp — dequant_fn (kernels.h) with armv8.0 NEON for f16, bf16, q8_0, int4_B, int4a_B,
// mxint8, mxfp8, mxfp6, mxfp4 and nl4_32: one row of n elements -> n floats, bit for bit equal to dequant_*_ref
// (embedding lookups, one row at a time; the dotprod/i8mm levels keep these).
// src: any alignment; y: n floats; n a multiple of the block size. Every value is the reference's
// expression with the same single rounding: d·q and d·(q-8) are exact products (f16 scale × small
// integer); int4a's d·q + m is one FMA (the product is exact, so fused or not rounds the same);
// mxint8 is (2^(e-127)/64)·q, mxfp6 (2^(e-127)/8)·(8·E2M3), mxfp4 (2^(e-127)/2)·(2·E2M1) with the
// integer codes from TBL tables (nl4_32: d·kNl4Values[q], exact); mxfp8 decodes E4M3 exactly (via f16 bits, times 2^8) and multiplies
// by 2^(e-127) once.
// NaNs match too: FCVTL would quiet a signaling f16 NaN (set bit 22), the reference copies the payload,
// so NaN lanes are rebuilt from the bits; E4M3 NaN codes 0x7F/0xFF give the reference's ±0x7FC00000.
#include <cstring>

#include "arm.h"
#include "neon_util.h"

namespace edge {
namespace arm {
namespace {

// 16 int8 codes times a scale -> y[0..16).
inline void scale_codes16(int8x16_t q, float s, float* y) {
    const int16x8_t lo = vmovl_s8(vget_low_s8(q)), hi = vmovl_high_s8(q);
    vst1q_f32(y + 0, vmulq_n_f32(vcvtq_f32_s32(vmovl_s16(vget_low_s16(lo))), s));
    vst1q_f32(y + 4, vmulq_n_f32(vcvtq_f32_s32(vmovl_high_s16(lo)), s));
    vst1q_f32(y + 8, vmulq_n_f32(vcvtq_f32_s32(vmovl_s16(vget_low_s16(hi))), s));
    vst1q_f32(y + 12, vmulq_n_f32(vcvtq_f32_s32(vmovl_high_s16(hi)), s));
}

// 16 uint8 codes -> d·q + m (one rounding: d·q is exact) -> y[0..16).
inline void affine_codes16(uint8x16_t q, float32x4_t d, float32x4_t m, float* y) {
    const uint16x8_t lo = vmovl_u8(vget_low_u8(q)), hi = vmovl_high_u8(q);
    vst1q_f32(y + 0, vfmaq_f32(m, d, vcvtq_f32_u32(vmovl_u16(vget_low_u16(lo)))));
    vst1q_f32(y + 4, vfmaq_f32(m, d, vcvtq_f32_u32(vmovl_high_u16(lo))));
    vst1q_f32(y + 8, vfmaq_f32(m, d, vcvtq_f32_u32(vmovl_u16(vget_low_u16(hi)))));
    vst1q_f32(y + 12, vfmaq_f32(m, d, vcvtq_f32_u32(vmovl_high_u16(hi))));
}

template <int B, bool A>
void dequant_int4(const void* src, float* y, int64_t n) {
    constexpr int kData = A ? 4 : 2, kBytes = kData + B / 2;
    const uint8_t* p = (const uint8_t*)src;
    const uint8x16_t m4 = vdupq_n_u8(0x0F);
    for (int64_t b = 0; b < n / B; ++b, p += kBytes, y += B) {
        const float d = vgetq_lane_f32(f16x4(vdup_n_u16(load_u16u(p))), 0);
        const float m = A ? vgetq_lane_f32(f16x4(vdup_n_u16(load_u16u(p + 2))), 0) : 0.0f;
        for (int j = 0; j < B / 2; j += 16) {
            const uint8x16_t v = vld1q_u8(p + kData + j);
            const uint8x16_t lo = vandq_u8(v, m4), hi = vshrq_n_u8(v, 4);
            if (A) {
                affine_codes16(lo, vdupq_n_f32(d), vdupq_n_f32(m), y + j);
                affine_codes16(hi, vdupq_n_f32(d), vdupq_n_f32(m), y + j + B / 2);
            } else {
                const int8x16_t eight = vdupq_n_s8(8);
                scale_codes16(vsubq_s8(vreinterpretq_s8_u8(lo), eight), d, y + j);
                scale_codes16(vsubq_s8(vreinterpretq_s8_u8(hi), eight), d, y + j + B / 2);
            }
        }
    }
}

}  // namespace
}  // namespace arm

using namespace arm;

void dequant_f16_neon(const void* src, float* y, int64_t n) {
    const uint8_t* p = (const uint8_t*)src;
    int64_t i = 0;
    auto four = [](uint16x4_t h) {
        // FCVTL sets the quiet bit of a NaN; the reference keeps the payload: sign | 0x7F800000 | man << 13.
        const uint32x4_t h32 = vmovl_u16(h);
        const uint32x4_t nan = vcgtq_u32(vandq_u32(h32, vdupq_n_u32(0x7FFF)), vdupq_n_u32(0x7C00));
        const uint32x4_t raw = vorrq_u32(vshlq_n_u32(vandq_u32(h32, vdupq_n_u32(0x8000)), 16),
                                         vorrq_u32(vdupq_n_u32(0x7F800000u), vshlq_n_u32(vandq_u32(h32, vdupq_n_u32(0x3FF)), 13)));
        return vbslq_u32(nan, raw, vreinterpretq_u32_f32(f16x4(h)));
    };
    for (; i + 8 <= n; i += 8) {
        const uint16x8_t h = vreinterpretq_u16_u8(vld1q_u8(p + 2 * i));
        vst1q_u32((uint32_t*)(y + i), four(vget_low_u16(h)));
        vst1q_u32((uint32_t*)(y + i + 4), four(vget_high_u16(h)));
    }
    for (; i < n; ++i) {  // n % 32 == 0 for every caller; kept for completeness
        const uint32_t b = vgetq_lane_u32(four(vdup_n_u16(load_u16u(p + 2 * i))), 0);
        std::memcpy(y + i, &b, 4);
    }
}

void dequant_bf16_neon(const void* src, float* y, int64_t n) {
    const uint8_t* p = (const uint8_t*)src;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const uint16x8_t h = vreinterpretq_u16_u8(vld1q_u8(p + 2 * i));
        vst1q_u32((uint32_t*)(y + i), vshll_n_u16(vget_low_u16(h), 16));
        vst1q_u32((uint32_t*)(y + i + 4), vshll_high_n_u16(h, 16));
    }
    for (; i < n; ++i) {
        const uint32_t bits = (uint32_t)load_u16u(p + 2 * i) << 16;
        std::memcpy(y + i, &bits, 4);
    }
}

void dequant_q8_0_neon(const void* src, float* y, int64_t n) {
    const uint8_t* p = (const uint8_t*)src;
    for (int64_t b = 0; b < n / 32; ++b, p += 34, y += 32) {
        const float d = vgetq_lane_f32(f16x4(vdup_n_u16(load_u16u(p))), 0);
        scale_codes16(vld1q_s8((const int8_t*)p + 2), d, y);
        scale_codes16(vld1q_s8((const int8_t*)p + 18), d, y + 16);
    }
}

void dequant_mxint8_neon(const void* src, float* y, int64_t n) {
    const uint8_t* p = (const uint8_t*)src;
    for (int64_t b = 0; b < n / 32; ++b, p += 33, y += 32) {
        const float s = e8m0_f32(p[0]) * 0.015625f;
        scale_codes16(vld1q_s8((const int8_t*)p + 1), s, y);
        scale_codes16(vld1q_s8((const int8_t*)p + 17), s, y + 16);
    }
}

void dequant_mxfp4_neon(const void* src, float* y, int64_t n) {
    static const int8_t kLut[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};  // 2·E2M1
    const int8x16_t lut = vld1q_s8(kLut);
    const uint8_t* p = (const uint8_t*)src;
    for (int64_t b = 0; b < n / 32; ++b, p += 17, y += 32) {
        const float s = e8m0_f32(p[0]) * 0.5f;
        const uint8x16_t v = vld1q_u8(p + 1);
        scale_codes16(vqtbl1q_s8(lut, vandq_u8(v, vdupq_n_u8(0x0F))), s, y);
        scale_codes16(vqtbl1q_s8(lut, vshrq_n_u8(v, 4)), s, y + 16);
    }
}

void dequant_nl4_32_neon(const void* src, float* y, int64_t n) {
    const int8x16_t lut = vld1q_s8(kNl4Values);
    const uint8_t* p = (const uint8_t*)src;
    for (int64_t b = 0; b < n / 32; ++b, p += 18, y += 32) {
        const float d = vgetq_lane_f32(f16x4(vdup_n_u16(load_u16u(p))), 0);
        const uint8x16_t v = vld1q_u8(p + 2);
        scale_codes16(vqtbl1q_s8(lut, vandq_u8(v, vdupq_n_u8(0x0F))), d, y);
        scale_codes16(vqtbl1q_s8(lut, vshrq_n_u8(v, 4)), d, y + 16);
    }
}

void dequant_mxfp6_neon(const void* src, float* y, int64_t n) {
    const uint8_t* p = (const uint8_t*)src;
    const int8x16x4_t lut = {{vld1q_s8(kE2M3x8Table), vld1q_s8(kE2M3x8Table + 16), vld1q_s8(kE2M3x8Table + 32),
                              vld1q_s8(kE2M3x8Table + 48)}};
    for (int64_t b = 0; b < n / 32; ++b, p += 25, y += 32) {
        const float s = e8m0_f32(p[0]) * 0.125f;
        int8x16_t w0, w1;
        e2m3x8_codes32(lut, p + 1, w0, w1);
        scale_codes16(w0, s, y);
        scale_codes16(w1, s, y + 16);
    }
}

void dequant_mxfp8_neon(const void* src, float* y, int64_t n) {
    const uint8_t* p = (const uint8_t*)src;
    for (int64_t b = 0; b < n / 32; ++b, p += 33, y += 32) {
        const float s = e8m0_f32(p[0]);
        for (int j = 0; j < 32; j += 8) {
            const uint8x8_t c = vld1_u8(p + 1 + j);
            const float16x8_t h = vreinterpretq_f16_u16(e4m3x8_f16bits(c));
            const uint16x8_t c16 = vmovl_u8(c);
            const uint16x8_t nan = vceqq_u16(vandq_u16(c16, vdupq_n_u16(0x7F)), vdupq_n_u16(0x7F));
            float32x4_t v[2] = {vmulq_n_f32(vcvt_f32_f16(vget_low_f16(h)), 256.0f), vmulq_n_f32(vcvt_high_f32_f16(h), 256.0f)};
            for (int k = 0; k < 2; ++k) {
                const uint32x4_t c32 = k ? vmovl_high_u16(c16) : vmovl_u16(vget_low_u16(c16));
                const int16x8_t nan_s = vreinterpretq_s16_u16(nan);  // sign-extend: all-ones lanes
                const uint32x4_t isnan = vreinterpretq_u32_s32(k ? vmovl_high_s16(nan_s) : vmovl_s16(vget_low_s16(nan_s)));
                const uint32x4_t nanbits = vorrq_u32(vdupq_n_u32(0x7FC00000u), vshlq_n_u32(vshrq_n_u32(c32, 7), 31));
                v[k] = vbslq_f32(isnan, vreinterpretq_f32_u32(nanbits), v[k]);
                vst1q_f32(y + j + 4 * k, vmulq_n_f32(v[k], s));
            }
        }
    }
}

void dequant_int4_32_neon(const void* src, float* y, int64_t n) { dequant_int4<32, false>(src, y, n); }
void dequant_int4_64_neon(const void* src, float* y, int64_t n) { dequant_int4<64, false>(src, y, n); }
void dequant_int4_128_neon(const void* src, float* y, int64_t n) { dequant_int4<128, false>(src, y, n); }
void dequant_int4a_32_neon(const void* src, float* y, int64_t n) { dequant_int4<32, true>(src, y, n); }
void dequant_int4a_64_neon(const void* src, float* y, int64_t n) { dequant_int4<64, true>(src, y, n); }
void dequant_int4a_128_neon(const void* src, float* y, int64_t n) { dequant_int4<128, true>(src, y, n); }

}  // namespace edge
