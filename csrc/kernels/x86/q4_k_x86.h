// q4_k_x86.h — the f16 scales and 6-bit sub-block codes of 4 rows' q4_k blocks at once (quant.h
// q4_k_scale_min), in 128-bit code shared by the AVX2 and AVX-512 VNNI q4_k gemms (include only from
// files built with AVX2 or more; internal linkage, see avx2_util.h).
//
// A block's first 16 bytes are f16 d, f16 dmin and scales[12]: its 32-bit words 1..3 hold, per byte
// j < 4, sc_j and m_j in the low 6 bits of words 1 / 2, the low 4 bits of sc_{j+4} / m_{j+4} in the
// nibbles of word 3, and their top 2 bits in the top 2 bits of words 1 / 2. The 4 rows' words are
// transposed (lane r = row r), then the rule is applied to every row and byte at once.
#pragma once

#include <immintrin.h>

#include <cstdint>

namespace edge {
namespace x86 {
namespace {

struct Q4kCodes4 {
    __m128i d;      // lane r: row r's f16 d (low half) and f16 dmin (high half)
    __m128i sc[2];  // byte j of lane r: sc of sub-block 4i + j of row r (sc[i])
    __m128i mn[2];  // the same for the mins m
};

// row[r]: the block of row r (any alignment; 16 bytes are read).
inline Q4kCodes4 q4_k_codes4(const uint8_t* const* row) {
    const __m128i r0 = _mm_loadu_si128((const __m128i*)row[0]), r1 = _mm_loadu_si128((const __m128i*)row[1]);
    const __m128i r2 = _mm_loadu_si128((const __m128i*)row[2]), r3 = _mm_loadu_si128((const __m128i*)row[3]);
    const __m128i a = _mm_unpacklo_epi32(r0, r1), b = _mm_unpacklo_epi32(r2, r3);  // words 0, 1
    const __m128i c = _mm_unpackhi_epi32(r0, r1), e = _mm_unpackhi_epi32(r2, r3);  // words 2, 3
    const __m128i w1 = _mm_unpackhi_epi64(a, b), w2 = _mm_unpacklo_epi64(c, e), w3 = _mm_unpackhi_epi64(c, e);
    const __m128i m6 = _mm_set1_epi8(0x3F), m4 = _mm_set1_epi8(0x0F), m2 = _mm_set1_epi8(0x30);
    Q4kCodes4 k;
    k.d = _mm_unpacklo_epi64(a, b);
    k.sc[0] = _mm_and_si128(w1, m6);
    k.mn[0] = _mm_and_si128(w2, m6);
    k.sc[1] = _mm_or_si128(_mm_and_si128(w3, m4), _mm_and_si128(_mm_srli_epi32(w1, 2), m2));
    k.mn[1] = _mm_or_si128(_mm_and_si128(_mm_srli_epi32(w3, 4), m4), _mm_and_si128(_mm_srli_epi32(w2, 2), m2));
    return k;
}

}  // namespace
}  // namespace x86
}  // namespace edge
