// dequant_avx2.cpp — dequant_fn (kernels.h) with AVX2 + F16C for f16, bf16, q8_0, int4_B, int4a_B,
// mxint8, mxfp8, mxfp4 and nl4_32: one row of n elements -> n floats, bit for bit equal to dequant_*_ref
// (used for embedding lookups, so one row at a time; the AVX-512 levels keep these).
// src: any alignment; y: n floats; n a multiple of the block size. Every value is the reference's
// expression with the same single rounding: d·q and d·(q-8) are exact products (f16 scale × small
// integer); int4a's d·q + m is one FMA (the product is exact, so fused or not rounds the same);
// mxint8 is (2^(e-127)/64)·q; mxfp8 decodes E4M3 exactly (via f16 bits, times 2^8) and multiplies by
// 2^(e-127) once; mxfp4 is (2^(e-127)/2)·(2·E2M1) with the doubled values from a vpshufb table;
// nl4_32 is d·value with the int8 values of kNl4Values from a vpshufb table (exact products).
// NaNs match too: f16 signaling NaNs keep their payload (F16C would quiet them) and the E4M3 NaN
// codes 0x7F/0xFF give the reference's ±0x7FC00000.
#include <cstring>

#include "avx2_util.h"
#include "x86.h"

namespace edge {
namespace {

using namespace x86;

inline uint16_t u16(const uint8_t* p) {
    uint16_t v;
    std::memcpy(&v, p, 2);
    return v;
}
inline float f16_scalar(const uint8_t* p) { return _cvtsh_ss(u16(p)); }
// 8 int8 -> 8 f32 (exact).
inline __m256 i8x8(__m128i v) { return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(v)); }

// 32 bytes of int8 codes (one per element) times a scale -> y[0..32).
inline void scale_codes32(__m256i q, __m256 s, float* y) {
    const __m128i lo = _mm256_castsi256_si128(q), hi = _mm256_extracti128_si256(q, 1);
    _mm256_storeu_ps(y + 0, _mm256_mul_ps(s, i8x8(lo)));
    _mm256_storeu_ps(y + 8, _mm256_mul_ps(s, i8x8(_mm_unpackhi_epi64(lo, lo))));
    _mm256_storeu_ps(y + 16, _mm256_mul_ps(s, i8x8(hi)));
    _mm256_storeu_ps(y + 24, _mm256_mul_ps(s, i8x8(_mm_unpackhi_epi64(hi, hi))));
}

template <int B, bool A>
void dequant_int4(const void* src, float* y, int64_t n) {
    constexpr int kData = A ? 4 : 2, kBytes = kData + B / 2;
    const uint8_t* p = (const uint8_t*)src;
    const __m128i m4 = _mm_set1_epi8(0x0F), eight = _mm_set1_epi8(8);
    for (int64_t b = 0; b < n / B; ++b, p += kBytes, y += B) {
        const __m256 d = _mm256_set1_ps(f16_scalar(p));
        const __m256 m = _mm256_set1_ps(A ? f16_scalar(p + 2) : 0.0f);
        for (int j = 0; j < B / 2; j += 16) {
            const __m128i v = _mm_loadu_si128((const __m128i*)(p + kData + j));
            __m128i lo = _mm_and_si128(v, m4), hi = _mm_and_si128(_mm_srli_epi16(v, 4), m4);
            if (!A) lo = _mm_sub_epi8(lo, eight), hi = _mm_sub_epi8(hi, eight);
            const __m128i q[2] = {lo, hi};
            for (int h = 0; h < 2; ++h) {
                const __m256 a = i8x8(q[h]), b8 = i8x8(_mm_unpackhi_epi64(q[h], q[h]));
                float* out = y + j + h * (B / 2);
                if (A) {
                    _mm256_storeu_ps(out, _mm256_fmadd_ps(d, a, m));
                    _mm256_storeu_ps(out + 8, _mm256_fmadd_ps(d, b8, m));
                } else {
                    _mm256_storeu_ps(out, _mm256_mul_ps(d, a));
                    _mm256_storeu_ps(out + 8, _mm256_mul_ps(d, b8));
                }
            }
        }
    }
}

}  // namespace

void dequant_f16_avx2(const void* src, float* y, int64_t n) {
    const uint8_t* p = (const uint8_t*)src;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m128i raw = _mm_loadu_si128((const __m128i*)(p + 2 * i));
        const __m256i h = _mm256_cvtepu16_epi32(raw);
        // vcvtph2ps sets the quiet bit of a NaN; the reference copies the payload: restore bit 22 from
        // the half's bit 9 where the half is a NaN.
        const __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(h, _mm256_set1_epi32(0x7FFF)), _mm256_set1_epi32(0x7C00));
        const __m256i quiet = _mm256_and_si256(nan, _mm256_set1_epi32(0x00400000));
        const __m256i f = _mm256_castps_si256(_mm256_cvtph_ps(raw));
        _mm256_storeu_si256((__m256i*)(y + i),
                            _mm256_or_si256(_mm256_andnot_si256(quiet, f), _mm256_and_si256(_mm256_slli_epi32(h, 13), quiet)));
    }
    for (; i < n; ++i) {  // n % 32 == 0 for every caller; kept for completeness
        const uint16_t h = u16(p + 2 * i);
        float f = _cvtsh_ss(h);
        if ((h & 0x7FFF) > 0x7C00) {
            uint32_t bits;
            std::memcpy(&bits, &f, 4);
            bits = (bits & ~0x00400000u) | ((uint32_t)(h & 0x200) << 13);
            std::memcpy(&f, &bits, 4);
        }
        y[i] = f;
    }
}

