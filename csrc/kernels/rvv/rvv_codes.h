// rvv_codes.h — the weight formats of the integer-dot gemms as "32 int8 codes per activation block"
// (include only from files built with V; see rvv_util.h for why everything is internal).
//
// A format policy F (all static) describes one weight block of F::kBlock elements, F::kBlockBytes bytes
// at b (any alignment), as in csrc/kernels/ref/gemm_int_ref.cpp:
//   scale(b)      sw, the f32 weight scale                (f16 d, or 2^(e-127) / 64, / 8, / 2 for MX)
//   offset(b)     m, the int4a offset (f16), kAsym only
//   kMx           0 for a f16 scale at b[0..2) (and int4a's f16 offset at b[2..4)); else the MX factor
//                 (1/64, 1/8, 1/2) of the E8M0 scale byte b[0]: block_scales() decodes many at once
//   codes(b, k)   the integer weight codes wc of elements [32k, 32k + 32) of the block, k < kBlock/32,
//                 as one vint8m2_t at vl = 32 (an e8m2 group holds >= 32 lanes since VLEN >= 128):
//     q8_0, mxint8  q                                     a 32-byte load
//     int4_B        q - 8     int4a_B  q                   split-half nibbles: block k's codes are the
//                                                          low (k < B/64) or high nibbles of 32 bytes
//                                                          (B = 64, 128); for B = 32 the 16 low nibbles
//                                                          then the 16 high ones (one vslideup)
//     mxfp4         2 · e2m1(q)                            the nibbles through vrgather.vv on the
//                                                          16-entry table ref.h kE2M1x2
//     nl4_32     kNl4Values[q]                       the nibbles through vrgather.vv on the
//                                                          16-entry int8 table of quant.h
//     mxfp6         8 · e2m3(q)                            two vrgather.vv pick each code's low and high
//                                                          byte of the 24-bit groups, per-lane shifts
//                                                          cut the 6 bits, a 32-entry magnitude table
//                                                          (vrgather.vv) and a masked negate finish
//     q5_0          q - 16                                 the split-half nibbles, OR 16 where the qh bit
//                                                          is set (qh loaded as a mask register: vlm.v)
//     q4_k          q                                      the low (k even) or high nibbles of 32 bytes;
//                                                          kScales = 8: sub_scales gives d·sc_j and
//                                                          -dmin·m_j of every sub-block (vector decode)
//     q6_k          q - 32                                 4 low bits (ql) | 2 high bits (qh) << 4; the
//                                                          int8 scale of each 16-element half by
//                                                          half_scales (kHalves), sw = f16 d at byte 208
// value(element) = sw · wc (+ m): dequant_rvv.cpp uses the same decoders, so gemm and dequant read the
// formats one way. Every wc fits int8 (|wc| <= 128), so wc · x.q fits the int16 of vwmul.
// Optional fields (defaults: q8x_traits.h): kScaleAt (byte of the f16 scale, 0), kScales (scales per
// block, 1), kHalves (false).
#pragma once

#include "../q8x_traits.h"
#include "../ref/ref.h"  // kE2M1x2 (data only: no inline function of ref.h is called here)
#include "rvv_util.h"

