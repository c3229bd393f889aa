// rvv_util.h — helpers shared by the *_rvv.cpp files (include only from files built with V). Every
// conversion here is exact (bit-identical to common.h / ref.h); exp_f32m2 is a polynomial approximation.
//
// Linkage: everything is in an unnamed namespace. An inline function with external linkage compiled in
// a V file could be the copy the linker keeps for the whole program, and the rv64gc core would then run
// vector instructions on a board without V (VisionFive 2: SIGILL). So the *_rvv.cpp files call no inline
// function of common.h / ref.h (they use ref.h's data tables only) and call libm's expf/sqrtf directly.
//
// Alignment: kernels.h requires no alignment, and RVV 1.0 lets a misaligned vle32/vle16 trap. Loads and
// stores take a template flag A: true when the caller checked that every pointer (and stride) is aligned
// to its element size (vle32/vle16), false for the byte path (vle8 of the same bytes, reinterpreted;
// RISC-V is little-endian, so the lanes are the same elements). e8 at 4·vl bytes has the same register
// group size as e32 at vl, so the byte path never splits a load.
#pragma once

#include <riscv_vector.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace edge {
namespace rvv {
namespace {

// ---- scalar ----
inline float ld_f32s(const void* p) {
    float v;
    std::memcpy(&v, p, 4);
    return v;
}
inline uint16_t ld_u16s(const void* p) {
    uint16_t v;
    std::memcpy(&v, p, 2);
    return v;
}
inline void st_f32s(void* p, float v) { std::memcpy(p, &v, 4); }
inline float f32_bits(uint32_t b) {
    float f;
    std::memcpy(&f, &b, 4);
    return f;
}

constexpr uint32_t kTwo112 = 0x77800000u;  // 2^112: f16 exponent bias 15 -> f32 bias 127
constexpr uint32_t kTwo120 = 0x7B800000u;  // 2^120: E4M3 exponent bias 7 -> f32 bias 127

// IEEE half -> float, the bits of common.h f16_to_f32 for every input: the 15 magnitude bits moved to
// the f32 position read as a f32 (a denormal for f16 subnormals) times 2^112 is the exact value of
// every finite half; exponent 31 (inf/NaN, payload kept) is rebuilt by hand.
inline float f16_f32s(uint16_t h) {
    const uint32_t o = (uint32_t)(h & 0x7fff) << 13;
    const float mag = o >= 0x0f800000u ? f32_bits(o | 0x70000000u) : f32_bits(o) * f32_bits(kTwo112);
    return (h & 0x8000) ? -mag : mag;
}
// E8M0 -> 2^(e-127); e = 0 gives the denormal 2^-127 (common.h e8m0_to_f32).
inline float e8m0_f32s(uint8_t e) { return f32_bits(e ? (uint32_t)e << 23 : 0x00400000u); }

// ---- vector loads / stores (see Alignment above) ----
template <bool A>
inline vfloat32m2_t ld_f32m2(const void* p, size_t vl) {
    if (A) return __riscv_vle32_v_f32m2((const float*)p, vl);
    return __riscv_vreinterpret_v_u32m2_f32m2(__riscv_vreinterpret_v_u8m2_u32m2(__riscv_vle8_v_u8m2((const uint8_t*)p, 4 * vl)));
}
template <bool A>
inline vfloat32m4_t ld_f32m4(const void* p, size_t vl) {
    if (A) return __riscv_vle32_v_f32m4((const float*)p, vl);
    return __riscv_vreinterpret_v_u32m4_f32m4(__riscv_vreinterpret_v_u8m4_u32m4(__riscv_vle8_v_u8m4((const uint8_t*)p, 4 * vl)));
}
template <bool A>
inline void st_f32m2(void* p, vfloat32m2_t v, size_t vl) {
    if (A) return __riscv_vse32_v_f32m2((float*)p, v, vl);
    __riscv_vse8_v_u8m2((uint8_t*)p, __riscv_vreinterpret_v_u32m2_u8m2(__riscv_vreinterpret_v_f32m2_u32m2(v)), 4 * vl);
}
template <bool A>
inline void st_f32m4(void* p, vfloat32m4_t v, size_t vl) {
    if (A) return __riscv_vse32_v_f32m4((float*)p, v, vl);
    __riscv_vse8_v_u8m4((uint8_t*)p, __riscv_vreinterpret_v_u32m4_u8m4(__riscv_vreinterpret_v_f32m4_u32m4(v)), 4 * vl);
}
template <bool A>
inline void st_f32m8(void* p, vfloat32m8_t v, size_t vl) {
    if (A) return __riscv_vse32_v_f32m8((float*)p, v, vl);
    __riscv_vse8_v_u8m8((uint8_t*)p, __riscv_vreinterpret_v_u32m8_u8m8(__riscv_vreinterpret_v_f32m8_u32m8(v)), 4 * vl);
}
// vl halves (u16), zero-extended to 32-bit lanes.
template <bool A>
inline vuint32m2_t ld_u16_u32m2(const void* p, size_t vl) {
    vuint16m1_t h = A ? __riscv_vle16_v_u16m1((const uint16_t*)p, vl)
                      : __riscv_vreinterpret_v_u8m1_u16m1(__riscv_vle8_v_u8m1((const uint8_t*)p, 2 * vl));
    return __riscv_vzext_vf2_u32m2(h, vl);
}

inline bool aligned(const void* p, size_t a) { return ((uintptr_t)p & (a - 1)) == 0; }

// ---- element decoders (vl lanes, exact) ----
// f16 bits in the low 16 bits of each lane -> f32 (f16_f32s per lane; NaN payloads kept).
inline vfloat32m2_t f16_f32m2(vuint32m2_t h, size_t vl) {
    const vuint32m2_t o = __riscv_vsll_vx_u32m2(__riscv_vand_vx_u32m2(h, 0x7fff, vl), 13, vl);
    vfloat32m2_t f = __riscv_vfmul_vf_f32m2(__riscv_vreinterpret_v_u32m2_f32m2(o), f32_bits(kTwo112), vl);
    const vbool16_t special = __riscv_vmsgeu_vx_u32m2_b16(o, 0x0f800000u, vl);
    f = __riscv_vmerge_vvm_f32m2(f, __riscv_vreinterpret_v_u32m2_f32m2(__riscv_vor_vx_u32m2(o, 0x70000000u, vl)), special, vl);
    return __riscv_vfsgnj_vv_f32m2(f, __riscv_vreinterpret_v_u32m2_f32m2(__riscv_vsll_vx_u32m2(h, 16, vl)), vl);
}
// bf16 bits in the low 16 bits of each lane -> f32.
inline vfloat32m2_t bf16_f32m2(vuint32m2_t h, size_t vl) {
    return __riscv_vreinterpret_v_u32m2_f32m2(__riscv_vsll_vx_u32m2(h, 16, vl));
}
// E4M3 codes in the low byte of each lane -> f32, the bits of ref.h e4m3_to_f32: magnitude bits at the
// f32 position times 2^120 (subnormal codes become f32 denormals first, so the product is exact too);
// 0x7F/0xFF give ±0x7FC00000 as in the reference.
inline vfloat32m2_t e4m3_f32m2(vuint32m2_t c, size_t vl) {
    const vuint32m2_t mag = __riscv_vand_vx_u32m2(c, 0x7f, vl);
    vfloat32m2_t f = __riscv_vfmul_vf_f32m2(__riscv_vreinterpret_v_u32m2_f32m2(__riscv_vsll_vx_u32m2(mag, 20, vl)),
                                            f32_bits(kTwo120), vl);
    f = __riscv_vfmerge_vfm_f32m2(f, f32_bits(0x7fc00000u), __riscv_vmseq_vx_u32m2_b16(mag, 0x7f, vl), vl);
    return __riscv_vfsgnj_vv_f32m2(f, __riscv_vreinterpret_v_u32m2_f32m2(__riscv_vsll_vx_u32m2(c, 24, vl)), vl);
}

// ---- e^x per lane: Cephes expf (the x86 exp8 polynomial), relative error < 2e-7 for x in
// [-87.3, 88.4] (clamped outside). n = round(x·log2 e) in the default round-to-nearest-even mode.
inline vfloat32m2_t exp_f32m2(vfloat32m2_t x, size_t vl) {
    x = __riscv_vfmax_vf_f32m2(__riscv_vfmin_vf_f32m2(x, 88.3762626647949f, vl), -87.3365478515625f, vl);
    const vint32m2_t n = __riscv_vfcvt_x_f_v_i32m2(__riscv_vfmul_vf_f32m2(x, 1.44269504088896341f, vl), vl);
    const vfloat32m2_t fn = __riscv_vfcvt_f_x_v_f32m2(n, vl);
    x = __riscv_vfnmsac_vf_f32m2(x, 0.693359375f, fn, vl);
    x = __riscv_vfnmsac_vf_f32m2(x, -2.12194440e-4f, fn, vl);
    vfloat32m2_t y = __riscv_vfmv_v_f_f32m2(1.9875691500E-4f, vl);
    y = __riscv_vfmadd_vv_f32m2(y, x, __riscv_vfmv_v_f_f32m2(1.3981999507E-3f, vl), vl);
    y = __riscv_vfmadd_vv_f32m2(y, x, __riscv_vfmv_v_f_f32m2(8.3334519073E-3f, vl), vl);
    y = __riscv_vfmadd_vv_f32m2(y, x, __riscv_vfmv_v_f_f32m2(4.1665795894E-2f, vl), vl);
    y = __riscv_vfmadd_vv_f32m2(y, x, __riscv_vfmv_v_f_f32m2(1.6666665459E-1f, vl), vl);
    y = __riscv_vfmadd_vv_f32m2(y, x, __riscv_vfmv_v_f_f32m2(5.0000001201E-1f, vl), vl);
    y = __riscv_vfmadd_vv_f32m2(y, __riscv_vfmul_vv_f32m2(x, x, vl), __riscv_vfadd_vf_f32m2(x, 1.0f, vl), vl);
    const vint32m2_t e = __riscv_vsll_vx_i32m2(__riscv_vadd_vx_i32m2(n, 127, vl), 23, vl);
    return __riscv_vfmul_vv_f32m2(y, __riscv_vreinterpret_v_i32m2_f32m2(e), vl);
}

}  // namespace
}  // namespace rvv
}  // namespace edge