void dequant_bf16_avx2(const void* src, float* y, int64_t n) {
    const uint8_t* p = (const uint8_t*)src;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256i h = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i*)(p + 2 * i)));
        _mm256_storeu_ps(y + i, _mm256_castsi256_ps(_mm256_slli_epi32(h, 16)));
    }
    for (; i < n; ++i) {
        const uint32_t bits = (uint32_t)u16(p + 2 * i) << 16;
        std::memcpy(y + i, &bits, 4);
    }
}

void dequant_q8_0_avx2(const void* src, float* y, int64_t n) {
    const uint8_t* p = (const uint8_t*)src;
    for (int64_t b = 0; b < n / 32; ++b, p += 34, y += 32)
        scale_codes32(_mm256_loadu_si256((const __m256i*)(p + 2)), _mm256_set1_ps(f16_scalar(p)), y);
}

void dequant_mxint8_avx2(const void* src, float* y, int64_t n) {
    const uint8_t* p = (const uint8_t*)src;
    for (int64_t b = 0; b < n / 32; ++b, p += 33, y += 32)
        scale_codes32(_mm256_loadu_si256((const __m256i*)(p + 1)), _mm256_set1_ps(e8m0_f32(p[0]) * 0.015625f), y);
}

void dequant_mxfp4_avx2(const void* src, float* y, int64_t n) {
    const uint8_t* p = (const uint8_t*)src;
    const __m128i lut = _mm_setr_epi8(0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12);
    const __m128i m4 = _mm_set1_epi8(0x0F);
    for (int64_t b = 0; b < n / 32; ++b, p += 17, y += 32) {
        const __m128i v = _mm_loadu_si128((const __m128i*)(p + 1));
        const __m128i lo = _mm_shuffle_epi8(lut, _mm_and_si128(v, m4));
        const __m128i hi = _mm_shuffle_epi8(lut, _mm_and_si128(_mm_srli_epi16(v, 4), m4));
        scale_codes32(_mm256_set_m128i(hi, lo), _mm256_set1_ps(e8m0_f32(p[0]) * 0.5f), y);
    }
}

void dequant_nl4_32_avx2(const void* src, float* y, int64_t n) {
    const uint8_t* p = (const uint8_t*)src;
    const __m128i lut = _mm_loadu_si128((const __m128i*)kNl4Values);
    const __m128i m4 = _mm_set1_epi8(0x0F);
    for (int64_t b = 0; b < n / 32; ++b, p += 18, y += 32) {
        const __m128i v = _mm_loadu_si128((const __m128i*)(p + 2));
        const __m128i lo = _mm_shuffle_epi8(lut, _mm_and_si128(v, m4));
        const __m128i hi = _mm_shuffle_epi8(lut, _mm_and_si128(_mm_srli_epi16(v, 4), m4));
        scale_codes32(_mm256_set_m128i(hi, lo), _mm256_set1_ps(f16_scalar(p)), y);
    }
}

void dequant_mxfp8_avx2(const void* src, float* y, int64_t n) {
    const uint8_t* p = (const uint8_t*)src;
    for (int64_t b = 0; b < n / 32; ++b, p += 33, y += 32) {
        const __m256 s = _mm256_set1_ps(e8m0_f32(p[0]));
        for (int j = 0; j < 32; j += 8) {
            const __m128i c = _mm_loadl_epi64((const __m128i*)(p + 1 + j));
            __m256 v = _mm256_mul_ps(e4m3x8_div256(c), _mm256_set1_ps(256.0f));
            const __m256i c32 = _mm256_cvtepu8_epi32(c);  // NaN codes -> ±0x7FC00000 (e4m3_to_f32)
            const __m256i nan = _mm256_cmpeq_epi32(_mm256_and_si256(c32, _mm256_set1_epi32(0x7F)), _mm256_set1_epi32(0x7F));
            const __m256i nanbits = _mm256_or_si256(_mm256_set1_epi32(0x7FC00000), _mm256_slli_epi32(_mm256_srli_epi32(c32, 7), 31));
            v = _mm256_blendv_ps(v, _mm256_castsi256_ps(nanbits), _mm256_castsi256_ps(nan));
            _mm256_storeu_ps(y + j, _mm256_mul_ps(s, v));
        }
    }
}

void dequant_int4_32_avx2(const void* src, float* y, int64_t n) { dequant_int4<32, false>(src, y, n); }
void dequant_int4_64_avx2(const void* src, float* y, int64_t n) { dequant_int4<64, false>(src, y, n); }
void dequant_int4_128_avx2(const void* src, float* y, int64_t n) { dequant_int4<128, false>(src, y, n); }
void dequant_int4a_32_avx2(const void* src, float* y, int64_t n) { dequant_int4<32, true>(src, y, n); }
void dequant_int4a_64_avx2(const void* src, float* y, int64_t n) { dequant_int4<64, true>(src, y, n); }
void dequant_int4a_128_avx2(const void* src, float* y, int64_t n) { dequant_int4<128, true>(src, y, n); }

}  // namespace edge
