// dequant_rvv.cpp — dequant_fn (kernels.h) with RVV for every dtype with a reference dequant: one row
// of n elements -> n floats, bit for bit equal to dequant_*_ref (csrc/kernels/ref/dequant_ref.cpp).
//
// src: any alignment; y: n floats, any alignment (vse32 when 4-aligned, else the byte path);
// n a multiple of the block size. Each value is the reference's expression with its single rounding:
//   f32            a copy                      f16 / bf16   exact widening (rvv_util.h), NaN payloads kept
//   q8_0, int4_B   sw · wc (exact products)    int4a_B      sw · q + m (the product is exact, so one
//   mxint8, mxfp6, mxfp4  sw · wc with the                   rounding either way, as the reference says)
//                  reference's sw = 2^(e-127)/64, /8, /2 and wc from the same decoders as the gemms
//                  (rvv_codes.h): int8 codes sign-extended to int32 and converted exactly
//   nl4_32      f16 d · kNl4Values[q] (exact products), the codes by vrgather.vv as in the gemm
//   mxfp8          2^(e-127) · e4m3(q), E4M3 decoded exactly (0x7F/0xFF -> NaN as in the reference;
//                  the product of a NaN is the canonical NaN on RISC-V, in both)
// Blocked formats go 32 elements per vector step (e32m8 holds >= 32 lanes since VLEN >= 128); the
// plain and mxfp8 paths take vl from vsetvl.
#include "rvv.h"
#include "rvv_codes.h"

namespace edge {
namespace rvv {
namespace {

template <class F, bool A>
void dequant_codes_a(const uint8_t* p, float* y, int64_t n) {
    for (int64_t b = 0; b < n / F::kBlock; ++b, p += F::kBlockBytes) {
        const float sw = F::scale(p), m = F::offset(p);
        for (int k = 0; k < F::kBlock / 32; ++k, y += 32) {
            const vint32m8_t c = __riscv_vsext_vf4_i32m8(F::codes(p, k), kVl32);
            vfloat32m8_t v = __riscv_vfmul_vf_f32m8(__riscv_vfcvt_f_x_v_f32m8(c, kVl32), sw, kVl32);
            if (F::kAsym) v = __riscv_vfadd_vf_f32m8(v, m, kVl32);
            st_f32m8<A>(y, v, kVl32);
        }
    }
}

template <class F>
void dequant_codes(const void* src, float* y, int64_t n) {
    if (aligned(y, 4)) dequant_codes_a<F, true>((const uint8_t*)src, y, n);
    else dequant_codes_a<F, false>((const uint8_t*)src, y, n);
}

template <bool A>
void copy_f32(const uint8_t* src, float* y, int64_t n) {
    for (int64_t i = 0; i < n;) {
        const size_t vl = __riscv_vsetvl_e32m2((size_t)(n - i));
        st_f32m2<A>(y + i, ld_f32m2<A>(src + 4 * i, vl), vl);
        i += (int64_t)vl;
    }
}

template <bool A, bool kBf16>
void widen_u16(const uint8_t* src, float* y, int64_t n) {
    for (int64_t i = 0; i < n;) {
        const size_t vl = __riscv_vsetvl_e32m2((size_t)(n - i));
        const vuint32m2_t h = ld_u16_u32m2<A>(src + 2 * i, vl);
        st_f32m2<A>(y + i, kBf16 ? bf16_f32m2(h, vl) : f16_f32m2(h, vl), vl);
        i += (int64_t)vl;
    }
}

template <bool A>
void mxfp8_a(const uint8_t* p, float* y, int64_t n) {
    for (int64_t b = 0; b < n / 32; ++b, p += 33, y += 32) {
        const float s = e8m0_f32s(p[0]);
        for (size_t i = 0, vl; i < 32; i += vl) {
            vl = __riscv_vsetvl_e32m2(32 - i);
            const vuint32m2_t c = __riscv_vzext_vf4_u32m2(__riscv_vle8_v_u8mf2(p + 1 + i, vl), vl);
            st_f32m2<A>(y + i, __riscv_vfmul_vf_f32m2(e4m3_f32m2(c, vl), s, vl), vl);
        }
    }
}

}  // namespace
}  // namespace rvv

void dequant_f32_rvv(const void* src, float* y, int64_t n) {
    if (rvv::aligned(src, 4) && rvv::aligned(y, 4)) rvv::copy_f32<true>((const uint8_t*)src, y, n);
    else rvv::copy_f32<false>((const uint8_t*)src, y, n);
}
void dequant_f16_rvv(const void* src, float* y, int64_t n) {
    if (rvv::aligned(src, 2) && rvv::aligned(y, 4)) rvv::widen_u16<true, false>((const uint8_t*)src, y, n);
    else rvv::widen_u16<false, false>((const uint8_t*)src, y, n);
}
void dequant_bf16_rvv(const void* src, float* y, int64_t n) {
    if (rvv::aligned(src, 2) && rvv::aligned(y, 4)) rvv::widen_u16<true, true>((const uint8_t*)src, y, n);
    else rvv::widen_u16<false, true>((const uint8_t*)src, y, n);
}
void dequant_mxfp8_rvv(const void* src, float* y, int64_t n) {
    if (rvv::aligned(y, 4)) rvv::mxfp8_a<true>((const uint8_t*)src, y, n);
    else rvv::mxfp8_a<false>((const uint8_t*)src, y, n);
}
void dequant_q8_0_rvv(const void* src, float* y, int64_t n) { rvv::dequant_codes<rvv::Q8_0>(src, y, n); }
void dequant_int4_32_rvv(const void* src, float* y, int64_t n) { rvv::dequant_codes<rvv::Int4<32>>(src, y, n); }
void dequant_int4_64_rvv(const void* src, float* y, int64_t n) { rvv::dequant_codes<rvv::Int4<64>>(src, y, n); }
void dequant_int4_128_rvv(const void* src, float* y, int64_t n) { rvv::dequant_codes<rvv::Int4<128>>(src, y, n); }
void dequant_int4a_32_rvv(const void* src, float* y, int64_t n) { rvv::dequant_codes<rvv::Int4a<32>>(src, y, n); }
void dequant_int4a_64_rvv(const void* src, float* y, int64_t n) { rvv::dequant_codes<rvv::Int4a<64>>(src, y, n); }
void dequant_int4a_128_rvv(const void* src, float* y, int64_t n) { rvv::dequant_codes<rvv::Int4a<128>>(src, y, n); }
void dequant_mxint8_rvv(const void* src, float* y, int64_t n) { rvv::dequant_codes<rvv::MxInt8>(src, y, n); }
void dequant_mxfp6_rvv(const void* src, float* y, int64_t n) { rvv::dequant_codes<rvv::MxFp6>(src, y, n); }
void dequant_mxfp4_rvv(const void* src, float* y, int64_t n) { rvv::dequant_codes<rvv::MxFp4>(src, y, n); }
void dequant_nl4_32_rvv(const void* src, float* y, int64_t n) { rvv::dequant_codes<rvv::Nl4>(src, y, n); }

}  // namespace edge
