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

}  // namespace x86
}  // namespace edge
