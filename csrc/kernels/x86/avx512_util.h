// avx512_util.h — small AVX-512 helpers shared by the *_avx512.cpp and *_avx512vnni.cpp files (only
// files compiled with the AVX-512 flags may include it).
#pragma once

// GCC 12 warns "__Y is (may be) used uninitialized" inside its own AVX-512 headers whenever an
// intrinsic built on _mm512_undefined_*() is inlined (GCC PR 105593, fixed in 12.3); it is spurious.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
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

// Sum of the 16 lanes (any order; the callers' bounds allow it).
inline float hsum(__m512 v) {
    __m256 a = _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
    __m128 b = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    b = _mm_add_ps(b, _mm_movehl_ps(b, b));
    b = _mm_add_ss(b, _mm_movehdup_ps(b));
    return _mm_cvtss_f32(b);
}

// E8M0 bytes (the low byte of each 32-bit lane) -> 2^(e-127) as f32; e = 0 gives the denormal 2^-127
// (common.h e8m0_to_f32, bit for bit).
inline __m512 e8m0x16(__m512i dwords) {
    const __m512i e = _mm512_and_si512(dwords, _mm512_set1_epi32(0xFF));
    const __m512i bits = _mm512_mask_mov_epi32(_mm512_slli_epi32(e, 23), _mm512_cmpeq_epi32_mask(e, _mm512_setzero_si512()),
                                               _mm512_set1_epi32(0x00400000));
    return _mm512_castsi512_ps(bits);
}

// 16 IEEE halves (the low 16 bits of each 32-bit lane) -> f32, exactly.
inline __m512 f16x16(__m512i dwords) { return _mm512_cvtph_ps(_mm512_cvtepi32_epi16(dwords)); }

// e^x per lane: Cephes expf (range reduction by ln 2 in two parts + degree-6 polynomial), relative
// error < 2e-7 for x in [-87.3, 88.4]; inputs outside are clamped to that range.
inline __m512 exp16(__m512 x) {
    x = _mm512_max_ps(_mm512_min_ps(x, _mm512_set1_ps(88.3762626647949f)), _mm512_set1_ps(-87.3365478515625f));
    __m512 fx = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    x = _mm512_fnmadd_ps(fx, _mm512_set1_ps(0.693359375f), x);
    x = _mm512_fnmadd_ps(fx, _mm512_set1_ps(-2.12194440e-4f), x);
    __m512 y = _mm512_set1_ps(1.9875691500E-4f);
    y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(1.3981999507E-3f));
    y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(8.3334519073E-3f));
    y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(4.1665795894E-2f));
    y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(1.6666665459E-1f));
    y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(5.0000001201E-1f));
    y = _mm512_fmadd_ps(y, _mm512_mul_ps(x, x), _mm512_add_ps(x, _mm512_set1_ps(1.0f)));
    __m512i e = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(fx), _mm512_set1_epi32(127)), 23);
    return _mm512_mul_ps(y, _mm512_castsi512_ps(e));
}

}  // namespace
}  // namespace x86
}  // namespace edge
