// kivi_avx2.h — the KIVI block's codes (kernels.h block_kivi4 / block_kivi2, KiviBits) as AVX2 floats, shared by
// attention_kivi_avx2.cpp and attention_block_avx2.cpp (only files compiled with the AVX2 flags include it).
// Exact: vpmovzxbd + shift + mask + vcvtdq2ps of integers < 16.
#pragma once

#include <immintrin.h>

#include "../kernels.h"

namespace edge {
namespace x86 {
namespace {  // internal linkage, as avx2_util.h

// lanes 8k .. 8k+7 of block b as floats (the codes, not yet scaled)
template <class B, int k>
inline __m256 kivi_piece(const B& b) {
    typedef KiviBits<B> L;
    const __m128i bytes = _mm_loadl_epi64((const __m128i*)(b.qs + L::off(k)));
    const __m256i w = _mm256_cvtepu8_epi32(bytes);
    return _mm256_cvtepi32_ps(_mm256_and_si256(_mm256_srli_epi32(w, L::shift(k)), _mm256_set1_epi32(L::mask)));
}

}  // namespace
}  // namespace x86
}  // namespace edge
