// avx2_util.h — small AVX2 + F16C helpers shared by the *_avx2.cpp files (only files compiled with
// the AVX2 flags may include it). Every conversion here is exact; exp8 is a polynomial approximation.
#pragma once

#include <immintrin.h>

#include <cstdint>
#include <cstring>

namespace edge {
namespace x86 {
namespace {  // internal linkage: copies built with other ISA flags must never be merged by the linker

inline float load_f32u(const void* p) {
    float v;
    std::memcpy(&v, p, 4);
    return v;
}

// E8M0 -> 2^(e-127); e = 0 gives the denormal 2^-127 (common.h e8m0_to_f32).
inline float e8m0_f32(uint8_t e) {
    const uint32_t bits = e ? (uint32_t)e << 23 : 0x00400000u;
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
}

// E8M0 bytes (the low byte of each 32-bit lane) -> 2^(e-127).
inline __m256 e8m0x8(__m256i dwords) {
    const __m256i e = _mm256_and_si256(dwords, _mm256_set1_epi32(0xFF));
    const __m256i zero = _mm256_cmpeq_epi32(e, _mm256_setzero_si256());
    return _mm256_castsi256_ps(_mm256_blendv_epi8(_mm256_slli_epi32(e, 23), _mm256_set1_epi32(0x00400000), zero));
}

// 8 IEEE halves (the low 16 bits of each 32-bit lane) -> f32 (F16C: signaling NaNs come out quiet).
inline __m256 f16x8(__m256i dwords) {
    const __m256i lo = _mm256_shuffle_epi8(dwords, _mm256_setr_epi8(0, 1, 4, 5, 8, 9, 12, 13, -1, -1, -1, -1, -1, -1, -1, -1,
                                                                     0, 1, 4, 5, 8, 9, 12, 13, -1, -1, -1, -1, -1, -1, -1, -1));
    return _mm256_cvtph_ps(_mm256_castsi256_si128(_mm256_permute4x64_epi64(lo, 0x08)));
}

// 8 E4M3 codes (the low 8 bytes of v) -> their values / 2^8 as f32: s.eeee.mmm becomes the f16
// s.0eeee.mmm0000000 (exponent bias 15 instead of 7; subnormals map to subnormals), the sign moving
// from bit 14 to 15 by adding bit 14 to itself. Codes 0x7F/0xFF (NaN) come out as ±480/2^8.
inline __m256 e4m3x8_div256(__m128i v) {
    __m128i h = _mm_slli_epi16(_mm_cvtepu8_epi16(v), 7);
    h = _mm_add_epi16(h, _mm_and_si128(h, _mm_set1_epi16(0x4000)));
    return _mm256_cvtph_ps(h);
}

inline float hsum8(__m256 v) {
    __m128 b = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    b = _mm_add_ps(b, _mm_movehl_ps(b, b));
    b = _mm_add_ss(b, _mm_movehdup_ps(b));
    return _mm_cvtss_f32(b);
}

// e^x per lane: Cephes expf, relative error < 2e-7 for x in [-87.3, 88.4] (clamped outside).
inline __m256 exp8(__m256 x) {
    x = _mm256_max_ps(_mm256_min_ps(x, _mm256_set1_ps(88.3762626647949f)), _mm256_set1_ps(-87.3365478515625f));
    __m256 fx = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(0.693359375f), x);
    x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(-2.12194440e-4f), x);
    __m256 y = _mm256_set1_ps(1.9875691500E-4f);
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.3981999507E-3f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(8.3334519073E-3f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(4.1665795894E-2f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.6666665459E-1f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(5.0000001201E-1f));
    y = _mm256_fmadd_ps(y, _mm256_mul_ps(x, x), _mm256_add_ps(x, _mm256_set1_ps(1.0f)));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(fx), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(y, _mm256_castsi256_ps(e));
}

}  // namespace
}  // namespace x86
}  // namespace edge
