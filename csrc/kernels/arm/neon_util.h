// neon_util.h — small NEON helpers shared by the csrc/kernels/arm/*.cpp files (armv8.0 ASIMD only, so
// every level may include it). Every conversion here is exact; exp4 is a polynomial approximation.
//
// Why an unnamed namespace in a header: the same inline code is compiled in files with different
// -march flags (neon / dotprod / i8mm). With external linkage the linker keeps ONE copy of each inline
// function, possibly the one built for armv8.2 (free to use SDOT/LSE/fp16), and a Raspberry Pi 4 would
// then die of SIGILL in a "neon" kernel. Internal linkage gives each file its own copy.
#pragma once

#include <arm_neon.h>

#include <cstdint>
#include <cstring>

namespace edge {
namespace arm {
namespace {

inline float load_f32u(const void* p) {
    float v;
    std::memcpy(&v, p, 4);
    return v;
}
inline uint16_t load_u16u(const void* p) {
    uint16_t v;
    std::memcpy(&v, p, 2);
    return v;
}

// E8M0 -> 2^(e-127); e = 0 gives the denormal 2^-127 (common.h e8m0_to_f32).
inline float e8m0_f32(uint8_t e) {
    const uint32_t bits = e ? (uint32_t)e << 23 : 0x00400000u;
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
}

// 4 E8M0 bytes (one per 32-bit lane) -> 2^(e-127).
inline float32x4_t e8m0x4(uint32x4_t e) {
    const uint32x4_t bits = vbslq_u32(vceqq_u32(e, vdupq_n_u32(0)), vdupq_n_u32(0x00400000u), vshlq_n_u32(e, 23));
    return vreinterpretq_f32_u32(bits);
}

// 4 IEEE halves -> f32 with FCVTL (armv8.0; a signaling NaN comes out quiet, fine for gemm inputs).
inline float32x4_t f16x4(uint16x4_t h) { return vcvt_f32_f16(vreinterpret_f16_u16(h)); }

// f16 of 4 rows' blocks: the half at p[r] (any alignment) for r < 4.
inline float32x4_t f16_gather4(const uint8_t* const* p) {
    uint16x4_t h = vdup_n_u16(0);
    h = vset_lane_u16(load_u16u(p[0]), h, 0);
    h = vset_lane_u16(load_u16u(p[1]), h, 1);
    h = vset_lane_u16(load_u16u(p[2]), h, 2);
    h = vset_lane_u16(load_u16u(p[3]), h, 3);
    return f16x4(h);
}

// 8 E4M3 codes -> their values / 2^8 as f16 bits: s.eeee.mmm becomes s.0eeee.mmm0000000 (exponent
// bias 15 instead of 7; subnormals map to subnormals). Codes 0x7F/0xFF (NaN) come out as ±480/2^8.
inline uint16x8_t e4m3x8_f16bits(uint8x8_t c) {
    const uint16x8_t h = vshll_n_u8(c, 7);
    return vaddq_u16(h, vandq_u16(h, vdupq_n_u16(0x4000)));  // sign: bit 14 -> 15
}

// 8·E2M3 of every 6-bit code (s ee mmm, bias 1): ref.h e2m3_x8, for a 4-register TBL.
alignas(16) constexpr int8_t kE2M3x8Table[64] = {
    0,   1,   2,   3,   4,   5,   6,   7,   8,   9,   10,  11,  12,  13,  14,  15,
    16,  18,  20,  22,  24,  26,  28,  30,  32,  36,  40,  44,  48,  52,  56,  60,
    0,   -1,  -2,  -3,  -4,  -5,  -6,  -7,  -8,  -9,  -10, -11, -12, -13, -14, -15,
    -16, -18, -20, -22, -24, -26, -28, -30, -32, -36, -40, -44, -48, -52, -56, -60};

// The 32 MXFP6 codes of a block (24 bytes at q: element 4g+i is bits 6i..6i+5 of the little-endian
// 24-bit word at q + 3g) -> 8·E2M3 as int8, w0 = elements 0..15, w1 = 16..31. LD3 splits the bytes
// 3g, 3g+1, 3g+2 into three vectors; shifts give the four codes of each group; TBL maps them; two
// rounds of ZIP restore element order. lut = kE2M3x8Table in 4 registers.
inline void e2m3x8_codes32(const int8x16x4_t& lut, const uint8_t* q, int8x16_t& w0, int8x16_t& w1) {
    const uint8x8x3_t b = vld3_u8(q);  // b.val[j][g] = byte 3g + j: exactly the 24 code bytes
    const uint8x8_t m6 = vdup_n_u8(63);
    const uint8x8_t c0 = vand_u8(b.val[0], m6);
    const uint8x8_t c1 = vand_u8(vorr_u8(vshr_n_u8(b.val[0], 6), vshl_n_u8(b.val[1], 2)), m6);
    const uint8x8_t c2 = vand_u8(vorr_u8(vshr_n_u8(b.val[1], 4), vshl_n_u8(b.val[2], 4)), m6);
    const uint8x8_t c3 = vshr_n_u8(b.val[2], 2);
    // v01 = [wc(4g) | wc(4g+1)], v23 = [wc(4g+2) | wc(4g+3)], g = 0..7
    const int8x16_t v01 = vqtbl4q_s8(lut, vcombine_u8(c0, c1));
    const int8x16_t v23 = vqtbl4q_s8(lut, vcombine_u8(c2, c3));
    const int8x16_t e02 = vzip1q_s8(v01, v23);  // wc(4g), wc(4g+2), g = 0..7
    const int8x16_t e13 = vzip2q_s8(v01, v23);  // wc(4g+1), wc(4g+3)
    w0 = vzip1q_s8(e02, e13);                   // elements 0..15
    w1 = vzip2q_s8(e02, e13);                   // elements 16..31
}

// e^x per lane: Cephes expf (the polynomial of x86's exp8), relative error < 2e-7 for x in
// [-87.3, 88.0] (clamped outside; x > 88.03 gives +inf).
inline float32x4_t exp4(float32x4_t x) {
    x = vmaxq_f32(vminq_f32(x, vdupq_n_f32(88.3762626647949f)), vdupq_n_f32(-87.3365478515625f));
    const float32x4_t fx = vrndnq_f32(vmulq_f32(x, vdupq_n_f32(1.44269504088896341f)));
    x = vfmsq_f32(x, fx, vdupq_n_f32(0.693359375f));
    x = vfmsq_f32(x, fx, vdupq_n_f32(-2.12194440e-4f));
    float32x4_t y = vdupq_n_f32(1.9875691500E-4f);
    y = vfmaq_f32(vdupq_n_f32(1.3981999507E-3f), y, x);
    y = vfmaq_f32(vdupq_n_f32(8.3334519073E-3f), y, x);
    y = vfmaq_f32(vdupq_n_f32(4.1665795894E-2f), y, x);
    y = vfmaq_f32(vdupq_n_f32(1.6666665459E-1f), y, x);
    y = vfmaq_f32(vdupq_n_f32(5.0000001201E-1f), y, x);
    y = vfmaq_f32(vaddq_f32(x, vdupq_n_f32(1.0f)), y, vmulq_f32(x, x));
    const int32x4_t e = vshlq_n_s32(vaddq_s32(vcvtq_s32_f32(fx), vdupq_n_s32(127)), 23);
    return vmulq_f32(y, vreinterpretq_f32_s32(e));
}

}  // namespace
}  // namespace arm
}  // namespace edge