namespace edge {
namespace rvv {
namespace {

constexpr size_t kVl32 = 32;

// Codes [32k, 32k + 32) of a split-half nibble block of B elements whose B/2 bytes start at qs.
template <int B>
inline vuint8m2_t nibbles(const uint8_t* qs, int k) {
    if constexpr (B == 32) {
        const vuint8m2_t v = __riscv_vle8_v_u8m2(qs, 16);
        return __riscv_vslideup_vx_u8m2(__riscv_vand_vx_u8m2(v, 15, 16), __riscv_vsrl_vx_u8m2(v, 4, 16), 16, kVl32);
    } else {
        const vuint8m2_t v = __riscv_vle8_v_u8m2(qs + 32 * (k % (B / 64)), kVl32);
        return k < B / 64 ? __riscv_vand_vx_u8m2(v, 15, kVl32) : __riscv_vsrl_vx_u8m2(v, 4, kVl32);
    }
}

inline float f16_at(const uint8_t* p) { return f16_f32s(ld_u16s(p)); }

struct Q8_0 {
    static constexpr int kBlock = 32, kBlockBytes = 34;
    static constexpr bool kAsym = false;
    static constexpr float kMx = 0.0f;
    static float scale(const uint8_t* b) { return f16_at(b); }
    static float offset(const uint8_t*) { return 0.0f; }
    static vint8m2_t codes(const uint8_t* b, int) { return __riscv_vle8_v_i8m2((const int8_t*)(b + 2), kVl32); }
};

struct MxInt8 {
    static constexpr int kBlock = 32, kBlockBytes = 33;
    static constexpr bool kAsym = false;
    static constexpr float kMx = 0.015625f;
    static float scale(const uint8_t* b) { return e8m0_f32s(b[0]) * kMx; }
    static float offset(const uint8_t*) { return 0.0f; }
    static vint8m2_t codes(const uint8_t* b, int) { return __riscv_vle8_v_i8m2((const int8_t*)(b + 1), kVl32); }
};

template <int B>
struct Int4 {
    static constexpr int kBlock = B, kBlockBytes = 2 + B / 2;
    static constexpr bool kAsym = false;
    static constexpr float kMx = 0.0f;
    static float scale(const uint8_t* b) { return f16_at(b); }
    static float offset(const uint8_t*) { return 0.0f; }
    static vint8m2_t codes(const uint8_t* b, int k) {
        return __riscv_vsub_vx_i8m2(__riscv_vreinterpret_v_u8m2_i8m2(nibbles<B>(b + 2, k)), 8, kVl32);
    }
};

template <int B>
struct Int4a {
    static constexpr int kBlock = B, kBlockBytes = 4 + B / 2;
    static constexpr bool kAsym = true;
    static constexpr float kMx = 0.0f;
    static float scale(const uint8_t* b) { return f16_at(b); }
    static float offset(const uint8_t* b) { return f16_at(b + 2); }
    static vint8m2_t codes(const uint8_t* b, int k) { return __riscv_vreinterpret_v_u8m2_i8m2(nibbles<B>(b + 4, k)); }
};

struct MxFp4 {
    static constexpr int kBlock = 32, kBlockBytes = 17;
    static constexpr bool kAsym = false;
    static constexpr float kMx = 0.5f;
    static float scale(const uint8_t* b) { return e8m0_f32s(b[0]) * kMx; }
    static float offset(const uint8_t*) { return 0.0f; }
    static vint8m2_t codes(const uint8_t* b, int) {
        const vint8m2_t table = __riscv_vle8_v_i8m2(kE2M1x2, 16);  // lanes >= 16 are never indexed
        return __riscv_vrgather_vv_i8m2(table, nibbles<32>(b + 1, 0), kVl32);
    }
};

struct Nl4 {
    static constexpr int kBlock = 32, kBlockBytes = 18;
    static constexpr bool kAsym = false;
    static constexpr float kMx = 0.0f;
    static float scale(const uint8_t* b) { return f16_at(b); }
    static float offset(const uint8_t*) { return 0.0f; }
    static vint8m2_t codes(const uint8_t* b, int) {
        const vint8m2_t table = __riscv_vle8_v_i8m2(kNl4Values, 16);  // lanes >= 16 are never indexed
        return __riscv_vrgather_vv_i8m2(table, nibbles<32>(b + 2, 0), kVl32);
    }
};

// Element j = 4g + i of a MXFP6 block is bits [6i, 6i + 6) of bytes 3g..3g+2 (little-endian): its low
// part is byte kLo[j] >> kShLo[j], its high part byte kHi[j] << kShHi[j] (kept by the & 63; i = 0 and
// i = 3 lie in one byte and shift their "high" byte out by 6).
alignas(32) constexpr uint8_t kFp6Lo[32] = {0,  0,  1,  2,  3,  3,  4,  5,  6,  6,  7,  8,  9,  9,  10, 11,
                                            12, 12, 13, 14, 15, 15, 16, 17, 18, 18, 19, 20, 21, 21, 22, 23};
alignas(32) constexpr uint8_t kFp6Hi[32] = {0,  1,  2,  2,  3,  4,  5,  5,  6,  7,  8,  8,  9,  10, 11, 11,
                                            12, 13, 14, 14, 15, 16, 17, 17, 18, 19, 20, 20, 21, 22, 23, 23};
alignas(32) constexpr uint8_t kFp6ShLo[32] = {0, 6, 4, 2, 0, 6, 4, 2, 0, 6, 4, 2, 0, 6, 4, 2,
                                              0, 6, 4, 2, 0, 6, 4, 2, 0, 6, 4, 2, 0, 6, 4, 2};
alignas(32) constexpr uint8_t kFp6ShHi[32] = {6, 2, 4, 6, 6, 2, 4, 6, 6, 2, 4, 6, 6, 2, 4, 6,
                                              6, 2, 4, 6, 6, 2, 4, 6, 6, 2, 4, 6, 6, 2, 4, 6};
// 8 · E2M3 magnitude of the low 5 code bits (ee mmm): e = 0: m; else (8 + m) << (e - 1) (ref.h e2m3_x8).
alignas(32) constexpr int8_t kFp6Mag[32] = {0,  1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15,
                                            16, 18, 20, 22, 24, 26, 28, 30, 32, 36, 40, 44, 48, 52, 56, 60};

struct MxFp6 {
    static constexpr int kBlock = 32, kBlockBytes = 25;
    static constexpr bool kAsym = false;
    static constexpr float kMx = 0.125f;
    static float scale(const uint8_t* b) { return e8m0_f32s(b[0]) * kMx; }
    static float offset(const uint8_t*) { return 0.0f; }
    static vint8m2_t codes(const uint8_t* b, int) {
        const vuint8m2_t bytes = __riscv_vle8_v_u8m2(b + 1, 24);  // lanes >= 24 are never indexed
        const vuint8m2_t lo = __riscv_vrgather_vv_u8m2(bytes, __riscv_vle8_v_u8m2(kFp6Lo, kVl32), kVl32);
        const vuint8m2_t hi = __riscv_vrgather_vv_u8m2(bytes, __riscv_vle8_v_u8m2(kFp6Hi, kVl32), kVl32);
        const vuint8m2_t code = __riscv_vand_vx_u8m2(
            __riscv_vor_vv_u8m2(__riscv_vsrl_vv_u8m2(lo, __riscv_vle8_v_u8m2(kFp6ShLo, kVl32), kVl32),
                                __riscv_vsll_vv_u8m2(hi, __riscv_vle8_v_u8m2(kFp6ShHi, kVl32), kVl32), kVl32),
            63, kVl32);
        const vint8m2_t mag = __riscv_vrgather_vv_i8m2(__riscv_vle8_v_i8m2(kFp6Mag, kVl32),
                                                       __riscv_vand_vx_u8m2(code, 31, kVl32), kVl32);
        const vbool4_t neg = __riscv_vmsgeu_vx_u8m2_b4(code, 32, kVl32);
        return __riscv_vrsub_vx_i8m2_mu(neg, mag, mag, 0, kVl32);
    }
};

struct Q5_0 {
    static constexpr int kBlock = 32, kBlockBytes = 22;
    static constexpr bool kAsym = false;
    static constexpr float kMx = 0.0f;
    static float scale(const uint8_t* b) { return f16_at(b); }
    static float offset(const uint8_t*) { return 0.0f; }
    static vint8m2_t codes(const uint8_t* b, int) {
        const vbool4_t high = __riscv_vlm_v_b4(b + 2, kVl32);  // bit i of the LE u32 qh = lane i
        const vuint8m2_t nib = nibbles<32>(b + 6, 0);
        const vuint8m2_t q = __riscv_vor_vx_u8m2_mu(high, nib, nib, 16, kVl32);
        return __riscv_vsub_vx_i8m2(__riscv_vreinterpret_v_u8m2_i8m2(q), 16, kVl32);
    }
};

// The 16-bit word of bytes o, o + 1 of vl blocks kBytes apart from p, zero-extended.
template <int kBytes>
inline vuint32m2_t strided_u16(const uint8_t* p, int o, size_t vl) {
    const vuint32m2_t lo = __riscv_vzext_vf4_u32m2(__riscv_vlse8_v_u8mf2(p + o, kBytes, vl), vl);
    const vuint32m2_t hi = __riscv_vzext_vf4_u32m2(__riscv_vlse8_v_u8mf2(p + o + 1, kBytes, vl), vl);
    return __riscv_vor_vv_u32m2(lo, __riscv_vsll_vx_u32m2(hi, 8, vl), vl);
}

struct Q4K {
    static constexpr int kBlock = 256, kBlockBytes = 144;
    static constexpr bool kAsym = true;
    static constexpr float kMx = 0.0f;
    static constexpr int kScales = 8;
    static vint8m2_t codes(const uint8_t* b, int k) {
        return __riscv_vreinterpret_v_u8m2_i8m2(nibbles<64>(b + 16 + 32 * (k / 2), k & 1));
    }
    // sw[8b + j] = d·sc_j, m[8b + j] = -(dmin·m_j) of sub-block j of the nwb blocks at w (quant.h
    // q4_k_scale_min's rule), nwb blocks at a time: byte t of every block by one strided load.
    static void sub_scales(const uint8_t* w, int64_t nwb, float* sw, float* m) {
        for (int64_t b = 0; b < nwb;) {
            const size_t vl = __riscv_vsetvl_e32m2((size_t)(nwb - b));
            const uint8_t* p = w + b * kBlockBytes;
            const vfloat32m2_t d = f16_f32m2(strided_u16<kBlockBytes>(p, 0, vl), vl);
            const vfloat32m2_t dmin = f16_f32m2(strided_u16<kBlockBytes>(p, 2, vl), vl);
            for (int j = 0; j < 4; ++j) {
                const vuint32m2_t s0 = __riscv_vzext_vf4_u32m2(__riscv_vlse8_v_u8mf2(p + 4 + j, kBlockBytes, vl), vl);
                const vuint32m2_t s4 = __riscv_vzext_vf4_u32m2(__riscv_vlse8_v_u8mf2(p + 8 + j, kBlockBytes, vl), vl);
                const vuint32m2_t s8 = __riscv_vzext_vf4_u32m2(__riscv_vlse8_v_u8mf2(p + 12 + j, kBlockBytes, vl), vl);
                // sub-block t's scale code sc and min code mn -> sw[8b' + t], m[8b' + t] of each block b'
                auto put = [&](int t, vuint32m2_t sc, vuint32m2_t mn) {
                    const vfloat32m2_t s = __riscv_vfmul_vv_f32m2(d, __riscv_vfcvt_f_xu_v_f32m2(sc, vl), vl);
                    const vfloat32m2_t o = __riscv_vfmul_vv_f32m2(dmin, __riscv_vfcvt_f_xu_v_f32m2(mn, vl), vl);
                    __riscv_vsse32_v_f32m2(sw + 8 * b + t, 32, s, vl);
                    __riscv_vsse32_v_f32m2(m + 8 * b + t, 32, __riscv_vfneg_v_f32m2(o, vl), vl);
                };
                put(j, __riscv_vand_vx_u32m2(s0, 63, vl), __riscv_vand_vx_u32m2(s4, 63, vl));
                put(j + 4,
                    __riscv_vor_vv_u32m2(__riscv_vand_vx_u32m2(s8, 15, vl),
                                         __riscv_vsll_vx_u32m2(__riscv_vsrl_vx_u32m2(s0, 6, vl), 4, vl), vl),
                    __riscv_vor_vv_u32m2(__riscv_vsrl_vx_u32m2(s8, 4, vl),
                                         __riscv_vsll_vx_u32m2(__riscv_vsrl_vx_u32m2(s4, 6, vl), 4, vl), vl));
            }
            b += (int64_t)vl;
        }
    }
};

struct Q6K {
    static constexpr int kBlock = 256, kBlockBytes = 210;
    static constexpr bool kAsym = false;
    static constexpr float kMx = 0.0f;
    static constexpr int kScaleAt = 208;
    static constexpr bool kHalves = true;
    // Activation block k = group g = k % 4 of half h = k / 4 (quant.h block_q6_k).
    static vint8m2_t codes(const uint8_t* b, int k) {
        const int h = k / 4, g = k % 4;
        vuint8m2_t lo = __riscv_vle8_v_u8m2(b + 64 * h + 32 * (g & 1), kVl32);
        lo = g < 2 ? __riscv_vand_vx_u8m2(lo, 15, kVl32) : __riscv_vsrl_vx_u8m2(lo, 4, kVl32);
        const vuint8m2_t hi = __riscv_vand_vx_u8m2(__riscv_vsrl_vx_u8m2(__riscv_vle8_v_u8m2(b + 128 + 32 * h, kVl32), 2 * g, kVl32), 3, kVl32);
        const vuint8m2_t q = __riscv_vor_vv_u8m2(lo, __riscv_vsll_vx_u8m2(hi, 4, kVl32), kVl32);
        return __riscv_vsub_vx_i8m2(__riscv_vreinterpret_v_u8m2_i8m2(q), 32, kVl32);
    }
    // The int8 scales of elements 0..15 and 16..31 of activation block k.
    static void half_scales(const uint8_t* b, int k, int32_t* sa, int32_t* sb) {
        *sa = (int8_t)b[192 + 2 * k];
        *sb = (int8_t)b[192 + 2 * k + 1];
    }
};

// sw (and, kAsym, m) of nwb consecutive weight blocks at w -> f32 arrays, nwb at a time by strided byte
// loads (any alignment); the same values as F::scale / F::offset (exact conversions, and the MX factor
// times a power of two is one exact multiply as in the reference). The f16 scale is at byte
// q8x::scale_at<F> of a block (q6_k: its last two bytes).
template <class F>
inline void block_scales(const uint8_t* w, int64_t nwb, float* sw, float* m) {
    for (int64_t b = 0; b < nwb;) {
        const size_t vl = __riscv_vsetvl_e32m2((size_t)(nwb - b));
        const uint8_t* p = w + b * F::kBlockBytes + q8x::scale_at<F>::value;
        if (F::kMx != 0.0f) {
            const vuint32m2_t e = __riscv_vzext_vf4_u32m2(__riscv_vlse8_v_u8mf2(p, F::kBlockBytes, vl), vl);
            const vuint32m2_t bits = __riscv_vmerge_vxm_u32m2(__riscv_vsll_vx_u32m2(e, 23, vl), 0x00400000u,
                                                              __riscv_vmseq_vx_u32m2_b16(e, 0, vl), vl);
            __riscv_vse32_v_f32m2(sw + b, __riscv_vfmul_vf_f32m2(__riscv_vreinterpret_v_u32m2_f32m2(bits), F::kMx, vl), vl);
        } else {
            for (int j = 0; j < (F::kAsym ? 2 : 1); ++j)
                __riscv_vse32_v_f32m2((j ? m : sw) + b, f16_f32m2(strided_u16<F::kBlockBytes>(p, 2 * j, vl), vl), vl);
        }
        b += (int64_t)vl;
    }
}

}  // namespace
}  // namespace rvv
}  // namespace edge
